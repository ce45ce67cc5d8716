//! Which wasi:http world a component serves, found once at load.
//!
//! fnhost serves `wasi:http/handler@0.3.x` (spin-sdk 7, WASIp3) and
//! `wasi:http/incoming-handler@0.2.x` (spin-sdk 5, `wasmtime serve` examples). A file that is
//! not a component, or a component that exports neither, is refused with what it is instead.

use anyhow::{bail, Result};
use serde::Serialize;
use wasmtime::component::{Component, InstancePre};
use wasmtime::Engine;
use wasmtime_wasi_http::handler::ProxyPre;

use super::guest::GuestState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum World {
    /// `wasi:http/handler@0.3.x` (spin-sdk 7).
    #[serde(rename = "wasi:http/handler@0.3")]
    P3,
    /// `wasi:http/incoming-handler@0.2.x` (spin-sdk 5, `wasmtime serve` examples).
    #[serde(rename = "wasi:http/incoming-handler@0.2")]
    P2,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::P3 => "wasi:http/handler@0.3",
            World::P2 => "wasi:http/incoming-handler@0.2",
        }
    }
}

/// Refuses anything that is not a WebAssembly component before it is compiled.
pub fn check_is_component(bytes: &[u8]) -> Result<()> {
    if !wasmparser::Parser::is_component(bytes) {
        bail!("not a WebAssembly component (a core module or another file); build it for wasm32-wasip2");
    }
    Ok(())
}

/// The world a linked component serves, with the pre-instance that serves it.
pub fn detect(
    pre: InstancePre<GuestState>,
    component: &Component,
    engine: &Engine,
) -> Result<(World, ProxyPre<GuestState>)> {
    if let Ok(p3) = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
        return Ok((World::P3, ProxyPre::P3(p3)));
    }
    if let Ok(p2) = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre) {
        return Ok((World::P2, ProxyPre::P2(p2)));
    }
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    bail!(
        "the component exports neither wasi:http/handler@0.3.x nor wasi:http/incoming-handler@0.2.x (it exports: {})",
        if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_other_files() {
        assert!(check_is_component(b"\0asm\x0d\0\x01\0").is_ok());
        let core = check_is_component(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(core.to_string().contains("not a WebAssembly component"));
        assert!(check_is_component(b"hello world").is_err());
    }
}
