//! Disk layout: capture on the host and in the rescue system, compare, show.
//!
//! [`model`] is the versioned JSON contract ([`Layout`], in `rear_model`); [`capture`] reads
//! it from a running system through the distribution's own tools ([`parse`] reads their
//! output); [`diff`], [`prune`] and [`show`] compare, trim and print layouts. The plan
//! (`rear_restore::plan`) and its executor (`rear_restore::layout`) are the rescue side's.

pub mod capture;
pub mod diff;
pub use rear_model::layout::model;
pub mod parse;
pub mod prune;
pub mod show;
pub mod tools;

pub use model::{LAYOUT_VERSION, Layout};
