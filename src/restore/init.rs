//! PID 1 of the rescue system: `rear-restore` installed as `/init` in the initramfs.
//!
//! Stage: restore (boot). Input: the initramfs, `/proc/cmdline` ([`super::cmdline`]), `/sys`.
//! Output: a running rescue system with a root shell (job control on) on every console, and
//! a clean power-off or reboot on request.
//!
//! [`run`] mounts the API file systems, loads the modules for the hardware, sets the
//! hostname, announces `rear rescue ready <release>` on every console, then supervises: it
//! respawns each console's shell (at most [`RESPAWN_MAX`] starts in [`RESPAWN_WINDOW`]), reaps
//! every zombie, and shuts down on the signals busybox init understands (SIGUSR2 power off,
//! SIGTERM reboot, SIGUSR1 halt, SIGINT = Ctrl-Alt-Del reboot). PID 1 must never exit: every
//! step runs under `catch_unwind`, failures are printed and the boot goes on; if even the
//! supervisor keeps failing, PID 1 falls back to reaping zombies forever. [`request`] is the
//! other side used by `rear-restore poweroff|reboot|halt` (and the `/sbin/poweroff` symlinks):
//! it signals PID 1.
//!
//! The initramfs must hold `/dev/console` (the kernel's built-in initramfs provides it): the
//! Rust runtime aborts at start-up when fds 0-2 are closed and `/dev/null` is missing.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::libc;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::reboot::{RebootMode, reboot, set_cad_enabled};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::sys::stat::{Mode, umask};
use nix::sys::termios::{
    BaudRate, ControlFlags, InputFlags, LocalFlags, OutputFlags, SetArg,
    SpecialCharacterIndices as Cc, Termios, tcgetattr, tcsetattr,
};
use nix::sys::time::TimeSpec;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, gethostname, isatty, sethostname, setsid, sync};

use super::cmdline::{self, Cmdline, Parity, SerialOptions};

/// At most this many shell starts per console within [`RESPAWN_WINDOW`].
pub const RESPAWN_MAX: usize = 5;
/// The window over which [`RESPAWN_MAX`] counts.
pub const RESPAWN_WINDOW: Duration = Duration::from_secs(10);
/// `PATH` of the rescue shells.
pub const SHELL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Shells tried in order; the first that exists runs as a login shell.
pub const SHELLS: [&str; 2] = ["/bin/bash", "/bin/sh"];

/// Errors of PID 1 and of shutdown requests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory (mount point) could not be created.
    #[error("creating {}: {error}", path.display())]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        error: io::Error,
    },
    /// A file system could not be mounted.
    #[error("mounting {fstype} on {}: {error}", target.display())]
    Mount {
        /// The file system type.
        fstype: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The cause.
        error: Errno,
    },
    /// A file could not be read.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: io::Error,
    },
    /// A device could not be opened.
    #[error("opening {}: {error}", path.display())]
    Open {
        /// The device node.
        path: PathBuf,
        /// The cause.
        error: Errno,
    },
    /// A device is not a terminal.
    #[error("{}: not a terminal", path.display())]
    NotATerminal {
        /// The device node.
        path: PathBuf,
    },
    /// Terminal settings could not be read or written.
    #[error("setting up terminal {}: {error}", path.display())]
    Termios {
        /// The device node.
        path: PathBuf,
        /// The cause.
        error: Errno,
    },
    /// None of [`SHELLS`] exists.
    #[error("no shell found (tried {})", SHELLS.join(", "))]
    NoShell,
    /// The shell could not be started.
    #[error("starting {} on {}: {error}", shell.display(), tty.display())]
    Spawn {
        /// The shell program.
        shell: PathBuf,
        /// The terminal it was meant for.
        tty: PathBuf,
        /// The cause.
        error: io::Error,
    },
    /// The hostname could not be set.
    #[error("setting hostname {name:?}: {error}")]
    Hostname {
        /// The name from `/etc/hostname`.
        name: String,
        /// The cause.
        error: Errno,
    },
    /// Signal handling for PID 1 could not be set up.
    #[error("installing the handler for {signal}: {error}")]
    Signals {
        /// The signal.
        signal: Signal,
        /// The cause.
        error: Errno,
    },
    /// PID 1 is some other program, so a shutdown request is not sent to it.
    #[error("PID 1 is {} (not rear-restore); use its own poweroff/reboot", exe.display())]
    ForeignInit {
        /// The executable of PID 1.
        exe: PathBuf,
    },
    /// PID 1 could not be inspected (not root?).
    #[error("inspecting PID 1 (/proc/1/exe): {error}")]
    InspectInit {
        /// The cause.
        error: io::Error,
    },
    /// The signal to PID 1 could not be sent.
    #[error("sending {signal} to PID 1: {error}")]
    SignalInit {
        /// The signal.
        signal: Signal,
        /// The cause.
        error: Errno,
    },
}

