//! Plan: a saved [`Layout`] + the disks of the target machine + an optional mapping file ->
//! the ordered [`Step`]s that recreate the layout there. A pure function: it reads nothing and
//! runs nothing, so `rear-restore layout plan` can show exactly what `layout apply` will do.
//!
//! Disks are matched by the mapping file first, then by serial number, WWN, a shared
//! `/dev/disk/by-id` name, the same device name and size, and last by size (exact, then the
//! only disk the partitions fit on). Any step that could pick more than one disk stops the plan with a
//! message listing the candidates. Disks marked unavailable (the rescue medium, the backup
//! disk) are never targets. On the target, disk and partition paths change
//! (`/dev/sda2` -> `/dev/nvme0n1p2`); md, LVM and LUKS names stay.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use rear_model::layout::model::{
    Disk, Filesystem, FsType, Layout, Luks, MdArray, PartFlag, Partition, PartitionTable, Swap,
    TableKind,
};
use rear_model::layout::model::{MOUNT_ROOT, partition_path};
use rear_model::units::human;
use rear_sys::layout::show::lv_path as lv_mapper_path;

mod matching;
mod render;
mod resize;

pub use matching::describe;
use matching::match_disks;
use resize::{needed_bytes, place_table};

/// Errors of planning.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A line of the mapping file is not `OLD NEW`.
    #[error("{path}:{line}: expected \"OLD-DEVICE-OR-ID NEW-DEVICE\", found {text:?}")]
    Mapping {
        /// The mapping file.
        path: String,
        /// Line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A mapping names a disk the target does not have, or one that must not be touched.
    #[error("mapping {old} -> {new}: {reason}")]
    BadMapping {
        /// The saved disk (as written in the mapping).
        old: String,
        /// The target device.
        new: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// More than one disk fits.
    #[error(
        "{old} ({}) matches several disks by {by}: {}; say which in /etc/rear/mappings/disks (\"{old} /dev/NEW\")",
        describe(.old_disk), .candidates.join(", ")
    )]
    Ambiguous {
        /// The saved disk.
        old: String,
        /// Its description.
        old_disk: Box<Disk>,
        /// How they matched.
        by: String,
        /// The candidates, described.
        candidates: Vec<String>,
    },
    /// No disk fits.
    #[error("no disk for {old} ({}, needs {}): {}", describe(.old_disk), human(*.needed), if .candidates.is_empty() { "no unused disk left".to_string() } else { format!("available: {}", .candidates.join(", ")) })]
    NoDisk {
        /// The saved disk.
        old: String,
        /// Its description.
        old_disk: Box<Disk>,
        /// Bytes the partitions need.
        needed: u64,
        /// Unused disks, described.
        candidates: Vec<String>,
    },
    /// A partition cannot be placed on a disk with another sector size.
    #[error(
        "{partition}: starts or ends at byte {bytes}, not a multiple of {new}'s {sector}-byte sectors"
    )]
    SectorSize {
        /// The partition.
        partition: String,
        /// The offending offset.
        bytes: u64,
        /// The target disk.
        new: String,
        /// Its logical sector size.
        sector: u32,
    },
    /// Something needs a device nothing creates (a file system on an excluded disk).
    #[error("{step} needs {device}, which no step creates and is not on a target disk")]
    Unsatisfied {
        /// The step.
        step: String,
        /// The device.
        device: String,
    },
}

/// A disk of the target machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDisk {
    /// Identity and size (its `table` is ignored).
    pub disk: Disk,
    /// Why it must not be touched (holds the rescue medium or the backup), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// What to do with extra space on a larger disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// The partition that ends last grows to the end of the disk (GPT, or a primary MBR one).
    #[default]
    Last,
    /// Partitions keep their sizes; the rest stays free.
    None,
}

/// Lines of `/etc/rear/mappings/disks`: `OLD NEW`, `#` comments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mappings {
    /// (old device, by-id name, serial or WWN; new device), in file order.
    pub pairs: Vec<(String, String)>,
}

impl Mappings {
    /// Parses a mapping file; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Mappings, Error> {
        let mut pairs = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [old, new] if new.starts_with("/dev/") => {
                    pairs.push(((*old).to_string(), (*new).to_string()))
                }
                _ => {
                    return Err(Error::Mapping {
                        path: path.to_string(),
                        line: i + 1,
                        text: raw.to_string(),
                    });
                }
            }
        }
        Ok(Mappings { pairs })
    }
}

