//! `rear-mkimage inspect`: what is in a rescue ISO, a USB image or an initrd.
//!
//! Stage: inspect and verify. Input: a file path; output: the text to print. The kind of file
//! is told by its bytes, not its name:
//!
//! - ISO 9660: `CD001` at byte 32769 (the standard identifier of the first volume
//!   descriptor, at sector 16 of 2048 bytes; ECMA-119 8.1). Shown: the volume label, the El
//!   Torito catalog (El Torito 1.0, section 2), the system area (a hybrid MBR and a GPT, if
//!   any), the file tree (Rock Ridge names when present) and the entries of `/boot/initrd.img`.
//! - USB image: `EFI PART` at byte 512 (the primary GPT header, UEFI 2.10 5.3.2) and no
//!   `CD001`. Shown: the GPT partitions, the files of the ESP (FAT) and the entries of its
//!   `boot/initrd.img`.
//! - anything else is read as an initrd by [`archive::read`].
//!
//! ISO and FAT are read in process with hadris-iso and hadris-fat. With `manifest_only` the
//! embedded `/etc/rear/manifest.json` of the initrd is returned instead.

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hadris_fs::sync::FileSystem;
use hadris_fs::{DirCursor, FileType, MountOptions, NodeId, OpenMode, Resolve};
use hadris_iso::{Emulation, Platform};

use super::gpt::{self, Gpt, Guid, SECTOR};
use crate::archive::read::{self, Archive};

/// Byte offset of the standard identifier of the first ISO 9660 volume descriptor.
const ISO_MAGIC_AT: u64 = 16 * 2048 + 1;
/// The GPT type `EBD0A0A2-B9E5-4433-87C0-68B6B72699C7` ("Microsoft basic data"), which
/// hybrid ISOs give the ISO 9660 data.
const BASIC_DATA: Guid = Guid([
    0xa2, 0xa0, 0xd0, 0xeb, 0xe5, 0xb9, 0x33, 0x44, 0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7,
]);
/// Path of the manifest inside the initrd, as stored in the cpio archive.
const MANIFEST: &str = "etc/rear/manifest.json";

/// Errors of inspecting a file; each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// Neither an ISO, a GPT disk image nor an initrd.
    #[error("{}: not an ISO, USB image or initrd ({error})", .path.display())]
    Unknown {
        /// The file.
        path: PathBuf,
        /// Why it is not an initrd either.
        error: read::Error,
    },
    /// The ISO 9660 or FAT filesystem could not be read.
    #[error("{}: {what}", .path.display())]
    Filesystem {
        /// The file.
        path: PathBuf,
        /// What failed, with the part of the file (`ISO 9660`, `ESP`) and hadris' message.
        what: String,
    },
    /// The GPT of a USB image is not valid.
    #[error("{}: {error}", .path.display())]
    Gpt {
        /// The file.
        path: PathBuf,
        /// What the GPT reader said.
        error: gpt::Error,
    },
    /// The initrd (the file itself, or the one inside a medium) is corrupt.
    #[error("{}: {inner}: {error}", .path.display())]
    Initrd {
        /// The file.
        path: PathBuf,
        /// Which initrd: `initrd`, or its path inside the medium.
        inner: String,
        /// What the reader said.
        error: read::Error,
    },
    /// A file the medium should hold is missing.
    #[error("{}: no {file} in it (not built by rear-mkimage?)", .path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The missing file (`/boot/initrd.img`, `/etc/rear/manifest.json`, `ESP partition`).
        file: String,
    },
}

/// Inspects `path` (ISO, USB image or initrd, told by its bytes) and returns the text to
/// print: the listing, or with `manifest_only` the embedded `/etc/rear/manifest.json`.
pub fn inspect(path: &Path, manifest_only: bool) -> Result<String, Error> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut iso = [0u8; 5];
    let mut gpt = [0u8; 8];
    let is_iso = len >= ISO_MAGIC_AT + 5
        && file.read_exact_at(&mut iso, ISO_MAGIC_AT).is_ok()
        && &iso == b"CD001";
    let is_gpt = !is_iso
        && len >= SECTOR + 8
        && file.read_exact_at(&mut gpt, SECTOR).is_ok()
        && &gpt == b"EFI PART";
    if is_iso {
        let bytes = std::fs::read(path).map_err(io)?;
        inspect_iso(path, bytes, manifest_only)
    } else if is_gpt {
        inspect_usb(path, &file, manifest_only)
    } else {
        let bytes = std::fs::read(path).map_err(io)?;
        let archives = read::read_initrd(&bytes).map_err(|error| match error {
            read::Error::Empty | read::Error::Magic { offset: 0, .. } => Error::Unknown {
                path: path.to_path_buf(),
                error,
            },
            error => Error::Initrd {
                path: path.to_path_buf(),
                inner: "initrd".to_string(),
                error,
            },
        })?;
        if manifest_only {
            manifest(path, &archives)
        } else {
            Ok(read::list(&archives))
        }
    }
}