/// What a shutdown request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Switch the power off (`poweroff`, SIGUSR2).
    Poweroff,
    /// Restart the machine (`reboot`, SIGTERM; SIGINT from Ctrl-Alt-Del).
    Reboot,
    /// Stop the machine without power-off (`halt`, SIGUSR1).
    Halt,
}

impl Action {
    /// The signal that asks PID 1 for this action (busybox init's convention).
    pub fn signal(self) -> Signal {
        match self {
            Action::Poweroff => Signal::SIGUSR2,
            Action::Reboot => Signal::SIGTERM,
            Action::Halt => Signal::SIGUSR1,
        }
    }

    /// The action PID 1 takes on a signal, if any. SIGINT is what the kernel sends for
    /// Ctrl-Alt-Del once [`set_cad_enabled`] is off; it reboots, as in busybox's inittab.
    pub fn from_signal(signal: Signal) -> Option<Action> {
        match signal {
            Signal::SIGUSR2 => Some(Action::Poweroff),
            Signal::SIGTERM | Signal::SIGINT => Some(Action::Reboot),
            Signal::SIGUSR1 => Some(Action::Halt),
            _ => None,
        }
    }

    /// The action named by a program name (`argv[0]`, any directory): `poweroff`, `reboot`,
    /// `halt`, for the `/sbin/*` symlinks to `rear-restore`.
    pub fn from_program_name(argv0: &OsStr) -> Option<Action> {
        match Path::new(argv0).file_name()?.to_str()? {
            "poweroff" => Some(Action::Poweroff),
            "reboot" => Some(Action::Reboot),
            "halt" => Some(Action::Halt),
            _ => None,
        }
    }

    /// The `reboot(2)` command.
    fn mode(self) -> RebootMode {
        match self {
            Action::Poweroff => RebootMode::RB_POWER_OFF,
            Action::Reboot => RebootMode::RB_AUTOBOOT,
            Action::Halt => RebootMode::RB_HALT_SYSTEM,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Action::Poweroff => "poweroff",
            Action::Reboot => "reboot",
            Action::Halt => "halt",
        }
    }
}

/// Asks PID 1 for a power-off, reboot or halt, as `rear-restore poweroff` does from the shell.
/// PID 1 must be `rear-restore` itself (same executable), so a stray call on a normal host
/// does not signal systemd. Called by PID 1 itself, it shuts down directly.
pub fn request(action: Action) -> Result<(), Error> {
    if std::process::id() == 1 {
        shutdown(action);
    }
    let ours = fs::metadata("/proc/self/exe").map_err(|error| Error::InspectInit { error })?;
    let init = fs::metadata("/proc/1/exe").map_err(|error| Error::InspectInit { error })?;
    if (ours.dev(), ours.ino()) != (init.dev(), init.ino()) {
        let exe = fs::read_link("/proc/1/exe").unwrap_or_else(|_| PathBuf::from("?"));
        return Err(Error::ForeignInit { exe });
    }
    let signal = action.signal();
    kill(Pid::from_raw(1), signal).map_err(|error| Error::SignalInit { signal, error })
}

/// Runs the rescue system as PID 1. Never returns: the loop ends only in `reboot(2)`.
pub fn run() -> ! {
    std::panic::set_hook(Box::new(|info| {
        say(&format!("rear: internal error: {info}"))
    }));
    umask(Mode::from_bits_truncate(0o022));
    let _ = std::env::set_current_dir("/");
    let signals = signal_set();
    step("signals", || setup_signals(&signals));
    step("mounts", || {
        mount_all();
        Ok(())
    });
    step("console", ensure_console_stdio);
    let cmdline = step("cmdline", read_cmdline).unwrap_or_default();
    for w in &cmdline.warnings {
        say(&format!("rear: {w}"));
    }
    if cmdline.debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    step("modules", || {
        load_modules(&release);
        Ok(())
    });
    step("hostname", || set_hostname(Path::new("/etc/hostname")));

    let active = fs::read_to_string("/sys/class/tty/console/active").ok();
    let plan = plan_consoles(&cmdline, active.as_deref());
    log::debug!("consoles: {plan:?}");
    let mut lines = vec![format!("rear rescue ready {release}")];
    if cmdline.auto && cmdline.shell {
        lines.push("rear: rear.shell given: no automatic recovery".to_owned());
    } else if cmdline.auto {
        lines.push("rear: rear.auto: recover is not implemented yet".to_owned());
    }
    step("announce", || {
        announce(&plan.messages, &lines.join("\n"));
        Ok(())
    });

    let mut slots: Vec<Slot> = plan
        .shells
        .into_iter()
        .filter(|t| t.device == "/dev/console" || Path::new(&t.device).exists())
        .map(Slot::new)
        .collect();
    if slots.is_empty() {
        slots.push(Slot::new(ShellTty::console()));
    }
    for attempt in 1..=3 {
        if catch_unwind(AssertUnwindSafe(|| supervise(&mut slots, &signals))).is_err() {
            say(&format!(
                "rear: supervisor failed ({attempt}/3), restarting it"
            ));
        }
    }
    say("rear: supervisor gave up; only reaping processes now");
    reap_forever()
}

