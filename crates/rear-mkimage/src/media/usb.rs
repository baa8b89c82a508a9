//! USB output: kernel + initrd + boot loaders -> `rear-<host>.usb.img`, a raw GPT disk image
//! that boots with BIOS and UEFI; and the guarded copy of such an image onto a real stick.
//!
//! Input: a [`MediaInput`], the size of the data partition, the host's boot-loader files
//! (through a [`Sysroot`]). Output: a sparse image file, written atomically. Layout, in
//! 512-byte sectors with 1 MiB alignment:
//!
//! | where | what |
//! |---|---|
//! | LBA 0 | protective MBR; its boot code is syslinux's `gptmbr.bin` |
//! | LBA 1–33 | primary GPT |
//! | partition 1 `REAR-BOOT` from 1 MiB | ESP (FAT, [`esp::esp_image`]), GPT attribute "legacy BIOS bootable": `EFI/BOOT/BOOTX64.EFI` (GRUB), `boot/grub/grub.cfg`, `boot/syslinux/` (syslinux and its menu), `boot/vmlinuz`, `boot/initrd.img` |
//! | partition 2 `REAR-DATA` | ext4 labelled `REAR-DATA`, `data_size` bytes, for backups; absent when `data_size` is 0 |
//! | last 1 MiB | free, with the backup GPT in its last 33 sectors |
//!
//! BIOS boot: the firmware runs `gptmbr.bin`, which loads the boot sector of the partition
//! with the legacy-BIOS-bootable attribute (the ESP); syslinux's boot sector (installed by the
//! mtools-based `syslinux --install --offset`) loads `ldlinux.sys`, which reads
//! `boot/syslinux/syslinux.cfg`. UEFI boot: the firmware starts `\EFI\BOOT\BOOTX64.EFI`, the
//! GRUB image (or shim + signed GRUB) that [`grub`] makes for the ISO too, whose embedded
//! configuration finds the ESP by the marker file `/.disk/rear-<id>` (else by its label) and
//! reads `boot/grub/grub.cfg`. Both menus list [`menu_entries`]. `docs/media.md` has the why.
//!
//! Reproducible: the disk and partition GUIDs, the FAT serial and the ext4 UUID and hash seed
//! are derived from a hash of the input (kernel, initrd, host, command line, timeout, epoch,
//! data size); mtools and mke2fs get the epoch as their clock.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::bootfiles::{self, SYSLINUX_MODULE_PACKAGES};
use super::gpt::{self, ATTR_LEGACY_BIOS_BOOTABLE, Gpt, Guid, Partition, SECTOR};
use super::{MediaInput, TemplateError, esp, grub, render_menu, syslinux_timeout};
use rear_sys::exec;
use rear_sys::sysroot::{self, Sysroot};

mod device;

pub use device::{DeviceInfo, write_to_device};

use rear_model::labels::{USB_DATA as DATA_LABEL, USB_ESP as ESP_LABEL};
/// The smallest data partition: ext4 with a journal needs a few MiB to be useful.
pub const MIN_DATA_SIZE: u64 = 16 * MIB;
/// Default size of the data partition (what `--usb-size` defaults to).
pub const DEFAULT_DATA_SIZE: u64 = 1 << 30;

const MIB: u64 = 1 << 20;
/// Where the ESP starts: 1 MiB, the usual alignment.
const ESP_START: u64 = MIB;
/// Directory of syslinux on the ESP (the installer's `--directory`).
const SYSLINUX_DIR: &str = "boot/syslinux";
/// The syslinux menu modules copied next to `ldlinux.c32`.
const SYSLINUX_MODULES: [&str; 4] = ["menu.c32", "libutil.c32", "libcom32.c32", "chain.c32"];
/// Room kept for the files the syslinux installer writes (`ldlinux.sys` is about 58 KiB,
/// `ldlinux.c32` about 117 KiB): zero-filled placeholders it replaces, so the FAT image
/// sized to its content has space for them.
const LDLINUX_SYS_ROOM: usize = 128 << 10;
const LDLINUX_C32_ROOM: usize = 256 << 10;
const SYSLINUX_TEMPLATE: &str = include_str!("../../../../bootloaders/syslinux-usb.cfg");

