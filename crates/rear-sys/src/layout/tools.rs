//! What the rescue system needs to recreate a layout: programs (with the package providing
//! each, for the build-time error) and kernel modules. The build adds them as a recipe, so a
//! missing tool stops the build on the host, not the recovery.

use super::model::{FsType, Layout, LvKind};
use crate::sysroot::Sysroot;
use rear_model::recipe::{Item, Recipe, RecipeFile};

/// A program the layout needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    /// Program name.
    pub program: &'static str,
    /// Debian package providing it.
    pub package: &'static str,
    /// What in the layout needs it.
    pub why: String,
    /// Whether the rescue system can do without it (boot-loader tools: finalize prefers
    /// the restored system's own).
    pub optional: bool,
}

/// Errors of checking the layout's tools.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A required program is missing on the build host.
    #[error(
        "the saved layout needs {program} ({why}), which is not installed: install the package {package}"
    )]
    Missing {
        /// The program.
        program: String,
        /// The package.
        package: String,
        /// What needs it.
        why: String,
    },
}

/// The programs needed to recreate `layout`, sorted, without duplicates.
pub fn needs(layout: &Layout) -> Vec<Need> {
    let mut v = Vec::new();
    let mut need = |program, package, why: String| {
        v.push(Need {
            program,
            package,
            why,
            optional: false,
        })
    };
    for d in &layout.disks {
        need("wipefs", "util-linux", format!("disk {}", d.device));
        if d.table.is_some() {
            need(
                "sfdisk",
                "fdisk",
                format!("partition table of {}", d.device),
            );
        }
    }
    need("blkid", "util-linux", "finding the rescue media".into());
    need(
        "mount",
        "mount",
        "mounting the recreated file systems".into(),
    );
    for m in &layout.md {
        need("mdadm", "mdadm", format!("RAID {}", m.device));
    }
    for vg in &layout.lvm {
        need("lvm", "lvm2", format!("volume group {}", vg.name));
        if vg
            .lvs
            .iter()
            .any(|lv| matches!(lv.kind, LvKind::ThinPool { .. }))
        {
            // LVM runs thin_check when it activates a thin pool.
            need(
                "thin_check",
                "thin-provisioning-tools",
                format!("thin pool in {}", vg.name),
            );
        }
    }
    for l in &layout.luks {
        need(
            "cryptsetup",
            "cryptsetup-bin",
            format!("LUKS on {}", l.device),
        );
    }
    for f in &layout.filesystems {
        let why = format!("{} on {}", f.fstype.as_str(), f.device);
        match f.fstype {
            FsType::Ext2 => need("mkfs.ext2", "e2fsprogs", why),
            FsType::Ext3 => need("mkfs.ext3", "e2fsprogs", why),
            FsType::Ext4 => need("mkfs.ext4", "e2fsprogs", why),
            FsType::Xfs => need("mkfs.xfs", "xfsprogs", why),
            FsType::Btrfs => {
                need("mkfs.btrfs", "btrfs-progs", why.clone());
                if !f.options.subvolumes.is_empty() {
                    need("btrfs", "btrfs-progs", why.clone());
                }
                if f.options.subvolumes.iter().any(|s| s.nodatacow) {
                    need("chattr", "e2fsprogs", why);
                }
            }
            FsType::Vfat => need("mkfs.vfat", "dosfstools", why),
        }
    }
    for s in &layout.swap {
        need("mkswap", "util-linux", format!("swap on {}", s.device));
    }
    let boot = match layout.boot_mode {
        super::model::BootMode::Uefi => "UEFI boot loader",
        super::model::BootMode::Bios => "BIOS boot loader",
    };
    v.push(Need {
        program: "grub-install",
        package: "grub2-common",
        why: boot.into(),
        optional: true,
    });
    if layout.boot_mode == super::model::BootMode::Uefi {
        v.push(Need {
            program: "efibootmgr",
            package: "efibootmgr",
            why: boot.into(),
            optional: true,
        });
    }
    v.sort();
    v.dedup_by(|a, b| a.program == b.program);
    v
}

