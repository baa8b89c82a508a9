//! Consoles: where messages go, which terminals get a shell, and starting a shell with job
//! control and sane line settings.

use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::libc;
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;
use nix::sys::termios::{
    BaudRate, ControlFlags, InputFlags, LocalFlags, OutputFlags, SetArg,
    SpecialCharacterIndices as Cc, Termios, tcgetattr, tcsetattr,
};
use nix::unistd::{Pid, gethostname, isatty, setsid};

use super::super::cmdline::{self, Cmdline, Parity, SerialOptions};
use super::{Error, SHELL_PATH, SHELLS, say};

/// A terminal that gets a rescue shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ShellTty {
    /// The device node, e.g. `/dev/ttyS0`.
    pub(super) device: String,
    /// Line settings for a serial (non-VT) console; `None` for a VT or `/dev/console`.
    pub(super) serial: Option<SerialOptions>,
    /// A command the first shell runs before it turns interactive (`rear.auto`: the
    /// recovery); later shells on the terminal start plain.
    pub(super) first: Option<String>,
}

impl ShellTty {
    /// `/dev/console` itself, when nothing better is known.
    pub(super) fn console() -> ShellTty {
        ShellTty {
            device: "/dev/console".to_owned(),
            serial: None,
            first: None,
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
pub(super) struct ConsolePlan {
    /// Device nodes that get the messages: `/dev/console` first.
    pub(super) messages: Vec<String>,
    /// One entry per distinct terminal, the one behind `/dev/console` first.
    pub(super) shells: Vec<ShellTty>,
}

/// Decides the message devices and shell terminals from the command line and the content of
/// `/sys/class/tty/console/active`, whose last name is the device behind `/dev/console`
/// (Documentation/ABI/testing/sysfs-tty). A shell runs on that real device rather than on
/// `/dev/console`, which cannot give a shell job control. Pure.
pub(super) fn plan_consoles(cmdline: &Cmdline, active: Option<&str>) -> ConsolePlan {
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
        first: None,
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
pub(super) fn announce(devices: &[String], text: &str) {
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
pub(super) fn spawn_shell(tty: &ShellTty) -> Result<Pid, Error> {
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
    if let Some(first) = &tty.first {
        // Then the same login shell, interactive, on the same terminal.
        cmd.arg("-c")
            .arg(format!("{first}; exec {} -l", shell.display()));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(options: &str) -> Option<SerialOptions> {
        Some(cmdline::parse(&format!("console=x,{options}")).consoles[0].serial_options())
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
    fn shell_env_prompt_and_path() {
        let env = shell_env("vt100", "web1", "/bin/sh");
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PS1"), Some("RESCUE web1:\\w # "));
        assert_eq!(get("TERM"), Some("vt100"));
        assert_eq!(get("HOME"), Some("/root"));
        assert_eq!(get("PATH"), Some(SHELL_PATH));
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
}
