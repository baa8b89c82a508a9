//! The proof: a full bare-metal recovery in QEMU.
//!
//! 1. A real Debian system ([`sysimage`]) boots; inside it `rear-mkimage --output iso --backup`
//!    writes the rescue ISO to a second disk and the backup either beside it
//!    (`--backup-url file:///backup`) or into the ISO (`--backup-url iso`).
//! 2. The system disk is replaced by a blank one; the ISO boots with `rear.auto`, recreates
//!    the layout, restores the backup (from the second disk, or from the ISO it booted from,
//!    with no other disk attached), reinstalls the boot loader and reboots.
//! 3. The recovered disk boots alone: the marker files' SHA-256, hard link, symlink, sparse
//!    size and xattr are intact, `/` and `/boot/efi` are the saved UUIDs, the host name is
//!    right ([`sysimage::check_booted`]).
//!
//! Each phase's time goes to the test log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rear_mkimage::media::qemu::Firmware;

use crate::qemu::{Vm, pflash_args};
use crate::sysimage::{self, READY, Variant};

/// Where the recovered system lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A blank virtio disk of the source's size.
    SameVirtio,
    /// A blank, larger NVMe disk.
    LargerNvme,
}

/// Where the backup goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackupTo {
    /// `file:///backup`, a second disk that stays attached for the recovery.
    Disk,
    /// `iso`: inside the rescue ISO, the only medium besides the blank disk at recovery.
    Iso,
}

/// Size of the source disk (testvm/sysimage/build.sh).
const SOURCE_SIZE: u64 = 3 << 30;

/// Times of the phases, printed at the end.
struct Phases {
    name: String,
    start: Instant,
    last: Instant,
    done: Vec<(String, f64)>,
}

impl Phases {
    fn new(name: &str) -> Phases {
        let now = Instant::now();
        Phases {
            name: name.into(),
            start: now,
            last: now,
            done: Vec::new(),
        }
    }

    fn mark(&mut self, phase: &str) {
        let now = Instant::now();
        let secs = (now - self.last).as_secs_f64();
        eprintln!("{}: phase {phase}: {secs:.1} s", self.name);
        self.done.push((phase.into(), secs));
        self.last = now;
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        let list: Vec<String> = self
            .done
            .iter()
            .map(|(p, s)| format!("{p} {s:.0} s"))
            .collect();
        eprintln!(
            "{}: {} (total {:.0} s)",
            self.name,
            list.join(", "),
            self.start.elapsed().as_secs_f64()
        );
    }
}

/// A raw blank disk file of `size` bytes (sparse).
fn blank(path: &Path, size: u64) -> PathBuf {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
    path.to_path_buf()
}

fn firmware_args(fw: Firmware, scratch: &Path) -> Vec<String> {
    match fw {
        Firmware::Uefi => pflash_args(
            rear_mkimage::media::qemu::OVMF_CODE,
            rear_mkimage::media::qemu::OVMF_VARS,
            scratch,
        ),
        Firmware::Bios => Vec::new(),
    }
}

fn drive(args: &mut Vec<String>, file: &Path, id: &str, nvme: bool) {
    let format = if file.extension().is_some_and(|e| e == "qcow2") {
        "qcow2"
    } else {
        "raw"
    };
    args.push("-drive".into());
    args.push(format!(
        "file={},if=none,id={id},format={format}",
        file.display()
    ));
    args.push("-device".into());
    args.push(if nvme {
        format!("nvme,drive={id},serial=E2E-NEW-NVME")
    } else {
        format!("virtio-blk-pci,drive={id}")
    });
}

