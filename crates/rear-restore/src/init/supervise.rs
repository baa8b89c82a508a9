//! PID 1's main loop: keep a shell on every console and the services (sshd) running, reap
//! every zombie, act on shutdown signals.
//!
//! A service is a list of one-time setup commands (ssh-keygen) followed by the long-running
//! program, all children of PID 1 so that its `waitpid(-1)` sees them (a command run to
//! completion elsewhere in PID 1 would race with that reaping). A failed setup command is
//! reported and the next one runs; the program is restarted whenever it exits, at most
//! [`RESPAWN_MAX`] times per [`RESPAWN_WINDOW`], like the shells.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::SigSet;
use nix::sys::wait::WaitStatus;
use nix::unistd::{Pid, setsid};

use super::console::{ShellTty, spawn_shell};
use super::shutdown::{reap, shutdown, wait_signal};
use super::{Action, Error, RESPAWN_MAX, RESPAWN_WINDOW, SHELL_PATH, say};

/// Respawn bookkeeping: when the last [`RESPAWN_MAX`] starts fall within [`RESPAWN_WINDOW`],
/// the next waits until the oldest of them leaves the window.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    starts: VecDeque<Instant>,
}

impl Throttle {
    /// Notes a start.
    pub(super) fn record(&mut self, at: Instant) {
        self.starts.push_back(at);
        while self.starts.len() > RESPAWN_MAX {
            self.starts.pop_front();
        }
    }

    /// The earliest time the next start is allowed.
    pub(super) fn next_start(&self, now: Instant) -> Instant {
        match self.starts.front() {
            Some(&oldest) if self.starts.len() >= RESPAWN_MAX => now.max(oldest + RESPAWN_WINDOW),
            _ => now,
        }
    }
}

/// A supervised program with its one-time setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Service {
    /// Its name in messages.
    pub name: &'static str,
    /// Commands run once, in order, before the first start.
    pub setup: Vec<Vec<String>>,
    /// The program and its arguments; restarted when it exits.
    pub argv: Vec<String>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

/// What a slot keeps running.
#[derive(Debug)]
pub(super) enum Job {
    /// A shell on a terminal.
    Shell(ShellTty),
    /// A service; `stage` counts the setup commands done.
    Service {
        /// The service.
        service: Service,
        /// How many setup commands have finished.
        stage: usize,
    },
}

/// One supervised child.
#[derive(Debug)]
pub(super) struct Slot {
    job: Job,
    pid: Option<Pid>,
    throttle: Throttle,
    next: Instant,
}

impl Slot {
    /// A slot that starts `job` at once.
    pub(super) fn new(job: Job) -> Slot {
        Slot {
            job,
            pid: None,
            throttle: Throttle::default(),
            next: Instant::now(),
        }
    }

    /// Starts the job's next process.
    fn start(&mut self, now: Instant) {
        let result = match &self.job {
            Job::Shell(tty) => {
                self.throttle.record(now);
                self.next = self.throttle.next_start(now);
                spawn_shell(tty)
            }
            Job::Service { service, stage } => match service.setup.get(*stage) {
                Some(argv) => spawn_command(service, argv),
                None => {
                    self.throttle.record(now);
                    self.next = self.throttle.next_start(now);
                    let r = spawn_command(service, &service.argv);
                    if let Ok(pid) = &r {
                        say(&format!("rear: {} started (pid {pid})", service.name));
                    }
                    r
                }
            },
        };
        // The first command (rear.auto's recovery) runs once, not on every respawn.
        if let Job::Shell(tty) = &mut self.job {
            tty.first = None;
        }
        match result {
            Ok(pid) => self.pid = Some(pid),
            Err(e) => {
                say(&format!("rear: {e}"));
                // A setup command that cannot start is skipped.
                if let Job::Service { service, stage } = &mut self.job
                    && *stage < service.setup.len()
                {
                    *stage += 1;
                }
            }
        }
    }

