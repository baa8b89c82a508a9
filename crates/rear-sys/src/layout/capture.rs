//! Capture: the running host's storage → [`Layout`].
//!
//! Stage: inventory (rear-mkimage `layout save`). Two halves:
//! - [`capture`] runs the tools (through [`crate::exec::run`]) and reads sysfs and
//!   `/dev/disk/by-id` (through the [`Sysroot`]) into an [`Outputs`]: the raw text, by tool
//!   and device. It runs a tool only for what exists: no mdadm without an md array, no lvm
//!   without an LVM signature, luksDump per LUKS device, dumpe2fs/xfs_info per file system,
//!   btrfs per mounted btrfs file system.
//! - [`from_outputs`] (pure) parses the text with [`super::parse`] and assembles the layout.
//!   The fixtures in `tests/fixtures/layout/<name>/` are such outputs captured in a VM;
//!   [`Outputs::from_dir`] loads them.
//!
//! `Outputs::mount_root` is the directory the host's `/` was mounted on when the outputs
//! were captured: `/` on a live host, `/mnt/host` in the fixtures (built in a rescue
//! system). Mount points below it are rewritten relative to it (`/mnt/host/boot` → `/boot`);
//! mounts outside it belong to the capturing system and are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::model::{
    BootMode, Disk, Excluded, Filesystem, FsOptions, FsType, LAYOUT_VERSION, Layout, LogicalVolume,
    Luks, LvKind, MdArray, Mount, PartFlag, Partition, PartitionTable, PhysicalVolume, Subvolume,
    Swap, TableKind, VolumeGroup,
};
use super::parse::{
    self, blkid, btrfs, ext, findmnt, lsattr, lsblk, luks, lvm, mdadm, sfdisk, swaps, sysblock, xfs,
};
use crate::exec;
use crate::sysroot::{self, Sysroot};

/// Errors of capture.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool's output did not parse.
    #[error(transparent)]
    Parse(#[from] parse::Error),
    /// A tool is missing or failed.
    #[error(transparent)]
    Exec(#[from] exec::Error),
    /// A host file could not be read.
    #[error(transparent)]
    Read(#[from] sysroot::Error),
    /// An output that the captured devices call for is absent (an md array without its
    /// `mdadm --detail`, a LUKS device without its luksDump).
    #[error("no {what} output for {device}")]
    MissingOutput {
        /// The tool output (`mdadm --detail --export`).
        what: String,
        /// The device it should describe.
        device: String,
    },
    /// A mounted file system or an active swap partition whose device the probes found
    /// nothing on: recovery could not recreate it, so the layout is refused.
    #[error(
        "{what} is on {device}, and the probes found no file system there (blkid lists no signature for it): the layout cannot recreate it"
    )]
    NoOrigin {
        /// `the file system mounted on /`, `swap`.
        what: String,
        /// The device.
        device: String,
    },
    /// A captured file could not be read from a fixture directory.
    #[error("{}: {error}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// The raw outputs capture works from, by tool and device (device paths as keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    /// Host name.
    pub hostname: String,
    /// UEFI when `/sys/firmware/efi` exists.
    pub boot_mode: BootMode,
    /// Where the host's `/` is mounted (`/` live; see the module documentation).
    pub mount_root: String,
    /// `lsblk -J -b -O`.
    pub lsblk: String,
    /// `blkid -c /dev/null -o export`.
    pub blkid: String,
    /// `findmnt -J -l -o SOURCE,TARGET,FSTYPE,OPTIONS,FSROOT`.
    pub findmnt: String,
    /// `/proc/swaps`.
    pub proc_swaps: String,
    /// `sfdisk -J DISK` per disk with a partition table.
    pub sfdisk: BTreeMap<String, String>,
    /// Disk identity from `/sys/block/<disk>` per disk ([`sysblock`] text form).
    pub sysblock: BTreeMap<String, String>,
    /// `/dev/disk/by-id` name → the device path it points to.
    pub by_id: BTreeMap<String, String>,
    /// `mdadm --detail --export MD` per array.
    pub mdadm_export: BTreeMap<String, String>,
    /// `mdadm --detail MD` per array.
    pub mdadm_detail: BTreeMap<String, String>,
    /// `lvm pvs …` (empty: no LVM).
    pub lvm_pvs: String,
    /// `lvm vgs …`.
    pub lvm_vgs: String,
    /// `lvm lvs -a …`.
    pub lvm_lvs: String,
    /// `cryptsetup luksDump DEV` per LUKS device.
    pub luks_dump: BTreeMap<String, String>,
    /// `dumpe2fs -h DEV` per ext file system.
    pub dumpe2fs: BTreeMap<String, String>,
    /// `xfs_info DEV` per XFS file system.
    pub xfs_info: BTreeMap<String, String>,
    /// `blkid -p -o export DEV` per FAT file system (the low-level probe that reports
    /// `VERSION=FAT32`).
    pub blkid_probe: BTreeMap<String, String>,
    /// `btrfs subvolume list MNT` per btrfs device (as findmnt shows it).
    pub btrfs_subvolumes: BTreeMap<String, String>,
    /// `btrfs subvolume get-default MNT` per btrfs device.
    pub btrfs_default: BTreeMap<String, String>,
    /// `btrfs filesystem df -b MNT` per btrfs device.
    pub btrfs_df: BTreeMap<String, String>,
    /// `lsattr -d MNT` for every btrfs mount point.
    pub lsattr: String,
}

/// The file-name form of a device path in a fixture directory: `/dev/mapper/vg0-root` →
/// `mapper_vg0-root` (as `create.sh` writes it).
pub fn file_key(device: &str) -> String {
    device
        .strip_prefix("/dev/")
        .unwrap_or(device)
        .replace('/', "_")
}

