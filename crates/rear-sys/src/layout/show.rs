//! `layout show`: a [`Layout`] as a tree for people.
//!
//! Stage: presentation (rear-mkimage `layout show`, rear-restore before `layout apply`).
//! Input: a layout. Output: text, one device a line, children indented under their parent:
//! disk → partitions → md array / LUKS container / LVM PV → VG → LVs, each line with its
//! size (binary units) and what is on it (file system, label, mount point, swap). A device
//! with several parents (an md array on two partitions, a VG on two PVs) is drawn under the
//! first and referred to under the others.

use rear_model::units::human;
use std::collections::BTreeSet;
use std::fmt::Write;

use super::model::{Layout, LvKind, describe_type};

/// The device-mapper path of an LV (`-` in names doubled, as device-mapper does).
pub fn lv_path(vg: &str, lv: &str) -> String {
    format!(
        "/dev/mapper/{}-{}",
        vg.replace('-', "--"),
        lv.replace('-', "--")
    )
}

struct Node {
    text: String,
    children: Vec<Node>,
}

struct Ctx<'a> {
    l: &'a Layout,
    drawn: BTreeSet<String>,
}

impl Ctx<'_> {
    /// What is on `dev` itself: file system or swap, with its mounts.
    fn content(&self, dev: &str) -> String {
        let mut s = String::new();
        if let Some(f) = self.l.filesystem(dev) {
            let _ = write!(s, "  {}", f.fstype.as_str());
            if !f.label.is_empty() {
                let _ = write!(s, " \"{}\"", f.label);
            }
            let mounts: Vec<String> = self
                .l
                .mounts
                .iter()
                .filter(|m| m.device == dev)
                .map(|m| {
                    if m.subvolume.is_empty() {
                        m.target.clone()
                    } else {
                        format!("{} [{}]", m.target, m.subvolume)
                    }
                })
                .collect();
            if !mounts.is_empty() {
                let _ = write!(s, " on {}", mounts.join(", "));
            }
        }
        if let Some(sw) = self.l.swap.iter().find(|s| s.device == dev) {
            s.push_str("  swap");
            if !sw.label.is_empty() {
                let _ = write!(s, " \"{}\"", sw.label);
            }
        }
        s
    }

    /// The devices built on `dev`: md arrays, LUKS, VGs.
    fn above(&mut self, dev: &str) -> Vec<Node> {
        let mut out = Vec::new();
        let l = self.l;
        for md in
            l.md.iter()
                .filter(|m| m.members.iter().chain(&m.spares).any(|x| x == dev))
        {
            if !self.drawn.insert(md.device.clone()) {
                out.push(Node {
                    text: format!("{} (above)", md.device),
                    children: Vec::new(),
                });
                continue;
            }
            let size = l
                .lvm
                .iter()
                .flat_map(|v| &v.pvs)
                .find(|p| p.device == md.device)
                .map(|p| format!("  {}", human(p.size)))
                .unwrap_or_default();
            let children = self.above(&md.device);
            out.push(Node {
                text: format!(
                    "{}{size}  {} ({} devices, metadata {}){}",
                    md.device,
                    md.level,
                    md.raid_devices,
                    md.metadata,
                    self.content(&md.device)
                ),
                children,
            });
        }
        for lk in l.luks.iter().filter(|x| x.device == dev) {
            let mapped = format!("/dev/mapper/{}", lk.name);
            let label = if lk.label.is_empty() {
                String::new()
            } else {
                format!(" \"{}\"", lk.label)
            };
            let mut children = self.above(&mapped);
            let content = self.content(&mapped);
            let mut text = format!(
                "{mapped}  LUKS{} {} {} bits{label}{content}",
                lk.version, lk.cipher, lk.key_size
            );
            if children.is_empty() && content.is_empty() {
                text.push_str("  (empty)");
            }
            out.push(Node {
                text,
                children: std::mem::take(&mut children),
            });
        }
        for vg in l
            .lvm
            .iter()
            .filter(|v| v.pvs.iter().any(|p| p.device == dev))
        {
            let key = format!("vg:{}", vg.name);
            if !self.drawn.insert(key) {
                out.push(Node {
                    text: format!("VG {} (above)", vg.name),
                    children: Vec::new(),
                });
                continue;
            }
            let total: u64 = vg.pvs.iter().map(|p| p.size).sum();
            let mut lvs = Vec::new();
            for lv in &vg.lvs {
                let path = lv_path(&vg.name, &lv.name);
                let kind = match &lv.kind {
                    LvKind::Linear => "linear".to_string(),
                    LvKind::Striped { stripes, .. } => format!("striped x{stripes}"),
                    LvKind::Raid { level, .. } => level.clone(),
                    LvKind::ThinPool {
                        chunk_size,
                        metadata_size,
                    } => format!(
                        "thin pool, chunk {}, metadata {}",
                        human(*chunk_size),
                        human(*metadata_size)
                    ),
                    LvKind::Thin { pool } => format!("thin in {pool}"),
                };
                let children = self.above(&path);
                lvs.push(Node {
                    text: format!("{path}  {}  {kind}{}", human(lv.size), self.content(&path)),
                    children,
                });
            }
            out.push(Node {
                text: format!(
                    "VG {}  {}  extent {}",
                    vg.name,
                    human(total),
                    human(vg.extent_size)
                ),
                children: lvs,
            });
        }
        out
    }
}

