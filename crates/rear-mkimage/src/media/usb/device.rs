//! Writing a USB image to a real disk: identify it, refuse one the running system uses or
//! that is too small, ask, copy, fsync.
//!
//! Input: the image file and a device node. Output: the image on the disk, with the backup
//! GPT moved to the disk's end. Everything read about the disk comes from `/sys` and
//! `/proc` through a [`Sysroot`].

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Error, io_error};
use crate::media::gpt::{self, Gpt, SECTOR};
use rear_sys::sysroot::Sysroot;

/// A disk as the operator sees it before it is overwritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device node (`/dev/sdb`), links resolved.
    pub path: PathBuf,
    /// Kernel name (`sdb`).
    pub name: String,
    /// Vendor, when the device says.
    pub vendor: Option<String>,
    /// Model, when the device says.
    pub model: Option<String>,
    /// Serial number, when the device says.
    pub serial: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Whether the kernel marks the medium removable.
    pub removable: bool,
}

impl fmt::Display for DeviceInfo {
    /// `/dev/sdb: SanDisk Cruzer Blade, 14.9 GiB (16008609792 bytes), serial 4C53..., removable`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let model = [self.vendor.as_deref(), self.model.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        write!(
            f,
            "{}: {}, {:.1} GiB ({} bytes), serial {}{}",
            self.path.display(),
            if model.is_empty() {
                "unknown model"
            } else {
                &model
            },
            self.size as f64 / (1u64 << 30) as f64,
            self.size,
            self.serial.as_deref().unwrap_or("unknown"),
            if self.removable { ", removable" } else { "" }
        )
    }
}

/// Copies `image` to the whole disk `device` after checks and `confirm`.
///
/// Refuses a partition, a disk of which the running system has something mounted (per
/// `/proc/self/mountinfo`), uses as swap or holds (`/sys/block/<dev>/holders`: device mapper,
/// md), a disk smaller than the image or without 512-byte sectors; then shows the
/// [`DeviceInfo`] to `confirm` and writes only if it returns true. The write is buffered
/// (no `O_DIRECT`), with `O_EXCL` so the kernel refuses a disk mounted meanwhile, and ends
/// with fsync. On a disk larger than the image the backup GPT is moved to the disk's end;
/// the partitions keep their sizes and the rest of the disk stays unpartitioned.
pub fn write_to_device(
    image: &Path,
    device: &Path,
    confirm: &mut dyn FnMut(&DeviceInfo) -> bool,
) -> Result<(), Error> {
    write_to_device_in(&Sysroot::host(), image, device, confirm)
}

fn write_to_device_in(
    sys: &Sysroot,
    image: &Path,
    device: &Path,
    confirm: &mut dyn FnMut(&DeviceInfo) -> bool,
) -> Result<(), Error> {
    let image_size = std::fs::metadata(image).map_err(io_error(image))?.len();
    let mut src = File::open(image).map_err(io_error(image))?;
    let mut head = vec![0u8; (gpt::FIRST_USABLE * SECTOR) as usize];
    src.read_exact(&mut head).map_err(io_error(image))?;
    let table = Gpt::parse(&head).map_err(|error| Error::NotAnImage {
        path: image.to_path_buf(),
        error,
    })?;
    if table.sectors * SECTOR != image_size {
        return Err(Error::NotAnImage {
            path: image.to_path_buf(),
            error: gpt::Error::Invalid {
                what: format!(
                    "backup header at sector {} but the file has {} sectors",
                    table.sectors - 1,
                    image_size / SECTOR
                ),
            },
        });
    }

    let disk = inspect_disk(sys, device)?;
    if let Some(reason) = disk_in_use(sys, &disk)? {
        return Err(Error::Busy {
            path: disk.info.path,
            reason,
        });
    }
    if disk.sector_size != SECTOR {
        return Err(Error::SectorSize {
            path: disk.info.path,
            size: disk.sector_size,
        });
    }
    if disk.info.size < image_size {
        return Err(Error::TooSmall {
            path: disk.info.path,
            size: disk.info.size,
            needed: image_size,
        });
    }
    if !confirm(&disk.info) {
        return Err(Error::NotConfirmed {
            path: disk.info.path,
        });
    }
    let path = disk.info.path.clone();
    log::info!("writing {} to {}", image.display(), disk.info);
    let mut dev = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(&path)
        .map_err(io_error(&path))?;
    copy_image(&mut src, &table, &mut dev, &path, disk.info.size / SECTOR)?;
    dev.sync_all().map_err(io_error(&path))?;
    log::info!("{}: written and synced", path.display());
    Ok(())
}

