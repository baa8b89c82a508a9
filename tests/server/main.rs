//! rear-server end to end: the real binary on 127.0.0.1 (port chosen by the kernel), real HTTP
//! requests with a blocking client. Only the loopback address is ever used.
//!
//! The server tests and the mail tests ([`mail`]) run twice, on SQLite and on PostgreSQL (a
//! private cluster, see [`pg`]): a test is a function of the [`Backend`], and [`on_both!`]
//! makes the two `#[test]`s, `NAME::sqlite` and `NAME::postgres`. The browser ([`browser`])
//! and rear-mkimage ([`mkimage`]) tests drive clients of the same HTTP interface and run on
//! SQLite only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod pg;
mod s3;
mod webdriver;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use rear_testutil::{elf as elf_util, tools};

/// Whether every tool of the server tests is here (`.ci/tools`, suite `server`: PostgreSQL,
/// Chromium and its driver, python3), checked once; every test starts with it. Under `CI` a
/// missing tool fails at once with its package; elsewhere the test is skipped with that reason.
fn preflight() -> bool {
    tools::preflight("server")
}

/// The rear-server program under test.
fn bin() -> std::path::PathBuf {
    rear_tests::bin("rear-server")
}
const ENROLL: &str = "enroll-0123456789abcdef";
const METRICS: &str = "metrics-0123456789abcdef";
const PASSWORD: &str = "correct horse battery staple";
const FIXTURE: &str = include_str!("../fixtures/report-v1.json");

/// The database a server under test uses.
#[derive(Debug, Clone, Copy)]
enum Backend {
    /// A file in the server's temp dir.
    Sqlite,
    /// A new database in the test cluster.
    Postgres,
}

/// `on_both!(name, ...)`: for each `fn name(b: Backend)`, a module `name` with the tests
/// `sqlite` and `postgres`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                if !$crate::preflight() {
                    return;
                }
                super::$name($crate::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                if !$crate::preflight() {
                    return;
                }
                super::$name($crate::Backend::Postgres)
            }
        }
    )*};
}

// After on_both!, which mail.rs uses too.
mod mail;
mod mkimage;

/// A running server with its own database and media folder; killed on drop.
struct Server {
    child: Child,
    base: String,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let mut child = Command::new(bin())
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

impl Server {
    fn start(backend: Backend) -> Server {
        Server::with(backend, "")
    }

    /// A server on `backend` whose configuration has `extra` appended.
    fn with(backend: Backend, extra: &str) -> Server {
        Server::spawn(backend, extra, false).0
    }

    /// A server on `backend` that also listens for SMTP; returns it and the SMTP address.
    fn with_smtp(backend: Backend, extra: &str) -> (Server, String) {
        let (s, smtp) = Server::spawn(backend, extra, true);
        (s, smtp.unwrap())
    }

