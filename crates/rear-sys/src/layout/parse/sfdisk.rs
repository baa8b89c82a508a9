//! `sfdisk -J DISK`: the partition table of one disk.
//!
//! Shape (util-linux 2.38): `{"partitiontable": {"label": "gpt"|"dos", "id", "device",
//! "unit": "sectors", "firstlba", "lastlba", "sectorsize", "partitions": [{"node", "start",
//! "size", "type", "uuid", "name", "attrs", "bootable"}]}}`. GPT types are GUIDs; dos types
//! are hex without `0x` (`83`, `5`). `uuid`, `name` and `attrs` exist on GPT only, `bootable`
//! on dos only. `firstlba`/`lastlba`/`sectorsize` are missing from older versions.

use serde::Deserialize;

use super::Error;
use rear_model::layout::model::TableKind;

/// A partition table as sfdisk printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// GPT or dos.
    pub kind: TableKind,
    /// Disk GUID or dos disk identifier (`0x5ec0a001`).
    pub id: String,
    /// The disk.
    pub device: String,
    /// First usable LBA (GPT).
    pub first_lba: Option<u64>,
    /// Last usable LBA (GPT).
    pub last_lba: Option<u64>,
    /// Sector size, when printed.
    pub sector_size: Option<u32>,
    /// Partitions in table order.
    pub partitions: Vec<Part>,
}

/// One partition as sfdisk printed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Part {
    /// Device path.
    pub node: String,
    /// First sector.
    pub start: u64,
    /// Sectors.
    pub size: u64,
    /// Type GUID or dos type.
    #[serde(rename = "type")]
    pub type_: String,
    /// GPT partition GUID.
    #[serde(default)]
    pub uuid: Option<String>,
    /// GPT name.
    #[serde(default)]
    pub name: Option<String>,
    /// GPT attributes.
    #[serde(default)]
    pub attrs: Option<String>,
    /// dos active flag.
    #[serde(default)]
    pub bootable: bool,
}

#[derive(Deserialize)]
struct Top {
    partitiontable: Raw,
}

#[derive(Deserialize)]
struct Raw {
    label: String,
    #[serde(default)]
    id: Option<String>,
    device: String,
    #[serde(default)]
    firstlba: Option<u64>,
    #[serde(default)]
    lastlba: Option<u64>,
    #[serde(default)]
    sectorsize: Option<u32>,
    #[serde(default)]
    partitions: Vec<Part>,
}

/// Parses `sfdisk -J` output; `None` for a table type the layout cannot hold (sun, sgi).
pub fn parse(json: &str) -> Result<Option<Table>, Error> {
    let top: Top = super::json("sfdisk -J", json)?;
    let r = top.partitiontable;
    let kind = match r.label.as_str() {
        "gpt" => TableKind::Gpt,
        "dos" => TableKind::Dos,
        _ => return Ok(None),
    };
    Ok(Some(Table {
        kind,
        id: r.id.unwrap_or_default(),
        device: r.device,
        first_lba: r.firstlba,
        last_lba: r.lastlba,
        sector_size: r.sectorsize,
        partitions: r.partitions,
    }))
}

/// The partition number of `node` on `disk` (`/dev/nvme0n1p2` on `/dev/nvme0n1` is 2).
pub fn part_number(disk: &str, node: &str) -> Option<u32> {
    let rest = node.strip_prefix(disk)?;
    rest.strip_prefix('p').unwrap_or(rest).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_gpt_fixture() {
        let t = parse(include_str!(
            "../../../../../tests/fixtures/layout/gpt-esp-ext4/sfdisk.vda.json"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(t.kind, TableKind::Gpt);
        assert_eq!(t.id, "6B3F1C2A-0D4E-4F5A-9B8C-1A2B3C4D5E01");
        assert_eq!((t.first_lba, t.last_lba), (Some(2048), Some(2097118)));
        assert_eq!(t.partitions.len(), 4);
        let esp = &t.partitions[1];
        assert_eq!((esp.start, esp.size), (4096, 204800));
        assert_eq!(esp.type_, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(esp.name.as_deref(), Some("EFI system"));
    }

    #[test]
    fn parse_dos_fixture_with_extended_and_logical() {
        let t = parse(include_str!(
            "../../../../../tests/fixtures/layout/mbr/sfdisk.vda.json"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(t.kind, TableKind::Dos);
        assert_eq!(t.id, "0x5ec0a001");
        let types: Vec<&str> = t.partitions.iter().map(|p| p.type_.as_str()).collect();
        assert_eq!(types, ["83", "5", "82", "83"]);
        assert!(t.partitions[0].bootable);
        assert!(!t.partitions[1].bootable);
        assert_eq!(t.partitions[3].node, "/dev/vda6");
    }

    #[test]
    fn parse_other_label_is_none() {
        let j = r#"{"partitiontable":{"label":"sun","device":"/dev/sda","partitions":[]}}"#;
        assert_eq!(parse(j).unwrap(), None);
    }

    #[test]
    fn part_number_handles_p_separator() {
        assert_eq!(part_number("/dev/nvme0n1", "/dev/nvme0n1p12"), Some(12));
        assert_eq!(part_number("/dev/sda", "/dev/sda3"), Some(3));
        assert_eq!(part_number("/dev/mmcblk0", "/dev/mmcblk0p1"), Some(1));
        assert_eq!(part_number("/dev/sda", "/dev/sdb3"), None);
    }
}
