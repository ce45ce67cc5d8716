//! Imports that nothing in fnhost provides: linked so the component loads, failing when called.
//!
//! Spin's SDKs import every platform interface (MQTT, Redis, PostgreSQL, LLMs, …) whether or not
//! the code uses it. [`link`] links a component with the host's linker; each import instance
//! the linker cannot satisfy is then defined, in a copy of the linker for this component only,
//! as functions that trap with a message naming the interface and the function, and resources
//! that can be held but never made. The names are returned so the host lists them once, as a
//! warning, at load. The first import the linker refuses is found from the linker's own error
//! (wasmtime names it, and this module checks the name against the component's imports), so
//! the host's semver matching and type checking stay wasmtime's.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker, LinkerInstance, ResourceType};
use wasmtime::Engine;

/// The error a guest gets (as a trap) when it calls an interface fnhost does not implement.
#[derive(Debug)]
pub struct NotImplemented {
    pub interface: String,
    pub function: String,
}

impl std::fmt::Display for NotImplemented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fnhost does not implement `{}` (the guest called `{}`)",
            self.interface, self.function
        )
    }
}

impl std::error::Error for NotImplemented {}

impl NotImplemented {
    /// Logs the call (the trap reaches the request only as "the guest trapped") and returns
    /// the trap.
    fn fail(&self) -> wasmtime::Error {
        tracing::warn!(interface = %self.interface, function = %self.function, "{self}");
        wasmtime::Error::msg(self.to_string())
    }
}

/// The host resource type of every resource an unsupported interface defines: no function can
/// make one, so it is never instantiated.
struct UnsupportedResource;

/// Links `component`: the pre-instance and the import instances linked to fail.
pub fn link<T: Send + 'static>(
    linker: &Linker<T>,
    component: &Component,
) -> Result<(InstancePre<T>, Vec<String>)> {
    let engine = linker.engine().clone();
    let imports: Vec<(String, ComponentItem)> = component
        .component_type()
        .imports(&engine)
        .map(|(name, import)| (name.to_string(), import.ty))
        .collect();
    let mut linker = linker.clone();
    // A stub replaces a semver-compatible definition whose types differ.
    linker.allow_shadowing(true);
    let mut unsupported = Vec::new();
    // Each round either links or stubs one more import instance.
    for _ in 0..=imports.len() {
        let err = match linker.instantiate_pre(component) {
            Ok(pre) => return Ok((pre, unsupported)),
            Err(e) => anyhow::Error::from(e),
        };
        let name = refused_import(&err).ok_or_else(|| unlinkable(&err))?;
        let Some((_, ComponentItem::ComponentInstance(instance))) =
            imports.iter().find(|(n, _)| *n == name)
        else {
            return Err(unlinkable(&err));
        };
        if unsupported.contains(&name) {
            return Err(unlinkable(&err));
        }
        let mut stub = linker.root().into_instance(&name)?;
        for (export, item) in instance.exports(&engine) {
            stub_item(&mut stub, &engine, &name, export, &item.ty)?;
        }
        unsupported.push(name);
    }
    bail!("linking did not converge after stubbing {unsupported:?}")
}

fn unlinkable(err: &anyhow::Error) -> anyhow::Error {
    anyhow!("cannot link the component: {err:#}")
}

/// The import named in wasmtime's "component imports instance `NAME`, but a matching
/// implementation was not found in the linker" (the outermost context of its link error).
fn refused_import(err: &anyhow::Error) -> Option<String> {
    let msg = err.chain().map(|e| e.to_string()).find(|m| {
        m.starts_with("component imports instance `") && m.contains("a matching implementation")
    })?;
    let rest = msg.strip_prefix("component imports instance `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn stub_item<T: Send + 'static>(
    instance: &mut LinkerInstance<'_, T>,
    engine: &Engine,
    interface: &str,
    name: &str,
    item: &ComponentItem,
) -> Result<()> {
    match item {
        ComponentItem::ComponentFunc(func) => {
            let not_implemented = Arc::new(NotImplemented {
                interface: interface.to_string(),
                function: name.to_string(),
            });
            if func.async_() {
                instance.func_new_concurrent(name, move |_, _, _, _| {
                    let e = not_implemented.clone();
                    Box::pin(async move { Err(e.fail()) })
                })?;
            } else {
                instance.func_new(name, move |_, _, _, _| Err(not_implemented.fail()))?;
            }
        }
        ComponentItem::Resource(_) => {
            instance.resource(name, ResourceType::host::<UnsupportedResource>(), |_, _| {
                Ok(())
            })?;
        }
        ComponentItem::ComponentInstance(nested) => {
            let mut inner = instance.instance(name)?;
            for (export, item) in nested.exports(engine) {
                stub_item(&mut inner, engine, interface, export, &item.ty)?;
            }
        }
        // Types need no definition; modules and components are never imported by interfaces.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_import_is_read_from_wasmtimes_error() {
        let err = anyhow!("instance export `fields` has the wrong type")
            .context("component imports instance `wasi:http/types@0.3.0-rc-2026-03-15`, but a matching implementation was not found in the linker");
        assert_eq!(
            refused_import(&err).as_deref(),
            Some("wasi:http/types@0.3.0-rc-2026-03-15")
        );
        assert_eq!(refused_import(&anyhow!("something else")), None);
    }
}
