//! The media store: boot media (ISO, PXE files, initrds) kept by content.
//!
//! Input: an upload stream and the SHA-256 it claims. Output: the file at
//! `media_dir/<first two hex digits>/<sha256>`, written to `media_dir/tmp/` first, hashed while
//! it arrives, synced and renamed only when the hash matches, so a partial or wrong upload
//! never appears under a name.

use std::path::{Path, PathBuf};

use axum::body::Body;
use http_body_util::BodyExt as _;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

/// Errors of the media store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the store could not be used.
    #[error("media store {}: {error}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// The upload is larger than allowed.
    #[error("upload larger than the limit of {max} bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The content's SHA-256 is not the name it was uploaded under.
    #[error("content has SHA-256 {actual}, not {expected}")]
    Mismatch {
        /// The name.
        expected: String,
        /// The content's hash.
        actual: String,
    },
    /// The upload broke off.
    #[error("reading the upload: {0}")]
    Body(String),
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The file is new, of this size.
    Stored(u64),
    /// The file was already there, of this size.
    Exists(u64),
}

/// The content-addressed store.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
}

/// Whether `name` is a SHA-256 in lower-case hex, the only names the store has; this also
/// keeps `..` and `/` out of its paths.
pub fn valid_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

impl MediaStore {
    /// The store in `dir`, created when missing.
    pub fn new(dir: &Path) -> Result<MediaStore, Error> {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(MediaStore {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the file of `sha256` is (or would be); `sha256` must be a [`valid_name`].
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    /// The size of the stored file of `sha256`, `None` when absent.
    pub fn size(&self, sha256: &str) -> Option<u64> {
        std::fs::metadata(self.path(sha256)).ok().map(|m| m.len())
    }

    /// Stores `body` under `sha256` if its content hashes to it and is at most `max` bytes.
    pub async fn put(&self, sha256: &str, body: Body, max: u64) -> Result<Put, Error> {
        if let Some(size) = self.size(sha256) {
            return Ok(Put::Exists(size));
        }
        let tmp = self.dir.join("tmp").join(format!(
            "{sha256}.{}",
            super::auth::random_hex(8).map_err(|e| Error::Body(e.to_string()))?
        ));
        let result = self.receive(&tmp, sha256, body, max).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn receive(
        &self,
        tmp: &Path,
        sha256: &str,
        mut body: Body,
        max: u64,
    ) -> Result<Put, Error> {
        let mut file = tokio::fs::File::create(tmp).await.map_err(io(tmp))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::Body(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                size += data.len() as u64;
                if size > max {
                    return Err(Error::TooLarge { max });
                }
                hasher.update(&data);
                file.write_all(&data).await.map_err(io(tmp))?;
            }
        }
        let actual = hex::encode(hasher.finalize());
        if actual != sha256 {
            return Err(Error::Mismatch {
                expected: sha256.to_string(),
                actual,
            });
        }
        file.sync_all().await.map_err(io(tmp))?;
        drop(file);
        let dest = self.path(sha256);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(parent))?;
        }
        tokio::fs::rename(tmp, &dest).await.map_err(io(&dest))?;
        Ok(Put::Stored(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_name_is_lower_hex_sha256() {
        let h = crate::manifest::sha256_hex(b"x");
        assert!(valid_name(&h));
        assert!(!valid_name(&h.to_uppercase()));
        assert!(!valid_name("../../etc/passwd"));
        assert!(!valid_name(&h[1..]));
    }

    #[tokio::test]
    async fn put_checks_the_hash() {
        let d = tempfile::tempdir().unwrap();
        let s = MediaStore::new(d.path()).unwrap();
        let h = crate::manifest::sha256_hex(b"iso");
        let wrong = crate::manifest::sha256_hex(b"other");
        assert!(matches!(
            s.put(&wrong, Body::from("iso"), 100).await,
            Err(Error::Mismatch { .. })
        ));
        assert!(matches!(
            s.put(&h, Body::from("iso"), 2).await,
            Err(Error::TooLarge { max: 2 })
        ));
        assert_eq!(
            s.put(&h, Body::from("iso"), 100).await.unwrap(),
            Put::Stored(3)
        );
        assert_eq!(
            s.put(&h, Body::from("iso"), 100).await.unwrap(),
            Put::Exists(3)
        );
        assert_eq!(std::fs::read(s.path(&h)).unwrap(), b"iso");
        assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }
}
