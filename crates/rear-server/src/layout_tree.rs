//! The storage layout of a report as a tree, for the host page: disks, their partitions, and
//! the file systems mounted from each.
//!
//! Input: a report's [`LayoutSummary`], which lists whole disks and mounted file systems but
//! no partitions. Output: a [`Tree`]. Partitions are recognised by the kernel's naming rule
//! (`disk_name()` in Linux `block/partitions/core.c`): the partition number follows the disk
//! name directly (`sda1`), or after a `p` when the disk name ends in a digit (`nvme0n1p2`,
//! `mmcblk0p1`). Devices that belong to no listed disk (device-mapper, md RAID, LVM) are kept
//! apart, since the summary does not say which disks they sit on.

use rear_model::report::{Disk, Filesystem, LayoutSummary};

/// The layout of one report as a tree.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tree<'a> {
    /// The disks, in the summary's order (by name).
    pub disks: Vec<DiskNode<'a>>,
    /// File systems on devices that are no listed disk or partition of one, by mount point.
    pub other: Vec<&'a Filesystem>,
}

/// A disk with what is on it.
#[derive(Debug, PartialEq, Eq)]
pub struct DiskNode<'a> {
    /// The disk.
    pub disk: &'a Disk,
    /// File systems on the whole disk (no partition table).
    pub filesystems: Vec<&'a Filesystem>,
    /// Its partitions that have a mounted file system, by partition number.
    pub partitions: Vec<PartNode<'a>>,
}

/// A partition with the file systems mounted from it (several for btrfs subvolumes or bind
/// mounts).
#[derive(Debug, PartialEq, Eq)]
pub struct PartNode<'a> {
    /// Kernel name, such as `sda1`.
    pub name: String,
    /// Partition number.
    pub number: u32,
    /// Its mounts, by mount point.
    pub filesystems: Vec<&'a Filesystem>,
}

/// Where a device of a file system sits relative to `disk`.
enum Place {
    WholeDisk,
    Partition(u32),
}

fn place(device: &str, disk: &str) -> Option<Place> {
    let name = device.strip_prefix("/dev/").unwrap_or(device);
    let rest = name.strip_prefix(disk)?;
    if rest.is_empty() {
        return Some(Place::WholeDisk);
    }
    let number = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        rest.strip_prefix('p')?
    } else {
        rest
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok().map(Place::Partition)
}

/// Builds the tree of `layout`.
pub fn tree(layout: &LayoutSummary) -> Tree<'_> {
    let mut disks: Vec<DiskNode<'_>> = layout
        .disks
        .iter()
        .map(|disk| DiskNode {
            disk,
            filesystems: Vec::new(),
            partitions: Vec::new(),
        })
        .collect();
    let mut other = Vec::new();
    // The summary lists file systems by mount point; pushing in that order keeps every list
    // below sorted by mount point too.
    'fs: for f in &layout.filesystems {
        for node in &mut disks {
            match place(&f.device, &node.disk.name) {
                Some(Place::WholeDisk) => node.filesystems.push(f),
                Some(Place::Partition(number)) => {
                    match node.partitions.iter_mut().find(|p| p.number == number) {
                        Some(p) => p.filesystems.push(f),
                        None => node.partitions.push(PartNode {
                            name: f.device.trim_start_matches("/dev/").to_string(),
                            number,
                            filesystems: vec![f],
                        }),
                    }
                }
                None => continue,
            }
            continue 'fs;
        }
        other.push(f);
    }
    for node in &mut disks {
        node.partitions.sort_by_key(|p| p.number);
    }
    Tree { disks, other }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(device: &str, mountpoint: &str) -> Filesystem {
        Filesystem {
            device: device.into(),
            mountpoint: mountpoint.into(),
            fstype: "ext4".into(),
        }
    }

    fn disk(name: &str) -> Disk {
        Disk {
            name: name.into(),
            ..Disk::default()
        }
    }

    #[test]
    fn tree_puts_partitions_under_their_disks() {
        let layout = LayoutSummary::new(
            vec![disk("sda"), disk("nvme0n1"), disk("sdaa")],
            vec![
                fs("/dev/nvme0n1p2", "/"),
                fs("/dev/nvme0n1p1", "/boot/efi"),
                fs("/dev/nvme0n1p10", "/srv"),
                fs("/dev/sda1", "/data"),
                fs("/dev/sda1", "/data/sub"),
                fs("/dev/sdaa", "/raw"),
                fs("/dev/mapper/vg-home", "/home"),
                fs("/dev/nvme0n1x", "/odd"),
            ],
        );
        let t = tree(&layout);
        let names: Vec<_> = t.disks.iter().map(|d| d.disk.name.as_str()).collect();
        assert_eq!(names, ["nvme0n1", "sda", "sdaa"]);
        let parts: Vec<_> = t.disks[0]
            .partitions
            .iter()
            .map(|p| (p.name.as_str(), p.filesystems.len()))
            .collect();
        assert_eq!(
            parts,
            [("nvme0n1p1", 1), ("nvme0n1p2", 1), ("nvme0n1p10", 1)]
        );
        let sda = &t.disks[1];
        assert_eq!(sda.partitions.len(), 1);
        let mounts: Vec<_> = sda.partitions[0]
            .filesystems
            .iter()
            .map(|f| f.mountpoint.as_str())
            .collect();
        assert_eq!(mounts, ["/data", "/data/sub"]);
        assert!(sda.filesystems.is_empty());
        assert_eq!(t.disks[2].filesystems[0].mountpoint, "/raw");
        assert!(t.disks[2].partitions.is_empty());
        let other: Vec<_> = t.other.iter().map(|f| f.device.as_str()).collect();
        assert_eq!(other, ["/dev/mapper/vg-home", "/dev/nvme0n1x"]);
    }

    #[test]
    fn tree_of_an_empty_layout_is_empty() {
        assert_eq!(tree(&LayoutSummary::default()), Tree::default());
    }
}
