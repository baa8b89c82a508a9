//! `mdadm --detail --export MD` and `mdadm --detail MD`: one software RAID array.
//!
//! The export form is `KEY=value` lines: `MD_LEVEL`, `MD_DEVICES`, `MD_METADATA`, `MD_UUID`,
//! `MD_NAME`, and per member `MD_DEVICE_<dev>_ROLE` (slot number, `spare`, `faulty`) and
//! `MD_DEVICE_<dev>_DEV` (its path). Chunk size and layout of striped levels are only in the
//! human form (`Chunk Size : 512K`, `Layout : left-symmetric`).

use std::collections::BTreeMap;

use super::{Error, colon_value};

/// One array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MdInfo {
    /// `raid1`, `raid5`, …
    pub level: String,
    /// Number of RAID devices.
    pub raid_devices: u32,
    /// Superblock version.
    pub metadata: String,
    /// Array UUID.
    pub uuid: String,
    /// Array name.
    pub name: String,
    /// Active members in slot order.
    pub members: Vec<String>,
    /// Spares.
    pub spares: Vec<String>,
    /// Chunk size in KiB.
    pub chunk_kib: Option<u32>,
    /// Layout.
    pub layout: String,
}

/// Parses the export form, plus chunk size and layout from the detail form.
pub fn parse(export: &str, detail: &str) -> Result<MdInfo, Error> {
    const TOOL: &str = "mdadm --detail --export";
    let kv: BTreeMap<&str, &str> = export
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let get = |k: &str| {
        kv.get(k).copied().ok_or_else(|| Error::Missing {
            tool: TOOL.into(),
            field: k.into(),
        })
    };
    let mut slots: Vec<(u32, String)> = Vec::new();
    let mut spares = Vec::new();
    for (k, role) in &kv {
        let Some(key) = k
            .strip_prefix("MD_DEVICE_")
            .and_then(|r| r.strip_suffix("_ROLE"))
        else {
            continue;
        };
        let dev = get(&format!("MD_DEVICE_{key}_DEV"))?.to_string();
        match role.parse::<u32>() {
            Ok(n) => slots.push((n, dev)),
            Err(_) if *role == "spare" => spares.push(dev),
            // A faulty member is not part of what to recreate.
            Err(_) => {}
        }
    }
    slots.sort();
    spares.sort();
    let chunk_kib = match colon_value(detail, "Chunk Size") {
        Some(v) => Some(super::number(
            "mdadm --detail",
            "Chunk Size",
            v.trim_end_matches(['K', 'k']),
        )?),
        None => None,
    };
    Ok(MdInfo {
        level: get("MD_LEVEL")?.to_string(),
        raid_devices: super::number(TOOL, "MD_DEVICES", get("MD_DEVICES")?)?,
        metadata: get("MD_METADATA")?.to_string(),
        uuid: get("MD_UUID")?.to_string(),
        name: kv.get("MD_NAME").copied().unwrap_or("").to_string(),
        members: slots.into_iter().map(|(_, d)| d).collect(),
        spares,
        chunk_kib,
        layout: colon_value(detail, "Layout").unwrap_or("").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_raid1_fixture() {
        let i = parse(
            include_str!("../../../../../tests/fixtures/layout/raid1-lvm-xfs/mdadm-export.md0.txt"),
            include_str!("../../../../../tests/fixtures/layout/raid1-lvm-xfs/mdadm-detail.md0.txt"),
        )
        .unwrap();
        assert_eq!(i.level, "raid1");
        assert_eq!(i.raid_devices, 2);
        assert_eq!(i.metadata, "1.2");
        assert_eq!(i.uuid, "1a2b3c4d:5e6f7081:92a3b4c5:d6e7f809");
        assert_eq!(i.name, "fixture:0");
        assert_eq!(i.members, ["/dev/vda2", "/dev/vdb2"]);
        assert!(i.spares.is_empty());
        assert_eq!((i.chunk_kib, i.layout.as_str()), (None, ""));
    }

    #[test]
    fn parse_raid5_with_spare_orders_by_slot() {
        let export = "MD_LEVEL=raid5\nMD_DEVICES=3\nMD_METADATA=1.2\nMD_UUID=a:b:c:d\n\
            MD_DEVICE_dev_sdc1_ROLE=0\nMD_DEVICE_dev_sdc1_DEV=/dev/sdc1\n\
            MD_DEVICE_dev_sda1_ROLE=2\nMD_DEVICE_dev_sda1_DEV=/dev/sda1\n\
            MD_DEVICE_dev_sdb1_ROLE=1\nMD_DEVICE_dev_sdb1_DEV=/dev/sdb1\n\
            MD_DEVICE_dev_sdd1_ROLE=spare\nMD_DEVICE_dev_sdd1_DEV=/dev/sdd1\n";
        let detail = "        Layout : left-symmetric\n    Chunk Size : 512K\n";
        let i = parse(export, detail).unwrap();
        assert_eq!(i.members, ["/dev/sdc1", "/dev/sdb1", "/dev/sda1"]);
        assert_eq!(i.spares, ["/dev/sdd1"]);
        assert_eq!(i.chunk_kib, Some(512));
        assert_eq!(i.layout, "left-symmetric");
        assert_eq!(i.name, "");
    }

    #[test]
    fn parse_missing_level_is_error() {
        let e = parse("MD_DEVICES=2\n", "").unwrap_err().to_string();
        assert_eq!(e, "mdadm --detail --export: no MD_LEVEL in the output");
    }
}
