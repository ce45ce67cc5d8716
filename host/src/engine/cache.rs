//! The compiled-module cache: native code for a module, on disk, so a restart or a second
//! replica on the same volume does not compile again.
//!
//! An entry is named by the module's sha256 and a digest of the engine's compatibility hash
//! (wasmtime version, compiler settings, target). The engine part is a sha256 of what the
//! engine feeds to `Hash`, not `DefaultHasher`, whose algorithm may change between Rust
//! releases. Entries are written atomically; one that does not deserialise is recompiled.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::Digest;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::fsutil::write_atomically;
use crate::metrics::{CacheResult, Metrics};
use crate::spec::Sha256;

pub struct CompiledCache {
    dir: PathBuf,
    /// 16 hex digits of the engine's compatibility digest.
    engine_key: String,
}

/// A `Hasher` that feeds sha256: stable across processes and Rust releases.
struct Sha256Hasher(sha2::Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
    }
}

impl CompiledCache {
    pub fn new(dir: &Path, engine: &Engine) -> Result<CompiledCache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the compiled-module cache {}", dir.display()))?;
        let mut h = Sha256Hasher(sha2::Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(CompiledCache {
            dir: dir.to_path_buf(),
            engine_key: hex::encode(&h.0.finalize()[..8]),
        })
    }

    fn entry(&self, module: &Sha256) -> PathBuf {
        self.dir.join(format!("{module}-{}.cwasm", self.engine_key))
    }

    /// The module compiled for `engine`: from the cache, or compiled now and cached. Slow on a
    /// miss: call it from a blocking task.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        module: &Sha256,
        metrics: &Metrics,
    ) -> Result<(Component, bool)> {
        let path = self.entry(module);
        if path.is_file() {
            // SAFETY: the file was written by `precompile_component` of an engine with the same
            // compatibility hash, into a cache directory owned by this host.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => {
                    metrics.compiled_cache(CacheResult::Hit);
                    tracing::info!(module = %module.short(), cache = %path.display(), "loaded compiled module from cache");
                    return Ok((c, true));
                }
                Err(e) => {
                    tracing::warn!(cache = %path.display(), error = %e, "unusable cache entry; recompiling")
                }
            }
        }
        metrics.compiled_cache(CacheResult::Miss);
        let started = Instant::now();
        let compiled = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        write_atomically(&path, &compiled)
            .with_context(|| format!("writing the compiled-module cache {}", path.display()))?;
        tracing::info!(module = %module.short(), ms = started.elapsed().as_millis() as u64, "compiled module (cache miss)");
        // SAFETY: `compiled` was just produced by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled) }?;
        Ok((component, false))
    }
}