/// How a saved disk was matched to a target disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// The mapping file.
    Mapping,
    /// Serial number.
    Serial,
    /// World wide name.
    Wwn,
    /// A `/dev/disk/by-id` name.
    ById,
    /// Same device name and size.
    NameAndSize,
    /// Exact size.
    Size,
    /// The only unused disk the partitions fit on (larger, or smaller with room).
    Fits,
}

/// One saved disk and the disk it is recreated on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskMatch {
    /// The saved disk.
    pub old: String,
    /// The target disk.
    pub new: String,
    /// How they were matched.
    pub by: MatchedBy,
    /// Saved size in bytes.
    pub old_size: u64,
    /// Target size in bytes.
    pub new_size: u64,
}

/// One action of the plan, with the devices it works on renamed for the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Remove every signature (partition tables, RAID, LVM, file systems) from a disk.
    Wipe {
        /// The target disk.
        disk: String,
    },
    /// Write the partition table.
    Partition {
        /// The target disk.
        disk: String,
        /// Its logical sector size.
        sector_size: u32,
        /// The table, partitions renamed and resized.
        table: PartitionTable,
    },
    /// Create an md array.
    Md {
        /// The array, members renamed.
        array: MdArray,
    },
    /// Format and open a LUKS container.
    Luks {
        /// The container, device renamed.
        luks: Luks,
    },
    /// Create an LVM physical volume.
    Pv {
        /// Device.
        device: String,
        /// PV UUID.
        uuid: String,
    },
    /// Create a volume group.
    Vg {
        /// Name.
        name: String,
        /// Extent size in bytes.
        extent_size: u64,
        /// PV devices.
        pvs: Vec<String>,
    },
    /// Create a logical volume.
    Lv {
        /// Volume group.
        vg: String,
        /// The volume.
        lv: rear_model::layout::model::LogicalVolume,
    },
    /// Make a file system.
    Mkfs {
        /// The file system, device renamed.
        fs: Filesystem,
    },
    /// Make a swap area.
    Mkswap {
        /// The swap area, device renamed.
        swap: Swap,
    },
    /// Create btrfs subvolumes and set the default one.
    Subvolumes {
        /// The file system's device.
        device: String,
        /// Subvolumes, parents first.
        subvolumes: Vec<rear_model::layout::model::Subvolume>,
        /// The default subvolume (empty: top level).
        default: String,
    },
    /// Mount a file system below [`MOUNT_ROOT`].
    Mount {
        /// Device.
        device: String,
        /// Type.
        fstype: FsType,
        /// Mount point on the recovered system (`/boot/efi`).
        target: String,
        /// Options for the mount during recovery.
        options: String,
        /// btrfs subvolume, if any.
        subvolume: String,
    },
}

/// A step: an action, the devices it creates and those it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Stable identifier (`partition /dev/vda`), used to record completion.
    pub id: String,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
    /// Devices (or `mount:/path`) this step makes.
    pub creates: Vec<String>,
    /// Devices this step needs.
    pub needs: Vec<String>,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Host the layout came from.
    pub hostname: String,
    /// Saved disks and their targets.
    pub disks: Vec<DiskMatch>,
    /// Old device path -> new, for disks and partitions (finalize rewrites configs with it).
    pub renames: BTreeMap<String, String>,
    /// Steps in the order they run.
    pub steps: Vec<Step>,
}

