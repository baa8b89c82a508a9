//! PID 1 of the rescue system: `rear-restore` installed as `/init` in the initramfs.
//!
//! Stage: restore (boot). Input: the initramfs, `/proc/cmdline` ([`super::cmdline`]), `/sys`,
//! `/etc/rear/rescue.json` ([`rear_model::rescue::RescueConfig`]: the image's defaults).
//! Output: a running rescue system with a root shell (job control on) on every console, the
//! network configured in the background ([`super::net`]), sshd ([`super::ssh`]), and a clean
//! power-off or reboot on request.
//!
//! [`run`] mounts the API file systems (`boot`), loads the modules for the hardware, sets
//! the hostname, starts the network thread, announces `rear rescue ready <release>` on every
//! console (`console`) without waiting for the network, then supervises (`supervise`): it
//! respawns each console's shell and sshd (at most [`RESPAWN_MAX`] starts in
//! [`RESPAWN_WINDOW`]), reaps every zombie, and shuts down (`shutdown`) on the signals
//! busybox init understands (SIGUSR2 power off, SIGTERM reboot, SIGUSR1 halt, SIGINT =
//! Ctrl-Alt-Del reboot). PID 1 must never exit: every step runs under `catch_unwind`,
//! failures are printed and the boot goes on; if even the supervisor keeps failing, PID 1
//! falls back to reaping zombies forever. [`request`] is the other side used by
//! `rear-restore poweroff|reboot|halt` (and the `/sbin/poweroff` symlinks): it signals PID 1.
//! [`banner`] is what every interactive shell prints first.
//!
//! The initramfs must hold `/dev/console` (the kernel's built-in initramfs provides it): the
//! Rust runtime aborts at start-up when fds 0-2 are closed and `/dev/null` is missing.

pub mod banner;
mod boot;
mod console;
mod shutdown;
mod supervise;

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::reboot::RebootMode;
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::{Mode, umask};
use nix::unistd::Pid;

use super::cmdline::Cmdline;
use super::net::apply::{self as net_apply, Settings};
use super::net::ip::IpConfig;
use boot::{ensure_console_stdio, load_modules, mount_all, read_cmdline, set_hostname};
use console::{ShellTty, announce, plan_consoles};
use rear_model::rescue::Net;
use rear_model::rescue::{RESCUE_JSON, RescueConfig};
use shutdown::{reap_forever, setup_signals, shutdown, signal_set};
use supervise::{Job, Service, Slot, supervise};

/// At most this many shell starts per console within [`RESPAWN_WINDOW`].
pub const RESPAWN_MAX: usize = 5;
/// The window over which [`RESPAWN_MAX`] counts.
pub const RESPAWN_WINDOW: Duration = Duration::from_secs(10);
/// `PATH` of the rescue shells.
pub const SHELL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Shells tried in order; the first that exists runs as a login shell.
pub const SHELLS: [&str; 2] = ["/bin/bash", "/bin/sh"];
/// What the console runs first with `rear.auto`.
pub const AUTO_RECOVER: &str = "rear-restore recover --auto";

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
    /// A service's command could not be started.
    #[error("{name}: starting {argv}: {error}")]
    ServiceSpawn {
        /// The service.
        name: &'static str,
        /// The command line.
        argv: String,
        /// The cause.
        error: io::Error,
    },
    /// The rescue system could not be prepared for sshd.
    #[error("preparing for sshd: {0}")]
    Sshd(String),
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
    /// Ctrl-Alt-Del once `set_cad_enabled` is off; it reboots, as in busybox's inittab.
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
    let image = match RescueConfig::load(Path::new(RESCUE_JSON)) {
        Ok(c) => Some(c),
        Err(e) => {
            say(&format!("rear: {e}; using the built-in defaults"));
            None
        }
    };
    let settings = BootSettings::new(&cmdline, image.as_ref());

    let active = fs::read_to_string("/sys/class/tty/console/active").ok();
    let plan = plan_consoles(&cmdline, active.as_deref());
    log::debug!("consoles: {plan:?}");
    if settings.net != Net::None {
        let devices = plan.messages.clone();
        step("network", || {
            start_network(&settings, cmdline.ip.clone(), &release, devices);
            Ok(())
        });
    }
    let mut lines = vec![format!("rear rescue ready {release}")];
    // For the benchmark: the kernel's clock at the ready line.
    if let Some(up) = fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
    {
        lines.push(format!("rear: ready {up} s after the kernel started"));
    }
    if cmdline.auto && cmdline.shell {
        lines.push("rear: rear.shell given: no automatic recovery".to_owned());
    } else if cmdline.auto {
        lines.push(format!(
            "rear: rear.auto: starting `{AUTO_RECOVER}` on the console"
        ));
    }
    if settings.net != Net::None {
        lines.push(format!(
            "rear: network: configuring in the background (rear.net={}{})",
            settings.net.name(),
            if cmdline.ip.is_some() { ", ip=" } else { "" }
        ));
    }
    step("announce", || {
        announce(&plan.messages, &lines.join("\n"));
        Ok(())
    });

    let mut shells = plan.shells;
    if cmdline.auto
        && !cmdline.shell
        && let Some(primary) = shells.first_mut()
    {
        primary.first = Some(AUTO_RECOVER.to_owned());
    }
    let mut slots: Vec<Slot> = shells
        .into_iter()
        .filter(|t| t.device == "/dev/console" || Path::new(&t.device).exists())
        .map(|t| Slot::new(Job::Shell(t)))
        .collect();
    if slots.is_empty() {
        slots.push(Slot::new(Job::Shell(ShellTty::console())));
    }
    if settings.ssh
        && let Some(service) = step("sshd", sshd_service).flatten()
    {
        slots.push(Slot::new(Job::Service { service, stage: 0 }));
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

/// The network mode and SSH switch in force: the kernel command line over the image's
/// `rescue.json` over the built-in defaults (saved configuration, sshd on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BootSettings {
    net: Net,
    ssh: bool,
}