/// Runs one boot step; an error or a panic is printed and the boot goes on.
fn step<T>(name: &str, f: impl FnOnce() -> Result<T, Error>) -> Option<T> {
    log::debug!("step {name}");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            say(&format!("rear: {name}: {e}"));
            None
        }
        Err(_) => {
            say(&format!("rear: {name}: step failed, continuing"));
            None
        }
    }
}

/// Writes one line to stderr (the console), ignoring errors: PID 1 must not panic on a
/// broken console, which `eprintln!` would.
fn say(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

// ---------------------------------------------------------------------------------------
// Mounts and the console

/// One API file system.
struct MountSpec {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: &'static str,
}

/// The API file systems, parents before children.
fn mount_table() -> [MountSpec; 7] {
    let secure = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let tmp = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let m = |source, target, fstype, flags, data| MountSpec {
        source,
        target,
        fstype,
        flags,
        data,
    };
    [
        m("proc", "/proc", "proc", secure, ""),
        m("sysfs", "/sys", "sysfs", secure, ""),
        m(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            "mode=0755",
        ),
        m(
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "gid=5,mode=0620,ptmxmode=0666",
        ),
        m("tmpfs", "/dev/shm", "tmpfs", tmp, "mode=1777"),
        m("tmpfs", "/run", "tmpfs", tmp, "mode=0755"),
        m("tmpfs", "/tmp", "tmpfs", tmp, "mode=1777"),
    ]
}

/// Mounts the API file systems (printing each failure) and efivarfs when the firmware is UEFI.
fn mount_all() {
    for spec in mount_table() {
        if let Err(e) = mount_one(&spec) {
            say(&format!("rear: {e}"));
        }
    }
    let efivars = "/sys/firmware/efi/efivars";
    if Path::new(efivars).is_dir() && !is_mount_point(Path::new(efivars)) {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let Err(e) = mount(
            Some("efivarfs"),
            efivars,
            Some("efivarfs"),
            flags,
            None::<&str>,
        ) {
            log::debug!("mounting efivarfs: {e}");
        }
    }
    for (link, to) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(to, link);
    }
}

/// Mounts one file system unless something is mounted there already.
fn mount_one(spec: &MountSpec) -> Result<(), Error> {
    let target = Path::new(spec.target);
    fs::create_dir_all(target).map_err(|error| Error::Mkdir {
        path: target.to_owned(),
        error,
    })?;
    if is_mount_point(target) {
        log::debug!("{} is mounted already", spec.target);
        return Ok(());
    }
    let data = Some(spec.data).filter(|d| !d.is_empty());
    match mount(
        Some(spec.source),
        target,
        Some(spec.fstype),
        spec.flags,
        data,
    ) {
        Ok(()) | Err(Errno::EBUSY) => Ok(()),
        Err(error) => Err(Error::Mount {
            fstype: spec.fstype,
            target: target.to_owned(),
            error,
        }),
    }
}

/// Whether `path` is the root of a mount: its device differs from its parent's.
fn is_mount_point(path: &Path) -> bool {
    match (fs::metadata(path), fs::metadata(path.join(".."))) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Puts `/dev/console` on fds 0-2 when one of them is closed or `/dev/null`.
fn ensure_console_stdio() -> Result<(), Error> {
    let usable = |fd: std::os::fd::BorrowedFd<'_>| match nix::sys::stat::fstat(fd) {
        Ok(st) => st.st_rdev != libc::makedev(1, 3),
        Err(_) => false,
    };
    let ok = [
        usable(io::stdin().as_fd()),
        usable(io::stdout().as_fd()),
        usable(io::stderr().as_fd()),
    ];
    if ok.iter().all(|&b| b) {
        return Ok(());
    }
    let path = Path::new("/dev/console");
    let fd = open(path, OFlag::O_RDWR | OFlag::O_NOCTTY, Mode::empty()).map_err(|error| {
        Error::Open {
            path: path.to_owned(),
            error,
        }
    })?;
    let dups: [fn(&OwnedFd) -> nix::Result<()>; 3] = [
        |fd| nix::unistd::dup2_stdin(fd),
        |fd| nix::unistd::dup2_stdout(fd),
        |fd| nix::unistd::dup2_stderr(fd),
    ];
    for (dup, good) in dups.iter().zip(ok) {
        if !good {
            dup(&fd).map_err(|error| Error::Open {
                path: path.to_owned(),
                error,
            })?;
        }
    }
    Ok(())
}

