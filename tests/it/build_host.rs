//! Building the initrd of the machine the tests run on (its kernel is installed by `make test`).

use std::path::Path;
use std::process::Command;

use crate::{files_in, mkimage, require_tools, restore_bin, run};

/// Builds into `out` with a private copy of rear-restore as /init (cargo may relink the
/// original while tests run) and no layout (these tests are about the initrd; the disks of the
/// current test machines cannot be probed, see `layout.rs`); returns stderr.
fn build(out: &Path, extra: &[&str]) -> String {
    std::fs::create_dir_all(out).unwrap();
    let init = out.join("rear-restore.copy");
    std::fs::copy(restore_bin(), &init).unwrap();
    let o = run(mkimage()
        .args(["--output", "initrd", "--json", "--layout", "none", "--out"])
        .arg(out)
        .arg("--init")
        .arg(&init)
        .args(extra));
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "rear-mkimage failed:\n{stderr}");
    stderr
}

fn initrd_of(out: &Path) -> std::path::PathBuf {
    let name = files_in(out)
        .into_iter()
        .find(|n| n.starts_with("initrd-") && n.ends_with(".img"))
        .expect("no initrd-*.img");
    out.join(name)
}

#[test]
fn host_initrd_lists_init_loader_libc_shell_and_modules() {
    require_tools(&["cpio", "zstd"]);
    let tmp = tempfile::tempdir().unwrap();
    let stderr = build(tmp.path(), &[]);
    assert!(
        stderr.contains(" modules, ") && stderr.contains("zstd"),
        "no summary line:\n{stderr}"
    );
    let initrd = initrd_of(tmp.path());
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | cpio -t --quiet", initrd.display()))
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let has = |pred: &dyn Fn(&str) -> bool, what: &str| {
        assert!(
            names.iter().any(|n| pred(n)),
            "cpio -t lists no {what}; {} entries",
            names.len()
        );
    };
    has(&|n| n == "init", "init");
    has(&|n| n.ends_with("/ld-linux-x86-64.so.2"), "dynamic loader");
    has(&|n| n.ends_with("/libc.so.6"), "libc");
    has(&|n| n == "bin/sh" || n == "usr/bin/sh", "/bin/sh");
    has(&|n| n.ends_with("/virtio_blk.ko"), "virtio_blk module");
    has(&|n| n.ends_with("/ext4.ko"), "ext4 module");
    has(&|n| n.ends_with("/modules.dep.bin"), "modules.dep.bin");
    has(&|n| n == "dev/console", "dev/console");
    has(&|n| n == "etc/rear/manifest.json", "manifest");
}

#[test]
fn host_initrd_is_reproducible_and_checksummed() {
    require_tools(&["sha256sum"]);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build(a.path(), &[]);
    build(b.path(), &[]);
    let (ia, ib) = (initrd_of(a.path()), initrd_of(b.path()));
    assert!(
        std::fs::read(&ia).unwrap() == std::fs::read(&ib).unwrap(),
        "two builds differ: {} {}",
        ia.display(),
        ib.display()
    );
    let names = files_in(a.path());
    assert!(names.iter().any(|n| n.starts_with("vmlinuz-")), "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with(".manifest.json")),
        "{names:?}"
    );
    assert!(names.contains(&"SHA256SUMS".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with('.')),
        "temporary files left: {names:?}"
    );
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(a.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "sha256sum -c: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn host_initrd_inspect_lists_entries_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), &["--modules", "none", "--compress", "xz"]);
    let initrd = initrd_of(tmp.path());
    let o = run(mkimage().arg("inspect").arg(&initrd));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines().any(|l| l.ends_with(" init")),
        "no init line:\n{text}"
    );
    assert!(!text.contains(".ko"), "--modules none still has modules");
    let o = run(mkimage().arg("inspect").arg("--manifest").arg(&initrd));
    assert!(o.status.success());
    let m = rear_model::manifest::Manifest::from_json(&String::from_utf8_lossy(&o.stdout)).unwrap();
    let beside = std::fs::read_to_string(initrd.with_extension("manifest.json")).unwrap();
    assert_eq!(
        m,
        rear_model::manifest::Manifest::from_json(&beside).unwrap()
    );
    let init = m
        .entries
        .get(&rear_model::manifest::ImagePath::new("/init").unwrap())
        .expect("/init in manifest");
    assert_eq!(
        init.sha256.as_deref(),
        Some(
            rear_model::manifest::sha256_hex(
                &std::fs::read(tmp.path().join("rear-restore.copy")).unwrap()
            )
            .as_str()
        )
    );
}

#[test]
fn host_all_media_from_one_build_are_reproducible_and_verified() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for dir in [a.path(), b.path()] {
        build(
            dir,
            &[
                "--output",
                "iso,usb,pxe,initrd",
                "--usb-size",
                "0",
                "--boot-timeout",
                "1",
            ],
        );
    }
    let names = files_in(a.path());
    let iso = names
        .iter()
        .find(|n| n.ends_with(".iso"))
        .expect("no ISO written");
    let usb = names
        .iter()
        .find(|n| n.ends_with(".usb.img"))
        .expect("no USB image written");
    assert!(names.iter().any(|n| n == "pxe"), "no PXE tree: {names:?}");
    for name in [iso, usb] {
        let (x, y) = (
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap(),
        );
        assert!(x == y, "{name} differs between two builds");
    }
    // The initrd is built once: the ISO carries the same bytes as the initrd output.
    let initrd = std::fs::read(initrd_of(a.path())).unwrap();
    let iso_bytes = std::fs::read(a.path().join(iso)).unwrap();
    assert!(
        iso_bytes
            .windows(initrd.len().min(4096))
            .any(|w| w == &initrd[..initrd.len().min(4096)]),
        "initrd not in the ISO"
    );
    let o = run(mkimage().arg("verify").arg(a.path()));
    assert!(
        o.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(mkimage().arg("inspect").arg(a.path().join(iso)));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("/boot/vmlinuz") && text.contains("EFI"),
        "inspect ISO:\n{text}"
    );
    // A changed file is caught by verify.
    std::fs::write(a.path().join(usb), b"changed").unwrap();
    let o = run(mkimage().arg("verify").arg(a.path()));
    assert!(!o.status.success(), "verify accepted a changed file");
}
