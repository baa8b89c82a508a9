//! The PXE tree boots over the network: QEMU's built-in DHCP/TFTP server (`-netdev user,tftp=`)
//! serves the tree written by `rear_mkimage::media::pxe::write_pxe_tree`; SeaBIOS runs QEMU's iPXE
//! option ROM, which loads `<host>.ipxe` (and through it kernel and initrd by relative URL),
//! or `pxelinux.0`, which finds `pxelinux.cfg/01-<mac>`. Both reach `rear rescue ready`.

use std::path::Path;
use std::time::{Duration, Instant};

use rear_mkimage::media::MediaInput;
use rear_mkimage::media::pxe::write_pxe_tree;

use crate::boot::build_initrd;
use crate::qemu::Vm;

const HOST: &str = "pxetest";
/// QEMU's default MAC for the first NIC.
const MAC: &str = "52:54:00:12:34:56";

/// Builds kernel + initrd and writes the PXE tree of [`HOST`] into `tftp`; returns the release.
fn pxe_tree(work: &Path, tftp: &Path) -> String {
    let (kernel, initrd, release) = build_initrd(work, &[]);
    let kernel = std::fs::read(kernel).unwrap();
    let initrd = std::fs::read(initrd).unwrap();
    let input = MediaInput {
        hostname: HOST,
        release: &release,
        kernel: &kernel,
        initrd: &initrd,
        cmdline: "console=ttyS0,115200n8 panic=5 norandmaps".into(),
        boot_timeout: 1,
        epoch: 1_700_000_000,
    };
    write_pxe_tree(&input, &[MAC.to_string()], tftp).unwrap();
    release
}

fn boot(name: &str, tftp: &Path, bootfile: &str, release: &str) {
    let netdev = format!("user,id=n0,tftp={},bootfile={bootfile}", tftp.display());
    let start = Instant::now();
    let mut vm = Vm::start(
        name,
        &[
            "-m",
            "1024",
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-pci,netdev=n0",
            "-boot",
            "n",
        ],
    );
    vm.expect(
        &format!("rear rescue ready {release}"),
        Duration::from_secs(300),
    );
    eprintln!(
        "{name}: rescue system ready after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    vm.expect("RESCUE ", Duration::from_secs(30));
    vm.send("cat /proc/cmdline; echo CMD-$((6*7))");
    let out = vm.expect("CMD-42\n", Duration::from_secs(30));
    assert!(out.contains("norandmaps"), "kernel command line:\n{out}");
    vm.send("poweroff");
    let status = vm.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "QEMU exit status {status}");
}

#[test]
fn pxe_ipxe_boots_over_tftp() {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tftp = tmp.path().join("tftp");
    let release = pxe_tree(tmp.path(), &tftp);
    boot("pxe_ipxe", &tftp, &format!("{HOST}.ipxe"), &release);
}

#[test]
fn pxe_pxelinux_boots_over_tftp() {
    if !crate::preflight() {
        return;
    }
    let pxelinux = Path::new("/usr/lib/PXELINUX/pxelinux.0");
    let modules = Path::new("/usr/lib/syslinux/modules/bios");
    let tmp = tempfile::tempdir().unwrap();
    let tftp = tmp.path().join("tftp");
    let release = pxe_tree(tmp.path(), &tftp);
    std::fs::copy(pxelinux, tftp.join("pxelinux.0")).unwrap();
    for m in ["ldlinux.c32", "menu.c32", "libutil.c32"] {
        std::fs::copy(modules.join(m), tftp.join(m)).unwrap();
    }
    boot("pxe_pxelinux", &tftp, "pxelinux.0", &release);
}
