//! The UEFI loader of the ISO: GRUB's menu, and the GRUB EFI image (or shim + signed GRUB)
//! that goes into the ESP.
//!
//! Input: a [`MediaInput`] and the host's [`EfiLoader`]. Output: the text of
//! `/boot/grub/grub.cfg` ([`menu_cfg`], from `bootloaders/grub.cfg`) and the files of the ESP
//! ([`esp_files`]).
//!
//! Without Secure Boot files the EFI image is made with `grub-mkimage -O x86_64-efi` with the
//! [`MODULES`] built in and a small embedded config (`bootloaders/grub-iso-efi.cfg`) that
//! finds the medium and sets `$prefix` to its `/boot/grub`, so that GRUB's normal mode reads
//! the menu from there. `grub-mkstandalone` is not
//! used: it packs its files into a memdisk tar stamped with the current time and the
//! invoking user (GRUB 2.06 ignores `SOURCE_DATE_EPOCH`), so two runs differ; `grub-mkimage`
//! with everything built in needs no memdisk and gives the same bytes every time.
//!
//! With a signed shim and signed GRUB, shim is `EFI/BOOT/BOOTX64.EFI`, GRUB is
//! `EFI/BOOT/grubx64.efi` next to it (where shim loads it from), and the same small config
//! plus `configfile $prefix/grub.cfg` is `grub.cfg` in `EFI/BOOT/` and in `EFI/<vendor>/`,
//! where the distributions' signed GRUB images look for it (they read it in normal mode).

use std::path::Path;
use std::process::Command;

use super::bootfiles::{self, EfiLoader};
use super::{MediaInput, TemplateError, render, render_menu};
use rear_sys::exec;
use rear_sys::sysroot::Sysroot;

/// The GRUB menu template (`/boot/grub/grub.cfg` of the ISO).
pub const MENU_TEMPLATE: &str = include_str!("../../../../bootloaders/grub.cfg");

/// The config embedded in the GRUB EFI image: find the medium, read its menu.
pub const SEARCH_TEMPLATE: &str = include_str!("../../../../bootloaders/grub-iso-efi.cfg");

/// The modules built into the GRUB EFI image: partition tables and file systems of the medium
/// (GPT/MBR, ISO 9660, FAT), the Linux loader, the script engine and the commands the
/// configs use (`search`, `configfile`, `test`, `echo`, `exit`), video and the serial
/// console.
pub const MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "iso9660",
    "fat",
    "linux",
    "normal",
    "search",
    "search_label",
    "search_fs_file",
    "search_fs_uuid",
    "configfile",
    "echo",
    "test",
    "minicmd",
    "all_video",
    "efi_gop",
    "serial",
    "terminal",
];

/// Errors of making the UEFI loader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A template and its values do not match.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// `grub-mkimage` is missing or failed.
    #[error(transparent)]
    Exec(#[from] exec::Error),
    /// A scratch file for `grub-mkimage` could not be written or read.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// `/boot/grub/grub.cfg`: the entries of [`menu_entries`], "Recover <host>" by default,
/// booting by itself after `boot_timeout` seconds, on the serial and the VGA console.
pub fn menu_cfg(input: &MediaInput<'_>) -> Result<String, Error> {
    Ok(render_menu(
        "grub.cfg",
        MENU_TEMPLATE,
        input,
        ("TIMEOUT", input.boot_timeout.to_string()),
        quote_single,
    )?)
}

/// The config that finds the medium: by the volume `label`, then by the file `marker` (an
/// absolute path on the medium whose name is unique to the build), and sets `$prefix` to its
/// `/boot/grub`, whose `grub.cfg` GRUB's normal mode then reads. The template's comment lines
/// are dropped: GRUB runs an embedded config with its rescue parser, which knows no comments.
pub fn search_cfg(marker: &str, label: &str) -> Result<String, Error> {
    let text = render(
        "grub-iso-efi.cfg",
        SEARCH_TEMPLATE,
        &[("MARKER", marker), ("LABEL", label)],
    )?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect())
}

/// Text inside GRUB single quotes: a `'` becomes `'\''`.
fn quote_single(s: &str) -> String {
    s.replace('\'', r"'\''")
}

/// The files of the ESP (paths inside it, bytes): `EFI/BOOT/BOOTX64.EFI` and, with shim,
/// the signed GRUB and its `grub.cfg`. `search` is [`search_cfg`]'s text.
pub fn esp_files(
    sys: &Sysroot,
    loader: &EfiLoader,
    search: &str,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    match loader {
        EfiLoader::Grub { modules_dir } => {
            let image = mkimage(&sys.real(modules_dir), search)?;
            Ok(vec![("EFI/BOOT/BOOTX64.EFI".to_string(), image)])
        }
        EfiLoader::Signed {
            shim, grub, vendor, ..
        } => {
            // A signed GRUB reads this file as its config in normal mode: chain to the menu.
            let cfg = format!("{search}configfile $prefix/grub.cfg\n").into_bytes();
            let mut files = vec![
                ("EFI/BOOT/BOOTX64.EFI".to_string(), shim.clone()),
                ("EFI/BOOT/grubx64.efi".to_string(), grub.clone()),
                ("EFI/BOOT/grub.cfg".to_string(), cfg.clone()),
            ];
            if !vendor.eq_ignore_ascii_case("BOOT") {
                files.push((format!("EFI/{vendor}/grub.cfg"), cfg));
            }
            Ok(files)
        }
    }
}

