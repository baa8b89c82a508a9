//! A QEMU guest for `rear-mkimage verify --boot`: start `qemu-system-x86_64` with the medium,
//! read its serial console, wait for marker text with a deadline, type a line, wait for the end.
//!
//! Input: a [`Machine`] (what to boot, BIOS or UEFI, KVM or TCG). Output: the console text.
//! QEMU is the one long-running program of this crate: [`Guest::start`] spawns it itself (the
//! [`rear_sys::exec`] gateway runs programs to completion), logging the argv first; it is the
//! only place in this module that starts a process. The guest is killed when the [`Guest`] is
//! dropped, so no failure path leaves a QEMU behind.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use rear_sys::sysroot::Sysroot;

/// The QEMU program.
pub const QEMU: &str = "qemu-system-x86_64";
/// The Debian package that provides [`QEMU`].
pub const QEMU_PACKAGE: &str = "qemu-system-x86";
/// OVMF's code, as Debian's `ovmf` package installs it.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF's variable store template; each guest gets a copy.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The Debian package that provides OVMF.
pub const OVMF_PACKAGE: &str = "ovmf";

/// The console text kept in memory; older text is dropped (the log file keeps it all).
const CONSOLE_KEEP: usize = 4 << 20;

/// Errors of running a guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// QEMU is not installed.
    #[error("{QEMU}: not found (install the package {QEMU_PACKAGE})")]
    QemuMissing,
    /// UEFI was asked for and OVMF is not installed.
    #[error("UEFI firmware {}: not found (install the package {OVMF_PACKAGE})", .0.display())]
    OvmfMissing(PathBuf),
    /// QEMU could not be started.
    #[error("{argv}: {error}")]
    Spawn {
        /// The command line.
        argv: String,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// A file the guest needs could not be prepared (the OVMF variables copy, the log).
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// Typing into the console failed (QEMU has gone).
    #[error("writing to the serial console of {QEMU}: {0}")]
    Console(std::io::Error),
}

/// The firmware the guest boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default.
    Bios,
    /// OVMF (UEFI), from [`OVMF_CODE`] with a private copy of [`OVMF_VARS`].
    Uefi,
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
        })
    }
}

/// The accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when [`kvm_usable`], TCG otherwise.
    Auto,
    /// Hardware virtualisation.
    Kvm,
    /// Emulation (slow, works everywhere).
    Tcg,
}

impl Accel {
    /// `Auto` decided for this machine.
    pub fn resolve(self, sys: &Sysroot) -> Accel {
        match self {
            Accel::Auto if kvm_usable(sys) => Accel::Kvm,
            Accel::Auto => Accel::Tcg,
            other => other,
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Auto | Accel::Tcg => "tcg",
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Auto => "auto",
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        })
    }
}

/// What the guest boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// An ISO image in a CD drive (read-only).
    Cdrom(PathBuf),
    /// A disk image as the first disk (virtio, read-only: the medium is not changed).
    Disk(PathBuf),
    /// A kernel and an initrd loaded by QEMU itself, with a command line.
    Kernel {
        /// The bzImage.
        kernel: PathBuf,
        /// The initrd.
        initrd: PathBuf,
        /// The kernel command line.
        cmdline: String,
    },
}

/// A guest to start.
#[derive(Debug, Clone)]
pub struct Machine {
    /// What it boots.
    pub boot: Boot,
    /// BIOS or UEFI.
    pub firmware: Firmware,
    /// KVM or TCG (`Auto` is resolved by [`Guest::start`]).
    pub accel: Accel,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Where the whole console output is written, besides memory.
    pub console_log: Option<PathBuf>,
}

/// Whether KVM works here: `/dev/kvm` is readable and writable, and the CPU has hardware
/// virtualisation (`vmx` or `svm` in `/proc/cpuinfo`). The second test matters: nested
/// setups such as PVM offer a `/dev/kvm` without `vmx`/`svm` on which a normal guest hangs.
pub fn kvm_usable(sys: &Sysroot) -> bool {
    use nix::unistd::{AccessFlags, access};
    let dev = sys.real(Path::new("/dev/kvm"));
    if access(&dev, AccessFlags::R_OK | AccessFlags::W_OK).is_err() {
        return false;
    }
    let Ok(cpuinfo) = sys.read_to_string(Path::new("/proc/cpuinfo")) else {
        return false;
    };
    cpuinfo_has_virt(&cpuinfo)
}