/// Reads and parses `/proc/cmdline`.
fn read_cmdline() -> Result<Cmdline, Error> {
    let path = Path::new("/proc/cmdline");
    let text = fs::read_to_string(path).map_err(|error| Error::Read {
        path: path.to_owned(),
        error,
    })?;
    Ok(cmdline::parse(&text))
}

/// Loads the modules for the hardware in `/sys`, printing each failure and the count.
fn load_modules(release: &str) {
    let dir = Path::new("/lib/modules").join(release);
    if !dir.is_dir() {
        say(&format!("rear: no modules in {}", dir.display()));
        return;
    }
    let (loaded, failed) = coldplug(&dir, Path::new("/sys"));
    for (module, reason) in &failed {
        say(&format!("rear: module {module}: {reason}"));
    }
    say(&format!("rear: loaded {} modules", loaded.len()));
}

/// The single call site of the module autoloader ([`super::modload::coldplug`]).
fn coldplug(modules_dir: &Path, sys_dir: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let report = super::modload::coldplug(modules_dir, sys_dir);
    (report.loaded, report.failed)
}

/// The hostname in the text of `/etc/hostname`: the first line that is not empty or a comment.
fn hostname_from(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Sets the hostname from `path` when the image has one.
fn set_hostname(path: &Path) -> Result<(), Error> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(Error::Read {
                path: path.to_owned(),
                error,
            });
        }
    };
    let Some(name) = hostname_from(&text) else {
        return Ok(());
    };
    sethostname(name).map_err(|error| Error::Hostname {
        name: name.to_owned(),
        error,
    })
}

// ---------------------------------------------------------------------------------------
// Consoles and shells

/// A terminal that gets a rescue shell.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShellTty {
    /// The device node, e.g. `/dev/ttyS0`.
    device: String,
    /// Line settings for a serial (non-VT) console; `None` for a VT or `/dev/console`.
    serial: Option<SerialOptions>,
}

impl ShellTty {
    /// `/dev/console` itself, when nothing better is known.
    fn console() -> ShellTty {
        ShellTty {
            device: "/dev/console".to_owned(),
            serial: None,
        }
    }

    /// The value of `TERM`: `vt100` on a serial line, `linux` on a VT.
    fn term(&self) -> &'static str {
        if self.serial.is_some() {
            "vt100"
        } else {
            "linux"
        }
    }
}

/// Where the ready message goes and where shells run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConsolePlan {
    /// Device nodes that get the messages: `/dev/console` first.
    messages: Vec<String>,
    /// One entry per distinct terminal, the one behind `/dev/console` first.
    shells: Vec<ShellTty>,
}

/// Decides the message devices and shell terminals from the command line and the content of
/// `/sys/class/tty/console/active`, whose last name is the device behind `/dev/console`
/// (Documentation/ABI/testing/sysfs-tty). A shell runs on that real device rather than on
/// `/dev/console`, which cannot give a shell job control. Pure.
fn plan_consoles(cmdline: &Cmdline, active: Option<&str>) -> ConsolePlan {
    let primary = active
        .and_then(|a| a.split_whitespace().last())
        .map(str::to_owned)
        .or_else(|| cmdline.primary_console().map(|c| c.name.clone()));
    let tty_for = |name: &str| ShellTty {
        device: cmdline::shell_device_for(name),
        serial: (!cmdline::is_vt_name(name)).then(|| {
            cmdline
                .consoles
                .iter()
                .rev()
                .find(|c| c.name == name)
                .map(|c| c.serial_options())
                .unwrap_or_default()
        }),
    };
    let mut plan = ConsolePlan {
        messages: vec!["/dev/console".to_owned()],
        shells: vec![primary.as_deref().map_or_else(ShellTty::console, tty_for)],
    };
    for c in &cmdline.consoles {
        if Some(&c.name) == primary.as_ref() {
            continue;
        }
        if !plan.messages.contains(&c.device()) {
            plan.messages.push(c.device());
        }
        let tty = tty_for(&c.name);
        if !plan.shells.iter().any(|t| t.device == tty.device) {
            plan.shells.push(tty);
        }
    }
    plan
}

