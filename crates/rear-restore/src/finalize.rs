//! `rear-restore finalize`: make the restored tree at `/mnt/local` boot on this machine.
//!
//! Input: the saved [`Layout`], the [`Plan`] that recreated it (its renames say which device
//! names changed) and the restored tree. Output: `/etc/fstab` and `/etc/crypttab` with the new
//! device names (the originals kept as `*.rear-orig`), the target's initramfs rebuilt with its
//! own tool, GRUB reinstalled for the boot mode (EFI into the ESP with a boot entry made by
//! efibootmgr; BIOS on every disk with a BIOS boot partition or a bootable MBR partition) and
//! its configuration regenerated, and the recovery log copied into the restored system.
//!
//! UUIDs need no rewriting: `layout apply` recreates every file system, swap area, LUKS header
//! and md array with its saved UUID. Device names do change (`sda` -> `nvme0n1`).
//!
//! Everything that runs inside the target runs through `chroot` with `/proc`, `/sys`, `/dev`
//! and `/run` bind-mounted, so the target's own tools (its GRUB, its initramfs generator) do
//! the work, as on the original system.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plan::Plan;
use rear_model::layout::model::{BootMode, PartFlag, TableKind};
use rear_sys::exec;
use rear_sys::layout::Layout;

/// Errors of finalize.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command failed.
    #[error("{what}: {error}")]
    Command {
        /// What finalize was doing.
        what: String,
        /// The failure.
        error: exec::Error,
    },
    /// A file of the target could not be read or written.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// The restored tree has no initramfs tool this program knows.
    #[error(
        "{root} has none of update-initramfs, dracut, mkinitcpio: cannot rebuild its initramfs"
    )]
    NoInitramfsTool {
        /// The target root.
        root: String,
    },
    /// The boot mode needs GRUB and the target has no grub-install.
    #[error("{root} has no grub-install (or grub2-install): cannot make it boot")]
    NoGrub {
        /// The target root.
        root: String,
    },
}

/// Replaces whole device names in a table file (`fstab`, `crypttab`): a word equal to an old
/// name becomes the new one; comments and other words stay. Returns `None` when nothing
/// changed.
pub fn rewrite_table(text: &str, renames: &BTreeMap<String, String>) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while !rest.is_empty() {
            // Copy the whitespace, then one word, replacing it when it is an old device.
            let ws = rest.len() - rest.trim_start().len();
            out.push_str(&rest[..ws]);
            rest = &rest[ws..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            match renames.get(word) {
                Some(new) if new != word => {
                    out.push_str(new);
                    changed = true;
                }
                _ => out.push_str(word),
            }
            rest = &rest[end..];
        }
    }
    changed.then_some(out)
}

/// Where GRUB goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPlan {
    /// UEFI: the ESP's mount point inside the target (`/boot/efi`) and its disk and partition
    /// number for the boot entry.
    pub efi: Option<(String, String, u32)>,
    /// BIOS: the disks to install the boot code on.
    pub bios: Vec<String>,
}

/// Decides where GRUB goes from the saved layout, renamed by the plan.
pub fn boot_plan(layout: &Layout, plan: &Plan) -> BootPlan {
    let rename = |d: &str| {
        plan.renames
            .get(d)
            .cloned()
            .unwrap_or_else(|| d.to_string())
    };
    let mut efi = None;
    if layout.boot_mode == BootMode::Uefi {
        for d in &layout.disks {
            for p in d.table.iter().flat_map(|t| &t.partitions) {
                if !p.flags.contains(&PartFlag::Esp) {
                    continue;
                }
                let mounted = layout
                    .mounts
                    .iter()
                    .find(|m| m.device == p.device)
                    .map(|m| m.target.clone());
                if let (Some(target), None) = (mounted, &efi) {
                    efi = Some((target, rename(&d.device), p.number));
                }
            }
        }
    }
    let mut bios = Vec::new();
    for d in &layout.disks {
        let Some(t) = &d.table else { continue };
        let wants = match t.kind {
            TableKind::Gpt => t
                .partitions
                .iter()
                .any(|p| p.flags.contains(&PartFlag::BiosGrub)),
            TableKind::Dos => {
                layout.boot_mode == BootMode::Bios
                    && t.partitions
                        .iter()
                        .any(|p| p.flags.contains(&PartFlag::Boot))
            }
        };
        if wants {
            bios.push(rename(&d.device));
        }
    }
    BootPlan { efi, bios }
}

