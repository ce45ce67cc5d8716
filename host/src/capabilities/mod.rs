//! Host interfaces a guest may import besides WASI and wasi:http, one module each (Spin's
//! "factors"): `variables` (Spin variables, wasi:config), `key_value` (Spin key-value,
//! wasi:keyvalue). Each adds its linker entries, reads its grant from the version's spec and
//! owns its state; the engine knows only the three values below and [`CapabilitiesView`], the
//! view of a store it implements.
//!
//! - [`HostCapabilities`]: opened once per host (the key-value database in the state
//!   directory, on first use).
//! - [`Grants`]: one per version, made at load from its `CapabilityGrants` (variables resolved,
//!   stores checked); a version that cannot have its grants does not load.
//! - [`InstanceCapabilities`]: one per store.
//!
//! Two more concerns live here because they decide what a component may import:
//! `wasi_candidates` serves WASI 0.3 release-candidate names with the 0.3.0 implementations,
//! and `unsupported` links every other import nothing provides to a trap naming it ([`link`]).

mod bindings;
mod key_value;
mod unsupported;
mod variables;
mod wasi_candidates;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

pub use unsupported::{link, NotImplemented};

use crate::spec::CapabilityGrants;

/// What a capability sees of a store: its instance state and the store's resource table.
pub struct CapabilitiesCtx<'a> {
    pub state: &'a mut InstanceCapabilities,
    pub table: &'a mut ResourceTable,
}

/// Implemented by the store data of guests (`engine::GuestState`).
pub trait CapabilitiesView: Send {
    fn capabilities(&mut self) -> CapabilitiesCtx<'_>;
}

/// Adds every capability's interfaces (and the WASI release candidates) to the host's linker.
pub fn add_to_linker<T>(linker: &mut Linker<T>) -> Result<()>
where
    T: CapabilitiesView + WasiView + WasiHttpView + 'static,
{
    wasi_candidates::add_to_linker(linker)?;
    variables::add_to_linker(linker)?;
    key_value::add_to_linker(linker)?;
    Ok(())
}

/// Host-wide state of the capabilities.
pub struct HostCapabilities {
    state_dir: PathBuf,
    key_value: OnceLock<Arc<key_value::Database>>,
}

impl HostCapabilities {
    /// Nothing is opened until a version is granted something that needs it.
    pub fn new(state_dir: &Path) -> HostCapabilities {
        HostCapabilities {
            state_dir: state_dir.to_path_buf(),
            key_value: OnceLock::new(),
        }
    }

    /// A version's grants: its variables resolved now (environment provider, then defaults),
    /// its key-value stores opened.
    pub fn grant(&self, grants: &CapabilityGrants) -> Result<Grants> {
        let variables = variables::resolve(&grants.variables, |key| std::env::var(key).ok())?;
        let database = if grants.key_value_stores.is_empty() {
            None
        } else {
            Some(self.key_value_database()?)
        };
        Ok(Grants {
            variables: Arc::new(variables),
            key_value: key_value::Grant::new(database, &grants.key_value_stores),
        })
    }

    fn key_value_database(&self) -> Result<Arc<key_value::Database>> {
        if let Some(db) = self.key_value.get() {
            return Ok(db.clone());
        }
        let db = Arc::new(key_value::Database::open(
            &self.state_dir.join(key_value::DATABASE_FILE),
        )?);
        // Two loads racing here open the file twice; the first one stored is used by both.
        Ok(self.key_value.get_or_init(|| db).clone())
    }
}

/// What the instances of one version are granted.
#[derive(Clone)]
pub struct Grants {
    variables: Arc<variables::Resolved>,
    key_value: key_value::Grant,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Variable values may be secrets: never printed.
        f.debug_struct("Grants")
            .field("key_value", &self.key_value)
            .finish_non_exhaustive()
    }
}

impl Grants {
    /// The capability state of a new store.
    pub fn instance(&self) -> InstanceCapabilities {
        InstanceCapabilities {
            variables: self.variables.clone(),
            key_value: self.key_value.clone(),
        }
    }
}

/// The capability state of one store.
pub struct InstanceCapabilities {
    variables: Arc<variables::Resolved>,
    key_value: key_value::Grant,
}
