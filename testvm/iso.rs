//! The hybrid ISO boots: from CD and from disk, with SeaBIOS (ISOLINUX) and with OVMF (GRUB),
//! each time reaching `rear rescue ready` through the menu's default entry after its timeout.
//! With shim + signed GRUB (installed, or unpacked under `REAR_SIGNED_ROOT`) it also boots
//! under Secure Boot (OVMF with Microsoft keys).
//!
//! The initrd comes from `rear-mkimage --output initrd` (as in `boot.rs`); the ISO is made
//! from it by the library's `media::iso::write_iso`, once for all four boots.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rear_mkimage::media::MediaInput;
use rear_mkimage::media::bootfiles::{self, EfiLoader};
use rear_mkimage::media::iso::Backend;
use rear_sys::sysroot::Sysroot;

use crate::qemu::{Vm, pflash_args};

/// The kernel command line of the default entry in these tests.
const CMDLINE: &str = "console=tty0 console=ttyS0,115200n8 panic=5 norandmaps";

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Secure Boot: the SMM build of OVMF and variables with Secure Boot on and Microsoft's keys.
const OVMF_CODE_SB: &str = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd";
const OVMF_VARS_SB: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// Kernel and initrd of this machine, built once.
struct Rescue {
    _dir: tempfile::TempDir,
    kernel: Vec<u8>,
    initrd: Vec<u8>,
    release: String,
}

fn rescue() -> &'static Rescue {
    static RESCUE: OnceLock<Rescue> = OnceLock::new();
    RESCUE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (kernel, initrd, release) = crate::boot::build_initrd(dir.path(), &[]);
        Rescue {
            kernel: std::fs::read(kernel).unwrap(),
            initrd: std::fs::read(initrd).unwrap(),
            release,
            _dir: dir,
        }
    })
}

/// An ISO made by the library, in its own directory.
struct Built {
    _dir: tempfile::TempDir,
    iso: PathBuf,
    release: String,
}

/// Makes the ISO of [`rescue`] with the boot loaders of `sys`.
fn make_iso(sys: &Sysroot, backend: Backend) -> Built {
    let r = rescue();
    let input = MediaInput {
        hostname: "vmtest",
        release: &r.release,
        kernel: &r.kernel,
        initrd: &r.initrd,
        cmdline: CMDLINE.to_string(),
        boot_timeout: 1,
        epoch: 1_700_000_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("rear-vmtest.iso");
    let mut file = std::fs::File::create(&iso).unwrap();
    let started = Instant::now();
    let report = rear_mkimage::media::iso::write_iso_with(sys, &input, backend, &mut file).unwrap();
    eprintln!(
        "ISO ({:?}) {} bytes, ESP {} bytes, EFI loader {}, written in {:.2} s",
        report.backend,
        report.size,
        report.esp_size,
        report.efi_loader,
        started.elapsed().as_secs_f64()
    );
    Built {
        _dir: dir,
        iso,
        release: r.release.clone(),
    }
}

/// The ISO of the host's boot loaders, made once for the boot matrix.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| make_iso(&Sysroot::host(), Backend::Hadris))
}

/// One boot at a time: these machines have few CPUs and TCG is slow, so parallel guests
/// only make each boot's time meaningless.
fn serial_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Firmware {
    SeaBios,
    Ovmf,
    /// OVMF with Secure Boot enforced.
    OvmfSecureBoot,
}

#[derive(Clone, Copy)]
enum Medium {
    Cd,
    Disk,
}

