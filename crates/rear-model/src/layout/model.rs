//! The storage layout of a host: the versioned contract between `rear-mkimage` (which
//! captures it, `layout::capture`) and `rear-restore` (which plans and replays it,
//! `layout::plan`). Serialised as JSON; `docs/layout.md` documents every field.
//!
//! Devices refer to each other by the path the host used (`/dev/sda2`, `/dev/md0`,
//! `/dev/mapper/vg0-root`): a RAID lists its members by those paths, an LVM physical volume
//! names the device it lives on, a file system names its device. The planner renames disk
//! and partition paths for the target machine; md, LVM and LUKS names stay as they were,
//! because fstab, crypttab and the boot loader may use them.

use serde::{Deserialize, Serialize};

/// Where `layout apply` mounts the recreated tree.
pub const MOUNT_ROOT: &str = "/mnt/local";

/// The path of partition `number` on `disk`: `p` before the number when the disk name ends
/// in a digit (`nvme0n1p2`, `mmcblk0p1`, `md0p1`), as the kernel names them.
pub fn partition_path(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// The version this program writes and reads. A layout with another version is refused
/// with an error naming both versions.
pub const LAYOUT_VERSION: u32 = 1;

/// The storage layout of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Format version ([`LAYOUT_VERSION`]).
    pub version: u32,
    /// The host name, for messages.
    #[serde(default)]
    pub hostname: String,
    /// How the host booted, which decides the boot loader to reinstall.
    #[serde(default)]
    pub boot_mode: BootMode,
    /// Whole disks with their partition tables, sorted by device.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// Software RAID arrays, sorted by device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub md: Vec<MdArray>,
    /// LVM volume groups, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lvm: Vec<VolumeGroup>,
    /// LUKS containers, sorted by the device they are on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub luks: Vec<Luks>,
    /// File systems, sorted by device.
    #[serde(default)]
    pub filesystems: Vec<Filesystem>,
    /// Swap areas, sorted by device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swap: Vec<Swap>,
    /// Mounts of the file systems, in mount order (parents first).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// What was left out and why (a USB stick, a network file system, a loop device).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Excluded>,
}

/// Firmware boot mode of the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// Legacy BIOS (GRUB in the MBR or a BIOS boot partition).
    #[default]
    Bios,
    /// UEFI (GRUB in the EFI system partition).
    Uefi,
}

/// A whole disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Kernel device path (`/dev/sda`, `/dev/nvme0n1`, `/dev/vda`).
    pub device: String,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size in bytes: partition starts and sizes count these.
    pub logical_sector_size: u32,
    /// Physical sector size in bytes.
    #[serde(default)]
    pub physical_sector_size: u32,
    /// Model as the disk reports it.
    #[serde(default)]
    pub model: String,
    /// Serial number.
    #[serde(default)]
    pub serial: String,
    /// World wide name (`0x5000c500a1b2c3d4`, `eui.…`).
    #[serde(default)]
    pub wwn: String,
    /// Names under `/dev/disk/by-id`, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_id: Vec<String>,
    /// Transport (`sata`, `nvme`, `usb`, `virtio`, …); empty when the kernel does not say.
    #[serde(default)]
    pub transport: String,
    /// The partition table; `None` for a disk used whole (a PV or RAID member on the bare disk).
    #[serde(default)]
    pub table: Option<PartitionTable>,
}

/// A partition table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionTable {
    /// GPT or MBR.
    pub kind: TableKind,
    /// The disk GUID (GPT) or the disk identifier (MBR, `0x1234abcd`).
    pub id: String,
    /// First usable sector (GPT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_lba: Option<u64>,
    /// Last usable sector (GPT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lba: Option<u64>,
    /// Partitions, sorted by number.
    pub partitions: Vec<Partition>,
}

/// Partition table types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// GUID partition table.
    #[default]
    Gpt,
    /// MBR ("dos") partition table.
    Dos,
}

