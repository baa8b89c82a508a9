//! Boot-loader files of the host: ISOLINUX for BIOS, GRUB (or shim + signed GRUB) for UEFI.
//!
//! Input: a [`Sysroot`]. Output: the bytes of the BIOS loader files ([`BiosFiles`]) and the
//! UEFI loader to use ([`EfiLoader`]). The files come from the host's packages, looked up in
//! the places Debian/Ubuntu, Fedora/RHEL, SUSE and Arch install them; a file that is in none
//! of them is one [`Error::Missing`] naming the file, where it was looked for and the package
//! that provides it on each distribution.

use std::fmt;
use std::path::{Path, PathBuf};

use rear_sys::sysroot::{self, Sysroot};

/// Errors of finding boot-loader files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A boot-loader file is not installed.
    #[error("{file} not found (looked for {}); install {packages}", looked_list(.looked))]
    Missing {
        /// The file (or directory) looked for.
        file: &'static str,
        /// The host paths tried, in order.
        looked: Vec<PathBuf>,
        /// The packages that provide it.
        packages: Packages,
    },
    /// A file is there but could not be read.
    #[error(transparent)]
    Read(#[from] sysroot::Error),
}

fn looked_list(looked: &[PathBuf]) -> String {
    looked
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The package that provides a file on each distribution family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packages {
    /// Debian and Ubuntu.
    pub debian: &'static str,
    /// Fedora, RHEL and derivatives.
    pub fedora: &'static str,
    /// SUSE and openSUSE.
    pub suse: &'static str,
}

impl fmt::Display for Packages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (Debian/Ubuntu), {} (Fedora/RHEL) or {} (SUSE)",
            self.debian, self.fedora, self.suse
        )
    }
}

/// ISOLINUX itself and the MBR of hybrid images.
pub const ISOLINUX_PACKAGES: Packages = Packages {
    debian: "isolinux",
    fedora: "syslinux",
    suse: "syslinux",
};

/// The syslinux library modules (`ldlinux.c32`, `menu.c32`, ...).
pub const SYSLINUX_MODULE_PACKAGES: Packages = Packages {
    debian: "syslinux-common",
    fedora: "syslinux",
    suse: "syslinux",
};

/// The GRUB x86_64 EFI modules.
pub const GRUB_EFI_PACKAGES: Packages = Packages {
    debian: "grub-efi-amd64-bin",
    fedora: "grub2-efi-x64-modules",
    suse: "grub2-x86_64-efi",
};

/// `grub-mkimage`, which makes a GRUB EFI image from the modules.
pub const GRUB_TOOLS_PACKAGES: Packages = Packages {
    debian: "grub-common",
    fedora: "grub2-tools",
    suse: "grub2",
};

/// Directories of `isolinux.bin` and `isohdpfx.bin`: Debian/Ubuntu, Fedora/SUSE, Arch, old
/// Debian.
const ISOLINUX_DIRS: &[&str] = &[
    "/usr/lib/ISOLINUX",
    "/usr/share/syslinux",
    "/usr/lib/syslinux/bios",
    "/usr/lib/syslinux",
];

/// Directories of the BIOS `.c32` modules, same order.
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/syslinux/modules/bios",
    "/usr/share/syslinux",
    "/usr/lib/syslinux/bios",
    "/usr/lib/syslinux",
];

/// The menu module and the libraries it needs (`menu.c32` links `libutil.c32`, which links
/// `libcom32.c32`); `ldlinux.c32` is separate because ISOLINUX loads it itself.
pub const MENU_MODULES: &[&str] = &["menu.c32", "libutil.c32", "libcom32.c32"];

/// Directories of GRUB's x86_64-efi modules: Debian/Ubuntu/Arch/Fedora, SUSE, older Fedora.
const GRUB_EFI_DIRS: &[&str] = &[
    "/usr/lib/grub/x86_64-efi",
    "/usr/share/grub2/x86_64-efi",
    "/usr/lib/grub2/x86_64-efi",
];

