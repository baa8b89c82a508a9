//! Resolver: firmware names (`firmware=` of the chosen modules' `.modinfo`) -> host files.
//!
//! Stage: resolve. Input: a [`Sysroot`], the kernel release and firmware names
//! (`rtl_nic/rtl8168d-1.fw`). Output: a [`FirmwareSet`]: the files found, sorted by name, and
//! the names not found (a warning, not an error: most drivers ask for firmware of hardware
//! variants the host does not have).
//!
//! The search follows the kernel's firmware loader (`drivers/base/firmware_loader/main.c`):
//! the directories `/lib/firmware/updates/<kver>`, `/lib/firmware/updates`,
//! `/lib/firmware/<kver>`, `/lib/firmware`, first for the plain name, then (kernels with
//! `CONFIG_FW_LOADER_COMPRESS`) with `.zst`, then `.xz`. Compressed files are kept as they
//! are, since the kernel decompresses them itself.

use std::path::{Component, Path, PathBuf};

use rear_sys::sysroot::{self, Resolved, Sysroot};

/// Errors of firmware resolution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the host failed other than by absence (the error names the path).
    #[error(transparent)]
    Sysroot(#[from] sysroot::Error),
}

/// A firmware file found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareFile {
    /// The name a driver asks for (`rtl_nic/rtl8168d-1.fw`).
    pub name: String,
    /// The host path found, which is also its path in the image
    /// (`/lib/firmware/rtl_nic/rtl8168d-1.fw`, or with `.xz`/`.zst`).
    pub host_path: PathBuf,
    /// The path with its symlinks resolved (linux-firmware has many links between names).
    pub resolved: Resolved,
}

/// The result of a firmware search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmwareSet {
    /// Files found, sorted by name.
    pub files: Vec<FirmwareFile>,
    /// Names not found (or not acceptable as a path below `/lib/firmware`), sorted.
    pub missing: Vec<String>,
}

/// The directories the kernel searches, in order.
pub fn search_dirs(kver: &str) -> [PathBuf; 4] {
    [
        PathBuf::from("/lib/firmware/updates").join(kver),
        PathBuf::from("/lib/firmware/updates"),
        PathBuf::from("/lib/firmware").join(kver),
        PathBuf::from("/lib/firmware"),
    ]
}

/// Suffixes tried, in the kernel's order: plain, zstd, xz.
pub const SUFFIXES: [&str; 3] = ["", ".zst", ".xz"];

/// A firmware name is a relative path without `..`.
fn acceptable(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Finds one firmware file: `Ok(None)` when it is nowhere.
pub fn find(sys: &Sysroot, kver: &str, name: &str) -> Result<Option<FirmwareFile>, Error> {
    if !acceptable(name) {
        return Ok(None);
    }
    let dirs = search_dirs(kver);
    for suffix in SUFFIXES {
        for dir in &dirs {
            let path = dir.join(format!("{name}{suffix}"));
            match sys.resolve(&path) {
                Ok(resolved) => {
                    if sys.metadata(&resolved.path)?.is_file() {
                        return Ok(Some(FirmwareFile {
                            name: name.to_string(),
                            host_path: path,
                            resolved,
                        }));
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(None)
}

/// Finds all firmware files of `names` (duplicates are looked up once).
pub fn resolve(sys: &Sysroot, kver: &str, names: &[String]) -> Result<FirmwareSet, Error> {
    let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let mut set = FirmwareSet::default();
    for name in names {
        match find(sys, kver, name)? {
            Some(f) => set.files.push(f),
            None => set.missing.push(name.to_string()),
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const KVER: &str = "6.1.0-test";

    fn tree(files: &[&str]) -> (tempfile::TempDir, Sysroot) {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f.as_bytes()).unwrap();
        }
        let sys = Sysroot::new(d.path()).unwrap();
        (d, sys)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resolve_prefers_updates_and_kver_dirs() {
        let (_d, sys) = tree(&[
            "/lib/firmware/a.fw",
            "/lib/firmware/6.1.0-test/a.fw",
            "/lib/firmware/b.fw",
            "/lib/firmware/updates/b.fw",
            "/lib/firmware/c.fw",
            "/lib/firmware/updates/6.1.0-test/c.fw",
        ]);
        let set = resolve(&sys, KVER, &names(&["c.fw", "a.fw", "b.fw", "a.fw"])).unwrap();
        let got: Vec<(&str, &Path)> = set
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.host_path.as_path()))
            .collect();
        assert_eq!(
            got,
            [
                ("a.fw", Path::new("/lib/firmware/6.1.0-test/a.fw")),
                ("b.fw", Path::new("/lib/firmware/updates/b.fw")),
                ("c.fw", Path::new("/lib/firmware/updates/6.1.0-test/c.fw")),
            ]
        );
        assert!(set.missing.is_empty());
    }

    #[test]
    fn resolve_finds_compressed_variants_after_plain_ones() {
        let (_d, sys) = tree(&[
            "/lib/firmware/rtl_nic/x.fw.xz",
            "/lib/firmware/updates/rtl_nic/x.fw.zst",
            "/lib/firmware/y.fw.xz",
            "/lib/firmware/y.fw",
        ]);
        let set = resolve(&sys, KVER, &names(&["rtl_nic/x.fw", "y.fw"])).unwrap();
        assert_eq!(
            set.files[0].host_path,
            Path::new("/lib/firmware/updates/rtl_nic/x.fw.zst"),
            "zstd before xz"
        );
        assert_eq!(set.files[1].host_path, Path::new("/lib/firmware/y.fw"));
    }

    #[test]
    fn resolve_missing_is_not_an_error() {
        let (_d, sys) = tree(&["/lib/firmware/a.fw"]);
        let set = resolve(&sys, KVER, &names(&["a.fw", "zz.fw", "../etc/shadow", ""])).unwrap();
        assert_eq!(set.files.len(), 1);
        assert_eq!(set.missing, ["", "../etc/shadow", "zz.fw"]);
    }

    #[test]
    fn resolve_follows_links_inside_the_sysroot() {
        let (d, sys) = tree(&["/usr/lib/firmware/brcm/real.bin"]);
        symlink("usr/lib", d.path().join("lib")).unwrap();
        symlink("real.bin", d.path().join("usr/lib/firmware/brcm/alias.bin")).unwrap();
        let set = resolve(&sys, KVER, &names(&["brcm/alias.bin"])).unwrap();
        let f = &set.files[0];
        assert_eq!(f.host_path, Path::new("/lib/firmware/brcm/alias.bin"));
        assert_eq!(
            f.resolved.path,
            Path::new("/usr/lib/firmware/brcm/real.bin")
        );
        assert_eq!(f.resolved.links.len(), 2);
    }
}
