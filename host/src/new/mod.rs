//! `fnhost new TEMPLATE NAME [--app DIR]` (Spin's `spin new` habit): adds a component to an
//! application — its files, its routes and its `[component.NAME]` table in `spin.toml` (created
//! from a template when missing), and for Rust templates its crates in the app's Cargo
//! workspace. Everything is decided first (name, model file, existing files and components,
//! the route table) and written only when all of it holds, so a refused command writes
//! nothing. Manifests are edited with `toml_edit`, which keeps their comments and order.
//!
//! `onnx-model` needs nothing but the binary and a model file: the generic model module
//! (`onnx_model.wasm`) is compiled into fnhost (see `build.rs`) and written next to the
//! manifest under a content-addressed name; `model.json` is derived from the ONNX graph by
//! `onnx_core::describe`, which loads the model exactly as the component will.

mod templates;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

use crate::fsutil::write_atomically;
use crate::router::Router;
use crate::spec::ComponentId;
use templates::{Template, Values};

/// The generic ONNX model component, as built for this binary (empty when the build was not
/// given one: see `build.rs`).
const ONNX_MODEL_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/onnx_model.wasm"));

/// The templates `fnhost new` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TemplateName {
    /// A model file served by the generic ONNX module (KServe V2 and V1); needs --model
    OnnxModel,
    /// A Rust HTTP component (spin-sdk 7)
    HttpRust,
    /// A model in Rust: a pure core crate, thin glue, and its model.json (like iris)
    ModelRust,
    /// A Python HTTP component (Spin's Python SDK, built with componentize-py)
    HttpPython,
}