/// Writes `text` on every device; devices that cannot be opened are skipped.
fn announce(devices: &[String], text: &str) {
    for dev in devices {
        let flags = OFlag::O_WRONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        match open(dev.as_str(), flags, Mode::empty()) {
            Ok(fd) => {
                let _ = fs::File::from(fd).write_all(format!("{text}\n").as_bytes());
            }
            Err(e) => log::debug!("{dev}: {e}"),
        }
    }
}

/// Respawn bookkeeping: when the last [`RESPAWN_MAX`] starts fall within [`RESPAWN_WINDOW`],
/// the next waits until the oldest of them leaves the window.
#[derive(Debug, Default)]
struct Throttle {
    starts: VecDeque<Instant>,
}

impl Throttle {
    /// Notes a start.
    fn record(&mut self, at: Instant) {
        self.starts.push_back(at);
        while self.starts.len() > RESPAWN_MAX {
            self.starts.pop_front();
        }
    }

    /// The earliest time the next start is allowed.
    fn next_start(&self, now: Instant) -> Instant {
        match self.starts.front() {
            Some(&oldest) if self.starts.len() >= RESPAWN_MAX => now.max(oldest + RESPAWN_WINDOW),
            _ => now,
        }
    }
}

/// One console's shell.
struct Slot {
    tty: ShellTty,
    pid: Option<Pid>,
    throttle: Throttle,
    next: Instant,
}

impl Slot {
    fn new(tty: ShellTty) -> Slot {
        Slot {
            tty,
            pid: None,
            throttle: Throttle::default(),
            next: Instant::now(),
        }
    }
}

/// The environment of a rescue shell. Pure.
fn shell_env(term: &str, hostname: &str, shell: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", "/root".to_owned()),
        ("PATH", SHELL_PATH.to_owned()),
        ("TERM", term.to_owned()),
        ("SHELL", shell.to_owned()),
        ("USER", "root".to_owned()),
        ("LOGNAME", "root".to_owned()),
        ("PS1", format!("RESCUE {hostname}:\\w # ")),
    ]
}

/// The short hostname for the prompt; `rescue` when the kernel has none.
fn prompt_hostname() -> String {
    let name = gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let short = name.split('.').next().unwrap_or_default();
    if short.is_empty() || short == "(none)" {
        "rescue".to_owned()
    } else {
        short.to_owned()
    }
}

/// Starts a login shell on `tty` as the leader of a new session with `tty` as its controlling
/// terminal, so that job control works.
fn spawn_shell(tty: &ShellTty) -> Result<Pid, Error> {
    let shell = SHELLS
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or(Error::NoShell)?;
    let path = Path::new(&tty.device);
    // O_NONBLOCK: a serial line without CLOCAL would wait for carrier in open().
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = open(path, flags, Mode::empty()).map_err(|error| Error::Open {
        path: path.to_owned(),
        error,
    })?;
    if !isatty(&fd).unwrap_or(false) {
        return Err(Error::NotATerminal {
            path: path.to_owned(),
        });
    }
    if let Err(e) = configure_tty(&fd, path, tty.serial.as_ref()) {
        say(&format!("rear: {e}"));
    }
    if let Ok(fl) = fcntl(&fd, FcntlArg::F_GETFL) {
        let fl = OFlag::from_bits_truncate(fl) & !OFlag::O_NONBLOCK;
        let _ = fcntl(&fd, FcntlArg::F_SETFL(fl));
    }
    let spawn_err = |error| Error::Spawn {
        shell: shell.to_owned(),
        tty: path.to_owned(),
        error,
    };
    let dup = |fd: &OwnedFd| fd.try_clone().map(Stdio::from).map_err(spawn_err);
    let name = shell
        .file_name()
        .unwrap_or(shell.as_os_str())
        .to_string_lossy();
    let mut cmd = Command::new(shell);
    cmd.arg0(format!("-{name}"))
        .env_clear()
        .envs(shell_env(
            tty.term(),
            &prompt_hostname(),
            &shell.to_string_lossy(),
        ))
        .stdin(dup(&fd)?)
        .stdout(dup(&fd)?)
        .stderr(Stdio::from(fd));
    if Path::new("/root").is_dir() {
        cmd.current_dir("/root");
    }
    // PID 1 blocks the signals it waits for, and std keeps the mask across exec.
    let unblocked = SigSet::empty();
    // SAFETY: the closure runs in the forked child before exec and calls only sigprocmask(2),
    // setsid(2) and ioctl(2), which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let _ = unblocked.thread_set_mask();
            // Failures are ignored: a shell without job control beats no shell.
            let _ = setsid();
            // TIOCSCTTY on fd 0 (the tty, set up by std before this closure); 1 = steal it
            // from a dead session that still holds it.
            let _ = libc::ioctl(0, libc::TIOCSCTTY, 1);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(spawn_err)?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    log::debug!("shell {} on {} is pid {pid}", shell.display(), tty.device);
    Ok(Pid::from_raw(pid))
}

