//! btrfs-progs output: `btrfs subvolume list MNT`, `btrfs subvolume get-default MNT` and
//! `btrfs filesystem df -b MNT`.
//!
//! Subvolume lines: `ID 257 gen 8 top level 5 path @home`; the path is relative to the top
//! level (ID 5) and may contain spaces, so everything after ` path ` is the path.
//! get-default prints such a line, or `ID 5 (FS_TREE)` when the top level is the default.
//! `fi df -b` lines: `Data, single: total=8388608, used=0`, `Metadata, DUP: …`; the profile
//! (`single`, `DUP`, `RAID1`, …) is the second word, written lower case here as mkfs.btrfs
//! takes it.

use super::Error;

/// One subvolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolumeLine {
    /// Subvolume ID.
    pub id: u64,
    /// Parent subvolume ID.
    pub top_level: u64,
    /// Path below the top level.
    pub path: String,
}

fn line(tool: &str, n: usize, l: &str) -> Result<SubvolumeLine, Error> {
    let bad = || Error::Line {
        tool: tool.to_string(),
        line: n,
        text: l.to_string(),
    };
    let rest = l.strip_prefix("ID ").ok_or_else(bad)?;
    let (id, rest) = rest.split_once(' ').ok_or_else(bad)?;
    let (_, path) = rest.split_once(" path ").ok_or_else(bad)?;
    let top = rest
        .split_once("top level ")
        .and_then(|(_, t)| t.split_whitespace().next())
        .ok_or_else(bad)?;
    Ok(SubvolumeLine {
        id: super::number(tool, "ID", id)?,
        top_level: super::number(tool, "top level", top)?,
        path: path.to_string(),
    })
}

/// Parses `btrfs subvolume list`.
pub fn parse_list(text: &str) -> Result<Vec<SubvolumeLine>, Error> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| line("btrfs subvolume list", i + 1, l))
        .collect()
}

/// Parses `btrfs subvolume get-default`: the default subvolume's path, empty for the top
/// level.
pub fn parse_default(text: &str) -> Result<String, Error> {
    let l = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if l.contains("(FS_TREE)") {
        return Ok(String::new());
    }
    Ok(line("btrfs subvolume get-default", 1, l)?.path)
}

/// Data and metadata profiles from `btrfs filesystem df`, lower case.
pub fn parse_df(text: &str) -> Result<(String, String), Error> {
    let profile = |kind: &str| {
        text.lines().find_map(|l| {
            let (k, rest) = l.split_once(", ")?;
            let (p, _) = rest.split_once(':')?;
            (k == kind).then(|| p.to_ascii_lowercase())
        })
    };
    let missing = |f: &str| Error::Missing {
        tool: "btrfs filesystem df".into(),
        field: f.into(),
    };
    // Mixed block groups (small file systems) report "Data+Metadata".
    if let Some(p) = profile("Data+Metadata") {
        return Ok((p.clone(), p));
    }
    Ok((
        profile("Data").ok_or_else(|| missing("Data"))?,
        profile("Metadata").ok_or_else(|| missing("Metadata"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_list_fixture() {
        let l = parse_list(include_str!(
            "../../../../../tests/fixtures/layout/btrfs-subvolumes/btrfs-subvolume-list.vda2.txt"
        ))
        .unwrap();
        let paths: Vec<&str> = l.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["@", "@home", "@var_lib_db"]);
        assert_eq!((l[1].id, l[1].top_level), (257, 5));
    }

    #[test]
    fn parse_list_path_with_spaces() {
        let l = parse_list("ID 300 gen 1 top level 256 path @/srv/my data\n").unwrap();
        assert_eq!(l[0].path, "@/srv/my data");
        assert_eq!(l[0].top_level, 256);
    }

    #[test]
    fn parse_default_fixture_and_top_level() {
        let d = parse_default(include_str!(
            "../../../../../tests/fixtures/layout/btrfs-subvolumes/btrfs-get-default.vda2.txt"
        ))
        .unwrap();
        assert_eq!(d, "@");
        assert_eq!(parse_default("ID 5 (FS_TREE)\n").unwrap(), "");
    }

    #[test]
    fn parse_df_fixture_and_mixed() {
        let p = parse_df(include_str!(
            "../../../../../tests/fixtures/layout/btrfs-subvolumes/btrfs-df.vda2.txt"
        ))
        .unwrap();
        assert_eq!(p, ("single".to_string(), "dup".to_string()));
        let p =
            parse_df("System, single: total=1, used=1\nData+Metadata, single: total=1, used=0\n")
                .unwrap();
        assert_eq!(p, ("single".to_string(), "single".to_string()));
        assert!(parse_df("").is_err());
    }
}
