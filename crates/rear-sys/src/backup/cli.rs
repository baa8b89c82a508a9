//! The command-line side of backups, shared by the binaries so they stay one call each:
//! `rear-mkimage backup`, the build's `--backup`, and `rear-restore restore`.

use std::path::{Path, PathBuf};

use super::config::{CONFIG_IN_IMAGE, Config};
use super::url::BackupUrl;
use super::{BackupReport, Error, RestoreReport, Settings};
use crate::layout::Layout;

/// Where the backup goes and how it is made.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Where the backup goes: file:///path (a local or mounted disk, NFS mount, USB stick),
    /// usb / usb:///dir (the REAR-DATA partition of a stick written with --output usb), or
    /// iso (inside the ISO of this build: --output iso --backup).
    #[arg(long, value_name = "URL")]
    pub backup_url: Option<BackupUrl>,
    /// tar (built in), restic, borg, rsync, or a backup recipe file.
    #[arg(long, value_name = "NAME|FILE", default_value = "tar")]
    pub backup_method: String,
    /// Leave out paths matching PATTERN (absolute, with * ? [...]); repeatable.
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
}

/// The build's `--backup`: the image plus a backup, with the backup configuration in it.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildBackupArgs {
    /// Also back up the file systems of --layout and put what restore needs into the image.
    #[arg(long, requires = "backup_url")]
    pub backup: bool,
    /// Where and how.
    #[command(flatten)]
    pub opts: BackupArgs,
}

/// A backup resolved before the build: the configuration for the image and the directory.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Goes into the image as `/etc/rear/backup.json`.
    pub config: Config,
    /// Where the backup is written (`None`: into the ISO, by the build).
    pub dest: Option<PathBuf>,
    /// Things the operator should know (printed by the caller).
    pub warnings: Vec<String>,
}

impl BackupArgs {
    /// Resolves the URL and method for the host at `root`.
    pub fn prepare(&self, root: &Path) -> Result<Prepared, Error> {
        let url = self.backup_url.clone().ok_or_else(|| Error::NotFound {
            what: "backup location".into(),
            hint: "give --backup-url file:///path".into(),
        })?;
        let sys = crate::sysroot::Sysroot::new(root)?;
        let (config, dest, warnings) = super::prepare(&Settings {
            url,
            method: self.backup_method.clone(),
            excludes: self.excludes.clone(),
            hostname: sys.hostname(),
        })?;
        Ok(Prepared {
            config,
            dest,
            warnings,
        })
    }
}

impl BuildBackupArgs {
    /// `None` without `--backup`.
    pub fn prepare(&self, root: &Path) -> Result<Option<Prepared>, Error> {
        if !self.backup {
            return Ok(None);
        }
        self.opts.prepare(root).map(Some)
    }
}

/// Reads a layout file for its mounts.
pub fn read_layout(path: &Path) -> Result<Layout, Error> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    Layout::from_json(&text, &path.display().to_string()).map_err(|e| Error::Recipe {
        origin: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Runs a prepared backup of the file systems in the layout file below `root`.
pub fn run(
    p: &Prepared,
    layout: &Path,
    root: &Path,
    progress: bool,
) -> Result<BackupReport, Error> {
    let l = read_layout(layout)?;
    let dest = p.dest.as_ref().ok_or_else(|| Error::Unsupported {
        url: p.config.url.to_string(),
        reason: "a backup inside the ISO is made with the ISO: rear-mkimage --output iso --backup --backup-url iso".into(),
    })?;
    super::backup(
        &p.config,
        &l,
        &layout.display().to_string(),
        root,
        dest,
        &[],
        progress,
    )
}

/// `rear-mkimage backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupCommand {
    /// Where and how.
    #[command(flatten)]
    pub opts: BackupArgs,
    /// The saved layout whose file systems are backed up.
    #[arg(long, value_name = "FILE")]
    pub layout: PathBuf,
    /// The system to back up (default: the running system).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

impl BackupCommand {
    /// Prepares and runs the backup; warnings go to the log.
    pub fn run(&self, progress: bool) -> Result<BackupReport, Error> {
        let p = self.opts.prepare(&self.root)?;
        for w in &p.warnings {
            log::warn!("{w}");
        }
        run(&p, &self.layout, &self.root, progress)
    }
}

/// `rear-restore restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreCommand {
    /// Where the backup is: file:///path, label://LABEL/dir, uuid://UUID/dir, usb, iso
    /// (default: what the image's backup configuration says).
    #[arg(long, value_name = "URL")]
    pub backup_url: Option<BackupUrl>,
    /// Where to restore to.
    #[arg(long, value_name = "DIR", default_value = rear_model::layout::model::MOUNT_ROOT)]
    pub target: PathBuf,
    /// The backup configuration.
    #[arg(long, value_name = "FILE", default_value = CONFIG_IN_IMAGE)]
    pub config: PathBuf,
}

impl RestoreCommand {
    /// Finds the backup and restores it; a missing configuration is fine with --backup-url.
    pub fn run(&self, progress: bool) -> Result<RestoreReport, Error> {
        let config = match Config::load(&self.config) {
            Ok(c) => Some(c),
            Err(super::config::ConfigError::Read { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound && self.backup_url.is_some() =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        };
        super::restore(
            config.as_ref(),
            self.backup_url.as_ref(),
            &self.target,
            progress,
        )
    }
}

impl BackupReport {
    /// One line for the operator.
    pub fn summary(&self) -> String {
        match (&self.archive, &self.sha256) {
            (Some(a), Some(sha)) => format!(
                "backup {}: {} ({} members, {} of file data), SHA-256 {sha}",
                a.display(),
                rear_model::units::human(self.size),
                self.members,
                rear_model::units::human(self.bytes),
            ),
            _ => format!("backup written to {}", self.dir.display()),
        }
    }
}

impl RestoreReport {
    /// One line for the operator.
    pub fn summary(&self, target: &Path) -> String {
        match (&self.archive, &self.sha256) {
            (Some(a), Some(sha)) => format!(
                "restored {} into {} ({} streamed), SHA-256 {sha} verified",
                a.display(),
                target.display(),
                rear_model::units::human(self.bytes)
            ),
            _ => format!("restored into {}", target.display()),
        }
    }
}
