//! The `modalias` strings of the devices in a sysfs tree.
//!
//! Every device the kernel knows has a directory under `/sys/devices`; those a driver could
//! bind to have a `modalias` file (`pci:v00001AF4d00001042sv...`, `virtio:d00000002v00001AF4`)
//! that module aliases are matched against. The walk descends real directories only: sysfs
//! is full of symlinks (`subsystem`, `driver`, `device`, `/sys/bus/*/devices/*`) that lead back
//! up the tree, so following them would loop. `/sys/bus/*/devices/*` entries are looked at
//! only when they point outside `/sys/devices` (they never do on a real kernel, but a fake or
//! partial tree may be built that way).

use std::fs;
use std::path::{Path, PathBuf};

/// The distinct modaliases under `sys_dir` (`/sys`, or `<root>/sys`), sorted. Unreadable
/// files and directories are skipped: devices come and go while the walk runs.
pub fn modaliases(sys_dir: &Path) -> Vec<String> {
    let devices = sys_dir.join("devices");
    let mut out = Vec::new();
    walk(&devices, &mut out);
    let devices_real = fs::canonicalize(&devices).unwrap_or(devices);
    for bus in read_dir(&sys_dir.join("bus")) {
        for link in read_dir(&bus.join("devices")) {
            let Ok(target) = fs::canonicalize(&link) else {
                continue;
            };
            if !target.starts_with(&devices_real) {
                read_modalias(&target.join("modalias"), &mut out);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    }
}

fn read_modalias(path: &Path, out: &mut Vec<String>) {
    if let Ok(text) = fs::read_to_string(path) {
        let alias = text.trim();
        if !alias.is_empty() {
            out.push(alias.to_string());
        }
    }
}

fn walk(root: &Path, out: &mut Vec<String>) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            // The directory entry's own type: a symlink is never followed.
            let Ok(ft) = entry.file_type() else {
                continue;
            };
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() && entry.file_name() == "modalias" {
                read_modalias(&entry.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn modaliases_skips_symlink_loops_and_dedups() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("sys");
        let dev = sys.join("devices/pci0000:00/0000:00:03.0");
        fs::create_dir_all(dev.join("virtio0")).unwrap();
        fs::write(dev.join("modalias"), "pci:v00001AF4d00001001\n").unwrap();
        fs::write(dev.join("virtio0/modalias"), "virtio:d00000002v00001AF4\n").unwrap();
        symlink("../../..", dev.join("virtio0/loop")).unwrap();
        fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
        symlink(
            "../../../devices/pci0000:00/0000:00:03.0",
            sys.join("bus/pci/devices/0000:00:03.0"),
        )
        .unwrap();
        let outside = d.path().join("elsewhere");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("modalias"), "platform:x\n").unwrap();
        fs::create_dir_all(sys.join("bus/platform/devices")).unwrap();
        symlink(&outside, sys.join("bus/platform/devices/x")).unwrap();
        assert_eq!(
            modaliases(&sys),
            [
                "pci:v00001AF4d00001001",
                "platform:x",
                "virtio:d00000002v00001AF4"
            ]
        );
    }

    #[test]
    fn modaliases_of_missing_tree_is_empty() {
        assert!(modaliases(Path::new("/nonexistent/sys")).is_empty());
    }
}
