//! EFI system partition images: a list of files -> a FAT12/16 image, written in process with
//! hadris-fat.
//!
//! Input: the files (paths inside the ESP such as `EFI/BOOT/BOOTX64.EFI`, and their bytes),
//! a volume label and a volume id. Output: the image bytes, sized to the content plus a little
//! slack (FAT12 below 16 MiB, FAT16 above, as hadris-fat chooses from the size). The same
//! input gives the same bytes: the serial is the volume id passed in, every timestamp is
//! 1980-01-01 (hadris-fat's fixed clock), and entries are written in sorted order. The ISO
//! points its El Torito UEFI entry at such an image; the USB image uses one as its ESP.

use hadris_fat::{FatOptions, VolumeLabel};
use hadris_fs::{Content, ErrorKind, Node, Tree};

/// The FAT sector size: 512 bytes, what every UEFI firmware reads.
const SECTOR: u64 = 512;
/// Size steps of the image; 64 KiB keeps it a whole number of ISO blocks and 4 KiB pages.
const STEP: u64 = 64 << 10;
/// How many times the size grows by an eighth when the first estimate is too small.
const GROW_TRIES: usize = 16;

/// Errors of building an ESP image; each names the file or label concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The label is not a FAT volume label (1 to 11 ASCII characters, no `"*+,./:;<=>?[\]|`).
    #[error("ESP volume label {label:?} is not a valid FAT label ({kind:?})")]
    Label {
        /// The label given.
        label: String,
        /// Why hadris-fat refused it.
        kind: ErrorKind,
    },
    /// A file path is empty or has empty, `.` or `..` parts.
    #[error("ESP file path {path:?} must be relative, without empty, `.` or `..` parts")]
    BadPath {
        /// The path given.
        path: String,
    },
    /// A file path clashes with another file (a file where a directory is needed).
    #[error("ESP file {path:?}: {error}")]
    Path {
        /// The path given.
        path: String,
        /// What was wrong with it.
        error: Box<hadris_fs::PathError>,
    },
    /// The FAT volume could not be written.
    #[error("writing the ESP image ({size} bytes): {error}")]
    Write {
        /// The image size tried.
        size: u64,
        /// What hadris-fat said, with the file concerned.
        error: Box<hadris_fs::PathError>,
    },
}

/// A FAT image holding `files` (paths relative to the ESP root, `/`-separated; directories
/// are created as needed), labelled `label`, with serial number `volume_id`.
///
/// The image is as small as fits: the estimate from the file sizes grows by an eighth until
/// hadris-fat's capacity check passes, so it is deterministic too.
pub fn esp_image(
    files: &[(String, Vec<u8>)],
    label: &str,
    volume_id: u32,
) -> Result<Vec<u8>, Error> {
    let label_value = VolumeLabel::new(label).map_err(|kind| Error::Label {
        label: label.to_string(),
        kind,
    })?;
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tree = Tree::new();
    for (path, bytes) in sorted {
        let clean = path.trim_start_matches('/');
        let bad = clean.is_empty() || clean.split('/').any(|p| matches!(p, "" | "." | ".."));
        if bad {
            return Err(Error::BadPath { path: path.clone() });
        }
        tree.insert(clean, Node::file(Content::bytes(bytes.clone())))
            .map_err(|error| Error::Path {
                path: path.clone(),
                error: Box::new(error),
            })?;
    }
    let mut size = estimate(files);
    let mut tries = 0;
    loop {
        let options = FatOptions::new()
            .with_size(size)
            .with_sector_size(SECTOR as u32)
            .with_label(label_value)
            .with_serial(volume_id)
            .with_oem_name(*b"REAR    ");
        // Zeroed to the volume size: the image is all of the device, gaps included.
        let mut image = vec![0u8; size as usize];
        match hadris_fat::sync::write(&mut image, &tree, &options) {
            Ok(_) => return Ok(image),
            Err(error) if error.kind() == ErrorKind::NoSpace && tries < GROW_TRIES => {
                log::debug!("ESP image of {size} bytes too small, growing");
                tries += 1;
                size = round_up(size + size / 8, STEP);
            }
            Err(error) => {
                return Err(Error::Write {
                    size,
                    error: Box::new(error),
                });
            }
        }
    }
}

