//! The built-in method: GNU tar writes a pax stream; this process compresses it with
//! multithreaded zstd and hashes it on the way to the backup file, and on restore hashes
//! and decompresses it on the way into `tar -x`.
//!
//! Files in the backup directory:
//!
//! | file | content |
//! |---|---|
//! | `backup.tar.zst` | the pax archive, zstd-compressed (frame checksums on) |
//! | `backup.tar.zst.sha256` | `HEX  backup.tar.zst`, as `sha256sum -c` reads it |
//! | `backup.files` | one line per member: `TYPE<TAB>SIZE<TAB>NAME[<TAB>LINK]` |
//! | `backup.json` | [`super::Info`]: method, URL, size, SHA-256, counts |

use crate::atomic::Staged;
use std::ffi::OsString;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::stream::{HashReader, HashWriter, TarObserver, file_list};
use super::{BackupJob, BackupMethod, BackupReport, Error, Info, Progress, RestoreReport};
use crate::exec;
use rear_model::recipe::{Item, Recipe, RecipeFile};

/// The archive's file name.
pub const ARCHIVE: &str = "backup.tar.zst";
/// The checksum file's name.
pub const SHA256: &str = "backup.tar.zst.sha256";
/// The file list's name.
pub const FILE_LIST: &str = "backup.files";

/// zstd level: 3 (zstd's default) keeps up with disks on a few cores; higher levels make
/// the backup CPU-bound for little gain on already-compressed data.
const ZSTD_LEVEL: i32 = 3;
/// Read and pipe buffer size.
const BUF: usize = 1 << 20;

/// Options that make GNU tar keep everything the backup promises: pax headers for long names
/// and xattrs, all xattr namespaces (user, trusted, security incl. SELinux labels), POSIX
/// ACLs, sparse files, numeric owners.
const KEEP: &[&str] = &[
    "--format=pax",
    "--xattrs",
    "--xattrs-include=*",
    "--acls",
    "--selinux",
    "--sparse",
];

/// The built-in tar + zstd method.
#[derive(Debug, Default, Clone, Copy)]
pub struct TarMethod;

/// The `tar --create` arguments for `sources` (absolute host paths such as `/` and `/boot`)
/// below `root`, one file system each, with `excludes` (absolute patterns).
pub fn create_args(root: &Path, sources: &[PathBuf], excludes: &[String]) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--create".into(),
        "--file=-".into(),
        format!("--directory={}", root.display()).into(),
        "--one-file-system".into(),
        "--numeric-owner".into(),
        // Sockets are recreated by their programs; tar says so on every one.
        "--warning=no-file-ignored".into(),
    ];
    a.extend(KEEP.iter().map(OsString::from));
    if !excludes.is_empty() {
        a.push("--anchored".into());
        a.push("--wildcards".into());
        for e in excludes {
            a.push(format!("--exclude=.{}", e.trim_end_matches('/')).into());
        }
    }
    a.push("--".into());
    for s in sources {
        a.push(relative(s));
    }
    a
}

/// `/` -> `.`, `/boot` -> `./boot`: member names all start with `./`, so excludes match
/// the same way on every file system.
fn relative(p: &Path) -> OsString {
    let rel = p.strip_prefix("/").unwrap_or(p);
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        Path::new(".").join(rel).into_os_string()
    }
}

/// The `tar --extract` arguments into `target`.
pub fn extract_args(target: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--extract".into(),
        "--file=-".into(),
        format!("--directory={}", target.display()).into(),
        "--numeric-owner".into(),
        "--same-owner".into(),
        "--preserve-permissions".into(),
        // Mount points such as ./boot already exist in the recreated tree.
        "--overwrite-dir".into(),
    ];
    a.extend(KEEP.iter().map(OsString::from));
    a
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Writes `bytes` to `dir/name` through a temporary file; returns it for [`commit`].
pub(super) fn stage(dir: &Path, name: &str, bytes: &[u8]) -> Result<Staged, Error> {
    let path = dir.join(name);
    let staged = Staged::new(&path).map_err(io(&path))?;
    staged.file().write_all(bytes).map_err(io(&path))?;
    Ok(staged)
}

/// Puts staged files in place, in order, readable by root only, and syncs the directory.
pub(super) fn commit(staged: Vec<Staged>) -> Result<(), Error> {
    crate::atomic::commit_all(staged, 0o600).map_err(|e| Error::Io {
        path: e.path,
        error: e.error,
    })
}

/// The hex digest of a `sha256sum` line for `name`.
pub fn parse_sha256(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let hex = line.split_whitespace().next()?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// Makes the pipe to `tar -x` larger (1 MiB instead of 64 KiB): fewer context switches
/// between this process and tar when data flows at disk speed.
fn widen_pipe(fd: &impl std::os::fd::AsFd) {
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(BUF as i32));
}

