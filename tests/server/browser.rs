//! The GUI in a real browser: headless Chromium driven through chromedriver ([`webdriver`]),
//! against the real `rear-server` binary on 127.0.0.1. These tests see what a user sees: the
//! login form submitted by a browser (cookies, CSRF, redirects), pages without JavaScript,
//! the Last 20 page refreshing itself. Each view is saved as a PNG under
//! `target/browser-artifacts/` for a person to look at.
//!
//! chromium and chromium-driver are in the Makefile's TEST_PACKAGES and in `.ci/tools`; when
//! missing, the suite's preflight fails under `CI` with the package's name (elsewhere it skips
//! with that reason).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::webdriver::Browser;
use super::{Backend, PASSWORD, Server, report};

/// How long a page may take to appear; generous, the machine is shared.
const PAGE: Duration = Duration::from_secs(20);

/// The host `web01` (two reports: the kernel changed) and `db01` (another domain, tag, MAC,
/// disk and OS), as in a small fleet.
fn seed(s: &Server) {
    let web = s.token("web01");
    let mut old: Value = serde_json::from_str(&report("web01", 7200, None)).unwrap();
    old["kernel"] = json!("6.1.0-8-amd64");
    assert_eq!(s.post_report(&web, &old.to_string()).0, 201);
    assert_eq!(s.post_report(&web, &report("web01", 600, None)).0, 201);
    let db = s.token("db01");
    let mut v: Value = serde_json::from_str(&report("db01", 300, None)).unwrap();
    v["host"]["domain"] = json!("corp.example");
    v["host"]["tags"] = json!(["db"]);
    v["os"]["pretty_name"] = json!("Rocky Linux 9.4 (Blue Onyx)");
    v["hardware"]["product"] = json!("Server <b>X</b>");
    v["network"][0]["mac"] = json!("52:54:00:ab:cd:ef");
    v["network"][0]["addresses"] = json!(["198.51.100.20/24"]);
    v["layout"]["disks"][0]["name"] = json!("sda");
    v["layout"]["disks"][0]["serial"] = json!("WD-DB01SERIAL");
    v["layout"]["filesystems"] = json!([
        {"device": "/dev/sda2", "mountpoint": "/", "fstype": "xfs"},
        {"device": "/dev/sda1", "mountpoint": "/boot", "fstype": "xfs"},
        {"device": "/dev/mapper/vg-pgdata", "mountpoint": "/var/lib/pgsql", "fstype": "xfs"}
    ]);
    assert_eq!(s.post_report(&db, &v.to_string()).0, 201);
}

/// Where screenshots go: `target/browser-artifacts/` of this checkout, created on demand.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Checks that the page has no script (the GUI works without JavaScript), then saves a
/// screenshot named `name.png` and prints its path.
fn shot(b: &Browser, name: &str) {
    let html = b.source().unwrap();
    assert!(!html.contains("<script"), "{name} has a script: {html}");
    let path = artifacts().join(format!("{name}.png"));
    b.screenshot(&path).unwrap();
    println!("screenshot: {}", path.display());
}

/// Fills and submits the login form the browser is on.
fn submit_login(b: &Browser, password: &str) {
    let user = b.get("input[name=user]").unwrap();
    b.type_into(&user, "admin").unwrap();
    let pw = b.get("input[name=password]").unwrap();
    b.type_into(&pw, password).unwrap();
    let button = b.get("form[action='/login'] button").unwrap();
    b.click(&button).unwrap();
}

/// A browser logged in through the real login form, on the overview.
fn logged_in(s: &Server) -> Browser {
    let b = Browser::start();
    b.goto(&s.url("/")).unwrap();
    assert!(b.url().unwrap().contains("/login"), "{}", b.url().unwrap());
    submit_login(&b, PASSWORD);
    b.wait_for("table a[href='/host/web01']", PAGE).unwrap();
    assert_eq!(b.url().unwrap(), s.url("/"));
    b
}

