//! rear-server at fleet scale (`make bench-server`, through `bench/server.sh`; not a test).
//!
//! 1. Seeds an SQLite database directly through the library (not over HTTP): `--hosts` hosts
//!    (default 10,000) with `--reports` reports each (default 100), one per hour, bodies made
//!    from the v1 report fixture, every host with a token and a summary as ingest leaves it.
//! 2. Starts the real `rear-server` on 127.0.0.1 and measures ingest over HTTP: `--clients`
//!    threads (default 8) post `--ingest` new reports (default 20,000) with the hosts' tokens.
//!    Target: at least 1,000 reports/s.
//! 3. Logs in and times the overview page, sorted overview pages and searches (the median of
//!    `--runs` requests, default 20). Target: under 100 ms each.
//!
//! Prints one table; exits 1 when a target is missed. Only 127.0.0.1 is ever contacted, and
//! every loop is bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rear_model::report::{Build, Report};
use rear_server::{auth, db};

const BIN: &str = env!("CARGO_BIN_EXE_rear-server");
const FIXTURE: &str = include_str!("../tests/fixtures/report-v1.json");
const PASSWORD: &str = "bench password";
const DOMAINS: [&str; 8] = [
    "example.com",
    "example.net",
    "example.org",
    "corp.example",
    "dmz.example",
    "lab.example",
    "eu.example",
    "us.example",
];
const TAGS: [&str; 6] = ["web", "db", "dmz", "prod", "test", "k8s"];
const OSES: [&str; 4] = [
    "Debian GNU/Linux 12 (bookworm)",
    "Debian GNU/Linux 11 (bullseye)",
    "Ubuntu 24.04 LTS",
    "Red Hat Enterprise Linux 9.4 (Plow)",
];
/// Ingest stops after this long even if not all reports were sent.
const INGEST_LIMIT: Duration = Duration::from_secs(120);

struct Args {
    hosts: usize,
    reports: usize,
    clients: usize,
    ingest: usize,
    runs: usize,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        hosts: 10_000,
        reports: 100,
        clients: 8,
        ingest: 20_000,
        runs: 20,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--bench" {
            continue; // added by `cargo bench`
        }
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--hosts" => a.hosts = v.parse().unwrap(),
            "--reports" => a.reports = v.parse().unwrap(),
            "--clients" => a.clients = v.parse().unwrap(),
            "--ingest" => a.ingest = v.parse().unwrap(),
            "--runs" => a.runs = v.parse().unwrap(),
            "--dir" => a.dir = Some(PathBuf::from(v)),
            _ => panic!("unknown option {k}"),
        }
    }
    a
}

fn name(i: usize) -> String {
    format!("host{i:05}")
}

fn token(i: usize) -> String {
    format!("bench-token-{i:05}-0123456789abcdef")
}

