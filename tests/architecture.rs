//! The module graph, checked over the sources: the core (load → world →
//! stages → output → publish) never imports the tools (eval, tune, fit,
//! explain, generate) nor the command line, and `load/` reads tables
//! without reaching into the world it is derived into, the filters or the
//! stages.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The tools and the command line: they may call the core, never the
/// other way round.
const TOOLS: [&str; 6] = ["eval", "tune", "fit", "explain", "generate", "cli"];

/// What `load/` may import: the tables, and the plain building blocks
/// (`storage` fetches a table given as a URL).
const LOAD_MAY_USE: [&str; 9] = [
    "load", "error", "config", "ids", "time", "graph", "shard", "storage", "memory",
];

/// Every `.rs` file below `dir`, with its path relative to `src/`.
fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            out.push((rel, path));
        }
    }
}

/// The top-level modules a source names as `crate::<module>`, comments
/// left out.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !module.is_empty() {
                found.insert(module);
            }
        }
    }
    found
}

/// The top-level module a file belongs to (`src/load/x.rs` → `load`).
fn module_of(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first)
}

#[test]
fn the_import_scanner_sees_paths_and_skips_comments() {
    let text = "use crate::load::tables::{Part};\n// crate::eval in a comment\n\
                let x = crate::tune::grid(); // and crate::cli here";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["load", "tune"]);
    assert_eq!(module_of("load/tables.rs"), "load");
    assert_eq!(module_of("run.rs"), "run");
}

#[test]
fn the_core_never_imports_the_tools_and_load_only_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 30, "found only {} sources", files.len());
    let mut problems = Vec::new();
    for (rel, path) in &files {
        let module = module_of(rel);
        if TOOLS.contains(&module) || rel == "main.rs" || rel == "lib.rs" {
            continue;
        }
        let used = imports(&fs::read_to_string(path).unwrap());
        for tool in TOOLS.iter().filter(|t| used.contains(**t)) {
            problems.push(format!("{rel} (core) imports crate::{tool}"));
        }
        if module == "load" {
            for m in used.iter().filter(|m| !LOAD_MAY_USE.contains(&m.as_str())) {
                problems.push(format!("{rel} (load) imports crate::{m}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