/// Boots the ISO, waits for the rescue system, checks that the default entry's command line
/// was used, and powers off. Prints the time from QEMU start to `rear rescue ready`.
fn boot(name: &str, b: &Built, firmware: Firmware, medium: Medium) {
    let _one = serial_lock();
    let scratch = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = ["-m", "1024", "-nic", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The guest may write to a disk: give it a copy so the tests do not share one image.
    let image = match medium {
        Medium::Cd => b.iso.clone(),
        Medium::Disk => {
            let copy = scratch.path().join("disk.img");
            std::fs::copy(&b.iso, &copy).unwrap();
            copy
        }
    };
    match medium {
        Medium::Cd => args.extend(["-cdrom".into(), image.display().to_string()]),
        Medium::Disk => args.extend([
            "-drive".into(),
            format!("file={},format=raw,if=virtio", image.display()),
        ]),
    }
    let ovmf = match firmware {
        Firmware::SeaBios => None,
        Firmware::Ovmf => Some((OVMF_CODE, OVMF_VARS)),
        Firmware::OvmfSecureBoot => {
            // The Secure Boot build of OVMF needs SMM, which needs the q35 machine.
            args.extend([
                "-machine".into(),
                "q35,smm=on".into(),
                "-global".into(),
                "driver=cfi.pflash01,property=secure,value=on".into(),
            ]);
            Some((OVMF_CODE_SB, OVMF_VARS_SB))
        }
    };
    if let Some((code, vars_template)) = ovmf {
        args.extend(pflash_args(code, vars_template, scratch.path()));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let mut vm = Vm::start(name, &argv);
    // The loader's menu shows first, then boots its default entry by itself.
    match firmware {
        Firmware::SeaBios => vm.expect("ISOLINUX", Duration::from_secs(120)),
        Firmware::Ovmf | Firmware::OvmfSecureBoot => {
            vm.expect("Recover vmtest", Duration::from_secs(180))
        }
    };
    if firmware == Firmware::OvmfSecureBoot {
        // The kernel says so when the firmware enforces Secure Boot.
        vm.expect("Secure boot enabled", Duration::from_secs(120));
    }
    vm.expect(
        &format!("rear rescue ready {}", b.release),
        Duration::from_secs(240),
    );
    let ready = started.elapsed();
    vm.expect("RESCUE", Duration::from_secs(30));
    vm.send("cat /proc/cmdline; echo CMDLINE-\"DONE\"");
    let out = vm.expect("CMDLINE-DONE\n", Duration::from_secs(30));
    assert!(
        out.contains(CMDLINE),
        "default entry's command line not used:\n{out}"
    );
    assert!(!out.contains("rear.auto"), "not the default entry:\n{out}");
    vm.send("poweroff");
    let status = vm.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "QEMU exit status {status}");
    eprintln!(
        "{name}: rear rescue ready after {:.1} s",
        ready.as_secs_f64()
    );
}

/// Boots the host-loader ISO (skips without QEMU).
fn boot_host_iso(name: &str, firmware: Firmware, medium: Medium) {
    if crate::preflight() {
        boot(name, built(), firmware, medium);
    }
}

#[test]
fn iso_cd_seabios() {
    boot_host_iso("iso_cd_seabios", Firmware::SeaBios, Medium::Cd);
}

#[test]
fn iso_disk_seabios() {
    boot_host_iso("iso_disk_seabios", Firmware::SeaBios, Medium::Disk);
}

#[test]
fn iso_cd_ovmf() {
    boot_host_iso("iso_cd_ovmf", Firmware::Ovmf, Medium::Cd);
}

#[test]
fn iso_disk_ovmf() {
    boot_host_iso("iso_disk_ovmf", Firmware::Ovmf, Medium::Disk);
}

/// The fallback writer's ISO (`xorriso -as mkisofs`) boots as a disk, the case where the two
/// writers' partition tables differ most, with SeaBIOS and with OVMF.
#[test]
fn iso_xorriso_backend_disk() {
    if !crate::preflight() {
        return;
    }
    let b = make_iso(&Sysroot::host(), Backend::Xorriso);
    boot(
        "iso_xorriso_disk_seabios",
        &b,
        Firmware::SeaBios,
        Medium::Disk,
    );
    boot("iso_xorriso_disk_ovmf", &b, Firmware::Ovmf, Medium::Disk);
}

/// A sysroot with shim + signed GRUB: the host if it has them, else the host's ISOLINUX
/// files plus shim and GRUB from `REAR_SIGNED_ROOT` (the unpacked Debian packages
/// shim-signed and grub-efi-amd64-signed: `dpkg-deb -x PKG.deb DIR`).
fn signed_sysroot() -> Option<(Option<tempfile::TempDir>, Sysroot)> {
    let host = Sysroot::host();
    if let Ok(EfiLoader::Signed { .. }) = bootfiles::efi_loader(&host) {
        return Some((None, host));
    }
    let signed = PathBuf::from(std::env::var_os("REAR_SIGNED_ROOT")?);
    let dir = tempfile::tempdir().unwrap();
    let copy = |from_root: &Path, path: &str| {
        let to = dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let from = from_root.join(path.trim_start_matches('/'));
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    let bios = bootfiles::bios_files(&host).unwrap();
    let isolinux_dir = bios.source.parent().unwrap().to_path_buf();
    copy(
        Path::new("/"),
        &isolinux_dir.join("isolinux.bin").to_string_lossy(),
    );
    copy(
        Path::new("/"),
        &isolinux_dir.join("isohdpfx.bin").to_string_lossy(),
    );
    for m in ["ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"] {
        copy(
            Path::new("/"),
            &format!("/usr/lib/syslinux/modules/bios/{m}"),
        );
    }
    copy(Path::new("/"), "/etc/os-release");
    copy(&signed, "/usr/lib/shim/shimx64.efi.signed");
    copy(
        &signed,
        "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
    );
    let sys = Sysroot::new(dir.path()).unwrap();
    Some((Some(dir), sys))
}

/// Secure Boot: shim (signed by Microsoft) -> GRUB (signed by the distribution) -> the
/// distribution's signed kernel, under OVMF enforcing Secure Boot, from CD and from disk.
#[test]
fn iso_secure_boot_ovmf() {
    if !crate::preflight() {
        return;
    }
    let Some((_keep, sys)) = signed_sysroot() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no shim + signed GRUB: `make vmtest` unpacks them into target/signed/root"
        );
        eprintln!(
            "skipping: no shim + signed GRUB on the host (Debian: shim-signed, grub-efi-amd64-signed) and REAR_SIGNED_ROOT unset"
        );
        return;
    };
    let b = make_iso(&sys, Backend::Hadris);
    boot(
        "iso_cd_ovmf_secure_boot",
        &b,
        Firmware::OvmfSecureBoot,
        Medium::Cd,
    );
    boot(
        "iso_disk_ovmf_secure_boot",
        &b,
        Firmware::OvmfSecureBoot,
        Medium::Disk,
    );
}

