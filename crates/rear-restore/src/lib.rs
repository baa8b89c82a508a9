//! `rear-restore`: the rescue system's side, PID 1 and the recovery engine.
//!
//! [`init`] is PID 1 (consoles, module autoload through [`hotplug`], [`net`], sshd by
//! [`ssh`]); [`cmdline`] reads the kernel command line. The recovery: [`plan`] turns the saved
//! layout and this machine's disks into steps (a pure function), [`layout`] runs them,
//! `rear_sys::backup` restores the data, [`finalize`] makes the tree boot, and [`recover`]
//! does all of it in order. The only crate of the workspace with `unsafe` (sockets, ioctls,
//! `pre_exec`), each block with a SAFETY note.

pub mod cmdline;
pub mod finalize;
pub mod hotplug;
pub mod init;
pub mod layout;
pub mod net;
pub mod plan;
pub mod recover;
pub mod ssh;
