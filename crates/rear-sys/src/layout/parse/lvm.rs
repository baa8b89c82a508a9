//! `lvm pvs|vgs|lvs --reportformat json --units b --nosuffix -o …`: LVM's view.
//!
//! Columns asked for (see `tests/fixtures/layout/create.sh` and [`PVS_COLUMNS`] etc.): every
//! value is a JSON string, sizes in bytes without a suffix, empty for "not applicable". The
//! shape is `{"report": [{"pv"|"vg"|"lv": [ {column: value} ]}]}`; newer LVM versions add a
//! `"log"` array, which is ignored. `lvs -a` also lists hidden LVs (`[pool_tdata]`,
//! `[lvol0_pmspare]`), which LVM creates by itself with the visible ones.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Error;
use rear_model::layout::model::LvKind;

/// `-o` of `lvm pvs`.
pub const PVS_COLUMNS: &str = "pv_name,pv_uuid,pv_size,vg_name";
/// `-o` of `lvm vgs`.
pub const VGS_COLUMNS: &str = "vg_name,vg_uuid,vg_extent_size,vg_size";
/// `-o` of `lvm lvs -a`.
pub const LVS_COLUMNS: &str = "lv_name,vg_name,lv_uuid,lv_size,segtype,stripes,stripe_size,\
pool_lv,chunk_size,lv_metadata_size,lv_role,lv_dm_path";

#[derive(Deserialize)]
struct Top {
    report: Vec<BTreeMap<String, serde_json::Value>>,
}

/// The rows of the one report named `kind` (`pv`, `vg`, `lv`).
fn rows(tool: &str, kind: &str, json: &str) -> Result<Vec<BTreeMap<String, String>>, Error> {
    let top: Top = super::json(tool, json)?;
    let mut out = Vec::new();
    for r in top.report {
        if let Some(v) = r.get(kind) {
            let list: Vec<BTreeMap<String, String>> =
                serde_json::from_value(v.clone()).map_err(|source| Error::Json {
                    tool: tool.to_string(),
                    source,
                })?;
            out.extend(list);
        }
    }
    Ok(out)
}

fn field<'a>(tool: &str, row: &'a BTreeMap<String, String>, k: &str) -> Result<&'a str, Error> {
    row.get(k)
        .map(String::as_str)
        .ok_or_else(|| Error::Missing {
            tool: tool.to_string(),
            field: k.to_string(),
        })
}

fn size(tool: &str, row: &BTreeMap<String, String>, k: &str) -> Result<u64, Error> {
    let v = field(tool, row, k)?;
    if v.is_empty() {
        return Ok(0);
    }
    super::number(tool, k, v)
}

/// A physical volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvRow {
    /// Device.
    pub device: String,
    /// UUID.
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
    /// VG, empty for an orphan PV.
    pub vg: String,
}

/// A volume group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgRow {
    /// Name.
    pub name: String,
    /// UUID.
    pub uuid: String,
    /// Extent size in bytes.
    pub extent_size: u64,
}

/// A logical volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvRow {
    /// Name (`[name]` for hidden LVs).
    pub name: String,
    /// VG.
    pub vg: String,
    /// UUID.
    pub uuid: String,
    /// Size in bytes (virtual size of a thin volume).
    pub size: u64,
    /// Segment type (`linear`, `striped`, `thin-pool`, `thin`, `raid1`, …).
    pub segtype: String,
    /// Stripes (or mirror images).
    pub stripes: u32,
    /// Stripe size in bytes.
    pub stripe_size: u64,
    /// Thin pool of a thin volume.
    pub pool: String,
    /// Chunk size of a pool in bytes.
    pub chunk_size: u64,
    /// Metadata size of a pool in bytes.
    pub metadata_size: u64,
    /// Device-mapper path.
    pub dm_path: String,
}

impl LvRow {
    /// Hidden LVs (`[pool_tdata]`) are made by LVM together with a visible one.
    pub fn hidden(&self) -> bool {
        self.name.starts_with('[')
    }

    /// The layout kind, `None` for a type the layout cannot recreate (cache, vdo, …).
    pub fn kind(&self) -> Option<LvKind> {
        Some(match self.segtype.as_str() {
            "linear" => LvKind::Linear,
            "striped" if self.stripes <= 1 => LvKind::Linear,
            "striped" => LvKind::Striped {
                stripes: self.stripes,
                stripe_size: self.stripe_size,
            },
            "thin-pool" => LvKind::ThinPool {
                chunk_size: self.chunk_size,
                metadata_size: self.metadata_size,
            },
            "thin" => LvKind::Thin {
                pool: self.pool.clone(),
            },
            s if s.starts_with("raid") || s == "mirror" => LvKind::Raid {
                level: s.to_string(),
                stripes: self.stripes,
            },
            _ => return None,
        })
    }
}

