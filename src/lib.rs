//! Relax-and-Recover in Rust: the library behind `rear-mkimage` and `rear-restore`.
//!
//! The build pipeline, one module per stage, data flowing one way:
//! [`recipe`] -> [`inventory`] -> [`resolve`] -> [`closure`] ([`manifest::Manifest`]) ->
//! [`archive`] -> output. Everything read from the host goes through [`sysroot::Sysroot`];
//! every external program runs through [`exec`]. [`restore`] is the rescue-system side.

pub mod archive;
pub mod atomic;
pub mod backup;
pub mod build;
pub mod closure;
pub mod config;
pub mod exec;
pub mod fnmatch;
pub mod inventory;
pub mod kmod;
pub mod labels;
pub mod layout;
pub mod logger;
pub mod mail;
pub mod manifest;
pub mod media;
pub mod mounts;
pub mod netconf;
pub mod recipe;
pub mod report;
pub mod rescue;
pub mod resolve;
pub mod restore;
pub mod send;
#[cfg(feature = "server")]
pub mod server;
pub mod skeleton;
pub mod sysroot;
pub mod timefmt;
pub mod units;

#[cfg(test)]
pub mod testutil;
