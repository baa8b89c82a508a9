//! The rescue runtime in QEMU: DHCP from QEMU's built-in server, SSH login with a key given
//! to `rear-mkimage --ssh-authorized-keys`, the banner, `poweroff`; and module autoload for
//! virtio, NVMe and AHCI disks. Only 127.0.0.1 and QEMU's user network are used.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::boot::build_initrd;
use crate::qemu::{Vm, kernel_args};

/// A TCP port on 127.0.0.1 that is free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An Ed25519 key pair without passphrase: (private key path, public key path).
fn key_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join("id_test");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "rear-vmtest", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (install openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
    (key.clone(), key.with_extension("pub"))
}

/// Runs `command` over ssh on the forwarded port until it succeeds or `deadline` passes;
/// returns its stdout. Each failed attempt (QEMU accepts the forwarded connection before the
/// guest listens, then drops it) is retried after a short pause.
fn ssh_until(port: u16, key: &Path, command: &str, deadline: Instant) -> String {
    loop {
        let out = Command::new("ssh")
            .args(["-p", &port.to_string(), "-i"])
            .arg(key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                "root@127.0.0.1",
                command,
            ])
            .output()
            .expect("ssh (install openssh-client)");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let last = String::from_utf8_lossy(&out.stderr);
        assert!(
            Instant::now() < deadline,
            "ssh to the rescue system did not succeed in time; last error: {last}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn network_dhcp_ssh_banner_poweroff() {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = key_pair(tmp.path());
    let out = tmp.path().join("out");
    let (kernel, initrd, release) = build_initrd(
        &out,
        &[
            "--recipe",
            "ssh",
            "--recipe",
            "network",
            "--ssh-authorized-keys",
            public.to_str().unwrap(),
        ],
    );
    let port = free_port();
    let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22");
    let start = Instant::now();
    let mut args = kernel_args(&kernel, &initrd, "", false);
    args.extend([
        "-netdev".into(),
        netdev,
        "-device".into(),
        "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56".into(),
    ]);
    let mut vm = Vm::start("network_dhcp_ssh", &args);
    vm.expect(
        &format!("rear rescue ready {release}"),
        Duration::from_secs(120),
    );
    let ready = start.elapsed();
    // The address from QEMU's DHCP server, printed by the network thread.
    let seen = vm.expect("rear: network ready: ", Duration::from_secs(60));
    let line = vm.expect("\n", Duration::from_secs(5));
    assert!(
        line.contains("eth0 10.0.2.15/24 (dhcp)"),
        "no DHCP address on the console:\n{seen}{line}"
    );
    let networked = start.elapsed();
    let uname = ssh_until(
        port,
        &key,
        "uname -r",
        Instant::now() + Duration::from_secs(120),
    );
    let ssh_time = start.elapsed();
    assert_eq!(uname.trim(), release, "uname -r over ssh");
    eprintln!(
        "network_dhcp_ssh: ready after {:.1} s, DHCP address after {:.1} s, ssh login after {:.1} s (QEMU start, TCG)",
        ready.as_secs_f64(),
        networked.as_secs_f64(),
        ssh_time.as_secs_f64()
    );
    // The banner shows the host, the build date and the address.
    vm.send("rear-restore banner; echo BANNER-$((6*7))");
    let out = vm.expect("BANNER-42\n", Duration::from_secs(30));
    assert!(out.contains("Relax-and-Recover rescue system of"), "{out}");
    assert!(out.contains("image built 2023-11-14 22:13 UTC"), "{out}");
    assert!(out.contains("eth0: 10.0.2.15/24"), "{out}");
    assert!(out.contains("ssh root@10.0.2.15"), "{out}");
    // Name resolution was written from the lease.
    vm.send("cat /etc/resolv.conf; echo RESOLV-$((6*7))");
    let out = vm.expect("RESOLV-42\n", Duration::from_secs(30));
    assert!(out.contains("nameserver 10.0.2.3"), "{out}");
    vm.send("poweroff");
    let status = vm.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "QEMU exit status {status}");
}

