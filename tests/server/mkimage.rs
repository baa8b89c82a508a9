//! `rear-mkimage` sending its report to a real `rear-server`: over HTTP, through the spool
//! when the server is down, and as mail through a `sendmail` that pipes into
//! `rear-server ingest-mail`. Builds run on a tiny fake sysroot (`--modules none`, an initrd).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Backend, Server, elf_util};

const KVER: &str = "1.0-test";

/// Waits until the clock is in the next whole second: reports carry their time in seconds.
fn next_second() {
    let now = super::now();
    while super::now() <= now {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A sysroot with just enough for an initrd build: a kernel image, a host name, os-release.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("root");
        std::fs::create_dir_all(r.join("boot")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/hostname"), "fakehost\n").unwrap();
        std::fs::write(
            r.join("etc/os-release"),
            "PRETTY_NAME=\"Fake Linux 1\"\nID=fake\n",
        )
        .unwrap();
        let mut bz = vec![0u8; 0x400];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        bz[0x300..0x300 + KVER.len()].copy_from_slice(KVER.as_bytes());
        std::fs::write(r.join(format!("boot/vmlinuz-{KVER}")), bz).unwrap();
        std::fs::write(
            dir.path().join("init"),
            elf_util::static_elf(true, elf_util::EM_X86_64),
        )
        .unwrap();
        std::fs::write(dir.path().join("ok.toml"), "programs = []\n").unwrap();
        std::fs::write(
            dir.path().join("broken.toml"),
            "programs = [\"no-such-program\"]\n",
        )
        .unwrap();
        Fake { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn spool(&self) -> PathBuf {
        self.path("spool")
    }

    /// Writes the configuration with this `[server]` body.
    fn config(&self, server: &str) -> PathBuf {
        let p = self.path("config.toml");
        std::fs::write(
            &p,
            format!(
                "[server]\n{server}\ntags = [\"fake\"]\nspool = \"{}\"\ntimeout = 10\n",
                self.spool().display()
            ),
        )
        .unwrap();
        p
    }

    /// Runs a build with recipe `recipe` (`ok` or `broken`).
    fn build(&self, config: &Path, recipe: &str) -> Output {
        Command::new(rear_tests::bin("rear-mkimage"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "--output",
                "initrd",
                "--no-default-recipes",
                "--modules",
                "none",
                "--compress",
                "none",
                "--ssh",
                "off",
                "--recipe",
            ])
            .arg(self.path(&format!("{recipe}.toml")))
            .arg("--init")
            .arg(self.path("init"))
            .arg("--root")
            .arg(self.path("root"))
            .arg("--out")
            .arg(self.path("out"))
            .arg("--config")
            .arg(config)
            .output()
            .unwrap()
    }

    fn spooled(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.spool())
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback port nobody listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn mkimage_sends_its_report_over_http() {
    if !crate::preflight() {
        return;
    }
    let s = Server::start(Backend::Sqlite);
    let token = s.token("fakehost");
    let f = Fake::new();
    let cfg = f.config(&format!("url = \"{}/\"\ntoken = \"{token}\"", s.base));
    let o = f.build(&cfg, "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 report sent to "), "{}", stderr(&o));
    // Not the send warning (a --root build also warns that it cannot see the disks).
    assert!(!stderr(&o).contains("cannot send"), "{}", stderr(&o));
    assert_eq!(s.report_count(), 1);
    assert!(f.spooled().is_empty(), "sent reports leave the spool");
    let hosts = s.hosts();
    let h = &hosts["hosts"][0];
    assert_eq!(h["name"], "fakehost", "{hosts}");
    assert_eq!(h["os"], "Fake Linux 1", "{hosts}");
    assert_eq!(h["tags"][0], "fake", "{hosts}");
    // A failed build is reported too, with its error, and still fails.
    let o = f.build(&cfg, "broken");
    assert!(!o.status.success());
    assert_eq!(s.report_count(), 2, "{}", stderr(&o));
    let hosts = s.hosts();
    assert_eq!(hosts["hosts"][0]["status"], "failed", "{hosts}");
    let cookie = s.login();
    let (_, html, _) = s.get("/host/fakehost", Some(&cookie));
    assert!(html.contains("no-such-program"), "{html}");
}

#[test]
fn mkimage_spools_while_the_server_is_down_and_forwards_later() {
    if !crate::preflight() {
        return;
    }
    let f = Fake::new();
    let url = format!("http://127.0.0.1:{}", dead_port());
    let cfg = f.config(&format!("url = \"{url}\"\ntoken = \"not-yet\""));
    let o = f.build(&cfg, "ok");
    assert!(
        o.status.success(),
        "a send failure never fails the build: {}",
        stderr(&o)
    );
    let spooled = f.spooled();
    assert_eq!(spooled.len(), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("warning: cannot send the report to "), "{err}");
    assert!(err.contains(&url), "names the URL: {err}");
    assert!(err.contains(&spooled[0]), "names the spool file: {err}");
    let o = f.build(&cfg, "broken");
    assert!(!o.status.success());
    assert_eq!(f.spooled().len(), 2, "{}", stderr(&o));
    // A report's time is in whole seconds, and reports of the same second (all received in
    // the same second, too) have no order: the last build must be a second later.
    next_second();

    let s = Server::start(Backend::Sqlite);
    let token = s.token("fakehost");
    let cfg = f.config(&format!("url = \"{}\"\ntoken = \"{token}\"", s.base));
    let o = f.build(&cfg, "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(f.spooled().is_empty(), "{}", stderr(&o));
    assert_eq!(s.report_count(), 3, "both spooled reports and the new one");
    assert!(stderr(&o).contains("3 reports sent to"), "{}", stderr(&o));
    // The newest report (the ok build) decides the status.
    assert_eq!(s.hosts()["hosts"][0]["status"], "ok");
}

#[test]
fn mkimage_enrolls_and_uploads_media() {
    if !crate::preflight() {
        return;
    }
    let s = Server::start(Backend::Sqlite);
    let f = Fake::new();
    let cfg = f.config(&format!(
        "url = \"{}\"\ntoken = \"{}\"\nsend_media = true",
        s.base,
        super::ENROLL
    ));
    let o = f.build(&cfg, "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.report_count(), 1, "{}", stderr(&o));
    let saved = std::fs::read_to_string(f.spool().join("token")).unwrap();
    assert_eq!(saved.trim().len(), 64, "the enrolled host keeps its token");
    // The library's sender, as rear-mkimage calls it, with an ISO among the artefacts: the
    // upload needs the host's own token, which only the enrollment gave.
    let iso = f.path("rear-fakehost.iso");
    std::fs::write(&iso, b"not really an ISO").unwrap();
    let sha = rear_model::manifest::sha256_hex(b"not really an ISO");
    let config = rear_model::config::Config::load(&cfg, true)
        .unwrap()
        .server
        .unwrap();
    let mut facts = rear_model::report::Facts::default();
    facts.host.name = "fakehost".into();
    let report = rear_model::report::Report::new(facts, None, super::now());
    let d = rear_mkimage::send::deliver(&config, &report, &[(iso, sha.clone())]);
    assert_eq!((d.sent, d.media), (1, 1), "{:?}", d.warnings);
    let cookie = s.login();
    let (code, body, _) = s.get(&format!("/media/{sha}"), Some(&cookie));
    assert_eq!((code, body.as_str()), (200, "not really an ISO"));
}

#[test]
fn mkimage_mails_through_sendmail_into_ingest_mail() {
    if !crate::preflight() {
        return;
    }
    let s = Server::start(Backend::Sqlite);
    let token = s.token("fakehost");
    let f = Fake::new();
    let args = f.path("sendmail.args");
    let failing = f.path("sendmail-down");
    std::fs::write(
        &failing,
        "#!/bin/sh\ncat >/dev/null\necho 'queue directory not writable' >&2\nexit 75\n",
    )
    .unwrap();
    let good = f.path("sendmail");
    std::fs::write(
        &good,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}' --config '{}' ingest-mail\n",
            args.display(),
            super::bin().display(),
            s.config.display()
        ),
    )
    .unwrap();
    for p in [&failing, &good] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mail = |sendmail: &Path| {
        f.config(&format!(
            "url = \"mailto:reports@example.org\"\ntoken = \"{token}\"\nsendmail = \"{}\"\nfrom = \"root@fakehost.example\"",
            sendmail.display()
        ))
    };
    let o = f.build(&mail(&failing), "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("queue directory not writable"),
        "{}",
        stderr(&o)
    );
    assert_eq!(f.spooled().len(), 1);
    assert_eq!(s.report_count(), 0);

    // The same build in the same second makes the same report (same spool file): the second
    // build must be a second later to be a second report.
    next_second();
    let o = f.build(&mail(&good), "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(f.spooled().is_empty(), "{}", stderr(&o));
    assert_eq!(s.report_count(), 2, "{}", stderr(&o));
    let argv = std::fs::read_to_string(&args).unwrap();
    assert_eq!(argv, "-oi -- reports@example.org\n".repeat(2));
    let (code, line) = s.cli(&["check"]);
    assert_eq!(code, 0, "{line}");
    assert!(line.starts_with("REAR OK - 1 hosts ok"), "{line}");
}
