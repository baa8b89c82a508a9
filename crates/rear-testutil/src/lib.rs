//! Test support for the crates of the workspace (`publish = false`): tiny ELF files
//! ([`elf`]) and kernel-module trees ([`kmod`]) built in code, the captured layout fixtures
//! ([`layout`]), and the tools each test suite needs ([`tools`], from `.ci/tools`).
// Test code: a failed setup step is a failed test, so panicking on it is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

pub mod elf;
pub mod kmod;
pub mod layout;
pub mod tools;