/// `ip=` in the kernel's format instead of DHCP: the address, the default route and the DNS
/// server come from the command line, configured through netlink; ssh reaches it.
#[test]
fn static_ip_from_kernel_cmdline() {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = key_pair(tmp.path());
    let out = tmp.path().join("out");
    let (kernel, initrd, release) = build_initrd(
        &out,
        &[
            "--recipe",
            "ssh",
            "--ssh-authorized-keys",
            public.to_str().unwrap(),
        ],
    );
    let port = free_port();
    let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:22");
    let mut args = kernel_args(
        &kernel,
        &initrd,
        "rear.net=static ip=10.0.2.15::10.0.2.2:255.255.255.0:rescue1:eth0:off:10.0.2.3",
        false,
    );
    args.extend([
        "-netdev".into(),
        netdev,
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ]);
    let mut vm = Vm::start("network_static_ip", &args);
    vm.expect(
        &format!("rear rescue ready {release}"),
        Duration::from_secs(120),
    );
    let seen = vm.expect("rear: network ready: ", Duration::from_secs(60));
    let line = vm.expect("\n", Duration::from_secs(5));
    assert!(
        line.contains("eth0 10.0.2.15/24 (ip=)"),
        "static address not on the console:\n{seen}{line}"
    );
    // Default route via 10.0.2.2 (0202000A in /proc/net/route), the DNS server, the name.
    let out = ssh_until(
        port,
        &key,
        "cat /proc/net/route /etc/resolv.conf /proc/sys/kernel/hostname",
        Instant::now() + Duration::from_secs(120),
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("eth0\t00000000\t0202000A")),
        "no default route via 10.0.2.2:\n{out}"
    );
    assert!(out.contains("nameserver 10.0.2.3"), "{out}");
    assert!(out.trim_end().ends_with("rescue1"), "{out}");
    vm.send("poweroff");
    let status = vm.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "QEMU exit status {status}");
}

#[test]
fn three_disks_virtio_nvme_ahci() {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (kernel, initrd, release) = build_initrd(&out, &["--net", "none"]);
    let mut drives = Vec::new();
    for name in ["virtio", "nvme", "ahci"] {
        let disk = tmp.path().join(format!("{name}.img"));
        std::fs::File::create(&disk)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        drives.push(disk.display().to_string());
    }
    let virtio = format!("file={},if=virtio,format=raw", drives[0]);
    let nvme = format!("file={},if=none,id=d1,format=raw", drives[1]);
    let ahci = format!("file={},if=none,id=d2,format=raw", drives[2]);
    let mut args = kernel_args(&kernel, &initrd, "", true);
    args.extend([
        "-drive".into(),
        virtio,
        "-drive".into(),
        nvme,
        "-device".into(),
        "nvme,drive=d1,serial=rear1".into(),
        "-device".into(),
        "ahci,id=ahci".into(),
        "-drive".into(),
        ahci,
        "-device".into(),
        "ide-hd,drive=d2,bus=ahci.0".into(),
    ]);
    let mut vm = Vm::start("three_disks", &args);
    vm.expect(
        &format!("rear rescue ready {release}"),
        Duration::from_secs(120),
    );
    vm.expect("RESCUE", Duration::from_secs(30));
    // Probing the disks may finish a little after the ready line: wait for all three.
    vm.send(
        "for i in $(seq 100); do [ -b /dev/vda ] && [ -b /dev/nvme0n1 ] && [ -b /dev/sda ] && break; sleep 0.1; done; lsblk -dn -o NAME,SIZE | sed 's/^/DISK:/'; echo DISKS-$((6*7))",
    );
    let out = vm.expect("DISKS-42\n", Duration::from_secs(60));
    for disk in ["vda", "nvme0n1", "sda"] {
        assert!(
            out.contains(&format!("DISK:{disk} ")),
            "{disk} not listed by lsblk:\n{out}"
        );
    }
    vm.send("poweroff");
    let status = vm.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "QEMU exit status {status}");
}
