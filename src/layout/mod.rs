//! Disk layout: capture on the host, plan and replay in the rescue system.
//!
//! [`model`] is the versioned JSON contract ([`Layout`]); [`capture`] reads it from a running
//! system through the distribution's own tools; [`plan`] turns a layout and the disks of the
//! target machine into ordered steps (a pure function); `restore::layout` runs them.

pub mod capture;
pub mod diff;
pub use rear_model::layout::model;
pub mod parse;
pub mod plan;
pub mod prune;
pub mod show;
pub mod tools;

pub use model::{LAYOUT_VERSION, Layout};
