//! The initrd of this machine boots: kernel + initrd under QEMU reach `rear rescue ready`,
//! the shell runs commands, a virtio disk appears (modules were loaded), `poweroff` ends QEMU.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::qemu::{Vm, kernel_args};

/// Builds kernel + initrd of the machine running the test into `out`; returns
/// (kernel, initrd, release). Without `--layout` in `extra` the image has none (`--layout
/// none`): these tests boot the rescue system, and the disks of the machine running them are
/// not what they test (on the current test machines they cannot even be probed).
pub fn build_initrd(
    out: &Path,
    extra: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let mut cmd = Command::new(crate::bin("rear-mkimage"));
    cmd.args(["--output", "initrd", "--out"])
        .arg(out)
        .arg("--init")
        .arg(crate::bin("rear-restore"))
        .args(extra);
    if !extra.contains(&"--layout") {
        cmd.args(["--layout", "none"]);
    }
    let status = cmd.env("SOURCE_DATE_EPOCH", "1700000000").status().unwrap();
    assert!(status.success(), "rear-mkimage failed");
    let mut kernel = None;
    let mut initrd = None;
    for e in std::fs::read_dir(out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("vmlinuz-") {
            kernel = Some(p);
        } else if name.starts_with("initrd-") && name.ends_with(".img") {
            initrd = Some(p);
        }
    }
    let kernel = kernel.expect("no vmlinuz-* written");
    let release = kernel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    (kernel, initrd.expect("no initrd-*.img written"), release)
}

#[test]
fn boot_initrd_reaches_ready_shell_and_disk() {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (kernel, initrd, release) = build_initrd(tmp.path(), &[]);
    let disk = tmp.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let drive = format!("file={},if=virtio,format=raw", disk.display());
    let mut args = kernel_args(&kernel, &initrd, "", true);
    args.extend(["-drive".into(), drive]);
    let mut vm = Vm::start("boot_initrd", &args);
    vm.expect(
        &format!("rear rescue ready {release}"),
        Duration::from_secs(120),
    );
    vm.expect("RESCUE", Duration::from_secs(30));
    // Job control: a background job is listed, no "job control turned off" complaint.
    vm.send("sleep 30 & jobs; echo JOBS-\"DONE\"");
    let out = vm.expect("JOBS-DONE\n", Duration::from_secs(30));
    assert!(out.contains("Running"), "job not listed:\n{out}");
    assert!(
        !out.contains("job control turned off") && !out.contains("no job control"),
        "{out}"
    );
    vm.send("ls /lib/modules; lsblk -dn -o NAME; echo MARK-$((6*7))");
    let out = vm.expect("MARK-42\n", Duration::from_secs(30));
    assert!(
        out.contains(&release),
        "/lib/modules listing lacks {release}:\n{out}"
    );
    assert!(
        out.contains("vda"),
        "virtio disk vda not shown by lsblk:\n{out}"
    );
    vm.send("poweroff");
    let status = vm.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "QEMU exit status {status}");
}
