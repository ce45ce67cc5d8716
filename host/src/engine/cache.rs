//! The compiled-module cache: native code for a module, on disk, so a restart or a second
//! replica on the same volume does not compile again.
//!
//! An entry is named by the module's sha256 and a digest of the engine's compatibility hash
//! (wasmtime version, compiler settings, target). The engine part is a sha256 of what the
//! engine feeds to `Hash`, not `DefaultHasher`, whose algorithm may change between Rust
//! releases. Entries are written atomically.
//!
//! An entry is native code, so it is **verified before it is deserialised**: it starts with an
//! HMAC-SHA256, under a key only this host holds (`STATE_DIR/cache-key`, or `FNHOST_CACHE_KEY`
//! shared by replicas that share a cache volume), of the entry's name and bytes. An entry that
//! fails — tampered, truncated, another module's code under this name, or written with another
//! key — is logged, recompiled and rewritten, never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
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
    /// The key of the entries' HMAC.
    mac_key: [u8; 32],
}

const MAC_LEN: usize = 32;

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
    pub fn new(dir: &Path, engine: &Engine, mac_key: [u8; 32]) -> Result<CompiledCache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the compiled-module cache {}", dir.display()))?;
        let mut h = Sha256Hasher(sha2::Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(CompiledCache {
            dir: dir.to_path_buf(),
            engine_key: hex::encode(&h.0.finalize()[..8]),
            mac_key,
        })
    }

    fn mac(&self, name: &str) -> Hmac<sha2::Sha256> {
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.mac_key).expect("HMAC takes any key");
        mac.update(name.as_bytes());
        mac
    }

    /// The compiled bytes of an entry file, if its MAC is right.
    fn verified<'a>(&self, name: &str, file: &'a [u8]) -> Option<&'a [u8]> {
        let (tag, code) = file.split_at_checked(MAC_LEN)?;
        let mut mac = self.mac(name);
        mac.update(code);
        mac.verify_slice(tag).ok().map(|()| code)
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
        let name = format!("{module}-{}", self.engine_key);
        if let Ok(file) = std::fs::read(&path) {
            match self.verified(&name, &file) {
                // SAFETY: the bytes are what this host's engine (same compatibility hash)
                // compiled and signed with its key: the MAC was checked just now.
                Some(code) => match unsafe { Component::deserialize(engine, code) } {
                    Ok(c) => {
                        metrics.compiled_cache(CacheResult::Hit);
                        tracing::info!(module = %module.short(), cache = %path.display(), "loaded compiled module from cache");
                        return Ok((c, true));
                    }
                    Err(e) => {
                        tracing::warn!(cache = %path.display(), error = %e, "unusable cache entry; recompiling")
                    }
                },
                None => {
                    metrics.compiled_cache(CacheResult::Rejected);
                    tracing::warn!(cache = %path.display(), "compiled-module cache entry failed verification (altered, another module's code, or written with another cache key); not loaded, recompiling");
                }
            }
        }
        metrics.compiled_cache(CacheResult::Miss);
        let started = Instant::now();
        let compiled = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        let mut mac = self.mac(&name);
        mac.update(&compiled);
        let mut file = mac.finalize().into_bytes().to_vec();
        file.extend_from_slice(&compiled);
        write_atomically(&path, &file)
            .with_context(|| format!("writing the compiled-module cache {}", path.display()))?;
        tracing::info!(module = %module.short(), ms = started.elapsed().as_millis() as u64, "compiled module (cache miss)");
        // SAFETY: `compiled` was just produced by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled) }?;
        Ok((component, false))
    }
}
