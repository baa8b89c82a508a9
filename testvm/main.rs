//! QEMU boot tests (`make vmtest`, part of `make test`; not run by a bare `cargo test`).
//!
//! They run the binaries from `REAR_BIN_DIR` (the static release build that `make vmtest`
//! makes) or, without it, cargo's own build (`rear_tests::bin`), and boot what they build under
//! `qemu-system-x86_64 -accel tcg`, waiting for marker lines on the serial console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod boot;
mod e2e;
mod hotplug;
mod iso;
mod layout;
mod layout_fixtures;
mod network;
mod pxe;
mod qemu;
mod static_init;
mod sysimage;
mod usb;
mod verify;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether every tool of the VM tests is here (`.ci/tools`, suite `vm`), checked once; every
/// test starts with it. Under `CI` a missing tool fails the test at once with its package;
/// elsewhere the test is skipped with that reason.
pub fn preflight() -> bool {
    rear_testutil::tools::preflight("vm")
}

/// Path of one of the programs, preferring `REAR_BIN_DIR` (the static build).
pub fn bin(name: &str) -> PathBuf {
    rear_tests::bin(name)
}

/// An ext4 image (`dir/tools.img`, label REARTOOLS) holding the static rear binaries and
/// whatever `fill` puts beside them, for a guest to mount and run them from.
pub fn tools_disk(dir: &Path, fill: impl FnOnce(&Path)) -> PathBuf {
    let tree = dir.join("tools");
    std::fs::create_dir_all(&tree).unwrap();
    for b in ["rear-mkimage", "rear-restore"] {
        std::fs::copy(bin(b), tree.join(b)).unwrap();
    }
    fill(&tree);
    let img = dir.join("tools.img");
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "REARTOOLS", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("512M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.ext4 -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}
