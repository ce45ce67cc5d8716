//! The file format: Spin's manifest v2 as serde types, plus fnhost's `tool.fnhost` tables.
//!
//! These types say what may be *written*, not what is valid: values stay as written (strings
//! for durations and sizes, paths relative to the manifest) and are checked when `mod.rs`
//! converts them into the domain types of `spec`. Keys Spin defines that have no effect on
//! serving are accepted and dropped ([`Inert`]); keys that appear in no type here are reported
//! by `serde_ignored` with their key path and judged by one policy in `mod.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;

/// A value that is read and dropped: build-time metadata, or another tool's table. (Not
/// `serde::de::IgnoredAny`, which `serde_ignored` would report as an unknown key.)
pub type Inert = toml::Value;

/// A whole `spin.toml`.
#[derive(Debug, Deserialize)]
pub struct ManifestFile {
    /// Checked by `parse` before the file is deserialised (to give its own message).
    #[allow(dead_code)]
    pub spin_manifest_version: i64,
    pub application: Application,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
    /// Application variables; components see them only through their own `variables`.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
}

/// `[variables] name = { default = "…" }` or `{ required = true }`, optionally `secret = true`.
#[derive(Debug, Deserialize)]
pub struct Variable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Deserialize)]
pub struct Application {
    pub name: String,
    #[allow(dead_code)] // accepted; no effect on serving
    pub version: Option<Inert>,
    #[allow(dead_code)] // accepted; no effect on serving
    pub description: Option<Inert>,
    #[allow(dead_code)] // accepted; no effect on serving
    pub authors: Option<Inert>,
    #[allow(dead_code)] // accepted; no effect on serving
    pub targets: Option<Inert>,
    #[serde(default)]
    pub tool: Tools<AppTool>,
}

/// `tool` tables: fnhost reads its own; other tools' tables are theirs and are left alone.
#[derive(Debug)]
pub struct Tools<T> {
    pub fnhost: Option<T>,
}

impl<T> Default for Tools<T> {
    fn default() -> Self {
        Tools { fnhost: None }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tools<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Tools<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of tool settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tools<T>, A::Error> {
                let mut fnhost = None;
                while let Some(tool) = map.next_key::<String>()? {
                    if tool == "fnhost" {
                        fnhost = Some(map.next_value()?);
                    } else {
                        // Another tool's settings: not ours to judge.
                        map.next_value::<Inert>()?;
                    }
                }
                Ok(Tools { fnhost })
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// `[application.tool.fnhost]`: the server's limits. Durations are strings ("30s", "250ms"),
/// sizes are byte counts or strings ("128MiB").
#[derive(Debug, Default, Deserialize)]
pub struct AppTool {
    pub request_timeout: Option<String>,
    pub memory_limit: Option<Size>,
    pub max_request_body: Option<Size>,
    pub max_response_body: Option<Size>,
    pub max_concurrent_requests: Option<i64>,
    pub max_queued_requests: Option<i64>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub max_headers: Option<i64>,
    pub max_header_bytes: Option<Size>,
    pub max_connections: Option<i64>,
    pub max_module_size: Option<Size>,
    /// Registries (`host[:port]`) reached over plain HTTP (Spin's source table has no such key).
    pub insecure_registries: Option<Vec<String>>,
}

/// A size as written: a number of bytes or a string with a unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Size {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of bytes or a size like \"128MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                Ok(Size::Bytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Ok(Size::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
pub struct HttpTrigger {
    pub route: StringOr<PrivateRoute>,
    pub component: Option<StringOr<toml::Table>>,
    #[allow(dead_code)] // accepted; no effect on serving
    pub id: Option<Inert>,
}

/// `route = { private = true }`.
#[derive(Debug, Deserialize)]
pub struct PrivateRoute {
    #[allow(dead_code)] // private routes are refused whatever it says
    pub private: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct Component {
    pub source: StringOr<SourceTable>,
    pub files: Option<Vec<StringOr<FilesMount>>>,
    pub environment: Option<BTreeMap<String, String>>,
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// `name = "text with {{ app_variable }}"`.
    pub variables: Option<BTreeMap<String, String>>,
    pub key_value_stores: Option<Vec<String>>,
    #[allow(dead_code)] // accepted; no effect on serving
    pub description: Option<Inert>,
    #[allow(dead_code)] // accepted; no effect on serving
    pub build: Option<Inert>,
    #[allow(dead_code)] // accepted; no effect on serving
    pub exclude_files: Option<Inert>,
    #[serde(default)]
    pub tool: Tools<ComponentTool>,
}

/// `source = { url, digest }` or Spin's registry form `{ registry, package, version }`.
#[derive(Debug, Default, Deserialize)]
pub struct SourceTable {
    pub url: Option<String>,
    pub digest: Option<String>,
    pub registry: Option<String>,
    pub package: Option<String>,
    pub version: Option<String>,
}

/// `files = [{ source = "dir", destination = "/path" }]`.
#[derive(Debug, Deserialize)]
pub struct FilesMount {
    pub source: String,
    pub destination: String,
}

/// `[component.NAME.tool.fnhost]`.
#[derive(Debug, Default, Deserialize)]
pub struct ComponentTool {
    pub request_timeout: Option<String>,
    pub memory_limit: Option<Size>,
    pub instance_reuse: Option<i64>,
    pub label: Option<String>,
    pub pin_key: Option<String>,
    pub candidate: Option<CandidateTool>,
}

/// `[component.NAME.tool.fnhost.candidate]`.
#[derive(Debug, Deserialize)]
pub struct CandidateTool {
    pub source: StringOr<SourceTable>,
    pub files: Option<Vec<StringOr<FilesMount>>>,
    pub environment: Option<BTreeMap<String, String>>,
    pub label: Option<String>,
    pub weight: Option<f64>,
    pub sticky_header: Option<String>,
    pub sticky_cookie: Option<String>,
    pub max_error_rate: Option<f64>,
    pub guard_window: Option<i64>,
}

/// A value Spin lets be either a string or a table (`source`, `files` entries, `route`,
/// `component`). Deserialised by hand so a wrong type gets a message naming both forms, and so
/// unknown keys inside the table are still reported.
#[derive(Debug)]
pub enum StringOr<T> {
    Str(String),
    Table(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StringOr<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = StringOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a table")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOr<T>, E> {
                Ok(StringOr::Str(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StringOr<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StringOr::Table)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}
