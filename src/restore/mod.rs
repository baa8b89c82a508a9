//! The rescue-system side: `rear-restore` as PID 1 and the recovery engine.
pub mod cmdline;
pub mod finalize;
pub mod hotplug;
pub mod init;
pub mod layout;
pub mod net;
pub mod recover;
pub mod ssh;