    fn spawn(backend: Backend, extra: &str, smtp: bool) -> (Server, Option<String>) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let database = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("rear.db").display()),
            Backend::Postgres => pg::cluster().new_database(),
        };
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\n\
                 database = \"{database}\"\n\
                 media_dir = \"{media}\"\n\
                 max_age = \"7d\"\n\
                 enrollment_token = \"{ENROLL}\"\n\
                 metrics_token = \"{METRICS}\"\n\
                 max_report_bytes = 65536\n\
                 {extra}\n\
                 [[users]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n",
                media = dir.path().join("media").display(),
                hash = password_hash(),
            ),
        )
        .unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&config).arg("serve");
        if smtp {
            cmd.args(["--smtp", "127.0.0.1:0"]);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let smtp_addr = smtp.then(|| {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            l.trim()
                .strip_prefix("smtp listening on ")
                .unwrap_or_else(|| panic!("unexpected second line {l:?}"))
                .to_string()
        });
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        (
            Server {
                child,
                base: format!("http://{addr}"),
                config,
                _dir: dir,
            },
            smtp_addr,
        )
    }

    /// The number of stored reports, from `/metrics`.
    fn report_count(&self) -> u64 {
        let mut r = agent()
            .get(&self.url("/metrics"))
            .header("Authorization", &format!("Bearer {METRICS}"))
            .call()
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("rear_reports "))
            .unwrap_or_else(|| panic!("no rear_reports in {text}"))
            .parse()
            .unwrap()
    }

    /// `GET /api/v1/hosts` as admin.
    fn hosts(&self) -> Value {
        let cookie = self.login();
        let (code, body, _) = self.get("/api/v1/hosts", Some(&cookie));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
        )
    }

    fn token(&self, host: &str) -> String {
        let (code, out) = self.cli(&["token", "add", host]);
        assert_eq!(code, 0);
        out.trim().to_string()
    }

    fn post_report(&self, token: &str, body: &str) -> (u16, Value) {
        let mut r = agent()
            .post(&self.url("/api/v1/reports"))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        (
            r.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Logs in as admin; returns the session cookie (`rear_session=...`).
    fn login(&self) -> String {
        let (login_cookie, csrf) = self.login_form();
        let r = agent()
            .post(&self.url("/login"))
            .header("Cookie", &login_cookie)
            .send_form([
                ("user", "admin"),
                ("password", PASSWORD),
                ("csrf", csrf.as_str()),
                ("next", "/"),
            ])
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let cookie = set_cookie(&r, "rear_session").unwrap();
        let header = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.starts_with("rear_session="))
            .unwrap();
        assert!(header.contains("HttpOnly"), "{header}");
        assert!(header.contains("SameSite=Strict"), "{header}");
        cookie
    }

    /// GET /login: the CSRF cookie and the token in the form.
    fn login_form(&self) -> (String, String) {
        let mut r = agent().get(&self.url("/login")).call().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let cookie = set_cookie(&r, "rear_login_csrf").unwrap();
        let html = r.body_mut().read_to_string().unwrap();
        let csrf = hidden(&html, "csrf");
        (cookie, csrf)
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> (u16, String, Option<String>) {
        let mut req = agent().get(&self.url(path));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let mut r = req.call().unwrap();
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.body_mut().read_to_string().unwrap();
        (r.status().as_u16(), body, loc)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// `name=value` of a Set-Cookie header of the response.
fn set_cookie(r: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    r.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let pair = v.split(';').next()?;
        pair.starts_with(&format!("{name}="))
            .then(|| pair.to_string())
    })
}

/// The value of a hidden input in a page.
fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The v1 fixture as host `name`, made `age` seconds ago, with `failed` as build error.
fn report(name: &str, age: u64, failed: Option<&str>) -> String {
    let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
    v["host"]["name"] = json!(name);
    v["created"] = json!(now() - age);
    if let Some(e) = failed {
        v["build"]["result"] = json!({"status": "failed", "error": e});
    }
    v.to_string()
}

fn healthz_answers_without_login(b: Backend) {
    let s = Server::start(b);
    let (code, body, _) = s.get("/healthz", None);
    assert_eq!((code, body.as_str()), (200, "ok\n"));
}

fn ingest_checks_the_token(b: Backend) {
    let s = Server::start(b);
    let t1 = s.token("web01");
    let t2 = s.token("db01");
    let body = report("web01", 10, None);
    let (code, v) = s.post_report(&t1, &body);
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["stored"], json!(true));
    assert!(v.get("token").is_none());
    let (code, v) = s.post_report(&t1, &body);
    assert_eq!(
        (code, &v["stored"]),
        (200, &json!(false)),
        "resent is not stored twice"
    );
    let (code, v) = s.post_report("not-a-token", &body);
    assert_eq!(code, 401, "{v}");
    let (code, v) = s.post_report(&t2, &body);
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("another host"), "{v}");
    let (code, v) = s.post_report(&t1, "{not json");
    assert_eq!(code, 400, "{v}");
    let (code, v) = s.post_report(&t1, &body.replace("\"version\":1", "\"version\":9"));
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("version 9"), "{v}");
    let (code, _) = s.post_report(&t1, &format!("{{\"pad\":\"{}\"}}", "x".repeat(70000)));
    assert_eq!(code, 413);
    let r = agent()
        .post(&s.url("/api/v1/reports"))
        .send(body.as_str())
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The server keeps serving after all that.
    assert_eq!(s.get("/healthz", None).0, 200);
}

