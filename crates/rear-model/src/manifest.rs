//! The manifest: the contract between the resolve stage and the archive and media stages.
//!
//! A sorted map from image path to entry (kind, mode, size, SHA-256, where it came from). It is
//! written into the image as `/etc/rear/manifest.json` and next to the output with `--json`;
//! `docs/manifest.md` documents the format. The bytes of each file travel beside it in an
//! [`Image`], so the archive writer never goes back to the host.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Version of the manifest format; bump on incompatible changes and keep a fixture of the old one.
pub const MANIFEST_VERSION: u32 = 1;

/// A path inside the image: absolute, normalised (no `.`, `..`, `//` or trailing `/`), UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImagePath(String);

/// A path that cannot be an [`ImagePath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not starting with `/`.
    #[error("image path {0:?} is not absolute")]
    NotAbsolute(String),
    /// Contains a `..` component.
    #[error("image path {0:?} contains '..'")]
    DotDot(String),
    /// `/` itself, which is the archive's root and no entry.
    #[error("image path \"/\" names the root, not an entry")]
    Root,
    /// Not valid UTF-8 (host paths with other bytes are not supported in the image).
    #[error("path {0:?} is not valid UTF-8")]
    NotUtf8(PathBuf),
}

impl ImagePath {
    /// Normalises `s` into an image path; rejects relative paths and `..`.
    pub fn new(s: &str) -> Result<Self, PathError> {
        if !s.starts_with('/') {
            return Err(PathError::NotAbsolute(s.to_string()));
        }
        let mut out = String::with_capacity(s.len());
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PathError::DotDot(s.to_string())),
                p => {
                    out.push('/');
                    out.push_str(p);
                }
            }
        }
        if out.is_empty() {
            return Err(PathError::Root);
        }
        Ok(ImagePath(out))
    }

    /// The image path of a host path (the same absolute path).
    pub fn from_host(path: &Path) -> Result<Self, PathError> {
        let s = path
            .to_str()
            .ok_or_else(|| PathError::NotUtf8(path.to_path_buf()))?;
        ImagePath::new(s)
    }

    /// The path as text, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as it goes into a cpio archive: without the leading `/`.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The parent directory, `None` for a top-level entry.
    pub fn parent(&self) -> Option<ImagePath> {
        let i = self.0.rfind('/')?;
        if i == 0 {
            None
        } else {
            Some(ImagePath(self.0[..i].to_string()))
        }
    }

    /// All ancestors, outermost first (`/usr`, `/usr/lib` for `/usr/lib/x`).
    pub fn ancestors(&self) -> Vec<ImagePath> {
        let mut v = Vec::new();
        let mut p = self.parent();
        while let Some(a) = p {
            p = a.parent();
            v.push(a);
        }
        v.reverse();
        v
    }

    /// A child path.
    pub fn join(&self, name: &str) -> Result<ImagePath, PathError> {
        ImagePath::new(&format!("{}/{}", self.0, name))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }
}

impl TryFrom<String> for ImagePath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ImagePath::new(&s)
    }
}

impl From<ImagePath> for String {
    fn from(p: ImagePath) -> String {
        p.0
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file; its bytes are in [`Image::data`].
    File,
    /// A regular file that is a hard link to another entry of the image (same bytes, same inode).
    HardLink {
        /// The first path of the link group in sorted order, which carries the data.
        to: ImagePath,
    },
    /// A symbolic link.
    Symlink {
        /// What the link says, verbatim.
        target: String,
    },
    /// A character device node.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device node.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// Where an entry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum Source {
    /// Copied from this host path.
    Host {
        /// Absolute host path (inside the sysroot).
        path: PathBuf,
    },
    /// Decompressed from this host path (a `.ko.xz` or `.ko.zst` module, stored as `.ko`).
    Decompressed {
        /// Absolute host path of the compressed file.
        path: PathBuf,
    },
    /// A program of this tool (the `rear-restore` that becomes `/init`), from the build
    /// machine. Only its name is recorded, so where the tool is installed does not change the
    /// image; its SHA-256 identifies it.
    Build {
        /// Its name (`rear-restore`).
        program: String,
    },
    /// Made by the build itself (manifest, depmod indexes, configuration, device nodes).
    Generated {
        /// The stage that made it.
        by: String,
    },
}

/// One entry of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// What it is.
    #[serde(flatten)]
    pub kind: Kind,
    /// Permission bits (`0o7777` at most); the file type comes from `kind`.
    pub mode: u32,
    /// Size of the data in bytes (0 for all but files; a symlink's target length is not counted).
    pub size: u64,
    /// Hex SHA-256 of the data, for files.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// Where it came from.
    pub source: Source,
    /// Why it is in the image: the recipe item, the library's user, the module's reason.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub why: String,
}

