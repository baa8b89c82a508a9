//! depmod's output for a subset of a kernel's modules, as the rescue image holds it.
//!
//! The image carries a few hundred of the kernel's modules, stored decompressed, so the
//! host's `modules.*` files do not fit it: this writes them anew from the host's index,
//! keeping only the chosen modules (module paths end in `.ko`). The text files keep the host's
//! line order (depmod writes them in `modules.order` order); the binary tries are built as
//! `tools/depmod.c` builds them (see [`super::binindex`]), with a module's position in the
//! subset's `modules.dep` as the priority of its values. The built-in lists are the kernel's,
//! whatever the subset.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::binindex::IndexBuilder;
use super::index::{AliasEntry, IndexFiles, ModuleIndex};
use super::{Error, modname_from_path, uncompressed_path};

const ALIAS_HEADER: &str = "# Aliases extracted from modules themselves.\n";
const SOFTDEP_HEADER: &str = "# Soft dependencies extracted from modules themselves.\n";
const SYMBOLS_HEADER: &str = "# Aliases for symbols, used by symbol_request().\n";
const DEVNAME_HEADER: &str = "# Device nodes to trigger on-demand module loading.\n";

impl ModuleIndex {
    /// depmod's files for the modules `names` (which must include all their dependencies):
    /// `modules.dep`, `.alias`, `.softdep`, `.symbols`, `.builtin`, `.order`, `.devname`,
    /// `.builtin.modinfo` (when the kernel has one) and the binary indexes modprobe reads
    /// (`modules.dep.bin`, `.alias.bin`, `.symbols.bin`, `.builtin.bin`,
    /// `.builtin.alias.bin`). Sorted by file name; the same input gives the same bytes.
    pub fn write_subset(&self, names: &[&str]) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let mut chosen = vec![false; self.modules.len()];
        for n in names {
            let id = self
                .id(n)
                .ok_or_else(|| Error::UnknownModule(n.to_string()))?;
            chosen[id] = true;
        }
        let subset: Vec<&super::Module> = self
            .modules
            .iter()
            .enumerate()
            .filter(|(i, _)| chosen[*i])
            .map(|(_, m)| m)
            .collect();
        let mut new_idx: HashMap<&str, u32> = HashMap::new();
        for m in &subset {
            for d in self.deps(&m.name) {
                if !self.id(d).is_some_and(|j| chosen[j]) {
                    return Err(Error::NotClosed {
                        module: m.name.clone(),
                        dependency: d.to_string(),
                    });
                }
            }
            new_idx.insert(m.name.as_str(), new_idx.len() as u32);
        }

        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();

        // modules.dep and modules.dep.bin
        let mut dep = String::new();
        let mut dep_bin = IndexBuilder::new("modules.dep.bin");
        for m in &subset {
            let mut line = format!("{}:", uncompressed_path(&m.path));
            for d in self.deps(&m.name) {
                let path = self.module(d).map(|x| x.path.as_str()).unwrap_or(d);
                line.push(' ');
                line.push_str(uncompressed_path(path));
            }
            dep_bin.insert(&m.name, &line, new_idx[m.name.as_str()])?;
            dep.push_str(&line);
            dep.push('\n');
        }
        files.insert(IndexFiles::DEP.into(), dep.into_bytes());
        files.insert("modules.dep.bin".into(), dep_bin.write());

        // modules.alias and modules.alias.bin
        let mut alias = String::from(ALIAS_HEADER);
        let mut alias_bin = IndexBuilder::new("modules.alias.bin");
        let mut aliases_of: HashMap<&str, Vec<&AliasEntry>> = HashMap::new();
        for a in &self.aliases {
            let Some(&prio) = new_idx.get(a.module.as_str()) else {
                continue;
            };
            let _ = writeln!(alias, "alias {} {}", a.pattern, a.module);
            if let Some(key) = a.key() {
                alias_bin.insert(key, &a.module, prio)?;
            }
            aliases_of.entry(a.module.as_str()).or_default().push(a);
        }
        files.insert(IndexFiles::ALIAS.into(), alias.into_bytes());
        files.insert("modules.alias.bin".into(), alias_bin.write());