fn enrollment_creates_the_host_once(b: Backend) {
    let s = Server::start(b);
    let (code, v) = s.post_report(ENROLL, &report("new01", 5, None));
    assert_eq!(code, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    let (code, v) = s.post_report(&token, &report("new01", 1, None));
    assert_eq!(code, 201, "{v}");
    let (code, v) = s.post_report(ENROLL, &report("new01", 0, None));
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("already enrolled"));
}

fn gui_needs_login_and_lists_hosts(b: Backend) {
    let s = Server::start(b);
    let t = s.token("web01");
    assert_eq!(s.post_report(&t, &report("web01", 60, None)).0, 201);
    for path in ["/", "/reports", "/search?q=web", "/host/web01"] {
        let (code, body, loc) = s.get(path, None);
        assert_eq!(code, 303, "{path}: {body}");
        assert!(loc.unwrap().starts_with("/login?next="), "{path}");
    }
    assert_eq!(s.get("/metrics", None).0, 401);
    let cookie = s.login();
    let (code, html, _) = s.get("/", Some(&cookie));
    assert_eq!(code, 200);
    assert!(html.contains("href=\"/host/web01\""), "{html}");
    assert!(html.contains("Debian GNU/Linux 12 (bookworm)"));
    assert!(html.contains(">ok<"), "{html}");
    for (path, want) in [
        ("/?sort=age&dir=desc&page=1", "/host/web01"),
        ("/?domain=example.com", "/host/web01"),
        ("/?tag=dmz", "/host/web01"),
        ("/reports", "/host/web01"),
        ("/domains", "/?domain=example.com"),
        ("/tags", "/?tag=dmz"),
    ] {
        let (code, html, _) = s.get(path, Some(&cookie));
        assert_eq!(code, 200, "{path}");
        assert!(html.contains(want), "{path}: {html}");
    }
    let (_, html, _) = s.get("/?tag=nope", Some(&cookie));
    assert!(!html.contains("/host/web01"), "{html}");
    let (code, html, _) = s.get("/search?q=52-54-00-12-34-56", Some(&cookie));
    assert_eq!(code, 200);
    assert!(html.contains("href=\"/host/web01\""), "{html}");
    let (_, html, _) = s.get("/search?q=S4EWNX0R", Some(&cookie));
    assert!(
        html.contains("href=\"/host/web01\""),
        "by disk serial: {html}"
    );
    let (_, html, _) = s.get("/search?q=nothing-like-this", Some(&cookie));
    assert!(html.contains("0 hosts match"), "{html}");
    let (code, html, _) = s.get("/host/web01", Some(&cookie));
    assert_eq!(code, 200);
    assert!(html.contains("52:54:00:12:34:56"));
    assert!(html.contains("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
    assert_eq!(s.get("/host/nope", Some(&cookie)).0, 404);
    let (code, json, _) = s.get("/api/v1/hosts", Some(&cookie));
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["hosts"][0]["status"], json!("ok"));
}

fn api_without_login_is_a_json_401(b: Backend) {
    let s = Server::start(b);
    let mut r = agent().get(&s.url("/api/v1/hosts")).call().unwrap();
    assert_eq!(r.status().as_u16(), 401, "no redirect to the login form");
    assert!(r.headers().get("location").is_none());
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("not logged in"),
        "{v}"
    );
    // A stale session cookie is no login either.
    let (code, body, _) = s.get("/api/v1/hosts", Some("rear_session=0123"));
    assert_eq!(code, 401, "{body}");
    let cookie = s.login();
    let (code, body, _) = s.get("/api/v1/hosts", Some(&cookie));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"hosts": []})
    );
}

