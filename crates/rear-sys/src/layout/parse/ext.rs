//! `dumpe2fs -h DEVICE`: the superblock of an ext2/3/4 file system.
//!
//! `Key:   value` lines (some with a tab after the colon, `Inode size:\t          256`).
//! Kept: the feature list, block size, inode size; UUID and label come from blkid.
//! `needs_recovery` is a state bit (an unclean journal), not a mkfs choice, and is dropped.

use super::{Error, colon_value};

/// mkfs-relevant parameters of an ext file system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtInfo {
    /// Block size in bytes.
    pub block_size: u32,
    /// Inode size in bytes.
    pub inode_size: u32,
    /// Features, sorted.
    pub features: Vec<String>,
}

/// Parses `dumpe2fs -h` output.
pub fn parse(text: &str) -> Result<ExtInfo, Error> {
    const TOOL: &str = "dumpe2fs -h";
    let get = |k: &str| {
        colon_value(text, k).ok_or_else(|| Error::Missing {
            tool: TOOL.into(),
            field: k.into(),
        })
    };
    let mut features: Vec<String> = get("Filesystem features")?
        .split_whitespace()
        .filter(|f| *f != "needs_recovery" && *f != "(none)")
        .map(str::to_string)
        .collect();
    features.sort();
    Ok(ExtInfo {
        block_size: super::number(TOOL, "Block size", get("Block size")?)?,
        // ext2 with 128-byte inodes of revision 0 prints no inode size.
        inode_size: match colon_value(text, "Inode size") {
            Some(v) => super::number(TOOL, "Inode size", v)?,
            None => 128,
        },
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fixture() {
        let i = parse(include_str!(
            "../../../../../tests/fixtures/layout/gpt-esp-ext4/dumpe2fs.vda4.txt"
        ))
        .unwrap();
        assert_eq!((i.block_size, i.inode_size), (4096, 256));
        assert!(i.features.contains(&"metadata_csum".to_string()));
        assert!(!i.features.contains(&"needs_recovery".to_string()));
        let mut sorted = i.features.clone();
        sorted.sort();
        assert_eq!(i.features, sorted);
    }

    #[test]
    fn parse_missing_features_is_error() {
        let e = parse("Block size: 4096\n").unwrap_err().to_string();
        assert_eq!(e, "dumpe2fs -h: no Filesystem features in the output");
    }
}