        // modules.softdep
        let mut softdep = String::from(SOFTDEP_HEADER);
        for s in &self.softdeps {
            if new_idx.contains_key(s.module.as_str()) {
                let _ = writeln!(softdep, "softdep {} {}", s.module, s.rest);
            }
        }
        files.insert(IndexFiles::SOFTDEP.into(), softdep.into_bytes());

        // modules.symbols and modules.symbols.bin
        let mut symbols = String::from(SYMBOLS_HEADER);
        let mut symbols_bin = IndexBuilder::new("modules.symbols.bin");
        for (sym, module) in &self.symbols {
            if let Some(&prio) = new_idx.get(module.as_str()) {
                let _ = writeln!(symbols, "alias {sym} {module}");
                symbols_bin.insert(sym, module, prio)?;
            }
        }
        files.insert(IndexFiles::SYMBOLS.into(), symbols.into_bytes());
        files.insert("modules.symbols.bin".into(), symbols_bin.write());

        // modules.builtin, .builtin.bin, .builtin.alias.bin, .builtin.modinfo
        let mut builtin = String::new();
        let mut builtin_bin = IndexBuilder::new("modules.builtin.bin");
        for line in &self.builtin_paths {
            builtin.push_str(line);
            builtin.push('\n');
            builtin_bin.insert(&modname_from_path(line), "", 0)?;
        }
        files.insert(IndexFiles::BUILTIN.into(), builtin.into_bytes());
        files.insert("modules.builtin.bin".into(), builtin_bin.write());
        let mut builtin_alias_bin = IndexBuilder::new("modules.builtin.alias.bin");
        for (a, module) in &self.builtin_aliases {
            if let Some(key) = super::normalize_alias(a) {
                builtin_alias_bin.insert(&key, module, 0)?;
            }
        }
        files.insert(
            "modules.builtin.alias.bin".into(),
            builtin_alias_bin.write(),
        );
        if !self.builtin_modinfo.is_empty() {
            files.insert(
                IndexFiles::BUILTIN_MODINFO.into(),
                self.builtin_modinfo.clone(),
            );
        }

        // modules.order: the kernel's link order, or modules.dep's when there is none.
        let mut order = String::new();
        if self.order.is_empty() {
            for m in &subset {
                order.push_str(uncompressed_path(&m.path));
                order.push('\n');
            }
        } else {
            for line in &self.order {
                if new_idx.contains_key(modname_from_path(line).as_str()) {
                    order.push_str(uncompressed_path(line));
                    order.push('\n');
                }
            }
        }
        files.insert(IndexFiles::ORDER.into(), order.into_bytes());

        // modules.devname, as depmod's output_devname derives it from the aliases.
        let mut devname = String::from(DEVNAME_HEADER);
        for m in &subset {
            let entries = aliases_of.get(m.name.as_str()).map(Vec::as_slice);
            if let Some(line) = devname_line(&m.name, entries.unwrap_or_default()) {
                devname.push_str(&line);
            }
        }
        files.insert("modules.devname".into(), devname.into_bytes());

        Ok(files.into_iter().collect())
    }
}

/// `<module> <devname> <c|b><major>:<minor>` from a module's `devname:` and
/// `char-major-M-m`/`block-major-M-m` aliases, if it has both.
fn devname_line(module: &str, aliases: &[&AliasEntry]) -> Option<String> {
    let mut devname = None;
    let mut node = None;
    for a in aliases {
        let p = a.pattern.as_str();
        if let Some(d) = p.strip_prefix("devname:") {
            devname = Some(d);
        } else if let Some(n) = major_minor(p, "char-major-") {
            node = Some(('c', n));
        } else if let Some(n) = major_minor(p, "block-major-") {
            node = Some(('b', n));
        }
        if devname.is_some() && node.is_some() {
            break;
        }
    }
    let (t, (major, minor)) = node?;
    Some(format!("{module} {} {t}{major}:{minor}\n", devname?))
}

