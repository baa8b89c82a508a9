//! The one door to the system that `rear-mkimage` and `rear-restore` share.
//!
//! [`exec`] is the only spawner of external programs (argv logged, stderr in the error);
//! [`sysroot::Sysroot`] is the only reader of the host (with its one glob, [`fnmatch`]);
//! [`kmod`] reads and loads kernel modules; [`mounts`] parses the mount tables; [`atomic`]
//! writes every output file (temp file, fsync, rename, directory fsync); [`layout`] captures
//! the disk layout through the distribution's tools and parses their output; [`backup`] is the
//! backup engine both sides drive. The types they exchange are in `rear_model`.
#![forbid(unsafe_code)]

pub mod atomic;
pub mod backup;
pub mod exec;
pub mod fnmatch;
pub mod kmod;
pub mod layout;
pub mod mounts;
pub mod sysroot;

#[cfg(test)]
mod testutil;
