//! `/proc/swaps`: the active swap areas.
//!
//! A header line, then `Filename Type Size Used Priority` separated by white space; Type is
//! `partition` or `file`, Size and Used in KiB. The kernel escapes white space in file names
//! as `\040`.

use super::Error;

/// One active swap area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSwap {
    /// Device path (`/dev/dm-2` for device-mapper: the kernel name) or swap file.
    pub filename: String,
    /// A partition (block device) rather than a file.
    pub is_partition: bool,
    /// Size in KiB.
    pub size_kib: u64,
}

/// Parses `/proc/swaps`.
pub fn parse(text: &str) -> Result<Vec<ActiveSwap>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            return Err(Error::Line {
                tool: "/proc/swaps".into(),
                line: i + 1,
                text: line.to_string(),
            });
        }
        out.push(ActiveSwap {
            filename: crate::mounts::unescape_octal(f[0]),
            is_partition: f[1] == "partition",
            size_kib: super::number("/proc/swaps", "Size", f[2])?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fixture_and_file() {
        let s = parse(include_str!(
            "../../../../../tests/fixtures/layout/gpt-esp-ext4/proc-swaps.txt"
        ))
        .unwrap();
        assert_eq!(
            s,
            [ActiveSwap {
                filename: "/dev/vda3".into(),
                is_partition: true,
                size_kib: 131068
            }]
        );
        let s = parse("Filename Type Size Used Priority\n/swap\\040file file 1024 0 -2\n").unwrap();
        assert_eq!(s[0].filename, "/swap file");
        assert!(!s[0].is_partition);
    }

    #[test]
    fn parse_short_line_is_error() {
        assert!(parse("head\n/dev/sda2\n").is_err());
    }
}