/// `stty sane`-like settings (busybox init's `set_sane_term`), plus the line settings of a
/// serial console from `console=ttyS0,115200n8`. The kernel leaves a serial tty half raw.
fn sane_termios(t: &mut Termios, serial: Option<&SerialOptions>) {
    let keep_utf8 = t.input_flags & InputFlags::IUTF8;
    t.input_flags =
        InputFlags::BRKINT | InputFlags::ICRNL | InputFlags::IXON | InputFlags::IMAXBEL | keep_utf8;
    t.output_flags = OutputFlags::OPOST | OutputFlags::ONLCR;
    t.local_flags = LocalFlags::ISIG
        | LocalFlags::ICANON
        | LocalFlags::ECHO
        | LocalFlags::ECHOE
        | LocalFlags::ECHOK
        | LocalFlags::ECHOCTL
        | LocalFlags::ECHOKE
        | LocalFlags::IEXTEN;
    for (i, v) in [
        (Cc::VINTR, 0x03),
        (Cc::VQUIT, 0x1c),
        (Cc::VERASE, 0x7f),
        (Cc::VKILL, 0x15),
        (Cc::VEOF, 0x04),
        (Cc::VTIME, 0),
        (Cc::VMIN, 1),
        (Cc::VSTART, 0x11),
        (Cc::VSTOP, 0x13),
        (Cc::VSUSP, 0x1a),
        (Cc::VEOL, 0),
        (Cc::VREPRINT, 0x12),
        (Cc::VDISCARD, 0x0f),
        (Cc::VWERASE, 0x17),
        (Cc::VLNEXT, 0x16),
        (Cc::VEOL2, 0),
    ] {
        t.control_chars[i as usize] = v;
    }
    let Some(serial) = serial else { return };
    t.control_flags |= ControlFlags::CREAD | ControlFlags::HUPCL | ControlFlags::CLOCAL;
    if let Some(bits) = serial.bits {
        t.control_flags &= !ControlFlags::CSIZE;
        t.control_flags |= match bits {
            5 => ControlFlags::CS5,
            6 => ControlFlags::CS6,
            7 => ControlFlags::CS7,
            _ => ControlFlags::CS8,
        };
    }
    if serial.baud.is_some() {
        t.control_flags &= !(ControlFlags::PARENB | ControlFlags::PARODD | ControlFlags::CRTSCTS);
        match serial.parity {
            Parity::None => {}
            Parity::Even => t.control_flags |= ControlFlags::PARENB,
            Parity::Odd => t.control_flags |= ControlFlags::PARENB | ControlFlags::PARODD,
        }
        if serial.rtscts {
            t.control_flags |= ControlFlags::CRTSCTS;
        }
    }
    // Not cfsetspeed(3): the libc crate binds it as `cfsetspeed@GLIBC_2.2.5`, which a static
    // glibc cannot resolve. On Linux the speed is the CBAUD bits of c_cflag.
    if let Some(rate) = serial.baud.and_then(baud_rate) {
        t.control_flags &= !ControlFlags::CBAUD;
        t.control_flags |= ControlFlags::from_bits_truncate(rate as libc::tcflag_t);
    }
}

/// The termios speed for a baud rate, for the rates serial consoles use.
fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        921600 => BaudRate::B921600,
        1500000 => BaudRate::B1500000,
        3000000 => BaudRate::B3000000,
        _ => return None,
    })
}

/// Applies [`sane_termios`] to an open terminal.
fn configure_tty(fd: &OwnedFd, path: &Path, serial: Option<&SerialOptions>) -> Result<(), Error> {
    let err = |error| Error::Termios {
        path: path.to_owned(),
        error,
    };
    let mut t = tcgetattr(fd).map_err(err)?;
    sane_termios(&mut t, serial);
    tcsetattr(fd, SetArg::TCSANOW, &t).map_err(err)
}

// ---------------------------------------------------------------------------------------
// Signals, reaping, shutdown

/// The signals PID 1 waits for: children and the shutdown requests.
fn signal_set() -> SigSet {
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
fn setup_signals(set: &SigSet) -> Result<(), Error> {
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
fn wait_signal(set: &SigSet, timeout: Duration) -> Option<Signal> {
    let ts = TimeSpec::from(timeout);
    // SAFETY: both pointers come from live references valid for the call; a null siginfo
    // pointer is allowed by sigtimedwait(2).
    let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts.as_ref()) };
    Signal::try_from(r).ok()
}

