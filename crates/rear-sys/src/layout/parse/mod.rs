//! Pure parsers for the output of the storage tools that layout capture runs.
//!
//! Stage: capture (inventory of the storage layout). Input: the text a tool printed, exactly
//! as captured (see `tests/fixtures/layout/*/` for real samples and
//! `tests/fixtures/layout/create.sh` for the command lines). Output: small typed records
//! that [`super::capture::from_outputs`] assembles into a [`super::Layout`]. Nothing here
//! runs a program or reads a file, so every parser is tested on captured text.

pub mod blkid;
pub mod btrfs;
pub mod ext;
pub mod findmnt;
pub mod lsattr;
pub mod lsblk;
pub mod luks;
pub mod lvm;
pub mod mdadm;
pub mod sfdisk;
pub mod swaps;
pub mod sysblock;
pub mod xfs;

/// Errors of the parsers; each names the tool whose output did not parse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// JSON output that does not have the expected shape.
    #[error("{tool}: unexpected JSON output: {source}")]
    Json {
        /// The command (`lsblk -J`, `sfdisk -J /dev/sda`, …).
        tool: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A value that should be a number is not.
    #[error("{tool}: {field}: not a number: {value:?}")]
    Number {
        /// The command.
        tool: String,
        /// The field or line label.
        field: String,
        /// The text found.
        value: String,
    },
    /// A field every valid output has is missing.
    #[error("{tool}: no {field} in the output")]
    Missing {
        /// The command.
        tool: String,
        /// The field or line label.
        field: String,
    },
    /// A line that does not have the expected form.
    #[error("{tool}: line {line}: cannot parse {text:?}")]
    Line {
        /// The command.
        tool: String,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Parses `value` as a number, naming tool and field on failure.
pub(crate) fn number<T: std::str::FromStr>(
    tool: &str,
    field: &str,
    value: &str,
) -> Result<T, Error> {
    value.trim().parse().map_err(|_| Error::Number {
        tool: tool.to_string(),
        field: field.to_string(),
        value: value.to_string(),
    })
}

/// Deserialises JSON output of `tool`.
pub(crate) fn json<T: serde::de::DeserializeOwned>(tool: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|source| Error::Json {
        tool: tool.to_string(),
        source,
    })
}

/// `Key: value` lines as printed by dumpe2fs, mdadm --detail and luksDump: the value of the
/// first line whose key (before the first `:`, trimmed) is `key`.
pub(crate) fn colon_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_value_trims_key_and_value() {
        let t = "   Raid Level : raid1\nInode size:\t          256\n";
        assert_eq!(colon_value(t, "Raid Level"), Some("raid1"));
        assert_eq!(colon_value(t, "Inode size"), Some("256"));
        assert_eq!(colon_value(t, "Nope"), None);
    }

    #[test]
    fn number_error_names_tool_and_field() {
        let e = number::<u64>("dumpe2fs -h /dev/sda1", "Block size", "four").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dumpe2fs -h /dev/sda1: Block size: not a number: \"four\""
        );
    }
}