impl BackupMethod for TarMethod {
    fn name(&self) -> &str {
        "tar"
    }

    fn image_recipe(&self) -> Recipe {
        Recipe {
            name: "backup-tar".into(),
            origin: "builtin:backup-tar".into(),
            file: RecipeFile {
                description: "GNU tar to unpack the built-in backup".into(),
                programs: vec![Item::Name("tar".into())],
                ..RecipeFile::default()
            },
        }
    }

    fn backup(&self, job: &BackupJob<'_>) -> Result<BackupReport, Error> {
        let dir = job.dest;
        let archive = dir.join(ARCHIVE);
        let mut cmd = Command::new("tar");
        cmd.args(create_args(job.root, job.sources, job.excludes));
        let mut child = exec::spawn(&mut cmd, Some("tar"))?;
        drop(child.stdin());
        let Some(mut stdout) = child.stdout() else {
            child.kill();
            return Err(Error::Io {
                path: archive,
                error: std::io::Error::other("tar's stdout is not a pipe"),
            });
        };
        let tmp = Staged::new(&archive).map_err(io(&archive))?;
        let progress = Progress::new(job.progress, job.estimate, "backup");
        let mut observer = TarObserver::default();
        let result = (|| -> Result<(String, u64, u64), Error> {
            let hw = HashWriter::new(BufWriter::with_capacity(BUF, tmp.file()));
            let mut enc =
                zstd::stream::write::Encoder::new(hw, ZSTD_LEVEL).map_err(io(&archive))?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            enc.multithread(threads).map_err(io(&archive))?;
            enc.include_checksum(true).map_err(io(&archive))?;
            let mut buf = vec![0u8; BUF];
            let mut raw = 0u64;
            loop {
                let n = match stdout.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        return Err(Error::Io {
                            path: PathBuf::from("<tar output>"),
                            error,
                        });
                    }
                };
                observer.feed(&buf[..n]);
                enc.write_all(&buf[..n]).map_err(io(&archive))?;
                raw += n as u64;
                progress.set(raw);
            }
            let hw = enc.finish().map_err(io(&archive))?;
            let (mut w, sha, size) = hw.finish();
            w.flush().map_err(io(&archive))?;
            drop(w);
            Ok((sha, size, raw))
        })();
        progress.finish();
        let (sha256, size, raw) = match result {
            Ok(v) => v,
            Err(e) => {
                child.kill();
                return Err(e);
            }
        };
        let (status, stderr) = child.wait(&[1]).map_err(|error| Error::Exec {
            what: format!("writing the backup {}", archive.display()),
            error,
        })?;
        let mut warnings = Vec::new();
        if !status.success() {
            // GNU tar's exit code 1: files changed while being read; the archive is complete.
            warnings.push(format!("tar: {stderr}"));
        }
        if let Some(e) = &observer.error {
            return Err(Error::Corrupt {
                path: archive,
                reason: format!("tar wrote an archive this program cannot read: {e}"),
            });
        }
        if !observer.ended {
            return Err(Error::Corrupt {
                path: archive,
                reason: "tar's output has no end-of-archive marker".into(),
            });
        }
        let members = observer.members.len();
        let bytes: u64 = observer.members.iter().map(|m| m.size).sum();
        let info = Info {
            version: super::config::CONFIG_VERSION,
            config: job.config.clone(),
            archive: Some(ARCHIVE.to_string()),
            size,
            sha256: sha256.clone(),
            members: members as u64,
            bytes,
            raw,
        };
        let all = vec![
            tmp,
            stage(dir, FILE_LIST, file_list(&observer.members).as_bytes())?,
            stage(dir, super::INFO, info.to_json().as_bytes())?,
            // The checksum last: its presence says the backup is complete.
            stage(dir, SHA256, format!("{sha256}  {ARCHIVE}\n").as_bytes())?,
        ];
        commit(all)?;
        Ok(BackupReport {
            dir: dir.to_path_buf(),
            archive: Some(archive),
            size,
            sha256: Some(sha256),
            members: members as u64,
            bytes,
            warnings,
        })
    }

    fn restore(&self, dir: &Path, target: &Path, show: bool) -> Result<RestoreReport, Error> {
        let archive = dir.join(ARCHIVE);
        let sums = dir.join(SHA256);
        let file = std::fs::File::open(&archive).map_err(io(&archive))?;
        let actual_size = file.metadata().map_err(io(&archive))?.size();
        let expected = parse_sha256(&std::fs::read_to_string(&sums).map_err(io(&sums))?)
            .ok_or_else(|| Error::Corrupt {
                path: sums.clone(),
                reason: "no SHA-256 in it".into(),
            })?;
        // The size recorded at backup time tells a truncated file before anything is written.
        let info = Info::load(&dir.join(super::INFO)).ok();
        if let Some(i) = &info
            && i.size != actual_size
        {
            return Err(Error::Truncated {
                path: archive,
                size: actual_size,
                expected: i.size,
            });
        }
        if !target.is_dir() {
            return Err(Error::Io {
                path: target.to_path_buf(),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "restore target is not a directory",
                ),
            });
        }
        let mut cmd = Command::new("tar");
        cmd.args(extract_args(target));
        let mut child = exec::spawn(&mut cmd, Some("tar"))?;
        drop(child.stdout());
        let Some(mut stdin) = child.stdin() else {
            child.kill();
            return Err(Error::Io {
                path: target.to_path_buf(),
                error: std::io::Error::other("tar's stdin is not a pipe"),
            });
        };
        widen_pipe(&stdin);
        let progress = Progress::new(show, Some(actual_size), "restore");
        let reader = HashReader::new(file);
        let mut dec = match zstd::stream::read::Decoder::with_buffer(
            std::io::BufReader::with_capacity(BUF, reader),
        ) {
            Ok(d) => d,
            Err(error) => {
                child.kill();
                return Err(Error::Io {
                    path: archive,
                    error,
                });
            }
        };
        let mut buf = vec![0u8; BUF];
        let mut raw = 0u64;
        let mut tar_closed = false;
        let decoded: Result<(), std::io::Error> = loop {
            let n = match dec.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            raw += n as u64;
            if !tar_closed && let Err(e) = stdin.write_all(&buf[..n]) {
                // tar stopped reading (it failed, or saw the end of the archive); its
                // status says which.
                log::debug!("tar stopped reading: {e}");
                tar_closed = true;
            }
            progress.set(dec.get_ref().get_ref().count());
        };
        drop(stdin);
        progress.finish();
        let consumed = dec.get_ref().get_ref().count();
        if let Err(e) = decoded {
            child.kill();
            log::debug!("zstd: {e} ({:?})", e.kind());
            // zstd says UnexpectedEof ("incomplete frame") when the input ends inside a
            // frame; anything else is damage inside the file.
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Truncated {
                    path: archive,
                    size: actual_size,
                    expected: info.map_or(0, |i| i.size),
                }
            } else {
                Error::Corrupt {
                    path: archive,
                    reason: format!("zstd: {e} (near byte {consumed} of {actual_size})"),
                }
            });
        }
        let (sha256, _) = dec.finish().into_inner().finish().map_err(io(&archive))?;
        let waited = child.wait(&[]);
        if sha256 != expected {
            return Err(Error::Checksum {
                path: archive,
                expected,
                actual: sha256,
            });
        }
        waited.map_err(|error| Error::Exec {
            what: format!("restoring {} into {}", archive.display(), target.display()),
            error,
        })?;
        Ok(RestoreReport {
            archive: Some(archive),
            bytes: raw,
            sha256: Some(sha256),
        })
    }

    fn check(&self, dir: &Path) -> Result<(), Error> {
        let archive = dir.join(ARCHIVE);
        let sums = dir.join(SHA256);
        let expected = parse_sha256(&std::fs::read_to_string(&sums).map_err(io(&sums))?)
            .ok_or_else(|| Error::Corrupt {
                path: sums.clone(),
                reason: "no SHA-256 in it".into(),
            })?;
        let file = std::fs::File::open(&archive).map_err(io(&archive))?;
        let (actual, _) = HashReader::new(file).finish().map_err(io(&archive))?;
        if actual != expected {
            return Err(Error::Checksum {
                path: archive,
                expected,
                actual,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_args_one_fs_each_with_anchored_excludes() {
        let a = create_args(
            Path::new("/"),
            &["/".into(), "/boot".into()],
            &["/var/tmp/*".into(), "/srv/backup/".into()],
        );
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let text = a.join(" ");
        assert!(
            text.starts_with("--create --file=- --directory=/ --one-file-system"),
            "{text}"
        );
        assert!(
            text.contains("--xattrs --xattrs-include=* --acls --selinux --sparse"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "--anchored --wildcards --exclude=./var/tmp/* --exclude=./srv/backup -- . ./boot"
            ),
            "{text}"
        );
    }

    #[test]
    fn parse_sha256_reads_sha256sum_lines() {
        let h = "a".repeat(64);
        assert_eq!(parse_sha256(&format!("{h}  backup.tar.zst\n")), Some(h));
        assert_eq!(parse_sha256("xyz  backup.tar.zst\n"), None);
        assert_eq!(parse_sha256(""), None);
    }
}
