//! Test helpers for the media writers: a [`MediaInput`] and a sysroot with stand-in boot
//! files (Debian layout, signed shim + GRUB, so no tool runs): enough to lay out and write an
//! ISO, not to boot it.

use std::path::Path;

use crate::media::MediaInput;
use rear_sys::sysroot::Sysroot;

/// The input every media unit test uses: host `db1`, a 5 s menu, a fixed epoch.
pub fn input<'a>(kernel: &'a [u8], initrd: &'a [u8]) -> MediaInput<'a> {
    MediaInput {
        hostname: "db1",
        release: "6.1.0-9-amd64",
        kernel,
        initrd,
        cmdline: "console=tty0 console=ttyS0,115200n8".into(),
        boot_timeout: 5,
        epoch: 1_700_000_000,
    }
}

/// Writes `bytes` at the absolute `path` below `root`, creating directories.
pub fn put(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A sysroot with stand-in ISOLINUX, SYSLINUX modules and signed shim + GRUB.
pub fn fake_boot_sysroot() -> (tempfile::TempDir, Sysroot) {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    put(r, "/usr/lib/ISOLINUX/isolinux.bin", &[0x90; 2048]);
    put(r, "/usr/lib/ISOLINUX/isohdpfx.bin", &[0x33; 432]);
    for m in ["ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"] {
        put(
            r,
            &format!("/usr/lib/syslinux/modules/bios/{m}"),
            m.as_bytes(),
        );
    }
    put(r, "/usr/lib/shim/shimx64.efi.signed", &[b'S'; 5000]);
    put(
        r,
        "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
        &[b'G'; 9000],
    );
    put(r, "/etc/os-release", b"ID=debian\n");
    let sys = Sysroot::new(r).unwrap();
    (dir, sys)
}