/// The embedded manifest of `archives`, as text.
fn manifest(path: &Path, archives: &[Archive]) -> Result<String, Error> {
    archives
        .iter()
        .flat_map(|a| &a.entries)
        .find(|e| e.path == MANIFEST || e.path == format!("/{MANIFEST}"))
        .and_then(|e| e.data.as_deref())
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .ok_or_else(|| Error::Missing {
            path: path.to_path_buf(),
            file: format!("/{MANIFEST}"),
        })
}

/// Reads the initrd `bytes` found at `inner` of `path`; the listing or the manifest.
fn initrd_section(
    path: &Path,
    inner: &str,
    bytes: &[u8],
    manifest_only: bool,
    out: &mut String,
) -> Result<(), Error> {
    let archives = read::read_initrd(bytes).map_err(|error| Error::Initrd {
        path: path.to_path_buf(),
        inner: inner.to_string(),
        error,
    })?;
    if manifest_only {
        *out = manifest(path, &archives)?;
    } else {
        let _ = writeln!(out, "\nInitrd {inner}:");
        out.push_str(&read::list(&archives));
    }
    Ok(())
}

/// One file or directory of a filesystem tree.
struct Item {
    /// Absolute path, `/`-separated.
    path: String,
    /// Size in bytes (0 for directories).
    size: u64,
    /// Whether it is a directory.
    dir: bool,
    /// The node (not pinned: only for mapping back to extents while mounted).
    node: NodeId,
}

