//! Atomic file writes, the one implementation every output goes through: the new content is
//! written to a temporary file beside the target (`.<name>.XXXXXX`, so it is on the same file
//! system and never mistaken for an output), synced, given its mode, renamed over the target,
//! and the directory is synced, so that a crash leaves the old file or the new one, never half
//! of one.
//!
//! [`write`] does it for bytes in memory; [`Staged`] for a file written piece by piece (or by
//! a tool given its path), and [`commit_all`] for several files that appear together (a build's
//! outputs and their `SHA256SUMS`). A [`Staged`] file dropped without being committed is
//! removed.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file being written under a temporary name beside its final `path`.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl Staged {
    /// A new, empty temporary file beside `path`.
    pub fn new(path: &Path) -> io::Result<Staged> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempfile_in(dir)?;
        Ok(Staged {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Where the temporary file is (for a tool that writes by path).
    pub fn tmp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Where the file goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the content (opened anew by path: a tool given the path may have replaced the
    /// file), sets `mode` and renames the file into place. The directory is not synced: see
    /// [`commit_all`].
    fn persist(self, mode: u32) -> io::Result<PathBuf> {
        File::open(self.tmp.path())?.sync_all()?;
        std::fs::set_permissions(self.tmp.path(), std::fs::Permissions::from_mode(mode))?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(self.path)
    }

    /// [`commit_all`] of this one file (the caller knows its path).
    pub fn commit(self, mode: u32) -> io::Result<()> {
        commit_all(vec![self], mode).map_err(|e| e.error)
    }
}

/// A file (or its directory) that [`commit_all`] could not put in place.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", .path.display())]
pub struct CommitError {
    /// The file's final path, or the directory that could not be synced.
    pub path: PathBuf,
    /// What the kernel said.
    #[source]
    pub error: io::Error,
}

/// Puts every staged file in place, in order, with `mode`, then syncs each directory once.
/// On an error the files not yet renamed are removed; the error names the file.
pub fn commit_all(staged: Vec<Staged>, mode: u32) -> Result<(), CommitError> {
    let mut dirs = BTreeSet::new();
    for s in staged {
        let path = s.path.clone();
        let path = s
            .persist(mode)
            .map_err(|error| CommitError { path, error })?;
        if let Some(d) = path.parent() {
            dirs.insert(d.to_path_buf());
        }
    }
    for d in dirs {
        let d = if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d
        };
        sync_dir(&d).map_err(|error| CommitError { path: d, error })?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with `mode`.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let staged = Staged::new(path)?;
    staged.file().write_all(bytes)?;
    staged.commit(mode)
}

/// Syncs a directory, so that the renames in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn write_replaces_with_mode_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        std::fs::write(&p, "old").unwrap();
        write(&p, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn staged_file_dropped_is_removed_and_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.img");
        let s = Staged::new(&p).unwrap();
        std::fs::write(s.tmp_path(), "written by a tool").unwrap();
        assert!(s.tmp_path().starts_with(d.path()));
        drop(s);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_all_puts_every_file_in_place() {
        let d = tempfile::tempdir().unwrap();
        let a = Staged::new(&d.path().join("a")).unwrap();
        let b = Staged::new(&d.path().join("b")).unwrap();
        a.file().write_all(b"1").unwrap();
        // A tool that replaces the file at the temporary path.
        std::fs::write(b.tmp_path(), "2").unwrap();
        commit_all(vec![a, b], 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(d.path().join("b")).unwrap(), "2");
        let m = std::fs::metadata(d.path().join("b")).unwrap().mode() & 0o777;
        assert_eq!(m, 0o644);
    }

    #[test]
    fn commit_all_error_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("out.iso");
        let s = Staged::new(&target).unwrap();
        // A directory in the way: the rename fails.
        std::fs::create_dir_all(target.join("x")).unwrap();
        let e = commit_all(vec![s], 0o644).unwrap_err();
        assert_eq!(e.path, target);
        assert!(
            e.to_string().starts_with(&target.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn write_into_missing_directory_fails() {
        let d = tempfile::tempdir().unwrap();
        assert!(write(&d.path().join("no/such/file"), b"x", 0o644).is_err());
    }
}
