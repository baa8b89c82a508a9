//! Backups of the file systems in the saved layout, and their restore in the rescue system.
//!
//! Input: the saved [`Layout`] (its mounts are what is backed up, one file system at a time),
//! a backup URL ([`url::BackupUrl`]) and a method. Output: a backup in the backup directory
//! and a [`config::Config`] that the image carries as `/etc/rear/backup.json`, so
//! `rear-restore restore` finds the backup and streams it into `/mnt/local`.
//!
//! [`BackupMethod`] is the seam: the built-in [`tar::TarMethod`] and recipe-driven external
//! programs ([`recipe::RecipeMethod`]: restic, borg, rsync, a vendor's agent).
//!
//! ## Why GNU tar, driven through [`crate::exec`], and not the `tar` crate
//! The backup must keep hard links, symlinks, device nodes, sparse files, owners, modes,
//! timestamps, all xattrs, POSIX ACLs and SELinux labels, stay on one file system per mount
//! and honour exclude patterns. GNU tar does all of that (`--format=pax --xattrs --acls
//! --selinux --sparse --one-file-system --exclude`) and is on every system and in every
//! rescue image; its pax output is readable by any tar. The `tar` crate writes neither ACLs
//! nor SELinux labels nor sparse entries and cannot restore ACLs, so we would reimplement
//! most of GNU tar and own its bugs. What GNU tar does not do well is done in-process as the
//! bytes stream through: multithreaded zstd (the `zstd` crate's `zstdmt`) and SHA-256
//! (`sha2`) on the way out, SHA-256 and zstd decoding on the way back, and a file list read
//! from the tar headers going by ([`stream::TarObserver`]), so no second pass is needed.

pub mod cli;
pub use rear_model::backup::config;
pub mod locate;
pub mod recipe;
pub mod stream;
pub mod tar;
pub use rear_model::backup::url;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec;
use crate::layout::Layout;
use config::{Config, Location, Method};
use url::BackupUrl;

/// The file beside a backup that describes it ([`Info`]).
pub const INFO: &str = "backup.json";

