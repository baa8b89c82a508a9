//! Relax-and-Recover in Rust: the library behind `rear-mkimage` and `rear-restore`.
//!
//! The build pipeline, one module per stage, data flowing one way:
//! [`recipe`] -> [`inventory`] -> [`resolve`] -> [`closure`] ([`manifest::Manifest`]) ->
//! [`archive`] -> output. Everything read from the host goes through [`sysroot::Sysroot`];
//! every external program runs through [`exec`]. [`restore`] is the rescue-system side.

// The contracts, from the model crate, at the paths the modules here have always used.
pub use rear_model::{
    config, labels, mail, manifest, netconf, recipe, report, rescue, timefmt, units,
};

pub mod archive;
pub mod atomic;
pub mod backup;
pub mod build;
pub mod closure;
pub mod exec;
pub mod fnmatch;
pub mod inventory;
pub mod kmod;
pub mod layout;
pub mod logger;
pub mod media;
pub mod mounts;
pub mod resolve;
pub mod restore;
pub mod send;
#[cfg(feature = "server")]
pub mod server;
pub mod skeleton;
pub mod sysroot;

#[cfg(test)]
pub mod testutil;