fn login_is_rate_limited(b: Backend) {
    // The test client is always 127.0.0.1; as a trusted proxy its X-Forwarded-For header gives
    // each attempt the client address the test wants.
    let s = Server::with(b, "trusted_proxies = [\"127.0.0.1\"]");
    let (cookie, csrf) = s.login_form();
    let attempt = |user: &str, password: &str, from: &str| {
        let mut r = agent()
            .post(&s.url("/login"))
            .header("Cookie", &cookie)
            .header("X-Forwarded-For", from)
            .send_form([("user", user), ("password", password), ("csrf", &csrf)])
            .unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let body = r.body_mut().read_to_string().unwrap();
        (r.status().as_u16(), retry, body)
    };
    // Per address: five users fail from one address, then even the right password is refused
    // from there, without a session, and with a message and Retry-After.
    for i in 0..5 {
        assert_eq!(attempt(&format!("user{i}"), "wrong", "198.51.100.1").0, 401);
    }
    let (code, retry, body) = attempt("admin", PASSWORD, "198.51.100.1");
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("Too many failed logins"), "{body}");
    assert!((1..=60).contains(&retry.unwrap()), "{retry:?}");
    // Another address is not affected.
    assert_eq!(attempt("admin", PASSWORD, "198.51.100.2").0, 303);
    // Per user: admin fails from five addresses; then admin is refused from a sixth, while
    // another user from that address is still checked (wrong password: 401).
    for i in 0..5 {
        assert_eq!(attempt("admin", "wrong", &format!("203.0.113.{i}")).0, 401);
    }
    let (code, _, body) = attempt("admin", PASSWORD, "203.0.113.99");
    assert_eq!(code, 429, "{body}");
    assert_eq!(attempt("user9", "wrong", "203.0.113.99").0, 401);
}

fn host_page_shows_tree_and_changes_between_reports(b: Backend) {
    let s = Server::start(b);
    let t = s.token("web01");
    let other = s.token("db01");
    let (_, first) = s.post_report(&t, &report("web01", 120, None));
    let mut v: Value = serde_json::from_str(&report("web01", 60, None)).unwrap();
    v["kernel"] = json!("6.1.0-10-amd64");
    v["layout"]["disks"].as_array_mut().unwrap().push(
        json!({"name": "sdb", "size_bytes": 2000000000u64, "model": "Spare <b>", "serial": "SP1"}),
    );
    v["network"][0]["addresses"] = json!(["192.0.2.99/24"]);
    let (_, second) = s.post_report(&t, &v.to_string());
    let (_, third) = s.post_report(&t, &report("web01", 0, Some("disk full")));
    let (_, foreign) = s.post_report(&other, &report("db01", 0, None));
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let cookie = s.login();

    // Default: the last two reports (second -> third): the failure, and the kernel back.
    let (code, html, _) = s.get("/host/web01", Some(&cookie));
    assert_eq!(code, 200);
    assert!(
        html.contains("<li>nvme0n1p1<ul><li><code>/boot/efi</code>"),
        "{html}"
    );
    assert!(html.contains("failed: disk full"), "{html}");
    assert!(html.contains("6.1.0-10-amd64"), "{html}");
    assert!(
        html.contains(&format!("option value=\"{}\" selected", id(&second))),
        "{html}"
    );
    // Chosen by query: first -> second shows the kernel, the new disk and the new address.
    let (code, html, _) = s.get(
        &format!("/host/web01?from={}&to={}", id(&first), id(&second)),
        Some(&cookie),
    );
    assert_eq!(code, 200);
    for want in [
        "<td class=\"before\">6.1.0-9-amd64</td><td class=\"after\">6.1.0-10-amd64</td>",
        "<td>sdb</td><td class=\"muted\">(none)</td>",
        "Spare &lt;b&gt;",
        "192.0.2.99/24",
    ] {
        assert!(html.contains(want), "{want} not in {html}");
    }
    assert!(!html.contains("failed: disk full"), "{html}");
    // The history links each report to its predecessor's diff.
    assert!(
        html.contains(&format!(
            "?from={}&amp;to={}#changes",
            id(&second),
            id(&third)
        )),
        "{html}"
    );
    // One side only: the other takes its default (here: the newest).
    let (_, html, _) = s.get(&format!("/host/web01?from={}", id(&first)), Some(&cookie));
    assert!(html.contains("failed: disk full"), "{html}");
    assert!(!html.contains("<td>sdb</td>"), "{html}");
    // Another host's report, or no report id at all, is not shown.
    for from in [id(&foreign), "../../etc".to_string(), "X".repeat(64)] {
        let (code, html, _) = s.get(
            &format!(
                "/host/web01?from={}&to={}",
                rear_server::pages::encode(&from),
                id(&third)
            ),
            Some(&cookie),
        );
        assert_eq!(code, 200);
        assert!(
            html.contains("is not a report of this host"),
            "{from}: {html}"
        );
        assert!(!html.contains("<table class=\"diff\">"), "{html}");
    }
    // A host with one report has nothing to compare.
    let (_, html, _) = s.get("/host/db01", Some(&cookie));
    assert!(html.contains("nothing to compare"), "{html}");
}