/// Whether the first `flags` line of `/proc/cpuinfo` lists `vmx` (Intel) or `svm` (AMD).
fn cpuinfo_has_virt(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .is_some_and(|(_, flags)| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// The QEMU arguments of `machine` (without the program name). `vars` is the private copy of
/// the OVMF variable store, for UEFI.
pub fn qemu_args(machine: &Machine, ovmf_code: &Path, vars: Option<&Path>) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |a: &str| args.push(a.into());
    for a in [
        "-accel",
        machine.accel.arg(),
        "-m",
        &machine.memory_mib.to_string(),
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-nic",
        "none",
        "-no-reboot",
    ] {
        push(a);
    }
    if machine.firmware == Firmware::Uefi {
        push("-drive");
        args.push(pflash_arg(0, ovmf_code, true));
        if let Some(vars) = vars {
            args.push("-drive".into());
            args.push(pflash_arg(1, vars, false));
        }
    }
    match &machine.boot {
        Boot::Cdrom(file) => {
            args.push("-drive".into());
            args.push(drive_arg("if=none,id=medium,media=cdrom", file));
            args.push("-device".into());
            args.push("ide-cd,drive=medium,bootindex=0".into());
        }
        Boot::Disk(file) => {
            args.push("-drive".into());
            args.push(drive_arg("if=none,id=medium", file));
            args.push("-device".into());
            args.push("virtio-blk-pci,drive=medium,bootindex=0".into());
        }
        Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            args.push("-kernel".into());
            args.push(kernel.into());
            args.push("-initrd".into());
            args.push(initrd.into());
            args.push("-append".into());
            args.push(cmdline.into());
        }
    }
    args
}

/// `-drive` value for a read-only raw medium. A comma in the file name is doubled, as QEMU's
/// option syntax asks.
fn drive_arg(prefix: &str, file: &Path) -> OsString {
    let mut s = OsString::from(format!("{prefix},format=raw,readonly=on,file="));
    s.push(escape_commas(file));
    s
}

fn pflash_arg(unit: u8, file: &Path, readonly: bool) -> OsString {
    let ro = if readonly { ",readonly=on" } else { "" };
    let mut s = OsString::from(format!("if=pflash,format=raw,unit={unit}{ro},file="));
    s.push(escape_commas(file));
    s
}

fn escape_commas(p: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::new();
    for &b in p.as_os_str().as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// The console output so far, shared with the reader threads.
#[derive(Default)]
struct Console {
    state: Mutex<ConsoleState>,
    changed: Condvar,
}

#[derive(Default)]
struct ConsoleState {
    /// The text kept (serial console and QEMU's own messages), CR removed.
    text: String,
    /// How many bytes of text were dropped from the front to bound memory.
    dropped: usize,
    /// Streams still open (stdout, stderr); 0 means QEMU has exited.
    open: usize,
}

/// How a wait ended without its marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// The deadline passed.
    Timeout,
    /// QEMU exited first.
    Exited,
}

/// A running guest; dropping it kills QEMU.
pub struct Guest {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Console>,
    /// Absolute console offset where the next wait starts looking.
    cursor: usize,
    argv: String,
    _vars: Option<tempfile::TempDir>,
}

impl Guest {
    /// Starts QEMU for `machine`. UEFI needs OVMF at [`OVMF_CODE`] and [`OVMF_VARS`] in
    /// `sys` (the host).
    pub fn start(machine: &Machine, sys: &Sysroot) -> Result<Guest, Error> {
        let mut machine = machine.clone();
        machine.accel = machine.accel.resolve(sys);
        let (code, vars_dir) = match machine.firmware {
            Firmware::Bios => (PathBuf::new(), None),
            Firmware::Uefi => {
                let (code, dir) = ovmf(sys)?;
                (code, Some(dir))
            }
        };
        let vars = vars_dir.as_ref().map(|d| d.path().join("OVMF_VARS.fd"));
        let args = qemu_args(&machine, &code, vars.as_deref());
        let log = match &machine.console_log {
            Some(p) => Some(std::fs::File::create(p).map_err(|error| Error::Io {
                path: p.clone(),
                error,
            })?),
            None => None,
        };
        let mut guest = spawn(QEMU, &args, log)?;
        guest._vars = vars_dir;
        Ok(guest)
    }