/// Makes the plan. `resize` says what to do with extra space.
pub fn plan(
    layout: &Layout,
    target: &[TargetDisk],
    mappings: &Mappings,
    resize: Resize,
) -> Result<Plan, Error> {
    let matches = match_disks(layout, target, mappings)?;
    let mut renames = BTreeMap::new();
    let mut steps = Vec::new();
    for m in &matches {
        renames.insert(m.old.clone(), m.new.clone());
        steps.push(Step {
            id: format!("wipe {}", m.new),
            action: Action::Wipe {
                disk: m.new.clone(),
            },
            creates: vec![],
            needs: vec![m.new.clone()],
        });
    }
    for m in &matches {
        let Some(old) = layout.disk(&m.old) else {
            continue;
        };
        let Some(table) = &old.table else { continue };
        #[allow(clippy::expect_used)] // match_disks only returns present targets
        let new = &target
            .iter()
            .find(|t| t.disk.device == m.new)
            .expect("matched target exists")
            .disk;
        let table = place_table(old, table, new, resize)?;
        for (o, n) in old
            .table
            .iter()
            .flat_map(|t| &t.partitions)
            .zip(&table.partitions)
        {
            renames.insert(o.device.clone(), n.device.clone());
        }
        steps.push(Step {
            id: format!("partition {}", m.new),
            creates: table.partitions.iter().map(|p| p.device.clone()).collect(),
            needs: vec![format!("wiped:{}", m.new)],
            action: Action::Partition {
                disk: m.new.clone(),
                sector_size: new.logical_sector_size,
                table,
            },
        });
    }
    // Wipes create the "wiped:" marker the partition step needs, so that no table is written
    // before its disk is clean.
    for s in &mut steps {
        if let Action::Wipe { disk } = &s.action {
            s.creates.push(format!("wiped:{disk}"));
        }
    }
    let r = |d: &str| renames.get(d).cloned().unwrap_or_else(|| d.to_string());
    for md in &layout.md {
        let mut array = md.clone();
        array.members = md.members.iter().map(|d| r(d)).collect();
        array.spares = md.spares.iter().map(|d| r(d)).collect();
        steps.push(Step {
            id: format!("md {}", md.device),
            creates: vec![md.device.clone()],
            needs: array.members.iter().chain(&array.spares).cloned().collect(),
            action: Action::Md { array },
        });
    }
    for l in &layout.luks {
        let mut luks = l.clone();
        luks.device = r(&l.device);
        steps.push(Step {
            id: format!("luks {}", l.name),
            creates: vec![format!("/dev/mapper/{}", l.name)],
            needs: vec![luks.device.clone()],
            action: Action::Luks { luks },
        });
    }
    for vg in &layout.lvm {
        for pv in &vg.pvs {
            let device = r(&pv.device);
            steps.push(Step {
                id: format!("pv {}", pv.device),
                creates: vec![format!("pv:{device}")],
                needs: vec![device.clone()],
                action: Action::Pv {
                    device,
                    uuid: pv.uuid.clone(),
                },
            });
        }
        let pvs: Vec<String> = vg.pvs.iter().map(|p| r(&p.device)).collect();
        steps.push(Step {
            id: format!("vg {}", vg.name),
            creates: vec![format!("vg:{}", vg.name)],
            needs: pvs.iter().map(|d| format!("pv:{d}")).collect(),
            action: Action::Vg {
                name: vg.name.clone(),
                extent_size: vg.extent_size,
                pvs,
            },
        });
        for lv in &vg.lvs {
            let mut needs = vec![format!("vg:{}", vg.name)];
            if let rear_model::layout::model::LvKind::Thin { pool } = &lv.kind {
                needs.push(format!("/dev/{}/{}", vg.name, pool));
            }
            steps.push(Step {
                id: format!("lv {}/{}", vg.name, lv.name),
                creates: vec![
                    format!("/dev/{}/{}", vg.name, lv.name),
                    lv_mapper_path(&vg.name, &lv.name),
                ],
                needs,
                action: Action::Lv {
                    vg: vg.name.clone(),
                    lv: lv.clone(),
                },
            });
        }
    }
    for f in &layout.filesystems {
        let mut fs = f.clone();
        fs.device = r(&f.device);
        let subvolumes = fs.options.subvolumes.clone();
        let default = fs.options.default_subvolume.clone();
        let device = fs.device.clone();
        steps.push(Step {
            id: format!("mkfs {}", f.device),
            creates: vec![format!("fs:{device}")],
            needs: vec![device.clone()],
            action: Action::Mkfs { fs },
        });
        if fs_has_subvolumes(&subvolumes, &default) {
            steps.push(Step {
                id: format!("subvolumes {}", f.device),
                creates: vec![format!("subvolumes:{device}")],
                needs: vec![format!("fs:{device}")],
                action: Action::Subvolumes {
                    device,
                    subvolumes: parents_first(subvolumes),
                    default,
                },
            });
        }
    }
    for s in &layout.swap {
        let mut swap = s.clone();
        swap.device = r(&s.device);
        steps.push(Step {
            id: format!("mkswap {}", s.device),
            creates: vec![],
            needs: vec![swap.device.clone()],
            action: Action::Mkswap { swap },
        });
    }
    let mounted: BTreeSet<&str> = layout.mounts.iter().map(|m| m.target.as_str()).collect();
    for m in &layout.mounts {
        let Some(fs) = layout.filesystem(&m.device) else {
            continue;
        };
        let device = r(&m.device);
        let mut needs = vec![format!("fs:{device}")];
        if fs_has_subvolumes(&fs.options.subvolumes, &fs.options.default_subvolume) {
            needs.push(format!("subvolumes:{device}"));
        }
        if let Some(parent) = parent_mount(&m.target, &mounted) {
            needs.push(format!("mount:{parent}"));
        }
        steps.push(Step {
            id: format!("mount {}", m.target),
            creates: vec![format!("mount:{}", m.target)],
            needs,
            action: Action::Mount {
                device,
                fstype: fs.fstype.clone(),
                target: m.target.clone(),
                options: recovery_mount_options(&m.options),
                subvolume: m.subvolume.clone(),
            },
        });
    }
    let available: BTreeSet<String> = matches.iter().map(|m| m.new.clone()).collect();
    let steps = order(steps, &available)?;
    Ok(Plan {
        hostname: layout.hostname.clone(),
        disks: matches,
        renames,
        steps,
    })
}