impl BootSettings {
    /// Pure.
    fn new(cmdline: &Cmdline, image: Option<&RescueConfig>) -> BootSettings {
        BootSettings {
            net: cmdline.net.or(image.map(|c| c.net)).unwrap_or(Net::Static),
            ssh: cmdline.ssh.or(image.map(|c| c.ssh)).unwrap_or(true),
        }
    }
}

/// Starts the network thread; its messages go to every console.
fn start_network(
    settings: &BootSettings,
    ip: Option<IpConfig>,
    release: &str,
    devices: Vec<String>,
) {
    let net_settings = Settings {
        mode: settings.net,
        ip,
        config: PathBuf::from(rear_model::netconf::PATH),
        resolv_conf: PathBuf::from("/etc/resolv.conf"),
        sys_class_net: PathBuf::from(super::net::SYS_CLASS_NET),
        modules_dir: Path::new("/lib/modules").join(release),
        hostname: nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned())
            .filter(|h| !h.is_empty() && h != "(none)"),
    };
    let say_all: net_apply::Say = Arc::new(move |line: &str| announce(&devices, line));
    let spawned = std::thread::Builder::new()
        .name("network".into())
        .spawn(move || {
            let say2 = say_all.clone();
            if catch_unwind(AssertUnwindSafe(|| net_apply::run(&net_settings, say_all))).is_err() {
                say2("rear: network: internal error; configure it by hand (ip addr, ip route)");
            }
        });
    if let Err(e) = spawned {
        say(&format!("rear: network: cannot start its thread: {e}"));
    }
}

/// The sshd service, when the image has sshd: host keys first, then `sshd -D -e`.
fn sshd_service() -> Result<Option<Service>, Error> {
    let root = Path::new("/");
    let Some(sshd) = super::ssh::find(root, &super::ssh::SSHD_PATHS) else {
        say("rear: sshd: not in the image (rear-mkimage --recipe ssh); no SSH access");
        return Ok(None);
    };
    for note in super::ssh::prepare(root).map_err(|e| Error::Sshd(e.to_string()))? {
        say(&format!("rear: sshd: {note}"));
    }
    let setup = match super::ssh::find(
        root,
        &[
            "/usr/bin/ssh-keygen",
            "/bin/ssh-keygen",
            "/usr/sbin/ssh-keygen",
        ],
    ) {
        Some(keygen) => super::ssh::setup_commands(&keygen),
        None => {
            say("rear: sshd: ssh-keygen is not in the image; sshd has no host keys");
            Vec::new()
        }
    };
    Ok(Some(Service {
        name: "sshd",
        setup,
        argv: super::ssh::sshd_command(&sshd),
        log: PathBuf::from(super::ssh::LOG),
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn boot_settings_precedence() {
        let image = RescueConfig {
            version: 1,
            hostname: "h".into(),
            built: 0,
            net: Net::Dhcp,
            ssh: false,
        };
        let none = super::super::cmdline::parse("");
        assert_eq!(
            BootSettings::new(&none, None),
            BootSettings {
                net: Net::Static,
                ssh: true
            }
        );
        assert_eq!(
            BootSettings::new(&none, Some(&image)),
            BootSettings {
                net: Net::Dhcp,
                ssh: false
            }
        );
        let given = super::super::cmdline::parse("rear.net=none rear.ssh=1");
        assert_eq!(
            BootSettings::new(&given, Some(&image)),
            BootSettings {
                net: Net::None,
                ssh: true
            }
        );
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
}
