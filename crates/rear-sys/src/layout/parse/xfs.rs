//! `xfs_info DEVICE|MOUNTPOINT`: the geometry of an XFS file system.
//!
//! Sections `meta-data=`, `data`, `naming`, `log`, `realtime`, continued on lines that start
//! with `=`; values are `key=value` words separated by spaces and commas. Kept:
//! `isize` (inode size) and `sectsz` of meta-data, `bsize` of data, and the on-disk feature
//! switches mkfs.xfs takes with `-m`/`-i`/`-n` (`crc`, `finobt`, `sparse`, `rmapbt`,
//! `reflink`, `bigtime`, `inobtcount`, `nrext64`, `ftype`), as `name=value`.

use super::Error;

/// mkfs-relevant parameters of an XFS file system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XfsInfo {
    /// Data block size in bytes.
    pub block_size: u32,
    /// Sector size in bytes.
    pub sector_size: u32,
    /// Inode size in bytes.
    pub inode_size: u32,
    /// Feature switches as `name=value`, sorted.
    pub features: Vec<String>,
}

const FEATURES: [&str; 9] = [
    "crc",
    "finobt",
    "sparse",
    "rmapbt",
    "reflink",
    "bigtime",
    "inobtcount",
    "nrext64",
    "ftype",
];

/// Parses xfs_info output.
pub fn parse(text: &str) -> Result<XfsInfo, Error> {
    const TOOL: &str = "xfs_info";
    let mut section = String::new();
    let mut info = XfsInfo::default();
    let (mut bsize, mut sectsz, mut isize) = (None, None, None);
    for line in text.lines() {
        let Some((head, rest)) = line.split_once('=') else {
            continue;
        };
        if !head.trim().is_empty() {
            section = head.trim().to_string();
        }
        for word in rest.split([' ', ',']).filter(|w| w.contains('=')) {
            let Some((k, v)) = word.split_once('=') else {
                continue;
            };
            match (section.as_str(), k) {
                ("meta-data", "isize") => isize = Some(v),
                ("meta-data", "sectsz") => sectsz = Some(v),
                ("data", "bsize") => bsize = Some(v),
                (_, k) if FEATURES.contains(&k) => info.features.push(format!("{k}={v}")),
                _ => {}
            }
        }
    }
    let need = |v: Option<&str>, f: &str| -> Result<u32, Error> {
        let v = v.ok_or_else(|| Error::Missing {
            tool: TOOL.into(),
            field: f.into(),
        })?;
        super::number(TOOL, f, v)
    };
    info.block_size = need(bsize, "data bsize")?;
    info.sector_size = need(sectsz, "meta-data sectsz")?;
    info.inode_size = need(isize, "meta-data isize")?;
    info.features.sort();
    info.features.dedup();
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fixture() {
        let i = parse(include_str!(
            "../../../../../tests/fixtures/layout/raid1-lvm-xfs/xfs_info.mapper_vg0-root.txt"
        ))
        .unwrap();
        assert_eq!(
            (i.block_size, i.sector_size, i.inode_size),
            (4096, 512, 512)
        );
        assert_eq!(
            i.features,
            [
                "bigtime=1",
                "crc=1",
                "finobt=1",
                "ftype=1",
                "inobtcount=1",
                "nrext64=0",
                "reflink=1",
                "rmapbt=0",
                "sparse=1"
            ]
        );
    }

    #[test]
    fn parse_empty_is_error() {
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "xfs_info: no data bsize in the output"
        );
    }
}