fn fs_has_subvolumes(subvolumes: &[rear_model::layout::model::Subvolume], default: &str) -> bool {
    !subvolumes.is_empty() || !default.is_empty()
}

/// Subvolumes sorted so that `@/var` comes after `@`.
fn parents_first(
    mut v: Vec<rear_model::layout::model::Subvolume>,
) -> Vec<rear_model::layout::model::Subvolume> {
    v.sort_by(|a, b| {
        (a.path.matches('/').count(), &a.path).cmp(&(b.path.matches('/').count(), &b.path))
    });
    v
}

/// The nearest mount point above `target` among `mounted`.
fn parent_mount<'a>(target: &str, mounted: &BTreeSet<&'a str>) -> Option<&'a str> {
    if target == "/" {
        return None;
    }
    let mut p = std::path::Path::new(target).parent();
    while let Some(dir) = p {
        if let Some(m) = mounted.get(dir.to_str().unwrap_or("")) {
            return Some(m);
        }
        p = dir.parent();
    }
    None
}

/// Host mount options minus those that would get in the way of restoring: `ro` (the restore
/// writes), and btrfs's `subvol`/`subvolid` (ids differ on a new file system; the step mounts
/// by subvolume path).
fn recovery_mount_options(options: &str) -> String {
    options
        .split(',')
        .filter(|o| {
            !o.is_empty()
                && *o != "ro"
                && *o != "rw"
                && !o.starts_with("subvol=")
                && !o.starts_with("subvolid=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Orders steps so that each runs after the steps creating what it needs; ties keep the
/// order of the list (disks, md, LUKS, LVM, file systems, swap, mounts).
fn order(steps: Vec<Step>, disks: &BTreeSet<String>) -> Result<Vec<Step>, Error> {
    let mut made: BTreeSet<String> = disks.clone();
    let creatable: BTreeSet<&String> = steps.iter().flat_map(|s| &s.creates).collect();
    for s in &steps {
        for n in &s.needs {
            if !made.contains(n) && !creatable.contains(n) {
                return Err(Error::Unsatisfied {
                    step: s.id.clone(),
                    device: n.clone(),
                });
            }
        }
    }
    let mut pending = steps;
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let Some(i) = pending
            .iter()
            .position(|s| s.needs.iter().all(|n| made.contains(n)))
        else {
            // A cycle: report the first step and what it waits for.
            let s = &pending[0];
            let missing = s
                .needs
                .iter()
                .find(|n| !made.contains(*n))
                .cloned()
                .unwrap_or_default();
            return Err(Error::Unsatisfied {
                step: s.id.clone(),
                device: missing,
            });
        };
        let s = pending.remove(i);
        made.extend(s.creates.iter().cloned());
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::layout::model::{
        BootMode, LAYOUT_VERSION, LogicalVolume, LvKind, Mount, PhysicalVolume, Subvolume,
        VolumeGroup,
    };

    const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    const GIB: u64 = 1 << 30;

    fn part(disk: &str, number: u32, start: u64, size: u64, type_: &str) -> Partition {
        Partition {
            device: partition_path(disk, number),
            number,
            start,
            size,
            start_bytes: start * 512,
            size_bytes: size * 512,
            type_: type_.into(),
            uuid: format!("00000000-0000-4000-8000-00000000000{number}"),
            ..Partition::default()
        }
    }

    fn disk(device: &str, size: u64, serial: &str, parts: Vec<Partition>) -> Disk {
        Disk {
            device: device.into(),
            size,
            logical_sector_size: 512,
            physical_sector_size: 512,
            serial: serial.into(),
            table: (!parts.is_empty()).then(|| PartitionTable {
                kind: TableKind::Gpt,
                id: "11111111-2222-4333-8444-555555555555".into(),
                first_lba: Some(2048),
                last_lba: Some(size / 512 - 34),
                partitions: parts,
            }),
            ..Disk::default()
        }
    }

    fn fs(device: &str, fstype: FsType, uuid: &str) -> Filesystem {
        Filesystem {
            device: device.into(),
            fstype,
            uuid: uuid.into(),
            label: String::new(),
            options: Default::default(),
        }
    }

    fn mount(device: &str, target: &str) -> Mount {
        Mount {
            device: device.into(),
            target: target.into(),
            options: "rw,relatime".into(),
            subvolume: String::new(),
        }
    }

    /// GPT with ESP, swap and ext4 root on a 1 GiB /dev/sda.
    fn simple() -> Layout {
        let d = "/dev/sda";
        Layout {
            version: LAYOUT_VERSION,
            hostname: "web1".into(),
            boot_mode: BootMode::Uefi,
            disks: vec![disk(
                d,
                GIB,
                "S1",
                vec![
                    part(d, 1, 2048, 131072, ESP),
                    part(d, 2, 133120, 262144, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"),
                    part(d, 3, 395264, 1701854, LINUX),
                ],
            )],
            filesystems: vec![
                fs("/dev/sda1", FsType::Vfat, "ABCD-1234"),
                fs(
                    "/dev/sda3",
                    FsType::Ext4,
                    "aaaaaaaa-0000-4000-8000-000000000003",
                ),
            ],
            swap: vec![Swap {
                device: "/dev/sda2".into(),
                uuid: "bbbbbbbb-0000-4000-8000-000000000002".into(),
                label: String::new(),
            }],
            mounts: vec![mount("/dev/sda3", "/"), mount("/dev/sda1", "/boot/efi")],
            ..Layout::default()
        }
    }

    fn target(device: &str, size: u64, serial: &str) -> TargetDisk {
        TargetDisk {
            disk: disk(device, size, serial, vec![]),
            unavailable: None,
        }
    }

    fn ids(p: &Plan) -> Vec<&str> {
        p.steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn plan_same_disk_by_serial_in_dependency_order() {
        let p = plan(
            &simple(),
            &[
                target("/dev/sdb", GIB, "OTHER"),
                target("/dev/sda", GIB, "S1"),
            ],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap();
        assert_eq!(p.disks[0].by, MatchedBy::Serial);
        assert_eq!(p.disks[0].new, "/dev/sda");
        assert_eq!(
            ids(&p),
            [
                "wipe /dev/sda",
                "partition /dev/sda",
                "mkfs /dev/sda1",
                "mkfs /dev/sda3",
                "mkswap /dev/sda2",
                "mount /",
                "mount /boot/efi",
            ]
        );
        let expected = expect_test::expect![[r#"
            Layout of web1:
              /dev/sda (1.0 GiB) -> /dev/sda (1.0 GiB), matched by serial
            Steps:
               1. wipe all signatures on /dev/sda
               2. GPT partition table on /dev/sda: 1 64 MiB EFI System; 2 128 MiB Linux swap; 3 831 MiB Linux filesystem
               3. vfat on /dev/sda1 (UUID ABCD-1234)
               4. ext4 on /dev/sda3 (UUID aaaaaaaa-0000-4000-8000-000000000003)
               5. swap on /dev/sda2 (UUID bbbbbbbb-0000-4000-8000-000000000002)
               6. mount /dev/sda3 on /mnt/local
               7. mount /dev/sda1 on /mnt/local/boot/efi
        "#]];
        expected.assert_eq(&p.render());
    }

    #[test]
    fn plan_renames_to_nvme_and_grows_last_partition() {
        let p = plan(
            &simple(),
            &[target("/dev/nvme0n1", 2 * GIB, "NEW")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap();
        assert_eq!(p.disks[0].by, MatchedBy::Fits);
        assert_eq!(p.renames["/dev/sda3"], "/dev/nvme0n1p3");
        let Action::Partition { table, .. } = &p.steps[1].action else {
            panic!("{:?}", p.steps[1]);
        };
        let last = &table.partitions[2];
        assert_eq!(last.device, "/dev/nvme0n1p3");
        assert_eq!(last.start, 395264);
        // 2 GiB = 4194304 sectors; the backup GPT takes the last 33.
        assert_eq!(last.start + last.size, 4194304 - 33);
        assert_eq!(table.partitions[0].size, 131072, "others keep their size");
        let Action::Mount { device, .. } = &p.steps.last().unwrap().action else {
            panic!()
        };
        assert_eq!(device, "/dev/nvme0n1p1");
        // Without growing, sizes stay.
        let p = plan(
            &simple(),
            &[target("/dev/vda", 2 * GIB, "")],
            &Mappings::default(),
            Resize::None,
        )
        .unwrap();
        let Action::Partition { table, .. } = &p.steps[1].action else {
            panic!()
        };
        assert_eq!(table.partitions[2].size, 1701854);
        assert_eq!(table.partitions[2].device, "/dev/vda3");
    }

    #[test]
    fn plan_ambiguous_lists_candidates() {
        let e = plan(
            &simple(),
            &[target("/dev/vda", GIB, ""), target("/dev/vdb", GIB, "")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/sda (/dev/sda (1.0 GiB, serial S1)) matches several disks by size: \
             /dev/vda (1.0 GiB), /dev/vdb (1.0 GiB); say which in /etc/rear/mappings/disks \
             (\"/dev/sda /dev/NEW\")"
        );
        // A mapping settles it.
        let m = Mappings::parse("# new server\n/dev/sda /dev/vdb\n", "disks").unwrap();
        let p = plan(
            &simple(),
            &[target("/dev/vda", GIB, ""), target("/dev/vdb", GIB, "")],
            &m,
            Resize::Last,
        )
        .unwrap();
        assert_eq!(p.disks[0].new, "/dev/vdb");
        assert_eq!(p.disks[0].by, MatchedBy::Mapping);
    }

    #[test]
    fn plan_too_small_and_unavailable_disks() {
        let e = plan(
            &simple(),
            &[target("/dev/vda", GIB / 2, "")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no disk for /dev/sda (/dev/sda (1.0 GiB, serial S1), needs"),
            "{e}"
        );
        // A disk holding the rescue medium is never a target, even with the same serial.
        let mut t = target("/dev/sda", GIB, "S1");
        t.unavailable = Some("holds the rescue medium".into());
        let e = plan(&simple(), &[t.clone()], &Mappings::default(), Resize::Last).unwrap_err();
        assert!(e.to_string().contains("no unused disk left"), "{e}");
        let m = Mappings::parse("/dev/sda /dev/sda", "disks").unwrap();
        let e = plan(&simple(), &[t], &m, Resize::Last).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mapping /dev/sda -> /dev/sda: /dev/sda must not be overwritten: holds the rescue medium"
        );
        // A smaller disk is fine while the partitions fit.
        let mut l = simple();
        l.disks[0].size = 2 * GIB;
        let p = plan(
            &l,
            &[target("/dev/vda", GIB, "")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap();
        assert_eq!(p.disks[0].new, "/dev/vda");
    }

    #[test]
    fn mappings_parse_errors_name_line() {
        let e = Mappings::parse(
            "/dev/sda /dev/vda\n\n/dev/sdb\n",
            "/etc/rear/mappings/disks",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/rear/mappings/disks:3: expected \"OLD-DEVICE-OR-ID NEW-DEVICE\", found \"/dev/sdb\""
        );
        let m = Mappings::parse("ata-QEMU_HARDDISK_S1 /dev/vda # by id\n", "m").unwrap();
        assert_eq!(
            m.pairs,
            [("ata-QEMU_HARDDISK_S1".into(), "/dev/vda".into())]
        );
    }

    /// md RAID1 over two disks, LVM with a thin pool, xfs, and btrfs with subvolumes.
    fn stacked() -> Layout {
        let mut l = Layout {
            version: LAYOUT_VERSION,
            hostname: "db1".into(),
            ..Layout::default()
        };
        for (d, serial) in [("/dev/sda", "A"), ("/dev/sdb", "B")] {
            l.disks.push(disk(
                d,
                GIB,
                serial,
                vec![
                    part(d, 1, 2048, 2048, "21686148-6449-6E6F-744E-656564454649"),
                    part(d, 2, 4096, 2091008, "A19D880F-05FC-4D3B-A006-743F0F84911E"),
                ],
            ));
        }
        l.md.push(MdArray {
            device: "/dev/md0".into(),
            name: "db1:0".into(),
            uuid: "01234567:89abcdef:01234567:89abcdef".into(),
            level: "raid1".into(),
            metadata: "1.2".into(),
            raid_devices: 2,
            members: vec!["/dev/sda2".into(), "/dev/sdb2".into()],
            ..MdArray::default()
        });
        l.lvm.push(VolumeGroup {
            name: "vg-data".into(),
            uuid: "vguuid".into(),
            extent_size: 4 << 20,
            pvs: vec![PhysicalVolume {
                device: "/dev/md0".into(),
                uuid: "pvuuid".into(),
                size: 1000 << 20,
            }],
            lvs: vec![
                LogicalVolume {
                    name: "root".into(),
                    uuid: String::new(),
                    size: 400 << 20,
                    kind: LvKind::Linear,
                },
                LogicalVolume {
                    name: "pool".into(),
                    uuid: String::new(),
                    size: 200 << 20,
                    kind: LvKind::ThinPool {
                        chunk_size: 64 << 10,
                        metadata_size: 4 << 20,
                    },
                },
                LogicalVolume {
                    name: "srv".into(),
                    uuid: String::new(),
                    size: 1 << 30,
                    kind: LvKind::Thin {
                        pool: "pool".into(),
                    },
                },
            ],
        });
        l.filesystems
            .push(fs("/dev/mapper/vg--data-root", FsType::Xfs, "x-root"));
        let mut b = fs("/dev/mapper/vg--data-srv", FsType::Btrfs, "b-srv");
        b.options.subvolumes = vec![
            Subvolume {
                path: "@/db".into(),
                nodatacow: true,
            },
            Subvolume {
                path: "@".into(),
                nodatacow: false,
            },
        ];
        b.options.default_subvolume = "@".into();
        l.filesystems.push(b);
        l.mounts = vec![
            mount("/dev/mapper/vg--data-root", "/"),
            Mount {
                subvolume: "@".into(),
                options: "rw,relatime,subvolid=256,subvol=/@".into(),
                ..mount("/dev/mapper/vg--data-srv", "/srv")
            },
        ];
        l
    }

    #[test]
    fn plan_stacked_orders_md_lvm_thin_and_subvolumes() {
        let p = plan(
            &stacked(),
            &[target("/dev/vdb", GIB, "B"), target("/dev/vda", GIB, "A")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap();
        assert_eq!(
            ids(&p),
            [
                "wipe /dev/vda",
                "wipe /dev/vdb",
                "partition /dev/vda",
                "partition /dev/vdb",
                "md /dev/md0",
                "pv /dev/md0",
                "vg vg-data",
                "lv vg-data/root",
                "lv vg-data/pool",
                "lv vg-data/srv",
                "mkfs /dev/mapper/vg--data-root",
                "mkfs /dev/mapper/vg--data-srv",
                "subvolumes /dev/mapper/vg--data-srv",
                "mount /",
                "mount /srv",
            ]
        );
        let Action::Md { array } = &p.steps[4].action else {
            panic!()
        };
        assert_eq!(array.members, ["/dev/vda2", "/dev/vdb2"]);
        let Action::Subvolumes { subvolumes, .. } = &p.steps[12].action else {
            panic!()
        };
        assert_eq!(subvolumes[0].path, "@", "parents first");
        let Action::Mount {
            options, subvolume, ..
        } = &p.steps[14].action
        else {
            panic!()
        };
        assert_eq!(options, "relatime");
        assert_eq!(subvolume, "@");
        // JSON form round-trips (rear-restore layout plan --json).
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), p);
    }

    #[test]
    fn plan_unsatisfied_names_step_and_device() {
        let mut l = simple();
        l.filesystems
            .push(fs("/dev/sdz1", FsType::Ext4, "on-a-disk-not-in-the-layout"));
        let e = plan(
            &l,
            &[target("/dev/sda", GIB, "S1")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "mkfs /dev/sdz1 needs /dev/sdz1, which no step creates and is not on a target disk"
        );
    }

    #[test]
    fn plan_apply_fixtures_onto_blank_disks() {
        // The layouts the VM tests apply (testvm/layout.rs) plan onto disks like theirs.
        for (name, text, disks) in [
            (
                "gpt-esp-ext4-swap",
                include_str!("../../../../tests/fixtures/layout-apply/gpt-esp-ext4-swap.json"),
                vec![target("/dev/vda", GIB, "NEW-1")],
            ),
            (
                "luks2-lvm-ext4",
                include_str!("../../../../tests/fixtures/layout-apply/luks2-lvm-ext4.json"),
                vec![target("/dev/vda", GIB, "NEW-1")],
            ),
            (
                "btrfs-subvolumes",
                include_str!("../../../../tests/fixtures/layout-apply/btrfs-subvolumes.json"),
                vec![target("/dev/nvme0n1", 2 * GIB, "NEW")],
            ),
        ] {
            let l = Layout::from_json(text, name).unwrap();
            let p = plan(&l, &disks, &Mappings::default(), Resize::Last).unwrap();
            assert!(
                p.steps.last().unwrap().creates[0].starts_with("mount:"),
                "{name}"
            );
        }
        let l = Layout::from_json(
            include_str!("../../../../tests/fixtures/layout-apply/raid1-lvm-xfs.json"),
            "raid1",
        )
        .unwrap();
        let e = plan(
            &l,
            &[target("/dev/vda", GIB, ""), target("/dev/vdb", GIB, "")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Ambiguous { .. }), "{e}");
    }

    use rear_testutil::layout::golden as captured;

    /// Golden plans of the captured layouts: each onto another machine's disks.
    #[test]
    fn plan_captured_layouts_golden() {
        let cases: [(&str, Vec<TargetDisk>, &str, expect_test::ExpectFile); 6] = [
            // Onto a larger NVMe disk: renamed, the last partition grows.
            (
                "gpt-esp-ext4",
                vec![target("/dev/nvme0n1", 2 * GIB, "NEWNVME")],
                "",
                expect_test::expect_file![
                    "../../../../tests/fixtures/layout/gpt-esp-ext4/plan.txt"
                ],
            ),
            // MBR with logical partitions onto a SATA disk of the same size.
            (
                "mbr",
                vec![target("/dev/sda", GIB, "NEWSATA")],
                "",
                expect_test::expect_file!["../../../../tests/fixtures/layout/mbr/plan.txt"],
            ),
            // The same two disks, found by serial although the kernel names them the other
            // way round.
            (
                "raid1-lvm-xfs",
                vec![
                    target("/dev/vda", GIB, "RAIDDISK0002"),
                    target("/dev/vdb", GIB, "RAIDDISK0001"),
                ],
                "",
                expect_test::expect_file![
                    "../../../../tests/fixtures/layout/raid1-lvm-xfs/plan.txt"
                ],
            ),
            (
                "luks2-lvm-ext4",
                vec![target("/dev/sda", GIB, "")],
                "",
                expect_test::expect_file![
                    "../../../../tests/fixtures/layout/luks2-lvm-ext4/plan.txt"
                ],
            ),
            (
                "btrfs-subvolumes",
                vec![target("/dev/vda", GIB, "BTRFSDISK0001")],
                "",
                expect_test::expect_file![
                    "../../../../tests/fixtures/layout/btrfs-subvolumes/plan.txt"
                ],
            ),
            // NVMe onto virtio, by a mapping file naming the old serial.
            (
                "nvme",
                vec![
                    target("/dev/vda", 2 * GIB, ""),
                    target("/dev/vdb", 2 * GIB, ""),
                ],
                "NVME0001 /dev/vdb\n",
                expect_test::expect_file!["../../../../tests/fixtures/layout/nvme/plan.txt"],
            ),
        ];
        for (name, disks, mapping, golden) in cases {
            let m = Mappings::parse(mapping, "disks").unwrap();
            let p = plan(&captured(name), &disks, &m, Resize::Last)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            golden.assert_eq(&p.render());
        }
    }

    #[test]
    fn plan_captured_layouts_ambiguous_and_too_small() {
        let e = plan(
            &captured("raid1-lvm-xfs"),
            &[target("/dev/sda", GIB, ""), target("/dev/sdb", GIB, "")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("matches several disks by size: /dev/sda (1.0 GiB), /dev/sdb (1.0 GiB)"),
            "{e}"
        );
        let e = plan(
            &captured("gpt-esp-ext4"),
            &[target("/dev/sda", GIB / 2, "")],
            &Mappings::default(),
            Resize::Last,
        )
        .unwrap_err();
        assert!(matches!(e, Error::NoDisk { .. }), "{e}");
        assert!(
            e.to_string().contains("available: /dev/sda (512 MiB)"),
            "{e}"
        );
    }

    #[test]
    fn partition_path_names() {
        assert_eq!(partition_path("/dev/sda", 2), "/dev/sda2");
        assert_eq!(partition_path("/dev/nvme0n1", 2), "/dev/nvme0n1p2");
        assert_eq!(partition_path("/dev/mmcblk0", 1), "/dev/mmcblk0p1");
    }
}