/// Runs finalize on the tree at `root`. `log` is the recovery log to copy into it.
pub fn finalize(layout: &Layout, plan: &Plan, root: &Path, log: &Path) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| Error::Io { path, error }
    };
    for table in ["etc/fstab", "etc/crypttab"] {
        let path = root.join(table);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Some(new) = rewrite_table(&text, &plan.renames) {
            let orig = root.join(format!("{table}.rear-orig"));
            std::fs::write(&orig, &text).map_err(io(&orig))?;
            rear_sys::atomic::write(&path, new.as_bytes(), 0o644).map_err(io(&path))?;
            log::info!("finalize: rewrote /{table} (old one in /{table}.rear-orig)");
        }
    }
    let binds = Binds::mount(root)?;
    let result = inside(layout, plan, root);
    drop(binds);
    result?;
    let dir = root.join("var/log/rear");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let copy = dir.join("recover.log");
    if log.exists() {
        std::fs::copy(log, &copy).map_err(io(&copy))?;
    }
    Ok(())
}

/// The steps that run in the chroot.
fn inside(layout: &Layout, plan: &Plan, root: &Path) -> Result<(), Error> {
    let has = |p: &str| root.join(p.trim_start_matches('/')).exists();
    let find = |names: &[&str]| -> Option<String> {
        names
            .iter()
            .flat_map(|n| {
                ["usr/sbin", "usr/bin", "sbin", "bin"]
                    .iter()
                    .map(move |d| format!("/{d}/{n}"))
            })
            .find(|p| has(p))
    };
    let run = |what: &str, argv: &[&str]| -> Result<(), Error> {
        log::info!("finalize: {what}");
        let mut c = Command::new("chroot");
        c.arg(root).args(argv);
        exec::run(&mut c, Some("coreutils"))
            .map(|_| ())
            .map_err(|error| Error::Command {
                what: what.to_string(),
                error,
            })
    };
    let root_s = root.display().to_string();
    // The initramfs must find the recreated root (new disk driver, md, LVM, LUKS names).
    if let Some(tool) = find(&["update-initramfs"]) {
        run("rebuilding the initramfs", &[&tool, "-u", "-k", "all"])?;
    } else if let Some(tool) = find(&["dracut"]) {
        run(
            "rebuilding the initramfs",
            &[&tool, "--force", "--regenerate-all"],
        )?;
    } else if let Some(tool) = find(&["mkinitcpio"]) {
        run("rebuilding the initramfs", &[&tool, "-P"])?;
    } else {
        return Err(Error::NoInitramfsTool { root: root_s });
    }
    let boot = boot_plan(layout, plan);
    if boot.efi.is_none() && boot.bios.is_empty() {
        log::warn!(
            "finalize: the layout has no ESP and no BIOS boot partition; GRUB not installed"
        );
        return Ok(());
    }
    let grub = find(&["grub-install", "grub2-install"]).ok_or(Error::NoGrub {
        root: root_s.clone(),
    })?;
    if let Some((esp, disk, part)) = &boot.efi {
        if has("usr/lib/grub/x86_64-efi") {
            let dir = format!("--efi-directory={esp}");
            run(
                "installing GRUB for UEFI",
                &[
                    &grub,
                    "--target=x86_64-efi",
                    &dir,
                    "--no-nvram",
                    "--recheck",
                ],
            )?;
            // Firmware without a boot entry (a new board, a cleared NVRAM) still finds the
            // removable-media path.
            run(
                "installing GRUB for UEFI (removable path)",
                &[
                    &grub,
                    "--target=x86_64-efi",
                    &dir,
                    "--removable",
                    "--no-nvram",
                ],
            )?;
            efi_boot_entry(root, esp, disk, *part)?;
        } else {
            log::warn!("finalize: {root_s} has no GRUB EFI modules (/usr/lib/grub/x86_64-efi)");
        }
    }
    for disk in &boot.bios {
        if has("usr/lib/grub/i386-pc") {
            run(
                &format!("installing GRUB for BIOS on {disk}"),
                &[&grub, "--target=i386-pc", "--recheck", disk],
            )?;
        } else if layout.boot_mode == BootMode::Bios {
            return Err(Error::NoGrub { root: root_s });
        }
    }
    if let Some(tool) = find(&["update-grub"]) {
        run("writing the GRUB configuration", &[&tool])?;
    } else if let Some(tool) = find(&["grub-mkconfig", "grub2-mkconfig"]) {
        let cfg = if has("boot/grub2") {
            "/boot/grub2/grub.cfg"
        } else {
            "/boot/grub/grub.cfg"
        };
        run("writing the GRUB configuration", &[&tool, "-o", cfg])?;
    }
    Ok(())
}

