//! `rear-restore` run as a program (the system tests in `tests/it` and `testvm` drive the rest;
//! this package's own test also makes cargo build the binary they run).
#![allow(clippy::unwrap_used)]

use std::process::Command;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/layout/raid1-lvm-xfs/layout.json"
);

#[test]
fn layout_show_prints_the_saved_tree() {
    let out = Command::new(env!("CARGO_BIN_EXE_rear-restore"))
        .args(["layout", "show", FIXTURE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for want in ["/dev/vda  1.0 GiB", "/dev/md0  1016 MiB  raid1", "VG vg0"] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
}

#[test]
fn layout_show_of_a_missing_file_names_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_rear-restore"))
        .args(["layout", "show", "/nonexistent/layout.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("error: /nonexistent/layout.json: No such file"),
        "{stderr}"
    );
}

#[test]
fn init_is_refused_when_not_pid_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_rear-restore"))
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr
            .contains("error: rear-restore init is the rescue system's PID 1 and this is process "),
        "{stderr}"
    );
    assert!(stderr.contains("refusing"), "{stderr}");
}
