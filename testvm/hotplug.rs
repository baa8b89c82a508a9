//! Hotplug in the rescue system: a USB stick on a qemu-xhci controller gets its driver
//! (usb_storage, sd_mod) from the kernel's uevent, both when it is plugged in after
//! `rear rescue ready` (QMP `device_add`) and when it is attached from the start (it appears
//! on the bus only after coldplug loaded xhci_pci). Success is a `usb` disk in
//! `lsblk -dn -o NAME,TRAN`, polled in the rescue shell with a marker line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::boot::build_initrd;
use crate::qemu::{Vm, kernel_args};

/// A 16 MiB raw image for the stick.
fn stick_image(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("stick.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    path
}

/// Starts the guest with an xHCI controller, the stick's drive and `extra` arguments.
fn start(name: &str, dir: &Path, extra: &[&str]) -> (Vm, String) {
    let (kernel, initrd, release) = build_initrd(&dir.join("out"), &[]);
    let drive = format!(
        "if=none,id=stick,format=raw,file={}",
        stick_image(dir).display()
    );
    let mut args = kernel_args(&kernel, &initrd, "", true);
    args.extend([
        "-device".into(),
        "qemu-xhci,id=xhci".into(),
        "-drive".into(),
        drive,
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut vm = Vm::start(name, &args);
    vm.expect(
        &format!("rear rescue ready {release}"),
        Duration::from_secs(120),
    );
    vm.expect("RESCUE", Duration::from_secs(30));
    (vm, release)
}

/// Polls `lsblk -dn -o NAME,TRAN` in the rescue shell until a `usb` disk is listed; returns
/// the listing. Each try waits for its own marker, so no time is slept blindly.
fn wait_usb_disk(vm: &mut Vm, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // The shell sleeps between tries inside the guest; the host only waits for markers.
        let pause = if attempt == 1 { 0 } else { 1 };
        vm.send(&format!(
            "sleep {pause}; lsblk -dn -o NAME,TRAN; echo LSBLK-{attempt}-$((6*7))"
        ));
        let out = vm.expect(&format!("LSBLK-{attempt}-42\n"), Duration::from_secs(30));
        if out.lines().any(|l| {
            let mut w = l.split_whitespace();
            matches!((w.next(), w.next(), w.next()), (Some(_), Some("usb"), None))
        }) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "no usb disk in lsblk within {} s; last listing:\n{out}",
            timeout.as_secs()
        );
    }
}

/// A QMP session on a unix socket.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (QEMU listens from its start) and leaves capabilities negotiation mode.
    fn connect(path: &Path) -> Qmp {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = qmp.line();
        assert!(greeting.contains("\"QMP\""), "QMP greeting: {greeting}");
        qmp.execute(r#"{"execute":"qmp_capabilities"}"#);
        qmp
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        assert!(n > 0, "QMP socket closed");
        line
    }

    /// Sends a command and returns its reply, skipping events; panics on an error reply.
    fn execute(&mut self, command: &str) -> String {
        self.writer.write_all(command.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
        loop {
            let reply = self.line();
            if reply.contains("\"event\"") {
                continue;
            }
            assert!(
                reply.contains("\"return\""),
                "QMP {command} failed: {reply}"
            );
            return reply;
        }
    }
}

#[test]
fn hotplug_usb_stick_after_ready_gets_driver() {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("qmp.sock");
    let qmp_arg = format!("unix:{},server=on,wait=off", sock.display());
    let (mut vm, _release) = start("hotplug_usb_after_ready", tmp.path(), &["-qmp", &qmp_arg]);
    vm.send("lsblk -dn -o NAME,TRAN; echo BEFORE-$((6*7))");
    let before = vm.expect("BEFORE-42\n", Duration::from_secs(30));
    assert!(
        !before.lines().any(|l| l.ends_with(" usb")),
        "a usb disk before the stick was plugged:\n{before}"
    );
    let mut qmp = Qmp::connect(&sock);
    qmp.execute(
        r#"{"execute":"device_add","arguments":{"driver":"usb-storage","bus":"xhci.0","drive":"stick","id":"stick0"}}"#,
    );
    let out = wait_usb_disk(&mut vm, Duration::from_secs(90));
    eprintln!("after device_add:\n{out}");
    vm.send("poweroff");
    vm.wait_exit(Duration::from_secs(60));
}

#[test]
fn hotplug_usb_stick_at_boot_gets_driver() {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (mut vm, _release) = start(
        "hotplug_usb_at_boot",
        tmp.path(),
        &["-device", "usb-storage,bus=xhci.0,drive=stick"],
    );
    let out = wait_usb_disk(&mut vm, Duration::from_secs(90));
    eprintln!("stick attached at boot:\n{out}");
    vm.send("poweroff");
    vm.wait_exit(Duration::from_secs(60));
}
