//! `rear-server` run as a program, without a server running (the system tests in
//! `tests/server` serve; this package's own test also makes cargo build the binary they run).
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

#[test]
fn hash_password_prints_an_argon2id_hash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rear-server"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "correct horse").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
}

#[test]
fn check_without_a_configuration_is_unknown_naming_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_rear-server"))
        .args(["--config", "/nonexistent/config.toml", "check"])
        .output()
        .unwrap();
    // Nagios: 3 is UNKNOWN; a missing configuration must not read as OK.
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("REAR UNKNOWN - /nonexistent/config.toml: No such file"),
        "{stdout}"
    );
}