/// `grub-mkimage -O x86_64-efi` (`grub2-mkimage` on Fedora and SUSE) with [`MODULES`] from
/// `modules_dir` (a real path on the build machine) and `embedded` as its config.
pub fn mkimage(modules_dir: &Path, embedded: &str) -> Result<Vec<u8>, Error> {
    let scratch = tempfile::tempdir().map_err(|error| Error::Io {
        path: std::env::temp_dir(),
        error,
    })?;
    let cfg = scratch.path().join("embedded.cfg");
    let out = scratch.path().join("BOOTX64.EFI");
    std::fs::write(&cfg, embedded).map_err(|error| Error::Io {
        path: cfg.clone(),
        error,
    })?;
    let packages = bootfiles::GRUB_TOOLS_PACKAGES.to_string();
    let mut last = None;
    for program in ["grub-mkimage", "grub2-mkimage"] {
        let mut cmd = Command::new(program);
        cmd.args(["-O", "x86_64-efi", "-p", "/boot/grub", "-d"])
            .arg(modules_dir)
            .arg("-c")
            .arg(&cfg)
            .arg("-o")
            .arg(&out)
            .args(MODULES)
            .env("SOURCE_DATE_EPOCH", "0");
        match exec::run(&mut cmd, Some(&packages)) {
            Ok(_) => {
                return std::fs::read(&out).map_err(|error| Error::Io { path: out, error });
            }
            Err(e @ exec::Error::ToolMissing { .. }) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .unwrap_or(exec::Error::ToolMissing {
            program: "grub-mkimage".into(),
            package: Some(packages),
        })
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MediaInput<'static> {
        MediaInput {
            hostname: "db1",
            release: "6.1.0-9-amd64",
            kernel: b"",
            initrd: b"",
            cmdline: "console=tty0 console=ttyS0,115200n8".into(),
            boot_timeout: 5,
            epoch: 1_700_000_000,
        }
    }

    #[test]
    fn menu_cfg_renders_three_entries() {
        let cfg = menu_cfg(&input()).unwrap();
        assert!(cfg.contains("serial --unit=0 --speed=115200\n"), "{cfg}");
        assert!(cfg.contains("terminal_output console serial\n"), "{cfg}");
        assert!(
            cfg.contains("set default=recover\nset timeout=5\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains(
                "menuentry 'Recover db1' --id recover {\n    linux /boot/vmlinuz console=tty0 console=ttyS0,115200n8\n    initrd /boot/initrd.img\n}"
            ),
            "{cfg}"
        );
        assert!(
            cfg.contains("linux /boot/vmlinuz console=tty0 console=ttyS0,115200n8 rear.auto\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains("menuentry 'Boot from the first hard disk' --id local {\n    exit\n}"),
            "{cfg}"
        );
        assert!(!cfg.contains('@'), "{cfg}");
    }

    #[test]
    fn menu_cfg_quotes_titles() {
        let mut i = input();
        i.hostname = "it's";
        let cfg = menu_cfg(&i).unwrap();
        assert!(
            cfg.contains(r"menuentry 'Recover it'\''s' --id recover"),
            "{cfg}"
        );
    }

    #[test]
    fn search_cfg_names_marker_and_label() {
        let cfg = search_cfg("/.disk/rear-0123", "REAR-ISO").unwrap();
        assert_eq!(
            cfg,
            "search --no-floppy --set=root --label REAR-ISO\n\
             search --no-floppy --set=root --file /.disk/rear-0123\n\
             set prefix=($root)/boot/grub\n"
        );
    }

    #[test]
    fn esp_files_signed_layout() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(dir.path()).unwrap();
        let loader = EfiLoader::Signed {
            shim: b"shim".to_vec(),
            grub: b"grub".to_vec(),
            vendor: "debian".into(),
            sources: Default::default(),
        };
        let files = esp_files(&sys, &loader, "cfg").unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "EFI/BOOT/BOOTX64.EFI",
                "EFI/BOOT/grubx64.efi",
                "EFI/BOOT/grub.cfg",
                "EFI/debian/grub.cfg"
            ]
        );
        assert_eq!(files[0].1, b"shim");
        assert_eq!(files[3].1, b"cfgconfigfile $prefix/grub.cfg\n");
    }

    #[test]
    fn mkimage_missing_modules_fails_with_argv() {
        let dir = tempfile::tempdir().unwrap();
        let e = mkimage(dir.path(), "echo hi\n").unwrap_err().to_string();
        // Either grub-mkimage ran and complained about the empty directory, or it is not
        // installed and the error names the packages.
        assert!(
            e.contains("grub-mkimage -O x86_64-efi")
                || e.contains("install the package grub-common"),
            "{e}"
        );
    }

    #[test]
    fn mkimage_is_reproducible() {
        let sys = Sysroot::host();
        let Ok(dir) = bootfiles::grub_modules_dir(&sys) else {
            panic!("GRUB EFI modules missing: install the Debian package grub-efi-amd64-bin");
        };
        let cfg = search_cfg("/.disk/rear-x", "REAR-ISO").unwrap();
        let a = mkimage(&dir, &cfg).unwrap();
        let b = mkimage(&dir, &cfg).unwrap();
        assert_eq!(&a[..2], b"MZ");
        assert!(a == b, "two grub-mkimage runs differ");
        // The embedded config is in the image as text.
        let needle = b"--file /.disk/rear-x";
        assert!(a.windows(needle.len()).any(|w| w == needle));
    }
}
