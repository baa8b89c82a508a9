//! [`ModuleIndex`]: depmod's text files of one kernel, parsed, with lookups and load order.
//!
//! Formats (as `depmod` writes them into `/lib/modules/<kver>/`; paths are relative to that
//! directory unless absolute):
//!
//! - `modules.dep`: `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko ...`,
//!   one line per module with *all* its dependencies, users before what they use, so
//!   modprobe loads them from right to left.
//! - `modules.alias`: `alias <pattern> <module>`; `#` starts a comment.
//! - `modules.softdep`: `softdep <module> [pre: <names>...] [post: <names>...]`; names are
//!   modules or aliases; words before any `pre:`/`post:` are ignored, as kmod does.
//! - `modules.builtin`, `modules.order`: one module path per line.
//! - `modules.symbols`: `alias symbol:<name> <module>`.
//! - `modules.builtin.modinfo`: NUL-separated `<module>.<key>=<value>` of built-in modules.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{Error, modname_from_path, normalize_alias, normalize_name};
use crate::fnmatch::{fnmatch, literal_prefix};

/// The texts of depmod's files of one kernel; absent files are empty.
#[derive(Debug, Clone, Default)]
pub struct IndexFiles {
    /// `modules.dep` (required to be meaningful).
    pub dep: String,
    /// `modules.alias`.
    pub alias: String,
    /// `modules.softdep`.
    pub softdep: String,
    /// `modules.builtin`.
    pub builtin: String,
    /// `modules.order`.
    pub order: String,
    /// `modules.symbols`.
    pub symbols: String,
    /// `modules.builtin.modinfo` (binary: NUL-separated entries).
    pub builtin_modinfo: Vec<u8>,
}

impl IndexFiles {
    /// File name of the dependency list.
    pub const DEP: &'static str = "modules.dep";
    /// File name of the alias list.
    pub const ALIAS: &'static str = "modules.alias";
    /// File name of the soft dependency list.
    pub const SOFTDEP: &'static str = "modules.softdep";
    /// File name of the built-in module list.
    pub const BUILTIN: &'static str = "modules.builtin";
    /// File name of the link order list.
    pub const ORDER: &'static str = "modules.order";
    /// File name of the symbol list.
    pub const SYMBOLS: &'static str = "modules.symbols";
    /// File name of the built-in modules' modinfo.
    pub const BUILTIN_MODINFO: &'static str = "modules.builtin.modinfo";

    /// Reads the files from a directory (`/lib/modules/<kver>` of the running system, as the
    /// rescue system does). `modules.dep` must exist; the others may be absent.
    pub fn read_dir(dir: &Path) -> Result<Self, Error> {
        let text = |name: &str, required: bool| -> Result<String, Error> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(t) => Ok(t),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(source) => Err(Error::Io { path, source }),
            }
        };
        let modinfo_path = dir.join(Self::BUILTIN_MODINFO);
        let builtin_modinfo = match std::fs::read(&modinfo_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(Error::Io {
                    path: modinfo_path,
                    source,
                });
            }
        };
        Ok(IndexFiles {
            dep: text(Self::DEP, true)?,
            alias: text(Self::ALIAS, false)?,
            softdep: text(Self::SOFTDEP, false)?,
            builtin: text(Self::BUILTIN, false)?,
            order: text(Self::ORDER, false)?,
            symbols: text(Self::SYMBOLS, false)?,
            builtin_modinfo,
        })
    }
}

/// One loadable module of `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Normalised name (`crc32c_intel`).
    pub name: String,
    /// Path as `modules.dep` gives it, relative to the kernel's module directory
    /// (`kernel/arch/x86/crypto/crc32c-intel.ko.xz`).
    pub path: String,
    /// All dependencies (ids into the index), in `modules.dep` order: users before providers.
    pub(super) deps: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(super) struct AliasEntry {
    /// As written in `modules.alias`.
    pub(super) pattern: String,
    /// kmod's form (see [`normalize_alias`]) when it differs from `pattern`.
    normalized: Option<String>,
    /// False for a pattern with an unmatched bracket, which depmod leaves out.
    valid: bool,
    /// Normalised module name.
    pub(super) module: String,
}

