//! `rear-mkimage layout save/show/check` on this machine.

use crate::mkimage;

/// `layout check` passes against a layout just saved, and fails naming the difference once
/// the saved copy (standing in for the last image's) no longer matches the disks.
#[test]
fn layout_save_then_check_detects_a_change() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: capturing the layout needs root (CI runs as root)");
        assert!(std::env::var_os("CI").is_none(), "CI must run as root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("layout.json");
    let out = mkimage()
        .args(["layout", "save", "--out"])
        .arg(&saved)
        .output()
        .unwrap();
    if let Some((device, reason)) = unprobeable_root_device() {
        // The current test machines: blkid cannot open the raw disk, even as root. A layout
        // saved anyway would say "no file system" on the disk `/` is mounted from; the save
        // must refuse, naming the device and blkid's reason, and write nothing. (The
        // save/check round trip itself runs in the VM tests, in a Debian guest.)
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "layout save succeeded:\n{stderr}");
        assert!(
            stderr.contains(&device) && stderr.contains(&reason),
            "error names neither {device} nor {reason:?}:\n{stderr}"
        );
        assert!(!saved.exists(), "a layout was written");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&saved).unwrap();
    let layout = rear_sys::layout::Layout::from_json(&text, "saved").unwrap();
    assert!(!layout.disks.is_empty(), "{text}");

    let check = || {
        mkimage()
            .args(["layout", "check", "--out"])
            .arg(tmp.path())
            .output()
            .unwrap()
    };
    let out = check();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut changed = layout.clone();
    changed.disks[0].size += 1 << 20;
    std::fs::write(&saved, changed.to_json()).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&layout.disks[0].device), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the layout changed since the image"),
        "{stderr}"
    );

    // `show` prints the tree of a saved file.
    let out = mkimage()
        .args(["layout", "show"])
        .arg(&saved)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&layout.disks[0].device));

    // A broken file names itself and the line.
    std::fs::write(&saved, "{\n\"version\": 1,\n\"disks\": 3\n}\n").unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:", saved.display())),
        "{stderr}"
    );
}

/// The device `/` is mounted from and blkid's reason, when blkid cannot probe it.
fn unprobeable_root_device() -> Option<(String, String)> {
    let out = std::process::Command::new("findmnt")
        .args(["-n", "-o", "SOURCE", "/"])
        .output()
        .unwrap();
    let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !device.starts_with("/dev/") {
        return None;
    }
    let probe = std::process::Command::new("blkid")
        .args(["-p", "-o", "export", &device])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&probe.stderr);
    // `blkid: error: /dev/vda: Operation not permitted` -> `Operation not permitted`.
    let reason = stderr
        .trim()
        .rsplit(": ")
        .next()
        .unwrap_or_default()
        .to_string();
    (!probe.status.success() && !reason.is_empty()).then_some((device, reason))
}