/// One partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Device path (`/dev/sda2`, `/dev/nvme0n1p2`).
    pub device: String,
    /// Partition number.
    pub number: u32,
    /// First sector (logical sectors of the disk).
    pub start: u64,
    /// Length in sectors.
    pub size: u64,
    /// First byte (start × sector size), for readers.
    pub start_bytes: u64,
    /// Length in bytes.
    pub size_bytes: u64,
    /// GPT type GUID (upper case) or MBR type (`83`, `ef`, `5` …, hex without `0x`).
    #[serde(rename = "type")]
    pub type_: String,
    /// PARTUUID: the GPT partition GUID, or `<disk id>-<nn>` on MBR.
    #[serde(default)]
    pub uuid: String,
    /// GPT partition name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// GPT attribute bits as sfdisk writes them (`LegacyBIOSBootable GUID:63`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attrs: String,
    /// Roles derived from the type and the MBR boot flag, for people and the planner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<PartFlag>,
}

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartFlag {
    /// GRUB's BIOS boot partition on GPT.
    BiosGrub,
    /// EFI system partition.
    Esp,
    /// MBR active flag.
    Boot,
    /// Linux RAID member.
    Raid,
    /// LVM physical volume.
    Lvm,
    /// Swap.
    Swap,
    /// MBR extended partition (holds logical partitions).
    Extended,
}

/// A software RAID array (Linux md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdArray {
    /// Device path (`/dev/md0`, `/dev/md127`).
    pub device: String,
    /// The array name in the superblock (`host:root`), used for `/dev/md/<name>`.
    #[serde(default)]
    pub name: String,
    /// Array UUID as mdadm prints it (`1a2b3c4d:…`).
    pub uuid: String,
    /// RAID level (`raid0`, `raid1`, `raid5`, `raid6`, `raid10`).
    pub level: String,
    /// Superblock version (`1.2`, `1.0`, `0.90`).
    pub metadata: String,
    /// Number of active devices.
    pub raid_devices: u32,
    /// Chunk size in KiB (striped levels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_kib: Option<u32>,
    /// Layout (`left-symmetric`, `n2`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub layout: String,
    /// Active members by slot order.
    pub members: Vec<String>,
    /// Spare devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spares: Vec<String>,
}

/// An LVM volume group with its physical and logical volumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeGroup {
    /// VG name.
    pub name: String,
    /// VG UUID.
    pub uuid: String,
    /// Physical extent size in bytes.
    pub extent_size: u64,
    /// Physical volumes, sorted by device.
    pub pvs: Vec<PhysicalVolume>,
    /// Logical volumes in creation order: pools before the thin volumes in them.
    pub lvs: Vec<LogicalVolume>,
}

/// An LVM physical volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalVolume {
    /// The device it is on.
    pub device: String,
    /// PV UUID.
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
}

/// An LVM logical volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalVolume {
    /// LV name.
    pub name: String,
    /// LV UUID (LVM cannot set it on creation; kept for comparison).
    #[serde(default)]
    pub uuid: String,
    /// Size in bytes (the virtual size for thin volumes).
    pub size: u64,
    /// What kind of volume and its parameters.
    pub kind: LvKind,
}

/// LVM volume types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LvKind {
    /// Linear.
    #[default]
    Linear,
    /// Striped over `stripes` PVs.
    Striped {
        /// Number of stripes.
        stripes: u32,
        /// Stripe size in bytes.
        stripe_size: u64,
    },
    /// LVM RAID (`raid1`, `raid5`, …).
    Raid {
        /// Segment type (`raid1`, `raid5`, …).
        level: String,
        /// Number of stripes (data devices) or mirror images.
        stripes: u32,
    },
    /// A thin pool.
    ThinPool {
        /// Chunk size in bytes.
        chunk_size: u64,
        /// Metadata LV size in bytes.
        metadata_size: u64,
    },
    /// A thin volume in `pool`.
    Thin {
        /// The pool's LV name.
        pool: String,
    },
}

/// A LUKS container: header parameters only, never a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Luks {
    /// The encrypted device (`/dev/sda3`).
    pub device: String,
    /// The name it is opened as (`/dev/mapper/<name>`), from crypttab or the running system.
    pub name: String,
    /// LUKS version (1 or 2).
    pub version: u8,
    /// Cipher with mode (`aes-xts-plain64`).
    pub cipher: String,
    /// Key size in bits.
    pub key_size: u32,
    /// Hash (`sha256`).
    pub hash: String,
    /// Key derivation (`argon2id`, `pbkdf2`).
    #[serde(default)]
    pub pbkdf: String,
    /// Encryption sector size in bytes (LUKS2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_size: Option<u32>,
    /// Header UUID.
    pub uuid: String,
    /// Label (LUKS2).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
}

/// File system types the planner can recreate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    /// ext2.
    Ext2,
    /// ext3.
    Ext3,
    /// ext4.
    Ext4,
    /// XFS.
    Xfs,
    /// Btrfs.
    Btrfs,
    /// FAT (EFI system partitions).
    Vfat,
}