/// A first guess of the image size: every file and directory rounded up to 4 KiB clusters,
/// the FATs and root directory, and a slack of 1/32 plus 64 KiB.
fn estimate(files: &[(String, Vec<u8>)]) -> u64 {
    const CLUSTER: u64 = 4096;
    let mut dirs = std::collections::BTreeSet::new();
    let mut data = 0u64;
    for (path, bytes) in files {
        data += round_up(bytes.len() as u64, CLUSTER).max(CLUSTER);
        let mut parent = path.trim_start_matches('/');
        while let Some((dir, _)) = parent.rsplit_once('/') {
            dirs.insert(dir.to_string());
            parent = dir;
        }
    }
    data += dirs.len() as u64 * CLUSTER;
    // Two FATs of at most 2 bytes a 512-byte cluster, 512 root entries, reserved sectors.
    let overhead = 2 * (data / 256) + 16 * 1024 + 4 * SECTOR;
    round_up(data + overhead + data / 32 + STEP, STEP)
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Vec<(String, Vec<u8>)> {
        vec![
            ("EFI/BOOT/BOOTX64.EFI".to_string(), vec![0x4d; 700_000]),
            ("EFI/BOOT/grubx64.efi".to_string(), vec![0x5a; 1_300_000]),
            (
                "EFI/debian/grub.cfg".to_string(),
                b"configfile x\n".to_vec(),
            ),
            ("README.TXT".to_string(), b"rear\n".to_vec()),
        ]
    }

    /// `fsck.fat -n` on `image`; fails naming the package when dosfstools is missing.
    fn fsck(image: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("esp.img");
        std::fs::write(&path, image).unwrap();
        let out = Command::new("fsck.fat")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("fsck.fat: {e} (install the Debian package dosfstools)"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "fsck.fat -n failed:\n{text}");
        text
    }

    #[test]
    fn esp_image_is_fsck_clean_and_holds_the_files() {
        let image = esp_image(&sample(), "REAR-EFI", 0x1234_abcd).unwrap();
        assert_eq!(image.len() as u64 % STEP, 0);
        // Content plus a little slack, not more.
        assert!(image.len() < 2_000_000 + 400_000, "{} bytes", image.len());
        let text = fsck(&image);
        assert!(!text.contains("differ"), "{text}");
        // The files are there, with their bytes (mtools reads the image as a DOS disk).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("esp.img");
        std::fs::write(&path, &image).unwrap();
        let out = Command::new("mtype")
            .args(["-i"])
            .arg(&path)
            .arg("::/EFI/debian/grub.cfg")
            .output()
            .expect("mtype (install the Debian package mtools)");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "configfile x\n");
        let out = Command::new("minfo")
            .arg("-i")
            .arg(&path)
            .arg("::")
            .output()
            .expect("minfo (install the Debian package mtools)");
        let info = String::from_utf8_lossy(&out.stdout);
        assert!(info.contains("serial number: 1234ABCD"), "{info}");
        assert!(info.contains("REAR-EFI"), "{info}");
    }

    #[test]
    fn esp_image_is_deterministic() {
        let mut files = sample();
        let a = esp_image(&files, "REAR-EFI", 7).unwrap();
        files.reverse();
        let b = esp_image(&files, "REAR-EFI", 7).unwrap();
        assert!(a == b, "two builds differ");
    }

    #[test]
    fn esp_image_grows_for_big_files() {
        let files = vec![("EFI/BOOT/BIG.BIN".to_string(), vec![1u8; 20 << 20])];
        let image = esp_image(&files, "BIG", 1).unwrap();
        assert!(image.len() > 20 << 20);
        fsck(&image);
    }

    #[test]
    fn esp_image_rejects_bad_label_and_paths() {
        let e = esp_image(&sample(), "FAR TOO LONG LABEL", 1).unwrap_err();
        assert!(matches!(e, Error::Label { .. }), "{e}");
        assert!(e.to_string().contains("FAR TOO LONG LABEL"), "{e}");
        let e = esp_image(&[("EFI/../x".to_string(), vec![])], "L", 1).unwrap_err();
        assert!(e.to_string().contains("EFI/../x"), "{e}");
        let dup = vec![
            ("EFI/BOOT".to_string(), vec![1]),
            ("EFI/BOOT/X.EFI".to_string(), vec![2]),
        ];
        let e = esp_image(&dup, "L", 1).unwrap_err();
        assert!(matches!(e, Error::Path { .. }), "{e}");
    }
}