/// Copies the image read from `src` (whose GPT is `table`) onto `dev` of `dev_sectors`
/// sectors: the image bytes with the GPT rewritten for the disk's size, its old backup area
/// zeroed, the new backup table at the disk's end.
fn copy_image(
    src: &mut File,
    table: &Gpt,
    dev: &mut File,
    dev_path: &Path,
    dev_sectors: u64,
) -> Result<(), Error> {
    let image_len = table.sectors * SECTOR;
    let moved = Gpt {
        sectors: dev_sectors,
        ..table.clone()
    };
    let mut boot_code = [0u8; 440];
    src.seek(SeekFrom::Start(0)).map_err(io_error(dev_path))?;
    src.read_exact(&mut boot_code).map_err(io_error(dev_path))?;
    let mut head = moved.protective_mbr(&boot_code).to_vec();
    head.extend(moved.primary()?);
    let old_backup = image_len - gpt::BACKUP_SECTORS * SECTOR;

    src.seek(SeekFrom::Start(0)).map_err(io_error(dev_path))?;
    dev.seek(SeekFrom::Start(0)).map_err(io_error(dev_path))?;
    let mut buf = vec![0u8; 4 << 20];
    let mut pos = 0u64;
    while pos < image_len {
        let n = buf.len().min((image_len - pos) as usize);
        let chunk = &mut buf[..n];
        src.read_exact(chunk).map_err(io_error(dev_path))?;
        overlay(chunk, pos, &head, 0);
        let end = pos + n as u64;
        if end > old_backup {
            let from = old_backup.saturating_sub(pos) as usize;
            chunk[from..].fill(0);
        }
        dev.write_all(chunk).map_err(io_error(dev_path))?;
        pos = end;
    }
    let backup = moved.backup()?;
    dev.seek(SeekFrom::Start(
        (dev_sectors - gpt::BACKUP_SECTORS) * SECTOR,
    ))
    .map_err(io_error(dev_path))?;
    dev.write_all(&backup).map_err(io_error(dev_path))?;
    Ok(())
}

/// Copies the part of `patch` (placed at `patch_at`) that falls into `chunk` (at `chunk_at`).
fn overlay(chunk: &mut [u8], chunk_at: u64, patch: &[u8], patch_at: u64) {
    let start = chunk_at.max(patch_at);
    let end = (chunk_at + chunk.len() as u64).min(patch_at + patch.len() as u64);
    if start < end {
        let c = (start - chunk_at) as usize..(end - chunk_at) as usize;
        let p = (start - patch_at) as usize..(end - patch_at) as usize;
        chunk[c].copy_from_slice(&patch[p]);
    }
}

/// A whole disk found from its device node.
struct Disk {
    info: DeviceInfo,
    /// `major:minor` of the disk and of each partition, with the sysfs directory.
    nodes: Vec<((u64, u64), PathBuf)>,
    sector_size: u64,
}