impl AliasEntry {
    fn new(pattern: &str, module: String) -> Self {
        let (normalized, valid) = if pattern.contains(['-', '[', ']']) {
            match normalize_alias(pattern) {
                Some(n) if n == pattern => (None, true),
                Some(n) => (Some(n), true),
                None => (None, false),
            }
        } else {
            (None, true)
        };
        AliasEntry {
            pattern: pattern.to_string(),
            normalized,
            valid,
            module,
        }
    }

    /// The pattern as kmod stores and matches it; `None` if depmod would skip it.
    pub(super) fn key(&self) -> Option<&str> {
        self.valid
            .then(|| self.normalized.as_deref().unwrap_or(&self.pattern))
    }
}

#[derive(Debug, Clone)]
pub(super) struct SoftdepLine {
    /// Normalised name of the module the line is about.
    pub(super) module: String,
    /// The rest of the line after the module name, as written.
    pub(super) rest: String,
    pub(super) pre: Vec<String>,
    pub(super) post: Vec<String>,
}

/// Alias patterns sorted by their literal prefix (the part before the first wildcard), so a
/// lookup tries only the patterns whose fixed start is a prefix of the modalias: one binary
/// search per distinct prefix length, no allocation.
#[derive(Debug, Clone, Default)]
struct AliasTable {
    /// (entry id, literal prefix length), sorted by prefix.
    sorted: Vec<(u32, u32)>,
    /// Distinct prefix lengths, ascending.
    lengths: Vec<usize>,
}

fn prefix_of(entries: &[AliasEntry], (id, len): (u32, u32)) -> &str {
    let key = entries[id as usize].key().unwrap_or("");
    key.get(..len as usize).unwrap_or(key)
}

impl AliasTable {
    fn build(entries: &[AliasEntry]) -> Self {
        let mut sorted: Vec<(u32, u32)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i as u32, literal_prefix(e.key()?).len() as u32)))
            .collect();
        sorted.sort_unstable_by(|&a, &b| {
            prefix_of(entries, a)
                .cmp(prefix_of(entries, b))
                .then(a.0.cmp(&b.0))
        });
        let mut lengths: Vec<usize> = sorted.iter().map(|&(_, l)| l as usize).collect();
        lengths.sort_unstable();
        lengths.dedup();
        AliasTable { sorted, lengths }
    }

    /// Calls `hit` with the entry ids whose pattern matches the normalised `key`.
    fn matches(&self, entries: &[AliasEntry], key: &str, mut hit: impl FnMut(usize)) {
        for &len in &self.lengths {
            if len > key.len() {
                break;
            }
            let Some(prefix) = key.get(..len) else {
                continue;
            };
            let from = self
                .sorted
                .partition_point(|&e| prefix_of(entries, e) < prefix);
            for &e in &self.sorted[from..] {
                if prefix_of(entries, e) != prefix {
                    break;
                }
                if let Some(p) = entries[e.0 as usize].key()
                    && fnmatch(p, key)
                {
                    hit(e.0 as usize);
                }
            }
        }
    }
}

/// What a name given to modprobe stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Loadable modules: the module of that name, or all modules with a matching alias.
    Modules(Vec<&'a str>),
    /// A module built into the kernel (by name or by a built-in alias): nothing to load.
    Builtin(String),
    /// Neither a module, nor an alias, nor built in.
    NotFound,
}

