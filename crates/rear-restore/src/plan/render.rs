//! The plan for people: `rear-restore layout plan` prints it, `layout apply` shows it
//! before it asks.

use super::*;

impl Plan {
    /// The plan for people: disk matches, then numbered steps.
    pub fn render(&self) -> String {
        let mut s = format!("Layout of {}:\n", self.hostname);
        for m in &self.disks {
            s.push_str(&format!(
                "  {} ({}) -> {} ({}), matched by {}\n",
                m.old,
                human(m.old_size),
                m.new,
                human(m.new_size),
                match m.by {
                    MatchedBy::Mapping => "mapping file",
                    MatchedBy::Serial => "serial",
                    MatchedBy::Wwn => "WWN",
                    MatchedBy::ById => "by-id name",
                    MatchedBy::NameAndSize => "name and size",
                    MatchedBy::Size => "size",
                    MatchedBy::Fits => "the only disk with room",
                }
            ));
        }
        s.push_str("Steps:\n");
        for (i, step) in self.steps.iter().enumerate() {
            s.push_str(&format!("  {:>2}. {}\n", i + 1, step.describe()));
        }
        s
    }

    /// Every device the plan overwrites: the target disks and their partitions.
    pub fn target_disks(&self) -> BTreeSet<&str> {
        self.disks.iter().map(|m| m.new.as_str()).collect()
    }
}

impl Step {
    /// One line for people.
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Wipe { disk } => format!("wipe all signatures on {disk}"),
            Action::Partition { disk, table, .. } => {
                let parts: Vec<String> = table
                    .partitions
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}",
                            p.number,
                            human(p.size_bytes)
                                + &match rear_model::layout::model::describe_type(&p.type_) {
                                    "" => String::new(),
                                    t => format!(" {t}"),
                                }
                        )
                    })
                    .collect();
                format!(
                    "{} partition table on {disk}: {}",
                    match table.kind {
                        TableKind::Gpt => "GPT",
                        TableKind::Dos => "MBR",
                    },
                    parts.join("; ")
                )
            }
            Action::Md { array } => format!(
                "md {} {} over {}",
                array.device,
                array.level,
                array.members.join(" ")
            ),
            Action::Luks { luks } => format!(
                "LUKS{} on {} ({}, {} bits), open as {}",
                luks.version, luks.device, luks.cipher, luks.key_size, luks.name
            ),
            Action::Pv { device, .. } => format!("LVM physical volume on {device}"),
            Action::Vg { name, pvs, .. } => {
                format!("volume group {name} on {}", pvs.join(" "))
            }
            Action::Lv { vg, lv } => format!(
                "logical volume {vg}/{} {} ({})",
                lv.name,
                human(lv.size),
                match &lv.kind {
                    rear_model::layout::model::LvKind::Linear => "linear".to_string(),
                    rear_model::layout::model::LvKind::Striped { stripes, .. } =>
                        format!("{stripes} stripes"),
                    rear_model::layout::model::LvKind::Raid { level, .. } => level.clone(),
                    rear_model::layout::model::LvKind::ThinPool { .. } => "thin pool".to_string(),
                    rear_model::layout::model::LvKind::Thin { pool } => format!("thin in {pool}"),
                }
            ),
            Action::Mkfs { fs } => format!(
                "{} on {} (UUID {}{})",
                fs.fstype.as_str(),
                fs.device,
                fs.uuid,
                if fs.label.is_empty() {
                    String::new()
                } else {
                    format!(", label {}", fs.label)
                }
            ),
            Action::Mkswap { swap } => format!("swap on {} (UUID {})", swap.device, swap.uuid),
            Action::Subvolumes {
                device,
                subvolumes,
                default,
            } => format!(
                "btrfs subvolumes on {device}: {}{}",
                subvolumes
                    .iter()
                    .map(|s| s.path.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                if default.is_empty() {
                    String::new()
                } else {
                    format!(" (default {default})")
                }
            ),
            Action::Mount {
                device,
                target,
                subvolume,
                ..
            } => format!(
                "mount {device}{} on {MOUNT_ROOT}{}",
                if subvolume.is_empty() {
                    String::new()
                } else {
                    format!(" subvolume {subvolume}")
                },
                if target == "/" { "" } else { target }
            ),
        }
    }
}