fn draw(nodes: &[Node], prefix: &str, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let _ = writeln!(
            out,
            "{prefix}{}{}",
            if last { "└─ " } else { "├─ " },
            n.text
        );
        let next = format!("{prefix}{}", if last { "   " } else { "│  " });
        draw(&n.children, &next, out);
    }
}

/// The layout as a tree, ending with what was excluded.
pub fn tree(layout: &Layout) -> String {
    let mut ctx = Ctx {
        l: layout,
        drawn: BTreeSet::new(),
    };
    let mut out = String::new();
    let mode = match layout.boot_mode {
        super::model::BootMode::Bios => "BIOS",
        super::model::BootMode::Uefi => "UEFI",
    };
    let _ = writeln!(out, "{} ({mode} boot)", layout.hostname);
    for d in &layout.disks {
        let mut id = Vec::new();
        for (k, v) in [
            ("", d.transport.as_str()),
            ("", d.model.as_str()),
            ("serial ", d.serial.as_str()),
        ] {
            if !v.is_empty() {
                id.push(format!("{k}{v}"));
            }
        }
        let table = match &d.table {
            Some(t) => format!("  {} {}", format!("{:?}", t.kind).to_lowercase(), t.id),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{}  {}  {}{table}{}",
            d.device,
            human(d.size),
            id.join(", "),
            ctx.content(&d.device)
        );
        let mut nodes = Vec::new();
        if let Some(t) = &d.table {
            for p in &t.partitions {
                let what = describe_type(&p.type_);
                let what = if what.is_empty() {
                    p.type_.as_str()
                } else {
                    what
                };
                let name = if p.name.is_empty() {
                    String::new()
                } else {
                    format!(" \"{}\"", p.name)
                };
                let children = ctx.above(&p.device);
                nodes.push(Node {
                    text: format!(
                        "{}  {}  {what}{name}{}",
                        p.device,
                        human(p.size_bytes),
                        ctx.content(&p.device)
                    ),
                    children,
                });
            }
        } else {
            nodes = ctx.above(&d.device);
        }
        draw(&nodes, "", &mut out);
    }
    for e in &layout.excluded {
        let _ = writeln!(out, "excluded: {} ({})", e.what, e.reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    use crate::testutil::assembled as fixture;

    #[test]
    fn human_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1 << 30), "1.0 GiB");
        assert_eq!(human(104857600), "100 MiB");
        assert_eq!(human(131072), "128 KiB");
    }

    #[test]
    fn lv_path_doubles_dashes() {
        assert_eq!(lv_path("vg-a", "my-root"), "/dev/mapper/vg--a-my--root");
    }

    #[test]
    fn tree_raid_lvm() {
        expect![[r#"
            fixture-raid1-lvm-xfs (BIOS boot)
            /dev/vda  1.0 GiB  serial RAIDDISK0001  gpt DE6BB0B8-1C69-CD45-8C51-AF242CE2F7E2
            ├─ /dev/vda1  1.0 MiB  BIOS boot "bios"
            └─ /dev/vda2  1021 MiB  Linux RAID "raid"
               └─ /dev/md0  1016 MiB  raid1 (2 devices, metadata 1.2)
                  └─ VG vg0  1016 MiB  extent 4.0 MiB
                     ├─ /dev/mapper/vg0-pool  192 MiB  thin pool, chunk 128 KiB, metadata 8.0 MiB
                     ├─ /dev/mapper/vg0-root  320 MiB  linear  xfs "root" on /
                     ├─ /dev/mapper/vg0-swap  64 MiB  linear  swap "swap0"
                     └─ /dev/mapper/vg0-data  256 MiB  thin in pool  ext4 "data" on /srv
            /dev/vdb  1.0 GiB  serial RAIDDISK0002  gpt E2E0136C-45A6-8C4C-93D9-DEFFC9DA01C8
            ├─ /dev/vdb1  1.0 MiB  BIOS boot "bios"
            └─ /dev/vdb2  1021 MiB  Linux RAID "raid"
               └─ /dev/md0 (above)
        "#]]
        .assert_eq(&tree(&fixture("raid1-lvm-xfs")));
    }

    #[test]
    fn tree_luks_and_btrfs() {
        expect![[r#"
            fixture-luks2-lvm-ext4 (BIOS boot)
            /dev/vda  1.0 GiB  serial LUKSDISK0001  gpt 6B3F1C2A-0D4E-4F5A-9B8C-1A2B3C4D5E04
            ├─ /dev/vda1  100 MiB  EFI System "EFI system"  vfat on /boot/efi
            ├─ /dev/vda2  256 MiB  Linux filesystem "boot"  ext4 "boot" on /boot
            └─ /dev/vda3  666 MiB  Linux LUKS "crypt"
               └─ /dev/mapper/cryptroot  LUKS2 aes-xts-plain64 512 bits "cryptroot"
                  └─ VG vgcrypt  648 MiB  extent 4.0 MiB
                     └─ /dev/mapper/vgcrypt-root  400 MiB  linear  ext4 "root" on /
        "#]]
        .assert_eq(&tree(&fixture("luks2-lvm-ext4")));
        expect![[r#"
            fixture-btrfs-subvolumes (BIOS boot)
            /dev/vda  1.0 GiB  serial BTRFSDISK0001  gpt 6B3F1C2A-0D4E-4F5A-9B8C-1A2B3C4D5E05
            ├─ /dev/vda1  100 MiB  EFI System "EFI system"  vfat on /boot/efi
            └─ /dev/vda2  922 MiB  Linux filesystem "root"  btrfs "btrroot" on / [@], /home [@home], /var/lib/db [@var_lib_db]
        "#]].assert_eq(&tree(&fixture("btrfs-subvolumes")));
        expect![[r#"
            fixture-mbr (BIOS boot)
            /dev/vda  1.0 GiB  serial MBRDISK0001  dos 0x5ec0a001
            ├─ /dev/vda1  256 MiB  Linux filesystem  ext4 "boot" on /boot
            ├─ /dev/vda2  767 MiB  Extended
            ├─ /dev/vda5  128 MiB  Linux swap  swap "swap0"
            └─ /dev/vda6  637 MiB  Linux filesystem  ext4 "root" on /
        "#]]
        .assert_eq(&tree(&fixture("mbr")));
    }
}