impl TemplateName {
    fn template(self) -> &'static Template {
        match self {
            TemplateName::OnnxModel => &templates::ONNX_MODEL,
            TemplateName::HttpRust => &templates::HTTP_RUST,
            TemplateName::ModelRust => &templates::MODEL_RUST,
            TemplateName::HttpPython => &templates::HTTP_PYTHON,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// What to add
    #[arg(value_enum)]
    pub template: TemplateName,
    /// The component's id (Spin's syntax: lower-case words of letters and digits joined by '-')
    pub name: String,
    /// The ONNX model file (onnx-model only)
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// The application's directory (its spin.toml is created when missing)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub app: PathBuf,
}

/// Everything one `fnhost new` writes, decided before anything is.
struct Plan {
    /// New files, relative paths resolved against the app directory.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// `spin.toml` (and the Cargo workspace manifest for Rust templates), whole.
    manifests: Vec<(PathBuf, String)>,
    /// What to tell the user afterwards.
    notes: Vec<String>,
}

pub fn run(args: NewArgs) -> Result<()> {
    let plan = plan(&args)?;
    let manifests = plan
        .manifests
        .into_iter()
        .map(|(path, text)| (path, text.into_bytes()));
    // The manifests last: a component is never listed before its files exist.
    for (path, bytes) in plan.files.into_iter().chain(manifests) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_atomically(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    for note in plan.notes {
        println!("{note}");
    }
    Ok(())
}

fn plan(args: &NewArgs) -> Result<Plan> {
    let id = ComponentId::new(&args.name).map_err(|e| anyhow!("{e}"))?;
    let name = id.as_str();
    let template = args.template.template();
    let app = &args.app;
    let manifest_path = app.join("spin.toml");
    let mut manifest = read_manifest(&manifest_path, app)?;
    if manifest
        .get("component")
        .and_then(Item::as_table_like)
        .is_some_and(|c| c.contains_key(name))
    {
        bail!(
            "component `{name}` already exists in {}; choose another name",
            manifest_path.display()
        );
    }

    let mut files = Vec::new();
    let mut notes = Vec::new();
    let mut source = String::new();
    let mut shared_routes = None;
    match (args.template, &args.model) {
        (TemplateName::OnnxModel, None) => {
            bail!("onnx-model needs the model file: --model FILE")
        }
        (TemplateName::OnnxModel, Some(model)) => {
            let (module, model_files) = onnx_model_files(name, model)?;
            source = module.0.clone();
            if !app.join(&module.0).is_file() {
                files.push((PathBuf::from(&module.0), module.1));
            }
            files.extend(model_files);
            shared_routes = Some(templates::ONNX_SHARED_ROUTES);
            notes.push(format!(
                "serve it: fnhost up --manifest {} → POST /v2/models/{name}/infer",
                manifest_path.display()
            ));
        }
        (_, Some(_)) => bail!("--model is for the onnx-model template only"),
        (_, None) => {}
    }
    let app_label = app_name(app);
    let values = Values {
        name,
        app: &app_label,
        source: &source,
    };
    for (rel, text) in template.files {
        files.push((
            PathBuf::from(templates::render(rel, &values)),
            templates::render(text, &values).into_bytes(),
        ));
    }
    let files: Vec<(PathBuf, Vec<u8>)> = files
        .into_iter()
        .map(|(rel, bytes)| (app.join(rel), bytes))
        .collect();
    for (path, _) in &files {
        if path.exists() {
            bail!(
                "{} already exists; `fnhost new` does not overwrite files",
                path.display()
            );
        }
    }

    // The manifest's triggers must be readable before anything is added to them.
    routes_of(&manifest)?;
    merge(
        &mut manifest,
        parse_fragment(&templates::render(template.component, &values))?,
    );
    if let Some(shared) = shared_routes {
        let mut shared = parse_fragment(&templates::render(shared, &values))?;
        let taken: Vec<String> = routes_of(&manifest)?.into_iter().map(|(r, _)| r).collect();
        if let Some(http) = shared
            .get_mut("trigger")
            .and_then(|t| t.get_mut("http"))
            .and_then(Item::as_array_of_tables_mut)
        {
            http.retain(|t| {
                t.get("route")
                    .and_then(Item::as_str)
                    .is_some_and(|r| !taken.iter().any(|x| x == r))
            });
            for t in http.iter() {
                if let Some(route) = t.get("route").and_then(Item::as_str) {
                    notes.push(format!("{route} → component {name}"));
                }
            }
        }
        merge(&mut manifest, shared);
    }
    Router::new(routes_of(&manifest)?).map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;

    let mut manifests = vec![(manifest_path, manifest.to_string())];
    if !template.crates.is_empty() {
        let cargo_path = app.join("Cargo.toml");
        let mut workspace = read_workspace(&cargo_path)?;
        let members = workspace["workspace"]["members"]
            .as_array_mut()
            .ok_or_else(|| {
                anyhow!(
                    "{}: `workspace.members` is not an array",
                    cargo_path.display()
                )
            })?;
        for rel in template.crates {
            members.push(templates::render(rel, &values));
        }
        manifests.push((cargo_path, workspace.to_string()));
    }
    if let Some(note) = template.build_note {
        notes.push(templates::render(note, &values));
    }
    Ok(Plan {
        files,
        manifests,
        notes,
    })
}

/// The application's name for a new manifest: its directory's name.
fn app_name(app: &Path) -> String {
    std::fs::canonicalize(app)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".to_owned())
}

/// `spin.toml` as a document, or the new-application template when there is none.
fn read_manifest(path: &Path, app: &Path) -> Result<DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => templates::render(
            templates::APP_MANIFEST,
            &Values {
                name: "",
                app: &app_name(app),
                source: "",
            },
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))
}

/// The app's Cargo workspace manifest, or a new one from the template.
fn read_workspace(path: &Path) -> Result<DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => templates::RUST_WORKSPACE.to_owned(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let doc: DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    if doc
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(Item::as_array)
        .is_none()
    {
        bail!(
            "{} has no [workspace] with a `members` array; a Rust component needs the app's Cargo workspace",
            path.display()
        );
    }
    Ok(doc)
}

fn parse_fragment(text: &str) -> Result<DocumentMut> {
    text.parse()
        .map_err(|e| anyhow!("a template of this fnhost is not valid TOML: {e}"))
}

/// A table written only through its subtables (`[component.a]`, never a bare `[component]`).
fn implicit_table() -> Item {
    let mut t = Table::new();
    t.set_implicit(true);
    Item::Table(t)
}

/// `[[trigger.http]]` of `doc`, created when missing.
fn trigger_array(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables> {
    let trigger = doc
        .entry("trigger")
        .or_insert_with(implicit_table)
        .as_table_mut()
        .ok_or_else(|| anyhow!("`trigger` is not a table"))?;
    trigger
        .entry("http")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| anyhow!("`trigger.http` is not an array of tables"))
}