impl Outputs {
    /// Loads the outputs that `tests/fixtures/layout/create.sh` wrote into `dir`:
    /// `lsblk.json`, `blkid.txt`, … and `<tool>.<file_key(device)>.<ext>` per device; the
    /// devices are those lsblk and blkid list.
    pub fn from_dir(dir: &Path) -> Result<Outputs, Error> {
        let read = |name: &str| -> Result<Option<String>, Error> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(Error::File { path, error }),
            }
        };
        let must = |name: &str| -> Result<String, Error> {
            read(name)?.ok_or_else(|| Error::File {
                path: dir.join(name),
                error: std::io::ErrorKind::NotFound.into(),
            })
        };
        let mut o = Outputs {
            hostname: read("hostname.txt")?.unwrap_or_default().trim().to_string(),
            boot_mode: match read("boot-mode.txt")?.as_deref().map(str::trim) {
                Some("uefi") => BootMode::Uefi,
                _ => BootMode::Bios,
            },
            mount_root: read("mount-root.txt")?
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|| "/".into()),
            lsblk: must("lsblk.json")?,
            blkid: must("blkid.txt")?,
            findmnt: must("findmnt.json")?,
            proc_swaps: read("proc-swaps.txt")?.unwrap_or_default(),
            lvm_pvs: read("lvm-pvs.json")?.unwrap_or_default(),
            lvm_vgs: read("lvm-vgs.json")?.unwrap_or_default(),
            lvm_lvs: read("lvm-lvs.json")?.unwrap_or_default(),
            lsattr: read("lsattr.txt")?.unwrap_or_default(),
            ..Outputs::default()
        };
        if let Some(text) = read("by-id.txt")? {
            o.by_id = parse_ls_by_id(&text);
        }
        let mut devices: BTreeSet<String> = lsblk::parse(&o.lsblk)?
            .into_iter()
            .map(|d| d.path)
            .collect();
        devices.extend(blkid::parse(&o.blkid)?.into_keys());
        for dev in devices {
            let k = file_key(&dev);
            let name = dev.strip_prefix("/dev/").unwrap_or(&dev);
            let slots: [(&mut BTreeMap<String, String>, String); 11] = [
                (&mut o.sfdisk, format!("sfdisk.{k}.json")),
                (&mut o.sysblock, format!("sysblock.{name}.txt")),
                (&mut o.mdadm_export, format!("mdadm-export.{k}.txt")),
                (&mut o.mdadm_detail, format!("mdadm-detail.{k}.txt")),
                (&mut o.luks_dump, format!("luksDump.{k}.txt")),
                (&mut o.dumpe2fs, format!("dumpe2fs.{k}.txt")),
                (&mut o.xfs_info, format!("xfs_info.{k}.txt")),
                (&mut o.blkid_probe, format!("blkid-p.{k}.txt")),
                (
                    &mut o.btrfs_subvolumes,
                    format!("btrfs-subvolume-list.{k}.txt"),
                ),
                (&mut o.btrfs_default, format!("btrfs-get-default.{k}.txt")),
                (&mut o.btrfs_df, format!("btrfs-df.{k}.txt")),
            ];
            for (map, file) in slots {
                if let Some(text) = read(&file)? {
                    map.insert(dev.clone(), text);
                }
            }
        }
        Ok(o)
    }
}

/// `ls -l /dev/disk/by-id` → name → `/dev/<target>` (`../../sda` → `/dev/sda`).
fn parse_ls_by_id(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let name = left.split_whitespace().last()?;
            let base = target.rsplit('/').next()?;
            Some((name.to_string(), format!("/dev/{base}")))
        })
        .collect()
}

/// Why a top-level block device is left out, or `None` to keep it.
fn exclude_reason(d: &lsblk::BlockDev, sys: Option<&sysblock::SysBlock>) -> Option<String> {
    let removable = d.removable || sys.is_some_and(|s| s.removable);
    Some(match d.kind.as_str() {
        "loop" => "loop device".into(),
        "rom" => "CD/DVD drive (rescue medium or ISO image)".into(),
        _ if d.name.starts_with("zram") => "compressed RAM disk (zram)".into(),
        _ if d.name.starts_with("ram") => "RAM disk".into(),
        _ if d.name.starts_with("nbd") => "network block device".into(),
        "disk" if d.tran == "usb" && (removable || d.hotplug) => "removable USB disk".into(),
        _ => return None,
    })
}

/// Flags of a partition from its type and the MBR active bit.
fn part_flags(kind: TableKind, type_: &str, bootable: bool) -> Vec<PartFlag> {
    let t = type_.to_ascii_uppercase();
    let mut f = Vec::new();
    let is = |gpt: &str, dos: &[&str]| match kind {
        TableKind::Gpt => t == gpt,
        TableKind::Dos => dos.contains(&t.as_str()),
    };
    if is("21686148-6449-6E6F-744E-656564454649", &[]) {
        f.push(PartFlag::BiosGrub);
    }
    if is("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", &["EF"]) {
        f.push(PartFlag::Esp);
    }
    if bootable {
        f.push(PartFlag::Boot);
    }
    if is("A19D880F-05FC-4D3B-A006-743F0F84911E", &["FD"]) {
        f.push(PartFlag::Raid);
    }
    if is("E6D6D379-F507-44C2-A23C-238F2A3DF928", &["8E"]) {
        f.push(PartFlag::Lvm);
    }
    if is("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", &["82"]) {
        f.push(PartFlag::Swap);
    }
    if is("", &["5", "F", "85"]) {
        f.push(PartFlag::Extended);
    }
    f.sort();
    f
}

/// The partition table of `disk` from `sfdisk -J`.
fn table(disk: &lsblk::BlockDev, json: &str) -> Result<Option<PartitionTable>, Error> {
    let Some(t) = sfdisk::parse(json)? else {
        return Ok(None);
    };
    let sector = u64::from(t.sector_size.unwrap_or(disk.log_sec).max(1));
    let mut parts = Vec::new();
    for p in &t.partitions {
        let number =
            sfdisk::part_number(&disk.path, &p.node).ok_or_else(|| parse::Error::Line {
                tool: format!("sfdisk -J {}", disk.path),
                line: 0,
                text: p.node.clone(),
            })?;
        let uuid = match t.kind {
            TableKind::Gpt => p.uuid.clone().unwrap_or_default().to_ascii_uppercase(),
            // What the kernel and blkid show as PARTUUID on MBR: disk id, dash, number.
            TableKind::Dos => format!(
                "{}-{number:02x}",
                t.id.trim_start_matches("0x").to_ascii_lowercase()
            ),
        };
        let type_ = match t.kind {
            TableKind::Gpt => p.type_.to_ascii_uppercase(),
            TableKind::Dos => p.type_.trim_start_matches("0x").to_ascii_lowercase(),
        };
        parts.push(Partition {
            device: p.node.clone(),
            number,
            start: p.start,
            size: p.size,
            start_bytes: p.start * sector,
            size_bytes: p.size * sector,
            flags: part_flags(t.kind, &type_, p.bootable),
            type_,
            uuid,
            name: p.name.clone().unwrap_or_default(),
            attrs: p.attrs.clone().unwrap_or_default(),
        });
    }
    Ok(Some(PartitionTable {
        kind: t.kind,
        id: t.id,
        first_lba: t.first_lba,
        last_lba: t.last_lba,
        partitions: parts,
    }))
}