/// Makes the firmware boot entry for the target's GRUB, when the rescue system runs on UEFI
/// with writable variables. Without them (BIOS rescue boot) there is nothing to write and
/// the removable path serves.
fn efi_boot_entry(root: &Path, esp: &str, disk: &str, part: u32) -> Result<(), Error> {
    if !Path::new("/sys/firmware/efi/efivars").exists() {
        log::warn!(
            "finalize: no EFI variables (rescue system not booted by UEFI): no boot entry made"
        );
        return Ok(());
    }
    let efi_dir = root.join(esp.trim_start_matches('/')).join("EFI");
    // The distribution's directory (debian, ubuntu, fedora, ...): not the removable BOOT one.
    let vendor = std::fs::read_dir(&efi_dir)
        .map_err(|error| Error::Io {
            path: efi_dir.clone(),
            error,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.eq_ignore_ascii_case("BOOT"))
        .min();
    let Some(vendor) = vendor else {
        return Ok(());
    };
    let loader = ["shimx64.efi", "grubx64.efi"]
        .iter()
        .find(|f| efi_dir.join(&vendor).join(f).exists())
        .copied()
        .unwrap_or("grubx64.efi");
    let loader = format!("\\EFI\\{vendor}\\{loader}");
    let part = part.to_string();
    // sysfs does not mount efivarfs by itself; already mounted is fine.
    let _ = nix::mount::mount(
        Some("efivarfs"),
        "/sys/firmware/efi/efivars",
        Some("efivarfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    let mut c = Command::new("efibootmgr");
    c.args([
        "--create", "--disk", disk, "--part", &part, "--label", &vendor, "--loader", &loader,
    ]);
    match exec::run(&mut c, Some("efibootmgr")) {
        Ok(_) => Ok(()),
        // The removable path installed above boots without an entry.
        Err(exec::Error::ToolMissing { .. }) => {
            log::warn!(
                "finalize: efibootmgr is not in the rescue system: no boot entry made (the removable path boots)"
            );
            Ok(())
        }
        Err(error) => Err(Error::Command {
            what: "creating the EFI boot entry".into(),
            error,
        }),
    }
}

/// `/proc`, `/sys`, `/dev`, `/run` (and efivarfs) bind-mounted into the target; unmounted
/// in reverse order on drop.
struct Binds {
    mounted: Vec<PathBuf>,
}

impl Binds {
    fn mount(root: &Path) -> Result<Binds, Error> {
        use nix::mount::{MsFlags, mount};
        let mut b = Binds {
            mounted: Vec::new(),
        };
        for dir in ["proc", "sys", "dev", "run"] {
            let target = root.join(dir);
            std::fs::create_dir_all(&target).map_err(|error| Error::Io {
                path: target.clone(),
                error,
            })?;
            mount(
                Some(Path::new("/").join(dir).as_path()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| Error::Io {
                path: target.clone(),
                error: e.into(),
            })?;
            b.mounted.push(target);
        }
        Ok(b)
    }
}

impl Drop for Binds {
    fn drop(&mut self) {
        use nix::mount::{MntFlags, umount2};
        for target in self.mounted.iter().rev() {
            // MNT_DETACH: the recursive binds (dev/pts, sys/firmware/efi/efivars) go too.
            if let Err(e) = umount2(target, MntFlags::MNT_DETACH) {
                log::warn!("finalize: unmounting {}: {e}", target.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DiskMatch, MatchedBy};
    use rear_model::layout::model::{Disk, Mount, Partition, PartitionTable};

    fn renames() -> BTreeMap<String, String> {
        [
            ("/dev/sda1", "/dev/nvme0n1p1"),
            ("/dev/sda", "/dev/nvme0n1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn rewrite_table_replaces_whole_device_words_only() {
        let fstab = "# /dev/sda1 was the root\nUUID=abc / ext4 defaults 0 1\n/dev/sda1\t/boot/efi vfat umask=0077 0 1\n/dev/sda10 /srv ext4 defaults 0 2\n";
        let new = rewrite_table(fstab, &renames()).unwrap();
        assert_eq!(
            new,
            "# /dev/sda1 was the root\nUUID=abc / ext4 defaults 0 1\n/dev/nvme0n1p1\t/boot/efi vfat umask=0077 0 1\n/dev/sda10 /srv ext4 defaults 0 2\n"
        );
        assert_eq!(
            rewrite_table("UUID=abc / ext4 defaults 0 1\n", &renames()),
            None
        );
        let crypttab = "cryptroot /dev/sda1 none luks,discard\n";
        assert_eq!(
            rewrite_table(crypttab, &renames()).unwrap(),
            "cryptroot /dev/nvme0n1p1 none luks,discard\n"
        );
    }

    #[test]
    fn boot_plan_efi_and_bios_disks() {
        let part = |n: u32, flags: Vec<PartFlag>| Partition {
            device: format!("/dev/sda{n}"),
            number: n,
            flags,
            ..Partition::default()
        };
        let layout = Layout {
            boot_mode: BootMode::Uefi,
            disks: vec![Disk {
                device: "/dev/sda".into(),
                table: Some(PartitionTable {
                    kind: TableKind::Gpt,
                    partitions: vec![
                        part(1, vec![PartFlag::BiosGrub]),
                        part(2, vec![PartFlag::Esp]),
                    ],
                    ..PartitionTable::default()
                }),
                ..Disk::default()
            }],
            mounts: vec![Mount {
                device: "/dev/sda2".into(),
                target: "/boot/efi".into(),
                ..Mount::default()
            }],
            ..Layout::default()
        };
        let plan = Plan {
            hostname: "h".into(),
            disks: vec![DiskMatch {
                old: "/dev/sda".into(),
                new: "/dev/vda".into(),
                by: MatchedBy::Size,
                old_size: 1,
                new_size: 1,
            }],
            renames: [("/dev/sda".to_string(), "/dev/vda".to_string())].into(),
            steps: vec![],
        };
        assert_eq!(
            boot_plan(&layout, &plan),
            BootPlan {
                efi: Some(("/boot/efi".into(), "/dev/vda".into(), 2)),
                bios: vec!["/dev/vda".into()],
            }
        );
        let mut bios = layout.clone();
        bios.boot_mode = BootMode::Bios;
        assert_eq!(boot_plan(&bios, &plan).efi, None);
    }
}