/// Every `(route, component)` of `doc`'s `[[trigger.http]]`.
fn routes_of(doc: &DocumentMut) -> Result<Vec<(String, String)>> {
    let Some(http) = doc.get("trigger").and_then(|t| t.get("http")) else {
        return Ok(Vec::new());
    };
    let tables = http
        .as_array_of_tables()
        .ok_or_else(|| anyhow!("`trigger.http` is not an array of tables"))?;
    Ok(tables
        .iter()
        .filter_map(|t| {
            let route = t.get("route")?.as_str()?;
            let component = t.get("component").and_then(Item::as_str).unwrap_or("");
            Some((route.to_owned(), component.to_owned()))
        })
        .collect())
}

/// Appends the fragment's triggers and component tables to the manifest, comments included,
/// after everything the manifest has (toml_edit writes tables in the order of their positions).
fn merge(manifest: &mut DocumentMut, mut fragment: DocumentMut) {
    let mut next = last_position(manifest.as_table()) + 1;
    if let Some(http) = fragment
        .get_mut("trigger")
        .and_then(|t| t.get_mut("http"))
        .and_then(Item::as_array_of_tables_mut)
    {
        let triggers = trigger_array(manifest).expect("checked when the routes were read");
        for (i, t) in http.iter().enumerate() {
            let mut t = t.clone();
            if i == 0 {
                // A blank line between the manifest as it was and what is added.
                let prefix = t.decor().prefix().and_then(|p| p.as_str()).unwrap_or("");
                let prefix = format!("\n{prefix}");
                t.decor_mut().set_prefix(prefix);
            }
            t.set_position(next);
            next += 1;
            triggers.push(t);
        }
    }
    if let Some(Item::Table(components)) = fragment.remove("component") {
        let target = manifest
            .entry("component")
            .or_insert_with(implicit_table)
            .as_table_mut()
            .expect("`component` is a table in a Spin manifest");
        for (key, mut item) in components.into_iter() {
            if let Item::Table(t) = &mut item {
                place_after(t, &mut next);
            }
            target.insert(&key, item);
        }
    }
}

/// The highest document position of any table in `table` (0 for none).
fn last_position(table: &Table) -> usize {
    table
        .iter()
        .map(|(_, item)| match item {
            Item::Table(t) => t.position().unwrap_or(0).max(last_position(t)),
            Item::ArrayOfTables(a) => a
                .iter()
                .map(|t| t.position().unwrap_or(0).max(last_position(t)))
                .max()
                .unwrap_or(0),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// Gives `table` and its subtables consecutive positions from `next`, in their order.
fn place_after(table: &mut Table, next: &mut usize) {
    table.set_position(*next);
    *next += 1;
    for (_, item) in table.iter_mut() {
        if let Item::Table(t) = item {
            place_after(t, next);
        }
    }
}

/// The module written next to the manifest (`modules/onnx_model-<digest>.wasm`: content
/// addressed, so every model of the app shares one file and a newer fnhost's module never
/// replaces an older one under a component), and the model directory's two files.
#[allow(clippy::type_complexity)]
fn onnx_model_files(
    name: &str,
    model: &Path,
) -> Result<((String, Vec<u8>), Vec<(PathBuf, Vec<u8>)>)> {
    if ONNX_MODEL_WASM.is_empty() {
        bail!(
            "this fnhost was built without the generic model module; build it with `cargo xtask build` (which sets FNHOST_ONNX_MODEL_WASM)"
        );
    }
    let onnx = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let description = onnx_core::describe::describe(&onnx).map_err(|e| {
        anyhow!(
            "{} is not an ONNX model fnhost can serve: {e}",
            model.display()
        )
    })?;
    let metadata = description.metadata(&onnx, name, "1");
    let mut json = serde_json::to_vec_pretty(&metadata)?;
    json.push(b'\n');
    let digest = crate::spec::Sha256::of(ONNX_MODEL_WASM);
    let module = format!("modules/onnx_model-{}.wasm", &digest.hex()[..12]);
    let dir = PathBuf::from("models").join(name);
    Ok((
        (module, ONNX_MODEL_WASM.to_vec()),
        vec![
            (dir.join("model.onnx"), onnx),
            (dir.join("model.json"), json),
        ],
    ))
}
