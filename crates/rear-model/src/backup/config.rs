//! The backup configuration the rescue system needs: `/etc/rear/backup.json` in the image.
//!
//! Written by `rear-mkimage --backup` (and beside the backup by `rear-mkimage backup`), read
//! by `rear-restore restore`. It says which method made the backup, where it went (the URL
//! as given) and, for a directory on a file system, how the rescue system finds that file
//! system without udev: its UUID and label (probed with `blkid`), its type, and the
//! directory relative to the file system's root, so the rescue system mounts it read-only by
//! itself and reads the backup from there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::url::BackupUrl;

/// Where the image keeps the backup configuration.
pub const CONFIG_IN_IMAGE: &str = "/etc/rear/backup.json";

/// The version this program writes and reads.
pub const CONFIG_VERSION: u32 = 1;

/// The backup configuration (`backup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version ([`CONFIG_VERSION`]).
    pub version: u32,
    /// The host whose backup this is, for messages.
    #[serde(default)]
    pub hostname: String,
    /// How the backup is made and restored.
    pub method: Method,
    /// The backup location (`file:///srv/backup/db1`, `usb`, `iso`), a string in the file.
    pub url: BackupUrl,
    /// The file system holding a `file://` directory, for the rescue system to find and
    /// mount; `None` when it could not be identified (then restore needs `--backup-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Exclude patterns (absolute paths with `*`, `?`, `[...]`), as configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
}

/// The backup method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Method {
    /// The built-in tar + zstd stream.
    Tar,
    /// Another backup program described by a recipe (`recipes/backup/NAME.toml`).
    Recipe {
        /// The recipe's name.
        name: String,
        /// The recipe's TOML text, so the rescue system runs exactly what the backup used.
        text: String,
    },
}

impl Method {
    /// `tar` or the recipe's name.
    pub fn name(&self) -> &str {
        match self {
            Method::Tar => "tar",
            Method::Recipe { name, .. } => name,
        }
    }
}

/// The file system that holds a backup directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// File system type (`ext4`, `xfs`, `vfat`, `nfs4`).
    pub fstype: String,
    /// File system UUID (empty when it has none).
    #[serde(default)]
    pub uuid: String,
    /// File system label (empty when it has none).
    #[serde(default)]
    pub label: String,
    /// What was mounted on the host: a device (for messages) or, for network file systems,
    /// the share (`server:/export`), which the rescue system mounts itself.
    pub source: String,
    /// The backup directory relative to the file system's root (absolute, `/rear/db1`).
    pub subpath: PathBuf,
}

impl Location {
    /// Whether the rescue system mounts `source` over the network rather than a local
    /// device found by UUID or label.
    pub fn is_network(&self) -> bool {
        matches!(self.fstype.as_str(), "nfs" | "nfs4" | "cifs" | "smb3")
    }
}

/// Errors reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// Not valid configuration JSON.
    #[error("{}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What serde said (with line and column).
        message: String,
    },
    /// Written by another version of the tools.
    #[error("{}: backup configuration version {found}, this program reads version {CONFIG_VERSION}", .path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
    },
}

impl Config {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Strings, paths from UTF-8 text and vectors always serialise.
        #[allow(clippy::expect_used)]
        let mut s = serde_json::to_string_pretty(self).expect("backup config serialises");
        s.push('\n');
        s
    }

    /// Parses configuration JSON; `path` names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Config, ConfigError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let err = |e: serde_json::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let v: Versioned = serde_json::from_str(text).map_err(err)?;
        if v.version != CONFIG_VERSION {
            return Err(ConfigError::Version {
                path: path.to_path_buf(),
                found: v.version,
            });
        }
        serde_json::from_str(text).map_err(err)
    }

    /// Reads a configuration file (normally [`CONFIG_IN_IMAGE`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::from_json(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_json_round_trips_and_checks_version() {
        let c = Config {
            version: CONFIG_VERSION,
            hostname: "db1".into(),
            method: Method::Tar,
            url: BackupUrl::File("/srv/backup/db1".into()),
            location: Some(Location {
                fstype: "ext4".into(),
                uuid: "0b1c".into(),
                label: "BACKUP".into(),
                source: "/dev/sdb1".into(),
                subpath: "/db1".into(),
            }),
            excludes: vec!["/var/tmp/*".into()],
        };
        let json = c.to_json();
        assert!(json.contains("\"kind\": \"tar\""), "{json}");
        assert_eq!(Config::from_json(&json, Path::new("b.json")).unwrap(), c);
        let e = Config::from_json(
            &json.replace("\"version\": 1", "\"version\": 9"),
            Path::new("b.json"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.json: backup configuration version 9, this program reads version 1"
        );
        let e = Config::from_json("{\"version\": 1}", Path::new("b.json")).unwrap_err();
        assert!(e.to_string().starts_with("b.json: missing field"), "{e}");
    }

    #[test]
    fn from_json_url_is_the_text_and_a_bad_one_is_refused() {
        let mut c = Config {
            version: CONFIG_VERSION,
            hostname: "db1".into(),
            method: Method::Tar,
            url: BackupUrl::Iso,
            location: None,
            excludes: Vec::new(),
        };
        assert!(c.to_json().contains("\"url\": \"iso\""), "{}", c.to_json());
        c.url = BackupUrl::Usb("/db1".into());
        let json = c.to_json();
        assert!(json.contains("\"url\": \"usb:///db1\""), "{json}");
        assert_eq!(Config::from_json(&json, Path::new("b.json")).unwrap(), c);
        let e = Config::from_json(
            &json.replace("usb:///db1", "ftp://x/y"),
            Path::new("b.json"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("b.json: backup URL \"ftp://x/y\": "),
            "{e}"
        );
    }
}