    /// Handles the exit of this slot's process.
    fn exited(&mut self, status: WaitStatus) {
        self.pid = None;
        match &mut self.job {
            Job::Shell(tty) => {
                let wait = self.next.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    say(&format!(
                        "rear: shell on {} exits too often; next start in {} s",
                        tty.device,
                        wait.as_secs().max(1)
                    ));
                }
            }
            Job::Service { service, stage } if *stage < service.setup.len() => {
                if !matches!(status, WaitStatus::Exited(_, 0)) {
                    say(&format!(
                        "rear: {}: {} failed ({})",
                        service.name,
                        service.setup[*stage].join(" "),
                        status_text(status)
                    ));
                }
                *stage += 1;
                self.next = Instant::now();
            }
            Job::Service { service, .. } => {
                let wait = self.next.saturating_duration_since(Instant::now());
                say(&format!(
                    "rear: {} exited ({}); restarting{} (log in {})",
                    service.name,
                    status_text(status),
                    if wait.is_zero() {
                        String::new()
                    } else {
                        format!(" in {} s", wait.as_secs().max(1))
                    },
                    service.log.display()
                ));
            }
        }
    }
}

/// A wait status as `exit status 1` or `signal SIGKILL`.
fn status_text(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("signal {sig}"),
        other => format!("{other:?}"),
    }
}

/// Starts `argv` of a service in its own session, stdin from `/dev/null`, output appended
/// to the service's log.
fn spawn_command(service: &Service, argv: &[String]) -> Result<Pid, Error> {
    let spawn_err = |error| Error::ServiceSpawn {
        name: service.name,
        argv: argv.join(" "),
        error,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| spawn_err(std::io::Error::other("empty command")))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&service.log)
        .map_err(spawn_err)?;
    let log2 = log.try_clone().map_err(spawn_err)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", SHELL_PATH)
        .env("HOME", "/root")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    let unblocked = SigSet::empty();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // sigprocmask(2) and setsid(2), which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let _ = unblocked.thread_set_mask();
            let _ = setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(spawn_err)?;
    Ok(Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)))
}

/// Keeps every slot's process running and waits for signals; returns only by panicking.
pub(super) fn supervise(slots: &mut [Slot], signals: &SigSet) {
    loop {
        let now = Instant::now();
        for slot in slots.iter_mut() {
            if slot.pid.is_none() && slot.next <= now {
                slot.start(now);
            }
        }
        let timeout = slots
            .iter()
            .filter(|s| s.pid.is_none())
            .map(|s| s.next.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(60))
            .max(Duration::from_millis(10));
        if let Some(action) = wait_signal(signals, timeout).and_then(Action::from_signal) {
            shutdown(action);
        }
        for (pid, status) in reap() {
            for slot in slots.iter_mut().filter(|s| s.pid == Some(pid)) {
                slot.exited(status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_next_start_limits_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        for i in 0..RESPAWN_MAX as u64 {
            let at = t0 + Duration::from_millis(100 * i);
            assert_eq!(t.next_start(at), at);
            t.record(at);
        }
        let now = t0 + Duration::from_secs(1);
        assert_eq!(t.next_start(now), t0 + RESPAWN_WINDOW);
        // Once the oldest start has left the window, no wait.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(t.next_start(later), later);
    }

    fn service() -> Service {
        Service {
            name: "sshd",
            setup: vec![vec!["/bin/true".into()], vec!["/bin/false".into()]],
            argv: vec!["/usr/sbin/sshd".into(), "-D".into()],
            log: PathBuf::from("/dev/null"),
        }
    }

    #[test]
    fn slot_exited_advances_setup_then_throttles_program() {
        let mut slot = Slot::new(Job::Service {
            service: service(),
            stage: 0,
        });
        let pid = Pid::from_raw(4242);
        slot.pid = Some(pid);
        slot.exited(WaitStatus::Exited(pid, 0));
        assert!(matches!(slot.job, Job::Service { stage: 1, .. }));
        assert!(slot.pid.is_none());
        // A failed setup command is reported and skipped.
        slot.exited(WaitStatus::Exited(pid, 1));
        assert!(matches!(slot.job, Job::Service { stage: 2, .. }));
        // The program itself does not advance the stage.
        slot.exited(WaitStatus::Exited(pid, 255));
        assert!(matches!(slot.job, Job::Service { stage: 2, .. }));
    }

    #[test]
    fn status_text_forms() {
        let pid = Pid::from_raw(1);
        assert_eq!(status_text(WaitStatus::Exited(pid, 3)), "exit status 3");
        assert_eq!(
            status_text(WaitStatus::Signaled(
                pid,
                nix::sys::signal::Signal::SIGKILL,
                false
            )),
            "signal SIGKILL"
        );
    }
}
