//! Key-value stores: `spin:key-value/key-value@3.0.0` and `wasi:keyvalue@0.2.0-draft2`
//! (`store`, `atomics`, `batch`), granted by `key_value_stores = ["default"]` as in Spin.
//!
//! Every store lives in one SQLite database in the state directory ([`DATABASE_FILE`]), a
//! table keyed by (store, key), owned by the host rather than by a version: data outlives
//! instances, swaps and restarts. SQLite (bundled, through rusqlite) because it is what Spin's
//! default store uses, the file can be inspected with `sqlite3`, and its locking makes one file
//! safe under concurrent instances (and processes). Write-ahead logging with `synchronous =
//! NORMAL` makes a write a page append with no fsync, so operations take microseconds and run
//! on the calling thread, under one connection lock, like the granted-file reads.
//!
//! A store that is not granted answers `access-denied` when opened (Spin's behaviour).

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

use super::bindings::spin::key_value::key_value as spin_kv;
use super::bindings::wasi::keyvalue::{atomics, batch, store as wasi_kv};
use super::CapabilitiesView;
use crate::spec::KeyValueStoreLabel;

/// The database file in the state directory.
pub const DATABASE_FILE: &str = "key-value.db";

const SELECT_VALUE: &str = "SELECT value FROM key_value WHERE store = ?1 AND key = ?2";
const UPSERT_VALUE: &str = "INSERT INTO key_value (store, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";

/// The host's key-value database.
pub struct Database {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database")
    }
}

/// A failed database operation, as the guest sees it.
type DbResult<T> = std::result::Result<T, String>;

fn db_err(e: rusqlite::Error) -> String {
    format!("key-value database: {e}")
}