/// The real ISO (host ISOLINUX and GRUB): both El Torito entries and the hybrid MBR/GPT as
/// xorriso reports them, and an ESP that `fsck.fat -n` accepts.
#[test]
fn iso_structure() {
    if !crate::preflight() {
        return;
    }
    let b = built();
    let out = std::process::Command::new("xorriso")
        .arg("-indev")
        .arg(&b.iso)
        .args(["-report_el_torito", "plain", "-report_system_area", "plain"])
        .output()
        .expect("xorriso (install the Debian package xorriso)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let has = |prefix: &str, rest: &str| {
        text.lines().any(|l| {
            l.starts_with(prefix)
                && l.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .contains(rest)
        })
    };
    assert!(
        has("El Torito boot img :", "1 BIOS y none 0x0000 0x00 4"),
        "{text}"
    );
    assert!(has("El Torito boot img :", "2 UEFI y none"), "{text}");
    assert!(has("El Torito img opts :", "1 boot-info-table"), "{text}");
    assert!(has("System area summary:", "GPT"), "{text}");
    assert!(has("MBR partition path :", "/boot/efi.img"), "{text}");
    assert!(has("GPT partition path :", "/boot/efi.img"), "{text}");
    assert!(
        has("GPT type GUID      :", "28732ac11ff8d211ba4b00a0c93ec93b"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let esp = dir.path().join("efi.img");
    let status = std::process::Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&b.iso)
        .args(["-extract", "/boot/efi.img"])
        .arg(&esp)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = std::process::Command::new("fsck.fat")
        .arg("-n")
        .arg(&esp)
        .output()
        .expect("fsck.fat (install the Debian package dosfstools)");
    assert!(
        out.status.success(),
        "fsck.fat -n {}:\n{}{}",
        esp.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
