//! Where a backup is and how it was made ([`config`], [`url`]); the backup engine lives in
//! the system crate.

pub mod config;
pub mod url;
