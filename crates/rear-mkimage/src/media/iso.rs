//! The rescue ISO: kernel + initrd + ISOLINUX + GRUB -> one hybrid ISO 9660 image that boots
//! from CD and from a disk or USB stick, with BIOS and with UEFI.
//!
//! Input: a [`MediaInput`], the host's boot-loader files (through the [`Sysroot`]) and
//! optionally [`HostFiles`] (a backup under `/rear/`, read while the image is written, never
//! held in memory). Output: the image, written to a file ([`write_iso_file`]) or to the
//! caller's writer ([`write_iso`]), and an [`IsoReport`].
//!
//! Layout (ISO 9660 + Rock Ridge + Joliet, volume label [`VOLUME_LABEL`]):
//!
//! | path | what |
//! |---|---|
//! | `/boot/vmlinuz`, `/boot/initrd.img` | the rescue kernel and initrd |
//! | `/isolinux/isolinux.bin` | El Torito BIOS entry (no emulation, load size 4, boot-info table) |
//! | `/isolinux/{ldlinux,menu,libutil,libcom32}.c32`, `isolinux.cfg` | ISOLINUX and its menu |
//! | `/isolinux/boot.cat` | the El Torito catalog |
//! | `/boot/efi.img` | FAT ESP image: El Torito UEFI entry (platform 0xEF) and the GPT's ESP |
//! | `/EFI/BOOT/BOOTX64.EFI` (...) | the files of the ESP, also readable on the ISO |
//! | `/boot/grub/grub.cfg` | the GRUB menu |
//! | `/.disk/info`, `/.disk/rear-<id>` | a description; the file GRUB finds this medium by |
//! | `/rear/...` | the backup, with `--backup-url iso` ([`HostFiles`]) |
//!
//! The image is ISO 9660 Level 2 (one extent per file) unless a host file is larger than one
//! extent can be (just under 4 GiB): then Level 3, where such a file takes several extents
//! (Linux reads both).
//!
//! The system area holds syslinux's `isohdpfx.bin` MBR code (it loads `isolinux.bin` from the
//! block address written at MBR byte 432), a hybrid MBR (a protective 0xEE entry, a bootable
//! entry over the ISO data and a 0xEF entry over `/boot/efi.img`) and a GPT whose EFI System
//! partition is `/boot/efi.img`: BIOS boots a `dd` copy through isohdpfx -> isolinux, UEFI
//! through the ESP. (The xorriso backend writes its usual `-isohybrid-mbr
//! -isohybrid-gpt-basdat` layout instead, which boots the same ways.)
//!
//! Two builds from the same input give the same bytes: the build id is a SHA-256 of the
//! input (kernel, initrd, command line, host, timeout, epoch) and of the boot-loader files;
//! the GPT GUIDs derive from it and the ESP image, the ESP's FAT serial is taken from it,
//! and every timestamp is the epoch. The image is written with hadris-iso
//! ([`Backend::Hadris`]); `xorriso -as mkisofs` ([`Backend::Xorriso`]) builds the same
//! layout from a staging directory, as a fallback should hadris-iso fail on some input.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use hadris_fs::{Content, DateTime, Node, Tree};
use hadris_iso::{BootEntry, BootInfo, ElTorito, Hybrid, IsoId, IsoLevel, IsoOptions};
use sha2::{Digest, Sha256};

use super::bootfiles::{self, BiosFiles, EfiLoader};
use super::{MediaInput, TemplateError, esp, grub, render_menu, syslinux_timeout};
use rear_sys::exec;
use rear_sys::sysroot::Sysroot;

use rear_model::labels::{ISO_ESP as ESP_LABEL, ISO_VOLUME as VOLUME_LABEL};

/// The ISOLINUX menu template.
pub const ISOLINUX_TEMPLATE: &str = include_str!("../../../../bootloaders/isolinux.cfg");

/// Path of the El Torito BIOS image on the ISO.
const ISOLINUX_BIN: &str = "isolinux/isolinux.bin";
/// Path of the El Torito catalog.
const BOOT_CATALOG: &str = "isolinux/boot.cat";
/// Path of the ESP image (El Torito UEFI entry, GPT ESP).
const EFI_IMG: &str = "boot/efi.img";
/// The largest file one ISO 9660 extent holds: the last whole 2048-byte block below 4 GiB.
const MAX_EXTENT: u64 = (u32::MAX as u64 / 2048) * 2048;