/// depmod's view of one kernel's modules.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    pub(super) modules: Vec<Module>,
    by_name: HashMap<String, usize>,
    /// Lines of `modules.builtin`, as written.
    pub(super) builtin_paths: Vec<String>,
    builtin: HashSet<String>,
    pub(super) aliases: Vec<AliasEntry>,
    table: AliasTable,
    pub(super) softdeps: Vec<SoftdepLine>,
    pub(super) softdeps_of: HashMap<String, Vec<usize>>,
    /// Lines of `modules.order`, as written.
    pub(super) order: Vec<String>,
    /// (`symbol:<name>`, module) from `modules.symbols`.
    pub(super) symbols: Vec<(String, String)>,
    pub(super) builtin_modinfo: Vec<u8>,
    /// (alias as written, module) of built-in modules, from `modules.builtin.modinfo`.
    pub(super) builtin_aliases: Vec<(String, String)>,
    builtin_table: AliasTable,
    builtin_alias_entries: Vec<AliasEntry>,
}

fn parse_error(dir: &Path, file: &str, line: usize, reason: impl Into<String>) -> Error {
    Error::Parse {
        file: dir.join(file),
        line,
        reason: reason.into(),
    }
}

/// Lines with their 1-based numbers, without blank lines and `#` comments.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

impl ModuleIndex {
    /// Parses depmod's files. `dir` is where they came from (`/lib/modules/<kver>`); errors
    /// name `dir/<file>` and the line.
    pub fn parse(dir: &Path, files: &IndexFiles) -> Result<Self, Error> {
        let mut ix = ModuleIndex::default();
        ix.parse_dep(dir, &files.dep)?;
        ix.parse_alias(dir, &files.alias)?;
        ix.parse_softdep(dir, &files.softdep)?;
        for (_, line) in content_lines(&files.builtin) {
            ix.builtin.insert(modname_from_path(line));
            ix.builtin_paths.push(line.to_string());
        }
        ix.order = content_lines(&files.order)
            .map(|(_, l)| l.to_string())
            .collect();
        ix.parse_symbols(dir, &files.symbols)?;
        ix.parse_builtin_modinfo(dir, &files.builtin_modinfo)?;
        Ok(ix)
    }

    /// Reads and parses the files of a module directory with `std::fs` (the rescue system).
    pub fn load_dir(dir: &Path) -> Result<Self, Error> {
        Self::parse(dir, &IndexFiles::read_dir(dir)?)
    }

    fn parse_dep(&mut self, dir: &Path, text: &str) -> Result<(), Error> {
        let file = IndexFiles::DEP;
        let mut pending: Vec<(usize, Vec<&str>)> = Vec::new();
        for (n, line) in content_lines(text) {
            let Some((path, deps)) = line.split_once(':') else {
                return Err(parse_error(
                    dir,
                    file,
                    n,
                    "expected '<module path>: <deps>'",
                ));
            };
            let path = path.trim();
            if path.is_empty() || path.contains(char::is_whitespace) {
                return Err(parse_error(
                    dir,
                    file,
                    n,
                    format!("bad module path {path:?}"),
                ));
            }
            let name = modname_from_path(path);
            if self.by_name.contains_key(&name) {
                return Err(parse_error(
                    dir,
                    file,
                    n,
                    format!("module {name} listed twice"),
                ));
            }
            self.by_name.insert(name.clone(), self.modules.len());
            self.modules.push(Module {
                name,
                path: path.to_string(),
                deps: Vec::new(),
            });
            pending.push((n, deps.split_whitespace().collect()));
        }
        let by_path: HashMap<&str, usize> = self
            .modules
            .iter()
            .enumerate()
            .map(|(i, m)| (m.path.as_str(), i))
            .collect();
        let mut resolved = Vec::with_capacity(pending.len());
        for (n, deps) in &pending {
            let mut ids = Vec::with_capacity(deps.len());
            for d in deps {
                // depmod writes paths; accept a bare name too.
                let id = by_path
                    .get(d)
                    .or_else(|| self.by_name.get(&modname_from_path(d)))
                    .copied();
                match id {
                    Some(id) => ids.push(id),
                    None => {
                        return Err(parse_error(
                            dir,
                            file,
                            *n,
                            format!("dependency {d} has no line of its own"),
                        ));
                    }
                }
            }
            resolved.push(ids);
        }
        for (m, ids) in self.modules.iter_mut().zip(resolved) {
            m.deps = ids;
        }
        Ok(())
    }

