//! CLI tests: `rear-mkimage` run as a program, on this machine and on fake sysroots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rear_testutil::{elf as elf_util, kmod as kmod_util, tools};

mod backup;
mod build_errors;
mod build_fake;
mod build_host;
mod layout;
mod module_graph;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `rear-mkimage` with a fixed `SOURCE_DATE_EPOCH` and cargo's `rear-restore` as `/init`.
pub fn mkimage() -> Command {
    let mut c = Command::new(rear_tests::bin("rear-mkimage"));
    c.env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

/// Path of cargo's build of rear-restore.
pub fn restore_bin() -> PathBuf {
    rear_tests::bin("rear-restore")
}

/// A tiny static ELF (no PT_INTERP) standing in for `/init` on fake sysroots, which have no
/// C library for cargo's dynamically linked rear-restore.
pub fn static_init(dir: &Path) -> PathBuf {
    let p = dir.join("init");
    std::fs::write(&p, elf_util::static_elf(true, elf_util::EM_X86_64)).unwrap();
    p
}

/// Runs a command, returning its output (never panics on failure status).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("starting rear-mkimage")
}

/// Asserts failure with exactly one error line on stderr containing all of `needles`.
pub fn assert_one_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr:\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rear-mkimage: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "want one error line, stderr:\n{stderr}");
    for n in needles {
        assert!(
            errors[0].contains(n),
            "error line lacks {n:?}: {}",
            errors[0]
        );
    }
    errors[0].to_string()
}

/// The names of the files in a directory (sorted).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Fails naming the Debian packages (from `.ci/tools`) when a tool the test compares
/// against is missing.
pub fn require_tools(names: &[&str]) {
    let missing = tools::missing(names);
    assert!(
        missing.is_empty(),
        "this test needs {}: `make deps-test` installs them",
        missing.join(", ")
    );
}
