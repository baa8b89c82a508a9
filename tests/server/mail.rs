//! Reports by mail: python3's smtplib talks SMTP to `serve --smtp`, and messages are piped
//! into `rear-server ingest-mail` as an MTA's pipe transport would. Every refusal must store
//! nothing and answer with the code that makes an MTA bounce (5xx, 65, 77) or retry (4xx, 75).

use std::io::Write as _;
use std::process::{Command, Stdio};

use rear_model::mail::{Envelope, compose};

use super::{Backend, Server, now, report};

/// A signed message carrying the fixture report of `host`, signed with `token`, sent `age`
/// seconds ago, with nonce bytes `nonce`.
fn message(host: &str, token: &str, age: u64, nonce: u8) -> Vec<u8> {
    let body = report(host, age, None);
    let env = Envelope {
        to: "reports@example.org",
        from: Some("root@web01.example.com"),
        token,
        sent: now() - age,
        nonce: [nonce; 16],
    };
    compose(&env, host, "build ok", body.as_bytes()).into_bytes()
}

/// Sends `msg` with python3's smtplib; returns the SMTP code of the answer to MAIL (when it
/// refuses) or to the end of DATA. `announce_size` sends `SIZE=` with MAIL FROM.
fn smtp_send(addr: &str, msg: &[u8], announce_size: bool) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg.eml");
    std::fs::write(&file, msg).unwrap();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = r#"
import smtplib, sys
host, port, path, announce = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
msg = open(path, "rb").read()
s = smtplib.SMTP(host, port, timeout=30)
code, _ = s.ehlo("client.example.com")
assert code == 250, code
assert s.has_extn("size"), s.esmtp_features
opts = ["SIZE=%d" % len(msg)] if announce else []
code, resp = s.mail("root@web01.example.com", opts)
if code != 250:
    print(code); s.quit(); sys.exit(0)