    fn parse_alias(&mut self, dir: &Path, text: &str) -> Result<(), Error> {
        for (n, line) in content_lines(text) {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("alias"), Some(pattern), Some(module), None) => {
                    self.aliases
                        .push(AliasEntry::new(pattern, normalize_name(module)));
                }
                _ => {
                    return Err(parse_error(
                        dir,
                        IndexFiles::ALIAS,
                        n,
                        "expected 'alias <pattern> <module>'",
                    ));
                }
            }
        }
        self.table = AliasTable::build(&self.aliases);
        Ok(())
    }

    fn parse_softdep(&mut self, dir: &Path, text: &str) -> Result<(), Error> {
        for (n, line) in content_lines(text) {
            let mut words = line.split_whitespace();
            let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
                return Err(parse_error(
                    dir,
                    IndexFiles::SOFTDEP,
                    n,
                    "expected 'softdep <module> [pre: ...] [post: ...]'",
                ));
            };
            let module = normalize_name(module);
            let rest = words.clone().collect::<Vec<_>>().join(" ");
            let (mut pre, mut post) = (Vec::new(), Vec::new());
            let mut mode = 0u8;
            for w in words {
                match w {
                    "pre:" => mode = 1,
                    "post:" => mode = 2,
                    w if mode == 1 => pre.push(w.to_string()),
                    w if mode == 2 => post.push(w.to_string()),
                    _ => {}
                }
            }
            self.softdeps_of
                .entry(module.clone())
                .or_default()
                .push(self.softdeps.len());
            self.softdeps.push(SoftdepLine {
                module,
                rest,
                pre,
                post,
            });
        }
        Ok(())
    }

    fn parse_symbols(&mut self, dir: &Path, text: &str) -> Result<(), Error> {
        for (n, line) in content_lines(text) {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("alias"), Some(sym), Some(module), None) if sym.starts_with("symbol:") => {
                    self.symbols.push((sym.to_string(), normalize_name(module)));
                }
                _ => {
                    return Err(parse_error(
                        dir,
                        IndexFiles::SYMBOLS,
                        n,
                        "expected 'alias symbol:<name> <module>'",
                    ));
                }
            }
        }
        Ok(())
    }

    fn parse_builtin_modinfo(&mut self, dir: &Path, bytes: &[u8]) -> Result<(), Error> {
        for (n, entry) in bytes.split(|&b| b == 0).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let text = std::str::from_utf8(entry)
                .map_err(|_| parse_error(dir, IndexFiles::BUILTIN_MODINFO, n + 1, "not UTF-8"))?;
            let Some((module, kv)) = text.split_once('.') else {
                return Err(parse_error(
                    dir,
                    IndexFiles::BUILTIN_MODINFO,
                    n + 1,
                    format!("expected '<module>.<key>=<value>', got {text:?}"),
                ));
            };
            if let Some(alias) = kv.strip_prefix("alias=") {
                self.builtin_aliases
                    .push((alias.to_string(), normalize_name(module)));
            }
        }
        self.builtin_modinfo = bytes.to_vec();
        self.builtin_alias_entries = self
            .builtin_aliases
            .iter()
            .map(|(a, m)| AliasEntry::new(a, m.clone()))
            .collect();
        self.builtin_table = AliasTable::build(&self.builtin_alias_entries);
        Ok(())
    }

    /// All loadable modules, in `modules.dep` order.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// The loadable module of that name (`-` and `_` are the same).
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.id(name).map(|i| &self.modules[i])
    }

    pub(super) fn id(&self, name: &str) -> Option<usize> {
        match self.by_name.get(name) {
            Some(&i) => Some(i),
            None if name.contains('-') => self.by_name.get(&normalize_name(name)).copied(),
            None => None,
        }
    }

    /// Whether `modules.builtin` lists a module of that name.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(name) || self.builtin.contains(&normalize_name(name))
    }

    /// All dependencies of a module, in `modules.dep` order (empty for unknown modules).
    pub fn deps(&self, name: &str) -> Vec<&str> {
        self.id(name).map(|i| self.dep_names(i)).unwrap_or_default()
    }

    fn dep_names(&self, id: usize) -> Vec<&str> {
        self.modules[id]
            .deps
            .iter()
            .map(|&d| self.modules[d].name.as_str())
            .collect()
    }

    /// The modules whose alias patterns match a device's `modalias`, each once, in
    /// `modules.dep` order (as modprobe tries them; names missing from it last).
    pub fn match_alias(&self, modalias: &str) -> Vec<&str> {
        let key = normalize_name(modalias);
        let mut out: Vec<(usize, &str)> = Vec::new();
        self.table.matches(&self.aliases, &key, |i| {
            let m = self.aliases[i].module.as_str();
            out.push((self.by_name.get(m).copied().unwrap_or(usize::MAX), m));
        });
        out.sort_unstable();
        out.dedup();
        out.into_iter().map(|(_, m)| m).collect()
    }

    /// What a name given to modprobe (module name or alias) stands for, in kmod's lookup
    /// order: module name, `modules.alias`, built-in aliases, `modules.builtin`. Aliases that
    /// point at modules missing from `modules.dep` are ignored.
    pub fn lookup(&self, name_or_alias: &str) -> Lookup<'_> {
        if let Some(i) = self.id(name_or_alias) {
            return Lookup::Modules(vec![self.modules[i].name.as_str()]);
        }
        let mods: Vec<&str> = self
            .match_alias(name_or_alias)
            .into_iter()
            .filter(|m| self.by_name.contains_key(*m))
            .collect();
        if !mods.is_empty() {
            return Lookup::Modules(mods);
        }
        let key = normalize_name(name_or_alias);
        let mut builtin = None;
        self.builtin_table
            .matches(&self.builtin_alias_entries, &key, |i| {
                builtin.get_or_insert(i);
            });
        if let Some(i) = builtin {
            return Lookup::Builtin(self.builtin_alias_entries[i].module.clone());
        }
        if self.is_builtin(&key) {
            return Lookup::Builtin(key);
        }
        Lookup::NotFound
    }

    pub(super) fn lookup_ids(&self, name_or_alias: &str) -> Vec<usize> {
        match self.lookup(name_or_alias) {
            Lookup::Modules(m) => m.iter().filter_map(|n| self.id(n)).collect(),
            _ => Vec::new(),
        }
    }

    /// The module directory-relative path of a module file as the index gives it, or an
    /// error naming the module.
    pub fn path_of(&self, name: &str) -> Result<&str, Error> {
        self.module(name)
            .map(|m| m.path.as_str())
            .ok_or_else(|| Error::UnknownModule(name.to_string()))
    }
}