/// Waits until `done` holds of the page: a click's navigation may still be under way, and an
/// element of the old page is no proof of the new one.
fn wait_until(b: &Browser, what: &str, done: impl Fn(&Browser) -> bool) {
    let start = Instant::now();
    while !done(b) {
        assert!(
            start.elapsed() < PAGE,
            "{what}: not shown within {PAGE:?} (at {})",
            b.url().unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The rendered text of the `main` element.
fn main_text(b: &Browser) -> String {
    b.text(&b.get("main").unwrap()).unwrap()
}

#[test]
fn browser_without_session_goes_to_login_and_back() {
    if !crate::preflight() {
        return;
    }
    let s = Server::start(Backend::Sqlite);
    seed(&s);
    let b = Browser::start();
    b.goto(&s.url("/host/web01")).unwrap();
    assert_eq!(
        b.url().unwrap(),
        s.url("/login?next=%2Fhost%2Fweb01"),
        "no session: the login page, remembering where we wanted to go"
    );
    assert!(b.find("input[name=password]").unwrap().is_some());
    assert!(
        b.find("a[href='/host/web01']").unwrap().is_none(),
        "nothing leaks before login"
    );
    shot(&b, "login");
    submit_login(&b, "wrong password");
    b.wait_for("p.err", PAGE).unwrap();
    assert!(main_text(&b).contains("Wrong user name or password."));
    submit_login(&b, PASSWORD);
    b.wait_for("h2#changes", PAGE).unwrap();
    assert_eq!(b.url().unwrap(), s.url("/host/web01"));
    assert_eq!(b.title().unwrap(), "web01 – rear-server");
    // The session lives in a cookie: without cookies, back to the login page.
    b.delete_cookies().unwrap();
    b.goto(&s.url("/")).unwrap();
    assert_eq!(b.url().unwrap(), s.url("/login?next=%2F"));
}

#[test]
fn browser_views_show_the_seeded_hosts() {
    if !crate::preflight() {
        return;
    }
    let s = Server::start(Backend::Sqlite);
    seed(&s);
    let b = logged_in(&s);
    let both = ["a[href='/host/web01']", "a[href='/host/db01']"];

    // Overview, then sorted by host descending through its column link.
    for css in both {
        assert!(b.find(css).unwrap().is_some(), "overview: {css}");
    }
    assert!(main_text(&b).contains("2 hosts: 2 ok, 0 stale, 0 failed"));
    shot(&b, "overview");
    b.follow(
        &b.get("th a[href^='/?sort=host']").unwrap(),
        &s.url("/?sort=host"),
        PAGE,
    )
    .unwrap();
    let rows = b.find_all("tbody td:first-child a").unwrap();
    let names: Vec<String> = rows.iter().map(|e| b.text(e).unwrap()).collect();
    assert_eq!(names, ["web01", "db01"], "sorted by host, descending");

    // Last 20 reports: all three, newest first.
    b.goto(&s.url("/reports")).unwrap();
    let hosts: Vec<String> = b
        .find_all("tbody td:nth-child(2) a")
        .unwrap()
        .iter()
        .map(|e| b.text(e).unwrap())
        .collect();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    for css in both {
        assert!(b.find(css).unwrap().is_some(), "reports: {css}");
    }
    shot(&b, "reports");

    // By domain and by tag, each linking to the filtered overview.
    b.goto(&s.url("/domains")).unwrap();
    assert!(b.find("a[href='/?domain=example.com']").unwrap().is_some());
    assert!(b.find("a[href='/?domain=corp.example']").unwrap().is_some());
    shot(&b, "domains");
    let corp = b.get("a[href='/?domain=corp.example']").unwrap();
    b.follow(&corp, &s.url("/?domain=corp.example"), PAGE)
        .unwrap();
    assert!(b.find(both[1]).unwrap().is_some());
    assert!(
        b.find(both[0]).unwrap().is_none(),
        "web01 is not in corp.example"
    );
    b.goto(&s.url("/tags")).unwrap();
    for tag in ["db", "dmz", "web"] {
        let css = format!("a[href='/?tag={tag}']");
        assert!(b.find(&css).unwrap().is_some(), "tags: {css}");
    }
    shot(&b, "tags");

    // Search by MAC through the header's search box.
    let q = b.get("header input[name=q]").unwrap();
    b.type_into(&q, "52:54:00:AB:CD:EF").unwrap();
    let search = b.get("header form[action='/search'] button").unwrap();
    b.follow(&search, &s.url("/search?q=52"), PAGE).unwrap();
    assert!(b.find(both[1]).unwrap().is_some(), "found by MAC");
    assert!(b.find(both[0]).unwrap().is_none(), "only db01 has it");
    assert!(main_text(&b).contains("1 hosts match"));
    shot(&b, "search");

    // The host page: facts, media with SHA-256, network, layout tree, changes, history.
    b.follow(&b.get(both[1]).unwrap(), &s.url("/host/db01"), PAGE)
        .unwrap();
    let text = main_text(&b);
    for want in [
        "Rocky Linux 9.4 (Blue Onyx)",
        "52:54:00:ab:cd:ef",
        "198.51.100.20/24",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "nothing to compare",
        "Server <b>X</b>",
    ] {
        assert!(text.contains(want), "db01 page lacks {want}: {text}");
    }
    assert!(
        b.find("main b").unwrap().is_none(),
        "report text is shown as text, never as markup"
    );
    let tree = b.text(&b.get("ul.tree").unwrap()).unwrap();
    let (disk, part, other) = (
        tree.find("sda").unwrap(),
        tree.find("sda1").unwrap(),
        tree.find("Other devices").unwrap(),
    );
    assert!(disk < part && part < other, "{tree}");
    assert!(tree.contains("/var/lib/pgsql"), "{tree}");
    shot(&b, "host-db01");

    b.goto(&s.url("/host/web01")).unwrap();
    let diff = b.text(&b.get("table.diff").unwrap()).unwrap();
    assert!(
        diff.contains("6.1.0-8-amd64") && diff.contains("6.1.0-9-amd64"),
        "{diff}"
    );
    shot(&b, "host-web01");
    // The compare form works without script: pick the same report twice, no changes.
    let options = b.find_all("select[name=to] option").unwrap();
    assert_eq!(options.len(), 2);
    b.click(&options[1]).unwrap();
    b.click(&b.get("form.compare button").unwrap()).unwrap();
    // The page before the click has `h2#changes` too: wait for the new URL and its text.
    wait_until(&b, "the comparison of a report with itself", |b| {
        let compared = b.url().is_ok_and(|u| u.contains("&to="));
        let text = b.find("main").ok().flatten().and_then(|m| b.text(&m).ok());
        compared && text.is_some_and(|t| t.contains("no changes."))
    });
    assert!(b.find("table.diff").unwrap().is_none());
}

#[test]
fn browser_last_reports_update_by_themselves() {
    if !crate::preflight() {
        return;
    }
    let s = Server::start(Backend::Sqlite);
    seed(&s);
    let b = logged_in(&s);
    b.goto(&s.url("/reports")).unwrap();
    let new = "a[href='/host/new01']";
    assert!(b.find(new).unwrap().is_none());
    let t = s.token("new01");
    assert_eq!(
        s.post_report(&t, &report("new01", 0, Some("disk full"))).0,
        201
    );
    // The page refreshes itself every 15 s (meta refresh, no script); poll its DOM until the
    // new report shows, without navigating.
    b.wait_for(new, Duration::from_secs(45)).unwrap();
    assert_eq!(b.url().unwrap(), s.url("/reports"));
    let first = b.get("tbody tr:first-child").unwrap();
    let row = b.text(&first).unwrap();
    assert!(row.contains("new01") && row.contains("failed"), "{row}");
    shot(&b, "reports-refreshed");
}
