//! The target machine's disks, and which of them must not be touched: in use by the running
//! rescue system, or the rescue media themselves.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::TargetDisk;
use rear_model::layout::model::Disk;
use rear_sys::layout::parse::swaps::ActiveSwap;
use rear_sys::mounts::Mount;

/// Whether `dev` is `disk` or one of its partitions (`/dev/vda2`, `/dev/nvme0n1p2`).
fn on_disk(dev: &str, disk: &str) -> bool {
    dev.strip_prefix(disk).is_some_and(|rest| {
        let digits = rest.strip_prefix('p').unwrap_or(rest);
        rest.is_empty() || (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
    })
}

/// The target machine's disks (from [`rear_sys::layout::capture::disks_from_lsblk`]) with the
/// ones that must not be touched marked: a disk is unavailable when it or one of its
/// partitions is mounted or used as swap (`mounts`, `swaps`: `/proc/self/mounts` and
/// `/proc/swaps`, parsed; the backup disk, the USB stick the rescue system runs from), or when
/// it carries a label of the rescue media (`REAR-*`, from `blkid`).
pub fn target_disks(
    disks: Vec<Disk>,
    mounts: &[Mount],
    swaps: &[ActiveSwap],
    blkid: &BTreeMap<String, rear_sys::layout::parse::blkid::Tags>,
) -> Vec<TargetDisk> {
    let used: BTreeSet<&str> = mounts
        .iter()
        .map(|m| m.source.as_str())
        .chain(swaps.iter().map(|s| s.filename.as_str()))
        .filter(|d| d.starts_with("/dev/"))
        .collect();
    disks
        .into_iter()
        .map(|disk| {
            let in_use = used.iter().find(|d| on_disk(d, &disk.device));
            let media = blkid.iter().find(|(dev, tags)| {
                on_disk(dev, &disk.device)
                    && tags.get("LABEL").is_some_and(|l| l.starts_with("REAR-"))
            });
            let unavailable = match (in_use, media) {
                (Some(d), _) => Some(format!("{d} is in use (mounted or swap)")),
                (None, Some((d, tags))) => Some(format!(
                    "{d} is rescue media (label {})",
                    tags.get("LABEL").map(String::as_str).unwrap_or_default()
                )),
                (None, None) => None,
            };
            TargetDisk { disk, unavailable }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_disks_marks_mounted_swap_and_media_disks() {
        let disk = |d: &str| Disk {
            device: d.into(),
            size: 1 << 30,
            ..Disk::default()
        };
        let blkid = rear_sys::layout::parse::blkid::parse(
            "DEVNAME=/dev/sdc1\nLABEL=REAR-DATA\nTYPE=ext4\n\nDEVNAME=/dev/vda1\nTYPE=ext4\n",
        )
        .unwrap();
        let t = target_disks(
            vec![
                disk("/dev/vda"),
                disk("/dev/vdb"),
                disk("/dev/sdc"),
                disk("/dev/nvme0n1"),
                disk("/dev/vd"),
            ],
            &rear_sys::mounts::parse_mounts(
                "/dev/vdb /backup ext4 rw 0 0\nproc /proc proc rw 0 0\n",
            ),
            &rear_sys::layout::parse::swaps::parse(
                "Filename Type Size Used Priority\n/dev/nvme0n1p3 partition 1 0 -2\n",
            )
            .unwrap(),
            &blkid,
        );
        let why: Vec<Option<&str>> = t.iter().map(|t| t.unavailable.as_deref()).collect();
        assert_eq!(
            why,
            [
                None,
                Some("/dev/vdb is in use (mounted or swap)"),
                Some("/dev/sdc1 is rescue media (label REAR-DATA)"),
                Some("/dev/nvme0n1p3 is in use (mounted or swap)"),
                None,
            ]
        );
        assert!(!on_disk("/dev/vda1", "/dev/vd"));
        assert!(on_disk("/dev/vd1", "/dev/vd"));
        assert!(on_disk("/dev/nvme0n1p3", "/dev/nvme0n1"));
        assert!(!on_disk("/dev/nvme0n10", "/dev/nvme0n1p"));
    }
}