/// Mount options without the btrfs subvolume selectors, which [`Mount::subvolume`] holds
/// (a `subvolid` would also not survive recreation).
fn mount_options(options: &str) -> String {
    options
        .split(',')
        .filter(|o| !o.starts_with("subvolid=") && !o.starts_with("subvol="))
        .collect::<Vec<_>>()
        .join(",")
}

const NETWORK_FS: [&str; 10] = [
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "sshfs",
    "fuse.sshfs",
    "glusterfs",
    "ceph",
    "9p",
];

/// Assembles a [`Layout`] from captured outputs (pure).
pub fn from_outputs(out: &Outputs) -> Result<Layout, Error> {
    let devs = lsblk::parse(&out.lsblk)?;
    let tags = blkid::parse(&out.blkid)?;
    let mounts = findmnt::parse(&out.findmnt)?;
    let sys: BTreeMap<&str, sysblock::SysBlock> = out
        .sysblock
        .iter()
        .map(|(k, v)| (k.as_str(), sysblock::parse(v)))
        .collect();
    let mut layout = Layout {
        version: LAYOUT_VERSION,
        hostname: out.hostname.clone(),
        boot_mode: out.boot_mode,
        ..Layout::default()
    };

    // Excluded top-level devices and everything on them.
    let mut skip: BTreeSet<String> = BTreeSet::new();
    for d in devs.iter().filter(|d| d.parents.is_empty()) {
        if let Some(reason) = exclude_reason(d, sys.get(d.path.as_str())) {
            layout.excluded.push(Excluded {
                what: d.path.clone(),
                reason,
            });
            skip.insert(d.path.clone());
        }
    }
    loop {
        let more: Vec<String> = devs
            .iter()
            .filter(|d| !skip.contains(&d.path) && d.parents.iter().any(|p| skip.contains(p)))
            .map(|d| d.path.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        skip.extend(more);
    }
    // blkid and findmnt may name a device-mapper device /dev/dm-N or /dev/mapper/NAME.
    let canonical = |p: &str| -> String {
        devs.iter()
            .find(|d| d.path == p || format!("/dev/{}", d.kname) == p)
            .map(|d| d.path.clone())
            .unwrap_or_else(|| p.to_string())
    };

    // Disks.
    for d in devs
        .iter()
        .filter(|d| d.kind == "disk" && d.parents.is_empty() && !skip.contains(&d.path))
    {
        let s = sys.get(d.path.as_str()).cloned().unwrap_or_default();
        let pick = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_string()
            } else {
                a.to_string()
            }
        };
        layout.disks.push(Disk {
            device: d.path.clone(),
            size: d.size,
            logical_sector_size: d.log_sec,
            physical_sector_size: d.phy_sec,
            model: pick(&d.model, &s.model),
            serial: pick(&d.serial, &s.serial),
            wwn: pick(&d.wwn, &s.wwid),
            by_id: out
                .by_id
                .iter()
                .filter(|(_, t)| **t == d.path)
                .map(|(n, _)| n.clone())
                .collect(),
            transport: d.tran.clone(),
            table: match out.sfdisk.get(&d.path) {
                Some(json) => table(d, json)?,
                None => None,
            },
        });
    }

    // md arrays.
    for d in devs
        .iter()
        .filter(|d| d.kind.starts_with("raid") && !skip.contains(&d.path))
    {
        let missing = |what: &str| Error::MissingOutput {
            what: what.into(),
            device: d.path.clone(),
        };
        let export = out
            .mdadm_export
            .get(&d.path)
            .ok_or_else(|| missing("mdadm --detail --export"))?;
        let detail = out
            .mdadm_detail
            .get(&d.path)
            .map(String::as_str)
            .unwrap_or("");
        let i = mdadm::parse(export, detail)?;
        layout.md.push(MdArray {
            device: d.path.clone(),
            name: i.name,
            uuid: i.uuid,
            level: i.level,
            metadata: i.metadata,
            raid_devices: i.raid_devices,
            chunk_kib: i.chunk_kib,
            layout: i.layout,
            members: i.members,
            spares: i.spares,
        });
    }

    // LVM.
    if !out.lvm_pvs.trim().is_empty() {
        let pvs = lvm::parse_pvs(&out.lvm_pvs)?;
        let vgs = lvm::parse_vgs(&out.lvm_vgs)?;
        let lvs = lvm::parse_lvs(&out.lvm_lvs)?;
        for vg in vgs {
            let vg_pvs: Vec<PhysicalVolume> = pvs
                .iter()
                .filter(|p| p.vg == vg.name)
                .map(|p| PhysicalVolume {
                    device: canonical(&p.device),
                    uuid: p.uuid.clone(),
                    size: p.size,
                })
                .collect();
            if vg_pvs.iter().any(|p| skip.contains(&p.device)) {
                layout.excluded.push(Excluded {
                    what: format!("/dev/{}", vg.name),
                    reason: "volume group on an excluded device".into(),
                });
                continue;
            }
            let mut plain = Vec::new();
            let mut thin = Vec::new();
            for r in lvs.iter().filter(|r| r.vg == vg.name && !r.hidden()) {
                let Some(kind) = r.kind() else {
                    layout.excluded.push(Excluded {
                        what: format!("/dev/{}/{}", vg.name, r.name),
                        reason: format!("LVM segment type {} is not recreated", r.segtype),
                    });
                    continue;
                };
                let lv = LogicalVolume {
                    name: r.name.clone(),
                    uuid: r.uuid.clone(),
                    size: r.size,
                    kind,
                };
                // Thin volumes after every pool they could be in.
                if matches!(lv.kind, LvKind::Thin { .. }) {
                    thin.push(lv);
                } else {
                    plain.push(lv);
                }
            }
            plain.extend(thin);
            layout.lvm.push(VolumeGroup {
                name: vg.name,
                uuid: vg.uuid,
                extent_size: vg.extent_size,
                pvs: vg_pvs,
                lvs: plain,
            });
        }
    }

    // Signatures: LUKS, file systems, swap.
    let mut btrfs_seen: BTreeSet<String> = BTreeSet::new();
    for (dev, t) in &tags {
        let dev = canonical(dev);
        if skip.contains(&dev) {
            continue;
        }
        let Some(ty) = t.get("TYPE") else { continue };
        let uuid = t.get("UUID").cloned().unwrap_or_default();
        let label = t.get("LABEL").cloned().unwrap_or_default();
        match ty.as_str() {
            "crypto_LUKS" => {
                let text = out
                    .luks_dump
                    .get(&dev)
                    .ok_or_else(|| Error::MissingOutput {
                        what: "cryptsetup luksDump".into(),
                        device: dev.clone(),
                    })?;
                let i = luks::parse(text)?;
                let name = devs
                    .iter()
                    .find(|d| d.kind == "crypt" && d.parents.contains(&dev))
                    .map(|d| d.name.clone())
                    // Not open: the name systemd-cryptsetup would give it.
                    .unwrap_or_else(|| format!("luks-{}", i.uuid));
                layout.luks.push(Luks {
                    device: dev.clone(),
                    name,
                    version: i.version,
                    cipher: i.cipher,
                    key_size: i.key_size,
                    hash: i.hash,
                    pbkdf: i.pbkdf,
                    sector_size: i.sector_size,
                    uuid: i.uuid,
                    label: i.label,
                });
            }
            "swap" => layout.swap.push(Swap {
                device: dev.clone(),
                uuid,
                label,
            }),
            "linux_raid_member" | "LVM2_member" => {}
            other => {
                let Some(fstype) = FsType::parse(other) else {
                    layout.excluded.push(Excluded {
                        what: dev.clone(),
                        reason: format!("file system type {other} is not recreated"),
                    });
                    continue;
                };
                // A multi-device btrfs shows on each device: one file system.
                if fstype == FsType::Btrfs && !btrfs_seen.insert(uuid.clone()) {
                    continue;
                }
                let fsver = devs
                    .iter()
                    .find(|d| d.path == dev)
                    .map(|d| d.fsver.as_str())
                    .unwrap_or("");
                let options = fs_options(out, &fstype, &dev, t, fsver)?;
                layout.filesystems.push(Filesystem {
                    device: dev.clone(),
                    fstype,
                    uuid,
                    label,
                    options,
                });
            }
        }
    }

    // Swap files are data: the backup brings them back, fstab names them.
    for s in swaps::parse(&out.proc_swaps)? {
        if !s.is_partition {
            layout.excluded.push(Excluded {
                what: s.filename,
                reason: "swap file (restored with the files)".into(),
            });
            continue;
        }
        let dev = canonical(&s.filename);
        if !skip.contains(&dev) && !layout.swap.iter().any(|w| w.device == dev) {
            return Err(Error::NoOrigin {
                what: "swap".into(),
                device: dev,
            });
        }
    }

    // Mounts.
    let root = out.mount_root.trim_end_matches('/');
    let attrs = lsattr::parse(&out.lsattr);
    for m in &mounts {
        let target = if root.is_empty() {
            m.target.clone()
        } else if m.target == root {
            "/".to_string()
        } else if let Some(rest) = m.target.strip_prefix(&format!("{root}/")) {
            format!("/{rest}")
        } else {
            continue;
        };
        if !m.source.starts_with("/dev/") {
            let kind = if NETWORK_FS.contains(&m.fstype.as_str()) {
                "network file system"
            } else {
                "pseudo file system"
            };
            layout.excluded.push(Excluded {
                what: target,
                reason: format!("{kind} {}", m.fstype),
            });
            continue;
        }
        let dev = canonical(&m.source);
        if skip.contains(&dev) {
            layout.excluded.push(Excluded {
                what: target,
                reason: format!("on the excluded device {dev}"),
            });
            continue;
        }
        let Some(fstype) = FsType::parse(&m.fstype) else {
            layout.excluded.push(Excluded {
                what: target,
                reason: format!("file system type {} is not recreated", m.fstype),
            });
            continue;
        };
        let fsroot = m.fsroot.trim_start_matches('/');
        let mut subvolume = String::new();
        if fstype == FsType::Btrfs {
            subvolume = fsroot.to_string();
            let fs = layout.filesystems.iter_mut().find(|f| {
                f.device == dev
                    || (f.fstype == FsType::Btrfs
                        && tags.get(&dev).and_then(|t| t.get("UUID")) == Some(&f.uuid))
            });
            if let Some(fs) = fs {
                // The top level, when another subvolume is the default, has to be asked for.
                if subvolume.is_empty() && !fs.options.default_subvolume.is_empty() {
                    subvolume = "/".into();
                }
                let nocow = attrs.get(&m.target).is_some_and(|a| a.contains('C'));
                if let Some(sv) = fs.options.subvolumes.iter_mut().find(|s| s.path == fsroot) {
                    sv.nodatacow |= nocow;
                }
            }
        } else if !fsroot.is_empty() {
            layout.excluded.push(Excluded {
                what: target,
                reason: format!("bind mount of {} on {dev}", m.fsroot),
            });
            continue;
        }
        let known = layout.filesystems.iter().any(|f| {
            f.device == dev
                || (f.fstype == FsType::Btrfs
                    && tags.get(&dev).and_then(|t| t.get("UUID")) == Some(&f.uuid))
        });
        if !known {
            return Err(Error::NoOrigin {
                what: format!("the file system mounted on {target}"),
                device: dev,
            });
        }
        layout.mounts.push(Mount {
            device: dev,
            target,
            options: mount_options(&m.options),
            subvolume,
        });
    }
    // Recovery recreates only what the mounted file systems and swap areas stand on.
    super::prune::prune(&mut layout);
    layout.sort();
    // A pseudo file system mounted twice on one place (devpts in a container) is one entry.
    layout.excluded.dedup();
    Ok(layout)
}

