//! The module graph of the library points one way: every module belongs to one of the crates
//! the workspace is being split into (DESIGN.md, STYLE.md §1), and a module may use only its
//! own crate and the crates below it:
//!
//! ```text
//! model (contracts: serde types, formats)  <-  sys (exec, sysroot, kmod, capture, backup)
//!   ^                                            ^
//!   +-- server            mkimage (build side) --+-- restore (rescue side)
//! ```
//!
//! The model is already its own crate (`crates/rear-model`, re-exported at its old paths by
//! `src/lib.rs`), so the compiler keeps it free of the others; the rest still lives in `src/`.
//! The test reads the `crate::` and `super::` paths of every source file there (comments and
//! test modules left out), maps each to its crate by [`CRATE_OF`] (longest prefix) and fails on
//! an edge the table does not allow, on a cycle between the units of [`CRATE_OF`], and on a
//! module that [`CRATE_OF`] does not place. A new module gets a line there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path prefix -> the crate it belongs to.
const CRATE_OF: &[(&str, &str)] = &[
    ("archive", "mkimage"),
    ("atomic", "sys"),
    ("backup", "sys"),
    ("backup::config", "model"),
    ("backup::url", "model"),
    ("build", "mkimage"),
    ("closure", "mkimage"),
    ("config", "model"),
    ("exec", "sys"),
    ("fnmatch", "sys"),
    ("inventory", "mkimage"),
    ("kmod", "sys"),
    ("labels", "model"),
    ("layout", "sys"),
    ("layout::model", "model"),
    ("layout::plan", "restore"),
    ("logger", "sys"),
    ("mail", "model"),
    ("manifest", "model"),
    ("media", "mkimage"),
    ("mounts", "sys"),
    ("netconf", "model"),
    ("recipe", "model"),
    ("report", "model"),
    ("rescue", "model"),
    ("resolve", "mkimage"),
    ("restore", "restore"),
    ("send", "mkimage"),
    ("server", "server"),
    ("skeleton", "mkimage"),
    ("sysroot", "sys"),
    ("timefmt", "model"),
    ("units", "model"),
];

/// What each crate may use besides itself.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("sys", &["model"]),
    ("mkimage", &["model", "sys"]),
    ("restore", &["model", "sys"]),
    ("server", &["model"]),
];

/// The longest prefix of [`CRATE_OF`] that `module` is in or under, with its crate.
fn unit_of(module: &str) -> Option<(&'static str, &'static str)> {
    CRATE_OF
        .iter()
        .filter(|(prefix, _)| {
            module == *prefix
                || module
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .copied()
}

/// `src/a/b.rs` and `src/a/b/mod.rs` -> `a::b`.
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
fn modules_use_only_their_crate_and_the_crates_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
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
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut unplaced = Vec::new();
    let mut bad = Vec::new();
    let mut units: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        // The binaries and the crate root are the future crates' roots; testutil is test-only.
        if module == "lib" || module.starts_with("bin::") || module.starts_with("testutil") {
            continue;
        }
        let Some((unit, krate)) = unit_of(&module) else {
            unplaced.push(module);
            continue;
        };
        let text = code(&std::fs::read_to_string(file).unwrap());
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
            let Some((to_unit, to_crate)) = unit_of(&path) else {
                continue;
            };
            if to_crate != krate && !allowed[krate].contains(&to_crate) {
                bad.push(format!("{module} ({krate}) uses {path} ({to_crate})"));
            }
            if to_unit != unit
                && !to_unit.starts_with(&format!("{unit}::"))
                && !unit.starts_with(&format!("{to_unit}::"))
            {
                units.entry(unit).or_default().insert(to_unit);
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules without a line in CRATE_OF: {unplaced:?}"
    );
    bad.sort();
    bad.dedup();
    assert!(
        bad.is_empty(),
        "uses against the crate order:\n{}",
        bad.join("\n")
    );
    let cycles = cycles(&units);
    assert!(
        cycles.is_empty(),
        "modules that use each other in a circle: {cycles:?}"
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
        unit_of("layout::model::Layout"),
        Some(("layout::model", "model"))
    );
    assert_eq!(unit_of("layout::capture"), Some(("layout", "sys")));
    assert_eq!(unit_of("layoutx"), None);
    let g: BTreeMap<&str, BTreeSet<&str>> = [
        ("a", ["b"].into()),
        ("b", ["c"].into()),
        ("c", ["a"].into()),
        ("d", ["a"].into()),
    ]
    .into();
    assert_eq!(cycles(&g), [vec!["a", "b", "c"]]);
}