    /// The QEMU command line, for messages.
    pub fn argv(&self) -> &str {
        &self.argv
    }

    /// Waits until `marker` appears after the previous match, until `deadline`.
    pub fn wait_for(&mut self, marker: &str, deadline: Instant) -> Result<(), WaitEnd> {
        self.wait(marker, deadline, false).map(drop)
    }

    /// Like [`Guest::wait_for`], and returns the rest of the marker's line once the line is
    /// complete (or QEMU ended, or the deadline came while the line was still arriving).
    pub fn wait_for_line(&mut self, marker: &str, deadline: Instant) -> Result<String, WaitEnd> {
        self.wait(marker, deadline, true)
    }

    fn wait(&mut self, marker: &str, deadline: Instant, line: bool) -> Result<String, WaitEnd> {
        let console = self.console.clone();
        let mut state = lock(&console);
        loop {
            let now = Instant::now();
            let start = self.cursor.saturating_sub(state.dropped);
            if let Some(i) = state.text[start..].find(marker) {
                let end = start + i + marker.len();
                let rest = &state.text[end..];
                let newline = rest.find('\n');
                if !line || newline.is_some() || state.open == 0 || now >= deadline {
                    let rest = rest[..newline.unwrap_or(rest.len())].to_string();
                    self.cursor = state.dropped + end;
                    return Ok(rest);
                }
            } else if state.open == 0 {
                return Err(WaitEnd::Exited);
            } else if now >= deadline {
                return Err(WaitEnd::Timeout);
            }
            state = match console.changed.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Types `line` and Enter into the serial console.
    pub fn send_line(&mut self, line: &str) -> Result<(), Error> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Error::Console(std::io::ErrorKind::BrokenPipe.into()));
        };
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(Error::Console)
    }

    /// Waits until QEMU exits, until `deadline`; `None` when it is still running then.
    pub fn wait_exit(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let console = self.console.clone();
        let mut state = lock(&console);
        while state.open > 0 {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = match console.changed.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(state);
        // Both output streams are closed: QEMU has exited or is exiting right now.
        self.child.wait().ok()
    }

    /// The last `n` lines of the console, with terminal control sequences removed.
    pub fn tail(&self, n: usize) -> String {
        last_lines(&lock(&self.console).text, n)
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The console state; a reader thread that panicked leaves usable text behind.
fn lock(console: &Console) -> MutexGuard<'_, ConsoleState> {
    match console.state.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Checks OVMF and makes the private copy of its variable store.
fn ovmf(sys: &Sysroot) -> Result<(PathBuf, tempfile::TempDir), Error> {
    let code = Path::new(OVMF_CODE);
    let vars = Path::new(OVMF_VARS);
    for p in [code, vars] {
        if !sys.is_file(p) {
            return Err(Error::OvmfMissing(p.to_path_buf()));
        }
    }
    let bytes = sys.read(vars).map_err(|e| Error::Io {
        path: vars.to_path_buf(),
        error: std::io::Error::other(e.to_string()),
    })?;
    let dir = tempfile::Builder::new()
        .prefix("rear-verify-ovmf.")
        .tempdir()
        .map_err(|error| Error::Io {
            path: std::env::temp_dir(),
            error,
        })?;
    let copy = dir.path().join("OVMF_VARS.fd");
    std::fs::write(&copy, bytes).map_err(|error| Error::Io { path: copy, error })?;
    Ok((sys.real(code), dir))
}

/// THE process spawn of this module (`program` is [`QEMU`]; tests pass a shell): QEMU runs
/// for minutes with its console on pipes, which [`rear_sys::exec::run`] (run to completion,
/// output captured) cannot do. The argv is logged first, as exec does.
fn spawn(program: &str, args: &[OsString], log: Option<std::fs::File>) -> Result<Guest, Error> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let argv = rear_sys::exec::argv_string(&cmd);
    log::info!("run: {argv}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                Error::QemuMissing
            } else {
                Error::Spawn {
                    argv: argv.clone(),
                    error,
                }
            }
        })?;
    let console = Arc::new(Console::default());
    let log = log.map(|f| Arc::new(Mutex::new(f)));
    let mut streams: Vec<Box<dyn Read + Send>> = Vec::new();
    if let Some(s) = child.stdout.take() {
        streams.push(Box::new(s));
    }
    if let Some(s) = child.stderr.take() {
        streams.push(Box::new(s));
    }
    if let Ok(mut s) = console.state.lock() {
        s.open = streams.len();
    }
    for stream in streams {
        let console = console.clone();
        let log = log.clone();
        std::thread::spawn(move || pump(stream, &console, log.as_deref()));
    }
    let stdin = child.stdin.take();
    Ok(Guest {
        child,
        stdin,
        console,
        cursor: 0,
        argv,
        _vars: None,
    })
}

