//! `layout check`: the differences between two layouts, in words.
//!
//! Stage: presentation (rear-mkimage `layout check` compares the saved layout with a fresh
//! capture; a difference means the rescue media are out of date). Input: two layouts.
//! Output: one sentence per difference, empty when equal; in a stable order (fields by name,
//! list elements in the old layout's order, then the added ones).
//!
//! Every field is compared, through the layout's own JSON form, so a field added to the
//! model is compared without a change here; only `version` is left out. Lists of things with
//! a name (disks by device, partitions by number, LVs by name, mounts by target, …) are
//! matched by that name, so one added partition is one line, not a shift of every line after
//! it. Other lists (RAID members, ext features) are compared whole, since their order can
//! matter (RAID slots).

use serde_json::Value;

use super::model::Layout;

/// For a list field: what one element is called and the field that names it.
fn keyed(field: &str) -> Option<(&'static str, &'static str)> {
    Some(match field {
        "disks" => ("disk", "device"),
        "partitions" => ("partition", "number"),
        "md" => ("md array", "device"),
        "lvm" => ("volume group", "name"),
        "pvs" => ("PV", "device"),
        "lvs" => ("LV", "name"),
        "luks" => ("LUKS", "device"),
        "filesystems" => ("file system", "device"),
        "subvolumes" => ("subvolume", "path"),
        "swap" => ("swap", "device"),
        "mounts" => ("mount", "target"),
        "excluded" => ("excluded", "what"),
        _ => return None,
    })
}

/// A value in a message: strings bare, lists comma-separated, nothing as `(none)`.
fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(none)".into(),
        Some(Value::String(s)) if s.is_empty() => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.is_empty() => "(none)".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| show(Some(x)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(v) => v.to_string(),
    }
}

fn join(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_string()
    } else {
        format!("{path} {part}")
    }
}

fn key_text(v: &Value, key: &str) -> String {
    show(v.get(key))
}

fn diff_value(
    path: &str,
    field: &str,
    a: Option<&Value>,
    b: Option<&Value>,
    out: &mut Vec<String>,
) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            // serde_json's map is sorted by key: the messages come in a stable order.
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff_value(&join(path, k), k, x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if keyed(field).is_some() => {
            let Some((what, key)) = keyed(field) else {
                return;
            };
            // The list's own field name is replaced by the element names.
            let base = path.strip_suffix(field).unwrap_or(path).trim_end();
            for old in x {
                let k = key_text(old, key);
                let label = join(base, &format!("{what} {k}"));
                match y.iter().find(|n| n.get(key) == old.get(key)) {
                    Some(new) => diff_value(&label, "", Some(old), Some(new), out),
                    None => out.push(format!("{label}: removed")),
                }
            }
            for new in y {
                if !x.iter().any(|o| o.get(key) == new.get(key)) {
                    let k = key_text(new, key);
                    out.push(format!("{}: added", join(base, &format!("{what} {k}"))));
                }
            }
        }
        (a, b) => {
            let same = match (a, b) {
                (None | Some(Value::Null), None | Some(Value::Null)) => true,
                _ => show(a) == show(b) && a.map(Value::is_array) == b.map(Value::is_array),
            };
            if !same && a != b {
                out.push(format!("{path}: {} → {}", show(a), show(b)));
            }
        }
    }
}

/// The differences from `old` to `new`, one sentence each (`disk /dev/sda partition 2
/// size: 204800 → 409600`); empty when the layouts are equal.
pub fn diff(old: &Layout, new: &Layout) -> Vec<String> {
    let to_value = |l: &Layout| -> Value {
        let mut v = serde_json::from_str::<Value>(&l.to_json()).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("version");
        }
        v
    };
    let mut out = Vec::new();
    diff_value("", "", Some(&to_value(old)), Some(&to_value(new)), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::layout::model::{LvKind, Subvolume};

    use crate::testutil::assembled as fixture;

    #[test]
    fn diff_equal_is_empty() {
        let l = fixture("raid1-lvm-xfs");
        assert!(diff(&l, &l.clone()).is_empty());
    }

    #[test]
    fn diff_partition_size_added_and_removed() {
        let old = fixture("gpt-esp-ext4");
        let mut new = old.clone();
        let t = new.disks[0].table.as_mut().unwrap();
        t.partitions[3].size = 1000;
        t.partitions.remove(0);
        let mut extra = t.partitions[0].clone();
        extra.number = 9;
        extra.device = "/dev/vda9".into();
        t.partitions.push(extra);
        assert_eq!(
            diff(&old, &new),
            [
                "disk /dev/vda table partition 1: removed",
                "disk /dev/vda table partition 4 size: 1624064 → 1000",
                "disk /dev/vda table partition 9: added",
            ]
        );
    }

    #[test]
    fn diff_lvm_md_luks_fs_and_mounts() {
        let old = fixture("raid1-lvm-xfs");
        let mut new = old.clone();
        new.md[0].members.reverse();
        new.lvm[0].lvs[0].kind = LvKind::ThinPool {
            chunk_size: 65536,
            metadata_size: 8 << 20,
        };
        new.lvm[0].lvs.retain(|l| l.name != "swap");
        new.filesystems[1].label = String::new();
        new.mounts[1].options = "rw".into();
        assert_eq!(
            diff(&old, &new),
            [
                "file system /dev/mapper/vg0-root label: root → (none)",
                "volume group vg0 LV pool kind chunk_size: 131072 → 65536",
                "volume group vg0 LV swap: removed",
                "md array /dev/md0 members: /dev/vda2, /dev/vdb2 → /dev/vdb2, /dev/vda2",
                "mount /srv options: rw,noatime,stripe=128 → rw",
            ]
        );
        let old = fixture("luks2-lvm-ext4");
        let mut new = old.clone();
        new.luks[0].cipher = "aes-cbc-essiv:sha256".into();
        new.boot_mode = rear_model::layout::model::BootMode::Uefi;
        assert_eq!(
            diff(&old, &new),
            [
                "boot_mode: bios → uefi",
                "LUKS /dev/vda3 cipher: aes-xts-plain64 → aes-cbc-essiv:sha256"
            ]
        );
    }

    #[test]
    fn diff_btrfs_subvolume_nodatacow_and_new_one() {
        let old = fixture("btrfs-subvolumes");
        let mut new = old.clone();
        let o = &mut new.filesystems[1].options;
        o.subvolumes[0].nodatacow = true;
        o.subvolumes.push(Subvolume {
            path: "@snapshots".into(),
            nodatacow: false,
        });
        assert_eq!(
            diff(&old, &new),
            [
                "file system /dev/vda2 options subvolume @ nodatacow: (none) → true",
                "file system /dev/vda2 options subvolume @snapshots: added",
            ]
        );
    }
}