code, resp = s.rcpt("reports@example.org")
assert code == 250, (code, resp)
code, resp = s.data(msg)
print(code, resp.decode(), file=sys.stderr)
print(code)
s.quit()
"#;
    let out = Command::new("python3")
        .args(["-c", script, host, port])
        .arg(&file)
        .arg(if announce_size { "1" } else { "0" })
        .output()
        .expect("python3 is needed for the SMTP tests (Debian package python3)");
    assert!(
        out.status.success(),
        "python3 smtplib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Pipes `msg` into `rear-server ingest-mail` with `config`; returns the exit code and stderr.
fn ingest(config: &std::path::Path, msg: &[u8]) -> (i32, String) {
    let mut child = Command::new(super::bin())
        .arg("--config")
        .arg(config)
        .arg("ingest-mail")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The program may stop reading early (too large): a broken pipe is fine here.
    let _ = child.stdin.take().unwrap().write_all(msg);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn smtp_delivers_a_signed_report(b: Backend) {
    let (s, smtp) = Server::with_smtp(b, "");
    let token = s.token("web01");
    assert_eq!(smtp_send(&smtp, &message("web01", &token, 5, 1), true), 250);
    assert_eq!(s.report_count(), 1);
    let hosts = s.hosts();
    assert_eq!(hosts["hosts"][0]["name"], "web01", "{hosts}");
    assert_eq!(hosts["hosts"][0]["status"], "ok", "{hosts}");
    let cookie = s.login();
    let (code, html, _) = s.get("/host/web01", Some(&cookie));
    assert_eq!(code, 200);
    assert!(html.contains("52:54:00:12:34:56"), "{html}");
}

fn smtp_refuses_bad_hmac_replay_old_and_oversized_messages(b: Backend) {
    let (s, smtp) = Server::with_smtp(b, "");
    let token = s.token("web01");
    let good = message("web01", &token, 5, 1);
    assert_eq!(
        smtp_send(&smtp, &message("web01", "wrong-token", 5, 2), false),
        554,
        "bad HMAC"
    );
    assert_eq!(s.report_count(), 0);
    assert_eq!(smtp_send(&smtp, &good, false), 250);
    assert_eq!(smtp_send(&smtp, &good, false), 554, "replay");
    assert_eq!(
        smtp_send(&smtp, &message("web01", &token, 8 * 86400, 3), false),
        554,
        "older than mail_max_age"
    );
    // A report signed by web01 for another host.
    let other = {
        let body = report("db01", 0, None);
        let env = Envelope {
            to: "r@example.org",
            from: None,
            token: &token,
            sent: now(),
            nonce: [4; 16],
        };
        compose(&env, "web01", "build ok", body.as_bytes()).into_bytes()
    };
    assert_eq!(smtp_send(&smtp, &other, false), 554, "host mismatch");
    // Oversized: refused at MAIL when announced (RFC 1870), at the end of DATA otherwise.
    let mut big = message("web01", &token, 0, 5);
    let pad = format!("X-Pad: {}\r\n", "p".repeat(900)).repeat(200);
    big.splice(0..0, pad.into_bytes());
    assert_eq!(smtp_send(&smtp, &big, true), 552);
    assert_eq!(smtp_send(&smtp, &big, false), 552);
    assert_eq!(s.report_count(), 1, "only the first good message is stored");
    // The listener still answers after all that.
    assert_eq!(smtp_send(&smtp, &message("web01", &token, 0, 6), true), 250);
    assert_eq!(s.report_count(), 2);
}

/// The protocol alone, which no database is involved in: SQLite only.
#[test]
fn smtp_protocol_is_strict() {
    if !crate::preflight() {
        return;
    }
    let (_s, smtp) = Server::with_smtp(Backend::Sqlite, "");
    let script = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((host, port), timeout=30)
f = c.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline().decode()
        lines.append(l.strip())
        if l[3:4] != "-":
            return " | ".join(lines)
def say(cmd):
    c.sendall(cmd)
    return reply()
out = [reply()]
out.append(say(b"MAIL FROM:<a@b>\r\n"))
out.append(say(b"HELO client\r\n"))
out.append(say(b"RCPT TO:<r@x>\r\n"))
out.append(say(b"MAIL FROM:<a@b>\r\n"))
out.append(say(b"DATA\r\n"))
out.append(say(b"RSET\r\n"))
out.append(say(b"RCPT TO:<r@x>\r\n"))
out.append(say(b"NOOP\r\n"))
out.append(say(b"VRFY root\r\n"))
out.append(say(b"HELO client\n"))
out.append(say(b"X" * 600 + b"\r\n"))
out.append(say(b"QUIT\r\n"))
print("\n".join(out))
"#;
    let (host, port) = smtp.rsplit_once(':').unwrap();
    let out = Command::new("python3")
        .args(["-c", script, host, port])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let codes: Vec<&str> = text.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        [
            "220", "503", "250", "503", "250", "503", "250", "503", "250", "502", "500", "500",
            "221"
        ],
        "{text}"
    );
}

fn ingest_mail_exit_codes(b: Backend) {
    let s = Server::start(b);
    let token = s.token("web01");
    let good = message("web01", &token, 5, 1);
    let (code, err) = ingest(&s.config, &good);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.report_count(), 1);
    let (code, err) = ingest(&s.config, &good);
    assert_eq!(code, 77, "replay: {err}");
    assert!(err.contains("replayed"), "{err}");
    let (code, err) = ingest(&s.config, &message("web01", "wrong", 5, 2));
    assert_eq!(code, 77, "bad HMAC: {err}");
    assert!(err.contains("HMAC"), "{err}");
    let (code, err) = ingest(&s.config, b"Subject: hello\r\n\r\nnot a report\r\n");
    assert_eq!(code, 77, "unsigned: {err}");
    // Signed, but the report part is not a report.
    let bad = {
        let env = Envelope {
            to: "r@example.org",
            from: None,
            token: &token,
            sent: now(),
            nonce: [3; 16],
        };
        compose(&env, "web01", "x", b"{\"not\": \"a report\"}").into_bytes()
    };
    let (code, err) = ingest(&s.config, &bad);
    assert_eq!(code, 65, "not a report: {err}");
    let (code, err) = ingest(&s.config, &vec![b'x'; 400_000]);
    assert_eq!(code, 65, "too large: {err}");
    assert!(err.contains("max_mail_bytes"), "{err}");
    assert_eq!(s.report_count(), 1, "refusals store nothing");
    // A revoked token's mail key goes with it.
    assert_eq!(s.cli(&["token", "revoke", "web01"]).0, 0);
    let (code, err) = ingest(&s.config, &message("web01", &token, 0, 9));
    assert_eq!(code, 77, "revoked: {err}");

    // The database cannot be opened (no such directory; nothing listens on port 1): the MTA
    // must try again later.
    let database = match b {
        Backend::Sqlite => "sqlite:///nonexistent-dir/x/rear.db",
        Backend::Postgres => "postgres://rear@127.0.0.1:1/rear",
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("database = \"{database}\"\nmax_report_bytes = 65536\n"),
    )
    .unwrap();
    let (code, err) = ingest(&cfg, &message("web01", &token, 0, 10));
    assert_eq!(code, 75, "{err}");
    let (code, _) = ingest(&dir.path().join("missing.toml"), &good);
    assert_eq!(code, 78, "configuration error");
}

on_both!(
    smtp_delivers_a_signed_report,
    smtp_refuses_bad_hmac_replay_old_and_oversized_messages,
    ingest_mail_exit_codes,
);
