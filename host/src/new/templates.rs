//! The templates of `fnhost new`, compiled into the binary from the repository's `templates/`
//! directory (so a released `fnhost` scaffolds without the repository), and their one
//! parameter rule: `{{name}}` is the component id, `{{crate}}` the id with `-` as `_`,
//! `{{app}}` the application's name, `{{source}}` the module path.

/// The manifest of a new application.
pub const APP_MANIFEST: &str = include_str!("../../../templates/app/spin.toml");
/// The Cargo workspace of a new application's Rust components.
pub const RUST_WORKSPACE: &str = include_str!("../../../templates/rust-workspace/Cargo.toml");
/// Routes every ONNX model of an application shares, added with the first one.
pub const ONNX_SHARED_ROUTES: &str =
    include_str!("../../../templates/onnx-model/shared-routes.toml");

/// One template: the manifest fragment (routes and component) and the files it writes, each
/// with its path relative to the application directory.
pub struct Template {
    pub component: &'static str,
    pub files: &'static [(&'static str, &'static str)],
    /// Directories (relative, with template parameters) that are Cargo packages to add to the workspace.
    pub crates: &'static [&'static str],
    /// How to build what was written (with template parameters), told after writing it.
    pub build_note: Option<&'static str>,
}

/// How the Rust templates' components are built.
const CARGO_BUILD_NOTE: &str = "build it: cargo build --release --target wasm32-wasip2 -p {{name}} (or `cargo xtask build` in the fnhost repository)";

pub const ONNX_MODEL: Template = Template {
    component: include_str!("../../../templates/onnx-model/component.toml"),
    files: &[],
    crates: &[],
    build_note: None,
};

pub const HTTP_RUST: Template = Template {
    component: include_str!("../../../templates/http-rust/component.toml"),
    files: &[
        (
            "functions/{{name}}/Cargo.toml",
            include_str!("../../../templates/http-rust/Cargo.toml"),
        ),
        (
            "functions/{{name}}/src/lib.rs",
            include_str!("../../../templates/http-rust/src/lib.rs"),
        ),
    ],
    crates: &["functions/{{name}}"],
    build_note: Some(CARGO_BUILD_NOTE),
};

pub const MODEL_RUST: Template = Template {
    component: include_str!("../../../templates/model-rust/component.toml"),
    files: &[
        (
            "functions/{{name}}/core/Cargo.toml",
            include_str!("../../../templates/model-rust/core/Cargo.toml"),
        ),
        (
            "functions/{{name}}/core/src/lib.rs",
            include_str!("../../../templates/model-rust/core/src/lib.rs"),
        ),
        (
            "functions/{{name}}/component/Cargo.toml",
            include_str!("../../../templates/model-rust/component/Cargo.toml"),
        ),
        (
            "functions/{{name}}/component/src/lib.rs",
            include_str!("../../../templates/model-rust/component/src/lib.rs"),
        ),
        (
            "models/{{name}}/model.json",
            include_str!("../../../templates/model-rust/model/model.json"),
        ),
    ],
    crates: &["functions/{{name}}/core", "functions/{{name}}/component"],
    build_note: Some(CARGO_BUILD_NOTE),
};

/// A Python component in `NAME/`, as Spin's `http-py` template adds one to an application: its
/// build command runs componentize-py in that directory, in the SDK's activated venv.
pub const HTTP_PYTHON: Template = Template {
    component: include_str!("../../../templates/http-python/component.toml"),
    files: &[
        (
            "{{name}}/app.py",
            include_str!("../../../templates/http-python/app.py"),
        ),
        (
            "{{name}}/requirements.txt",
            include_str!("../../../templates/http-python/requirements.txt"),
        ),
    ],
    crates: &[],
    build_note: Some(
        "build it in the application's directory, in a virtual environment with Spin's Python SDK: \
         python3 -m venv .venv && . .venv/bin/activate && pip install -r {{name}}/requirements.txt, \
         then run the build command of spin.toml (`spin build`, or `cargo xtask build` in the fnhost repository)",
    ),
};

/// The values of the template parameters.
pub struct Values<'a> {
    pub name: &'a str,
    pub app: &'a str,
    pub source: &'a str,
}

/// `text` with every template parameter replaced.
pub fn render(text: &str, v: &Values) -> String {
    text.replace("{{name}}", v.name)
        .replace("{{crate}}", &v.name.replace('-', "_"))
        .replace("{{app}}", v.app)
        .replace("{{source}}", v.source)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn files_under(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                out.insert(path);
            }
        }
    }

    /// Every file of `templates/` (but its README) is compiled in: a template file added to the
    /// directory but not to this module would silently be missing from the binary.
    #[test]
    fn every_template_file_is_compiled_in() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        let mut on_disk = BTreeSet::new();
        files_under(&root, &mut on_disk);
        on_disk.remove(&root.join("README.md"));
        let contents: Vec<&str> = [APP_MANIFEST, RUST_WORKSPACE, ONNX_SHARED_ROUTES]
            .into_iter()
            .chain(
                [ONNX_MODEL, HTTP_RUST, MODEL_RUST, HTTP_PYTHON]
                    .iter()
                    .flat_map(|t| std::iter::once(t.component).chain(t.files.iter().map(|f| f.1))),
            )
            .collect();
        for file in &on_disk {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                contents.contains(&text.as_str()),
                "{} is not compiled into fnhost (host/src/new/templates.rs)",
                file.display()
            );
        }
        assert_eq!(contents.len(), on_disk.len(), "a template is listed twice");
    }

    #[test]
    fn template_parameters_are_replaced() {
        let v = Values {
            name: "my-model",
            app: "shop",
            source: "m.wasm",
        };
        assert_eq!(
            render("{{name}} {{crate}} {{app}} {{source}}", &v),
            "my-model my_model shop m.wasm"
        );
    }
}
