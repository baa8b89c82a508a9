//! The S3 media store against a real S3-compatible server: moto's (`python3 -m moto.server`),
//! started on a free loopback port per test and killed at the end. Requests the test makes
//! itself are signed with `rusty-s3`, as the server's are. SQLite only: the store does not
//! touch the database.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusty_s3::actions::{CreateBucket, GetObject, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use serde_json::{Value, json};

use super::{Backend, Server, agent, report};

const ACCESS: &str = "AKIAREARTESTKEY";
const SECRET: &str = "rear-test-secret-never-shown";
const BUCKET: &str = "rear-media";
const PREFIX: &str = "fleet/media/";

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto server on 127.0.0.1; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts moto, or `None` (with the reason printed) when it is not installed; under `CI`
    /// a missing moto fails, since `make test` installs it.
    fn start() -> Option<Moto> {
        let have = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            let why = "moto is not installed: python3 -m pip install 'moto[server]'";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    fn bucket(&self) -> Bucket {
        Bucket::new(
            self.endpoint.parse().unwrap(),
            UrlStyle::Path,
            BUCKET,
            "us-east-1",
        )
        .unwrap()
    }

    fn create_bucket(&self) {
        let c = Credentials::new(ACCESS, SECRET);
        let url = CreateBucket::new(&self.bucket(), &c).sign(Duration::from_secs(60));
        let r = agent().put(url.as_str()).send_empty().unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    /// The object at `key` by a signed GET, `None` when absent.
    fn object(&self, key: &str) -> Option<Vec<u8>> {
        let c = Credentials::new(ACCESS, SECRET);
        let url = GetObject::new(&self.bucket(), Some(&c), key).sign(Duration::from_secs(60));
        let mut r = agent().get(url.as_str()).call().unwrap();
        match r.status().as_u16() {
            200 => Some(r.body_mut().read_to_vec().unwrap()),
            404 => None,
            s => panic!("GET {key}: HTTP {s}"),
        }
    }

    /// The keys in the bucket.
    fn keys(&self) -> Vec<String> {
        let c = Credentials::new(ACCESS, SECRET);
        let bucket = self.bucket();
        let url = ListObjectsV2::new(&bucket, Some(&c)).sign(Duration::from_secs(60));
        let mut r = agent().get(url.as_str()).call().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let xml = r.body_mut().read_to_string().unwrap();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration lines of an S3 media store at `endpoint`.
fn s3_config(endpoint: &str) -> String {
    format!(
        "media_url = \"s3://{BUCKET}/{PREFIX}?endpoint={endpoint}&region=us-east-1\"\n\
         s3_access_key = \"{ACCESS}\"\n\
         s3_secret_key = \"{SECRET}\"\n"
    )
}

/// `PUT /api/v1/media/NAME`: status and body.
fn put(s: &Server, name: &str, token: &str, data: &[u8]) -> (u16, String) {
    let mut r = agent()
        .put(&s.url(&format!("/api/v1/media/{name}")))
        .header("Authorization", &format!("Bearer {token}"))
        .send(data)
        .unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), body)
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// Upload through the real API: a wrong hash stores nothing, a right one lands in the bucket
/// under PREFIX/<sha256>, the host page links it and the link streams the same bytes back.
#[test]
fn s3_media_upload_download() {
    if !crate::preflight() {
        return;
    }
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket();
    let s = Server::with(Backend::Sqlite, &s3_config(&moto.endpoint));
    let t = s.token("web01");
    // Larger than one 64 KiB chunk of the download stream, and not a multiple of it.
    let content: Vec<u8> = (0..200_001u32).map(|i| (i % 251) as u8).collect();
    let sha = sha256(&content);
    let key = format!("{PREFIX}{sha}");

    let (code, body) = put(&s, &sha, &t, b"other content");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not"), "{body}");
    assert_eq!(
        moto.keys(),
        Vec::<String>::new(),
        "a wrong upload left an object"
    );
    let spool = s._dir.path().join("media/tmp");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);

    assert_eq!(put(&s, &sha, &t, &content).0, 201);
    assert_eq!(moto.keys(), vec![key.clone()]);
    assert_eq!(moto.object(&key).as_deref(), Some(content.as_slice()));
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool left over"
    );
    let (code, body) = put(&s, &sha, &t, &content);
    assert_eq!(code, 200, "already stored: {body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "sha256": sha, "size": content.len() })
    );

    let mut v: Value = serde_json::from_str(&report("web01", 0, None)).unwrap();
    v["build"]["artefacts"][0]["sha256"] = json!(sha);
    assert_eq!(s.post_report(&t, &v.to_string()).0, 201);
    let cookie = s.login();
    let (_, html, _) = s.get("/host/web01", Some(&cookie));
    let link = format!("/media/{sha}?name=initrd-6.1.0-9-amd64.img");
    assert!(html.contains(&link), "{html}");
    let mut r = agent()
        .get(&s.url(&link))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers().get("content-length").unwrap().to_str().unwrap(),
        content.len().to_string()
    );
    let got = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    assert!(got == content, "downloaded {} bytes differ", got.len());
    let absent = sha256(b"never uploaded");
    assert_eq!(s.get(&format!("/media/{absent}"), Some(&cookie)).0, 404);
}

/// An S3 endpoint nobody listens on: the upload gets a 502 that names the endpoint and no
/// credentials, and the spool is left empty.
#[test]
fn s3_unreachable_endpoint_is_a_clear_502() {
    if !crate::preflight() {
        return;
    }
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let s = Server::with(Backend::Sqlite, &s3_config(&endpoint));
    let t = s.token("web01");
    let content = b"an ISO that cannot be stored";
    let (code, body) = put(&s, &sha256(content), &t, content);
    assert_eq!(code, 502, "{body}");
    let error = serde_json::from_str::<Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains(&endpoint), "{error}");
    for secret in [ACCESS, SECRET, "X-Amz-"] {
        assert!(!error.contains(secret), "{secret} in {error}");
    }
    let spool = s._dir.path().join("media/tmp");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
}

/// A bucket that does not exist: the verified upload's `PutObject` fails, the answer is a 502
/// with S3's error code, and the spooled copy is removed all the same.
#[test]
fn s3_missing_bucket_is_a_502_with_the_s3_error() {
    if !crate::preflight() {
        return;
    }
    let Some(moto) = Moto::start() else { return };
    let s = Server::with(Backend::Sqlite, &s3_config(&moto.endpoint));
    let t = s.token("web01");
    let content = b"an ISO for a bucket nobody made";
    let sha = sha256(content);
    let (code, body) = put(&s, &sha, &t, content);
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains(&format!("PUT {PREFIX}{sha}: HTTP 404 NoSuchBucket")),
        "{body}"
    );
    assert!(!body.contains(ACCESS) && !body.contains(SECRET), "{body}");
    let spool = s._dir.path().join("media/tmp");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
}