/// Files of the host put on the ISO as they are: ISO path (no leading `/`) -> host file.
/// They are read while the image is written, so a backup of many GB never sits in memory.
pub type HostFiles = BTreeMap<String, PathBuf>;

/// Errors of building the ISO; each names its object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A boot-loader file is missing on the host (names the file and the packages).
    #[error(transparent)]
    BootFiles(#[from] bootfiles::Error),
    /// The GRUB EFI image could not be made.
    #[error(transparent)]
    Grub(#[from] grub::Error),
    /// The ESP image could not be made.
    #[error(transparent)]
    Esp(#[from] esp::Error),
    /// A template and its values do not match.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The epoch does not fit an ISO 9660 date.
    #[error("SOURCE_DATE_EPOCH {0} is out of range for an ISO 9660 date")]
    Epoch(u64),
    /// `isohdpfx.bin` is too long for the MBR's boot code area.
    #[error("{path}: {len} bytes, but MBR boot code must fit in 432 bytes")]
    Bootstrap {
        /// Where it was found.
        path: String,
        /// Its length.
        len: usize,
    },
    /// hadris-iso refused the layout.
    #[error("writing the ISO with hadris-iso: {0}")]
    Hadris(Box<hadris_fs::PathError>),
    /// `xorriso` is missing or failed (fallback backend).
    #[error(transparent)]
    Exec(#[from] exec::Error),
    /// A staging or output file could not be written or read.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// Which writer makes the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// hadris-iso, in process (the default).
    Hadris,
    /// `xorriso -as mkisofs` from a staging directory (fallback; needs the xorriso package).
    Xorriso,
}

/// What [`write_iso`] built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoReport {
    /// Size of the image in bytes.
    pub size: u64,
    /// The build id (hex): the ids of the medium derive from it.
    pub build_id: String,
    /// The writer used.
    pub backend: Backend,
    /// The UEFI loader: `grub-mkimage` or `shim + signed GRUB (<paths>)`.
    pub efi_loader: String,
    /// Where `isolinux.bin` came from.
    pub isolinux: PathBuf,
    /// Size of the ESP image.
    pub esp_size: u64,
    /// Every file on the ISO with its size, sorted by path.
    pub files: Vec<(String, u64)>,
    /// Warnings of the writer (none expected).
    pub warnings: Vec<String>,
}

/// Builds the ISO of `input` with hadris-iso and writes it to `out`.
pub fn write_iso(
    sys: &Sysroot,
    input: &MediaInput<'_>,
    out: &mut impl Write,
) -> Result<IsoReport, Error> {
    write_iso_with(sys, input, Backend::Hadris, out)
}

/// Builds the ISO of `input` with the given backend and writes it to `out` (through a
/// temporary file, as [`write_iso_file`] writes).
pub fn write_iso_with(
    sys: &Sysroot,
    input: &MediaInput<'_>,
    backend: Backend,
    out: &mut impl Write,
) -> Result<IsoReport, Error> {
    let scratch = tempfile::tempdir().map_err(|error| Error::Io {
        path: std::env::temp_dir(),
        error,
    })?;
    let path = scratch.path().join("rear.iso");
    let report = write_iso_file(sys, input, backend, &HostFiles::new(), &path)?;
    let mut file = std::fs::File::open(&path).map_err(|error| Error::Io {
        path: path.clone(),
        error,
    })?;
    std::io::copy(&mut file, out).map_err(|error| Error::Io {
        path: PathBuf::from("<ISO output>"),
        error,
    })?;
    Ok(report)
}

/// Builds the ISO of `input` plus the `host` files with the given backend into the file
/// `path` (created or truncated; the caller renames it into place).
pub fn write_iso_file(
    sys: &Sysroot,
    input: &MediaInput<'_>,
    backend: Backend,
    host: &HostFiles,
    path: &Path,
) -> Result<IsoReport, Error> {
    let layout = Layout::new(sys, input, host)?;
    let mut files: Vec<(String, u64)> = layout
        .files
        .iter()
        .map(|(p, c)| (format!("/{p}"), c.len() as u64))
        .chain(
            layout
                .host
                .iter()
                .map(|(p, (_, len))| (format!("/{p}"), *len)),
        )
        .collect();
    files.sort();
    let mut report = IsoReport {
        size: 0,
        build_id: hex::encode(layout.id),
        backend,
        efi_loader: layout.efi_loader.clone(),
        isolinux: layout.bios.source.clone(),
        esp_size: layout.esp_size,
        files,
        warnings: Vec::new(),
    };
    report.size = match backend {
        Backend::Hadris => {
            let (size, warnings) = layout.hadris_image(input.epoch, path)?;
            report.warnings = warnings;
            size
        }
        Backend::Xorriso => layout.xorriso_image(input.epoch, path)?,
    };
    Ok(report)
}

/// `isolinux/isolinux.cfg`: the entries of [`menu_entries`], "Recover <host>" by default,
/// booting by itself after the timeout (in tenths of a second; 0 would wait forever in
/// ISOLINUX, so the shortest is 1), serial console first.
pub fn isolinux_cfg(input: &MediaInput<'_>) -> Result<String, Error> {
    Ok(render_menu(
        "isolinux.cfg",
        ISOLINUX_TEMPLATE,
        input,
        syslinux_timeout(input),
        str::to_string,
    )?)
}

/// The build id: SHA-256 of the input and the boot-loader files, each field length-prefixed.
fn build_id(
    input: &MediaInput<'_>,
    bios: &BiosFiles,
    loader: &EfiLoader,
    host: &BTreeMap<String, (PathBuf, u64)>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"rear-iso-1");
    field(input.hostname.as_bytes());
    field(input.release.as_bytes());
    field(input.kernel);
    field(input.initrd);
    field(input.cmdline.as_bytes());
    field(&input.boot_timeout.to_le_bytes());
    field(&input.epoch.to_le_bytes());
    field(&bios.isolinux_bin);
    field(&bios.isohdpfx);
    field(&bios.ldlinux);
    for (name, bytes) in &bios.modules {
        field(name.as_bytes());
        field(bytes);
    }
    match loader {
        EfiLoader::Grub { modules_dir } => {
            field(b"grub");
            field(modules_dir.as_os_str().as_encoded_bytes());
        }
        EfiLoader::Signed { shim, grub, .. } => {
            field(b"signed");
            field(shim);
            field(grub);
        }
    }
    // Host files by name and size only (reading a backup twice to hash it would cost
    // minutes); none leaves the id of a plain rescue ISO as it was.
    for (name, (_, len)) in host {
        field(name.as_bytes());
        field(&len.to_le_bytes());
    }
    h.finalize().into()
}

/// Everything that goes on the ISO, before a backend writes it.
struct Layout {
    /// ISO path (no leading `/`) -> bytes, sorted.
    files: BTreeMap<String, Vec<u8>>,
    /// ISO path -> host file and its length.
    host: BTreeMap<String, (PathBuf, u64)>,
    bios: BiosFiles,
    id: [u8; 32],
    /// What the GPT GUIDs derive from: a hash of the id and the ESP image (so that a different
    /// GRUB gives other GUIDs too).
    gpt_key: [u8; 16],
    efi_loader: String,
    esp_size: u64,
}

impl Layout {
    fn new(sys: &Sysroot, input: &MediaInput<'_>, host: &HostFiles) -> Result<Layout, Error> {
        let mut sized = BTreeMap::new();
        for (name, path) in host {
            let meta = std::fs::metadata(path).map_err(|error| Error::Io {
                path: path.clone(),
                error,
            })?;
            sized.insert(name.clone(), (path.clone(), meta.len()));
        }
        let host = sized;
        let bios = bootfiles::bios_files(sys)?;
        if bios.isohdpfx.len() > 432 {
            return Err(Error::Bootstrap {
                path: "isohdpfx.bin".into(),
                len: bios.isohdpfx.len(),
            });
        }
        let loader = bootfiles::efi_loader(sys)?;
        let id = build_id(input, &bios, &loader, &host);
        let short = hex::encode(&id[..8]);
        let marker = format!(".disk/rear-{short}");
        let search = grub::search_cfg(&format!("/{marker}"), VOLUME_LABEL)?;
        let esp_files = grub::esp_files(sys, &loader, &search)?;
        let serial = u32::from_le_bytes([id[8], id[9], id[10], id[11]]);
        let esp_image = esp::esp_image(&esp_files, ESP_LABEL, serial)?;
        let efi_loader = match &loader {
            EfiLoader::Grub { .. } => "grub-mkimage".to_string(),
            EfiLoader::Signed { sources, .. } => format!(
                "shim + signed GRUB ({}, {})",
                sources.0.display(),
                sources.1.display()
            ),
        };

        let mut files = BTreeMap::new();
        files.insert("boot/vmlinuz".to_string(), input.kernel.to_vec());
        files.insert("boot/initrd.img".to_string(), input.initrd.to_vec());
        files.insert(
            "boot/grub/grub.cfg".to_string(),
            grub::menu_cfg(input)?.into_bytes(),
        );
        files.insert(
            "isolinux/isolinux.cfg".to_string(),
            isolinux_cfg(input)?.into_bytes(),
        );
        files.insert(ISOLINUX_BIN.to_string(), bios.isolinux_bin.clone());
        files.insert("isolinux/ldlinux.c32".to_string(), bios.ldlinux.clone());
        for (name, bytes) in &bios.modules {
            files.insert(format!("isolinux/{name}"), bytes.clone());
        }
        for (path, bytes) in esp_files {
            files.insert(path, bytes);
        }
        files.insert(
            ".disk/info".to_string(),
            format!(
                "Relax-and-Recover rescue system of {} (kernel {})\n",
                input.hostname, input.release
            )
            .into_bytes(),
        );
        files.insert(marker, format!("{}\n", hex::encode(id)).into_bytes());
        let esp_size = esp_image.len() as u64;
        let digest = Sha256::new()
            .chain_update(id)
            .chain_update(&esp_image)
            .finalize();
        let mut gpt_key = [0u8; 16];
        gpt_key.copy_from_slice(&digest[..16]);
        files.insert(EFI_IMG.to_string(), esp_image);
        Ok(Layout {
            files,
            host,
            bios,
            id,
            gpt_key,
            efi_loader,
            esp_size,
        })
    }

    /// ISO 9660 Level 3 when a host file needs more than one extent, else Level 2.
    fn level(&self) -> IsoLevel {
        if self.host.values().any(|(_, len)| *len > MAX_EXTENT) {
            IsoLevel::L3
        } else {
            IsoLevel::L2
        }
    }

    /// Writes the image with hadris-iso to `path`; returns its size and the writer's
    /// warnings. Takes the layout so that the file contents move into the tree instead of
    /// being copied.
    fn hadris_image(self, epoch: u64, path: &Path) -> Result<(u64, Vec<String>), Error> {
        let time = i64::try_from(epoch)
            .ok()
            .and_then(|s| DateTime::from_unix_seconds(s).ok())
            .ok_or(Error::Epoch(epoch))?;
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&self.gpt_key[..8]);
        let seed = u64::from_le_bytes(seed);
        let level = self.level();
        let hadris = |e| Error::Hadris(Box::new(e));
        let mut tree = Tree::new();
        for (name, bytes) in self.files {
            tree.insert(&name, Node::file(Content::bytes(bytes)))
                .map_err(hadris)?;
        }
        for (name, (file, _)) in &self.host {
            let content = hadris_fs::host::file(file).map_err(hadris)?;
            tree.insert(name, Node::file(content)).map_err(hadris)?;
        }
        let options = IsoOptions::default()
            .with_id(IsoId::Volume, VOLUME_LABEL)
            .with_id(IsoId::Publisher, "Relax-and-Recover")
            .with_id(IsoId::Application, "rear-mkimage")
            .with_id(IsoId::System, "LINUX")
            .with_level(level)
            .with_joliet()
            .with_rock_ridge()
            .with_time(time)
            .with_seed(seed)
            .with_el_torito(
                ElTorito::new()
                    .with_entry(
                        BootEntry::bios(ISOLINUX_BIN)
                            .with_load_size(4)
                            .with_boot_info(BootInfo::Table),
                    )
                    .with_entry(BootEntry::uefi(EFI_IMG))
                    .with_catalog_path(BOOT_CATALOG),
            )
            .with_hybrid(Hybrid::gpt_hybrid_mbr().with_bootstrap(&self.bios.isohdpfx));
        let io = |error| Error::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io)?;
        let mut dev = hadris_storage::host::FileDevice::new(file).map_err(io)?;
        let report = hadris_iso::sync::write(&mut dev, &tree, &options).map_err(hadris)?;
        let file = dev.into_inner();
        file.set_len(report.size()).map_err(io)?;
        let warnings = report.warnings().iter().map(|w| w.to_string()).collect();
        Ok((report.size(), warnings))
    }

    /// The same layout written by `xorriso -as mkisofs` from a staging directory.
    /// The host files are grafted in from where they are, not copied into the staging tree.
    /// Returns the size of the image at `path`.
    fn xorriso_image(&self, epoch: u64, path: &Path) -> Result<u64, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| Error::Io { path, error }
        };
        let scratch = tempfile::tempdir().map_err(io(&std::env::temp_dir()))?;
        let stage = scratch.path().join("iso");
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
        for (path, bytes) in &self.files {
            let p = stage.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&p, bytes).map_err(io(&p))?;
            let f = std::fs::File::options()
                .write(true)
                .open(&p)
                .map_err(io(&p))?;
            f.set_modified(mtime).map_err(io(&p))?;
        }
        let mbr = scratch.path().join("isohdpfx.bin");
        std::fs::write(&mbr, &self.bios.isohdpfx).map_err(io(&mbr))?;
        let g = &self.gpt_key;
        let guid = format!(
            "{}-{}-{}-{}-{}",
            hex::encode(&g[0..4]),
            hex::encode(&g[4..6]),
            hex::encode(&g[6..8]),
            hex::encode(&g[8..10]),
            hex::encode(&g[10..16])
        );
        let mut cmd = Command::new("xorriso");
        let level = if self.level() == IsoLevel::L3 {
            "3"
        } else {
            "2"
        };
        cmd.args(["-as", "mkisofs", "-o"])
            .arg(path)
            .args(["-V", VOLUME_LABEL, "-R", "-J", "-iso-level", level])
            .arg("-isohybrid-mbr")
            .arg(&mbr)
            .args(["-c", BOOT_CATALOG, "-b", ISOLINUX_BIN])
            .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
            .args(["-eltorito-alt-boot", "-e", EFI_IMG, "-no-emul-boot"])
            .args(["-isohybrid-gpt-basdat", "--gpt_disk_guid", &guid])
            // Directories of the staging tree have the current time: set every date.
            .args(["--set_all_file_dates", &format!("={epoch}")])
            .arg("-graft-points")
            .arg(graft("", &stage));
        for (name, (file, _)) in &self.host {
            cmd.arg(graft(name, file));
        }
        cmd.env("SOURCE_DATE_EPOCH", epoch.to_string());
        exec::run(&mut cmd, Some("xorriso"))?;
        Ok(std::fs::metadata(path).map_err(io(path))?.len())
    }
}

