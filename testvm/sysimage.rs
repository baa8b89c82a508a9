//! A real Debian "source system" for the end-to-end recovery tests (`e2e.rs` boots it, recovers it
//! and boots the result).
//!
//! [`source_disk`] hands out a private qcow2 overlay of a cached disk image: Debian bookworm
//! (minbase + kernel, systemd, udev, GRUB for BIOS and UEFI, LVM and the tools rear-mkimage
//! needs) on a GPT disk with a BIOS boot partition, an ESP and an ext4 root ([`Variant::Plain`])
//! or ESP, ext4 `/boot` and root on LVM ([`Variant::Lvm`]), with `/srv/marker` holding files
//! of known SHA-256 (a hard link, a symlink, a sparse file, a file with a `user.` xattr).
//!
//! The images are built once per machine into `target/e2e-cache/sysimage-<key>/` (or
//! `$REAR_E2E_CACHE`), where `<key>` hashes `sysimage/build.sh` and `sysimage/assemble.sh`:
//! 1. `build.sh rootfs`: debootstrap from the mirror in the host's apt sources, `apt-get
//!    install` in a chroot, configuration (serial autologin, GRUB defaults, marker files);
//! 2. `build.sh disk`: GPT made by sfdisk on a plain file, ext4 (`mkfs.ext4 -d`) and FAT file
//!    systems made on the host and written at their partition offsets;
//! 3. `assemble.sh` in this project's rescue system under QEMU (loop devices have no partition
//!    nodes here): LVM for that variant, then `grub-install` for i386-pc and x86_64-efi and
//!    `update-grub` in a chroot of the new root, as an installer does.
//!
//! Each phase's duration goes to the test log. A cross-process lock on the cache directory
//! lets concurrent test binaries wait for one build.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rear_mkimage::media::qemu::Firmware;
use sha2::{Digest, Sha256};

use crate::boot::build_initrd;
use crate::qemu::Vm;

/// The two source systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// BIOS boot, ESP (`/boot/efi`), ext4 root on `/dev/vda3`.
    Plain,
    /// BIOS boot, ESP, ext4 `/boot` on `/dev/vda3`, PV `/dev/vda4` with VG `e2evg`, LV `root`.
    Lvm,
}

impl Variant {
    /// The name used by the scripts and for the image file.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Lvm => "lvm",
        }
    }

    /// UUID of the root file system (fixed in build.sh).
    pub fn root_uuid(self) -> &'static str {
        match self {
            Variant::Plain => "e2e00000-0000-4000-8000-00000000a001",
            Variant::Lvm => "e2e00000-0000-4000-8000-00000000b001",
        }
    }

    /// The device `findmnt /` shows in the booted system.
    pub fn root_source(self) -> &'static str {
        match self {
            Variant::Plain => "/dev/vda3",
            Variant::Lvm => "/dev/mapper/e2evg-root",
        }
    }
}

/// Volume ID of the ESP (`/boot/efi`), both variants.
pub const ESP_UUID: &str = "E2E0-ABCD";
/// UUID of the `/boot` file system of [`Variant::Lvm`].
pub const LVM_BOOT_UUID: &str = "e2e00000-0000-4000-8000-00000000b002";
/// What the source system prints on the serial console once root's shell reads commands
/// (followed by the kernel release).
pub const READY: &str = "rear-e2e ready ";
/// The marker directory in the source system.
pub const MARKER_DIR: &str = "/srv/marker";
/// The `user.` extended attribute of `/srv/marker/xattr.txt` and its value.
pub const MARKER_XATTR: (&str, &str) = ("user.rear.marker", "e2e-xattr-value");

/// The scripts, whose hash names the cache entry.
fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testvm/sysimage")
}

/// The cached images: `plain.img`, `lvm.img` (raw, sparse) and `marker.sha256`.
pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    /// The raw image of `variant`; never boot it directly (use [`source_disk`]).
    pub fn image(&self, variant: Variant) -> PathBuf {
        self.dir.join(format!("{}.img", variant.name()))
    }

    /// `sha256sum` output for the marker files, relative to [`MARKER_DIR`], as written into
    /// the image as `SHA256SUMS`.
    pub fn marker_sums(&self) -> String {
        std::fs::read_to_string(self.dir.join("marker.sha256")).unwrap()
    }
}