/// The sorted list of everything in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version, [`MANIFEST_VERSION`].
    pub version: u32,
    /// Release of the kernel the image was built for (`6.1.0-56-amd64`).
    pub kernel: String,
    /// Every entry, sorted by path.
    pub entries: BTreeMap<ImagePath, Entry>,
    /// Fallbacks taken and other things the operator should know (also logged as warnings).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
}

impl Manifest {
    /// An empty manifest for a kernel release.
    pub fn new(kernel: impl Into<String>) -> Self {
        Manifest {
            version: MANIFEST_VERSION,
            kernel: kernel.into(),
            entries: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Parses a manifest as written by [`Manifest::to_json`]; rejects unknown versions.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let m: Manifest = serde_json::from_str(text)?;
        if m.version != MANIFEST_VERSION {
            return Err(serde::de::Error::custom(format!(
                "manifest version {} is not supported (this build reads version {MANIFEST_VERSION})",
                m.version
            )));
        }
        Ok(m)
    }

    /// The manifest as pretty JSON with a final newline (stable: maps are sorted).
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A resolved image: the manifest plus the bytes of every file entry.
#[derive(Debug, Clone)]
pub struct Image {
    /// What is in it.
    pub manifest: Manifest,
    /// The bytes of each [`Kind::File`] entry.
    pub data: BTreeMap<ImagePath, Arc<[u8]>>,
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_path_new_normalises() {
        assert_eq!(
            ImagePath::new("//usr/./lib//x/").unwrap().as_str(),
            "/usr/lib/x"
        );
        assert_eq!(ImagePath::new("/a").unwrap().relative(), "a");
    }

    #[test]
    fn image_path_new_rejects_bad_paths() {
        assert_eq!(
            ImagePath::new("usr"),
            Err(PathError::NotAbsolute("usr".into()))
        );
        assert_eq!(
            ImagePath::new("/usr/../etc"),
            Err(PathError::DotDot("/usr/../etc".into()))
        );
        assert_eq!(ImagePath::new("/"), Err(PathError::Root));
    }

    #[test]
    fn image_path_ancestors_outermost_first() {
        let p = ImagePath::new("/usr/lib/x").unwrap();
        let a: Vec<_> = p.ancestors().into_iter().map(String::from).collect();
        assert_eq!(a, ["/usr", "/usr/lib"]);
        assert_eq!(p.file_name(), "x");
    }

    #[test]
    fn manifest_json_round_trip() {
        let mut m = Manifest::new("6.1.0-1-amd64");
        m.entries.insert(
            ImagePath::new("/bin").unwrap(),
            Entry {
                kind: Kind::Symlink {
                    target: "usr/bin".into(),
                },
                mode: 0o777,
                size: 0,
                sha256: None,
                source: Source::Host {
                    path: "/bin".into(),
                },
                why: String::new(),
            },
        );
        let text = m.to_json();
        assert!(text.contains("\"type\": \"symlink\""), "{text}");
        assert_eq!(Manifest::from_json(&text).unwrap(), m);
    }

    #[test]
    fn manifest_from_json_rejects_other_versions() {
        let e = Manifest::from_json(r#"{"version":99,"kernel":"k","entries":{}}"#).unwrap_err();
        assert!(e.to_string().contains("version 99"), "{e}");
    }
}
