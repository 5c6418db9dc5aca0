//! The import graph, checked from the sources: inside each crate of the workspace no two
//! top-level modules import each other, directly or around a circle; roost's middle is
//! layered (process <- containers <- supervisor <- control and boot), so the supervisor never
//! imports the control API (it emits events and takes commands; the control API listens and
//! asks); and no source file is over 600 lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: &[&str] = &[
    "src",
    "api-proxy/src",
    "broker/src",
    "platform/src",
    "control-protocol/src",
    "roostctl/src",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Binaries are crates of their own (they import the library by name).
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`supervise` for `supervise/reaper.rs`), or None for
/// the crate root.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).expect("under the root");
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The top-level modules a source text names through `crate::` (comments skipped).
fn referenced(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or("").trim())
                    .collect()
            } else {
                vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")]
            };
            for name in names {
                if modules.contains(name) {
                    found.insert(name.to_string());
                }
            }
        }
    }
    found
}

/// Module → the modules it imports, for one crate.
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(root, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(root, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read");
        let to = edges.entry(from.clone()).or_default();
        for target in referenced(&text, &modules) {
            if target != from {
                to.insert(target);
            }
        }
    }
    edges
}

/// A circle through the graph, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_module_circle_inside_any_crate() {
    for krate in CRATES {
        let edges = graph(&repo().join(krate));
        if let Some(cycle) = find_cycle(&edges) {
            panic!("{krate}: modules import each other: {}", cycle.join(" -> "));
        }
    }
}

/// The layers of roost's middle, lowest first: each may import the ones below it, never one
/// above. Process mechanics know no policy; containers build on processes; the supervisor
/// chooses a process or a container per service; the control API, the boot and the modes
/// that run it sit on top.
const LAYERS: &[&[&str]] = &[
    &["process", "snapshot"],
    &["containers"],
    &["supervisor"],
    &["control", "boot", "vm", "container_mode", "credentials"],
];

#[test]
fn no_layer_imports_one_above_it() {
    let edges = graph(&repo().join("src"));
    for (level, layer) in LAYERS.iter().enumerate() {
        let above: BTreeSet<&str> = LAYERS[level + 1..]
            .iter()
            .flat_map(|l| l.iter().copied())
            .collect();
        for module in *layer {
            let imports = edges
                .get(*module)
                .unwrap_or_else(|| panic!("no module {module}"));
            for target in imports {
                assert!(
                    !above.contains(target.as_str()),
                    "{module} imports {target}, a layer above it"
                );
            }
        }
    }
}

#[test]
fn the_control_api_reaches_the_supervisor_only_through_its_handle_and_events() {
    // What the control API may name of the supervisor: its handle (commands), its events,
    // and the watched task set it spawns its servers into. Nothing of the process layer.
    const ALLOWED: [&str; 3] = ["handle", "events", "critical"];
    let mut files = Vec::new();
    rust_files(&repo().join("src/control"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            assert!(
                !line.contains("crate::process"),
                "{} uses the process layer: {line}",
                file.display()
            );
            let mut rest = line;
            while let Some(at) = rest.find("crate::supervisor::") {
                rest = &rest[at + "crate::supervisor::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    ALLOWED.contains(&name.as_str()),
                    "{} uses supervisor::{name}: {line}",
                    file.display()
                );
            }
        }
    }
}

/// No source file of the crates (tests apart) is over this many lines: a file that grows past
/// it is doing more than one job.
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_is_over_600_lines() {
    let mut long = Vec::new();
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&repo().join(krate), &mut files);
        for file in files {
            let is_test = file.file_name().is_some_and(|n| n == "tests.rs")
                || file.components().any(|c| c.as_os_str() == "tests");
            if is_test {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read");
            // Unit tests at the end of a file are tests, not the file's job.
            let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap_or("");
            let lines = code.lines().count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_checker_finds_a_circle() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(find_cycle(&edges).is_some());
    let modules = BTreeSet::from(["a".to_string(), "b".to_string()]);
    assert_eq!(
        referenced("use crate::{a::X, b};\n// crate::c\n", &modules).len(),
        2
    );
}