/// The cached images, built first if this machine has none for the current scripts.
pub fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(build_or_reuse)
}

/// A fresh qcow2 overlay of the cached image of `variant` in `dir`, for the caller to boot
/// (and write to); the cache itself stays untouched.
pub fn source_disk(variant: Variant, dir: &Path) -> PathBuf {
    let base = cache().image(variant);
    let overlay = dir.join(format!("source-{}.qcow2", variant.name()));
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(&overlay)
        .output()
        .expect("running qemu-img (Debian package qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img create {}: {}",
        overlay.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    overlay
}

/// `target/e2e-cache` or `$REAR_E2E_CACHE`.
fn cache_root() -> PathBuf {
    std::env::var_os("REAR_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-cache"))
}

/// The first 16 hex digits of SHA-256 over the scripts `names`.
fn cache_key(names: &[&str]) -> String {
    let mut h = Sha256::new();
    for name in names {
        let path = script_dir().join(name);
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(&text);
    }
    hex::encode(h.finalize())[..16].to_string()
}

fn build_or_reuse() -> Cache {
    let root = cache_root();
    std::fs::create_dir_all(&root).unwrap();
    let key = cache_key(&["build.sh", "assemble.sh"]);
    let dir = root.join(format!("sysimage-{key}"));
    let lock = std::fs::File::create(root.join("sysimage.lock")).unwrap();
    let waited = Instant::now();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if dir.join("done").exists() {
        remove_later(&root, &dir);
        eprintln!(
            "sysimage: cached images {} (waited {:.1} s for the lock)",
            dir.display(),
            waited.elapsed().as_secs_f64()
        );
        return Cache { dir };
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "building the Debian source images needs root (debootstrap, chroot)"
    );
    let total = Instant::now();
    // The root tree depends on build.sh only: after a failed assembly, a rerun starts there.
    let work = root.join(format!("work-{}", cache_key(&["build.sh"])));
    let rootfs_done = work.join("rootfs.done");
    if rootfs_done.exists() {
        eprintln!("sysimage: reusing the root tree in {}", work.display());
    } else {
        clean(&work);
        std::fs::create_dir_all(&work).unwrap();
        build_sh(&["rootfs", work.to_str().unwrap()]);
        std::fs::write(&rootfs_done, "").unwrap();
    }
    for variant in [Variant::Plain, Variant::Lvm] {
        let started = Instant::now();
        build_sh(&["disk", work.to_str().unwrap(), variant.name()]);
        phase(&format!("disk files {}", variant.name()), started.elapsed());
    }
    assemble(&work);
    // Only the finished images move into the cache; older entries go.
    let staging = root.join(format!("staging-{key}"));
    clean(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    for name in ["plain.img", "lvm.img", "marker.sha256"] {
        std::fs::rename(work.join(name), staging.join(name)).unwrap();
    }
    std::fs::write(staging.join("done"), format!("{key}\n")).unwrap();
    std::fs::rename(&staging, &dir).unwrap();
    // The root tree and older entries are removed while the tests go on (a rerun finishes
    // what an exiting test process left).
    let trash = root.join(format!("trash-{key}"));
    clean(&trash);
    std::fs::rename(&work, &trash).unwrap();
    remove_later(&root, &dir);
    phase("cold build total", total.elapsed());
    Cache { dir }
}

/// Removes what older or interrupted builds left in the cache directory `root` (all but
/// `keep`) in a background thread, quietly: a test process may end before it is done, and the
/// next one goes on.
fn remove_later(root: &Path, keep: &Path) {
    let old: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            ["sysimage-", "staging-", "trash-", "work-"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                && p != keep
        })
        .collect();
    if old.is_empty() {
        return;
    }
    std::thread::spawn(move || {
        for p in old {
            if std::panic::catch_unwind(|| clean(&p)).is_err() {
                eprintln!("sysimage: could not remove {} yet", p.display());
            }
        }
    });
}