/// Errors of making, finding and restoring backups; each names its object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backup URL is malformed.
    #[error(transparent)]
    Url(#[from] url::UrlError),
    /// The backup configuration is unreadable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A host read failed.
    #[error(transparent)]
    Sysroot(#[from] crate::sysroot::Error),
    /// A program could not be started.
    #[error(transparent)]
    Tool(#[from] exec::Error),
    /// A program failed while doing `what`.
    #[error("{what}: {error}")]
    Exec {
        /// What it was doing.
        what: String,
        /// How it failed.
        error: exec::Error,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// The backup file is shorter than what was written.
    #[error(
        "backup {} is truncated: {size} bytes{}",
        .path.display(),
        if *.expected > 0 { format!(", the backup wrote {expected}") } else { String::new() }
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The size written at backup time (0 when unknown).
        expected: u64,
    },
    /// The backup file does not decode.
    #[error("backup {} is corrupt: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The backup file's SHA-256 differs from the one written beside it.
    #[error(
        "backup {} is corrupt: SHA-256 {actual}, expected {expected}; do not use what was restored",
        .path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The recorded SHA-256.
        expected: String,
        /// The SHA-256 read.
        actual: String,
    },
    /// The file system of a backup directory cannot be identified for the rescue system.
    #[error("backup directory {}: {reason}", .dir.display())]
    Locate {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// Something the restore needs was not found.
    #[error("{what} not found: {hint}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// What to do.
        hint: String,
    },
    /// A backup recipe is invalid.
    #[error("backup recipe {origin}: {message}")]
    Recipe {
        /// The file or `builtin:backup/NAME`.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// No such method.
    #[error("unknown backup method {name:?} (known: {known}; or a recipe file)")]
    UnknownMethod {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// The layout's mount point to back up is missing.
    #[error("{}: mount point of the saved layout is missing (is {mount} mounted?)", .path.display())]
    SourceMissing {
        /// The directory.
        path: PathBuf,
        /// The mount point in the layout.
        mount: String,
    },
    /// The layout has no file systems to back up.
    #[error("the saved layout {0} has no mounted file systems to back up")]
    NothingToBackUp(String),
    /// A backup location this program cannot write (yet).
    #[error("backup URL {url}: {reason}")]
    Unsupported {
        /// The URL.
        url: String,
        /// Why and what to do instead.
        reason: String,
    },
}

/// What a backup run gets.
#[derive(Debug, Clone, Copy)]
pub struct BackupJob<'a> {
    /// The configuration (copied into [`INFO`]).
    pub config: &'a Config,
    /// The real directory the host's `/` is (`/`, or `--root DIR`).
    pub root: &'a Path,
    /// File systems to back up, as absolute host paths (`/`, `/boot`), parents first.
    pub sources: &'a [PathBuf],
    /// Exclude patterns, absolute.
    pub excludes: &'a [String],
    /// The backup directory (exists).
    pub dest: &'a Path,
    /// Show a progress bar.
    pub progress: bool,
    /// Bytes expected (for the progress bar), when known.
    pub estimate: Option<u64>,
}

/// What a backup did.
#[derive(Debug, Clone, Default)]
pub struct BackupReport {
    /// The backup directory.
    pub dir: PathBuf,
    /// The archive (built-in method).
    pub archive: Option<PathBuf>,
    /// Archive size in bytes.
    pub size: u64,
    /// Archive SHA-256.
    pub sha256: Option<String>,
    /// Archive members.
    pub members: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Warnings (files changed while read).
    pub warnings: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// The archive read (built-in method).
    pub archive: Option<PathBuf>,
    /// Uncompressed bytes streamed into tar.
    pub bytes: u64,
    /// The SHA-256 verified.
    pub sha256: Option<String>,
}

/// A way to make and restore backups.
pub trait BackupMethod {
    /// Its name (`tar`, `restic`).
    fn name(&self) -> &str;
    /// What the rescue image needs to restore with it.
    fn image_recipe(&self) -> rear_model::recipe::Recipe;
    /// Backs up `job.sources` into `job.dest`.
    fn backup(&self, job: &BackupJob<'_>) -> Result<BackupReport, Error>;
    /// Restores the backup in `dir` into `target`.
    fn restore(&self, dir: &Path, target: &Path, progress: bool) -> Result<RestoreReport, Error>;
    /// Checks the backup in `dir` without restoring it.
    fn check(&self, dir: &Path) -> Result<(), Error>;
}

/// The method of a configuration.
pub fn method(m: &Method) -> Result<Box<dyn BackupMethod>, Error> {
    Ok(match m {
        Method::Tar => Box::new(tar::TarMethod),
        Method::Recipe { name, text } => Box::new(recipe::RecipeMethod::parse(
            name,
            &format!("{name} (from the backup configuration)"),
            text,
        )?),
    })
}

/// What the rescue image needs to restore the backup `config` describes: the method's
/// programs, plus `blkid` and `mount` to find and mount the backup's file system (and the
/// NFS mount helper for a share).
pub fn image_recipe(config: &Config) -> Result<rear_model::recipe::Recipe, Error> {
    use rear_model::recipe::Item;
    let mut r = method(&config.method)?.image_recipe();
    r.file.programs.push(Item::Name("blkid".into()));
    r.file.programs.push(Item::Name("mount".into()));
    r.file.programs.push(Item::Name("umount".into()));
    if config.location.as_ref().is_some_and(Location::is_network) {
        r.file.programs.push(Item::Name("mount.nfs".into()));
    }
    // The backup's file system driver (the kernel may have it built in).
    if let Some(fstype) = config
        .location
        .as_ref()
        .map(|l| l.fstype.as_str())
        .filter(|t| !t.is_empty())
    {
        r.file.modules.push(Item::Table {
            name: fstype.to_string(),
            optional: true,
        });
    }
    Ok(r)
}

/// Describes a backup, written beside it as [`INFO`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Info {
    /// Format version.
    pub version: u32,
    /// The configuration the backup was made with.
    pub config: Config,
    /// The archive file (built-in method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// Archive size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Archive SHA-256.
    #[serde(default)]
    pub sha256: String,
    /// Archive members.
    #[serde(default)]
    pub members: u64,
    /// Bytes of file content.
    #[serde(default)]
    pub bytes: u64,
    /// Bytes of the uncompressed tar stream.
    #[serde(default)]
    pub raw: u64,
}

impl Info {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Plain strings and numbers always serialise.
        #[allow(clippy::expect_used)]
        let mut s = serde_json::to_string_pretty(self).expect("backup info serialises");
        s.push('\n');
        s
    }

    /// Reads an info file.
    pub fn load(path: &Path) -> Result<Info, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// What `--backup-url`, `--backup-method` and `--exclude` ask for.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the backup goes.
    pub url: BackupUrl,
    /// `tar`, a recipe name or a recipe file.
    pub method: String,
    /// Exclude patterns (absolute paths, globs).
    pub excludes: Vec<String>,
    /// The host name, for messages and recipes.
    pub hostname: String,
}

/// Label of the ISO volume that would carry a backup.
const ISO_LABEL: &str = rear_model::labels::ISO_VOLUME;
/// Label of the USB image's data partition.
const USB_LABEL: &str = rear_model::labels::USB_DATA;
/// The directory of the ISO that holds a `--backup-url iso` backup.
pub const ISO_DIR: &str = "rear";

/// Checks the settings and resolves where the backup goes: the configuration for the image
/// and the directory to write to (created; `None` for `iso`, which the build writes into
/// the ISO it makes). Warnings (a location the rescue system cannot find by itself) are
/// returned, not hidden.
pub fn prepare(s: &Settings) -> Result<(Config, Option<PathBuf>, Vec<String>), Error> {
    let method = if s.method == "tar" {
        Method::Tar
    } else {
        let m = recipe::RecipeMethod::load(&s.method)?;
        Method::Recipe {
            name: m.name,
            text: m.text,
        }
    };
    for e in &s.excludes {
        if !e.starts_with('/') {
            return Err(Error::Recipe {
                origin: "--exclude".into(),
                message: format!(
                    "exclude pattern {e:?} must be an absolute path (like /var/tmp/*)"
                ),
            });
        }
    }
    let config = |location| Config {
        version: config::CONFIG_VERSION,
        hostname: s.hostname.clone(),
        method: method.clone(),
        url: s.url.clone(),
        location,
        excludes: s.excludes.clone(),
    };
    let mut warnings = Vec::new();
    let dir = match &s.url {
        BackupUrl::File(p) => p.clone(),
        BackupUrl::Usb(p) => {
            locate::mounted_with_label(USB_LABEL)?.join(p.strip_prefix("/").unwrap_or(p))
        }
        BackupUrl::Iso if method == Method::Tar => {
            // The rescue system finds its boot medium by the ISO's volume label.
            let on_iso = Location {
                fstype: "iso9660".into(),
                label: ISO_LABEL.into(),
                subpath: PathBuf::from("/").join(ISO_DIR),
                ..Location::default()
            };
            return Ok((config(Some(on_iso)), None, warnings));
        }
        other => {
            return Err(Error::Unsupported {
                url: other.to_string(),
                reason: match other {
                    BackupUrl::Iso => format!(
                        "the ISO carries backups of the built-in tar method only; write a {} backup to a disk (file:///path) or to the USB stick's {USB_LABEL} partition (usb)",
                        s.method
                    ),
                    _ => "label:// and uuid:// name a backup to restore from; give file:///path to back up".into(),
                },
            });
        }
    };
    std::fs::create_dir_all(&dir).map_err(|error| Error::Io {
        path: dir.clone(),
        error,
    })?;
    let location = match locate::locate(&dir) {
        Ok(l) => Some(l),
        Err(e) => {
            warnings.push(format!(
                "{e}; the rescue system will need `rear-restore restore --backup-url URL`"
            ));
            None
        }
    };
    Ok((config(location), Some(dir), warnings))
}

/// The file systems to back up: the layout's mount points, parents first, once each.
pub fn sources(layout: &Layout) -> Vec<PathBuf> {
    let mut seen = Vec::new();
    let mut mounts: Vec<&str> = layout.mounts.iter().map(|m| m.target.as_str()).collect();
    mounts.sort_by_key(|t| {
        (
            if *t == "/" { 0 } else { t.matches('/').count() },
            t.to_string(),
        )
    });
    for t in mounts {
        let p = PathBuf::from(t);
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen
}

/// Backs up the file systems of `layout` below `root` as `config` says, into `dest`; also
/// writes the configuration beside the backup. `layout_name` names the layout in errors.
/// `dest` and the directories in `skip` (the build's output directory: its ISOs may hold
/// older backups) are left out when they lie below `root`.
pub fn backup(
    config: &Config,
    layout: &Layout,
    layout_name: &str,
    root: &Path,
    dest: &Path,
    skip: &[&Path],
    progress: bool,
) -> Result<BackupReport, Error> {
    let srcs = sources(layout);
    if srcs.is_empty() {
        return Err(Error::NothingToBackUp(layout_name.to_string()));
    }
    let mut estimate = 0u64;
    for s in &srcs {
        let real = root.join(s.strip_prefix("/").unwrap_or(s));
        if !real.is_dir() {
            return Err(Error::SourceMissing {
                path: real,
                mount: s.display().to_string(),
            });
        }
        if let Ok(st) = nix::sys::statvfs::statvfs(&real) {
            estimate += (st.blocks() - st.blocks_free()) * st.fragment_size();
        }
    }
    // The backup must not contain itself when it is written below a backed-up tree.
    let mut excludes = config.excludes.clone();
    if let Ok(r) = std::fs::canonicalize(root) {
        for dir in std::iter::once(dest).chain(skip.iter().copied()) {
            if let Ok(d) = std::fs::canonicalize(dir)
                && let Ok(rel) = d.strip_prefix(&r)
                && !rel.as_os_str().is_empty()
            {
                excludes.push(format!("/{}", rel.display()));
            }
        }
    }
    let m = method(&config.method)?;
    m.backup(&BackupJob {
        config,
        root,
        sources: &srcs,
        excludes: &excludes,
        dest,
        progress,
        estimate: Some(estimate),
    })
}

/// Finds the backup directory in the rescue system: `url` when given, else the
/// configuration's location (mounted read-only at [`locate::MOUNT_POINT`]), else its
/// `file://` path if that exists here.
pub fn find(config: Option<&Config>, url: Option<&BackupUrl>) -> Result<locate::Mounted, Error> {
    let mp = Path::new(locate::MOUNT_POINT);
    let by_label = |label: &str, fstype: &str, path: &Path| {
        locate::mount_location(
            &Location {
                fstype: fstype.to_string(),
                label: label.to_string(),
                subpath: path.to_path_buf(),
                ..Location::default()
            },
            mp,
        )
    };
    match url {
        Some(BackupUrl::File(p)) => {
            if !p.is_dir() {
                return Err(Error::NotFound {
                    what: format!("backup directory {}", p.display()),
                    hint: "mount the disk or share holding it first".into(),
                });
            }
            Ok(locate::Mounted::plain(p.clone()))
        }
        Some(BackupUrl::Label { label, path }) => by_label(label, "", path),
        Some(BackupUrl::Uuid { uuid, path }) => locate::mount_location(
            &Location {
                uuid: uuid.clone(),
                subpath: path.clone(),
                ..Location::default()
            },
            mp,
        ),
        Some(BackupUrl::Usb(p)) => by_label(USB_LABEL, "ext4", p),
        Some(BackupUrl::Iso) => by_label(ISO_LABEL, "iso9660", &Path::new("/").join(ISO_DIR)),
        None => {
            let c = config.ok_or_else(|| Error::NotFound {
                what: format!("backup configuration {}", config::CONFIG_IN_IMAGE),
                hint: "give --backup-url".into(),
            })?;
            if let Some(loc) = &c.location {
                return locate::mount_location(loc, mp);
            }
            find(None, Some(&c.url))
        }
    }
}

/// Restores into `target` (normally `/mnt/local`): finds the backup ([`find`]), then runs
/// the configuration's method; with only a URL, the method comes from the [`INFO`] file
/// beside the backup.
pub fn restore(
    config: Option<&Config>,
    url: Option<&BackupUrl>,
    target: &Path,
    progress: bool,
) -> Result<RestoreReport, Error> {
    let found = find(config, url)?;
    let info_path = found.dir.join(INFO);
    let method_of = match config {
        Some(c) => c.method.clone(),
        None => Info::load(&info_path)?.config.method,
    };
    let m = method(&method_of)?;
    log::info!(
        "restoring the {} backup in {} into {}",
        m.name(),
        found.dir.display(),
        target.display()
    );
    let report = m.restore(&found.dir, target, progress)?;
    drop(found);
    Ok(report)
}

/// A progress bar with bytes and rate on stderr; nothing when off.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A bar for `total` bytes (a spinner when unknown); `show` false gives none.
    pub fn new(show: bool, total: Option<u64>, what: &str) -> Progress {
        if !show {
            return Progress(None);
        }
        let bar = match total {
            Some(t) if t > 0 => indicatif::ProgressBar::new(t),
            _ => indicatif::ProgressBar::new_spinner(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} {bytes}/{total_bytes} {binary_bytes_per_sec} [{wide_bar}] {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what.to_string());
        Progress(Some(bar))
    }

    /// Sets the bytes done.
    pub fn set(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.set_position(n);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::layout::model::Mount;

    #[test]
    fn sources_are_parents_first_and_unique() {
        let layout = Layout {
            mounts: ["/boot/efi", "/home", "/", "/boot", "/home"]
                .iter()
                .map(|t| Mount {
                    target: t.to_string(),
                    ..Mount::default()
                })
                .collect(),
            ..Layout::default()
        };
        let s: Vec<String> = sources(&layout)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(s, ["/", "/boot", "/home", "/boot/efi"]);
    }
}
