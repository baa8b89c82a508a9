//! A whole build on a fake merged-/usr sysroot made in the test: programs, libraries, links,
//! hard links, scripts, modules, depmod files and firmware end up where the manifest says.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use rear_model::manifest::{ImagePath, Kind, Manifest, Source};

use crate::elf_util::{DynElf, dyn_elf};
use crate::kmod_util::sample_kernel;
use crate::{files_in, mkimage, require_tools, run, static_init};

const KVER: &str = "1.0-test";

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn fake_root() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    for dir in [
        "usr/bin",
        "usr/lib/x86_64-linux-gnu",
        "lib64",
        "etc",
        "boot",
    ] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    symlink("usr/bin", r.join("bin")).unwrap();
    symlink("usr/lib", r.join("lib")).unwrap();
    let libdir = "usr/lib/x86_64-linux-gnu";
    write(
        r,
        &format!("{libdir}/ld-linux-x86-64.so.2"),
        &dyn_elf(&DynElf::lib("ld-linux-x86-64.so.2")),
        0o755,
    );
    symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        r.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    write(
        r,
        &format!("{libdir}/libc.so.6"),
        &dyn_elf(&DynElf::lib("libc.so.6")),
        0o755,
    );
    let mut libfoo = DynElf::lib("libfoo.so.1");
    libfoo.needed = vec!["libc.so.6".into()];
    write(
        r,
        &format!("{libdir}/libfoo.so.1.2"),
        &dyn_elf(&libfoo),
        0o644,
    );
    symlink("libfoo.so.1.2", r.join(libdir).join("libfoo.so.1")).unwrap();
    write(
        r,
        "usr/bin/tool",
        &dyn_elf(&DynElf::program(&["libfoo.so.1"])),
        0o755,
    );
    std::fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool-again")).unwrap();
    write(
        r,
        "usr/bin/sh",
        &dyn_elf(&DynElf::program(&["libc.so.6"])),
        0o755,
    );
    write(r, "usr/bin/hello", b"#!/bin/sh\necho hello\n", 0o755);
    write(r, "etc/hostname", b"fakehost\n", 0o644);
    // The kernel: a bzImage header with its release, and modules below /lib -> usr/lib.
    let mut bz = vec![0u8; 0x400];
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    bz[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    bz[0x300..0x300 + KVER.len()].copy_from_slice(KVER.as_bytes());
    write(r, &format!("boot/vmlinuz-{KVER}"), &bz, 0o644);
    sample_kernel(KVER).write(r).unwrap();
    d
}

