//! QEMU boot tests (`make vmtest`, part of `make test`; not run by a bare `cargo test`).
//!
//! They run the binaries from `REAR_BIN_DIR` (the static release build that `make vmtest`
//! makes) or, without it, cargo's own build of this package, and boot what they build under
//! `qemu-system-x86_64 -accel tcg`, waiting for marker lines on the serial console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod boot;
mod hotplug;
mod iso;
mod layout;
mod layout_fixtures;
mod network;
mod pxe;
mod qemu;
mod static_init;
mod usb;
mod verify;

use std::path::PathBuf;

/// Path of one of this package's binaries, preferring `REAR_BIN_DIR`.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("REAR_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    match name {
        "rear-mkimage" => PathBuf::from(env!("CARGO_BIN_EXE_rear-mkimage")),
        "rear-restore" => PathBuf::from(env!("CARGO_BIN_EXE_rear-restore")),
        other => panic!("unknown binary {other}"),
    }
}