fn major_minor(alias: &str, prefix: &str) -> Option<(u32, u32)> {
    let (a, b) = alias.strip_prefix(prefix)?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::super::binindex::dump;
    use super::*;
    use std::path::Path;

    fn index() -> ModuleIndex {
        let files = IndexFiles {
            dep: "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/fs/fuse/fuse.ko.xz:
kernel/net/x.ko.xz:
"
            .into(),
            alias: "\
alias fs-ext4 ext4
alias fuse ext4-thing
alias char-major-10-229 fuse
alias devname:fuse fuse
alias fs-fuse fuse
alias net-x x
"
            .into(),
            softdep: "softdep ext4 pre: crc32c\nsoftdep x post: y\n".into(),
            builtin: "kernel/drivers/block/loop.ko\n".into(),
            order: "kernel/fs/jbd2/jbd2.ko\nkernel/lib/crc16.ko\nkernel/fs/ext4/ext4.ko\nkernel/fs/fuse/fuse.ko\n"
                .into(),
            symbols: "alias symbol:jbd2_journal_init jbd2\nalias symbol:x_fn x\n".into(),
            ..Default::default()
        };
        ModuleIndex::parse(Path::new("/k"), &files).unwrap()
    }

    fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
        &files.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn write_subset_keeps_order_and_drops_compression() {
        let files = index()
            .write_subset(&["ext4", "jbd2", "crc16", "fuse"])
            .unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "modules.alias",
                "modules.alias.bin",
                "modules.builtin",
                "modules.builtin.alias.bin",
                "modules.builtin.bin",
                "modules.dep",
                "modules.dep.bin",
                "modules.devname",
                "modules.order",
                "modules.softdep",
                "modules.symbols",
                "modules.symbols.bin",
            ]
        );
        let text = |n| String::from_utf8(file(&files, n).to_vec()).unwrap();
        assert_eq!(
            text("modules.dep"),
            "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n\
             kernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\nkernel/fs/fuse/fuse.ko:\n"
        );
        assert_eq!(
            text("modules.alias"),
            "# Aliases extracted from modules themselves.\nalias fs-ext4 ext4\n\
             alias char-major-10-229 fuse\nalias devname:fuse fuse\nalias fs-fuse fuse\n"
        );
        assert_eq!(
            text("modules.softdep"),
            "# Soft dependencies extracted from modules themselves.\nsoftdep ext4 pre: crc32c\n"
        );
        assert_eq!(
            text("modules.devname"),
            "# Device nodes to trigger on-demand module loading.\nfuse fuse c10:229\n"
        );
        assert!(text("modules.order").starts_with("kernel/fs/jbd2/jbd2.ko\n"));
        assert!(!text("modules.symbols").contains("x_fn"));
        assert_eq!(
            dump(file(&files, "modules.dep.bin")).unwrap(),
            vec![
                ("crc16".to_string(), 2, "kernel/lib/crc16.ko:".to_string()),
                (
                    "ext4".to_string(),
                    0,
                    "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko"
                        .to_string()
                ),
                ("fuse".to_string(), 3, "kernel/fs/fuse/fuse.ko:".to_string()),
                ("jbd2".to_string(), 1, "kernel/fs/jbd2/jbd2.ko:".to_string()),
            ]
        );
        assert_eq!(
            dump(file(&files, "modules.alias.bin")).unwrap()[0],
            ("char_major_10_229".to_string(), 3, "fuse".to_string())
        );
        assert_eq!(
            dump(file(&files, "modules.builtin.bin")).unwrap(),
            vec![("loop".to_string(), 0, String::new())]
        );
    }

    #[test]
    fn write_subset_rejects_open_set_and_unknown_names() {
        let e = index().write_subset(&["ext4"]).unwrap_err();
        assert!(
            matches!(&e, Error::NotClosed { module, dependency } if module == "ext4" && dependency == "crc16"),
            "{e}"
        );
        let e = index().write_subset(&["nope"]).unwrap_err();
        assert!(matches!(e, Error::UnknownModule(_)), "{e}");
    }

    /// The host's depmod output, regenerated for all modules from its text files, is the same
    /// bytes: the trie writer, priorities, value order and text formats match kmod's depmod.
    #[test]
    fn write_subset_of_everything_matches_host_depmod() {
        let base = Path::new("/lib/modules");
        let kver = std::fs::read_dir(base)
            .expect("no /lib/modules: install the Debian package linux-image-amd64")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("modules.dep.bin").is_file())
            .max()
            .expect("no kernel with modules.dep.bin: install linux-image-amd64");
        let ix = ModuleIndex::load_dir(&kver).unwrap();
        let names: Vec<&str> = ix.modules().iter().map(|m| m.name.as_str()).collect();
        let ours = ix.write_subset(&names).unwrap();
        let compressed = ix
            .modules()
            .iter()
            .any(|m| m.path != uncompressed_path(&m.path));
        for (name, bytes) in &ours {
            if compressed && matches!(name.as_str(), "modules.dep" | "modules.dep.bin") {
                continue; // ours name the .ko paths of the image
            }
            let host = std::fs::read(kver.join(name)).unwrap();
            if name.ends_with(".bin") {
                assert_eq!(dump(bytes), dump(&host), "{name} content");
            }
            assert!(bytes == &host, "{name} differs from {}", kver.display());
        }
    }

    /// Real kmod reads the generated files: `modprobe --show-depends` lists the modules in
    /// dependency order, for a module name, an alias and a device modalias.
    #[test]
    fn write_subset_works_with_real_modprobe() {
        use rear_testutil::kmod::{ko, sample_kernel};
        const KVER: &str = "6.1.0-rear-test";
        let modprobe = ["/usr/sbin/modprobe", "/sbin/modprobe", "/usr/bin/modprobe"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("modprobe not found: install the Debian package kmod"));
        let src = tempfile::tempdir().unwrap();
        let kernel = sample_kernel(KVER);
        kernel.write(src.path()).unwrap();
        let ix = ModuleIndex::load_dir(&src.path().join("lib/modules").join(KVER)).unwrap();
        let subset = [
            "ext4",
            "jbd2",
            "mbcache",
            "crc16",
            "crc32c_generic",
            "virtio",
            "virtio_ring",
            "virtio_blk",
        ];
        let dst = tempfile::tempdir().unwrap();
        let kdir = dst.path().join("lib/modules").join(KVER);
        std::fs::create_dir_all(&kdir).unwrap();
        for (name, bytes) in ix.write_subset(&subset).unwrap() {
            std::fs::write(kdir.join(name), bytes).unwrap();
        }
        for m in &kernel.modules {
            if subset.contains(&m.name().as_str()) {
                let p = kdir.join(uncompressed_path(&m.rel_path()));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, ko(&m.modinfo())).unwrap();
            }
        }
        let no_config = tempfile::tempdir().unwrap();
        let show = |what: &str| -> Vec<String> {
            let mut cmd = std::process::Command::new(modprobe);
            cmd.arg("-d")
                .arg(dst.path())
                .args(["-S", KVER, "-C"])
                .arg(no_config.path())
                .args(["--show-depends", what]);
            let out = crate::exec::run(&mut cmd, Some("kmod")).unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| l.trim().to_string())
                .collect()
        };
        let insmods = |names: &[&str]| -> Vec<String> {
            names
                .iter()
                .map(|n| {
                    let rel = uncompressed_path(&ix.module(n).unwrap().path).to_string();
                    format!("insmod {}", kdir.join(rel).display())
                })
                .collect()
        };
        let ext4 = ix.load_order(&["ext4"]);
        assert_eq!(ext4, ["crc16", "mbcache", "jbd2", "crc32c_generic", "ext4"]);
        assert_eq!(show("ext4"), insmods(&ext4));
        assert_eq!(show("fs-ext4"), insmods(&ext4));
        let blk = ix.load_order(&ix.match_alias("virtio:d00000002v00001AF4"));
        assert_eq!(blk, ["virtio", "virtio_ring", "virtio_blk"]);
        assert_eq!(show("virtio:d00000002v00001AF4"), insmods(&blk));
        assert_eq!(show("loop"), ["builtin loop"]);
    }

    #[test]
    fn write_subset_is_deterministic() {
        let a = index().write_subset(&["fuse", "x"]).unwrap();
        let b = index().write_subset(&["x", "fuse"]).unwrap();
        assert_eq!(a, b);
    }
}
