//! `spin build` for fnhost's workflows: runs the `[component.NAME.build]` commands of a Spin
//! manifest (`command`, a string or a list run in order, in `workdir` or the manifest's
//! directory), as Spin does. `cargo xtask build` runs the repository's `spin.toml` this way, so
//! a component `fnhost new` added is built with the others; the scaffolding test builds its
//! temporary application the same way. The commands run with the environment the caller
//! adds, as Spin's run in the shell it was started from (a Python component's build needs the
//! SDK's virtual environment activated: `python::activated`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::cmd::run;

/// The part of a Spin manifest that says how to build components.
#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    component: BTreeMap<String, Component>,
}

#[derive(Deserialize)]
struct Component {
    build: Option<Build>,
}

#[derive(Deserialize)]
struct Build {
    command: Commands,
    workdir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Commands {
    One(String),
    Many(Vec<String>),
}

/// Runs every component's build commands (components in name order) with `env` added to the
/// environment; returns the names of the components built. Fails on the first command that
/// fails.
pub fn build_components(manifest: &Path, env: &[(OsString, OsString)]) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let parsed: Manifest =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut built = Vec::new();
    for (name, component) in parsed.component {
        let Some(build) = component.build else {
            continue;
        };
        let dir = build
            .workdir
            .map_or_else(|| base.to_path_buf(), |w| base.join(w));
        let commands = match build.command {
            Commands::One(c) => vec![c],
            Commands::Many(list) => list,
        };
        for command in commands {
            run(Command::new("sh")
                .arg("-c")
                .arg(&command)
                .current_dir(&dir)
                .envs(env.iter().map(|(k, v)| (k, v))))
            .with_context(|| format!("building component `{name}`"))?;
        }
        built.push(name);
    }
    Ok(built)
}
