//! Which parts of a captured layout recovery recreates: what the mounted file systems and the
//! swap areas stand on. A disk nothing mounted depends on (an unused spare, a disk holding only
//! data of another system, the disk carrying the backup) is excluded with a reason, with
//! everything on it; a recovery must never need a disk the operator does not have, nor
//! overwrite the backup it restores from.
//!
//! Dependencies go down: a mount needs its file system's device; an LV needs every PV of its
//! volume group (LVM recreates the group whole); an opened LUKS container needs the device it
//! is on; an md array needs its members and spares; a partition needs its disk.

use std::collections::BTreeSet;

use super::model::partition_path;
use super::model::{Excluded, Layout};
use super::show::lv_path;

/// The devices the kept mounts and swap areas stand on, transitively (disks included).
fn used_devices(layout: &Layout) -> BTreeSet<String> {
    let mut todo: Vec<String> = layout
        .mounts
        .iter()
        .map(|m| m.device.clone())
        .chain(layout.swap.iter().map(|s| s.device.clone()))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(dev) = todo.pop() {
        if !seen.insert(dev.clone()) {
            continue;
        }
        for vg in &layout.lvm {
            let is_lv = vg.lvs.iter().any(|lv| {
                dev == lv_path(&vg.name, &lv.name) || dev == format!("/dev/{}/{}", vg.name, lv.name)
            });
            if is_lv {
                todo.extend(vg.pvs.iter().map(|p| p.device.clone()));
            }
        }
        for l in &layout.luks {
            if dev == format!("/dev/mapper/{}", l.name) {
                todo.push(l.device.clone());
            }
        }
        for md in &layout.md {
            if dev == md.device {
                todo.extend(md.members.iter().chain(&md.spares).cloned());
            }
        }
        for d in &layout.disks {
            let on_it = d
                .table
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.device == dev);
            if on_it {
                todo.push(d.device.clone());
            }
        }
    }
    seen
}

/// Excludes the disks no mount or swap area depends on, and everything on them.
pub fn prune(layout: &mut Layout) {
    let used = used_devices(layout);
    let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut layout.disks)
        .into_iter()
        .partition(|d| used.contains(&d.device));
    layout.disks = keep;
    for d in &drop {
        layout.excluded.push(Excluded {
            what: d.device.clone(),
            reason: "no mounted file system or swap area is on it".into(),
        });
    }
    // The devices that remain: kept disks and their partitions, then what stands on them.
    let mut present: BTreeSet<String> = BTreeSet::new();
    for d in &layout.disks {
        present.insert(d.device.clone());
        for p in d.table.iter().flat_map(|t| &t.partitions) {
            present.insert(p.device.clone());
            // Also the kernel's name, in case capture used another spelling.
            present.insert(partition_path(&d.device, p.number));
        }
    }
    loop {
        let before = present.len();
        for md in &layout.md {
            if md.members.iter().all(|m| present.contains(m)) {
                present.insert(md.device.clone());
            }
        }
        for l in &layout.luks {
            if present.contains(&l.device) {
                present.insert(format!("/dev/mapper/{}", l.name));
            }
        }
        for vg in &layout.lvm {
            if vg.pvs.iter().all(|p| present.contains(&p.device)) {
                for lv in &vg.lvs {
                    present.insert(lv_path(&vg.name, &lv.name));
                    present.insert(format!("/dev/{}/{}", vg.name, lv.name));
                }
            }
        }
        if present.len() == before {
            break;
        }
    }
    layout.md.retain(|m| present.contains(&m.device));
    layout.luks.retain(|l| present.contains(&l.device));
    layout
        .lvm
        .retain(|vg| vg.pvs.iter().all(|p| present.contains(&p.device)));
    let mut gone = Vec::new();
    layout.filesystems.retain(|f| {
        let keep = present.contains(&f.device);
        if !keep {
            gone.push(f.device.clone());
        }
        keep
    });
    layout.swap.retain(|s| present.contains(&s.device));
    layout.mounts.retain(|m| !gone.contains(&m.device));
    layout.sort();
}

/// Leaves out the file system mounted at `target` (the one holding the backup) and then
/// everything only it needed; `reason` says why, in `excluded`.
pub fn exclude_mount(layout: &mut Layout, target: &str, reason: &str) {
    let Some(dev) = layout
        .mounts
        .iter()
        .find(|m| m.target == target)
        .map(|m| m.device.clone())
    else {
        return;
    };
    // Every mount of that file system goes (btrfs mounts several subvolumes of one device).
    layout.mounts.retain(|m| m.device != dev);
    layout.filesystems.retain(|f| f.device != dev);
    layout.excluded.push(Excluded {
        what: target.to_string(),
        reason: reason.to_string(),
    });
    prune(layout);
}

#[cfg(test)]
mod tests {
    use super::*;

    use rear_testutil::layout::golden as captured;

    #[test]
    fn prune_keeps_captured_layouts_whole() {
        for name in [
            "gpt-esp-ext4",
            "mbr",
            "raid1-lvm-xfs",
            "luks2-lvm-ext4",
            "btrfs-subvolumes",
            "nvme",
        ] {
            let l = captured(name);
            let mut p = l.clone();
            prune(&mut p);
            assert_eq!(p, l, "{name}");
        }
    }

    #[test]
    fn exclude_mount_drops_the_backup_disk_and_what_is_on_it() {
        // Two disks of the RAID1: excluding / leaves nothing that needs either.
        let mut l = captured("raid1-lvm-xfs");
        exclude_mount(&mut l, "/", "holds the backup");
        assert!(l.mounts.iter().all(|m| m.target != "/"));
        // /srv (a thin LV in the same VG) still needs both disks.
        assert_eq!(l.disks.len(), 2);
        assert_eq!(l.lvm.len(), 1);

        let mut l = captured("gpt-esp-ext4");
        let whole = l.clone();
        // A second disk with one mounted file system: the backup disk.
        let mut backup = whole.disks[0].clone();
        backup.device = "/dev/vdb".into();
        backup.table = None;
        l.disks.push(backup);
        l.filesystems.push(rear_model::layout::model::Filesystem {
            device: "/dev/vdb".into(),
            ..whole.filesystems[0].clone()
        });
        l.mounts.push(rear_model::layout::model::Mount {
            device: "/dev/vdb".into(),
            target: "/backup".into(),
            options: String::new(),
            subvolume: String::new(),
        });
        l.sort();
        exclude_mount(&mut l, "/backup", "holds the backup");
        let mut want = whole;
        want.excluded.push(Excluded {
            what: "/backup".into(),
            reason: "holds the backup".into(),
        });
        want.excluded.push(Excluded {
            what: "/dev/vdb".into(),
            reason: "no mounted file system or swap area is on it".into(),
        });
        want.sort();
        assert_eq!(l, want);
    }

    #[test]
    fn prune_excludes_an_unused_disk() {
        let mut l = captured("nvme");
        let mut spare = l.disks[0].clone();
        spare.device = "/dev/sdz".into();
        spare.table = None;
        l.disks.push(spare);
        prune(&mut l);
        assert_eq!(l.disks.len(), 1);
        assert_eq!(
            l.excluded
                .last()
                .map(|e| (e.what.as_str(), e.reason.as_str())),
            Some(("/dev/sdz", "no mounted file system or swap area is on it"))
        );
    }
}
