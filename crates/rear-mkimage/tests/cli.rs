//! `rear-mkimage` run as a program (the system tests in `tests/it` and `testvm` drive the rest;
//! this package's own test also makes cargo build the binary they run).
#![allow(clippy::unwrap_used)]

use std::process::Command;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/layout/raid1-lvm-xfs/layout.json"
);

#[test]
fn layout_show_prints_the_same_tree_as_the_rescue_side() {
    let out = Command::new(env!("CARGO_BIN_EXE_rear-mkimage"))
        .args(["layout", "show", FIXTURE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "fixture-raid1-lvm-xfs (BIOS boot)",
        "/dev/md0  1016 MiB  raid1",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
}

#[test]
fn inspect_of_a_missing_file_is_one_error_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_rear-mkimage"))
        .args(["inspect", "/nonexistent/rear.iso"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim_end(),
        "rear-mkimage: error: /nonexistent/rear.iso: No such file or directory (os error 2)"
    );
}
