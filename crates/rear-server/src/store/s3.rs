//! The S3-compatible back end of the media store: a bucket (AWS S3, MinIO, Ceph RGW, moto...)
//! given by a `s3://BUCKET/PREFIX?endpoint=URL&region=REGION` URL.
//!
//! Input: a verified file in the spool folder, or a SHA-256 to look up. Output: the object
//! `PREFIX/<sha256>`. Requests are signed with SigV4 as presigned URLs by `rusty-s3` (no I/O of
//! its own) and sent by the blocking `ureq` client inside `spawn_blocking`, so the server needs
//! no second HTTP stack. The presigned URLs carry the access key id and a signature, so no URL
//! of a request ever reaches a message: errors name the endpoint, the operation and the key.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use axum::body::{Body, Bytes};
use rusty_s3::actions::{GetObject, HeadObject, PutObject};
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use url::Url;

use super::Error;

/// The largest object one `PutObject` may write (AWS S3's limit; MinIO and others follow it).
/// Larger media would need a multipart upload, which this store does not do yet.
pub const MAX_OBJECT_BYTES: u64 = 5 << 30;

/// How long a presigned request URL is valid. The server sends it at once; the margin covers
/// clock skew between the server and the object store.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// A parsed `s3://` media URL. It has no secrets: credentials are separate settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket, which must exist.
    pub bucket: String,
    /// The key prefix, empty or ending in `/`.
    pub prefix: String,
    /// The endpoint (`http://127.0.0.1:9000`); AWS's regional endpoint when not given.
    pub endpoint: Url,
    /// The SigV4 region.
    pub region: String,
    /// Path-style (`ENDPOINT/BUCKET/KEY`, for a given endpoint) or virtual-host style
    /// (`BUCKET.ENDPOINT/KEY`, for AWS).
    pub path_style: bool,
}