fn wrong_password_is_refused(b: Backend) {
    let s = Server::start(b);
    let (cookie, csrf) = s.login_form();
    let r = agent()
        .post(&s.url("/login"))
        .header("Cookie", &cookie)
        .send_form([("user", "admin"), ("password", "wrong"), ("csrf", &csrf)])
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(set_cookie(&r, "rear_session").is_none());
}

fn csrf_token_is_required(b: Backend) {
    let s = Server::start(b);
    let (cookie, csrf) = s.login_form();
    let post = |cookie: &str, form: &[(&str, &str)]| {
        agent()
            .post(&s.url("/login"))
            .header("Cookie", cookie)
            .send_form(form.iter().copied())
            .unwrap()
            .status()
            .as_u16()
    };
    let login = [("user", "admin"), ("password", PASSWORD)];
    assert_eq!(post(&cookie, &login), 403, "no token in the form");
    assert_eq!(
        post("", &[login[0], login[1], ("csrf", &csrf)]),
        403,
        "no cookie"
    );
    assert_eq!(
        post(&cookie, &[login[0], login[1], ("csrf", "0000")]),
        403,
        "wrong token"
    );
    let session = s.login();
    let (_, html, _) = s.get("/", Some(&session));
    let token = hidden(&html, "csrf");
    let logout = |form: &[(&str, &str)]| {
        agent()
            .post(&s.url("/logout"))
            .header("Cookie", &session)
            .send_form(form.iter().copied())
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(logout(&[]), 403);
    assert_eq!(logout(&[("csrf", "nope")]), 403);
    assert_eq!(s.get("/", Some(&session)).0, 200, "still logged in");
    assert_eq!(logout(&[("csrf", &token)]), 303);
    assert_eq!(s.get("/", Some(&session)).0, 303, "logged out");
}

fn proxy_header_only_from_trusted_proxies(b: Backend) {
    let header_get = |s: &Server| {
        agent()
            .get(&s.url("/"))
            .header("X-Remote-User", "alice")
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    let untrusted = Server::with(b, "trusted_proxies = [\"127.0.0.2\"]");
    assert_eq!(header_get(&untrusted), 303);
    let trusted = Server::with(b, "trusted_proxies = [\"127.0.0.0/8\"]");
    assert_eq!(header_get(&trusted), 200);
}

fn media_upload_is_checked_and_linked(b: Backend) {
    let s = Server::start(b);
    let t = s.token("web01");
    let content = b"pretend this is an ISO".to_vec();
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&content))
    };
    let put = |name: &str, token: &str, data: &[u8]| {
        let mut r = agent()
            .put(&s.url(&format!("/api/v1/media/{name}")))
            .header("Authorization", &format!("Bearer {token}"))
            .send(data)
            .unwrap();
        let _ = r.body_mut().read_to_string();
        r.status().as_u16()
    };
    assert_eq!(put(&sha, "bad", &content), 401);
    assert_eq!(put(&sha, &t, b"other content"), 400, "hash mismatch");
    assert_eq!(put("..%2F..%2Fetc%2Fpasswd", &t, &content), 400);
    assert_eq!(put(&sha, &t, &content), 201);
    assert_eq!(put(&sha, &t, &content), 200);
    // A report whose artefact is this medium links to it.
    let mut v: Value = serde_json::from_str(&report("web01", 0, None)).unwrap();
    v["build"]["artefacts"][0]["sha256"] = json!(sha);
    assert_eq!(s.post_report(&t, &v.to_string()).0, 201);
    let cookie = s.login();
    let (_, html, _) = s.get("/host/web01", Some(&cookie));
    let link = format!("/media/{sha}?name=initrd-6.1.0-9-amd64.img");
    assert!(html.contains(&link), "{html}");
    let (code, body, _) = s.get(&link, Some(&cookie));
    assert_eq!((code, body.as_bytes()), (200, content.as_slice()));
    assert_eq!(s.get(&link, None).0, 303, "downloads need a login");
}

