//! `rear-mkimage`: the running system turned into bootable rescue media.
//!
//! The build pipeline, one module per stage, data flowing one way:
//! `rear_model::recipe` -> [`inventory`] -> [`resolve`] -> [`closure`]
//! (`rear_model::manifest::Manifest`) -> [`archive`] -> [`media`]; [`skeleton`] is the rescue
//! system's own tree, [`build`] runs the stages, [`send`] delivers the report to rear-server.
//! Everything read from the host goes through `rear_sys::sysroot::Sysroot`; every external
//! program runs through `rear_sys::exec`.
#![forbid(unsafe_code)]

pub mod archive;
pub mod build;
pub mod closure;
pub mod inventory;
pub mod media;
pub mod resolve;
pub mod send;
pub mod skeleton;

#[cfg(test)]
mod testutil;
