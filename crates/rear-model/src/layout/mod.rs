//! The saved disk layout ([`model`]); capture, planning and replay live with the programs.

pub mod model;

pub use model::{LAYOUT_VERSION, Layout};