/// Kernel modules for the layout's RAID levels, device-mapper targets, ciphers and file
/// systems. Optional: a kernel may have them built in.
pub fn modules(layout: &Layout) -> Vec<&'static str> {
    let mut m = Vec::new();
    for a in &layout.md {
        m.push("md_mod");
        m.push(match a.level.as_str() {
            "raid0" => "raid0",
            "raid1" => "raid1",
            "raid10" => "raid10",
            _ => "raid456",
        });
    }
    if !layout.lvm.is_empty() || !layout.luks.is_empty() {
        m.push("dm_mod");
    }
    for vg in &layout.lvm {
        for lv in &vg.lvs {
            match lv.kind {
                LvKind::ThinPool { .. } | LvKind::Thin { .. } => m.push("dm_thin_pool"),
                LvKind::Raid { .. } => m.push("dm_raid"),
                _ => {}
            }
        }
    }
    if !layout.luks.is_empty() {
        m.extend(["dm_crypt", "xts", "aes", "sha256", "algif_skcipher"]);
    }
    for f in &layout.filesystems {
        match f.fstype {
            FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => m.push("ext4"),
            FsType::Xfs => m.push("xfs"),
            FsType::Btrfs => m.push("btrfs"),
            // Default mount options of a FAT ESP name these code pages.
            FsType::Vfat => m.extend(["vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1"]),
        }
    }
    m.sort();
    m.dedup();
    m
}

/// Checks that the build host has every required program and returns the recipe that puts
/// them and the modules into the image; `origin` names the layout in messages.
pub fn recipe(sys: &Sysroot, layout: &Layout, origin: &str) -> Result<Recipe, Error> {
    let needs = needs(layout);
    for n in needs.iter().filter(|n| !n.optional) {
        if sys.which_on_path(n.program).is_none() {
            return Err(Error::Missing {
                program: n.program.to_string(),
                package: n.package.to_string(),
                why: n.why.clone(),
            });
        }
    }
    let item = |name: &str, optional: bool| {
        if optional {
            Item::Table {
                name: name.to_string(),
                optional: true,
            }
        } else {
            Item::Name(name.to_string())
        }
    };
    Ok(Recipe {
        name: "layout".into(),
        origin: format!("layout {origin}"),
        file: RecipeFile {
            description: "tools and modules to recreate the saved disk layout".into(),
            programs: needs.iter().map(|n| item(n.program, n.optional)).collect(),
            modules: modules(layout).into_iter().map(|m| item(m, true)).collect(),
            ..RecipeFile::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::layout::model::*;

    fn layout() -> Layout {
        Layout {
            version: LAYOUT_VERSION,
            boot_mode: BootMode::Uefi,
            disks: vec![Disk {
                device: "/dev/sda".into(),
                table: Some(PartitionTable::default()),
                ..Disk::default()
            }],
            md: vec![MdArray {
                device: "/dev/md0".into(),
                level: "raid1".into(),
                ..MdArray::default()
            }],
            lvm: vec![VolumeGroup {
                name: "vg0".into(),
                lvs: vec![LogicalVolume {
                    name: "pool".into(),
                    kind: LvKind::ThinPool {
                        chunk_size: 65536,
                        metadata_size: 4 << 20,
                    },
                    ..LogicalVolume::default()
                }],
                ..VolumeGroup::default()
            }],
            filesystems: vec![Filesystem {
                device: "/dev/vg0/root".into(),
                fstype: FsType::Xfs,
                uuid: "u".into(),
                label: String::new(),
                options: FsOptions::default(),
            }],
            ..Layout::default()
        }
    }

    #[test]
    fn needs_follow_the_layout() {
        let names: Vec<&str> = needs(&layout()).iter().map(|n| n.program).collect();
        assert_eq!(
            names,
            [
                "blkid",
                "efibootmgr",
                "grub-install",
                "lvm",
                "mdadm",
                "mkfs.xfs",
                "mount",
                "sfdisk",
                "thin_check",
                "wipefs"
            ]
        );
        assert_eq!(
            modules(&layout()),
            ["dm_mod", "dm_thin_pool", "md_mod", "raid1", "xfs"]
        );
    }

    #[test]
    fn recipe_names_missing_tool_and_package() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(tmp.path()).unwrap();
        let e = recipe(&sys, &layout(), "/etc/rear/layout.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the saved layout needs blkid (finding the rescue media), which is not installed: install the package util-linux"
        );
    }
}