/// The mkfs options of one file system from its tool's output.
fn fs_options(
    out: &Outputs,
    fstype: &FsType,
    dev: &str,
    tags: &blkid::Tags,
    fsver: &str,
) -> Result<FsOptions, Error> {
    let missing = |what: &str| Error::MissingOutput {
        what: what.into(),
        device: dev.into(),
    };
    let mut o = FsOptions::default();
    match fstype {
        FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => {
            let i = ext::parse(
                out.dumpe2fs
                    .get(dev)
                    .ok_or_else(|| missing("dumpe2fs -h"))?,
            )?;
            o.block_size = Some(i.block_size);
            o.inode_size = Some(i.inode_size);
            o.features = i.features;
        }
        FsType::Xfs => {
            let i = xfs::parse(out.xfs_info.get(dev).ok_or_else(|| missing("xfs_info"))?)?;
            o.block_size = Some(i.block_size);
            o.sector_size = Some(i.sector_size);
            o.inode_size = Some(i.inode_size);
            o.features = i.features;
        }
        FsType::Btrfs => {
            // Only a mounted btrfs can be asked; an unmounted one keeps mkfs defaults.
            if let Some(list) = out.btrfs_subvolumes.get(dev) {
                o.subvolumes = btrfs::parse_list(list)?
                    .into_iter()
                    .map(|s| Subvolume {
                        path: s.path,
                        nodatacow: false,
                    })
                    .collect();
            }
            if let Some(d) = out.btrfs_default.get(dev) {
                o.default_subvolume = btrfs::parse_default(d)?;
            }
            if let Some(df) = out.btrfs_df.get(dev) {
                (o.data_profile, o.metadata_profile) = btrfs::parse_df(df)?;
            }
        }
        FsType::Vfat => {
            // blkid prints VERSION only when probing low-level (-p); lsblk has it from udev.
            let probed = match out.blkid_probe.get(dev) {
                Some(text) => blkid::parse(text)?
                    .into_values()
                    .next()
                    .and_then(|mut t| t.remove("VERSION")),
                None => None,
            };
            let version = probed
                .as_deref()
                .or(tags.get("VERSION").map(String::as_str))
                .unwrap_or(fsver);
            o.fat_size = match version {
                "FAT32" => Some(32),
                "FAT16" => Some(16),
                "FAT12" => Some(12),
                _ => None,
            };
        }
    }
    Ok(o)
}