fn inspect_disk(sys: &Sysroot, device: &Path) -> Result<Disk, Error> {
    let resolved = sys.resolve(device)?.path;
    let meta = sys.metadata(device)?;
    if !meta.file_type().is_block_device() {
        return Err(Error::NotABlockDevice {
            path: device.to_path_buf(),
        });
    }
    let dev = dev_numbers(meta.rdev());
    let sys_dir = sys
        .resolve(Path::new(&format!("/sys/dev/block/{}:{}", dev.0, dev.1)))?
        .path;
    if sys.exists(&sys_dir.join("partition")) {
        let disk = sys_dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(Error::NotWholeDisk {
            path: device.to_path_buf(),
            disk,
        });
    }
    let name = sys_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let attr = |rel: &str| -> Option<String> {
        sys.read_to_string(&sys_dir.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let number = |rel: &str| attr(rel).and_then(|s| s.parse::<u64>().ok());
    let serial = attr("device/serial").or_else(|| {
        sys.read(&sys_dir.join("device/vpd_pg80"))
            .ok()
            .and_then(|b| vpd_serial(&b))
    });
    let info = DeviceInfo {
        path: resolved,
        name,
        vendor: attr("device/vendor"),
        model: attr("device/model"),
        serial,
        size: number("size").unwrap_or(0) * SECTOR,
        removable: number("removable") == Some(1),
    };
    let mut nodes = vec![(dev, sys_dir.clone())];
    for entry in sys.read_dir(&sys_dir)? {
        if sys.exists(&entry.join("partition"))
            && let Some(n) = sys
                .read_to_string(&entry.join("dev"))
                .ok()
                .and_then(|s| rear_sys::mounts::parse_dev(&s))
        {
            nodes.push((n, entry));
        }
    }
    Ok(Disk {
        sector_size: number("queue/logical_block_size").unwrap_or(SECTOR),
        info,
        nodes,
    })
}

/// Why the running system uses `disk` (a mount, a holder, swap), or `None`.
fn disk_in_use(sys: &Sysroot, disk: &Disk) -> Result<Option<String>, Error> {
    let devs: Vec<(u64, u64)> = disk.nodes.iter().map(|(d, _)| *d).collect();
    let rdev_of = |p: &str| {
        sys.metadata(Path::new(p))
            .ok()
            .filter(|m| m.file_type().is_block_device())
            .map(|m| dev_numbers(m.rdev()))
    };
    let mountinfo = sys.read_to_string(Path::new("/proc/self/mountinfo"))?;
    if let Some(m) = mounted_from(&mountinfo, &devs, &rdev_of) {
        return Ok(Some(format!(
            "{} is mounted on {}",
            m.source, m.mount_point
        )));
    }
    for (_, dir) in &disk.nodes {
        let holders = dir.join("holders");
        if let Ok(list) = sys.read_dir(&holders)
            && let Some(h) = list.first()
        {
            let part = dir.file_name().unwrap_or_default().to_string_lossy();
            let holder = h.file_name().unwrap_or_default().to_string_lossy();
            return Ok(Some(format!("{part} is held by {holder}")));
        }
    }
    // Unreadable is an error, not "no swap": the disk might be in use.
    let swaps = sys.read_to_string(Path::new("/proc/swaps"))?;
    for swap in rear_sys::layout::parse::swaps::parse(&swaps)? {
        if rdev_of(&swap.filename).is_some_and(|d| devs.contains(&d)) {
            return Ok(Some(format!("{} is in use as swap", swap.filename)));
        }
    }
    Ok(None)
}

/// A mount of the running system.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    mount_point: String,
    source: String,
}

/// The first mount in `mountinfo` (`/proc/self/mountinfo` text) whose device number is in
/// `devs`, or whose source is a device node that `rdev_of` maps into `devs` (btrfs shows an
/// anonymous device number in the third field).
fn mounted_from(
    mountinfo: &str,
    devs: &[(u64, u64)],
    rdev_of: &dyn Fn(&str) -> Option<(u64, u64)>,
) -> Option<Mount> {
    for m in rear_sys::mounts::parse_mountinfo(mountinfo) {
        let source = m.source;
        let hit = m.dev.is_some_and(|d| devs.contains(&d))
            || (source.starts_with('/') && rdev_of(&source).is_some_and(|d| devs.contains(&d)));
        if hit {
            return Some(Mount {
                mount_point: m.mount_point.to_string_lossy().into_owned(),
                source,
            });
        }
    }
    None
}

/// Major and minor of a `dev_t` (glibc's encoding, as `st_rdev` carries it).
fn dev_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

/// The serial in a SCSI "unit serial number" VPD page (0x80): 4 header bytes, then ASCII.
fn vpd_serial(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let text = page.get(4..4 + len.min(page.len() - 4))?;
    let s = String::from_utf8_lossy(text).trim().to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::gpt::{ATTR_LEGACY_BIOS_BOOTABLE, Guid, Partition};
    use std::process::Command;

    const MIB: u64 = 1 << 20;

    /// A GPT image of `mib` MiB with one partition filled with a pattern (no tools needed).
    fn small_image(path: &Path, mib: u64) -> Gpt {
        let sectors = mib * MIB / SECTOR;
        let table = Gpt {
            disk_guid: Guid::derived(b"test-disk"),
            sectors,
            partitions: vec![Partition {
                type_guid: Guid::ESP,
                guid: Guid::derived(b"test-part"),
                first_lba: 2048,
                last_lba: sectors - 2048 - 1,
                attributes: ATTR_LEGACY_BIOS_BOOTABLE,
                name: "REAR-BOOT".into(),
            }],
        };
        let mut bytes = vec![0u8; (sectors * SECTOR) as usize];
        bytes[..512].copy_from_slice(&table.protective_mbr(&[0xfa; 440]));
        bytes[512..34 * 512].copy_from_slice(&table.primary().unwrap());
        for (i, b) in bytes[MIB as usize..(sectors as usize - 2048) * 512]
            .iter_mut()
            .enumerate()
        {
            *b = (i % 253) as u8;
        }
        let backup = table.backup().unwrap();
        let at = bytes.len() - backup.len();
        bytes[at..].copy_from_slice(&backup);
        std::fs::write(path, bytes).unwrap();
        table
    }

    fn sgdisk_verify(path: &Path) -> String {
        let out = Command::new("sgdisk")
            .arg("-v")
            .arg(path)
            .output()
            .expect("sgdisk (install the Debian package gdisk)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn mounted_from_matches_device_numbers_and_sources() {
        let mountinfo = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 8:17 / /mnt/my\\040stick rw - vfat /dev/sdb1 rw
41 27 0:45 /@home /home rw - btrfs /dev/sdc2 rw,subvol=/@home
";
        let none = |_: &str| None;
        let m = mounted_from(mountinfo, &[(8, 16), (8, 17)], &none).unwrap();
        assert_eq!(m.mount_point, "/mnt/my stick");
        assert_eq!(m.source, "/dev/sdb1");
        assert_eq!(mounted_from(mountinfo, &[(8, 32), (8, 34)], &none), None);
        // btrfs: the third field is an anonymous device; the source names the partition.
        let rdev = |p: &str| (p == "/dev/sdc2").then_some((8, 34));
        let m = mounted_from(mountinfo, &[(8, 32), (8, 34)], &rdev).unwrap();
        assert_eq!(m.mount_point, "/home");
    }

    #[test]
    fn dev_numbers_decodes_glibc_encoding() {
        assert_eq!(dev_numbers(0x811), (8, 17));
        // makedev(259, 1) and makedev(8, 300): the high parts of major and minor.
        assert_eq!(dev_numbers(0x10301), (259, 1));
        assert_eq!(dev_numbers((0x100 << 12) | 0x82c), (8, 300));
    }

    #[test]
    fn vpd_serial_reads_page_0x80() {
        assert_eq!(
            vpd_serial(b"\x00\x80\x00\x06 AB12 ").as_deref(),
            Some("AB12")
        );
        assert_eq!(vpd_serial(b"\x00\x83\x00\x02ab"), None);
        assert_eq!(vpd_serial(b"\x00\x80\x00\x00"), None);
    }

    #[test]
    fn device_info_display_names_model_size_serial() {
        let info = DeviceInfo {
            path: "/dev/sdb".into(),
            name: "sdb".into(),
            vendor: Some("SanDisk".into()),
            model: Some("Cruzer Blade".into()),
            serial: Some("4C53".into()),
            size: 16 << 30,
            removable: true,
        };
        assert_eq!(
            info.to_string(),
            "/dev/sdb: SanDisk Cruzer Blade, 16.0 GiB (17179869184 bytes), serial 4C53, removable"
        );
    }

    #[test]
    fn copy_image_moves_backup_gpt_to_the_disk_end() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("img");
        let table = small_image(&image, 4);
        let disk = dir.path().join("disk");
        // An old disk full of 0xff, twice the image size.
        std::fs::write(&disk, vec![0xffu8; (8 * MIB) as usize]).unwrap();
        let mut src = File::open(&image).unwrap();
        let mut dev = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
        copy_image(&mut src, &table, &mut dev, &disk, 8 * MIB / SECTOR).unwrap();
        drop(dev);
        let text = sgdisk_verify(&disk);
        assert!(text.contains("No problems found"), "sgdisk -v:\n{text}");
        let img = std::fs::read(&image).unwrap();
        let out = std::fs::read(&disk).unwrap();
        let moved = Gpt::parse(&out).unwrap();
        assert_eq!(moved.sectors, 8 * MIB / SECTOR);
        assert_eq!(moved.partitions, table.partitions);
        assert_eq!(&out[..440], &img[..440]);
        // Partition content unchanged; the image's old backup area zeroed.
        assert!(out[MIB as usize..2 * MIB as usize] == img[MIB as usize..2 * MIB as usize]);
        let old_backup = (4 * MIB - 33 * SECTOR) as usize;
        assert!(out[old_backup..4 * MIB as usize].iter().all(|b| *b == 0));
    }

    #[test]
    fn write_to_device_refuses_non_block_devices() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("img");
        small_image(&image, 4);
        let mut asked = false;
        for target in [Path::new("/dev/null"), image.as_path()] {
            let e = write_to_device(&image, target, &mut |_| {
                asked = true;
                false
            })
            .unwrap_err();
            assert!(matches!(e, Error::NotABlockDevice { .. }), "{e}");
        }
        assert!(!asked);
        // Not an image: no GPT.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![0u8; 64 << 10]).unwrap();
        let e = write_to_device(&junk, Path::new("/dev/null"), &mut |_| true).unwrap_err();
        assert!(matches!(e, Error::NotAnImage { .. }), "{e}");
        assert!(e.to_string().contains("junk"), "{e}");
    }

    /// The whole disk holding `/` of this machine, if `/` is on a block device.
    fn root_disk() -> Option<PathBuf> {
        let sys = Sysroot::host();
        let mountinfo = sys
            .read_to_string(Path::new("/proc/self/mountinfo"))
            .unwrap();
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))?;
        let (major, minor) = rear_sys::mounts::parse_dev(line.split(' ').nth(2)?)?;
        if major == 0 {
            return None;
        }
        let dir = sys
            .resolve(Path::new(&format!("/sys/dev/block/{major}:{minor}")))
            .ok()?
            .path;
        let dir = if sys.exists(&dir.join("partition")) {
            dir.parent()?.to_path_buf()
        } else {
            dir
        };
        let node = Path::new("/dev").join(dir.file_name()?);
        sys.exists(&node).then_some(node)
    }

    #[test]
    fn write_to_device_refuses_the_disk_of_the_root_filesystem() {
        let Some(disk) = root_disk() else {
            eprintln!("skipping: / is not on a block device with a node in /dev");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("img");
        small_image(&image, 4);
        // The callback says no: even a failed check could not write anything.
        let mut asked = false;
        let e = write_to_device(&image, &disk, &mut |_| {
            asked = true;
            false
        })
        .unwrap_err();
        assert!(!asked, "asked to confirm writing to {}", disk.display());
        match &e {
            Error::Busy { reason, .. } => assert!(reason.contains("mounted on /"), "{e}"),
            other => panic!("expected Busy, got {other}"),
        }
    }

    /// A loop device on `file`, detached on drop.
    struct Loop(PathBuf);

    impl Loop {
        fn attach(file: &Path) -> Loop {
            let out = Command::new("losetup")
                .args(["-f", "--show"])
                .arg(file)
                .output()
                .expect("losetup (install the Debian package mount)");
            assert!(
                out.status.success(),
                "losetup: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Loop(PathBuf::from(
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            ))
        }
    }

    impl Drop for Loop {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }

    fn is_root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            eprintln!("skipping: needs root for loop devices");
        }
        root
    }

    #[test]
    fn root_write_to_device_refuses_a_too_small_disk() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("img");
        small_image(&image, 4);
        let backing = dir.path().join("small");
        std::fs::write(&backing, vec![0xa5u8; (2 * MIB) as usize]).unwrap();
        let lo = Loop::attach(&backing);
        let mut asked = false;
        let e = write_to_device(&image, &lo.0, &mut |_| {
            asked = true;
            true
        })
        .unwrap_err();
        assert!(matches!(e, Error::TooSmall { .. }), "{e}");
        assert!(!asked);
        drop(lo);
        let after = std::fs::read(&backing).unwrap();
        assert!(
            after.iter().all(|b| *b == 0xa5),
            "the small disk was written to"
        );
    }

    #[test]
    fn root_write_to_device_writes_a_larger_disk() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("img");
        small_image(&image, 4);
        let backing = dir.path().join("disk");
        std::fs::write(&backing, vec![0xa5u8; (6 * MIB) as usize]).unwrap();
        let lo = Loop::attach(&backing);
        // Refused at the prompt: nothing written.
        let mut shown = None;
        let e = write_to_device(&image, &lo.0, &mut |info| {
            shown = Some(info.clone());
            false
        })
        .unwrap_err();
        assert!(matches!(e, Error::NotConfirmed { .. }), "{e}");
        let info = shown.unwrap();
        assert_eq!(info.size, 6 * MIB);
        assert_eq!(info.path, lo.0);
        assert!(
            std::fs::read(&backing).unwrap().iter().all(|b| *b == 0xa5),
            "written without confirmation"
        );
        // Confirmed: the image, with the backup GPT at the disk's end.
        write_to_device(&image, &lo.0, &mut |_| true).unwrap();
        drop(lo);
        let text = sgdisk_verify(&backing);
        assert!(text.contains("No problems found"), "sgdisk -v:\n{text}");
        let img = std::fs::read(&image).unwrap();
        let out = std::fs::read(&backing).unwrap();
        assert!(out[34 * 512..3 * MIB as usize] == img[34 * 512..3 * MIB as usize]);
        assert_eq!(Gpt::parse(&out).unwrap().sectors, 6 * MIB / SECTOR);
    }
}
