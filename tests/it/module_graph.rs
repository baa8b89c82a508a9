//! The crate graph of the workspace points one way, and so does the module graph inside each
//! crate (DESIGN.md, STYLE.md §1):
//!
//! ```text
//! rear-model (contracts: serde types, formats)  <-  rear-sys (exec, sysroot, kmod, capture, backup)
//!   ^                                                 ^
//!   +-- rear-server        rear-mkimage (build side) --+-- rear-restore (rescue side)
//! ```
//!
//! Cargo refuses a cycle between crates; this test also holds the crates to that order: a
//! crate's `Cargo.toml` may depend on, and its code may name (`rear_*::`), only the crates
//! [`ALLOWED`] lists for it. Inside a crate it reads the `crate::` and `super::` paths of every
//! source file (comments and test modules left out), maps each to the top-level module it is
//! in, and fails on a cycle between top-level modules. The crates' own dependency trees (no
//! tokio in rear-restore, no liblzma in rear-server) are checked by `make crate-deps`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each crate may depend on and use besides itself.
const ALLOWED: &[(&str, &[&str])] = &[
    ("rear-model", &[]),
    ("rear-sys", &["rear-model"]),
    ("rear-mkimage", &["rear-model", "rear-sys"]),
    ("rear-restore", &["rear-model", "rear-sys"]),
    ("rear-server", &["rear-model"]),
    ("rear-testutil", &["rear-model"]),
];

/// The workspace's `crates/` directory.
fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates")
}

/// The `.rs` files below `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The `rear-*` packages a crate's `Cargo.toml` names in `[dependencies]`.
fn rear_dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && line.starts_with("rear-") {
            out.push(line.split([' ', '=']).next().unwrap().to_string());
        }
    }
    out
}

/// `<crate>/src/a/b.rs` and `<crate>/src/a/b/mod.rs` -> `a::b`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comment lines and without its `#[cfg(test)] mod tests`.
fn code(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths named after each `anchor` (`crate::`, `super::`) in `code`: `a::b::C`
/// as `a::b::C`, and `a::{b, c::d}` expanded.
fn paths_after(code: &str, anchor: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(anchor) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + anchor.len()..];
        if before.is_some_and(ident_char) {
            continue;
        }
        let (found, after) = path_tree(rest);
        out.extend(found);
        rest = after;
    }
    out
}

/// Parses `a::b::{c, d::e}` at the start of `s`: the expanded paths and the text after.
fn path_tree(s: &str) -> (Vec<String>, &str) {
    let mut prefix = String::new();
    let mut s = s;
    loop {
        let n = s.find(|c: char| !ident_char(c)).unwrap_or(s.len());
        prefix.push_str(&s[..n]);
        s = &s[n..];
        if let Some(r) = s.strip_prefix("::{") {
            // A group: split at top-level commas.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in r.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            let inner = &r[..end];
            let mut out = Vec::new();
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let item = inner[start..i].trim();
                        start = i + 1;
                        if item.is_empty() || item == "self" {
                            out.push(prefix.clone());
                            continue;
                        }
                        let (sub, _) = path_tree(item);
                        out.extend(sub.into_iter().map(|p| format!("{prefix}::{p}")));
                    }
                    _ => {}
                }
            }
            return (out, &r[end + 1..]);
        }
        match s.strip_prefix("::") {
            Some(r) if r.starts_with(|c: char| ident_char(c) || c == '{') => {
                prefix.push_str("::");
                s = r;
            }
            _ => return (vec![prefix], s),
        }
    }
}