/// Parses `lvm pvs` JSON.
pub fn parse_pvs(json: &str) -> Result<Vec<PvRow>, Error> {
    const T: &str = "lvm pvs";
    rows(T, "pv", json)?
        .iter()
        .map(|r| {
            Ok(PvRow {
                device: field(T, r, "pv_name")?.to_string(),
                uuid: field(T, r, "pv_uuid")?.to_string(),
                size: size(T, r, "pv_size")?,
                vg: field(T, r, "vg_name")?.to_string(),
            })
        })
        .collect()
}

/// Parses `lvm vgs` JSON.
pub fn parse_vgs(json: &str) -> Result<Vec<VgRow>, Error> {
    const T: &str = "lvm vgs";
    rows(T, "vg", json)?
        .iter()
        .map(|r| {
            Ok(VgRow {
                name: field(T, r, "vg_name")?.to_string(),
                uuid: field(T, r, "vg_uuid")?.to_string(),
                extent_size: size(T, r, "vg_extent_size")?,
            })
        })
        .collect()
}

/// Parses `lvm lvs -a` JSON.
pub fn parse_lvs(json: &str) -> Result<Vec<LvRow>, Error> {
    const T: &str = "lvm lvs";
    rows(T, "lv", json)?
        .iter()
        .map(|r| {
            Ok(LvRow {
                name: field(T, r, "lv_name")?.to_string(),
                vg: field(T, r, "vg_name")?.to_string(),
                uuid: field(T, r, "lv_uuid")?.to_string(),
                size: size(T, r, "lv_size")?,
                segtype: field(T, r, "segtype")?.to_string(),
                stripes: u32::try_from(size(T, r, "stripes")?).unwrap_or(u32::MAX),
                stripe_size: size(T, r, "stripe_size")?,
                pool: field(T, r, "pool_lv")?.to_string(),
                chunk_size: size(T, r, "chunk_size")?,
                metadata_size: size(T, r, "lv_metadata_size")?,
                dm_path: field(T, r, "lv_dm_path")?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fx {
        ($f:literal) => {
            include_str!(concat!(
                "../../../../../tests/fixtures/layout/raid1-lvm-xfs/",
                $f
            ))
        };
    }

    #[test]
    fn parse_pvs_vgs_fixture() {
        let p = parse_pvs(fx!("lvm-pvs.json")).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].device.as_str(), p[0].vg.as_str()),
            ("/dev/md0", "vg0")
        );
        assert_eq!(p[0].size, 1065353216);
        let v = parse_vgs(fx!("lvm-vgs.json")).unwrap();
        assert_eq!((v[0].name.as_str(), v[0].extent_size), ("vg0", 4 << 20));
    }

    #[test]
    fn parse_lvs_fixture_kinds() {
        let l = parse_lvs(fx!("lvm-lvs.json")).unwrap();
        let visible: Vec<(&str, Option<LvKind>)> = l
            .iter()
            .filter(|r| !r.hidden())
            .map(|r| (r.name.as_str(), r.kind()))
            .collect();
        assert_eq!(
            visible,
            [
                (
                    "data",
                    Some(LvKind::Thin {
                        pool: "pool".into()
                    })
                ),
                (
                    "pool",
                    Some(LvKind::ThinPool {
                        chunk_size: 128 << 10,
                        metadata_size: 8 << 20
                    })
                ),
                ("root", Some(LvKind::Linear)),
                ("swap", Some(LvKind::Linear)),
            ]
        );
        assert_eq!(l.iter().filter(|r| r.hidden()).count(), 3);
    }

    #[test]
    fn kind_striped_raid_and_unknown() {
        let mut r = parse_lvs(fx!("lvm-lvs.json")).unwrap().remove(0);
        r.segtype = "striped".into();
        r.stripes = 2;
        r.stripe_size = 65536;
        assert_eq!(
            r.kind(),
            Some(LvKind::Striped {
                stripes: 2,
                stripe_size: 65536
            })
        );
        r.segtype = "raid1".into();
        assert_eq!(
            r.kind(),
            Some(LvKind::Raid {
                level: "raid1".into(),
                stripes: 2
            })
        );
        r.segtype = "cache".into();
        assert_eq!(r.kind(), None);
    }

    #[test]
    fn parse_ignores_log_and_names_tool() {
        let j = r#"{"report":[{"pv":[]}],"log":[{"log_seq_num":"1"}]}"#;
        assert!(parse_pvs(j).unwrap().is_empty());
        let e = parse_pvs(r#"{"report":[{"pv":[{"pv_name":"/dev/sda"}]}]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "lvm pvs: no pv_uuid in the output");
    }
}