/// The module file of an index entry: `path` joined to `dir` unless it is absolute.
pub fn module_file(dir: &Path, path: &str) -> PathBuf {
    if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        dir.join(path)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/fs/mbcache.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/drivers/virtio/virtio.ko.xz:
kernel/drivers/virtio/virtio_ring.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/drivers/char/ipmi/ipmi_msghandler.ko.xz:
kernel/drivers/char/ipmi/ipmi_devintf.ko.xz: kernel/drivers/char/ipmi/ipmi_msghandler.ko.xz
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias fs-ext4 ext4
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias virtio:d00000002v* virtio_blk
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias usb:v13FDp3940d0[0-2]*dc* virtio_blk
alias platform:gpio-keys ipmi_devintf
";
    const SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep ipmi_msghandler post: ipmi_devintf
softdep jbd2 gcm
";

    /// A small index shared by the tests of the kmod modules.
    pub(in crate::kmod) fn index() -> ModuleIndex {
        let files = IndexFiles {
            dep: DEP.into(),
            alias: ALIAS.into(),
            softdep: SOFTDEP.into(),
            builtin: "kernel/drivers/block/loop.ko\nkernel/crypto/sha256_generic.ko\n".into(),
            builtin_modinfo: b"sha256_generic.alias=sha256\0sha256_generic.license=GPL\0".to_vec(),
            ..Default::default()
        };
        ModuleIndex::parse(Path::new("/lib/modules/k"), &files).unwrap()
    }

    #[test]
    fn parse_normalises_names_and_keeps_paths() {
        let ix = index();
        let m = ix.module("crc32c-intel").unwrap();
        assert_eq!(m.name, "crc32c_intel");
        assert_eq!(m.path, "kernel/arch/x86/crypto/crc32c-intel.ko.xz");
        assert_eq!(ix.deps("ext4"), ["crc16", "mbcache", "jbd2"]);
        assert!(ix.is_builtin("loop"));
        assert!(!ix.is_builtin("ext4"));
    }

    #[test]
    fn parse_malformed_dep_line_names_file_and_line() {
        let files = IndexFiles {
            dep: "a.ko:\nb.ko b.ko\n".into(),
            ..Default::default()
        };
        let e = ModuleIndex::parse(Path::new("/lib/modules/k"), &files).unwrap_err();
        assert!(matches!(e, Error::Parse { line: 2, .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("/lib/modules/k/modules.dep:2: "),
            "{e}"
        );
    }

    #[test]
    fn parse_dangling_dependency_is_an_error() {
        let files = IndexFiles {
            dep: "a.ko: b.ko\n".into(),
            ..Default::default()
        };
        let e = ModuleIndex::parse(Path::new("/k"), &files).unwrap_err();
        assert!(
            e.to_string().contains("modules.dep:1: dependency b.ko"),
            "{e}"
        );
    }

    #[test]
    fn parse_malformed_alias_and_softdep_lines_name_the_line() {
        let files = IndexFiles {
            dep: "a.ko:\n".into(),
            alias: "# c\nalias x a\nalias y\n".into(),
            ..Default::default()
        };
        let e = ModuleIndex::parse(Path::new("/k"), &files).unwrap_err();
        assert!(e.to_string().starts_with("/k/modules.alias:3: "), "{e}");
        let files = IndexFiles {
            dep: "a.ko:\n".into(),
            softdep: "options a x=1\n".into(),
            ..Default::default()
        };
        let e = ModuleIndex::parse(Path::new("/k"), &files).unwrap_err();
        assert!(e.to_string().starts_with("/k/modules.softdep:1: "), "{e}");
    }

    #[test]
    fn match_alias_wildcards_and_classes() {
        let ix = index();
        assert_eq!(ix.match_alias("virtio:d00000002v00001AF4"), ["virtio_blk"]);
        assert_eq!(
            ix.match_alias("pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00"),
            ["virtio_pci"]
        );
        assert_eq!(ix.match_alias("usb:v13FDp3940d0100dc00"), ["virtio_blk"]);
        assert!(ix.match_alias("usb:v13FDp3940d0300dc00").is_empty());
        assert_eq!(
            ix.match_alias("platform:gpio_keys"),
            ["ipmi_devintf"],
            "- == _"
        );
        assert!(ix.match_alias("virtio:d00000001v00001AF4").is_empty());
    }

    #[test]
    fn lookup_name_alias_builtin() {
        let ix = index();
        assert_eq!(ix.lookup("ext4"), Lookup::Modules(vec!["ext4"]));
        assert_eq!(ix.lookup("fs-ext4"), Lookup::Modules(vec!["ext4"]));
        assert_eq!(
            ix.lookup("crc32c"),
            Lookup::Modules(vec!["crc32c_generic", "crc32c_intel"])
        );
        assert_eq!(ix.lookup("loop"), Lookup::Builtin("loop".into()));
        assert_eq!(
            ix.lookup("sha256"),
            Lookup::Builtin("sha256_generic".into())
        );
        assert_eq!(ix.lookup("nothing"), Lookup::NotFound);
    }
}