/// Prints one phase's duration to the test log.
fn phase(name: &str, took: Duration) {
    eprintln!("sysimage: phase {name}: {:.1} s", took.as_secs_f64());
}

/// Removes a work directory, refusing while anything is mounted below it (a chroot's /dev).
fn clean(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let prefix = format!("{}/", dir.display());
    let busy = || -> Vec<String> {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut v: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        // Deepest first.
        v.sort_by(|a, b| b.cmp(a));
        v
    };
    // Left by a build that was killed inside the chroot.
    for m in busy() {
        eprintln!("sysimage: unmounting {m} (left by an earlier build)");
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
    let left = busy();
    assert!(
        left.is_empty(),
        "{} still has mounts below it: {left:?}",
        dir.display()
    );
    // --one-file-system: never follow into a file system mounted after the check.
    let status = Command::new("rm")
        .args(["-rf", "--one-file-system"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "rm -rf {}", dir.display());
}

/// Runs build.sh as root, passing its stderr through and printing its `PHASE` lines.
fn build_sh(args: &[&str]) {
    let script = script_dir().join("build.sh");
    eprintln!("sysimage: bash {} {}", script.display(), args.join(" "));
    let mut child = Command::new("bash")
        .arg(&script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        match line.strip_prefix("PHASE ").and_then(|r| r.split_once(' ')) {
            Some((name, secs)) => {
                phase(name, Duration::from_secs(secs.trim().parse().unwrap_or(0)))
            }
            None => eprintln!("build.sh: {line}"),
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "build.sh {} failed: {status}",
        args.join(" ")
    );
}

/// Runs assemble.sh for both variants in the rescue system.
fn assemble(work: &Path) {
    let started = Instant::now();
    let (kernel, initrd, release) = build_initrd(work, &["--ssh", "off", "--net", "none"]);
    phase("rescue initrd", started.elapsed());
    // The script as a disk: padded with newlines to whole sectors, run with `sh /dev/vdb`.
    let mut script = std::fs::read(script_dir().join("assemble.sh")).unwrap();
    script.resize(script.len().div_ceil(512) * 512, b'\n');
    let script_disk = work.join("assemble.disk");
    std::fs::write(&script_disk, script).unwrap();
    let run = |variant: Variant| {
        let started = Instant::now();
        let name = variant.name();
        let mut args: Vec<String> = [
            "-m",
            "1024",
            "-nic",
            "none",
            "-kernel",
            kernel.to_str().unwrap(),
            "-initrd",
            initrd.to_str().unwrap(),
            "-append",
            "console=ttyS0 panic=5 norandmaps",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut drives = vec![
            format!(
                "file={},format=raw,if=virtio",
                work.join(format!("{name}.img")).display()
            ),
            format!(
                "file={},format=raw,if=virtio,readonly=on",
                script_disk.display()
            ),
        ];
        if variant == Variant::Lvm {
            drives.push(format!(
                "file={},format=raw,if=virtio,readonly=on",
                work.join("lvm-root.img").display()
            ));
        }
        for d in drives {
            args.push("-drive".into());
            args.push(d);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut vm = Vm::start(&format!("sysimage_assemble_{name}"), &argv);
        vm.expect(
            &format!("rear rescue ready {release}"),
            Duration::from_secs(180),
        );
        vm.expect("RESCUE", Duration::from_secs(30));
        let booted = started.elapsed();
        vm.send(&format!(
            "sh /dev/vdb {name} 2>&1; echo ASSEMBLE-RC=$?-END-$((3*3))"
        ));
        let out = vm.expect("-END-9\n", Duration::from_secs(900));
        let rc = out
            .rsplit("ASSEMBLE-RC=")
            .next()
            .unwrap_or("")
            .trim_end_matches("-END-9\n");
        assert_eq!(rc, "0", "assemble.sh {name} failed:\n{out}");
        vm.send("poweroff");
        let status = vm.wait_exit(Duration::from_secs(120));
        assert!(status.success(), "QEMU exit status {status}");
        phase(
            &format!(
                "assembly {name} in QEMU (rescue boot {:.1} s)",
                booted.as_secs_f64()
            ),
            started.elapsed(),
        );
    };
    // Both guests at once: one TCG thread each.
    std::thread::scope(|s| {
        let lvm = s.spawn(|| run(Variant::Lvm));
        run(Variant::Plain);
        if let Err(panic) = lvm.join() {
            std::panic::resume_unwind(panic);
        }
    });
    let _ = std::fs::remove_file(work.join("lvm-root.img"));
}

/// Checks a booted source system, or one recovered from it, after [`READY`]: the root file
/// system (device and UUID), `/boot/efi` and `/boot` by UUID, the firmware it booted with,
/// `norandmaps`, and every marker file (content, hard link, symlink, holes, xattr). `cd`s the
/// guest shell into [`MARKER_DIR`].
pub fn check_booted(vm: &mut Vm, variant: Variant, firmware: Firmware) {
    vm.send(&format!(
        "dmesg -n 1; echo BEGIN-$((1+1)); findmnt -n -o SOURCE,UUID,FSTYPE /; \
         echo MNT=$(findmnt -n -o UUID -M /boot/efi),$(findmnt -n -o UUID -M /boot); \
         test -d /sys/firmware/efi && echo FW=UEFI || echo FW=BIOS; cat /proc/cmdline; \
         cd {MARKER_DIR} && sha256sum -c SHA256SUMS && echo SUMS=OK; \
         stat -c 'STAT %n %h %i %s %b' regular.txt hardlink.txt sparse.bin; \
         echo LINK=$(readlink symlink.txt); \
         echo XATTR=$(getfattr --only-values -n {} xattr.txt); \
         echo MANIFEST; cat SHA256SUMS; echo END-$((6*7))",
        MARKER_XATTR.0
    ));
    vm.expect("BEGIN-2\n", Duration::from_secs(30));
    let out = vm.expect("END-42\n", Duration::from_secs(120));

    let want_root = format!("{} {} ext4", variant.root_source(), variant.root_uuid());
    assert!(
        out.contains(&want_root),
        "findmnt / is not {want_root}:\n{out}"
    );
    let want_mnt = match variant {
        Variant::Plain => format!("MNT={ESP_UUID},\n"),
        Variant::Lvm => format!("MNT={ESP_UUID},{LVM_BOOT_UUID}\n"),
    };
    assert!(
        out.contains(&want_mnt),
        "/boot/efi, /boot: want {want_mnt}:\n{out}"
    );
    let want_fw = format!("FW={firmware}\n");
    assert!(out.contains(&want_fw), "not booted with {firmware}:\n{out}");
    assert!(out.contains("norandmaps"), "kernel command line:\n{out}");
    assert!(out.contains("SUMS=OK"), "marker checksums:\n{out}");
    let manifest = out
        .split("MANIFEST\n")
        .nth(1)
        .unwrap()
        .trim_end_matches("END-42\n");
    assert_eq!(manifest, cache().marker_sums(), "SHA256SUMS in the image");
    let stat: Vec<Vec<&str>> = out
        .lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(stat.len(), 3, "{out}");
    // Hard link: same inode, two links.
    assert_eq!(stat[0][2], stat[1][2], "hard link lost:\n{out}");
    assert_eq!(stat[0][1], "2", "{out}");
    // Sparse: 64 MiB apparent, at most a few blocks allocated.
    assert_eq!(stat[2][3], (64u64 << 20).to_string(), "{out}");
    let blocks: u64 = stat[2][4].parse().unwrap();
    assert!(blocks <= 64, "sparse.bin has {blocks} blocks:\n{out}");
    assert!(out.contains("LINK=regular.txt\n"), "{out}");
    assert!(
        out.contains(&format!("XATTR={}\n", MARKER_XATTR.1)),
        "{out}"
    );
}