#[test]
fn crates_and_modules_point_one_way() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut names: Vec<String> = std::fs::read_dir(crates_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut bad = Vec::new();
    let mut all_cycles = Vec::new();
    for name in &names {
        let dir = crates_dir().join(name);
        let Some(&may) = allowed.get(name.as_str()) else {
            bad.push(format!("crate {name} has no line in ALLOWED"));
            continue;
        };
        for dep in rear_dependencies(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()) {
            if !may.contains(&dep.as_str()) {
                bad.push(format!("{name}/Cargo.toml depends on {dep}"));
            }
        }
        let src = dir.join("src");
        let mut units: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in rust_files(&src) {
            let module = module_of(&src, &file);
            // Test-only helpers (`#[cfg(test)] mod testutil`) may use the dev-dependencies.
            if module.starts_with("testutil") {
                continue;
            }
            let text = code(&std::fs::read_to_string(&file).unwrap());
            for path in paths_after(&text, "rear_") {
                let krate = format!("rear-{}", path.split("::").next().unwrap());
                // `rear_` also starts plain names (`rear_version`); only crate paths count.
                if !path.contains("::") || !allowed.contains_key(krate.as_str()) {
                    continue;
                }
                if krate != *name && !may.contains(&krate.as_str()) {
                    bad.push(format!("{name}::{module} uses rear_{path}"));
                }
            }
            // The crate roots are no stage of their own.
            if matches!(module.as_str(), "lib" | "main") {
                continue;
            }
            let unit = module.split("::").next().unwrap().to_string();
            let parent = module.rsplit_once("::").map_or("", |(p, _)| p).to_string();
            let mut used = paths_after(&text, "crate::");
            used.extend(
                paths_after(&text, "super::")
                    .into_iter()
                    .filter(|p| !p.is_empty() && p != "*")
                    .map(|p| {
                        format!("{parent}::{p}")
                            .trim_start_matches("::")
                            .to_string()
                    }),
            );
            for path in used {
                let to = path.split("::").next().unwrap().to_string();
                // Only modules of the crate: items at its root (a macro, a re-export) are not.
                let is_module = src.join(format!("{to}.rs")).is_file() || src.join(&to).is_dir();
                if to != unit && is_module {
                    units.entry(unit.clone()).or_default().insert(to);
                }
            }
        }
        let graph: BTreeMap<&str, BTreeSet<&str>> = units
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        for c in cycles(&graph) {
            all_cycles.push(format!("{name}: {}", c.join(" <-> ")));
        }
    }
    bad.sort();
    bad.dedup();
    assert!(
        bad.is_empty(),
        "uses against the crate order:\n{}",
        bad.join("\n")
    );
    assert!(
        all_cycles.is_empty(),
        "modules that use each other in a circle:\n{}",
        all_cycles.join("\n")
    );
}

/// The strongly connected components of more than one unit (Tarjan).
fn cycles<'a>(g: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for &w in g.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for &v in g.keys() {
        if !s.index.contains_key(v) {
            visit(v, g, &mut s);
        }
    }
    s.out
}

#[test]
fn path_tree_expands_groups() {
    let (p, rest) = path_tree("a::{b, c::{d, e as f}, self};\nfn x");
    assert_eq!(p, ["a::b", "a::c::d", "a::c::e", "a"]);
    assert_eq!(rest, ";\nfn x");
    let (p, _) = path_tree("layout::model::MOUNT_ROOT)");
    assert_eq!(p, ["layout::model::MOUNT_ROOT"]);
    assert_eq!(
        paths_after("use rear_sys::{exec, layout::Layout};", "rear_"),
        ["sys::exec", "sys::layout::Layout"]
    );
    assert_eq!(
        rear_dependencies(
            "[dependencies]\nrear-model = { path = \"x\" }\nlog = \"1\"\n[dev-dependencies]\nrear-testutil = {}\n"
        ),
        ["rear-model"]
    );
    let g: BTreeMap<&str, BTreeSet<&str>> = [
        ("a", ["b"].into()),
        ("b", ["c"].into()),
        ("c", ["a"].into()),
        ("d", ["a"].into()),
    ]
    .into();
    assert_eq!(cycles(&g), [vec!["a", "b", "c"]]);
}
