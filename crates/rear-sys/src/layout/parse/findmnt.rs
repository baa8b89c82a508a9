//! `findmnt -J -l -o SOURCE,TARGET,FSTYPE,OPTIONS,FSROOT`: the mount table, in mount order.
//!
//! `-l` gives a flat list (`filesystems[]`) instead of a tree, in the order of
//! `/proc/self/mountinfo`, which is the order the mounts were made. `FSROOT` is the path
//! inside the file system that is mounted: `/@home` for a btrfs subvolume, `/` normally.
//! For a btrfs subvolume or a bind mount, findmnt may print SOURCE as `/dev/sda2[/@home]`;
//! the bracket part is dropped here, since FSROOT has it.

use serde::Deserialize;

use super::Error;

/// One mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MountEntry {
    /// Device or pseudo source (`/dev/sda1`, `proc`, `server:/export`).
    pub source: String,
    /// Mount point.
    pub target: String,
    /// File system type.
    pub fstype: String,
    /// Mount options.
    #[serde(default)]
    pub options: String,
    /// Path inside the file system that is mounted.
    #[serde(default)]
    pub fsroot: String,
}

#[derive(Deserialize)]
struct Top {
    filesystems: Vec<MountEntry>,
}

/// Parses findmnt's JSON list output.
pub fn parse(json: &str) -> Result<Vec<MountEntry>, Error> {
    let top: Top = super::json("findmnt -J -l", json)?;
    Ok(top
        .filesystems
        .into_iter()
        .map(|mut m| {
            if m.source.ends_with(']')
                && let Some(i) = m.source.find('[')
            {
                m.source.truncate(i);
            }
            m
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_btrfs_fixture_keeps_order_and_fsroot() {
        let m = parse(include_str!(
            "../../../../../tests/fixtures/layout/btrfs-subvolumes/findmnt.json"
        ))
        .unwrap();
        let host: Vec<(&str, &str, &str)> = m
            .iter()
            .filter(|m| m.target.starts_with("/mnt/host"))
            .map(|m| (m.source.as_str(), m.target.as_str(), m.fsroot.as_str()))
            .collect();
        assert_eq!(
            host,
            [
                ("/dev/vda2", "/mnt/host", "/@"),
                ("/dev/vda2", "/mnt/host/home", "/@home"),
                ("/dev/vda2", "/mnt/host/var/lib/db", "/@var_lib_db"),
                ("/dev/vda1", "/mnt/host/boot/efi", "/"),
            ]
        );
        assert_eq!(m[0].fstype, "rootfs");
    }

    #[test]
    fn parse_drops_bracket_suffix() {
        let j = r#"{"filesystems":[{"source":"/dev/sda2[/@home]","target":"/home",
            "fstype":"btrfs","options":"rw","fsroot":"/@home"}]}"#;
        assert_eq!(parse(j).unwrap()[0].source, "/dev/sda2");
    }
}
