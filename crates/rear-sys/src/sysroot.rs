//! The one door to the host: every file the build reads goes through a [`Sysroot`].
//!
//! A sysroot is `/` for the running system or any directory given with `--root`. Paths handed
//! to it are absolute *host* paths (`/usr/bin/bash`); it maps them below its root and resolves
//! symlinks the way the kernel would if the root were `/`, so an absolute link target inside
//! `--root DIR` never escapes to the build machine.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The directories programs are looked up in, as a root shell's `PATH` would have them.
pub const PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Errors from reading the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root given with `--root` does not exist or is no directory.
    #[error("sysroot {0} is not a directory")]
    NotADirectory(PathBuf),
    /// An I/O error on a host path (shown as the host path, plus the root when it is not `/`).
    #[error("{}: {error}", shown(.root, .path))]
    Io {
        /// The sysroot's root.
        root: PathBuf,
        /// The host path (absolute, as seen from inside the sysroot).
        path: PathBuf,
        /// What the kernel said.
        error: io::Error,
    },
    /// A symlink chain that does not end (more than 40 links, as `ELOOP`).
    #[error("{}: too many levels of symbolic links", shown(.root, .path))]
    SymlinkLoop {
        /// The sysroot's root.
        root: PathBuf,
        /// The path whose resolution looped.
        path: PathBuf,
    },
}

impl Error {
    /// Whether the error only says that the path is not there (`ENOENT`, `ENOTDIR`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { error, .. }
            if matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory))
    }
}

fn shown(root: &Path, path: &Path) -> String {
    if root == Path::new("/") {
        path.display().to_string()
    } else {
        format!("{} (in sysroot {})", path.display(), root.display())
    }
}

/// A symbolic link met while resolving a path: both are host paths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    /// Where the link is (absolute host path, its parent already resolved).
    pub path: PathBuf,
    /// What the link says, verbatim (relative or absolute), as it goes into the image.
    pub target: PathBuf,
}

/// A path resolved inside the sysroot: the canonical path and the links passed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Canonical absolute host path: no symlink in any component.
    pub path: PathBuf,
    /// The links met, in the order they were followed. Copying them into the image keeps the
    /// original name working (`/lib64/ld-linux-x86-64.so.2`, `/bin` -> `usr/bin`).
    pub links: Vec<Link>,
}

/// The host, as seen from a root directory.
#[derive(Debug, Clone)]
pub struct Sysroot {
    root: PathBuf,
}

const MAX_LINKS: usize = 40;