impl S3Url {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION]`.
    pub fn parse(s: &str) -> Result<S3Url, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?} is not a URL such as s3://BUCKET/PREFIX"))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.contains('@') {
            // Refused without echoing the URL: the part before `@` may be a secret.
            return Err(
                "credentials do not belong in media_url: set s3_access_key and s3_secret_key"
                    .into(),
            );
        }
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(format!(
                "{s:?}: bucket name must be lower-case letters, digits, '-' and '.'"
            ));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let (mut endpoint, mut region) = (None, None);
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            match kv.split_once('=') {
                Some(("endpoint", v)) => endpoint = Some(v.to_string()),
                Some(("region", v)) if !v.is_empty() => region = Some(v.to_string()),
                _ => {
                    return Err(format!(
                        "{s:?}: unknown parameter {kv:?} (known: endpoint=URL, region=NAME)"
                    ));
                }
            }
        }
        let region = region.unwrap_or_else(|| "us-east-1".to_string());
        let path_style = endpoint.is_some();
        let endpoint_text =
            endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint = Url::parse(&endpoint_text)
            .ok()
            .filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none()
            })
            .ok_or_else(|| {
                format!("{s:?}: endpoint must be an http:// or https:// URL without user or query")
            })?;
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix,
            endpoint,
            region,
            path_style,
        })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s3://{}/{} at {}",
            self.bucket,
            self.prefix,
            self.endpoint_shown()
        )
    }
}

impl S3Url {
    /// The endpoint as messages name it (no trailing `/`).
    pub fn endpoint_shown(&self) -> String {
        self.endpoint.as_str().trim_end_matches('/').to_string()
    }
}

/// The configured S3 store: URL and credentials. `Debug` shows neither key nor secret.
#[derive(Clone)]
pub struct S3Config {
    /// Where the objects go.
    pub url: S3Url,
    /// Access key and secret (and a session token from `AWS_SESSION_TOKEN`).
    pub credentials: Credentials,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A bucket with credentials and an HTTP client.
#[derive(Clone)]
pub struct S3Store {
    url: S3Url,
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Store({})", self.url)
    }
}

impl std::fmt::Display for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.url.fmt(f)
    }
}

/// The `<Code>` and `<Message>` of an S3 error document. Only these: other elements (such as
/// `StringToSign` or `AWSAccessKeyId` of a signature error) are not for messages.
fn s3_error_text(xml: &str) -> String {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = xml.find(&open)? + open.len();
        let len = xml[start..].find(&format!("</{name}>"))?;
        Some(xml[start..start + len].trim().to_string())
    };
    match (element("Code"), element("Message")) {
        (Some(c), Some(m)) => format!(" {c}: {m}"),
        (Some(c), None) => format!(" {c}"),
        _ => String::new(),
    }
}

impl S3Store {
    /// The store of `config`. Nothing is sent yet: an unreachable endpoint shows at the first
    /// upload or download, as a [`Error::Remote`] naming it.
    pub fn new(config: &S3Config) -> Result<S3Store, Error> {
        let url = config.url.clone();
        let style = if url.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            url.endpoint.clone(),
            style,
            url.bucket.clone(),
            url.region.clone(),
        )
        .map_err(|e| Error::Remote {
            endpoint: url.endpoint_shown(),
            what: format!("bucket {}: {e}", url.bucket),
        })?;
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                // Statuses are answers to read (404 is "absent"), not transport errors.
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(Duration::from_secs(10)))
                .build(),
        );
        Ok(S3Store {
            url,
            bucket,
            credentials: config.credentials.clone(),
            agent,
        })
    }

    /// The object key of `sha256`.
    pub fn key(&self, sha256: &str) -> String {
        format!("{}{sha256}", self.url.prefix)
    }

    fn remote(&self, what: String) -> Error {
        Error::Remote {
            endpoint: self.url.endpoint_shown(),
            what,
        }
    }

    /// A transport failure of `op`. ureq's messages name no URL, but a signed URL must never
    /// reach a log, so anything that looks like one is cut.
    fn transport(&self, op: &str, key: &str, e: &ureq::Error) -> Error {
        let text = e.to_string();
        let text = if text.contains("X-Amz-") || text.contains(self.credentials.key()) {
            "request failed".to_string()
        } else {
            text
        };
        self.remote(format!("{op} {key}: {text}"))
    }

    /// An unexpected answer to `op`.
    fn status(&self, op: &str, key: &str, mut r: ureq::http::Response<ureq::Body>) -> Error {
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        self.remote(format!(
            "{op} {key}: HTTP {}{}",
            r.status().as_u16(),
            s3_error_text(&body)
        ))
    }

    /// Runs blocking `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(S3Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|e| self.remote(format!("request task: {e}")))?
    }

    /// The size of the object of `sha256`, `None` when absent (`HeadObject`).
    pub async fn size(&self, sha256: &str) -> Result<Option<u64>, Error> {
        let key = self.key(sha256);
        self.blocking(move |s| {
            let url = HeadObject::new(&s.bucket, Some(&s.credentials), &key).sign(SIGNED_FOR);
            let r = s
                .agent
                .head(url.as_str())
                .call()
                .map_err(|e| s.transport("HEAD", &key, &e))?;
            match r.status().as_u16() {
                200 => Ok(Some(
                    r.headers()
                        .get("content-length")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                )),
                404 => Ok(None),
                _ => Err(s.status("HEAD", &key, r)),
            }
        })
        .await
    }

    /// Writes the verified file at `path` as the object of `sha256` with one `PutObject`. S3
    /// makes an object visible only once its PUT has completed, so a broken transfer leaves
    /// no object under the key.
    pub async fn put_file(&self, sha256: &str, path: &Path) -> Result<(), Error> {
        let key = self.key(sha256);
        let path = path.to_path_buf();
        self.blocking(move |s| {
            let file = std::fs::File::open(&path).map_err(|error| Error::Io {
                path: path.clone(),
                error,
            })?;
            let url = PutObject::new(&s.bucket, Some(&s.credentials), &key).sign(SIGNED_FOR);
            // A `File` body gives ureq the length, so it sends Content-Length, not chunks
            // (S3 refuses chunked PUTs without aws-chunked signing).
            let r = s
                .agent
                .put(url.as_str())
                .header("content-type", "application/octet-stream")
                .send(file)
                .map_err(|e| s.transport("PUT", &key, &e))?;
            match r.status().as_u16() {
                200 | 201 | 204 => Ok(()),
                _ => Err(s.status("PUT", &key, r)),
            }
        })
        .await
    }

    /// The object of `sha256` as its size and a streamed body (`GetObject`), `None` when
    /// absent. A blocking task reads the response in 64 KiB chunks into a small channel, so
    /// memory stays bounded and a client that goes away stops the transfer.
    pub async fn get(&self, sha256: &str) -> Result<Option<(u64, Body)>, Error> {
        let key = self.key(sha256);
        let found = self
            .blocking(move |s| {
                let url = GetObject::new(&s.bucket, Some(&s.credentials), &key).sign(SIGNED_FOR);
                let r = s
                    .agent
                    .get(url.as_str())
                    .call()
                    .map_err(|e| s.transport("GET", &key, &e))?;
                match r.status().as_u16() {
                    200 => {
                        let size = r
                            .headers()
                            .get("content-length")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        Ok(Some((size, r.into_body().into_reader())))
                    }
                    404 => Ok(None),
                    _ => Err(s.status("GET", &key, r)),
                }
            })
            .await?;
        let Some((size, mut reader)) = found else {
            return Ok(None);
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        tokio::task::spawn_blocking(move || {
            loop {
                let mut buf = vec![0u8; 1 << 16];
                let item = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(Bytes::from(buf))
                    }
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    break;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Some((size, Body::from_stream(stream))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_documented_forms() {
        let u = S3Url::parse("s3://media/rear/iso/?endpoint=http://127.0.0.1:9000&region=eu-1")
            .unwrap();
        assert_eq!(u.bucket, "media");
        assert_eq!(u.prefix, "rear/iso/");
        assert_eq!(u.endpoint_shown(), "http://127.0.0.1:9000");
        assert_eq!(u.region, "eu-1");
        assert!(u.path_style);
        let aws = S3Url::parse("s3://media").unwrap();
        assert_eq!(aws.prefix, "");
        assert_eq!(aws.endpoint_shown(), "https://s3.us-east-1.amazonaws.com");
        assert!(!aws.path_style);
        assert!(S3Url::parse("http://x").is_err());
        assert!(S3Url::parse("s3://Bad_Bucket").is_err());
        assert!(S3Url::parse("s3://b?colour=red").is_err());
        assert!(S3Url::parse("s3://b?endpoint=ftp://h").is_err());
        let e = S3Url::parse("s3://AKIA:s3cret@b/p").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn s3_error_text_keeps_code_and_message_only() {
        let xml = "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message>\
                   <AWSAccessKeyId>AKIA</AWSAccessKeyId></Error>";
        assert_eq!(s3_error_text(xml), " SignatureDoesNotMatch: no");
        assert_eq!(s3_error_text("garbage"), "");
    }

    #[test]
    fn debug_hides_credentials() {
        let c = S3Config {
            url: S3Url::parse("s3://b/p?endpoint=http://127.0.0.1:1").unwrap(),
            credentials: Credentials::new("AKIAKEY", "topsecret"),
        };
        let shown = format!("{c:?} {:?}", S3Store::new(&c).unwrap());
        assert!(
            !shown.contains("AKIAKEY") && !shown.contains("topsecret"),
            "{shown}"
        );
        assert_eq!(
            S3Store::new(&c).unwrap().key(&"a".repeat(64)),
            format!("p/{}", "a".repeat(64))
        );
    }
}