/// Signed shim binaries, in order: Debian/Ubuntu, SUSE, Fedora/RHEL and others (installed
/// into the ESP).
const SHIM_PATHS: &[&str] = &[
    "/usr/lib/shim/shimx64.efi.signed",
    "/usr/share/efi/x86_64/shim.efi",
    "/boot/efi/EFI/fedora/shimx64.efi",
    "/boot/efi/EFI/redhat/shimx64.efi",
    "/boot/efi/EFI/centos/shimx64.efi",
    "/boot/efi/EFI/rocky/shimx64.efi",
    "/boot/efi/EFI/almalinux/shimx64.efi",
];

/// Signed GRUB images, in order: Debian/Ubuntu, Debian's CD image, SUSE, Fedora/RHEL.
/// Debian's `grubx64.efi` comes first: it reads `EFI/debian/grub.cfg` (ours, which finds the
/// medium by its build-unique marker file); `gcdx64.efi` instead takes the first device with
/// a `/.disk/info`, which may be another Debian medium in the same machine.
const SIGNED_GRUB_PATHS: &[&str] = &[
    "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
    "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
    "/usr/share/efi/x86_64/grub.efi",
    "/boot/efi/EFI/fedora/grubx64.efi",
    "/boot/efi/EFI/redhat/grubx64.efi",
    "/boot/efi/EFI/centos/grubx64.efi",
    "/boot/efi/EFI/rocky/grubx64.efi",
    "/boot/efi/EFI/almalinux/grubx64.efi",
];

/// The BIOS boot files of an ISO: ISOLINUX, its hybrid MBR and its modules.
#[derive(Clone, PartialEq, Eq)]
pub struct BiosFiles {
    /// `isolinux.bin`, the El Torito BIOS boot image.
    pub isolinux_bin: Vec<u8>,
    /// `isohdpfx.bin`, the MBR boot code of a hybrid image (432 bytes).
    pub isohdpfx: Vec<u8>,
    /// `ldlinux.c32`, ISOLINUX's core module.
    pub ldlinux: Vec<u8>,
    /// The menu module and its libraries ([`MENU_MODULES`]), as (file name, bytes).
    pub modules: Vec<(&'static str, Vec<u8>)>,
    /// Where `isolinux.bin` was found (for the report).
    pub source: PathBuf,
}

impl fmt::Debug for BiosFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BiosFiles")
            .field("source", &self.source)
            .field("isolinux_bin", &self.isolinux_bin.len())
            .field("modules", &self.modules.len())
            .finish_non_exhaustive()
    }
}

/// The UEFI boot loader the host can provide.
#[derive(Clone, PartialEq, Eq)]
pub enum EfiLoader {
    /// Build a GRUB EFI image from these modules (no Secure Boot).
    Grub {
        /// The host directory of GRUB's `x86_64-efi` modules.
        modules_dir: PathBuf,
    },
    /// A signed shim and signed GRUB, so a signed kernel boots under Secure Boot.
    Signed {
        /// `shimx64.efi`, installed as `EFI/BOOT/BOOTX64.EFI`.
        shim: Vec<u8>,
        /// The signed GRUB, installed as `EFI/BOOT/grubx64.efi` next to shim.
        grub: Vec<u8>,
        /// The directory below `EFI/` whose `grub.cfg` the signed GRUB reads (`debian`,
        /// `ubuntu`, `fedora`, ...).
        vendor: String,
        /// Where shim and GRUB were found.
        sources: (PathBuf, PathBuf),
    },
}

impl fmt::Debug for EfiLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EfiLoader::Grub { modules_dir } => f
                .debug_struct("Grub")
                .field("modules_dir", modules_dir)
                .finish(),
            EfiLoader::Signed {
                vendor, sources, ..
            } => f
                .debug_struct("Signed")
                .field("vendor", vendor)
                .field("sources", sources)
                .finish_non_exhaustive(),
        }
    }
}

/// Finds and reads the BIOS boot files of an ISO.
pub fn bios_files(sys: &Sysroot) -> Result<BiosFiles, Error> {
    let (source, isolinux_bin) = find_in(sys, ISOLINUX_DIRS, "isolinux.bin", ISOLINUX_PACKAGES)?;
    let (_, isohdpfx) = find_in(sys, ISOLINUX_DIRS, "isohdpfx.bin", ISOLINUX_PACKAGES)?;
    let (_, ldlinux) = find_in(sys, MODULE_DIRS, "ldlinux.c32", SYSLINUX_MODULE_PACKAGES)?;
    let mut modules = Vec::new();
    for &name in MENU_MODULES {
        let (_, bytes) = find_in(sys, MODULE_DIRS, name, SYSLINUX_MODULE_PACKAGES)?;
        modules.push((name, bytes));
    }
    Ok(BiosFiles {
        isolinux_bin,
        isohdpfx,
        ldlinux,
        modules,
        source,
    })
}