/// Report of host `i` made at `created`; every 17th build failed.
fn report(template: &Report, i: usize, created: u64, failed: bool) -> Report {
    let mut r = template.clone();
    r.created = created;
    r.host.name = name(i);
    r.host.domain = DOMAINS[i % DOMAINS.len()].to_string();
    r.host.tags = vec![
        TAGS[i % TAGS.len()].to_string(),
        TAGS[(i / 7) % TAGS.len()].to_string(),
    ];
    r.host.tags.sort();
    r.host.tags.dedup();
    r.os.pretty_name = OSES[i % OSES.len()].to_string();
    let b = i.to_be_bytes();
    r.network[0].mac = format!("52:54:00:{:02x}:{:02x}:{:02x}", b[5], b[6], b[7]);
    r.network[0].addresses = vec![format!("10.{}.{}.{}/16", b[5], b[6], b[7])];
    r.layout.disks[0].serial = format!("S4EWNX{i:08}");
    if failed {
        r.build = Some(Build::failed("mkfs.vfat: not found"));
    }
    r
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Fills the database; returns the number of reports stored.
fn seed(path: &Path, a: &Args, template: &Report) -> usize {
    let database = db::Db::open(path).unwrap();
    let start = now() - (a.reports as u64 + 1) * 3600;
    let mut stored = 0;
    database
        .with(|c| {
            for chunk in (0..a.hosts).collect::<Vec<_>>().chunks(500) {
                let tx = c.transaction()?;
                for &i in chunk {
                    db::set_token(&tx, &name(i), &auth::token_hash(&token(i)), start)?;
                    let mut last = None;
                    for k in 0..a.reports {
                        let created = start + k as u64 * 3600;
                        let r = report(template, i, created, (i + k) % 17 == 0);
                        let body = r.to_json();
                        let id = rear_model::manifest::sha256_hex(body.as_bytes());
                        db::insert_report(&tx, &id, &name(i), &r, &body, created + 5)?;
                        stored += 1;
                        last = Some((id, r));
                    }
                    if let Some((id, r)) = last {
                        db::summarise_latest(&tx, &id, &name(i), &r)?;
                    }
                    db::summarise_builds(&tx, &name(i))?;
                }
                tx.commit()?;
            }
            Ok(())
        })
        .unwrap();
    stored
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path, dbfile: &Path) -> Server {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"sqlite://{}\"\nmedia_dir = \"{}\"\n\
             [[users]]\nname = \"admin\"\npassword_hash = \"{}\"\n",
            dbfile.display(),
            dir.join("media").display(),
            auth::hash_password(PASSWORD).unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

struct Ingest {
    sent: usize,
    stored: usize,
    failed: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn ingest(s: &Server, a: &Args, template: &Report) -> Ingest {
    let next = AtomicUsize::new(0);
    let base = now();
    let t0 = Instant::now();
    let results: Vec<(usize, usize, Vec<f64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..a.clients)
            .map(|_| {
                scope.spawn(|| {
                    let agent = agent();
                    let (mut stored, mut failed, mut lat) = (0, 0, Vec::new());
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= a.ingest || t0.elapsed() > INGEST_LIMIT {
                            break;
                        }
                        let i = n % a.hosts;
                        // Newer than every seeded report: each one becomes the host's latest,
                        // the most work ingest does.
                        let r = report(template, i, base + (n / a.hosts) as u64 + 1, false);
                        let body = r.to_json();
                        let t = Instant::now();
                        let mut resp = agent
                            .post(&format!("{}/api/v1/reports", s.base))
                            .header("Authorization", &format!("Bearer {}", token(i)))
                            .header("Content-Type", "application/json")
                            .send(body.as_str())
                            .unwrap();
                        let _ = resp.body_mut().read_to_string();
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        if resp.status().as_u16() == 201 {
                            stored += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    (stored, failed, lat)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = results.iter().flat_map(|r| r.2.iter().copied()).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ingest {
        sent: lat.len(),
        stored: results.iter().map(|r| r.0).sum(),
        failed: results.iter().map(|r| r.1).sum(),
        secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

fn login(s: &Server) -> String {
    let agent = agent();
    let mut r = agent.get(&format!("{}/login", s.base)).call().unwrap();
    let cookie_of = |r: &ureq::http::Response<ureq::Body>, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap()
    };
    let csrf_cookie = cookie_of(&r, "rear_login_csrf");
    let html = r.body_mut().read_to_string().unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    let r = agent
        .post(&format!("{}/login", s.base))
        .header("Cookie", &csrf_cookie)
        .send_form([("user", "admin"), ("password", PASSWORD), ("csrf", csrf)])
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "login failed");
    cookie_of(&r, "rear_session")
}

/// Median and maximum milliseconds of `runs` GETs of `path` (after one warm-up), and the
/// number of host links on the page.
fn time_page(s: &Server, cookie: &str, path: &str, runs: usize) -> (f64, f64, usize) {
    let agent = agent();
    let get = || {
        let t = Instant::now();
        let mut r = agent
            .get(&format!("{}{path}", s.base))
            .header("Cookie", cookie)
            .call()
            .unwrap();
        let body = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        (t.elapsed().as_secs_f64() * 1000.0, body)
    };
    let (_, body) = get();
    let links = body.matches("href=\"/host/").count();
    let mut ms: Vec<f64> = (0..runs).map(|_| get().0).collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1], links)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

fn main() {
    let a = args();
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).unwrap();
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("rear-server-bench-")
                .tempdir()
                .unwrap();
            tmp.path().to_path_buf()
        }
    };
    let template = Report::from_json(FIXTURE.as_bytes()).unwrap();
    let dbfile = dir.join("rear.db");
    let _ = std::fs::remove_file(&dbfile);
    eprintln!(
        "seeding {} hosts x {} reports into {} ...",
        a.hosts,
        a.reports,
        dbfile.display()
    );
    let t = Instant::now();
    let seeded = seed(&dbfile, &a, &template);
    let seed_secs = t.elapsed().as_secs_f64();
    let db_mb = std::fs::metadata(&dbfile).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;

    let s = start_server(&dir, &dbfile);
    eprintln!(
        "ingesting {} reports with {} clients ...",
        a.ingest, a.clients
    );
    let ing = ingest(&s, &a, &template);
    let rate = ing.stored as f64 / ing.secs;
    let cookie = login(&s);
    eprintln!("timing pages ...");
    let pages = [
        ("overview /", "/".to_string()),
        ("overview sorted by age", "/?sort=age&dir=desc".to_string()),
        (
            "overview page 50, by status",
            "/?sort=status&page=50".to_string(),
        ),
        ("search host name", "/search?q=host0012".to_string()),
        ("search MAC", "/search?q=52-54-00-00-27-0f".to_string()),
        ("search no match", "/search?q=no-such-host".to_string()),
    ];
    let timed: Vec<_> = pages
        .iter()
        .map(|(label, path)| (label, time_page(&s, &cookie, path, a.runs)))
        .collect();

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "rear-server benchmark: SQLite, {} hosts x {} reports, {} cores, 127.0.0.1",
        a.hosts, a.reports, cores
    );
    println!(
        "seed (direct into the database): {seeded} reports in {seed_secs:.1} s \
         ({:.0} reports/s), database {db_mb:.0} MB",
        seeded as f64 / seed_secs
    );
    println!();
    println!("| measurement | result | target | |");
    println!("|---|---|---|---|");
    let mut all_ok = rate >= 1000.0 && ing.failed == 0;
    println!(
        "| ingest over HTTP, {} clients | {rate:.0} reports/s ({} stored in {:.1} s, {} refused; p50 {:.1} ms, p99 {:.1} ms) | >= 1000 reports/s | {} |",
        a.clients,
        ing.stored,
        ing.secs,
        ing.failed,
        ing.p50_ms,
        ing.p99_ms,
        verdict(rate >= 1000.0 && ing.failed == 0)
    );
    for (label, (median, max, links)) in &timed {
        let ok = *median < 100.0;
        all_ok &= ok;
        println!(
            "| {label} | median {median:.1} ms, max {max:.1} ms ({links} host links) | < 100 ms | {} |",
            verdict(ok)
        );
    }
    println!("\n(ingest sent {} requests)", ing.sent);
    drop(s);
    if !all_ok {
        std::process::exit(1);
    }
}
