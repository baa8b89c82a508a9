//! `rear_mkimage::media::verify::boot_check`, the check behind `rear-mkimage verify --boot`: a good
//! kernel + initrd pair passes (BIOS and UEFI); a broken initrd fails in bounded time with
//! console lines in the error.

use std::time::{Duration, Instant};

use rear_mkimage::media::qemu::Firmware;
use rear_mkimage::media::verify::{BootOptions, Error, boot_check};

use crate::boot::build_initrd;

const CMDLINE: &str = "console=ttyS0,115200n8 panic=5 norandmaps";

fn check(firmware: Firmware) {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (kernel, initrd, release) = build_initrd(tmp.path(), &[]);
    let opts = BootOptions {
        kernel: Some(kernel),
        firmware,
        cmdline: CMDLINE.into(),
        console_log: Some(tmp.path().join("console.log")),
        ..BootOptions::default()
    };
    let report = boot_check(&initrd, &opts).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "verify_boot ({firmware}, {}): ready after {:.1} s, ended after {:.1} s",
        report.accel,
        report.ready_after.as_secs_f64(),
        report.total.as_secs_f64()
    );
    assert_eq!(report.release, release);
    // The shell prompt was seen and `poweroff` typed at once (not after the prompt wait).
    assert!(
        report.total - report.ready_after < Duration::from_secs(25),
        "power-off took {:?}",
        report.total - report.ready_after
    );
    let log = std::fs::read_to_string(tmp.path().join("console.log")).unwrap();
    assert!(log.contains("rear rescue ready"), "console log:\n{log}");
}

#[test]
fn verify_boot_kernel_initrd_bios() {
    check(Firmware::Bios);
}

#[test]
fn verify_boot_kernel_initrd_uefi() {
    check(Firmware::Uefi);
}

#[test]
fn verify_boot_broken_initrd_fails_with_console() {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (kernel, _, _) = build_initrd(tmp.path(), &[]);
    let broken = tmp.path().join("broken.img");
    std::fs::write(&broken, [0x5a, 0x17, 0xc3, 0x00, 0x9e, 0x42, 0xff, 0x01]).unwrap();
    let opts = BootOptions {
        kernel: Some(kernel),
        cmdline: CMDLINE.into(),
        timeout: Duration::from_secs(60),
        ..BootOptions::default()
    };
    let start = Instant::now();
    let e = boot_check(&broken, &opts).expect_err("a broken initrd passed the boot check");
    let elapsed = start.elapsed();
    eprintln!(
        "broken initrd failed after {:.1} s: {e}",
        elapsed.as_secs_f64()
    );
    assert!(elapsed < Duration::from_secs(90), "took {elapsed:?}");
    assert!(matches!(e, Error::NotReady { .. }), "{e}");
    let text = e.to_string();
    assert!(text.starts_with(&broken.display().to_string()), "{text}");
    assert!(
        text.contains("last console lines:\n") && text.contains("Kernel panic"),
        "{text}"
    );
}