/// The UEFI loader: shim + signed GRUB when both are installed, otherwise GRUB's EFI module
/// directory (for `grub-mkimage`). One of the signed pair alone is not used: shim without
/// signed GRUB cannot boot anything, and signed GRUB without shim does not pass Secure Boot.
pub fn efi_loader(sys: &Sysroot) -> Result<EfiLoader, Error> {
    if let (Some(shim_path), Some(grub_path)) = (
        first_file(sys, SHIM_PATHS),
        first_file(sys, SIGNED_GRUB_PATHS),
    ) {
        let shim = sys.read(&shim_path)?;
        let grub = sys.read(&grub_path)?;
        let vendor = vendor_dir(sys, &grub_path);
        return Ok(EfiLoader::Signed {
            shim,
            grub,
            vendor,
            sources: (shim_path, grub_path),
        });
    }
    grub_modules_dir(sys).map(|modules_dir| EfiLoader::Grub { modules_dir })
}

/// GRUB's x86_64-efi module directory (the one holding `normal.mod`).
pub fn grub_modules_dir(sys: &Sysroot) -> Result<PathBuf, Error> {
    let looked: Vec<PathBuf> = GRUB_EFI_DIRS
        .iter()
        .map(|d| Path::new(d).join("normal.mod"))
        .collect();
    looked
        .iter()
        .find(|p| sys.is_file(p))
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or(Error::Missing {
            file: "GRUB x86_64-efi modules (normal.mod)",
            looked,
            packages: GRUB_EFI_PACKAGES,
        })
}

/// The `EFI/<vendor>` directory a signed GRUB reads its `grub.cfg` from: the directory it was
/// installed in (`/boot/efi/EFI/fedora/grubx64.efi` -> `fedora`), `BOOT` for SUSE's, else the
/// os-release `ID`
/// (Debian's and Ubuntu's images use `EFI/debian` and `EFI/ubuntu`), else `BOOT`.
fn vendor_dir(sys: &Sysroot, grub_path: &Path) -> String {
    if let Ok(rest) = grub_path.strip_prefix("/boot/efi/EFI")
        && let Some(first) = rest.components().next()
    {
        return first.as_os_str().to_string_lossy().into_owned();
    }
    // SUSE's grub.efi reads EFI/BOOT/grub.cfg next to it.
    if grub_path.starts_with("/usr/share/efi") {
        return "BOOT".to_string();
    }
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Ok(text) = sys.read_to_string(Path::new(path))
            && let Some(id) = os_release_id(&text)
        {
            return id;
        }
    }
    "BOOT".to_string()
}

/// The `ID=` of an os-release file, unquoted.
fn os_release_id(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| !v.is_empty() && !v.contains('/'))
}

/// The first regular file of `paths` that exists in the sysroot.
fn first_file(sys: &Sysroot, paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| sys.is_file(p))
}