#[test]
fn fake_root_build_follows_links_libraries_modules_and_firmware() {
    let root = fake_root();
    let out = tempfile::tempdir().unwrap();
    let recipe = out.path().join("fake.toml");
    std::fs::write(
        &recipe,
        "programs = [\"tool\", \"tool-again\", \"hello\"]\nmodules = [\"fs-ext4\"]\n",
    )
    .unwrap();
    let image_dir = out.path().join("image");
    let o = run(mkimage()
        .args([
            "--output",
            "initrd",
            "--no-default-recipes",
            "--modules",
            "host",
            "--json",
            "--compress",
            "none",
            "--recipe",
        ])
        .arg(&recipe)
        .arg("--init")
        .arg(static_init(out.path()))
        .arg("--root")
        .arg(root.path())
        .arg("--out")
        .arg(&image_dir));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = Manifest::from_json(
        &std::fs::read_to_string(image_dir.join(format!("initrd-{KVER}.manifest.json"))).unwrap(),
    )
    .unwrap();
    let get = |p: &str| {
        m.entries
            .get(&ImagePath::new(p).unwrap())
            .unwrap_or_else(|| panic!("{p} not in manifest"))
    };
    let link = |p: &str| match &get(p).kind {
        Kind::Symlink { target } => target.clone(),
        k => panic!("{p} is {k:?}, not a symlink"),
    };
    assert_eq!(link("/bin"), "usr/bin");
    assert_eq!(link("/lib"), "usr/lib");
    assert_eq!(
        link("/lib64/ld-linux-x86-64.so.2"),
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    );
    assert_eq!(
        link("/usr/lib/x86_64-linux-gnu/libfoo.so.1"),
        "libfoo.so.1.2"
    );
    assert_eq!(
        get("/usr/lib/x86_64-linux-gnu/libfoo.so.1.2").kind,
        Kind::File
    );
    assert_eq!(get("/usr/lib/x86_64-linux-gnu/libc.so.6").kind, Kind::File);
    assert_eq!(
        get("/usr/bin/sh").kind,
        Kind::File,
        "#! interpreter of hello"
    );
    assert_eq!(
        get("/usr/bin/tool-again").kind,
        Kind::HardLink {
            to: ImagePath::new("/usr/bin/tool").unwrap()
        }
    );
    assert_eq!(
        get("/etc/hostname").source,
        Source::Generated {
            by: "inventory".into()
        }
    );
    // Modules land below the image's /lib -> usr/lib, with deps and softdeps; the NIC's
    // firmware that exists is there.
    let kdir = format!("/usr/lib/modules/{KVER}");
    for m in [
        "drivers/block/virtio_blk.ko",
        "fs/ext4/ext4.ko",
        "fs/jbd2/jbd2.ko",
        "crypto/crc32c_generic.ko",
        "drivers/net/ethernet/realtek/r8169.ko",
    ] {
        get(&format!("{kdir}/kernel/{m}"));
    }
    assert!(
        !m.entries
            .keys()
            .any(|p| p.as_str().contains("unused-thing")),
        "unmatched module included"
    );
    for f in ["modules.dep", "modules.dep.bin", "modules.alias.bin"] {
        get(&format!("{kdir}/{f}"));
    }
    get("/usr/lib/firmware/rtl_nic/rtl8168d-1.fw");

    // The real cpio tool extracts it with the hard link intact.
    require_tools(&["cpio"]);
    let x = out.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let initrd = image_dir.join(format!("initrd-{KVER}.img"));
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cpio -idm --quiet --no-absolute-filenames < '{}'",
            initrd.display()
        ))
        .current_dir(&x)
        .status()
        .unwrap();
    assert!(st.success());
    let (a, b) = (
        std::fs::metadata(x.join("usr/bin/tool")).unwrap(),
        std::fs::metadata(x.join("usr/bin/tool-again")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard link lost");
    assert_eq!(
        std::fs::read_link(x.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        std::fs::read(x.join("init")).unwrap(),
        std::fs::read(out.path().join("init")).unwrap()
    );
    assert!(files_in(&x.join("usr/lib/modules")).contains(&KVER.to_string()));
}

/// [`fake_root`] plus the programs the built-in backup method puts into the image.
fn backup_root() -> tempfile::TempDir {
    let root = fake_root();
    for tool in ["tar", "blkid", "mount", "umount"] {
        write(
            root.path(),
            &format!("usr/bin/{tool}"),
            &dyn_elf(&DynElf::program(&["libc.so.6"])),
            0o755,
        );
    }
    root
}

/// `dir/layout.json`: a layout with the root file system only.
fn root_layout(dir: &Path) -> std::path::PathBuf {
    let layout = dir.join("layout.json");
    std::fs::write(
        &layout,
        r#"{"version":1,"mounts":[{"device":"/dev/test","target":"/"}]}"#,
    )
    .unwrap();
    layout
}

#[test]
fn fake_root_build_with_backup_carries_config_and_tar_and_backs_up_the_layout() {
    let root = backup_root();
    let r = root.path();
    let out = tempfile::tempdir().unwrap();
    let layout = root_layout(out.path());
    let (image_dir, backup_dir) = (out.path().join("image"), out.path().join("backup"));
    let o = run(mkimage()
        .args([
            "--output",
            "initrd",
            "--no-default-recipes",
            "--modules",
            "none",
        ])
        .args(["--json", "--compress", "none", "--ssh", "off", "--layout"])
        .arg(&layout)
        .arg("--init")
        .arg(static_init(out.path()))
        .arg("--root")
        .arg(r)
        .arg("--out")
        .arg(&image_dir)
        .arg("--backup")
        .arg("--backup-url")
        .arg(format!("file://{}", backup_dir.display())));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("backup.tar.zst: "), "{stdout}");
    let m = Manifest::from_json(
        &std::fs::read_to_string(image_dir.join(format!("initrd-{KVER}.manifest.json"))).unwrap(),
    )
    .unwrap();
    let entry = m
        .entries
        .get(&ImagePath::new("/etc/rear/backup.json").unwrap())
        .expect("backup configuration in the image");
    assert!(
        m.entries
            .contains_key(&ImagePath::new("/usr/bin/tar").unwrap()),
        "tar for the restore"
    );
    // The image's configuration is the one the backup was made with.
    let info = rear_sys::backup::Info::load(&backup_dir.join("backup.json")).unwrap();
    assert_eq!(
        entry.sha256.as_deref(),
        Some(rear_model::manifest::sha256_hex(info.config.to_json().as_bytes()).as_str())
    );
    assert_eq!(info.config.method, rear_model::backup::config::Method::Tar);
    let list = std::fs::read_to_string(backup_dir.join("backup.files")).unwrap();
    assert!(list.contains("\t./etc/hostname\n"), "{list}");
    assert!(
        list.contains("\t./usr/bin/tool-again\t./usr/bin/tool\n")
            || list.contains("\t./usr/bin/tool\t./usr/bin/tool-again\n"),
        "{list}"
    );
}

/// `--backup-url iso`: the backup goes into the ISO's /rear/ (not left beside it), the
/// output directory below the backed-up root is not in the backup, and what the ISO carries
/// restores.
#[test]
fn fake_root_build_puts_the_backup_into_the_iso() {
    require_tools(&["xorriso"]);
    let root = backup_root();
    let r = root.path();
    // The boot loaders an ISO needs (stand-ins: the ISO is checked, not booted, here).
    write(r, "usr/lib/ISOLINUX/isolinux.bin", &[0x90; 2048], 0o644);
    write(r, "usr/lib/ISOLINUX/isohdpfx.bin", &[0x33; 432], 0o644);
    for m in ["ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"] {
        write(
            r,
            &format!("usr/lib/syslinux/modules/bios/{m}"),
            m.as_bytes(),
            0o644,
        );
    }
    write(r, "usr/lib/shim/shimx64.efi.signed", &[b'S'; 5000], 0o644);
    write(
        r,
        "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
        &[b'G'; 9000],
        0o644,
    );
    write(r, "etc/os-release", b"ID=debian\n", 0o644);
    write(r, "srv/data/marker", b"in the ISO\n", 0o600);
    // The output directory lies inside the backed-up tree, with an older ISO in it.
    let out_dir = r.join("var/lib/rear/output");
    write(r, "var/lib/rear/output/rear-old.iso", b"old", 0o644);
    let tmp = tempfile::tempdir().unwrap();
    let layout = root_layout(tmp.path());
    // A build of `root` with `layout` into `out` with the backup in the ISO, plus `args`.
    let iso_build = |args: &[&str], out: &Path| {
        run(mkimage()
            .args(args)
            .args([
                "--no-default-recipes",
                "--modules",
                "none",
                "--compress",
                "none",
            ])
            .args(["--ssh", "off", "--layout"])
            .arg(&layout)
            .arg("--init")
            .arg(static_init(tmp.path()))
            .arg("--root")
            .arg(r)
            .arg("--out")
            .arg(out)
            .args(["--backup", "--backup-url", "iso"]))
    };
    let o = iso_build(&["--output", "iso"], &out_dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let iso = out_dir.join("rear-fakehost.iso");
    assert!(
        stdout.contains(&format!("backup {}:/rear/backup.tar.zst: ", iso.display())),
        "{stdout}"
    );
    // Nothing but the outputs is left: the staging copy of the backup is gone.
    assert_eq!(
        files_in(&out_dir),
        [
            "SHA256SUMS",
            "layout.json",
            "rear-fakehost.iso",
            "rear-old.iso"
        ],
    );
    let extracted = tmp.path().join("rear");
    let x = run(Command::new("xorriso")
        .arg("-indev")
        .arg(&iso)
        .args(["-osirrox", "on", "-extract", "/rear"])
        .arg(&extracted));
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    assert_eq!(
        files_in(&extracted),
        [
            "backup.files",
            "backup.json",
            "backup.tar.zst",
            "backup.tar.zst.sha256"
        ]
    );
    let info = rear_sys::backup::Info::load(&extracted.join("backup.json")).unwrap();
    assert_eq!(info.config.url.to_string(), "iso");
    let list = std::fs::read_to_string(extracted.join("backup.files")).unwrap();
    assert!(list.contains("\t./srv/data/marker\n"), "{list}");
    assert!(!list.contains("var/lib/rear/output"), "{list}");
    // The image tells the rescue system to look on the medium labelled REAR-ISO.
    let cfg = info.config.location.expect("a location on the ISO");
    assert_eq!(
        (
            cfg.fstype.as_str(),
            cfg.label.as_str(),
            cfg.subpath.as_path()
        ),
        ("iso9660", "REAR-ISO", Path::new("/rear"))
    );
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let o = run(Command::new(crate::restore_bin())
        .arg("restore")
        .arg("--backup-url")
        .arg(format!("file://{}", extracted.display()))
        .arg("--target")
        .arg(&target)
        .args(["--config", "/nonexistent/backup.json"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(target.join("srv/data/marker")).unwrap(),
        b"in the ISO\n"
    );

    // Without an ISO, or with another method, it is refused before anything is written.
    for (args, want) in [
        (
            &["--output", "initrd"][..],
            "--backup-url iso puts the backup into the ISO of this build: add --output iso",
        ),
        (
            &["--output", "iso", "--backup-method", "rsync"][..],
            "the ISO carries backups of the built-in tar method only",
        ),
    ] {
        let out = tmp.path().join("refused");
        let o = iso_build(args, &out);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(want), "{args:?}: {e}");
        assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));
    }
}
