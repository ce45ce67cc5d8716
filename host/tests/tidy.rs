//! Keeps ARCHITECTURE.md's codemap true (rust-analyzer's "tidy" habit): every module of
//! `host/src/` has a row in the table, every row names a module that exists, and the "may use"
//! column lists exactly the other modules the code reaches through `crate::` paths — an arrow
//! the table does not allow fails, and so does an allowed arrow the code no longer has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `spec.rs` → `spec`, `engine/guest.rs` → `engine`, `main.rs` → `main`.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module → the other modules its code names as `crate::<module>`.
fn arrows_in_code() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut arrows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&file);
        let entry = arrows.entry(module.clone()).or_default();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            // `crate::x` or `crate::{x, y}` — the names directly after `crate::`.
            let rest = &text[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap()];
                group
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap().trim())
                    .collect()
            } else {
                vec![rest
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap()]
            };
            for name in names.into_iter().filter(|n| !n.is_empty()) {
                if name != module && name != "self" {
                    entry.insert(name.to_string());
                }
            }
        }
    }
    arrows.remove("lib");
    arrows
}

/// Module → the modules the table's "may use" column allows.
fn arrows_in_table() -> BTreeMap<String, BTreeSet<String>> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md at the workspace root");
    let section = doc
        .split("## Modules of `host/src/`")
        .nth(1)
        .expect("a \"Modules of `host/src/`\" section");
    let mut table = BTreeMap::new();
    for line in section
        .lines()
        .skip_while(|l| !l.starts_with("| module"))
        .skip(2)
    {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 3, "a table row has three cells: {line}");
        let module = cells[0]
            .trim_matches('`')
            .trim_end_matches('/')
            .trim_end_matches(".rs")
            .to_string();
        let allowed: BTreeSet<String> = cells[2]
            .split(',')
            .map(str::trim)
            .filter(|c| c.starts_with('`'))
            .map(|c| c.trim_matches('`').to_string())
            .collect();
        table.insert(module, allowed);
    }
    table
}

#[test]
fn the_codemap_matches_the_code() {
    let code = arrows_in_code();
    let table = arrows_in_table();
    let mut problems = Vec::new();
    for module in code.keys() {
        if !table.contains_key(module) {
            problems.push(format!("module `{module}` has no row in ARCHITECTURE.md"));
        }
    }
    for module in table.keys() {
        if !code.contains_key(module) {
            problems.push(format!(
                "ARCHITECTURE.md lists `{module}`, which does not exist"
            ));
        }
    }
    for (module, uses) in &code {
        let Some(allowed) = table.get(module) else {
            continue;
        };
        if module == "main" {
            // The binary uses the library through `fnhost::`, not `crate::`.
            continue;
        }
        for used in uses.difference(allowed) {
            problems.push(format!(
                "`{module}` uses `{used}`, which ARCHITECTURE.md does not allow"
            ));
        }
        for unused in allowed.difference(uses) {
            problems.push(format!(
                "ARCHITECTURE.md says `{module}` may use `{unused}`, but it does not: update the table"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_module_says_what_it_owns() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "no `//!` paragraph: {missing:?}");
}
