//! `blkid -c /dev/null -o export`: signatures on every block device.
//!
//! Blocks of `KEY=value` lines separated by blank lines, each starting with `DEVNAME=`.
//! Values are shell-escaped by blkid (`PARTLABEL=EFI\ system`): a backslash quotes the next
//! character. `-c /dev/null` makes blkid probe the devices instead of trusting its cache.

use std::collections::BTreeMap;

use super::Error;

/// The tags of one device.
pub type Tags = BTreeMap<String, String>;

/// Parses the export format into device path → tags (without `DEVNAME`).
pub fn parse(text: &str) -> Result<BTreeMap<String, Tags>, Error> {
    let mut out = BTreeMap::new();
    let mut dev: Option<String> = None;
    let mut tags = Tags::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if let Some(d) = dev.take() {
                out.insert(d, std::mem::take(&mut tags));
            }
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| Error::Line {
            tool: "blkid -o export".into(),
            line: i + 1,
            text: line.to_string(),
        })?;
        let v = unescape(v);
        if k == "DEVNAME" {
            if let Some(d) = dev.replace(v) {
                out.insert(d, std::mem::take(&mut tags));
            }
        } else {
            tags.insert(k.to_string(), v);
        }
    }
    if let Some(d) = dev {
        out.insert(d, tags);
    }
    Ok(out)
}

fn unescape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                s.push(n);
            }
        } else {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_gpt_fixture() {
        let m = parse(include_str!(
            "../../../../../tests/fixtures/layout/gpt-esp-ext4/blkid.txt"
        ))
        .unwrap();
        let esp = &m["/dev/vda2"];
        assert_eq!(esp["TYPE"], "vfat");
        assert_eq!(esp["UUID"], "1A2B-3C4D");
        assert_eq!(esp["PARTLABEL"], "EFI system");
        assert_eq!(m["/dev/vda3"]["TYPE"], "swap");
        assert_eq!(m["/dev/vda3"]["LABEL"], "swap0");
        assert!(!m["/dev/vda1"].contains_key("TYPE"));
    }

    #[test]
    fn parse_rejects_line_without_equals() {
        let e = parse("DEVNAME=/dev/sda1\ngarbage\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "blkid -o export: line 2: cannot parse \"garbage\"");
    }
}