fn base_args() -> Vec<String> {
    // No VGA: serial consoles only; the DRM driver costs seconds under TCG.
    ["-m", "1536", "-nic", "none", "-vga", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn recover(variant: Variant, source_fw: Firmware, target: Target, to: BackupTo) {
    if !crate::preflight() {
        return;
    }
    let name = format!(
        "e2e_{}_{}_{}",
        variant.name(),
        match source_fw {
            Firmware::Bios => "seabios",
            Firmware::Uefi => "ovmf",
        },
        match target {
            Target::SameVirtio => "same-virtio",
            Target::LargerNvme => "larger-nvme",
        }
    );
    let (url, layout) = match to {
        BackupTo::Disk => ("file:///backup", ""),
        // The layout is saved before the ISO's disk is mounted: that disk is not the
        // system's and no backup on it tells the build to leave it out.
        BackupTo::Iso => ("iso", "--layout /root/layout.json"),
    };
    let mut t = Phases::new(&name);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let source = sysimage::source_disk(variant, dir);
    let tools = crate::tools_disk(dir, |_| {});
    let backup = blank(&dir.join("backup.img"), 4 << 30);
    t.mark("prepare");

    // 1. The source system makes its rescue ISO and backup.
    {
        let scratch = dir.join("fw-source");
        std::fs::create_dir_all(&scratch).unwrap();
        let mut args = base_args();
        drive(&mut args, &source, "src", false);
        drive(&mut args, &tools, "tools", false);
        drive(&mut args, &backup, "backup", false);
        args.extend(firmware_args(source_fw, &scratch));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut vm = Vm::start(&format!("{name}_source"), &argv);
        vm.expect(READY, Duration::from_secs(400));
        t.mark("boot source");
        let (out, rc) = vm.sh(
            1,
            &format!(
                "dmesg -n 1; mkdir -p /mnt/tools /backup && mount -o ro /dev/vdb /mnt/tools && \
                 cp /mnt/tools/rear-mkimage /mnt/tools/rear-restore /usr/local/sbin/ && \
                 umount /mnt/tools && {} mkfs.ext4 -q -L BACKUP /dev/vdc && mount /dev/vdc /backup",
                if to == BackupTo::Iso {
                    "rear-mkimage layout save --out /root/layout.json &&"
                } else {
                    ""
                }
            ),
            Duration::from_secs(120),
        );
        assert_eq!(rc, 0, "{out}");
        let (out, rc) = vm.sh(
            2,
            &format!(
                "rear-mkimage --output iso --out /backup --init /usr/local/sbin/rear-restore \
                 --backup --backup-url {url} {layout} --ssh off --net none --boot-timeout 1 \
                 --kernel-cmdline 'rear.auto norandmaps'"
            ),
            Duration::from_secs(1500),
        );
        assert_eq!(rc, 0, "rear-mkimage in the source system failed:\n{out}");
        t.mark(&format!(
            "rear-mkimage --output iso --backup --backup-url {url}"
        ));
        let (out, rc) = vm.sh(3, "ls -l /backup; umount /backup", Duration::from_secs(60));
        assert_eq!(rc, 0, "{out}");
        vm.send("poweroff");
        assert!(vm.wait_exit(Duration::from_secs(120)).success());
    }
    // The ISO, read from the backup disk's ext4 without mounting it.
    let iso = dir.join("rescue.iso");
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("dump /rear-rear-e2e.iso {}", iso.display()))
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        iso.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false),
        "no ISO on the backup disk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.mark("fetch ISO");

    // 2. Disaster: a blank disk instead of the source; the ISO recovers automatically.
    let (new_disk, nvme) = match target {
        Target::SameVirtio => (blank(&dir.join("new.img"), SOURCE_SIZE), false),
        Target::LargerNvme => (blank(&dir.join("new.img"), SOURCE_SIZE + (1 << 30)), true),
    };
    let scratch = dir.join("fw-recover");
    std::fs::create_dir_all(&scratch).unwrap();
    {
        let mut args = base_args();
        drive(&mut args, &new_disk, "new", nvme);
        if to == BackupTo::Disk {
            drive(&mut args, &backup, "backup", false);
        }
        args.extend(["-cdrom".into(), iso.display().to_string()]);
        args.extend(["-boot".into(), "order=d".into()]);
        args.extend(firmware_args(source_fw, &scratch));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut vm = Vm::start(&format!("{name}_recover"), &argv);
        vm.expect("rear rescue ready", Duration::from_secs(300));
        t.mark("boot rescue ISO");
        let out = vm.expect("rear: recover: layout recreated", Duration::from_secs(600));
        if to == BackupTo::Iso {
            // Found on the boot medium, by the ISO's label: no other disk is attached.
            assert!(
                out.contains("rear: recover: backup found in /run/rear/backup/rear"),
                "{out}"
            );
        }
        t.mark("layout apply");
        vm.expect("rear: recover: restored", Duration::from_secs(1800));
        t.mark("restore");
        vm.expect("rear: recover: finished", Duration::from_secs(1200));
        t.mark("finalize");
        // rear.auto reboots; -no-reboot turns that into QEMU's exit.
        assert!(vm.wait_exit(Duration::from_secs(180)).success());
    }

    // 3. The recovered system boots by itself.
    {
        let mut args = base_args();
        drive(&mut args, &new_disk, "new", nvme);
        args.extend(firmware_args(source_fw, &scratch));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut vm = Vm::start(&format!("{name}_recovered"), &argv);
        vm.expect(READY, Duration::from_secs(400));
        t.mark("boot recovered system");
        sysimage::check_booted(&mut vm, variant, source_fw);
        let (out, rc) = vm.sh(
            4,
            "hostname; findmnt --verify --tab-file /etc/fstab && echo FSTAB-OK; \
             ls /var/log/rear/",
            Duration::from_secs(60),
        );
        assert_eq!(rc, 0, "{out}");
        assert!(out.contains("rear-e2e\n"), "host name:\n{out}");
        assert!(out.contains("FSTAB-OK"), "fstab:\n{out}");
        assert!(
            out.contains("recover.log"),
            "recovery log not copied:\n{out}"
        );
        t.mark("check");
        vm.send("poweroff");
        assert!(vm.wait_exit(Duration::from_secs(120)).success());
    }
}

#[test]
fn e2e_plain_ovmf_onto_same_virtio_disk() {
    recover(
        Variant::Plain,
        Firmware::Uefi,
        Target::SameVirtio,
        BackupTo::Disk,
    );
}

#[test]
fn e2e_lvm_seabios_onto_larger_nvme_disk_backup_in_iso() {
    recover(
        Variant::Lvm,
        Firmware::Bios,
        Target::LargerNvme,
        BackupTo::Iso,
    );
}
