//! The server crate's dependency order (ARCHITECTURE.md, "Layers"): every top-level module of
//! `src/` sits in one layer and uses only modules of lower layers, or of its own layer without
//! a cycle. Read from the source itself: each `crate::…` path (and `super::…` that leaves its
//! top-level module) outside comments is a use.

#![allow(
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first. A new top-level module must be placed here before the test passes.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "problem",
            "config",
            "health",
            "cursor",
            "client_ip",
            "system",
            "lifecycle",
        ],
    ),
    (
        "infrastructure",
        &["database", "redis_store", "replicas", "tls", "telemetry"],
    ),
    (
        "services",
        &[
            "reads",
            "cache",
            "rate_limit",
            "revocation",
            "relay",
            "auth",
            "ai",
            "readiness",
            "live",
            "admission",
            "retention",
            "mute_expiry",
        ],
    ),
    (
        "http",
        &["request_context", "middleware", "upgrade", "routes"],
    ),
    ("startup", &["startup", "admin_cli"]),
];

/// Files that are not modules of the library (the binary, the root).
const ROOTS: &[&str] = &["lib.rs", "main.rs"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its module path relative to `src/`.
fn modules(dir: &Path, path: &[String], out: &mut Vec<(Vec<String>, PathBuf)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file names are UTF-8")
            .to_owned();
        if entry.is_dir() {
            let mut inner = path.to_vec();
            inner.push(name);
            modules(&entry, &inner, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if path.is_empty() && ROOTS.contains(&name.as_str()) {
                continue;
            }
            let mut module = path.to_vec();
            if stem != "mod" {
                module.push(stem.to_owned());
            }
            out.push((module, entry));
        }
    }
}

/// The source without comments (doc links do not make a dependency).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal (a URL) keeps the line.
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifiers right after each `prefix` in `code`, expanding one `{a, b::c}` group.
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(is_ident) {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| is_ident(*c)).collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// Which top-level modules `code`, in module `path`, uses (besides its own).
fn uses(path: &[String], code: &str) -> BTreeSet<String> {
    let own = &path[0];
    let mut found: BTreeSet<String> = names_after(code, "crate::").into_iter().collect();
    // `super::` from depth d climbs one level per `super`; reaching the root names a module.
    let depth = path.len();
    let climb = "super::".repeat(depth);
    if depth > 0 {
        found.extend(names_after(code, &climb));
    }
    found.remove(own);
    found
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&module))
}

/// The dependency graph between top-level modules, with a file that shows each edge.
fn graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let mut files = Vec::new();
    modules(&src(), &[], &mut files);
    let tops: BTreeSet<String> = files.iter().map(|(path, _)| path[0].clone()).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for (path, file) in files {
        let text = fs::read_to_string(&file).expect("a source file is readable");
        let edges = graph.entry(path[0].clone()).or_default();
        for used in uses(&path, &code_of(&text)) {
            if tops.contains(&used) {
                edges.entry(used).or_insert_with(|| file.clone());
            }
        }
    }
    graph
}

/// Each cycle (strongly connected set of more than one module), by Tarjan's algorithm.
fn cycles(graph: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, PathBuf>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let at = self.index.len();
            self.index.insert(node, at);
            self.low.insert(node, at);
            self.stack.push(node);
            let graph = self.graph;
            for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    component.push(member.to_owned());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

#[test]
fn every_top_level_module_has_a_layer() {
    let unplaced: Vec<String> = graph()
        .into_keys()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "place these modules in a layer (tests/layers.rs and ARCHITECTURE.md): {unplaced:?}"
    );
}

#[test]
fn no_module_uses_a_higher_layer() {
    let mut upward = Vec::new();
    for (from, edges) in graph() {
        let Some(own) = layer_of(&from) else { continue };
        for (to, file) in edges {
            if layer_of(&to).is_some_and(|theirs| theirs > own) {
                upward.push(format!(
                    "{from} ({}) uses {to} ({}) in {}",
                    LAYERS[own].0,
                    LAYERS[layer_of(&to).unwrap_or(own)].0,
                    file.display()
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "uses against the layer order:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_cycles_between_top_level_modules() {
    let graph = graph();
    let found = cycles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|members| {
            let edges: Vec<String> = members
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|(to, _)| members.contains(to))
                        .map(move |(to, file)| format!("  {from} -> {to} ({})", file.display()))
                })
                .collect();
            format!("{members:?}:\n{}", edges.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "module cycles:\n{}", described.join("\n"));
}

#[test]
fn the_reader_sees_the_uses_it_must() {
    // The parser itself: a grouped use, a plain path, a `super` that leaves the module, and
    // a comment that must not count.
    let code = code_of(
        "use crate::{alpha, beta::Thing};\nlet x = crate::gamma::f();\n\
         use super::super::delta;\n// crate::omega in a comment\nuse super::sibling;",
    );
    let found = uses(&["own".to_owned(), "inner".to_owned()], &code);
    let expected: BTreeSet<String> = ["alpha", "beta", "gamma", "delta"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, expected);
    let mut graph = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(from.to_owned())
            .or_insert_with(BTreeMap::new)
            .insert(to.to_owned(), PathBuf::new());
    }
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}