impl FsType {
    /// The name used by mkfs and mount.
    pub fn as_str(&self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
            FsType::Btrfs => "btrfs",
            FsType::Vfat => "vfat",
        }
    }

    /// Parses a blkid/lsblk type name.
    pub fn parse(s: &str) -> Option<FsType> {
        Some(match s {
            "ext2" => FsType::Ext2,
            "ext3" => FsType::Ext3,
            "ext4" => FsType::Ext4,
            "xfs" => FsType::Xfs,
            "btrfs" => FsType::Btrfs,
            "vfat" | "fat" | "msdos" => FsType::Vfat,
            _ => return None,
        })
    }
}

/// A file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// The device it is on.
    pub device: String,
    /// Type.
    #[serde(rename = "type")]
    pub fstype: FsType,
    /// UUID (`ABCD-1234` for FAT).
    pub uuid: String,
    /// Label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// The mkfs options that matter for this type.
    #[serde(default)]
    pub options: FsOptions,
}

/// mkfs parameters worth keeping, per type; empty fields take mkfs's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsOptions {
    /// ext: block size in bytes; xfs: block size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    /// ext: inode size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode_size: Option<u32>,
    /// ext: the feature list (`has_journal`, `extent`, `64bit`, …), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// xfs: sector size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_size: Option<u32>,
    /// btrfs: data profile (`single`, `raid1`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_profile: String,
    /// btrfs: metadata profile (`dup`, `raid1`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata_profile: String,
    /// btrfs: subvolumes, sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subvolumes: Vec<Subvolume>,
    /// btrfs: the default subvolume's path (empty: the top level).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_subvolume: String,
    /// vfat: FAT size (12, 16 or 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fat_size: Option<u8>,
}

/// A btrfs subvolume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subvolume {
    /// Path below the top level (`@`, `@home`, `@/var/lib/machines`).
    pub path: String,
    /// Copy-on-write disabled (`chattr +C`), as for databases and VM images.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nodatacow: bool,
}

/// A swap area.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swap {
    /// The device it is on.
    pub device: String,
    /// UUID.
    pub uuid: String,
    /// Label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
}

/// A mount of a file system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// The device of the file system.
    pub device: String,
    /// Mount point on the host (`/`, `/boot/efi`).
    pub target: String,
    /// Mount options as the host had them.
    #[serde(default)]
    pub options: String,
    /// btrfs: the subvolume mounted (`@home`), always named, even when it is the default;
    /// empty for the top level when the top level is the default, `/` for the top level
    /// when another subvolume is the default (mount it with `subvol=/`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subvolume: String,
}

/// Something capture saw and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Excluded {
    /// The device or mount point.
    pub what: String,
    /// Why (for the operator).
    pub reason: String,
}

/// Errors reading a layout file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not valid layout JSON.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What serde said.
        message: String,
    },
    /// Written by another version of the tools.
    #[error("{path}: layout version {found}, this program reads version {LAYOUT_VERSION}")]
    Version {
        /// The file.
        path: String,
        /// The version in the file.
        found: u32,
    },
}

impl Layout {
    /// Parses layout JSON; `path` names the source in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Layout, Error> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let err = |e: serde_json::Error| Error::Parse {
            path: path.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        };
        let v: Versioned = serde_json::from_str(text).map_err(err)?;
        if v.version != LAYOUT_VERSION {
            return Err(Error::Version {
                path: path.to_string(),
                found: v.version,
            });
        }
        serde_json::from_str(text).map_err(err)
    }

    /// Pretty JSON with a final newline; fields in declaration order, lists sorted by
    /// capture, so equal layouts give equal bytes.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and vectors always serialises.
        #[allow(clippy::expect_used)]
        let mut s = serde_json::to_string_pretty(self).expect("layout serialises");
        s.push('\n');
        s
    }

    /// The disk with this device path.
    pub fn disk(&self, device: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.device == device)
    }

    /// The file system on `device`.
    pub fn filesystem(&self, device: &str) -> Option<&Filesystem> {
        self.filesystems.iter().find(|f| f.device == device)
    }

    /// Puts every list in its canonical order (capture and tests call it).
    pub fn sort(&mut self) {
        self.disks.sort_by(|a, b| a.device.cmp(&b.device));
        for d in &mut self.disks {
            d.by_id.sort();
            if let Some(t) = &mut d.table {
                t.partitions.sort_by_key(|p| p.number);
            }
        }
        self.md.sort_by(|a, b| a.device.cmp(&b.device));
        self.lvm.sort_by(|a, b| a.name.cmp(&b.name));
        for vg in &mut self.lvm {
            vg.pvs.sort_by(|a, b| a.device.cmp(&b.device));
        }
        self.luks.sort_by(|a, b| a.device.cmp(&b.device));
        self.filesystems.sort_by(|a, b| a.device.cmp(&b.device));
        for f in &mut self.filesystems {
            f.options.features.sort();
            f.options.subvolumes.sort_by(|a, b| a.path.cmp(&b.path));
        }
        self.swap.sort_by(|a, b| a.device.cmp(&b.device));
        // Parents before children; equal depth by path, so the order is stable.
        self.mounts.sort_by(|a, b| {
            let depth = |m: &Mount| {
                if m.target == "/" {
                    0
                } else {
                    m.target.matches('/').count()
                }
            };
            (depth(a), &a.target).cmp(&(depth(b), &b.target))
        });
        self.excluded.sort_by(|a, b| a.what.cmp(&b.what));
    }
}

