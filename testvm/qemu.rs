//! A QEMU guest driven through its serial console: start, wait for marker lines with a
//! timeout, type commands, wait for the end. The whole console output is kept in
//! `target/vmtest-logs/<name>.log` and its tail is shown when a wait fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The console output so far, shared with the reader thread.
#[derive(Default)]
struct Console {
    text: Mutex<(String, bool)>,
    changed: Condvar,
}

/// A running guest.
pub struct Vm {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Console>,
    /// Where in the console text the next `expect` starts looking.
    cursor: usize,
    log: PathBuf,
}

/// QEMU arguments for OVMF: the firmware code read-only and a private copy of the variable
/// store (UEFI writes to it) in `scratch`.
pub fn pflash_args(code: &str, vars_template: &str, scratch: &Path) -> Vec<String> {
    assert!(
        Path::new(code).exists(),
        "{code} missing: install the Debian package ovmf"
    );
    let vars = scratch.join("OVMF_VARS.fd");
    std::fs::copy(vars_template, &vars).unwrap();
    vec![
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file={code}"),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", vars.display()),
    ]
}

/// QEMU arguments that boot the rescue system's `kernel` and `initrd` with 1 GiB, the serial
/// console, `panic=5` (a kernel failure ends the run) and `norandmaps` (several times faster
/// program starts under TCG), plus `append`; with `no_nic`, without QEMU's default NIC.
pub fn kernel_args(kernel: &Path, initrd: &Path, append: &str, no_nic: bool) -> Vec<String> {
    let mut args: Vec<String> = vec!["-m".into(), "1024".into()];
    if no_nic {
        args.extend(["-nic".into(), "none".into()]);
    }
    args.extend([
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        format!("console=ttyS0 panic=5 norandmaps {append}")
            .trim_end()
            .to_string(),
    ]);
    args
}

impl Vm {
    /// Starts `qemu-system-x86_64 -accel tcg` with the serial console on a pipe, plus `args`.
    pub fn start<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> Vm {
        let log_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/vmtest-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = log_dir.join(format!("{name}.log"));
        // Before the reader threads open it for appending.
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-accel",
            "tcg",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ]);
        cmd.args(args);
        eprintln!("{name}: {:?}", cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting qemu-system-x86_64");
        let console = Arc::new(Console::default());
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let console = console.clone();
            let log = log.clone();
            std::thread::spawn(move || pump(stream, &console, &log));
        }
        let stdin = child.stdin.take();
        Vm {
            name: name.to_string(),
            child,
            stdin,
            console,
            cursor: 0,
            log,
        }
    }

    /// Waits until `marker` appears after the previous match; panics with the console tail
    /// after `timeout`. Returns the text from the previous match up to and including the
    /// marker.
    pub fn expect(&mut self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut guard = self.console.text.lock().unwrap();
        loop {
            if let Some(i) = guard.0[self.cursor..].find(marker) {
                let end = self.cursor + i + marker.len();
                let seen = guard.0[self.cursor..end].to_string();
                self.cursor = end;
                return seen;
            }
            let now = Instant::now();
            if now >= deadline || guard.1 {
                let text = guard.0.clone();
                let closed = guard.1;
                drop(guard);
                let _ = self.child.kill();
                let tail: String = text
                    .chars()
                    .rev()
                    .take(3000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                panic!(
                    "{}: {:?} not seen {} ({}); console log {}; last output:\n{tail}",
                    self.name,
                    marker,
                    if closed {
                        "before QEMU exited"
                    } else {
                        "in time"
                    },
                    format_duration(timeout),
                    self.log.display()
                );
            }
            guard = self
                .console
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Runs a shell command in the guest (numbered `i`, unique per VM) and returns its
    /// output and exit status; stderr is folded into the output.
    pub fn sh(&mut self, i: u32, cmd: &str, timeout: Duration) -> (String, i32) {
        self.send(&format!(
            "echo BEGIN-{i}-$((0)); ( {cmd} ) 2>&1; echo RC-{i}=$?-END-$((6*7))"
        ));
        self.expect(&format!("BEGIN-{i}-0\n"), Duration::from_secs(60));
        let out = self.expect("-END-42\n", timeout);
        let rc = out
            .rsplit(&format!("RC-{i}="))
            .next()
            .and_then(|s| s.trim_end_matches("-END-42\n").parse().ok())
            .unwrap_or(-1);
        (out, rc)
    }

    /// Types a line into the serial console.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("console input closed");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for QEMU to exit by itself (after `poweroff`); panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{}: QEMU did not exit within {}; console log {}",
                    self.name,
                    format_duration(timeout),
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn format_duration(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

/// Copies a stream into the console text and the log file until it ends.
fn pump(mut stream: Box<dyn Read + Send>, console: &Console, log: &Path) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .ok();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(&buf[..n]);
        }
        let mut g = console.text.lock().unwrap();
        // Serial consoles send CR LF; drop the CR so markers match line text.
        g.0.push_str(&String::from_utf8_lossy(&buf[..n]).replace('\r', ""));
        console.changed.notify_all();
    }
    let mut g = console.text.lock().unwrap();
    g.1 = true;
    console.changed.notify_all();
}