/// Every file and directory below the root, depth first, sorted by name in each directory.
fn walk<F: FileSystem>(fs: &mut F) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut stack = vec![(fs.root(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let mut here = Vec::new();
        let mut cursor = DirCursor::START;
        while let Some(entry) = fs.readdir(dir, cursor).map_err(|e| e.to_string())? {
            cursor = entry.next_cursor();
            let name = String::from_utf8_lossy(entry.name().as_bytes()).into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let name = name.strip_suffix(";1").unwrap_or(&name).to_string();
            let dir = entry.file_type() == FileType::Dir;
            here.push(Item {
                path: format!("{prefix}/{name}"),
                size: if dir { 0 } else { entry.metadata().len() },
                dir,
                node: entry.node(),
            });
        }
        here.sort_by(|a, b| a.path.cmp(&b.path));
        // Directories are listed before their contents: push in reverse for a sorted walk.
        let mut subdirs: Vec<(NodeId, String)> = here
            .iter()
            .filter(|i| i.dir)
            .map(|i| (i.node, i.path.clone()))
            .collect();
        items.extend(here);
        subdirs.reverse();
        stack.extend(subdirs);
    }
    items.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(items)
}

/// The content of the file at `path` (absolute, `/`-separated), or `None` if there is none.
fn read_file<F: FileSystem>(fs: &mut F, path: &str) -> Result<Option<Vec<u8>>, String> {
    let node = match fs.resolve(path.as_bytes(), Resolve::Follow) {
        Ok(node) => node,
        Err(e) if e.kind() == hadris_fs::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    fs.open(node, OpenMode::Read).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let result = loop {
        match fs.read(node, data.len() as u64, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e.to_string()),
        }
    };
    let closed = fs.close(node).map_err(|e| e.to_string());
    fs.forget(node, 1);
    result?;
    closed?;
    Ok(Some(data))
}

/// Appends `size  path` lines for the files (directories end in `/`).
fn list_files(items: &[Item], out: &mut String) {
    for i in items {
        if i.dir {
            let _ = writeln!(out, "  {:>10}  {}/", "", i.path);
        } else {
            let _ = writeln!(out, "  {:>10}  {}", i.size, i.path);
        }
    }
}

/// The ISO: label, El Torito, system area, files, initrd.
fn inspect_iso(path: &Path, bytes: Vec<u8>, manifest_only: bool) -> Result<String, Error> {
    let fs_err = |what: String| Error::Filesystem {
        path: path.to_path_buf(),
        what: format!("ISO 9660: {what}"),
    };
    let mut out = String::new();
    let _ = writeln!(out, "ISO 9660 image, {} bytes", bytes.len());
    let system_area = system_area(&bytes);
    let mut fs = hadris_iso::sync::IsoFs::mount(bytes, MountOptions::new().read_only())
        .map_err(|e| fs_err(e.to_string()))?;
    let mut label = [0u8; 384];
    let volume = fs
        .label(&mut label)
        .map_err(|e| fs_err(e.to_string()))?
        .unwrap_or("")
        .to_string();
    let _ = writeln!(out, "Volume label: {volume}");
    let items = walk(&mut fs).map_err(fs_err)?;
    // Where each file starts, to name the boot images.
    let mut starts = Vec::new();
    for item in items.iter().filter(|i| !i.dir && i.size > 0) {
        let mut ext = [hadris_fs::Extent::new(0, 0)];
        if fs
            .extents(item.node, 0, &mut ext)
            .map_err(|e| fs_err(e.to_string()))?
            > 0
        {
            starts.push((ext[0].offset(), item));
        }
    }

    let mut buf = [0u8; 2048];
    match fs
        .boot_catalog(&mut buf)
        .map_err(|e| fs_err(e.to_string()))?
    {
        None => out.push_str("El Torito: none\n"),
        Some(catalog) => {
            let _ = writeln!(out, "El Torito catalog at block {}:", catalog.block());
            for (n, entry) in catalog.entries().enumerate() {
                let platform = match entry.platform() {
                    Platform::X86 => "BIOS".to_string(),
                    Platform::Efi => "EFI".to_string(),
                    Platform::PowerPc => "PowerPC".to_string(),
                    Platform::Mac => "Mac".to_string(),
                    other => format!("0x{:02x}", other.id()),
                };
                let emulation = match entry.emulation() {
                    Some(Emulation::NoEmulation) => "no emulation",
                    Some(Emulation::HardDisk) => "hard disk",
                    Some(_) => "floppy",
                    None => "unknown emulation",
                };
                let image = fs.boot_image(&entry);
                let file = starts
                    .iter()
                    .find(|(start, _)| *start == image.offset())
                    .map(|(_, item)| {
                        if entry.platform() == Platform::Efi {
                            format!(" {} ({} bytes)", item.path, item.size)
                        } else {
                            format!(" {}", item.path)
                        }
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {} {platform:<4} {emulation}{}, load {} sectors, image at block {}{file}",
                    n + 1,
                    if entry.is_bootable() {
                        ", bootable"
                    } else {
                        ""
                    },
                    entry.sector_count(),
                    entry.load_block(),
                );
            }
        }
    }
    out.push_str(&system_area);
    let _ = writeln!(out, "Files:");
    list_files(&items, &mut out);
    let initrd = read_file(&mut fs, "/boot/initrd.img")
        .map_err(fs_err)?
        .ok_or_else(|| Error::Missing {
            path: path.to_path_buf(),
            file: "/boot/initrd.img".to_string(),
        })?;
    initrd_section(path, "/boot/initrd.img", &initrd, manifest_only, &mut out)?;
    Ok(out)
}

/// The MBR partition entries (UEFI 2.10 5.2.1: four 16-byte entries at byte 446) and a GPT
/// at LBA 1, if there is one.
fn system_area(bytes: &[u8]) -> String {
    let mut out = String::from("System area:\n");
    if bytes.len() < 512 || bytes[510..512] != [0x55, 0xaa] {
        out.push_str("  no MBR\n");
        return out;
    }
    for (i, e) in bytes[446..510].chunks_exact(16).enumerate() {
        let kind = e[4];
        if kind == 0 {
            continue;
        }
        let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
        let sectors = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
        let _ = writeln!(
            out,
            "  MBR {}: type 0x{kind:02x}{}, start {start}, {sectors} sectors",
            i + 1,
            if e[0] == 0x80 { ", bootable" } else { "" },
        );
    }
    if bytes.len() >= 1024 && &bytes[512..520] == b"EFI PART" {
        match Gpt::parse(bytes) {
            Ok(table) => out.push_str(&gpt_text(&table)),
            Err(e) => {
                let _ = writeln!(out, "  GPT: {e}");
            }
        }
    }
    out
}

/// The GPT's disk GUID and one line per partition.
fn gpt_text(table: &Gpt) -> String {
    let mut out = format!("  GPT disk {}:\n", table.disk_guid);
    for (i, p) in table.partitions.iter().enumerate() {
        let kind = match p.type_guid {
            Guid::ESP => "EFI System".to_string(),
            Guid::LINUX_FS => "Linux filesystem".to_string(),
            other if other == BASIC_DATA => "Microsoft basic data".to_string(),
            other => other.to_string(),
        };
        let _ = writeln!(
            out,
            "  {} {:?}: start {}, {} sectors ({} bytes), type {kind}, PARTUUID {}{}",
            i + 1,
            p.name,
            p.first_lba,
            p.sectors(),
            p.sectors() * SECTOR,
            p.guid,
            if p.attributes & gpt::ATTR_LEGACY_BIOS_BOOTABLE != 0 {
                ", legacy BIOS bootable"
            } else {
                ""
            },
        );
    }
    out
}

/// The USB image: GPT, the ESP's files, the initrd in it.
fn inspect_usb(path: &Path, file: &File, manifest_only: bool) -> Result<String, Error> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut head = vec![0u8; (gpt::FIRST_USABLE * SECTOR) as usize];
    file.read_exact_at(&mut head, 0).map_err(io)?;
    let table = Gpt::parse(&head).map_err(|error| Error::Gpt {
        path: path.to_path_buf(),
        error,
    })?;
    let mut out = String::from("GPT disk image\nPartitions:\n");
    out.push_str(&gpt_text(&table));
    let esp = table
        .partitions
        .iter()
        .find(|p| p.type_guid == Guid::ESP)
        .ok_or_else(|| Error::Missing {
            path: path.to_path_buf(),
            file: "EFI System partition".to_string(),
        })?;
    let len = usize::try_from(esp.sectors() * SECTOR).map_err(|_| Error::Filesystem {
        path: path.to_path_buf(),
        what: format!("ESP of {} sectors does not fit in memory", esp.sectors()),
    })?;
    let mut fat = vec![0u8; len];
    file.read_exact_at(&mut fat, esp.first_lba * SECTOR)
        .map_err(io)?;
    let fs_err = |what: String| Error::Filesystem {
        path: path.to_path_buf(),
        what: format!("ESP (FAT) at sector {}: {what}", esp.first_lba),
    };
    let mut fs = hadris_fat::sync::FatFs::mount(fat, MountOptions::new().read_only())
        .map_err(|e| fs_err(e.to_string()))?;
    let mut label = [0u8; 384];
    let volume = fs
        .label(&mut label)
        .map_err(|e| fs_err(e.to_string()))?
        .unwrap_or("")
        .to_string();
    let items = walk(&mut fs).map_err(fs_err)?;
    let _ = writeln!(out, "ESP files (FAT label {volume}):");
    list_files(&items, &mut out);
    let initrd = read_file(&mut fs, "/boot/initrd.img")
        .map_err(fs_err)?
        .ok_or_else(|| Error::Missing {
            path: path.to_path_buf(),
            file: "boot/initrd.img in the ESP".to_string(),
        })?;
    initrd_section(
        path,
        "ESP:/boot/initrd.img",
        &initrd,
        manifest_only,
        &mut out,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Compression, write_initrd};
    use crate::testutil::{fake_boot_sysroot as fake_sysroot, input};
    use rear_model::manifest::{Entry, Image, ImagePath, Kind, Manifest, Source};
    use rear_sys::sysroot::Sysroot;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    const MANIFEST_JSON: &[u8] = b"{\"version\":1,\"test\":\"inspect\"}\n";

    /// A zstd initrd with `/etc/rear/manifest.json`.
    fn initrd() -> Vec<u8> {
        let mut manifest = Manifest::new("6.1.0-test-amd64");
        let mut data = BTreeMap::new();
        let mut add = |path: &str, kind: Kind, mode: u32, bytes: Option<&[u8]>| {
            let p = ImagePath::new(path).unwrap();
            manifest.entries.insert(
                p.clone(),
                Entry {
                    kind,
                    mode,
                    size: bytes.map_or(0, |b| b.len() as u64),
                    sha256: bytes.map(rear_model::manifest::sha256_hex),
                    source: Source::Generated { by: "test".into() },
                    why: String::new(),
                },
            );
            if let Some(b) = bytes {
                data.insert(p, Arc::<[u8]>::from(b));
            }
        };
        add("/etc", Kind::Dir, 0o755, None);
        add("/etc/rear", Kind::Dir, 0o755, None);
        add(
            "/etc/rear/manifest.json",
            Kind::File,
            0o644,
            Some(MANIFEST_JSON),
        );
        let mut out = Vec::new();
        write_initrd(
            &Image { manifest, data },
            1_700_000_000,
            Compression::Zstd { level: 3 },
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn inspect_iso_shows_boot_entries_partitions_files_manifest() {
        let (_d, sys) = fake_sysroot();
        let kernel = vec![7u8; 300_001];
        let initrd = initrd();
        let mut iso = Vec::new();
        crate::media::iso::write_iso(&sys, &input(&kernel, &initrd), &mut iso).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rear.iso");
        std::fs::write(&path, &iso).unwrap();

        let text = inspect(&path, false).unwrap();
        println!("{text}");
        assert!(text.contains("Volume label: REAR-ISO"), "{text}");
        assert!(
            text.lines().any(|l| l.contains("1 BIOS")
                && l.contains("load 4 sectors")
                && l.contains("/isolinux/isolinux.bin")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("2 EFI") && l.contains("/boot/efi.img (")),
            "{text}"
        );
        assert!(text.contains("  MBR 1: type 0x"), "{text}");
        assert!(text.contains("type EFI System"), "{text}");
        assert!(text.contains("      300001  /boot/vmlinuz\n"), "{text}");
        assert!(text.contains("/EFI/BOOT/BOOTX64.EFI"), "{text}");
        assert!(text.contains("Initrd /boot/initrd.img:"), "{text}");
        assert!(text.contains(" etc/rear/manifest.json\n"), "{text}");

        let m = inspect(&path, true).unwrap();
        assert_eq!(m.as_bytes(), MANIFEST_JSON);
    }

    #[test]
    fn inspect_usb_shows_partitions_esp_files_manifest() {
        let kernel = vec![5u8; 200_003];
        let initrd = initrd();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rear-db1.usb.img");
        let report = crate::media::usb::write_usb_image(
            &Sysroot::host(),
            &input(&kernel, &initrd),
            16 << 20,
            &path,
        )
        .unwrap();

        let text = inspect(&path, false).unwrap();
        println!("{text}");
        assert!(
            text.contains(&format!(
                "  1 \"REAR-BOOT\": start 2048, {} sectors",
                report.partitions[0].size / 512
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("PARTUUID {}", report.partitions[1].partuuid)),
            "{text}"
        );
        assert!(text.contains("type Linux filesystem"), "{text}");
        assert!(text.contains("      200003  /boot/vmlinuz\n"), "{text}");
        assert!(text.contains("/EFI/BOOT/BOOTX64.EFI"), "{text}");
        assert!(text.contains("Initrd ESP:/boot/initrd.img:"), "{text}");

        let m = inspect(&path, true).unwrap();
        assert_eq!(m.as_bytes(), MANIFEST_JSON);
    }

    #[test]
    fn inspect_initrd_lists_and_prints_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd.img");
        std::fs::write(&path, initrd()).unwrap();
        let text = inspect(&path, false).unwrap();
        assert!(text.contains(" etc/rear/manifest.json\n"), "{text}");
        assert_eq!(inspect(&path, true).unwrap().as_bytes(), MANIFEST_JSON);
    }

    #[test]
    fn inspect_garbage_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.bin");
        std::fs::write(&path, b"hello, this is not an image").unwrap();
        let e = inspect(&path, false).unwrap_err();
        assert!(matches!(e, Error::Unknown { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "{}: not an ISO, USB image or initrd",
                path.display()
            )),
            "{text}"
        );
        let e = inspect(&dir.path().join("missing"), false).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
