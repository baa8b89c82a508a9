//! `lsattr -d PATH...`: file attributes of directories (here: btrfs subvolume mount points).
//!
//! One line per path: the attribute letters (`-` for unset) and the path, separated by one
//! space: `---------------C------ /var/lib/db`. `C` is "no copy on write" (chattr +C).

use std::collections::BTreeMap;

/// Parses lsattr output into path → attribute letters (without the dashes).
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (flags, path) = l.split_once(' ')?;
            Some((
                path.to_string(),
                flags.chars().filter(|c| *c != '-').collect(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_btrfs_fixture_finds_nocow() {
        let m = parse(include_str!(
            "../../../../../tests/fixtures/layout/btrfs-subvolumes/lsattr.txt"
        ));
        assert_eq!(m["/mnt/host/var/lib/db"], "C");
        assert!(!m["/mnt/host/home"].contains('C'));
    }
}