/// Reads `name` from the first of `dirs` that has it.
fn find_in(
    sys: &Sysroot,
    dirs: &[&str],
    name: &'static str,
    packages: Packages,
) -> Result<(PathBuf, Vec<u8>), Error> {
    let looked: Vec<PathBuf> = dirs.iter().map(|d| Path::new(d).join(name)).collect();
    for path in &looked {
        match sys.read(path) {
            Ok(bytes) => return Ok((path.clone(), bytes)),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Missing {
        file: name,
        looked,
        packages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, bytes: &[u8]) {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn debian_syslinux(root: &Path) {
        write(root, "/usr/lib/ISOLINUX/isolinux.bin", b"ISOLINUX");
        write(root, "/usr/lib/ISOLINUX/isohdpfx.bin", &[0x33; 432]);
        for m in ["ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"] {
            write(
                root,
                &format!("/usr/lib/syslinux/modules/bios/{m}"),
                m.as_bytes(),
            );
        }
    }

    #[test]
    fn bios_files_debian_layout() {
        let dir = tempfile::tempdir().unwrap();
        debian_syslinux(dir.path());
        let sys = Sysroot::new(dir.path()).unwrap();
        let b = bios_files(&sys).unwrap();
        assert_eq!(b.isolinux_bin, b"ISOLINUX");
        assert_eq!(b.isohdpfx.len(), 432);
        assert_eq!(b.ldlinux, b"ldlinux.c32");
        assert_eq!(
            b.modules.iter().map(|m| m.0).collect::<Vec<_>>(),
            MENU_MODULES
        );
        assert_eq!(b.source, Path::new("/usr/lib/ISOLINUX/isolinux.bin"));
    }

    #[test]
    fn bios_files_fedora_layout() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "isolinux.bin",
            "isohdpfx.bin",
            "ldlinux.c32",
            "menu.c32",
            "libutil.c32",
            "libcom32.c32",
        ] {
            write(
                dir.path(),
                &format!("/usr/share/syslinux/{f}"),
                f.as_bytes(),
            );
        }
        let sys = Sysroot::new(dir.path()).unwrap();
        let b = bios_files(&sys).unwrap();
        assert_eq!(b.source, Path::new("/usr/share/syslinux/isolinux.bin"));
    }

    #[test]
    fn bios_files_missing_names_file_and_packages() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(dir.path()).unwrap();
        let e = bios_files(&sys).unwrap_err().to_string();
        assert!(
            e.starts_with("isolinux.bin not found (looked for /usr/lib/ISOLINUX/isolinux.bin, "),
            "{e}"
        );
        assert!(
            e.ends_with(
                "install isolinux (Debian/Ubuntu), syslinux (Fedora/RHEL) or syslinux (SUSE)"
            ),
            "{e}"
        );
        // Only the modules missing: the module package is named.
        write(dir.path(), "/usr/lib/ISOLINUX/isolinux.bin", b"I");
        write(dir.path(), "/usr/lib/ISOLINUX/isohdpfx.bin", b"M");
        let e = bios_files(&sys).unwrap_err().to_string();
        assert!(e.starts_with("ldlinux.c32 not found"), "{e}");
        assert!(e.contains("install syslinux-common (Debian/Ubuntu)"), "{e}");
    }

    #[test]
    fn efi_loader_grub_modules_or_error() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(dir.path()).unwrap();
        let e = efi_loader(&sys).unwrap_err().to_string();
        assert!(
            e.starts_with("GRUB x86_64-efi modules (normal.mod) not found"),
            "{e}"
        );
        assert!(
            e.ends_with(
                "install grub-efi-amd64-bin (Debian/Ubuntu), grub2-efi-x64-modules (Fedora/RHEL) or grub2-x86_64-efi (SUSE)"
            ),
            "{e}"
        );
        write(dir.path(), "/usr/share/grub2/x86_64-efi/normal.mod", b"m");
        assert_eq!(
            efi_loader(&sys).unwrap(),
            EfiLoader::Grub {
                modules_dir: "/usr/share/grub2/x86_64-efi".into()
            }
        );
    }

    #[test]
    fn efi_loader_prefers_signed_pair() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "/usr/lib/grub/x86_64-efi/normal.mod", b"m");
        write(dir.path(), "/etc/os-release", b"NAME=x\nID=\"ubuntu\"\n");
        write(dir.path(), "/usr/lib/shim/shimx64.efi.signed", b"shim");
        let sys = Sysroot::new(dir.path()).unwrap();
        // Shim alone is not enough.
        assert!(matches!(efi_loader(&sys).unwrap(), EfiLoader::Grub { .. }));
        write(
            dir.path(),
            "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
            b"grub",
        );
        match efi_loader(&sys).unwrap() {
            EfiLoader::Signed {
                shim, grub, vendor, ..
            } => {
                assert_eq!(
                    (shim.as_slice(), grub.as_slice()),
                    (&b"shim"[..], &b"grub"[..])
                );
                assert_eq!(vendor, "ubuntu");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vendor_dir_from_esp_path() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(dir.path()).unwrap();
        assert_eq!(
            vendor_dir(&sys, Path::new("/boot/efi/EFI/fedora/grubx64.efi")),
            "fedora"
        );
        assert_eq!(
            vendor_dir(&sys, Path::new("/usr/share/efi/x86_64/grub.efi")),
            "BOOT"
        );
    }
}