/// Copies one output stream of QEMU into the console text (and the log) until it ends.
fn pump(mut stream: Box<dyn Read + Send>, console: &Console, log: Option<&Mutex<std::fs::File>>) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(Ok(mut f)) = log.map(Mutex::lock) {
            let _ = f.write_all(&buf[..n]);
        }
        let mut s = lock(console);
        // Serial consoles send CR LF; drop the CR so markers match line text.
        s.text
            .push_str(&String::from_utf8_lossy(&buf[..n]).replace('\r', ""));
        if s.text.len() > CONSOLE_KEEP {
            let mut cut = s.text.len() - CONSOLE_KEEP / 2;
            while !s.text.is_char_boundary(cut) {
                cut += 1;
            }
            s.text.drain(..cut);
            s.dropped += cut;
        }
        console.changed.notify_all();
    }
    let mut s = lock(console);
    s.open = s.open.saturating_sub(1);
    console.changed.notify_all();
}

/// The last `n` non-empty lines of console text, without terminal escape sequences and
/// control characters (firmware and boot loaders draw screens with them).
pub fn last_lines(text: &str, n: usize) -> String {
    let clean = strip_escapes(text);
    let lines: Vec<&str> = clean
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ parameters final-byte; other escapes: ESC + one character.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn machine(boot: Boot, firmware: Firmware) -> Machine {
        Machine {
            boot,
            firmware,
            accel: Accel::Tcg,
            memory_mib: 1024,
            console_log: None,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn qemu_args_cdrom_bios() {
        let m = machine(Boot::Cdrom("/out/rear,db1.iso".into()), Firmware::Bios);
        let args = strings(&qemu_args(&m, Path::new(""), None));
        assert_eq!(
            args.join(" "),
            "-accel tcg -m 1024 -display none -monitor none -serial stdio -nic none -no-reboot \
             -drive if=none,id=medium,media=cdrom,format=raw,readonly=on,file=/out/rear,,db1.iso \
             -device ide-cd,drive=medium,bootindex=0"
        );
    }

    #[test]
    fn qemu_args_disk_uefi() {
        let mut m = machine(Boot::Disk("/out/db1.usb.img".into()), Firmware::Uefi);
        m.accel = Accel::Kvm;
        let args = strings(&qemu_args(
            &m,
            Path::new(OVMF_CODE),
            Some(Path::new("/tmp/v/OVMF_VARS.fd")),
        ));
        let s = args.join(" ");
        assert!(s.starts_with("-accel kvm "), "{s}");
        assert!(
            s.contains(
                "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
                 -drive if=pflash,format=raw,unit=1,file=/tmp/v/OVMF_VARS.fd"
            ),
            "{s}"
        );
        assert!(
            s.ends_with("-device virtio-blk-pci,drive=medium,bootindex=0"),
            "{s}"
        );
    }

    #[test]
    fn qemu_args_kernel_keeps_cmdline_one_arg() {
        let m = machine(
            Boot::Kernel {
                kernel: "/k".into(),
                initrd: "/i".into(),
                cmdline: "console=ttyS0 panic=5".into(),
            },
            Firmware::Bios,
        );
        let args = strings(&qemu_args(&m, Path::new(""), None));
        assert_eq!(
            &args[args.len() - 6..],
            [
                "-kernel",
                "/k",
                "-initrd",
                "/i",
                "-append",
                "console=ttyS0 panic=5"
            ]
        );
    }

    #[test]
    fn cpuinfo_has_virt_flags() {
        assert!(cpuinfo_has_virt(
            "processor\t: 0\nflags\t\t: fpu vme vmx sse\n"
        ));
        assert!(cpuinfo_has_virt("flags\t\t: fpu svm\n"));
        assert!(!cpuinfo_has_virt("flags\t\t: fpu pni hypervisor\n"));
        assert!(!cpuinfo_has_virt(""));
    }

    #[test]
    fn kvm_usable_without_dev_kvm() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("proc")).unwrap();
        std::fs::write(tmp.path().join("proc/cpuinfo"), "flags : vmx\n").unwrap();
        let sys = Sysroot::new(tmp.path()).unwrap();
        assert!(!kvm_usable(&sys));
        assert_eq!(Accel::Auto.resolve(&sys), Accel::Tcg);
        std::fs::create_dir_all(tmp.path().join("dev")).unwrap();
        std::fs::write(tmp.path().join("dev/kvm"), "").unwrap();
        assert!(kvm_usable(&sys));
        assert_eq!(Accel::Tcg.resolve(&sys), Accel::Tcg);
    }

    #[test]
    fn last_lines_strips_escapes() {
        let text = "\x1b[2J\x1b[1;1Hfirst\nSeaBIOS\x1b[0m\n\n\tx\x07\nlast";
        assert_eq!(last_lines(text, 2), "\tx\nlast");
        assert_eq!(last_lines(text, 10), "first\nSeaBIOS\n\tx\nlast");
    }

    #[test]
    fn spawn_missing_qemu_names_package() {
        let e = spawn("rear-no-such-qemu", &[], None).err().unwrap();
        assert!(matches!(e, Error::QemuMissing));
        assert_eq!(
            e.to_string(),
            "qemu-system-x86_64: not found (install the package qemu-system-x86)"
        );
    }

    #[test]
    fn guest_wait_send_exit() {
        let script =
            "echo booting; echo 'rear rescue ready 6.1'; read x; echo \"got $x\"; echo oops >&2";
        let args = ["-c".into(), OsString::from(script)];
        let mut g = spawn("sh", &args, None).unwrap();
        let far = Instant::now() + Duration::from_secs(20);
        assert_eq!(g.wait_for_line("rescue ready", far).unwrap(), " 6.1");
        g.send_line("poweroff").unwrap();
        assert_eq!(g.wait_for_line("got ", far).unwrap(), "poweroff");
        assert!(g.wait_exit(far).unwrap().success());
        assert_eq!(g.wait_for("never", far), Err(WaitEnd::Exited));
        assert!(g.tail(40).contains("got poweroff"), "{}", g.tail(40));
    }

    #[test]
    fn guest_wait_for_completes_the_line() {
        let script = "printf 'PROMPT # '; printf 'rear rescue ready'; sleep 0.3; echo ' 6.1-x'; exec sleep 30";
        let args = ["-c".into(), OsString::from(script)];
        let mut g = spawn("sh", &args, None).unwrap();
        let t = Instant::now();
        let far = t + Duration::from_secs(20);
        // A prompt has no line end: wait_for returns at once.
        assert_eq!(g.wait_for("PROMPT #", far), Ok(()));
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_eq!(g.wait_for_line("rescue ready", far).unwrap(), " 6.1-x");
    }

    #[test]
    fn guest_wait_times_out() {
        let args = ["-c".into(), "echo hi; exec sleep 30".into()];
        let mut g = spawn("sh", &args, None).unwrap();
        let t = Instant::now();
        assert_eq!(
            g.wait_for("ready", t + Duration::from_millis(300)),
            Err(WaitEnd::Timeout)
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(
            g.wait_exit(Instant::now() + Duration::from_millis(100))
                .is_none()
        );
        assert_eq!(g.tail(1), "hi");
    }

    #[test]
    fn guest_start_ovmf_missing_names_package() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(tmp.path()).unwrap();
        let m = machine(Boot::Disk("/x.img".into()), Firmware::Uefi);
        let e = Guest::start(&m, &sys).err().unwrap();
        assert_eq!(
            e.to_string(),
            "UEFI firmware /usr/share/OVMF/OVMF_CODE_4M.fd: not found (install the package ovmf)"
        );
    }
}