/// Renders a GPT type GUID or MBR type in words, for `layout show`.
pub fn describe_type(t: &str) -> &'static str {
    match t.to_ascii_uppercase().as_str() {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" | "EF" => "EFI System",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" | "83" => "Linux filesystem",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" | "82" => "Linux swap",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" | "FD" => "Linux RAID",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" | "8E" => "Linux LVM",
        "CA7D7CCB-63ED-4C53-861C-1742536059CC" => "Linux LUKS",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" | "7" | "C" | "B" => "Microsoft basic data",
        "5" | "F" | "85" => "Extended",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Layout {
        Layout {
            version: LAYOUT_VERSION,
            hostname: "db1".into(),
            boot_mode: BootMode::Uefi,
            disks: vec![Disk {
                device: "/dev/vda".into(),
                size: 1 << 30,
                logical_sector_size: 512,
                table: Some(PartitionTable {
                    kind: TableKind::Gpt,
                    id: "0D5B8C1E-1F8A-4E6B-9A41-7E4C7C1B2A10".into(),
                    first_lba: Some(2048),
                    last_lba: Some(2097118),
                    partitions: vec![Partition {
                        device: "/dev/vda1".into(),
                        number: 1,
                        start: 2048,
                        size: 2095071,
                        start_bytes: 2048 * 512,
                        size_bytes: 2095071 * 512,
                        type_: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".into(),
                        ..Partition::default()
                    }],
                }),
                ..Disk::default()
            }],
            filesystems: vec![Filesystem {
                device: "/dev/vda1".into(),
                fstype: FsType::Ext4,
                uuid: "5a1f7a1e-3c2b-4d5e-8f90-123456789abc".into(),
                label: String::new(),
                options: FsOptions::default(),
            }],
            mounts: vec![Mount {
                device: "/dev/vda1".into(),
                target: "/".into(),
                options: "rw,relatime".into(),
                subvolume: String::new(),
            }],
            ..Layout::default()
        }
    }

    #[test]
    fn from_json_round_trips() {
        let l = small();
        let text = l.to_json();
        assert_eq!(Layout::from_json(&text, "l.json").unwrap(), l);
        assert_eq!(text, Layout::from_json(&text, "l.json").unwrap().to_json());
    }

    #[test]
    fn from_json_errors_name_file_line_and_version() {
        let e = Layout::from_json(
            "{\n \"version\": 1,\n \"disks\": 7\n}",
            "/etc/rear/layout.json",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/etc/rear/layout.json:3:"), "{e}");
        let e = Layout::from_json("{\"version\": 9}", "x.json")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "x.json: layout version 9, this program reads version 1");
        let e = Layout::from_json("{\"version\": 1, \"disk\": []}", "x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `disk`"), "{e}");
    }

    #[test]
    fn sort_puts_mount_parents_first() {
        let mut l = small();
        for t in ["/var/log", "/boot/efi", "/", "/boot", "/home"] {
            l.mounts.push(Mount {
                target: t.into(),
                ..Mount::default()
            });
        }
        l.mounts.remove(0);
        l.sort();
        let order: Vec<&str> = l.mounts.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(order, ["/", "/boot", "/home", "/boot/efi", "/var/log"]);
    }
}