impl Database {
    pub fn open(path: &Path) -> Result<Database> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening the key-value database {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS key_value (
                store TEXT NOT NULL,
                key TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            ) WITHOUT ROWID",
        )
        .with_context(|| format!("creating the table in {}", path.display()))?;
        Ok(Database {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, store: &str, key: &str) -> DbResult<Option<Vec<u8>>> {
        self.conn()
            .prepare_cached(SELECT_VALUE)
            .and_then(|mut s| s.query_row(params![store, key], |r| r.get(0)).optional())
            .map_err(db_err)
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> DbResult<()> {
        self.conn()
            .prepare_cached(UPSERT_VALUE)
            .and_then(|mut s| s.execute(params![store, key, value]))
            .map(drop)
            .map_err(db_err)
    }

    fn delete(&self, store: &str, key: &str) -> DbResult<()> {
        self.conn()
            .prepare_cached("DELETE FROM key_value WHERE store = ?1 AND key = ?2")
            .and_then(|mut s| s.execute(params![store, key]))
            .map(drop)
            .map_err(db_err)
    }

    fn exists(&self, store: &str, key: &str) -> DbResult<bool> {
        self.get(store, key).map(|v| v.is_some())
    }

    fn keys(&self, store: &str) -> DbResult<Vec<String>> {
        self.conn()
            .prepare_cached("SELECT key FROM key_value WHERE store = ?1 ORDER BY key")
            .and_then(|mut s| {
                s.query_map(params![store], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .map_err(db_err)
    }

    /// Reads `key` and stores what `decide` makes of its value (nothing when it gives no new
    /// value), in one transaction that holds SQLite's write lock from the read on.
    fn read_modify_write<R>(
        &self,
        store: &str,
        key: &str,
        decide: impl FnOnce(Option<&[u8]>) -> DbResult<(Option<Vec<u8>>, R)>,
    ) -> DbResult<R> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let current: Option<Vec<u8>> = tx
            .query_row(SELECT_VALUE, params![store, key], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        let (new, result) = decide(current.as_deref())?;
        if let Some(new) = new {
            tx.execute(UPSERT_VALUE, params![store, key, new])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
        }
        Ok(result)
    }

    /// Adds `delta` to a value holding a little-endian i64 (a missing key counts as 0).
    fn increment(&self, store: &str, key: &str, delta: i64) -> DbResult<i64> {
        self.read_modify_write(store, key, |current| {
            let current = match current {
                None => 0,
                Some(bytes) => i64::from_le_bytes(bytes.try_into().map_err(|_| {
                    format!(
                        "the value of \"{key}\" is not a 64-bit integer ({} bytes)",
                        bytes.len()
                    )
                })?),
            };
            let new = current
                .checked_add(delta)
                .ok_or_else(|| format!("incrementing \"{key}\" by {delta} overflows"))?;
            Ok((Some(new.to_le_bytes().to_vec()), new))
        })
    }

    /// Sets `key` to `value` if it still holds `expected` (None: absent).
    fn compare_and_swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> DbResult<bool> {
        self.read_modify_write(store, key, |current| {
            Ok(if current == expected {
                (Some(value.to_vec()), true)
            } else {
                (None, false)
            })
        })
    }
}

/// The stores one version may open.
#[derive(Clone, Debug)]
pub struct Grant {
    database: Option<Arc<Database>>,
    labels: Arc<[KeyValueStoreLabel]>,
}

impl Grant {
    pub fn new(database: Option<Arc<Database>>, labels: &[KeyValueStoreLabel]) -> Grant {
        Grant {
            database,
            labels: labels.into(),
        }
    }

    /// The database, if `label` is granted.
    fn open(&self, label: &str) -> Option<OpenStore> {
        let database = self.database.as_ref()?;
        self.labels
            .iter()
            .any(|l| l.as_str() == label)
            .then(|| OpenStore {
                label: label.into(),
                database: database.clone(),
            })
    }
}

/// An open store: Spin's `store` and wasi:keyvalue's `bucket` resource.
pub struct OpenStore {
    label: Arc<str>,
    database: Arc<Database>,
}

/// wasi:keyvalue's compare-and-swap handle: the value a key held when it was made.
pub struct Cas {
    store: Arc<str>,
    database: Arc<Database>,
    key: String,
    current: Option<Vec<u8>>,
}

/// The `HasData` of every key-value interface.
pub struct KeyValue;

pub struct KeyValueCtx<'a> {
    grant: &'a Grant,
    table: &'a mut ResourceTable,
}

impl HasData for KeyValue {
    type Data<'a> = KeyValueCtx<'a>;
}

pub fn add_to_linker<T: CapabilitiesView + 'static>(linker: &mut Linker<T>) -> Result<()> {
    fn ctx<T: CapabilitiesView>(t: &mut T) -> KeyValueCtx<'_> {
        let c = t.capabilities();
        KeyValueCtx {
            grant: &c.state.key_value,
            table: c.table,
        }
    }
    spin_kv::add_to_linker::<T, KeyValue>(linker, ctx::<T>)?;
    wasi_kv::add_to_linker::<T, KeyValue>(linker, ctx::<T>)?;
    atomics::add_to_linker::<T, KeyValue>(linker, ctx::<T>)?;
    batch::add_to_linker::<T, KeyValue>(linker, ctx::<T>)?;
    Ok(())
}

impl KeyValueCtx<'_> {
    fn store(&self, store: &Resource<OpenStore>) -> wasmtime::Result<(Arc<str>, Arc<Database>)> {
        let s = self.table.get(store)?;
        Ok((s.label.clone(), s.database.clone()))
    }
}

// ---- spin:key-value@3.0.0 ----

fn spin_err(e: String) -> spin_kv::Error {
    spin_kv::Error::Other(e)
}

/// Runs a database operation on an open store (a trap only for a bad handle).
fn with_store<T, R>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<OpenStore>,
    op: impl FnOnce(&str, &Database) -> DbResult<R>,
) -> wasmtime::Result<Result<R, spin_kv::Error>> {
    let (label, db) = accessor.with(|mut a| a.get().store(store))?;
    Ok(op(&label, &db).map_err(spin_err))
}

impl spin_kv::Host for KeyValueCtx<'_> {}

impl spin_kv::HostStore for KeyValueCtx<'_> {
    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<T> spin_kv::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, spin_kv::Error>> {
        accessor.with(|mut a| {
            let ctx = a.get();
            match ctx.grant.open(&label) {
                Some(store) => Ok(Ok(ctx.table.push(store)?)),
                None => Ok(Err(spin_kv::Error::AccessDenied)),
            }
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        with_store(accessor, &store, |s, db| db.get(s, &key))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        with_store(accessor, &store, |s, db| db.set(s, &key, &value))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        with_store(accessor, &store, |s, db| db.delete(s, &key))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        with_store(accessor, &store, |s, db| db.exists(s, &key))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), spin_kv::Error>>,
    )> {
        let keys = with_store(accessor, &store, |s, db| db.keys(s))?;
        accessor.with(|mut a| {
            let (keys, result) = match keys {
                Ok(keys) => (keys, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            let stream = StreamReader::new(&mut a, keys)?;
            let done = FutureReader::new(&mut a, async move { Ok::<_, wasmtime::Error>(result) })?;
            Ok((stream, done))
        })
    }
}

// ---- wasi:keyvalue@0.2.0-draft2 ----

fn wasi_err(e: String) -> wasi_kv::Error {
    wasi_kv::Error::Other(e)
}

impl wasi_kv::Host for KeyValueCtx<'_> {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, wasi_kv::Error>> {
        match self.grant.open(&identifier) {
            Some(store) => Ok(Ok(self.table.push(store)?)),
            None => Ok(Err(wasi_kv::Error::AccessDenied)),
        }
    }
}

