//! The media store: boot media (ISO, PXE files, initrds) kept by content, in a folder or in an
//! S3-compatible bucket ([`s3`]).
//!
//! Input: an upload stream and the SHA-256 it claims. Output: the medium under its SHA-256:
//! the file `media_dir/<first two hex digits>/<sha256>`, or the object `PREFIX/<sha256>`.
//! Both back ends share one path in: the upload goes to `media_dir/tmp/` first, hashed while it
//! arrives and synced; only when the hash matches is it committed, by a rename or by one
//! `PutObject` of the verified file. So a partial or wrong upload never appears under a name,
//! and an S3 bucket never sees content that was not checked.

pub mod s3;

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::body::Bytes;
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
    /// The S3-compatible object store failed or could not be reached. The message names the
    /// endpoint, the operation and the key, never credentials or a signed URL.
    #[error("S3 media store at {endpoint}: {what}")]
    Remote {
        /// The endpoint URL (as configured; it has no credentials).
        endpoint: String,
        /// What failed.
        what: String,
    },
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The file is new, of this size.
    Stored(u64),
    /// The file was already there, of this size.
    Exists(u64),
}

/// Where the media are kept.
#[derive(Debug, Clone)]
enum Backend {
    /// In `media_dir`, fanned out by the first two hex digits.
    Folder,
    /// In a bucket.
    S3(Box<s3::S3Store>),
}

/// The content-addressed store. Uploads are spooled in `media_dir/tmp/` for either back end.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    backend: Backend,
}

impl std::fmt::Display for MediaStore {
    /// The store as the log names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Folder => write!(f, "folder {}", self.dir.display()),
            Backend::S3(s) => write!(f, "{s} (uploads spooled in {})", self.dir.display()),
        }
    }
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
    /// The store in `dir`, or in the bucket of `s3` with `dir` as spool; `dir/tmp` is created
    /// when missing.
    pub fn new(dir: &Path, s3: Option<&s3::S3Config>) -> Result<MediaStore, Error> {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let backend = match s3 {
            Some(c) => Backend::S3(Box::new(s3::S3Store::new(c)?)),
            None => Backend::Folder,
        };
        Ok(MediaStore {
            dir: dir.to_path_buf(),
            backend,
        })
    }

    /// Where the file of `sha256` is (or would be) in the folder store; `sha256` must be a
    /// [`valid_name`].
    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    /// The size of the stored medium of `sha256`, `None` when absent.
    pub async fn size(&self, sha256: &str) -> Result<Option<u64>, Error> {
        match &self.backend {
            Backend::Folder => Ok(tokio::fs::metadata(self.path(sha256))
                .await
                .ok()
                .map(|m| m.len())),
            Backend::S3(s) => s.size(sha256).await,
        }
    }

    /// The largest upload this store takes: `max`, and for S3 at most what one `PutObject`
    /// may write.
    fn limit(&self, max: u64) -> u64 {
        match &self.backend {
            Backend::Folder => max,
            Backend::S3(_) => max.min(s3::MAX_OBJECT_BYTES),
        }
    }

    /// Stores `body` under `sha256` if its content hashes to it and is at most `max` bytes.
    pub async fn put(&self, sha256: &str, body: Body, max: u64) -> Result<Put, Error> {
        if let Some(size) = self.size(sha256).await? {
            return Ok(Put::Exists(size));
        }
        let tmp = self.dir.join("tmp").join(format!(
            "{sha256}.{}",
            crate::random::hex(8).map_err(|e| Error::Body(e.to_string()))?
        ));
        let result = match receive(&tmp, sha256, body, self.limit(max)).await {
            Ok(size) => self.commit(&tmp, sha256).await.map(|()| Put::Stored(size)),
            Err(e) => Err(e),
        };
        // After a rename there is nothing left to remove; after a PUT (or any failure) the
        // spooled copy goes.
        let _ = tokio::fs::remove_file(&tmp).await;
        result
    }

    /// Puts the verified, synced file `tmp` under `sha256`.
    async fn commit(&self, tmp: &Path, sha256: &str) -> Result<(), Error> {
        match &self.backend {
            Backend::Folder => {
                let dest = self.path(sha256);
                if let Some(parent) = dest.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(io(parent))?;
                }
                tokio::fs::rename(tmp, &dest).await.map_err(io(&dest))
            }
            Backend::S3(s) => s.put_file(sha256, tmp).await,
        }
    }

    /// The stored medium of `sha256` as its size and a streamed body, `None` when absent.
    pub async fn open(&self, sha256: &str) -> Result<Option<(u64, Body)>, Error> {
        match &self.backend {
            Backend::Folder => {
                let Ok(file) = tokio::fs::File::open(self.path(sha256)).await else {
                    return Ok(None);
                };
                let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
                let stream = futures_util::stream::unfold(file, |mut f| async move {
                    use tokio::io::AsyncReadExt as _;
                    let mut buf = vec![0u8; 1 << 16];
                    match f.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
                        }
                        Err(e) => Some((Err(e), f)),
                    }
                });
                Ok(Some((size, Body::from_stream(stream))))
            }
            Backend::S3(s) => s.get(sha256).await,
        }
    }
}

/// Writes `body` to `tmp` while hashing it; its size when it is at most `max` bytes and hashes
/// to `sha256`, then synced so that a commit never publishes data still in the page cache.
async fn receive(tmp: &Path, sha256: &str, mut body: Body, max: u64) -> Result<u64, Error> {
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
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_name_is_lower_hex_sha256() {
        let h = rear_model::manifest::sha256_hex(b"x");
        assert!(valid_name(&h));
        assert!(!valid_name(&h.to_uppercase()));
        assert!(!valid_name("../../etc/passwd"));
        assert!(!valid_name(&h[1..]));
    }

    #[tokio::test]
    async fn put_checks_the_hash() {
        let d = tempfile::tempdir().unwrap();
        let s = MediaStore::new(d.path(), None).unwrap();
        let h = rear_model::manifest::sha256_hex(b"iso");
        let wrong = rear_model::manifest::sha256_hex(b"other");
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