/// Directories of syslinux's BIOS modules: Debian/Ubuntu, Fedora/SUSE, Arch, old Debian
/// (the same places [`bootfiles`] looks in).
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/syslinux/modules/bios",
    "/usr/share/syslinux",
    "/usr/lib/syslinux/bios",
    "/usr/lib/syslinux",
];
/// Directories of `gptmbr.bin`: Debian/Ubuntu (`syslinux-common`), Fedora/SUSE, Arch.
const GPTMBR_DIRS: &[&str] = &[
    "/usr/lib/syslinux/mbr",
    "/usr/share/syslinux",
    "/usr/lib/syslinux/bios",
];
/// The package of the mtools-based `syslinux` installer (same name on Debian, Fedora, SUSE).
const SYSLINUX_INSTALLER_PACKAGE: &str = "syslinux";

/// Errors of building a USB image or writing it to a device; each names its file, device or
/// partition.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A boot-loader file is not on the host.
    #[error(transparent)]
    BootFiles(#[from] bootfiles::Error),
    /// A boot-loader file is there but not what it should be.
    #[error("{}: {what}", .path.display())]
    BadBootFile {
        /// The host path.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The GRUB EFI loader could not be made.
    #[error(transparent)]
    Grub(#[from] grub::Error),
    /// Reading the host failed.
    #[error(transparent)]
    Sysroot(#[from] sysroot::Error),
    /// A boot-loader template and its values do not match.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The ESP image could not be made (boxed: hadris' errors are large).
    #[error(transparent)]
    Esp(Box<esp::Error>),
    /// The partition table is inconsistent.
    #[error(transparent)]
    Gpt(#[from] gpt::Error),
    /// A tool (syslinux, mkfs.ext4) failed.
    #[error(transparent)]
    Exec(#[from] exec::Error),
    /// `/proc/swaps` of the running system could not be read.
    #[error(transparent)]
    Swaps(#[from] rear_sys::layout::parse::Error),
    /// Reading or writing a file or device failed.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file or device.
        path: PathBuf,
        /// What the kernel said.
        error: io::Error,
    },
    /// The data partition asked for is too small for ext4.
    #[error("USB data partition of {size} bytes is too small (0 for none, or at least {min})")]
    DataTooSmall {
        /// The size asked for.
        size: u64,
        /// The smallest size accepted.
        min: u64,
    },
    /// The ESP image is not a FAT volume this module understands.
    #[error("ESP image: {what}")]
    BadEsp {
        /// What is wrong.
        what: String,
    },
    /// The target is not a block device.
    #[error("{}: not a block device", .path.display())]
    NotABlockDevice {
        /// The path given.
        path: PathBuf,
    },
    /// The target is a partition, not a whole disk.
    #[error("{}: is a partition of {disk}, give the whole disk", .path.display())]
    NotWholeDisk {
        /// The path given.
        path: PathBuf,
        /// The disk it belongs to.
        disk: String,
    },
    /// The target holds something the running system uses.
    #[error("{}: in use by the running system: {reason}; refusing to overwrite it", .path.display())]
    Busy {
        /// The device.
        path: PathBuf,
        /// What uses it (mount point, holder, swap).
        reason: String,
    },
    /// The target is smaller than the image.
    #[error("{}: {size} bytes, smaller than the image ({needed} bytes)", .path.display())]
    TooSmall {
        /// The device.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The image size.
        needed: u64,
    },
    /// The target's logical sectors are not 512 bytes; the image's GPT would be misplaced.
    #[error("{}: logical sector size {size}, the image needs 512", .path.display())]
    SectorSize {
        /// The device.
        path: PathBuf,
        /// Its logical sector size.
        size: u64,
    },
    /// The operator did not confirm.
    #[error("{}: not confirmed, nothing written", .path.display())]
    NotConfirmed {
        /// The device.
        path: PathBuf,
    },
    /// The file to write is not a USB image made here (no valid primary GPT).
    #[error("{}: {error}", .path.display())]
    NotAnImage {
        /// The image file.
        path: PathBuf,
        /// What is wrong with its GPT.
        error: gpt::Error,
    },
}

impl From<esp::Error> for Error {
    fn from(e: esp::Error) -> Error {
        Error::Esp(Box::new(e))
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// One partition of the image, for the build report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsbPartition {
    /// Partition number (1-based).
    pub number: u32,
    /// GPT name, also the filesystem label.
    pub label: String,
    /// Filesystem type (`vfat`, `ext4`).
    pub filesystem: String,
    /// Byte offset in the image.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// Partition GUID (PARTUUID).
    pub partuuid: String,
    /// Filesystem UUID as `blkid` shows it.
    pub fs_uuid: String,
}

/// What [`write_usb_image`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsbReport {
    /// The image file.
    pub path: PathBuf,
    /// Its size in bytes (most of it is a hole in the file).
    pub size: u64,
    /// Disk GUID of the GPT.
    pub disk_guid: String,
    /// The partitions, in table order.
    pub partitions: Vec<UsbPartition>,
}

/// The ids of one image, all derived from its input.
struct Ids {
    disk: Guid,
    esp: Guid,
    data: Guid,
    fat_serial: u32,
    ext4_uuid: Guid,
}

impl Ids {
    fn new(input: &MediaInput<'_>, data_size: u64) -> Ids {
        let mut h = Sha256::new();
        h.update(b"rear-usb-image\0");
        h.update(Sha256::digest(input.kernel));
        h.update(Sha256::digest(input.initrd));
        for part in [input.hostname, input.release, input.cmdline.as_str()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(input.boot_timeout.to_le_bytes());
        h.update(input.epoch.to_le_bytes());
        h.update(data_size.to_le_bytes());
        let seed = h.finalize();
        let id = |what: &str| {
            let mut s = seed.to_vec();
            s.extend_from_slice(what.as_bytes());
            Guid::derived(&s)
        };
        let serial = id("fat-serial").0;
        Ids {
            disk: id("disk"),
            esp: id("esp"),
            data: id("data"),
            fat_serial: u32::from_le_bytes([serial[0], serial[1], serial[2], serial[3]]),
            ext4_uuid: id("ext4"),
        }
    }

    /// 16 hex digits naming this build (the marker file's name).
    fn short(&self) -> String {
        hex::encode(&self.disk.to_big_endian()[..8])
    }

    /// The FAT serial as GRUB and blkid show it (`ABCD-1234`).
    fn fat_uuid(&self) -> String {
        format!(
            "{:04X}-{:04X}",
            self.fat_serial >> 16,
            self.fat_serial & 0xffff
        )
    }
}

/// Writes the USB image of `input` to `out` (a sparse file, replaced atomically): ESP with
/// GRUB (UEFI) and syslinux (BIOS), kernel and initrd, and an ext4 data partition of
/// `data_size` bytes (rounded up to MiB; 0 leaves it out).
pub fn write_usb_image(
    sys: &Sysroot,
    input: &MediaInput<'_>,
    data_size: u64,
    out: &Path,
) -> Result<UsbReport, Error> {
    if data_size != 0 && data_size < MIN_DATA_SIZE {
        return Err(Error::DataTooSmall {
            size: data_size,
            min: MIN_DATA_SIZE,
        });
    }
    let ids = Ids::new(input, data_size);
    let files = esp_files(sys, input, &ids)?;
    let mut fat = esp::esp_image(&files, ESP_LABEL, ids.fat_serial)?;
    drop(files);
    let esp_first = ESP_START / SECTOR;
    set_hidden_sectors(&mut fat, esp_first)?;
    let esp_size = fat.len() as u64;
    let esp_sectors = esp_size.div_ceil(MIB) * MIB / SECTOR;
    let data_sectors = data_size.div_ceil(MIB) * MIB / SECTOR;
    let data_first = esp_first + esp_sectors;
    let sectors = data_first + data_sectors + MIB / SECTOR;
    let mut partitions = vec![Partition {
        type_guid: Guid::ESP,
        guid: ids.esp,
        first_lba: esp_first,
        last_lba: data_first - 1,
        attributes: ATTR_LEGACY_BIOS_BOOTABLE,
        name: ESP_LABEL.to_string(),
    }];
    if data_sectors > 0 {
        partitions.push(Partition {
            type_guid: Guid::LINUX_FS,
            guid: ids.data,
            first_lba: data_first,
            last_lba: data_first + data_sectors - 1,
            attributes: 0,
            name: DATA_LABEL.to_string(),
        });
    }
    let table = Gpt {
        disk_guid: ids.disk,
        sectors,
        partitions,
    };
    let primary = table.primary()?;
    let backup = table.backup()?;
    let mbr = table.protective_mbr(&gptmbr(sys)?);

    let tmp = rear_sys::atomic::Staged::new(out).map_err(io_error(out))?;
    let path = tmp.tmp_path().to_path_buf();
    let file = tmp.file();
    file.set_len(sectors * SECTOR).map_err(io_error(&path))?;
    write_sparse(file, &path, ESP_START, &fat)?;
    drop(fat);
    install_syslinux(file, &path, ESP_START, input.epoch)?;
    if data_sectors > 0 {
        mkfs_data(
            &path,
            data_first * SECTOR,
            data_sectors * SECTOR,
            &ids,
            input.epoch,
        )?;
    }
    file.write_all_at(&mbr, 0).map_err(io_error(&path))?;
    file.write_all_at(&primary, SECTOR)
        .map_err(io_error(&path))?;
    file.write_all_at(&backup, (sectors - gpt::BACKUP_SECTORS) * SECTOR)
        .map_err(io_error(&path))?;
    tmp.commit(0o600).map_err(io_error(out))?;
    let mut report = UsbReport {
        path: out.to_path_buf(),
        size: sectors * SECTOR,
        disk_guid: ids.disk.to_string(),
        partitions: vec![UsbPartition {
            number: 1,
            label: ESP_LABEL.to_string(),
            filesystem: "vfat".to_string(),
            start: ESP_START,
            size: esp_sectors * SECTOR,
            partuuid: ids.esp.to_string(),
            fs_uuid: ids.fat_uuid(),
        }],
    };
    if data_sectors > 0 {
        report.partitions.push(UsbPartition {
            number: 2,
            label: DATA_LABEL.to_string(),
            filesystem: "ext4".to_string(),
            start: data_first * SECTOR,
            size: data_sectors * SECTOR,
            partuuid: ids.data.to_string(),
            fs_uuid: ids.ext4_uuid.to_string().to_lowercase(),
        });
    }
    Ok(report)
}

/// The files of the ESP: kernel, initrd, GRUB for UEFI (from [`grub`], as on the ISO),
/// syslinux for BIOS, and the marker file the embedded GRUB config finds the ESP by.
fn esp_files(
    sys: &Sysroot,
    input: &MediaInput<'_>,
    ids: &Ids,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let loader = bootfiles::efi_loader(sys)?;
    let marker = format!(".disk/rear-{}", ids.short());
    let search = grub::search_cfg(&format!("/{marker}"), ESP_LABEL)?;
    let mut files = grub::esp_files(sys, &loader, &search)?;
    files.extend([
        ("boot/vmlinuz".to_string(), input.kernel.to_vec()),
        ("boot/initrd.img".to_string(), input.initrd.to_vec()),
        (
            "boot/grub/grub.cfg".to_string(),
            grub::menu_cfg(input)?.into_bytes(),
        ),
        (
            ".disk/info".to_string(),
            format!(
                "Relax-and-Recover rescue system of {} (kernel {})\n",
                input.hostname, input.release
            )
            .into_bytes(),
        ),
        (marker, format!("{}\n", ids.disk).into_bytes()),
    ]);
    files.extend(syslinux_files(sys, input)?);
    Ok(files)
}

/// `boot/syslinux/`: the menu, its modules, and placeholders for what the installer writes.
fn syslinux_files(sys: &Sysroot, input: &MediaInput<'_>) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut files = vec![
        (
            format!("{SYSLINUX_DIR}/syslinux.cfg"),
            syslinux_cfg(input)?.into_bytes(),
        ),
        (
            format!("{SYSLINUX_DIR}/ldlinux.sys"),
            vec![0; LDLINUX_SYS_ROOM],
        ),
        (
            format!("{SYSLINUX_DIR}/ldlinux.c32"),
            vec![0; LDLINUX_C32_ROOM],
        ),
    ];
    for module in SYSLINUX_MODULES {
        let (_, bytes) = find_in(sys, MODULE_DIRS, module)?;
        files.push((format!("{SYSLINUX_DIR}/{module}"), bytes));
    }
    Ok(files)
}

/// Reads `name` from the first of `dirs` that has it (a syslinux file).
fn find_in(sys: &Sysroot, dirs: &[&str], name: &'static str) -> Result<(PathBuf, Vec<u8>), Error> {
    let looked: Vec<PathBuf> = dirs.iter().map(|d| Path::new(d).join(name)).collect();
    for path in &looked {
        match sys.read(path) {
            Ok(bytes) => return Ok((path.clone(), bytes)),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(bootfiles::Error::Missing {
        file: name,
        looked,
        packages: SYSLINUX_MODULE_PACKAGES,
    }
    .into())
}

/// syslinux's MBR boot code for GPT disks (440 bytes).
fn gptmbr(sys: &Sysroot) -> Result<[u8; 440], Error> {
    let (path, bytes) = find_in(sys, GPTMBR_DIRS, "gptmbr.bin")?;
    <[u8; 440]>::try_from(bytes.as_slice()).map_err(|_| Error::BadBootFile {
        path,
        what: format!("{} bytes, not the 440 of MBR boot code", bytes.len()),
    })
}

/// `boot/syslinux/syslinux.cfg` from `bootloaders/syslinux-usb.cfg` and [`menu_entries`].
pub fn syslinux_cfg(input: &MediaInput<'_>) -> Result<String, Error> {
    Ok(render_menu(
        "syslinux-usb.cfg",
        SYSLINUX_TEMPLATE,
        input,
        syslinux_timeout(input),
        str::to_string,
    )?)
}

/// Sets the FAT boot sector's "hidden sectors" (the partition's start LBA), which DOS-style
/// loaders add to every sector number.
fn set_hidden_sectors(fat: &mut [u8], lba: u64) -> Result<(), Error> {
    if fat.len() < 512 || fat[510..512] != [0x55, 0xaa] {
        return Err(Error::BadEsp {
            what: "no boot sector signature".to_string(),
        });
    }
    let lba = u32::try_from(lba).map_err(|_| Error::BadEsp {
        what: format!("start sector {lba} does not fit the BPB"),
    })?;
    fat[28..32].copy_from_slice(&lba.to_le_bytes());
    Ok(())
}

/// Writes `bytes` at `offset`, skipping 64 KiB blocks of zeros (the file is fresh and sparse).
fn write_sparse(file: &File, path: &Path, offset: u64, bytes: &[u8]) -> Result<(), Error> {
    const BLOCK: usize = 64 << 10;
    for (i, chunk) in bytes.chunks(BLOCK).enumerate() {
        if chunk.iter().any(|b| *b != 0) {
            file.write_all_at(chunk, offset + (i * BLOCK) as u64)
                .map_err(io_error(path))?;
        }
    }
    Ok(())
}

/// Installs syslinux into the FAT at `offset` of `image`: its boot sector, `ldlinux.sys`
/// and `ldlinux.c32` in `/boot/syslinux` (mtools-based installer, clock from the epoch).
fn install_syslinux(file: &File, image: &Path, offset: u64, epoch: u64) -> Result<(), Error> {
    file.sync_all().map_err(io_error(image))?;
    let mut cmd = Command::new("syslinux");
    cmd.arg("--offset")
        .arg(offset.to_string())
        .args(["--directory", &format!("/{SYSLINUX_DIR}"), "--install"])
        .arg(image)
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    exec::run(&mut cmd, Some(SYSLINUX_INSTALLER_PACKAGE))?;
    // FAT32 keeps a copy of the boot sector; the installer writes only the first.
    let mut boot = [0u8; 512];
    file.read_exact_at(&mut boot, offset)
        .map_err(io_error(image))?;
    if let Some(backup) = fat32_backup_sector(&boot) {
        file.write_all_at(&boot, offset + backup * SECTOR)
            .map_err(io_error(image))?;
    }
    Ok(())
}

/// The backup boot sector of a FAT32 boot sector (`BPB_BkBootSec`); `None` for FAT12/16.
fn fat32_backup_sector(boot: &[u8; 512]) -> Option<u64> {
    let fat_size_16 = u16::from_le_bytes([boot[22], boot[23]]);
    let backup = u16::from_le_bytes([boot[50], boot[51]]);
    (fat_size_16 == 0 && backup != 0).then_some(u64::from(backup))
}

/// An ext4 filesystem labelled [`DATA_LABEL`] at `offset` of `image`, `size` bytes, with UUID
/// and directory hash seed from the ids and the epoch as mke2fs's clock.
///
/// Inode tables and journal are left to lazy initialisation: the region is a hole, so they
/// are zeros already, and the image stays sparse (1 GiB of ext4 costs under 1 MiB of disk
/// instead of 33 MiB).
fn mkfs_data(image: &Path, offset: u64, size: u64, ids: &Ids, epoch: u64) -> Result<(), Error> {
    let uuid = ids.ext4_uuid.to_string().to_lowercase();
    let extended = [
        format!("offset={offset}"),
        "root_owner=0:0".to_string(),
        format!("hash_seed={uuid}"),
        "nodiscard".to_string(),
        "lazy_itable_init=1".to_string(),
        "lazy_journal_init=1".to_string(),
    ]
    .join(",");
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args(["-q", "-F", "-L", DATA_LABEL, "-U", &uuid, "-T", "default"])
        .arg("-E")
        .arg(extended)
        .arg(image)
        .arg(format!("{}k", size / 1024))
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        // e2fsprogs 1.47.0 reads its clock from here only (SOURCE_DATE_EPOCH came in 1.47.1).
        .env("E2FSPROGS_FAKE_TIME", epoch.to_string());
    exec::run(&mut cmd, Some("e2fsprogs"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::input;

    /// A fake kernel and initrd: patterned, so misplaced bytes show.
    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    /// Runs a checking tool; its output, stdout then stderr. Fails naming the package.
    fn tool(program: &str, args: &[&std::ffi::OsStr], package: &str) -> (bool, String) {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (install the Debian package {package})"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Bytes `start..start+len` of `file` into a new file in `dir`.
    fn extract(file: &Path, start: u64, len: u64, dir: &Path, name: &str) -> PathBuf {
        let bytes = std::fs::read(file).unwrap();
        let out = dir.join(name);
        std::fs::write(&out, &bytes[start as usize..(start + len) as usize]).unwrap();
        out
    }

    #[test]
    fn syslinux_cfg_renders_three_entries() {
        let cfg = syslinux_cfg(&input(b"", b"")).unwrap();
        assert!(cfg.starts_with("serial 0 115200\n"), "{cfg}");
        assert!(cfg.contains("ui menu.c32\n"), "{cfg}");
        assert!(
            cfg.contains("prompt 0\ntimeout 50\ndefault recover\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains(
                "label recover\n  menu label Recover db1\n  menu default\n  linux /boot/vmlinuz\n  initrd /boot/initrd.img\n  append console=tty0 console=ttyS0,115200n8\n"
            ),
            "{cfg}"
        );
        assert!(cfg.contains("menu label Automatic recover db1\n"), "{cfg}");
        assert!(
            cfg.contains("append console=tty0 console=ttyS0,115200n8 rear.auto\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains(
                "menu label Boot from the first hard disk\n  com32 chain.c32\n  append hd1"
            ),
            "{cfg}"
        );
        assert!(!cfg.contains('@'), "{cfg}");
    }

    #[test]
    fn syslinux_cfg_timeout_zero_boots_at_once() {
        let mut i = input(b"", b"");
        i.boot_timeout = 0;
        let cfg = syslinux_cfg(&i).unwrap();
        assert!(cfg.contains("timeout 1\n"), "{cfg}");
    }

    #[test]
    fn set_hidden_sectors_patches_bpb() {
        let mut fat = vec![0u8; 1024];
        fat[510] = 0x55;
        fat[511] = 0xaa;
        set_hidden_sectors(&mut fat, 2048).unwrap();
        assert_eq!(&fat[28..32], &2048u32.to_le_bytes());
        let e = set_hidden_sectors(&mut [0u8; 512], 1).unwrap_err();
        assert!(matches!(e, Error::BadEsp { .. }), "{e}");
    }

    #[test]
    fn fat32_backup_sector_only_for_fat32() {
        let mut boot = [0u8; 512];
        boot[22] = 0x20; // FAT16: sectors per FAT set
        boot[50] = 6;
        assert_eq!(fat32_backup_sector(&boot), None);
        boot[22] = 0;
        assert_eq!(fat32_backup_sector(&boot), Some(6));
    }

    #[test]
    fn write_usb_image_rejects_tiny_data_partition() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_usb_image(
            &Sysroot::host(),
            &input(b"k", b"i"),
            MIB,
            &dir.path().join("x.img"),
        )
        .unwrap_err();
        assert!(matches!(e, Error::DataTooSmall { .. }), "{e}");
        assert!(!dir.path().join("x.img").exists());
    }

    #[test]
    fn write_usb_image_layout_passes_sgdisk_sfdisk_fsck() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = payload(700_000, 1);
        let initrd = payload(1_500_000, 2);
        let out = dir.path().join("rear-db1.usb.img");
        let report =
            write_usb_image(&Sysroot::host(), &input(&kernel, &initrd), 16 * MIB, &out).unwrap();
        let len = std::fs::metadata(&out).unwrap().len();
        assert_eq!(report.size, len);
        assert_eq!(len % MIB, 0);

        let (ok, text) = tool("sgdisk", &["-v".as_ref(), out.as_os_str()], "gdisk");
        assert!(
            ok && text.contains("No problems found"),
            "sgdisk -v:\n{text}"
        );

        let (ok, text) = tool("sfdisk", &["-J".as_ref(), out.as_os_str()], "fdisk");
        assert!(ok, "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let table = &json["partitiontable"];
        assert_eq!(table["label"], "gpt");
        assert_eq!(table["id"], report.disk_guid.as_str());
        let parts = table["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{text}");
        assert_eq!(parts[0]["start"], 2048);
        assert_eq!(parts[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(parts[0]["name"], "REAR-BOOT");
        assert_eq!(parts[0]["attrs"], "LegacyBIOSBootable");
        assert_eq!(parts[0]["uuid"], report.partitions[0].partuuid.as_str());
        assert_eq!(parts[1]["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
        assert_eq!(parts[1]["name"], "REAR-DATA");
        assert_eq!(parts[1]["size"], 16 * MIB / SECTOR);

        // The MBR boot code is gptmbr.bin.
        let image = std::fs::read(&out).unwrap();
        assert_eq!(&image[..440], &gptmbr(&Sysroot::host()).unwrap()[..]);

        // The ESP: fsck-clean, hidden sectors = its start, the boot files in it.
        let esp = &report.partitions[0];
        let esp_file = extract(&out, esp.start, esp.size, dir.path(), "esp.img");
        let (ok, text) = tool(
            "fsck.fat",
            &["-n".as_ref(), esp_file.as_os_str()],
            "dosfstools",
        );
        assert!(ok && !text.contains("differ"), "fsck.fat -n:\n{text}");
        assert_eq!(
            &image[MIB as usize + 28..MIB as usize + 32],
            &2048u32.to_le_bytes()
        );
        let mtype = |path: &str| {
            let out = Command::new("mtype")
                .args([
                    "-i".as_ref(),
                    esp_file.as_os_str(),
                    format!("::{path}").as_ref(),
                ])
                .output()
                .expect("mtype (install the Debian package mtools)");
            assert!(out.status.success(), "mtype {path}");
            out.stdout
        };
        assert!(mtype("/boot/vmlinuz") == kernel);
        assert!(mtype("/boot/initrd.img") == initrd);
        let grub_cfg = String::from_utf8(mtype("/boot/grub/grub.cfg")).unwrap();
        assert!(grub_cfg.contains("menuentry 'Recover db1'"), "{grub_cfg}");
        let sl = String::from_utf8(mtype("/boot/syslinux/syslinux.cfg")).unwrap();
        assert!(sl.starts_with("serial 0 115200\n"), "{sl}");
        assert_eq!(&mtype("/EFI/BOOT/BOOTX64.EFI")[..2], b"MZ");
        // The installer replaced the placeholders: ldlinux.sys starts with its boot code
        // jump, not zeros.
        let ldlinux = mtype("/boot/syslinux/ldlinux.sys");
        assert!(ldlinux.len() < LDLINUX_SYS_ROOM && ldlinux.iter().any(|b| *b != 0));
        let (_, text) = tool(
            "minfo",
            &["-i".as_ref(), esp_file.as_os_str(), "::".as_ref()],
            "mtools",
        );
        assert!(text.contains("REAR-BOOT"), "{text}");
        assert!(
            text.contains(&format!("serial number: {}", esp.fs_uuid.replace('-', ""))),
            "{text}"
        );

        // The data partition: a clean ext4 labelled REAR-DATA with the reported UUID.
        let data = &report.partitions[1];
        let data_file = extract(&out, data.start, data.size, dir.path(), "data.img");
        let (ok, text) = tool(
            "e2fsck",
            &["-fn".as_ref(), data_file.as_os_str()],
            "e2fsprogs",
        );
        assert!(ok, "e2fsck -fn:\n{text}");
        let (ok, text) = tool(
            "dumpe2fs",
            &["-h".as_ref(), data_file.as_os_str()],
            "e2fsprogs",
        );
        assert!(ok, "{text}");
        assert!(
            text.contains("Filesystem volume name:   REAR-DATA"),
            "{text}"
        );
        assert!(
            text.contains(&format!("Filesystem UUID:          {}", data.fs_uuid)),
            "{text}"
        );

        // Sparse: far fewer blocks than bytes.
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
        assert!(allocated < len / 2, "{allocated} of {len} bytes allocated");
    }

    #[test]
    fn write_usb_image_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = payload(300_000, 3);
        let initrd = payload(500_000, 4);
        let a = dir.path().join("a.img");
        let b = dir.path().join("b.img");
        let c = dir.path().join("c.img");
        let sys = Sysroot::host();
        let ra = write_usb_image(&sys, &input(&kernel, &initrd), 16 * MIB, &a).unwrap();
        // A second later: tools that read the clock would now write other bytes.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let rb = write_usb_image(&sys, &input(&kernel, &initrd), 16 * MIB, &b).unwrap();
        assert_eq!(ra.disk_guid, rb.disk_guid);
        let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        if let Some(i) = ba.iter().zip(&bb).position(|(x, y)| x != y) {
            panic!("two builds differ first at byte {i:#x}");
        }
        assert_eq!(ba.len(), bb.len());
        // Another kernel: other ids.
        let other = payload(300_000, 5);
        let rc = write_usb_image(&sys, &input(&other, &initrd), 0, &c).unwrap();
        assert_ne!(ra.disk_guid, rc.disk_guid);
        assert_eq!(
            rc.partitions.len(),
            1,
            "no data partition when its size is 0"
        );
    }
}
