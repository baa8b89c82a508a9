//! A private PostgreSQL cluster for the tests: Debian's `postgresql` package (`make test`
//! installs it), initialised in a temp dir, listening only on 127.0.0.1 at a free port, with
//! its socket in that dir. One cluster serves the whole test process; each server under test
//! gets a database of its own.
//!
//! initdb and postgres refuse to run as root, so as root they run as the `postgres` user.
//! A watcher shell holds the read end of a pipe whose write end only this process has: when the
//! process ends (however it ends), the watcher reads EOF, stops the cluster and removes the
//! dir. So nothing is left behind, though libtest has no hook after the last test.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running cluster.
pub struct Cluster {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    next_db: AtomicUsize,
    /// Kept only so that its stdin (the watcher's pipe) stays open while the process lives.
    _watcher: Mutex<Child>,
}

/// The cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = glob::glob("/usr/lib/postgresql/*/bin/initdb")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|p| {
            let bin = p.parent()?.to_path_buf();
            let v = bin.parent()?.file_name()?.to_str()?.parse().ok()?;
            Some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make test` \
             installs Debian's postgresql package, or run `apt-get install postgresql`"
        ),
    }
}

/// The user and group the server processes run as: `postgres` when we are root.
fn server_ids() -> Option<(nix::unistd::Uid, nix::unistd::Gid)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("running as root needs the `postgres` user (from Debian's postgresql package)");
    Some((user.uid, user.gid))
}

/// `program` set to run as the server user, in `dir` (root's working directory may be closed
/// to that user), in its own process group so a Ctrl-C of the test run does not reach it.
fn server_command(program: &Path, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir).process_group(0);
    if let Some((uid, gid)) = server_ids() {
        c.uid(uid.as_raw()).gid(gid.as_raw());
    }
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start() -> Cluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rear-pg-")
            .tempdir()
            .unwrap()
            .keep();
        // First the watcher, so that the dir goes away even when the start fails. It outlives
        // this process on purpose (that is its job), so it is never waited for.
        #[allow(clippy::zombie_processes)]
        let watcher = Command::new("sh")
            .arg("-c")
            .arg(
                r#"read -r _ || true
                   pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null) && kill -INT "$pid" 2>/dev/null &&
                   for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                   rm -rf "$1""#,
            )
            .arg("pg-watcher")
            .arg(&dir)
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        if let Some((uid, gid)) = server_ids() {
            nix::unistd::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.join("data");
        let out = server_command(&bin.join("initdb"), &dir)
            .args([
                "--username=rear",
                "--auth=trust",
                "--no-locale",
                "--encoding=UTF8",
            ])
            .args(["--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A port found free may be taken before postgres binds it: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = dir.join(format!("postgres-{port}.log"));
            let mut child = server_command(&bin.join("postgres"), &dir)
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(&dir)
                .args(["-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                // Test data need no durability; this saves an fsync per commit.
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    last_log = format!("postgres exited ({status}): {}", read(&log));
                    break;
                }
                let ready = Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .status()
                    .unwrap()
                    .success();
                if ready {
                    // The cluster lives on after `child` is dropped; the watcher stops it.
                    return Cluster {
                        bin,
                        port,
                        dir,
                        next_db: AtomicUsize::new(0),
                        _watcher: Mutex::new(watcher),
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "postgres did not start in 60 s: {}",
                    read(&log)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("could not start postgres: {last_log}");
    }

    /// A new empty database; returns its URL.
    pub fn new_database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "rear",
            ])
            .arg(&name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb {name} failed: {} (cluster in {})",
            String::from_utf8_lossy(&out.stderr),
            self.dir.display()
        );
        format!("postgres://rear@127.0.0.1:{}/{name}", self.port)
    }
}

fn read(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}
