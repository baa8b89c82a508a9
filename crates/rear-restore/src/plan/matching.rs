//! Which target disk takes which saved disk: the mapping file, then serial, WWN, by-id
//! name, name and size, size, and the only disk with room; ambiguity stops the plan.

use super::*;

/// Matches every saved disk to a target disk.
pub(super) fn match_disks(
    layout: &Layout,
    target: &[TargetDisk],
    mappings: &Mappings,
) -> Result<Vec<DiskMatch>, Error> {
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    // Mapped disks first, so that identity matching never takes a disk a mapping names.
    let mut mapped: BTreeMap<&str, &str> = BTreeMap::new();
    for (old, new) in &mappings.pairs {
        let Some(disk) = layout.disks.iter().find(|d| identifies(d, old)) else {
            return Err(Error::BadMapping {
                old: old.clone(),
                new: new.clone(),
                reason: "no saved disk has this name, by-id name, serial or WWN".into(),
            });
        };
        let Some(t) = target.iter().find(|t| &t.disk.device == new) else {
            return Err(Error::BadMapping {
                old: old.clone(),
                new: new.clone(),
                reason: format!(
                    "no such disk here (disks: {})",
                    target
                        .iter()
                        .map(|t| t.disk.device.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        if let Some(why) = &t.unavailable {
            return Err(Error::BadMapping {
                old: old.clone(),
                new: new.clone(),
                reason: format!("{new} must not be overwritten: {why}"),
            });
        }
        if needed_bytes(disk) > t.disk.size {
            return Err(Error::BadMapping {
                old: old.clone(),
                new: new.clone(),
                reason: format!(
                    "{new} has {}, the saved partitions need {}",
                    human(t.disk.size),
                    human(needed_bytes(disk))
                ),
            });
        }
        if !used.insert(new.clone()) {
            return Err(Error::BadMapping {
                old: old.clone(),
                new: new.clone(),
                reason: format!("{new} is mapped twice"),
            });
        }
        mapped.insert(disk.device.as_str(), new.as_str());
    }
    for old in &layout.disks {
        if let Some(new) = mapped.get(old.device.as_str()) {
            #[allow(clippy::expect_used)] // checked above
            let t = target
                .iter()
                .find(|t| t.disk.device == *new)
                .expect("mapped target exists");
            out.push(DiskMatch {
                old: old.device.clone(),
                new: t.disk.device.clone(),
                by: MatchedBy::Mapping,
                old_size: old.size,
                new_size: t.disk.size,
            });
            continue;
        }
        let needed = needed_bytes(old);
        let free: Vec<&TargetDisk> = target
            .iter()
            .filter(|t| t.unavailable.is_none() && !used.contains(&t.disk.device))
            .collect();
        type Rule = (MatchedBy, &'static str, fn(&Disk, &Disk) -> bool);
        let rules: [Rule; 6] = [
            (MatchedBy::Serial, "serial", |o, n| {
                !o.serial.is_empty() && o.serial == n.serial
            }),
            (MatchedBy::Wwn, "WWN", |o, n| {
                !o.wwn.is_empty() && o.wwn == n.wwn
            }),
            (MatchedBy::ById, "/dev/disk/by-id name", |o, n| {
                o.by_id.iter().any(|i| n.by_id.contains(i))
            }),
            (MatchedBy::NameAndSize, "name and size", |o, n| {
                o.device == n.device && o.size == n.size
            }),
            (MatchedBy::Size, "size", |o, n| o.size == n.size),
            // The size filter below already requires room for the partitions.
            (MatchedBy::Fits, "room for the partitions", |_, _| true),
        ];
        let mut found = None;
        for (by, what, rule) in rules {
            let hits: Vec<&&TargetDisk> = free
                .iter()
                .filter(|t| rule(old, &t.disk) && t.disk.size >= needed)
                .collect();
            match hits.as_slice() {
                [] => continue,
                [one] => {
                    found = Some((by, *one));
                    break;
                }
                many => {
                    return Err(Error::Ambiguous {
                        old: old.device.clone(),
                        old_disk: Box::new(old.clone()),
                        by: what.to_string(),
                        candidates: many.iter().map(|t| describe(&t.disk)).collect(),
                    });
                }
            }
        }
        let Some((by, t)) = found else {
            return Err(Error::NoDisk {
                old: old.device.clone(),
                old_disk: Box::new(old.clone()),
                needed,
                candidates: free.iter().map(|t| describe(&t.disk)).collect(),
            });
        };
        used.insert(t.disk.device.clone());
        out.push(DiskMatch {
            old: old.device.clone(),
            new: t.disk.device.clone(),
            by,
            old_size: old.size,
            new_size: t.disk.size,
        });
    }
    Ok(out)
}

/// Whether the mapping key `key` names `disk` (device, by-id name with or without its
/// directory, serial or WWN).
pub(super) fn identifies(disk: &Disk, key: &str) -> bool {
    let id = key.strip_prefix("/dev/disk/by-id/").unwrap_or(key);
    disk.device == key
        || disk.by_id.iter().any(|i| i == id || i == key)
        || (!disk.serial.is_empty() && disk.serial == key)
        || (!disk.wwn.is_empty() && disk.wwn == key)
}

/// `/dev/vda (1.0 GiB, QEMU disk, serial S1)`-style description.
pub fn describe(d: &Disk) -> String {
    let mut parts = vec![human(d.size)];
    if !d.model.is_empty() {
        parts.push(d.model.clone());
    }
    if !d.serial.is_empty() {
        parts.push(format!("serial {}", d.serial));
    }
    format!("{} ({})", d.device, parts.join(", "))
}