impl Sysroot {
    /// The host paths matching a glob pattern (`*`, `?`, `[...]` within one component, as
    /// `glob(3)` without flags, matched by [`crate::fnmatch`]), sorted; names starting with `.`
    /// match only an explicit `.`. A directory on the way that is absent matches nothing; any
    /// other error reading one is an error.
    pub fn glob(&self, pattern: &Path) -> Result<Vec<PathBuf>, Error> {
        let mut found = vec![PathBuf::from("/")];
        for c in pattern.components() {
            let Component::Normal(name) = c else {
                if c == Component::ParentDir {
                    found.iter_mut().for_each(|p| p.push(".."));
                }
                continue;
            };
            let name = name.as_bytes();
            if !name.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
                found
                    .iter_mut()
                    .for_each(|p| p.push(OsStr::from_bytes(name)));
                continue;
            }
            let mut next = Vec::new();
            for dir in &found {
                let entries = match self.read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.is_not_found() || matches!(e, Error::SymlinkLoop { .. }) => {
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let Some(file) = entry.file_name() else {
                        continue;
                    };
                    let file = file.as_bytes();
                    if file.starts_with(b".") && !name.starts_with(b".") {
                        continue;
                    }
                    if crate::fnmatch::fnmatch_bytes(name, file) {
                        next.push(dir.join(OsStr::from_bytes(file)));
                    }
                }
            }
            found = next;
        }
        found.retain(|p| self.exists(p));
        found.sort();
        Ok(found)
    }

    /// The host name of the protected system: `/etc/hostname`, else the running kernel's, else
    /// `localhost`. Only the first label (no domain).
    pub fn hostname(&self) -> String {
        let from = |p: &str| {
            self.read_to_string(Path::new(p))
                .ok()
                .and_then(|s| s.split_whitespace().next().map(str::to_string))
        };
        from("/etc/hostname")
            .or_else(|| {
                if self.is_host() {
                    from("/proc/sys/kernel/hostname")
                } else {
                    None
                }
            })
            .map(|h| h.split('.').next().unwrap_or(&h).to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    }

    /// A sysroot at `root`, which must be a directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            _ => return Err(Error::NotADirectory(root)),
        }
        let root = std::fs::canonicalize(&root).map_err(|error| Error::Io {
            root: root.clone(),
            path: PathBuf::from("/"),
            error,
        })?;
        Ok(Sysroot { root })
    }

    /// The running system.
    pub fn host() -> Self {
        Sysroot {
            root: PathBuf::from("/"),
        }
    }

    /// The directory this sysroot maps `/` to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this sysroot is the running system (so `/proc` and `/sys` describe it).
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The real path of a host path, without resolving links.
    pub fn real(&self, path: &Path) -> PathBuf {
        let rel = path.strip_prefix("/").unwrap_or(path);
        if rel.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn io(&self, path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
        let path = path.to_path_buf();
        move |error| Error::Io {
            root: self.root.clone(),
            path,
            error,
        }
    }

    /// Reads a whole file (links followed inside the sysroot).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, Error> {
        let real = self.real(&self.resolve(path)?.path);
        std::fs::read(real).map_err(self.io(path))
    }

    /// Reads a whole file as UTF-8 text.
    pub fn read_to_string(&self, path: &Path) -> Result<String, Error> {
        let real = self.real(&self.resolve(path)?.path);
        std::fs::read_to_string(real).map_err(self.io(path))
    }

    /// Metadata of the path itself (a link is not followed).
    pub fn symlink_metadata(&self, path: &Path) -> Result<Metadata, Error> {
        std::fs::symlink_metadata(self.real(path)).map_err(self.io(path))
    }

    /// Metadata of what the path finally names (links followed inside the sysroot).
    pub fn metadata(&self, path: &Path) -> Result<Metadata, Error> {
        let resolved = self.resolve(path)?;
        std::fs::symlink_metadata(self.real(&resolved.path)).map_err(self.io(path))
    }

    /// Whether the path names something (links followed inside the sysroot).
    pub fn exists(&self, path: &Path) -> bool {
        self.metadata(path).is_ok()
    }

    /// Whether the path names a regular file (links followed).
    pub fn is_file(&self, path: &Path) -> bool {
        self.metadata(path).map(|m| m.is_file()).unwrap_or(false)
    }

    /// What a link says, verbatim.
    pub fn read_link(&self, path: &Path) -> Result<PathBuf, Error> {
        std::fs::read_link(self.real(path)).map_err(self.io(path))
    }

    /// The entries of a directory as host paths, sorted by name (links followed for the
    /// directory itself, not for the entries).
    pub fn read_dir(&self, path: &Path) -> Result<Vec<PathBuf>, Error> {
        let resolved = self.resolve(path)?.path;
        let mut names: Vec<_> = std::fs::read_dir(self.real(&resolved))
            .map_err(self.io(path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(self.io(path))?;
        names.sort();
        Ok(names.into_iter().map(|n| resolved.join(n)).collect())
    }

    /// Resolves every symlink in `path` as if the sysroot were `/`.
    ///
    /// The path need not exist in full: resolution stops at the first missing component and
    /// that is an error (`NotFound`), so callers can tell "absent" from "present".
    pub fn resolve(&self, path: &Path) -> Result<Resolved, Error> {
        let mut links = Vec::new();
        let mut done = PathBuf::from("/");
        // Components still to walk, in reverse so that pop() yields the next one.
        let mut todo: Vec<std::ffi::OsString> = Vec::new();
        push_components(&mut todo, path);
        while let Some(name) = todo.pop() {
            match name.to_str() {
                Some(".") => continue,
                Some("..") => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = done.join(&name);
            let meta = std::fs::symlink_metadata(self.real(&candidate)).map_err(self.io(path))?;
            if meta.file_type().is_symlink() {
                if links.len() >= MAX_LINKS {
                    return Err(Error::SymlinkLoop {
                        root: self.root.clone(),
                        path: path.into(),
                    });
                }
                let target = self.read_link(&candidate)?;
                if target.is_absolute() {
                    done = PathBuf::from("/");
                }
                push_components(&mut todo, &target);
                links.push(Link {
                    path: candidate,
                    target,
                });
            } else {
                done = candidate;
            }
        }
        Ok(Resolved { path: done, links })
    }

    /// Finds a program by name in the given directories (the sysroot's `PATH`), as the shell
    /// would: the first existing regular file with an execute bit. A name with a `/` is taken
    /// as a path.
    pub fn which(&self, name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
        self.which_in(name, dirs.iter().map(PathBuf::as_path))
    }

    /// [`Sysroot::which`] on [`PATH`], the directories a root shell searches.
    pub fn which_on_path(&self, name: &str) -> Option<PathBuf> {
        self.which_in(name, PATH.iter().map(Path::new))
    }

    fn which_in<'a>(&self, name: &str, dirs: impl Iterator<Item = &'a Path>) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let candidates: Vec<PathBuf> = if name.contains('/') {
            vec![PathBuf::from(name)]
        } else {
            dirs.map(|d| d.join(name)).collect()
        };
        candidates.into_iter().find(|p| {
            self.metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
    }
}

/// Pushes the normal components of `path` onto `todo` so that `todo.pop()` yields them in order.
fn push_components(todo: &mut Vec<std::ffi::OsString>, path: &Path) {
    let parts: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            Component::ParentDir => Some(OsStr::new("..")),
            _ => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev().map(|p| p.to_os_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Sysroot) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        std::fs::create_dir(r.join("lib64")).unwrap();
        std::fs::write(
            r.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            b"ld",
        )
        .unwrap();
        symlink(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            r.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        let sys = Sysroot::new(r).unwrap();
        (dir, sys)
    }

    #[test]
    fn resolve_absolute_link_stays_inside_root() {
        let (_d, sys) = tree();
        let r = sys
            .resolve(Path::new("/lib64/ld-linux-x86-64.so.2"))
            .unwrap();
        assert_eq!(
            r.path,
            Path::new("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        );
        assert_eq!(
            r.links,
            vec![
                Link {
                    path: "/lib64/ld-linux-x86-64.so.2".into(),
                    target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()
                },
                Link {
                    path: "/lib".into(),
                    target: "usr/lib".into()
                },
            ]
        );
        assert_eq!(
            sys.read(Path::new("/lib64/ld-linux-x86-64.so.2")).unwrap(),
            b"ld"
        );
    }

    #[test]
    fn resolve_loop_is_an_error() {
        let (_d, sys) = tree();
        let e = sys.resolve(Path::new("/loop1")).unwrap_err();
        assert!(matches!(e, Error::SymlinkLoop { .. }), "{e}");
    }

    #[test]
    fn read_missing_names_the_path_and_root() {
        let (_d, sys) = tree();
        let e = sys.read(Path::new("/etc/nothing")).unwrap_err().to_string();
        assert!(e.starts_with("/etc/nothing (in sysroot "), "{e}");
    }

    #[test]
    fn new_rejects_a_file() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(
            Sysroot::new(f.path()),
            Err(Error::NotADirectory(_))
        ));
    }

    #[test]
    fn which_finds_executables_only() {
        use std::os::unix::fs::PermissionsExt;
        let (d, sys) = tree();
        let sh = d.path().join("usr/bin/sh");
        std::fs::write(&sh, b"#!").unwrap();
        std::fs::write(d.path().join("usr/bin/data"), b"x").unwrap();
        std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dirs = vec![PathBuf::from("/sbin"), PathBuf::from("/bin")];
        assert_eq!(sys.which("sh", &dirs), Some(PathBuf::from("/bin/sh")));
        assert_eq!(sys.which("data", &dirs), None);
    }
}
