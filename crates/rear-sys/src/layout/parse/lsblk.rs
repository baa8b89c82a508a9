//! `lsblk -J -b -O`: every block device with identity and hierarchy.
//!
//! The JSON is a tree (`blockdevices[]`, each with `children[]`); a device with several
//! parents (an md array on two partitions, a VG's LV on two PVs) appears once under each.
//! [`parse`] flattens it into one record per device path with all its parents. Older
//! util-linux versions print numbers and flags as strings (`"rm": "0"`), newer ones as JSON
//! numbers and booleans; both are accepted.

use serde::Deserialize;

use super::Error;

/// One block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDev {
    /// Device name (`sda1`, `vg0-root`).
    pub name: String,
    /// Kernel name (`sda1`, `dm-0`).
    pub kname: String,
    /// Device path (`/dev/sda1`, `/dev/mapper/vg0-root`).
    pub path: String,
    /// `disk`, `part`, `lvm`, `crypt`, `raid1`, `loop`, `rom`, …
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size.
    pub log_sec: u32,
    /// Physical sector size.
    pub phy_sec: u32,
    /// Model (trimmed).
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// World wide name.
    pub wwn: String,
    /// Transport (`sata`, `nvme`, `usb`, …).
    pub tran: String,
    /// Removable media flag.
    pub removable: bool,
    /// Hot-pluggable flag.
    pub hotplug: bool,
    /// File system type as udev/blkid saw it.
    pub fstype: String,
    /// File system version (`FAT32`, `1.0`); empty without udev.
    pub fsver: String,
    /// Paths of the parent devices, in the order first seen.
    pub parents: Vec<String>,
}

#[derive(Deserialize)]
struct Top {
    blockdevices: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    name: String,
    #[serde(default)]
    kname: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "num")]
    size: u64,
    #[serde(default, rename = "log-sec", deserialize_with = "num")]
    log_sec: u64,
    #[serde(default, rename = "phy-sec", deserialize_with = "num")]
    phy_sec: u64,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    wwn: Option<String>,
    #[serde(default)]
    tran: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    rm: bool,
    #[serde(default, deserialize_with = "flag")]
    hotplug: bool,
    #[serde(default)]
    fstype: Option<String>,
    #[serde(default)]
    fsver: Option<String>,
    #[serde(default)]
    children: Vec<Node>,
}

/// A number printed as a JSON number, a string or null.
fn num<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Num(u64),
        Text(String),
    }
    match Option::<Value>::deserialize(d)? {
        Some(Value::Num(n)) => Ok(n),
        Some(Value::Text(s)) if s.trim().is_empty() => Ok(0),
        Some(Value::Text(s)) => s.trim().parse().map_err(serde::de::Error::custom),
        None => Ok(0),
    }
}

/// A flag printed as a boolean, `"0"`/`"1"` or null.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Bool(bool),
        Text(String),
        Num(u64),
    }
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => b,
        Some(Value::Text(s)) => s.trim() == "1",
        Some(Value::Num(n)) => n != 0,
        None => false,
    })
}

/// Parses `lsblk -J -b -O` output into one record per device, in tree order (parents
/// before children).
pub fn parse(json: &str) -> Result<Vec<BlockDev>, Error> {
    let top: Top = super::json("lsblk -J -b -O", json)?;
    let mut out: Vec<BlockDev> = Vec::new();
    for n in &top.blockdevices {
        walk(n, None, &mut out);
    }
    Ok(out)
}

fn walk(n: &Node, parent: Option<&str>, out: &mut Vec<BlockDev>) {
    let path = n.path.clone().unwrap_or_else(|| format!("/dev/{}", n.name));
    if let Some(dev) = out.iter_mut().find(|d| d.path == path) {
        if let Some(p) = parent
            && !dev.parents.iter().any(|x| x == p)
        {
            dev.parents.push(p.to_string());
        }
    } else {
        let s = |o: &Option<String>| o.as_deref().unwrap_or("").trim().to_string();
        out.push(BlockDev {
            name: n.name.clone(),
            kname: n.kname.clone().unwrap_or_else(|| n.name.clone()),
            path: path.clone(),
            kind: n.kind.clone(),
            size: n.size,
            log_sec: u32::try_from(n.log_sec).unwrap_or(0),
            phy_sec: u32::try_from(n.phy_sec).unwrap_or(0),
            model: s(&n.model),
            serial: s(&n.serial),
            wwn: s(&n.wwn),
            tran: s(&n.tran),
            removable: n.rm,
            hotplug: n.hotplug,
            fstype: s(&n.fstype),
            fsver: s(&n.fsver),
            parents: parent.map(|p| vec![p.to_string()]).unwrap_or_default(),
        });
    }
    for c in &n.children {
        walk(c, Some(&path), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_raid_fixture_merges_parents() {
        let devs = parse(include_str!(
            "../../../../../tests/fixtures/layout/raid1-lvm-xfs/lsblk.json"
        ))
        .unwrap();
        let md = devs.iter().find(|d| d.path == "/dev/md0").unwrap();
        assert_eq!(md.kind, "raid1");
        assert_eq!(md.parents, ["/dev/vda2", "/dev/vdb2"]);
        assert_eq!(devs.iter().filter(|d| d.path == "/dev/md0").count(), 1);
        let root = devs
            .iter()
            .find(|d| d.path == "/dev/mapper/vg0-root")
            .unwrap();
        assert_eq!((root.kind.as_str(), root.size), ("lvm", 320 << 20));
        assert!(root.kname.starts_with("dm-"), "{root:?}");
    }

    #[test]
    fn parse_gpt_fixture_disk_identity() {
        let devs = parse(include_str!(
            "../../../../../tests/fixtures/layout/gpt-esp-ext4/lsblk.json"
        ))
        .unwrap();
        let vda = &devs[0];
        assert_eq!(vda.path, "/dev/vda");
        assert_eq!(vda.kind, "disk");
        assert_eq!(vda.size, 1 << 30);
        assert_eq!((vda.log_sec, vda.phy_sec), (512, 512));
        assert!(!vda.removable);
        assert_eq!(devs[1].parents, ["/dev/vda"]);
    }

    #[test]
    fn parse_accepts_old_string_numbers() {
        let j = r#"{"blockdevices":[{"name":"sdb","type":"disk","size":"8004304896",
            "log-sec":"512","rm":"1","tran":"usb","model":"Cruzer   "}]}"#;
        let d = &parse(j).unwrap()[0];
        assert_eq!(d.path, "/dev/sdb");
        assert_eq!(d.size, 8004304896);
        assert!(d.removable);
        assert_eq!(d.model, "Cruzer");
    }

    #[test]
    fn parse_error_names_tool() {
        let e = parse("{\"blockdevices\": 3}").unwrap_err().to_string();
        assert!(
            e.starts_with("lsblk -J -b -O: unexpected JSON output"),
            "{e}"
        );
    }
}
