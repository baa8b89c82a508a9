//! Backup locations given as URLs (`--backup-url`), parsed once at the edge into
//! [`BackupUrl`].
//!
//! | URL | meaning |
//! |---|---|
//! | `file:///path` | a directory on a local or mounted disk, NFS mount or USB stick (the default) |
//! | `usb` or `usb:///sub/dir` | the `REAR-DATA` partition of a USB stick written from the USB image |
//! | `iso` | inside the ISO, next to the rescue system (the boot medium) |
//! | `label://LABEL/sub/dir` | restore only: the file system labelled LABEL |
//! | `uuid://UUID/sub/dir` | restore only: the file system with that UUID |
//!
//! A bare absolute path is refused rather than guessed: a typo like `file:/backup` (one
//! slash) or `/backup` would otherwise be accepted and write somewhere unexpected.

use std::fmt;
use std::path::PathBuf;

/// A parsed backup location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupUrl {
    /// `file:///path`: a directory.
    File(PathBuf),
    /// `usb[:///sub/dir]`: below the mount of the `REAR-DATA` file system.
    Usb(PathBuf),
    /// `iso`: on the ISO boot medium.
    Iso,
    /// `label://LABEL/sub/dir`: the file system with this label.
    Label {
        /// File system label.
        label: String,
        /// Directory below its root.
        path: PathBuf,
    },
    /// `uuid://UUID/sub/dir`: the file system with this UUID.
    Uuid {
        /// File system UUID.
        uuid: String,
        /// Directory below its root.
        path: PathBuf,
    },
}

/// A URL that is not one of the forms above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "backup URL {url:?}: {reason} (use file:///path, usb, usb:///dir, iso, label://LABEL/dir or uuid://UUID/dir)"
)]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl BackupUrl {
    /// Parses a URL; the error names the URL and what is wrong.
    pub fn parse(url: &str) -> Result<BackupUrl, UrlError> {
        let err = |reason: &str| UrlError {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let clean = |p: &str| -> Result<PathBuf, UrlError> {
            if p.split('/').any(|c| c == "..") {
                return Err(err("\"..\" is not allowed in the path"));
            }
            Ok(PathBuf::from(p.trim_end_matches('/')))
        };
        if url == "iso" || url == "iso://" {
            return Ok(BackupUrl::Iso);
        }
        if url == "usb" || url == "usb://" {
            return Ok(BackupUrl::Usb(PathBuf::from("/")));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(err("not a URL"));
        };
        match scheme {
            "file" => {
                if !rest.starts_with('/') || rest == "/" {
                    return Err(err("file URLs need an absolute directory: file:///path"));
                }
                Ok(BackupUrl::File(clean(rest)?))
            }
            "usb" => {
                let p = if rest.is_empty() { "/" } else { rest };
                if !p.starts_with('/') {
                    return Err(err("usb URLs take an absolute directory: usb:///dir"));
                }
                let mut path = clean(p)?;
                if path.as_os_str().is_empty() {
                    path = PathBuf::from("/");
                }
                Ok(BackupUrl::Usb(path))
            }
            "label" | "uuid" => {
                let (name, path) = match rest.split_once('/') {
                    Some((n, p)) => (n, format!("/{p}")),
                    None => (rest, "/".to_string()),
                };
                if name.is_empty() {
                    return Err(err(&format!("no {scheme} after {scheme}://")));
                }
                let mut path = clean(&path)?;
                if path.as_os_str().is_empty() {
                    path = PathBuf::from("/");
                }
                Ok(if scheme == "label" {
                    BackupUrl::Label {
                        label: name.to_string(),
                        path,
                    }
                } else {
                    BackupUrl::Uuid {
                        uuid: name.to_string(),
                        path,
                    }
                })
            }
            "nfs" | "cifs" | "sftp" | "http" | "https" | "rsync" => Err(err(&format!(
                "{scheme}:// is not supported yet; mount the share and give file:///mountpoint/dir"
            ))),
            _ => Err(err(&format!("unknown scheme {scheme:?}"))),
        }
    }
}

impl fmt::Display for BackupUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupUrl::File(p) => write!(f, "file://{}", p.display()),
            BackupUrl::Usb(p) if p.as_os_str() == "/" => write!(f, "usb"),
            BackupUrl::Usb(p) => write!(f, "usb://{}", p.display()),
            BackupUrl::Iso => write!(f, "iso"),
            BackupUrl::Label { label, path } => write!(f, "label://{label}{}", path.display()),
            BackupUrl::Uuid { uuid, path } => write!(f, "uuid://{uuid}{}", path.display()),
        }
    }
}

/// In `backup.json` a URL is its text ([`fmt::Display`]); reading one parses it, so a file
/// with a location this program cannot restore from is refused when it is read.
impl serde::Serialize for BackupUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for BackupUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        BackupUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for BackupUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackupUrl::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_each_form_and_round_trips() {
        for (text, want) in [
            ("file:///srv/backup/", BackupUrl::File("/srv/backup".into())),
            ("iso", BackupUrl::Iso),
            ("usb", BackupUrl::Usb("/".into())),
            ("usb:///rear/db1", BackupUrl::Usb("/rear/db1".into())),
            (
                "label://REAR-BACKUP/db1",
                BackupUrl::Label {
                    label: "REAR-BACKUP".into(),
                    path: "/db1".into(),
                },
            ),
            (
                "uuid://1234-ABCD",
                BackupUrl::Uuid {
                    uuid: "1234-ABCD".into(),
                    path: "/".into(),
                },
            ),
        ] {
            let got = BackupUrl::parse(text).unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(BackupUrl::parse(&got.to_string()).unwrap(), want);
        }
    }

    #[test]
    fn parse_rejects_bad_urls_naming_them() {
        for (text, reason) in [
            ("/srv/backup", "not a URL"),
            ("file:/srv", "not a URL"),
            ("file://srv/backup", "absolute directory"),
            ("file:///", "absolute directory"),
            ("file:///srv/../etc", "\"..\""),
            ("ftp://host/x", "unknown scheme \"ftp\""),
            ("nfs://server/export", "not supported yet"),
            ("label:///x", "no label"),
        ] {
            let e = BackupUrl::parse(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("backup URL {text:?}: ")), "{e}");
            assert!(e.contains(reason), "{text}: {e}");
        }
    }
}
