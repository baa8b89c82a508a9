//! The rescue-system side: `rear-restore` as PID 1 and the recovery engine.
pub mod cmdline;
pub mod init;
pub mod modload;