/// Reaps every exited child without blocking and returns their pids.
fn reap() -> Vec<Pid> {
    let mut pids = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return pids,
            Ok(status) => pids.extend(status.pid()),
        }
    }
}

/// Keeps a shell on every console and waits for signals; returns only by panicking.
fn supervise(slots: &mut [Slot], signals: &SigSet) {
    loop {
        let now = Instant::now();
        for slot in slots.iter_mut() {
            if slot.pid.is_none() && slot.next <= now {
                slot.throttle.record(now);
                slot.next = slot.throttle.next_start(now);
                match spawn_shell(&slot.tty) {
                    Ok(pid) => slot.pid = Some(pid),
                    Err(e) => say(&format!("rear: {e}")),
                }
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
        for pid in reap() {
            for slot in slots.iter_mut().filter(|s| s.pid == Some(pid)) {
                slot.pid = None;
                let wait = slot.next.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    say(&format!(
                        "rear: shell on {} exits too often; next start in {} s",
                        slot.tty.device,
                        wait.as_secs().max(1)
                    ));
                }
            }
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

/// The mount points in the text of `/proc/self/mounts`, in mount order, `\040`-style escapes
/// decoded (proc(5)). Pure.
fn mount_points(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|field| {
            let mut out = Vec::new();
            let b = field.as_bytes();
            let mut i = 0;
            while i < b.len() {
                let oct = b
                    .get(i + 1..i + 4)
                    .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
                match oct {
                    Some(o) if b[i] == b'\\' => {
                        out.push(o.iter().fold(0u8, |a, c| a.wrapping_mul(8) + (c - b'0')));
                        i += 4;
                    }
                    _ => {
                        out.push(b[i]);
                        i += 1;
                    }
                }
            }
            PathBuf::from(OsString::from_vec(out))
        })
        .collect()
}

/// Unmounts everything but `/`, newest first; busy ones are detached.
fn unmount_all() {
    let Ok(text) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for target in mount_points(&text).iter().rev() {
        if target == Path::new("/") {
            continue;
        }
        if umount2(target, MntFlags::empty()).is_err() {
            let _ = umount2(target, MntFlags::MNT_DETACH);
        }
    }
}

/// Stops all processes, unmounts, and reboots, powers off or halts. Never returns.
fn shutdown(action: Action) -> ! {
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
fn reap_forever() -> ! {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(Duration::from_secs(60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(options: &str) -> Option<SerialOptions> {
        Some(cmdline::parse(&format!("console=x,{options}")).consoles[0].serial_options())
    }

    #[test]
    fn action_from_signal_busybox_convention() {
        assert_eq!(Action::from_signal(Signal::SIGUSR2), Some(Action::Poweroff));
        assert_eq!(Action::from_signal(Signal::SIGTERM), Some(Action::Reboot));
        assert_eq!(Action::from_signal(Signal::SIGINT), Some(Action::Reboot));
        assert_eq!(Action::from_signal(Signal::SIGUSR1), Some(Action::Halt));
        assert_eq!(Action::from_signal(Signal::SIGCHLD), None);
        assert_eq!(Action::from_signal(Signal::SIGHUP), None);
        for a in [Action::Poweroff, Action::Reboot, Action::Halt] {
            assert_eq!(Action::from_signal(a.signal()), Some(a));
        }
    }

    #[test]
    fn action_from_program_name_basename() {
        let name = |s: &str| Action::from_program_name(OsStr::new(s));
        assert_eq!(name("/sbin/poweroff"), Some(Action::Poweroff));
        assert_eq!(name("reboot"), Some(Action::Reboot));
        assert_eq!(name("/usr/sbin/halt"), Some(Action::Halt));
        assert_eq!(name("/init"), None);
        assert_eq!(name("rear-restore"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn plan_consoles_serial_only() {
        let c = cmdline::parse("console=ttyS0,115200n8");
        let plan = plan_consoles(&c, Some("ttyS0\n"));
        assert_eq!(plan.messages, vec!["/dev/console"]);
        assert_eq!(plan.shells.len(), 1);
        assert_eq!(plan.shells[0].device, "/dev/ttyS0");
        assert_eq!(plan.shells[0].term(), "vt100");
        assert_eq!(plan.shells[0].serial.and_then(|s| s.baud), Some(115_200));
    }

    #[test]
    fn plan_consoles_vt_and_serial() {
        let c = cmdline::parse("console=tty0 console=ttyS1,9600");
        let plan = plan_consoles(&c, Some("tty0 ttyS1"));
        assert_eq!(plan.messages, vec!["/dev/console", "/dev/tty0"]);
        let devs: Vec<_> = plan.shells.iter().map(|t| t.device.as_str()).collect();
        assert_eq!(devs, vec!["/dev/ttyS1", "/dev/tty1"]);
        assert_eq!(plan.shells[1].term(), "linux");
        assert_eq!(plan.shells[1].serial, None);
    }

    #[test]
    fn plan_consoles_without_sysfs_uses_last_console() {
        let c = cmdline::parse("console=ttyS0 console=tty0 console=tty1");
        let plan = plan_consoles(&c, None);
        let devs: Vec<_> = plan.shells.iter().map(|t| t.device.as_str()).collect();
        // tty0 and tty1 both mean /dev/tty1 for a shell: one shell only.
        assert_eq!(devs, vec!["/dev/tty1", "/dev/ttyS0"]);
        assert_eq!(
            plan.messages,
            vec!["/dev/console", "/dev/ttyS0", "/dev/tty0"]
        );
    }

    #[test]
    fn plan_consoles_nothing_known_is_dev_console() {
        let plan = plan_consoles(&Cmdline::default(), None);
        assert_eq!(plan.shells, vec![ShellTty::console()]);
        assert_eq!(plan.messages, vec!["/dev/console"]);
        assert_eq!(plan.shells[0].term(), "linux");
    }

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

    #[test]
    fn shell_env_prompt_and_path() {
        let env = shell_env("vt100", "web1", "/bin/sh");
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PS1"), Some("RESCUE web1:\\w # "));
        assert_eq!(get("TERM"), Some("vt100"));
        assert_eq!(get("HOME"), Some("/root"));
        assert_eq!(get("PATH"), Some(SHELL_PATH));
    }

    #[test]
    fn hostname_from_first_real_line() {
        assert_eq!(
            hostname_from("# comment\n\n  web1.example.com \n"),
            Some("web1.example.com")
        );
        assert_eq!(hostname_from("\n# only\n"), None);
    }

    #[test]
    fn mount_points_decodes_escapes() {
        let text = "rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n";
        let want: Vec<PathBuf> = ["/", "/proc", "/mnt/my disk"].map(PathBuf::from).to_vec();
        assert_eq!(mount_points(text), want);
    }

    #[test]
    fn mount_table_parents_first() {
        let table = mount_table();
        for (i, m) in table.iter().enumerate() {
            let parent = Path::new(m.target).parent().unwrap_or(Path::new("/"));
            if parent != Path::new("/") {
                assert!(
                    table[..i].iter().any(|p| Path::new(p.target) == parent),
                    "{}",
                    m.target
                );
            }
        }
    }

    #[test]
    fn sane_termios_serial_settings() {
        // SAFETY: termios is plain old data; all-zero is a valid (fully raw) value.
        let raw: libc::termios = unsafe { std::mem::zeroed() };
        let mut t = Termios::from(raw);
        sane_termios(&mut t, serial("115200e7r").as_ref());
        assert!(t.input_flags.contains(InputFlags::ICRNL));
        assert!(t.output_flags.contains(OutputFlags::ONLCR));
        assert!(
            t.local_flags
                .contains(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG)
        );
        assert!(
            t.control_flags
                .contains(ControlFlags::CLOCAL | ControlFlags::CREAD)
        );
        assert!(
            t.control_flags
                .contains(ControlFlags::PARENB | ControlFlags::CRTSCTS)
        );
        assert!(!t.control_flags.contains(ControlFlags::PARODD));
        assert_eq!(t.control_flags & ControlFlags::CSIZE, ControlFlags::CS7);
        assert_eq!(t.control_chars[Cc::VINTR as usize], 0x03);
        assert_eq!(t.control_chars[Cc::VMIN as usize], 1);
        let speed = t.control_flags & ControlFlags::CBAUD;
        assert_eq!(speed.bits(), BaudRate::B115200 as libc::tcflag_t);
    }

    #[test]
    fn sane_termios_vt_keeps_control_flags() {
        // SAFETY: as above.
        let raw: libc::termios = unsafe { std::mem::zeroed() };
        let mut t = Termios::from(raw);
        sane_termios(&mut t, None);
        assert!(t.control_flags.is_empty());
        assert!(t.local_flags.contains(LocalFlags::ECHO));
    }

    #[test]
    fn baud_rate_known_and_unknown() {
        assert_eq!(baud_rate(9600), Some(BaudRate::B9600));
        assert_eq!(baud_rate(115_200), Some(BaudRate::B115200));
        assert_eq!(baud_rate(12_345), None);
    }

    #[test]
    fn is_mount_point_root_and_plain_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
        assert!(!is_mount_point(&dir.path().join("missing")));
    }
}