impl wasi_kv::HostBucket for KeyValueCtx<'_> {
    fn get(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(db.get(&s, &key).map_err(wasi_err))
    }

    fn set(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(db.set(&s, &key, &value).map_err(wasi_err))
    }

    fn delete(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(db.delete(&s, &key).map_err(wasi_err))
    }

    fn exists(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(db.exists(&s, &key).map_err(wasi_err))
    }

    /// Every key in one response (no cursor): the stores here are small and local.
    fn list_keys(
        &mut self,
        bucket: Resource<OpenStore>,
        _cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(db
            .keys(&s)
            .map(|keys| wasi_kv::KeyResponse { keys, cursor: None })
            .map_err(wasi_err))
    }

    fn drop(&mut self, bucket: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueCtx<'_> {
    fn increment(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(db.increment(&s, &key, delta).map_err(wasi_err))
    }

    fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas_ref = self.table.get(&cas)?;
        let swapped = cas_ref.database.compare_and_swap(
            &cas_ref.store,
            &cas_ref.key,
            cas_ref.current.as_deref(),
            &value,
        );
        Ok(match swapped {
            Ok(true) => {
                self.table.delete(cas)?;
                Ok(())
            }
            Ok(false) => Err(atomics::CasError::CasFailed(cas)),
            Err(e) => {
                self.table.delete(cas)?;
                Err(atomics::CasError::StoreError(wasi_err(e)))
            }
        })
    }
}

impl atomics::HostCas for KeyValueCtx<'_> {
    fn new(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, wasi_kv::Error>> {
        let (store, database) = self.store(&bucket)?;
        let current = match database.get(&store, &key) {
            Ok(v) => v,
            Err(e) => return Ok(Err(wasi_err(e))),
        };
        Ok(Ok(self.table.push(Cas {
            store,
            database,
            key,
            current,
        })?))
    }

    fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValueCtx<'_> {
    fn get_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(keys
            .into_iter()
            .map(|k| db.get(&s, &k).map(|v| (k, v)))
            .collect::<DbResult<_>>()
            .map_err(wasi_err))
    }

    fn set_many(
        &mut self,
        bucket: Resource<OpenStore>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(key_values
            .iter()
            .try_for_each(|(k, v)| db.set(&s, k, v))
            .map_err(wasi_err))
    }

    fn delete_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (s, db) = self.store(&bucket)?;
        Ok(keys
            .iter()
            .try_for_each(|k| db.delete(&s, k))
            .map_err(wasi_err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_keeps_stores_apart_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        let db = Database::open(&path).unwrap();
        db.set("default", "k", b"v1").unwrap();
        db.set("other", "k", b"v2").unwrap();
        assert_eq!(db.get("default", "k").unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(db.keys("default").unwrap(), ["k"]);
        db.delete("default", "k").unwrap();
        assert!(!db.exists("default", "k").unwrap());
        drop(db);
        let db = Database::open(&path).unwrap();
        assert_eq!(db.get("other", "k").unwrap().as_deref(), Some(&b"v2"[..]));
    }

    #[test]
    fn increments_and_swaps_are_atomic_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::open(&dir.path().join(DATABASE_FILE)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        db.increment("default", "n", 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(db.increment("default", "n", 0).unwrap(), 1000);
        assert!(db.compare_and_swap("default", "c", None, b"a").unwrap());
        assert!(!db.compare_and_swap("default", "c", None, b"b").unwrap());
        assert!(db
            .compare_and_swap("default", "c", Some(b"a"), b"b")
            .unwrap());
        db.set("default", "s", b"text").unwrap();
        assert!(db
            .increment("default", "s", 1)
            .unwrap_err()
            .contains("not a 64-bit integer"));
    }

    #[test]
    fn only_granted_stores_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::open(&dir.path().join(DATABASE_FILE)).unwrap());
        let label = KeyValueStoreLabel::new("default").unwrap();
        assert!(Grant::new(Some(db.clone()), &[label])
            .open("default")
            .is_some());
        assert!(Grant::new(Some(db), &[]).open("default").is_none());
        assert!(Grant::new(None, &[]).open("default").is_none());
    }
}