/// The target machine's disks from `lsblk -J -b -O` (identity only, `table` None), for the
/// planner in the rescue system. Loop devices, CD/DVD drives, RAM and network block devices
/// are left out; USB disks are kept (the operator may restore onto one).
pub fn disks_from_lsblk(json: &str) -> Result<Vec<Disk>, Error> {
    let mut disks: Vec<Disk> = lsblk::parse(json)?
        .into_iter()
        .filter(|d| d.kind == "disk" && d.parents.is_empty() && d.size > 0)
        .filter(|d| {
            !["zram", "ram", "nbd", "loop", "fd"]
                .iter()
                .any(|p| d.name.starts_with(p))
        })
        .map(|d| Disk {
            device: d.path,
            size: d.size,
            logical_sector_size: d.log_sec,
            physical_sector_size: d.phy_sec,
            model: d.model,
            serial: d.serial,
            wwn: d.wwn,
            by_id: Vec::new(),
            transport: d.tran,
            table: None,
        })
        .collect();
    disks.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(disks)
}

/// Runs one tool with `LC_ALL=C` (stable labels and number formats); stdout as text.
fn tool(program: &str, args: &[&str], package: &str) -> Result<String, Error> {
    let out = exec::run(
        Command::new(program).args(args).env("LC_ALL", "C"),
        Some(package),
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`tool`], but `None` where the tool says explicitly that there is nothing to report
/// ([`says_nothing_there`]). Any other failure, a denied open above all, is an error naming
/// the command and its stderr: a probe that failed never reads as "nothing there".
fn tool_optional(program: &str, args: &[&str], package: &str) -> Result<Option<String>, Error> {
    match tool(program, args, package) {
        Ok(s) => Ok(Some(s)),
        Err(Error::Exec(exec::Error::Failed {
            argv,
            status,
            stderr,
        })) if says_nothing_there(program, status.code(), &stderr) => {
            log::debug!("{argv}: {status}: nothing there: {stderr}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether a failed run of `program` (exit `code`, `stderr`) is the tool's explicit "there is
/// nothing here" rather than a failure to look:
/// - blkid exits 2 when it finds no signature, and says nothing; when it cannot open the
///   device (EPERM, EACCES, EIO) it also exits 2, but prints `error: DEV: <reason>`;
/// - sfdisk says "does not contain a recognized partition table";
/// - blkid and sfdisk on a drive without a medium (a floppy drive with no disk, an empty card
///   reader: ENXIO, ENOMEDIUM) say "No such device or address" or "No medium found": there is
///   nothing on it to recreate;
/// - lsattr on a file system without attribute support says "Operation not supported" or
///   "Inappropriate ioctl for device".
fn says_nothing_there(program: &str, code: Option<i32>, stderr: &str) -> bool {
    let no_medium =
        stderr.contains("No such device or address") || stderr.contains("No medium found");
    match program {
        "blkid" => code == Some(2) && (stderr.trim().is_empty() || no_medium),
        "sfdisk" => no_medium || stderr.contains("does not contain a recognized partition table"),
        "lsattr" => {
            stderr.contains("Operation not supported")
                || stderr.contains("Inappropriate ioctl for device")
        }
        _ => false,
    }
}

/// blkid's scan of all devices leaves out, silently and with exit 0, a device it cannot open
/// (seen on virtual machines where even root gets EPERM on the raw disk): each block device
/// that lsblk lists and the scan does not is probed on its own with `blkid -p`, whose tags
/// are added to `scan`; a device it cannot read is an error naming it.
fn probe_unlisted(scan: &mut String, devs: &[lsblk::BlockDev]) -> Result<(), Error> {
    let listed = blkid::parse(scan)?;
    for d in devs.iter().filter(|d| {
        !listed.contains_key(&d.path)
            && !listed.contains_key(&format!("/dev/{}", d.kname))
            && exclude_reason(d, None).is_none()
    }) {
        let Some(text) = tool_optional("blkid", &["-p", "-o", "export", &d.path], "util-linux")?
        else {
            continue;
        };
        // `blkid -p -o export DEV` starts with DEVNAME, as each entry of the scan does.
        if !scan.is_empty() && !scan.ends_with('\n') {
            scan.push('\n');
        }
        scan.push_str(text.trim_end());
        scan.push_str("\n\n");
    }
    Ok(())
}

/// Reads a sysfs attribute, trimmed; absent is empty.
fn sys_attr(sys: &Sysroot, path: &str) -> String {
    sys.read_to_string(Path::new(path))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs the tools on the live system and reads sysfs and `/dev/disk/by-id` through `sys`,
/// then assembles the layout with [`from_outputs`].
pub fn capture(sys: &Sysroot) -> Result<Layout, Error> {
    from_outputs(&collect(sys)?)
}

/// Like [`capture`] for a tree mounted at `mount_root` (the rescue system's `/mnt/local`
/// after `layout apply`): mount points are taken relative to it, others are left out.
pub fn capture_below(sys: &Sysroot, mount_root: &str) -> Result<Layout, Error> {
    let mut o = collect(sys)?;
    o.mount_root = mount_root.to_string();
    from_outputs(&o)
}

/// The [`Outputs`] of the live system (what [`capture`] parses).
pub fn collect(sys: &Sysroot) -> Result<Outputs, Error> {
    const UL: &str = "util-linux";
    let mut o = Outputs {
        hostname: sys_attr(sys, "/proc/sys/kernel/hostname"),
        boot_mode: if sys.exists(Path::new("/sys/firmware/efi")) {
            BootMode::Uefi
        } else {
            BootMode::Bios
        },
        mount_root: "/".into(),
        lsblk: tool("lsblk", &["-J", "-b", "-O"], UL)?,
        blkid: tool_optional("blkid", &["-c", "/dev/null", "-o", "export"], UL)?
            .unwrap_or_default(),
        findmnt: tool(
            "findmnt",
            &["-J", "-l", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS,FSROOT"],
            UL,
        )?,
        proc_swaps: sys.read_to_string(Path::new("/proc/swaps"))?,
        ..Outputs::default()
    };
    let devs = lsblk::parse(&o.lsblk)?;
    probe_unlisted(&mut o.blkid, &devs)?;
    for d in devs
        .iter()
        .filter(|d| d.kind == "disk" && d.parents.is_empty())
    {
        let name = d.kname.as_str();
        let base = format!("/sys/block/{name}");
        let first = |keys: &[&str]| {
            keys.iter()
                .map(|k| sys_attr(sys, &format!("{base}/{k}")))
                .find(|v| !v.is_empty())
                .unwrap_or_default()
        };
        let s = sysblock::SysBlock {
            serial: first(&["serial", "device/serial"]),
            model: first(&["device/model"]),
            wwid: first(&["wwid", "device/wwid"]),
            removable: sys_attr(sys, &format!("{base}/removable")) == "1",
        };
        o.sysblock.insert(d.path.clone(), sysblock::render(&s));
        if exclude_reason(d, Some(&s)).is_some() {
            continue;
        }
        if let Some(j) = tool_optional("sfdisk", &["-J", &d.path], "fdisk")? {
            o.sfdisk.insert(d.path.clone(), j);
        }
    }
    let by_id = Path::new("/dev/disk/by-id");
    if sys.exists(by_id) {
        for p in sys.read_dir(by_id)? {
            let Ok(target) = sys.read_link(&p) else {
                continue;
            };
            let (Some(name), Some(base)) = (p.file_name(), target.file_name()) else {
                continue;
            };
            o.by_id.insert(
                name.to_string_lossy().into_owned(),
                format!("/dev/{}", base.to_string_lossy()),
            );
        }
    }
    for d in devs.iter().filter(|d| d.kind.starts_with("raid")) {
        if o.mdadm_export.contains_key(&d.path) {
            continue;
        }
        let export = tool("mdadm", &["--detail", "--export", &d.path], "mdadm")?;
        o.mdadm_export.insert(d.path.clone(), export);
        let detail = tool("mdadm", &["--detail", &d.path], "mdadm")?;
        o.mdadm_detail.insert(d.path.clone(), detail);
    }
    let tags = blkid::parse(&o.blkid)?;
    let has = |t: &str| tags.values().any(|v| v.get("TYPE").is_some_and(|x| x == t));
    if has("LVM2_member") {
        let lvm = |args: &[&str]| tool("lvm", args, "lvm2");
        let common = ["--reportformat", "json", "--units", "b", "--nosuffix", "-o"];
        o.lvm_pvs = lvm(&[&["pvs"], &common[..], &[lvm::PVS_COLUMNS]].concat())?;
        o.lvm_vgs = lvm(&[&["vgs"], &common[..], &[lvm::VGS_COLUMNS]].concat())?;
        o.lvm_lvs = lvm(&[&["lvs", "-a"], &common[..], &[lvm::LVS_COLUMNS]].concat())?;
    }
    for (dev, t) in &tags {
        match t.get("TYPE").map(String::as_str) {
            Some("crypto_LUKS") => {
                let s = tool("cryptsetup", &["luksDump", dev], "cryptsetup-bin")?;
                o.luks_dump.insert(dev.clone(), s);
            }
            Some("ext2" | "ext3" | "ext4") => {
                let s = tool("dumpe2fs", &["-h", dev], "e2fsprogs")?;
                o.dumpe2fs.insert(dev.clone(), s);
            }
            Some("xfs") => {
                let s = tool("xfs_info", &[dev], "xfsprogs")?;
                o.xfs_info.insert(dev.clone(), s);
            }
            Some("vfat") => {
                let s = tool("blkid", &["-p", "-o", "export", dev], "util-linux")?;
                o.blkid_probe.insert(dev.clone(), s);
            }
            _ => {}
        }
    }
    // btrfs tools need a mount point of the file system; any of its mounts will do.
    let mut lsattr_out = String::new();
    for m in findmnt::parse(&o.findmnt)?
        .iter()
        .filter(|m| m.fstype == "btrfs")
    {
        if !o.btrfs_subvolumes.contains_key(&m.source) {
            let b = |args: &[&str]| tool("btrfs", args, "btrfs-progs");
            o.btrfs_subvolumes
                .insert(m.source.clone(), b(&["subvolume", "list", &m.target])?);
            o.btrfs_default.insert(
                m.source.clone(),
                b(&["subvolume", "get-default", &m.target])?,
            );
            o.btrfs_df
                .insert(m.source.clone(), b(&["filesystem", "df", "-b", &m.target])?);
        }
        if let Some(s) = tool_optional("lsattr", &["-d", &m.target], "e2fsprogs")? {
            lsattr_out.push_str(&s);
        }
    }
    o.lsattr = lsattr_out;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{ExpectFile, expect_file};

    fn fixture(name: &str) -> Outputs {
        Outputs::from_dir(&rear_testutil::layout::fixture_dir(name)).unwrap()
    }

    fn golden(name: &str, expect: ExpectFile) {
        let layout = from_outputs(&fixture(name)).unwrap();
        expect.assert_eq(&layout.to_json());
        // The golden file is a valid layout that reads back to the same value.
        assert_eq!(Layout::from_json(&layout.to_json(), name).unwrap(), layout);
    }

    #[test]
    fn from_outputs_gpt_esp_ext4() {
        golden(
            "gpt-esp-ext4",
            expect_file!["../../../../tests/fixtures/layout/gpt-esp-ext4/layout.json"],
        );
    }

    #[test]
    fn docs_show_the_current_golden_example() {
        let doc = include_str!("../../../../docs/layout.md");
        let golden = include_str!("../../../../tests/fixtures/layout/raid1-lvm-xfs/layout.json");
        assert!(
            doc.contains(golden),
            "docs/layout.md: copy tests/fixtures/layout/raid1-lvm-xfs/layout.json into the example"
        );
        let tree = super::super::show::tree(&from_outputs(&fixture("raid1-lvm-xfs")).unwrap());
        assert!(
            doc.contains(&tree),
            "docs/layout.md: update the tree example:\n{tree}"
        );
    }

    #[test]
    fn from_outputs_mbr() {
        golden(
            "mbr",
            expect_file!["../../../../tests/fixtures/layout/mbr/layout.json"],
        );
    }

    #[test]
    fn from_outputs_raid1_lvm_xfs() {
        golden(
            "raid1-lvm-xfs",
            expect_file!["../../../../tests/fixtures/layout/raid1-lvm-xfs/layout.json"],
        );
    }

    #[test]
    fn from_outputs_luks2_lvm_ext4() {
        golden(
            "luks2-lvm-ext4",
            expect_file!["../../../../tests/fixtures/layout/luks2-lvm-ext4/layout.json"],
        );
    }

    #[test]
    fn from_outputs_btrfs_subvolumes() {
        golden(
            "btrfs-subvolumes",
            expect_file!["../../../../tests/fixtures/layout/btrfs-subvolumes/layout.json"],
        );
    }

    #[test]
    fn from_outputs_nvme() {
        golden(
            "nvme",
            expect_file!["../../../../tests/fixtures/layout/nvme/layout.json"],
        );
    }

    /// A live-style capture (mount root `/`) with things to leave out.
    fn live_outputs() -> Outputs {
        let lsblk = r#"{"blockdevices":[
          {"name":"sda","kname":"sda","path":"/dev/sda","type":"disk","size":21474836480,
           "log-sec":512,"phy-sec":4096,"model":"Samsung SSD","serial":"S1","wwn":"0x5002",
           "tran":"sata","rm":false,"hotplug":false,"children":[
             {"name":"sda1","kname":"sda1","path":"/dev/sda1","type":"part","size":21473787904}]},
          {"name":"sdb","kname":"sdb","path":"/dev/sdb","type":"disk","size":8004304896,
           "log-sec":512,"phy-sec":512,"tran":"usb","rm":true,"hotplug":true,"children":[
             {"name":"sdb1","kname":"sdb1","path":"/dev/sdb1","type":"part","size":8003256320}]},
          {"name":"loop0","kname":"loop0","path":"/dev/loop0","type":"loop","size":1048576},
          {"name":"sr0","kname":"sr0","path":"/dev/sr0","type":"rom","size":3000000}]}"#;
        let sfdisk = r#"{"partitiontable":{"label":"dos","id":"0x0000abcd","device":"/dev/sda",
            "unit":"sectors","sectorsize":512,"partitions":[
            {"node":"/dev/sda1","start":2048,"size":41940992,"type":"83","bootable":true}]}}"#;
        let blkid = "DEVNAME=/dev/sda1\nUUID=u1\nTYPE=ext4\n\nDEVNAME=/dev/sdb1\nUUID=AB-CD\nTYPE=vfat\n\n\
            DEVNAME=/dev/loop0\nTYPE=squashfs\n\nDEVNAME=/dev/sr0\nTYPE=iso9660\n";
        let findmnt = r#"{"filesystems":[
          {"source":"/dev/sda1","target":"/","fstype":"ext4","options":"rw,relatime","fsroot":"/"},
          {"source":"proc","target":"/proc","fstype":"proc","options":"rw","fsroot":"/"},
          {"source":"srv:/export","target":"/mnt/nfs","fstype":"nfs4","options":"rw","fsroot":"/"},
          {"source":"/dev/sdb1","target":"/media/usb","fstype":"vfat","options":"rw","fsroot":"/"},
          {"source":"/dev/sda1","target":"/srv/www","fstype":"ext4","options":"rw","fsroot":"/var/www"}]}"#;
        Outputs {
            hostname: "web1".into(),
            boot_mode: BootMode::Uefi,
            mount_root: "/".into(),
            lsblk: lsblk.into(),
            blkid: blkid.into(),
            findmnt: findmnt.into(),
            proc_swaps: "Filename Type Size Used Priority\n/swapfile file 1048572 0 -2\n".into(),
            sfdisk: [("/dev/sda".to_string(), sfdisk.to_string())].into(),
            by_id: [
                ("ata-Samsung_SSD_S1".to_string(), "/dev/sda".to_string()),
                (
                    "ata-Samsung_SSD_S1-part1".to_string(),
                    "/dev/sda1".to_string(),
                ),
            ]
            .into(),
            dumpe2fs: [(
                "/dev/sda1".to_string(),
                "Filesystem features: has_journal extent\nBlock size: 4096\nInode size: 256\n"
                    .to_string(),
            )]
            .into(),
            ..Outputs::default()
        }
    }

    #[test]
    fn from_outputs_excludes_with_reasons() {
        let l = from_outputs(&live_outputs()).unwrap();
        let ex: Vec<(&str, &str)> = l
            .excluded
            .iter()
            .map(|e| (e.what.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            ex,
            [
                ("/dev/loop0", "loop device"),
                ("/dev/sdb", "removable USB disk"),
                ("/dev/sr0", "CD/DVD drive (rescue medium or ISO image)"),
                ("/media/usb", "on the excluded device /dev/sdb1"),
                ("/mnt/nfs", "network file system nfs4"),
                ("/proc", "pseudo file system proc"),
                ("/srv/www", "bind mount of /var/www on /dev/sda1"),
                ("/swapfile", "swap file (restored with the files)"),
            ]
        );
        assert_eq!(l.disks.len(), 1);
        let d = &l.disks[0];
        assert_eq!(d.by_id, ["ata-Samsung_SSD_S1"]);
        assert_eq!(
            (d.physical_sector_size, d.transport.as_str()),
            (4096, "sata")
        );
        let p = &d.table.as_ref().unwrap().partitions[0];
        assert_eq!(
            (p.uuid.as_str(), p.flags.as_slice()),
            ("0000abcd-01", &[PartFlag::Boot][..])
        );
        assert_eq!(l.filesystems.len(), 1);
        assert_eq!(l.mounts.len(), 1);
        assert_eq!(l.boot_mode, BootMode::Uefi);
    }

    #[test]
    fn from_outputs_missing_tool_output_is_error() {
        let mut o = live_outputs();
        o.dumpe2fs.clear();
        let e = from_outputs(&o).unwrap_err().to_string();
        assert_eq!(e, "no dumpe2fs -h output for /dev/sda1");
    }

    /// As on the current test machines: blkid's scan leaves out the root disk it cannot open.
    #[test]
    fn from_outputs_mount_without_file_system_is_refused() {
        let mut o = live_outputs();
        o.blkid = "DEVNAME=/dev/sdb1\nUUID=AB-CD\nTYPE=vfat\n".into();
        o.dumpe2fs.clear();
        let e = from_outputs(&o).unwrap_err().to_string();
        assert_eq!(
            e,
            "the file system mounted on / is on /dev/sda1, and the probes found no file system there (blkid lists no signature for it): the layout cannot recreate it"
        );
    }

    #[test]
    fn from_outputs_swap_partition_without_signature_is_refused() {
        let mut o = live_outputs();
        o.proc_swaps =
            "Filename Type Size Used Priority\n/dev/sda2 partition 1048572 0 -2\n".into();
        let e = from_outputs(&o).unwrap_err().to_string();
        assert!(
            e.starts_with("swap is on /dev/sda2, and the probes found"),
            "{e}"
        );
    }

    /// stderr and exit codes as blkid and sfdisk gave them on a VM whose raw disk is EPERM
    /// even for root, and on an empty file.
    #[test]
    fn says_nothing_there_only_when_the_tool_says_so() {
        assert!(says_nothing_there("blkid", Some(2), ""));
        assert!(!says_nothing_there(
            "blkid",
            Some(2),
            "blkid: error: /dev/vda: Operation not permitted"
        ));
        assert!(!says_nothing_there("blkid", Some(4), ""));
        // QEMU's floppy drive without a disk, as the e2e source systems have one.
        assert!(says_nothing_there(
            "blkid",
            Some(2),
            "blkid: error: /dev/fd0: No such device or address"
        ));
        assert!(says_nothing_there(
            "sfdisk",
            Some(1),
            "sfdisk: cannot open /dev/fd0: No such device or address"
        ));
        assert!(says_nothing_there(
            "blkid",
            Some(2),
            "blkid: error: /dev/sdc: No medium found"
        ));
        assert!(says_nothing_there(
            "sfdisk",
            Some(1),
            "sfdisk: /tmp/x: does not contain a recognized partition table"
        ));
        assert!(!says_nothing_there(
            "sfdisk",
            Some(1),
            "sfdisk: cannot open /dev/vda: Operation not permitted"
        ));
        assert!(!says_nothing_there("lvm", Some(5), ""));
    }

    #[test]
    fn disks_from_lsblk_identity_only() {
        let d = disks_from_lsblk(&live_outputs().lsblk).unwrap();
        let devs: Vec<&str> = d.iter().map(|d| d.device.as_str()).collect();
        // The USB disk stays a possible target; loop and CD do not.
        assert_eq!(devs, ["/dev/sda", "/dev/sdb"]);
        assert_eq!(d[0].serial, "S1");
        assert!(d.iter().all(|d| d.table.is_none()));
        let n = disks_from_lsblk(include_str!(
            "../../../../tests/fixtures/layout/nvme/lsblk.json"
        ))
        .unwrap();
        assert_eq!(n[0].device, "/dev/nvme0n1");
        assert_eq!(n[0].size, 1 << 30);
    }

    #[test]
    fn file_key_and_ls_by_id() {
        assert_eq!(file_key("/dev/mapper/vg0-root"), "mapper_vg0-root");
        assert_eq!(file_key("/dev/md/root"), "md_root");
        let m = parse_ls_by_id(
            "total 0\nlrwxrwxrwx 1 root root 9 Jan 1 00:00 nvme-QEMU_NVMe_Ctrl_NVME0001 -> ../../nvme0n1\n",
        );
        assert_eq!(m["nvme-QEMU_NVMe_Ctrl_NVME0001"], "/dev/nvme0n1");
    }

    /// Runs the real tools on this machine (root; `--ignored`): capture must succeed on
    /// whatever storage the machine has.
    #[test]
    #[ignore = "runs lsblk, blkid, findmnt, … on the host"]
    fn root_capture_host() {
        let l = capture(&Sysroot::host()).unwrap();
        eprintln!("{}", super::super::show::tree(&l));
        assert_eq!(l.version, LAYOUT_VERSION);
    }
}