/// A `-graft-points` argument of mkisofs: `/<iso path>=<host path>`, with `\\` and `=`
/// escaped by a backslash in both halves.
fn graft(iso_path: &str, host: &Path) -> std::ffi::OsString {
    let escape = |b: &[u8]| {
        let mut out = Vec::with_capacity(b.len());
        for &c in b {
            if c == b'\\' || c == b'=' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out
    };
    let mut arg = b"/".to_vec();
    arg.extend(escape(iso_path.as_bytes()));
    arg.push(b'=');
    arg.extend(escape(std::os::unix::ffi::OsStrExt::as_bytes(
        host.as_os_str(),
    )));
    std::os::unix::ffi::OsStringExt::from_vec(arg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fake_boot_sysroot as fake_sysroot, input};

    fn xorriso_report(iso: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.iso");
        std::fs::write(&path, iso).unwrap();
        let out = Command::new("xorriso")
            .arg("-indev")
            .arg(&path)
            .args(["-report_el_torito", "plain", "-report_system_area", "plain"])
            .output()
            .unwrap_or_else(|e| panic!("xorriso: {e} (install the Debian package xorriso)"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    }

    /// Both El Torito entries, the catalog path, and the ESP as a partition of the MBR and
    /// the GPT, as `xorriso -report_el_torito plain -report_system_area plain` shows them.
    fn assert_structure(text: &str) {
        let line = |prefix: &str, rest: &str| {
            text.lines().any(|l| {
                l.starts_with(prefix)
                    && l.split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .contains(rest)
            })
        };
        assert!(
            line("El Torito boot img :", "1 BIOS y none 0x0000 0x00 4"),
            "{text}"
        );
        assert!(
            line("El Torito boot img :", "2 UEFI y none 0x0000 0x00"),
            "{text}"
        );
        assert!(
            line("El Torito img path :", "1 /isolinux/isolinux.bin"),
            "{text}"
        );
        assert!(line("El Torito img opts :", "1 boot-info-table"), "{text}");
        assert!(line("El Torito img path :", "2 /boot/efi.img"), "{text}");
        assert!(line("El Torito cat path :", "/isolinux/boot.cat"), "{text}");
        assert!(line("System area summary:", "GPT"), "{text}");
        assert!(line("MBR partition path :", "/boot/efi.img"), "{text}");
        assert!(line("GPT partition path :", "/boot/efi.img"), "{text}");
        // One MBR partition is marked bootable (BIOS USB boot).
        assert!(
            text.lines()
                .any(|l| l.starts_with("MBR partition      :") && l.contains("0x80")),
            "{text}"
        );
    }

    #[test]
    fn isolinux_cfg_renders_three_entries() {
        let cfg = isolinux_cfg(&input(b"", b"")).unwrap();
        assert!(cfg.starts_with("serial 0 115200\n"), "{cfg}");
        assert!(cfg.contains("ui menu.c32\n"), "{cfg}");
        assert!(
            cfg.contains("prompt 0\ntimeout 50\ndefault recover\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains(
                "label recover\n  menu label Recover db1\n  menu default\n  kernel /boot/vmlinuz\n  append initrd=/boot/initrd.img console=tty0 console=ttyS0,115200n8\n"
            ),
            "{cfg}"
        );
        assert!(
            cfg.contains(
                "append initrd=/boot/initrd.img console=tty0 console=ttyS0,115200n8 rear.auto\n"
            ),
            "{cfg}"
        );
        assert!(
            cfg.contains(
                "label local\n  menu label Boot from the first hard disk\n  localboot 0x80\n"
            ),
            "{cfg}"
        );
        let mut zero = input(b"", b"");
        zero.boot_timeout = 0;
        assert!(isolinux_cfg(&zero).unwrap().contains("timeout 1\n"));
    }

    #[test]
    fn write_iso_is_reproducible_and_hybrid() {
        let (_d, sys) = fake_sysroot();
        let kernel = vec![7u8; 300_000];
        let initrd = vec![9u8; 1_000_000];
        let mut a = Vec::new();
        let report = write_iso(&sys, &input(&kernel, &initrd), &mut a).unwrap();
        let mut b = Vec::new();
        write_iso(&sys, &input(&kernel, &initrd), &mut b).unwrap();
        assert!(a == b, "two builds from the same input differ");
        assert_eq!(report.size, a.len() as u64);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(&a[510..512], &[0x55, 0xaa]);
        assert_eq!(&a[..432], &[0x33; 432][..]);
        let names: Vec<&str> = report.files.iter().map(|f| f.0.as_str()).collect();
        for want in [
            "/boot/vmlinuz",
            "/boot/initrd.img",
            "/boot/efi.img",
            "/boot/grub/grub.cfg",
            "/isolinux/isolinux.bin",
            "/isolinux/isolinux.cfg",
            "/isolinux/ldlinux.c32",
            "/isolinux/menu.c32",
            "/EFI/BOOT/BOOTX64.EFI",
            "/EFI/debian/grub.cfg",
        ] {
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
        // A different input changes the ids.
        let mut c = Vec::new();
        let mut other = input(&kernel, &initrd);
        other.cmdline.push_str(" debug");
        let r2 = write_iso(&sys, &other, &mut c).unwrap();
        assert_ne!(report.build_id, r2.build_id);

        let text = xorriso_report(&a);
        assert_structure(&text);
        // hadris-iso marks the ESP with the EFI System type in the GPT.
        assert!(text.contains("28732ac11ff8d211ba4b00a0c93ec93b"), "{text}");
    }

    #[test]
    fn write_iso_missing_isolinux_names_packages() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(dir.path()).unwrap();
        let e = write_iso(&sys, &input(b"k", b"i"), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("isolinux.bin not found"), "{e}");
        assert!(
            e.contains("install isolinux (Debian/Ubuntu), syslinux (Fedora/RHEL)"),
            "{e}"
        );
    }

    #[test]
    fn write_iso_xorriso_backend_same_layout() {
        let (_d, sys) = fake_sysroot();
        let mut a = Vec::new();
        write_iso_with(&sys, &input(b"kernel", b"initrd"), Backend::Xorriso, &mut a).unwrap();
        let mut b = Vec::new();
        write_iso_with(&sys, &input(b"kernel", b"initrd"), Backend::Xorriso, &mut b).unwrap();
        assert!(a == b, "two xorriso builds differ");
        assert_structure(&xorriso_report(&a));
    }

    /// A host file goes onto the ISO as it is, with either backend, and is readable there.
    #[test]
    fn write_iso_file_carries_host_files() {
        let (_d, sys) = fake_sysroot();
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("backup.tar.zst");
        let data: Vec<u8> = (0..3_000_123u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&big, &data).unwrap();
        let sums = dir.path().join("odd=name\\x");
        std::fs::write(&sums, b"sum\n").unwrap();
        let host = HostFiles::from([
            ("rear/backup.tar.zst".to_string(), big.clone()),
            ("rear/backup.sha256".to_string(), sums.clone()),
        ]);
        let plain = dir.path().join("plain.iso");
        let p = write_iso_file(
            &sys,
            &input(b"k", b"i"),
            Backend::Hadris,
            &HostFiles::new(),
            &plain,
        )
        .unwrap();
        for backend in [Backend::Hadris, Backend::Xorriso] {
            let iso = dir.path().join(format!("{backend:?}.iso"));
            let r = write_iso_file(&sys, &input(b"k", b"i"), backend, &host, &iso).unwrap();
            assert_eq!(r.size, iso.metadata().unwrap().len());
            assert!(r.size > data.len() as u64);
            assert!(
                r.files
                    .contains(&("/rear/backup.tar.zst".to_string(), data.len() as u64)),
                "{:?}",
                r.files
            );
            // The backup changes the build id; the rest of the medium is the same.
            assert_ne!(r.build_id, p.build_id);
            let out = dir.path().join(format!("{backend:?}.out"));
            let x = Command::new("xorriso")
                .arg("-indev")
                .arg(&iso)
                .args(["-osirrox", "on", "-extract", "/rear"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
            assert!(std::fs::read(out.join("backup.tar.zst")).unwrap() == data);
            assert_eq!(std::fs::read(out.join("backup.sha256")).unwrap(), b"sum\n");
            assert_structure(&xorriso_report(&std::fs::read(&iso).unwrap()));
        }
        // A missing host file is named.
        let gone = HostFiles::from([("rear/x".to_string(), dir.path().join("gone"))]);
        let e = write_iso_file(&sys, &input(b"k", b"i"), Backend::Hadris, &gone, &plain)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gone: No such file"), "{e}");
    }

    #[test]
    fn graft_escapes_equals_and_backslash() {
        assert_eq!(
            graft("rear/a=b", Path::new("/x\\y=z")),
            std::ffi::OsString::from("/rear/a\\=b=/x\\\\y\\=z")
        );
        assert_eq!(graft("", Path::new("/stage")), "/=/stage");
    }
}