fn check_exit_codes_and_metrics(b: Backend) {
    let s = Server::start(b);
    let (code, line) = s.cli(&["check"]);
    assert_eq!(code, 0, "{line}");
    assert_eq!(
        line,
        "REAR OK - 0 hosts ok | hosts=0 ok=0 stale=0 failed=0\n"
    );
    let t = s.token("web01");
    assert_eq!(s.post_report(&t, &report("web01", 3 * 86400, None)).0, 201);
    let (code, line) = s.cli(&["check"]);
    assert_eq!(code, 0, "{line}");
    let (code, line) = s.cli(&["check", "--max-age", "2d"]);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("REAR WARNING - 1 of 1 hosts stale (web01)"),
        "{line}"
    );
    assert_eq!(
        s.post_report(&t, &report("web01", 0, Some("disk full"))).0,
        201
    );
    let (code, line) = s.cli(&["check"]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("REAR CRITICAL - 1 of 1 hosts failed (web01)"),
        "{line}"
    );
    let (code, _) = s.cli(&["check", "--max-age", "soon"]);
    assert_eq!(code, 3);

    let mut r = agent()
        .get(&s.url("/metrics"))
        .header("Authorization", &format!("Bearer {METRICS}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.body_mut().read_to_string().unwrap();
    assert!(text.contains("# TYPE rear_hosts gauge\n"), "{text}");
    assert!(text.contains("rear_hosts{status=\"failed\"} 1\n"), "{text}");
    assert!(text.contains("rear_reports 2\n"), "{text}");
    assert!(
        text.contains("rear_host_status{host=\"web01\",status=\"failed\"} 1\n"),
        "{text}"
    );
    let bad = agent()
        .get(&s.url("/metrics"))
        .header("Authorization", "Bearer wrong-wrong-wrong-wrong")
        .call()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
}

fn token_add_rejects_bad_names(b: Backend) {
    let s = Server::start(b);
    let (code, _) = s.cli(&["token", "add", "../x"]);
    assert_ne!(code, 0);
    let (code, _) = s.cli(&["token", "revoke", "ghost"]);
    assert_ne!(code, 0);
    let t = s.token("h1");
    assert_eq!(s.cli(&["token", "revoke", "h1"]).0, 0);
    assert_eq!(s.post_report(&t, &report("h1", 0, None)).0, 401);
}

on_both!(
    healthz_answers_without_login,
    ingest_checks_the_token,
    enrollment_creates_the_host_once,
    gui_needs_login_and_lists_hosts,
    wrong_password_is_refused,
    csrf_token_is_required,
    proxy_header_only_from_trusted_proxies,
    media_upload_is_checked_and_linked,
    check_exit_codes_and_metrics,
    token_add_rejects_bad_names,
    api_without_login_is_a_json_401,
    login_is_rate_limited,
    host_page_shows_tree_and_changes_between_reports,
);
