//! Signals, reaping and shutdown: what PID 1 waits for, and how it stops everything,
//! unmounts and calls `reboot(2)`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::mount::{MntFlags, umount2};
use nix::sys::reboot::{reboot, set_cad_enabled};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::sys::time::TimeSpec;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, sync};

use super::{Action, Error, say};

/// The signals PID 1 waits for: children and the shutdown requests.
pub(super) fn signal_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Does nothing; installed so the kernel delivers these signals to PID 1 at all (it drops
/// default-action signals for init) — they stay blocked and are taken by `sigtimedwait`.
extern "C" fn ignore_signal(_: libc::c_int) {}

/// Installs handlers, blocks the set, and routes Ctrl-Alt-Del to SIGINT.
pub(super) fn setup_signals(set: &SigSet) -> Result<(), Error> {
    let action = SigAction::new(
        SigHandler::Handler(ignore_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in set.iter() {
        // SAFETY: the handler is an empty extern "C" fn, trivially async-signal-safe.
        unsafe { sigaction(signal, &action) }.map_err(|error| Error::Signals { signal, error })?;
    }
    set.thread_block().map_err(|error| Error::Signals {
        signal: Signal::SIGCHLD,
        error,
    })?;
    if std::process::id() == 1 {
        let _ = set_cad_enabled(false);
    }
    Ok(())
}

/// Waits up to `timeout` for a signal of `set` (which must be blocked).
pub(super) fn wait_signal(set: &SigSet, timeout: Duration) -> Option<Signal> {
    let ts = TimeSpec::from(timeout);
    // SAFETY: both pointers come from live references valid for the call; a null siginfo
    // pointer is allowed by sigtimedwait(2).
    let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts.as_ref()) };
    Signal::try_from(r).ok()
}

/// Reaps every exited child without blocking and returns their pids and statuses.
pub(super) fn reap() -> Vec<(Pid, WaitStatus)> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return out,
            Ok(status) => out.extend(status.pid().map(|p| (p, status))),
        }
    }
}

/// Waits until no child is left or `limit` has passed, reaping.
fn reap_until_empty(limit: Duration) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return,
            Ok(WaitStatus::StillAlive) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
            Ok(_) => {}
        }
    }
}

/// Unmounts everything but `/`, newest first; busy ones are detached.
fn unmount_all() {
    let Ok(text) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for target in rear_sys::mounts::parse_mounts(&text)
        .iter()
        .map(|m| &m.target)
        .rev()
    {
        if target == Path::new("/") {
            continue;
        }
        if umount2(target, MntFlags::empty()).is_err() {
            let _ = umount2(target, MntFlags::MNT_DETACH);
        }
    }
}

/// Stops all processes, unmounts, and reboots, powers off or halts. Never returns.
pub(super) fn shutdown(action: Action) -> ! {
    if std::process::id() != 1 {
        say(&format!(
            "rear: {}: not PID 1, exiting instead",
            action.name()
        ));
        std::process::exit(0);
    }
    say(&format!("rear: {}: stopping all processes", action.name()));
    sync();
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    reap_until_empty(Duration::from_secs(2));
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    reap_until_empty(Duration::from_secs(1));
    sync();
    unmount_all();
    sync();
    say(&format!("rear: {}", action.name()));
    let Err(e) = reboot(action.mode());
    say(&format!("rear: reboot(2) for {}: {e}", action.name()));
    reap_forever()
}

/// The last resort: reap zombies forever, never exit.
pub(super) fn reap_forever() -> ! {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(Duration::from_secs(60)),
        }
    }
}
