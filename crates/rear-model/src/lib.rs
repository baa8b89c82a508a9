//! The contracts of Relax-and-Recover in Rust: the serde types and formats that `rear-mkimage`,
//! `rear-restore` and `rear-server` share, and nothing that reads the system.
//!
//! [`manifest`] (the image's contents), [`layout::model`] (the saved disk layout),
//! [`report`] (what a host tells the server), [`netconf`] and [`rescue`] (what the build tells
//! the rescue system), [`backup::config`] and [`backup::url`] (where a backup is), [`recipe`]
//! and [`config`] (the input files), [`mail`] (reports by mail), the `REAR-*` [`labels`], and
//! how sizes ([`units`]) and dates ([`timefmt`]) are shown, and the one stderr log-line format
//! of the three programs ([`logger`]: the server links this crate only).
#![forbid(unsafe_code)]

pub mod backup;
pub mod config;
pub mod labels;
pub mod layout;
pub mod logger;
pub mod mail;
pub mod manifest;
pub mod netconf;
pub mod recipe;
pub mod report;
pub mod rescue;
pub mod timefmt;
pub mod units;
