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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&saved).unwrap();
    let layout = rear::layout::Layout::from_json(&text, "saved").unwrap();
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
