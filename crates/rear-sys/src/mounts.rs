//! Mount tables, parsed in one place: `/proc/self/mountinfo` ([`parse_mountinfo`]: device
//! numbers, bind-mount roots), `/proc/self/mounts` ([`parse_mounts`]) and the octal escapes
//! both use for spaces and other white space in paths (`\040`; proc(5)).
//!
//! Pure functions on the text; the callers read the files through their `Sysroot` or, in the
//! rescue system, from `/proc` directly.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The device number (`MAJ:MIN`) the kernel shows; an anonymous one for btrfs, NFS, tmpfs.
    pub dev: Option<(u64, u64)>,
    /// The directory of the file system that is mounted (`/` unless a bind mount).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// File system type.
    pub fstype: String,
    /// What is mounted (a device, `server:/export`, `tmpfs`).
    pub source: String,
}

/// Parses `/proc/self/mountinfo` (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
/// [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`. Lines of another shape are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                dev: l.get(2).and_then(|d| parse_dev(d)),
                root: unescape_path(l.get(3)?),
                mount_point: unescape_path(l.get(4)?),
                fstype: r.first()?.to_string(),
                source: unescape_octal(r.get(1)?),
            })
        })
        .collect()
}

/// The mount holding `path` (canonical): the longest mount point above it; of equal ones the
/// last mounted, which hides the others.
pub fn mount_of<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
}

/// One line of `/proc/self/mounts` (the fstab(5) fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What is mounted (`/dev/sda1`, `proc`, `server:/export`).
    pub source: String,
    /// Where.
    pub target: PathBuf,
    /// File system type.
    pub fstype: String,
}

/// Parses `/proc/self/mounts` (or an fstab) in mount order; lines of fewer than three fields
/// are skipped.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (source, target, fstype) = (w.next()?, w.next()?, w.next()?);
            (!source.starts_with('#')).then(|| Mount {
                source: unescape_octal(source),
                target: unescape_path(target),
                fstype: fstype.to_string(),
            })
        })
        .collect()
}

/// `MAJ:MIN` as numbers.
pub fn parse_dev(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Undoes the octal escapes of mount tables (`\040` for a space), as bytes: a path need not
/// be UTF-8.
pub fn unescape_octal_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b.get(i + 1..i + 4) {
            Some(o) if b[i] == b'\\' && o.iter().all(|c| (b'0'..=b'7').contains(c)) => {
                out.push(o.iter().fold(0u8, |a, c| a.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// [`unescape_octal_bytes`] as text (invalid UTF-8 replaced).
pub fn unescape_octal(s: &str) -> String {
    String::from_utf8_lossy(&unescape_octal_bytes(s)).into_owned()
}

/// [`unescape_octal_bytes`] as a path, byte for byte.
pub fn unescape_path(s: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape_octal_bytes(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 8:17 / /mnt/usb\\040stick rw - vfat /dev/sdb1 rw
41 27 8:33 /exports/rear /srv/backup rw - ext4 /dev/sdc1 rw
42 27 0:50 / /mnt/nfs rw - nfs4 server:/export rw,vers=4.2
";

    #[test]
    fn mount_of_takes_longest_prefix_and_bind_root() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 5);
        assert_eq!(m[2].mount_point, Path::new("/mnt/usb stick"));
        assert_eq!(m[2].dev, Some((8, 17)));
        let got = mount_of(&m, Path::new("/srv/backup/db1")).unwrap();
        assert_eq!(got.source, "/dev/sdc1");
        assert_eq!(
            got.root.join(
                Path::new("/srv/backup/db1")
                    .strip_prefix(&got.mount_point)
                    .unwrap()
            ),
            Path::new("/exports/rear/db1")
        );
        assert_eq!(
            mount_of(&m, Path::new("/var/x")).unwrap().source,
            "/dev/vda"
        );
        assert_eq!(
            mount_of(&m, Path::new("/mnt/nfs/a")).unwrap().fstype,
            "nfs4"
        );
    }

    #[test]
    fn parse_mounts_decodes_escapes_in_order() {
        let text = "rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\nshort line\n";
        let m = parse_mounts(text);
        let targets: Vec<&Path> = m.iter().map(|m| m.target.as_path()).collect();
        assert_eq!(
            targets,
            [
                Path::new("/"),
                Path::new("/proc"),
                Path::new("/mnt/my disk")
            ]
        );
        assert_eq!(
            (m[2].source.as_str(), m[2].fstype.as_str()),
            ("/dev/sdb1", "ext4")
        );
    }

    #[test]
    fn unescape_octal_sequences() {
        assert_eq!(unescape_octal(r"/mnt/a\040b\011c"), "/mnt/a b\tc");
        assert_eq!(unescape_octal(r"/x\0"), r"/x\0");
        assert_eq!(unescape_octal("plain"), "plain");
        assert_eq!(unescape_octal_bytes(r"/\377"), b"/\xff");
    }

    #[test]
    fn parse_dev_reads_major_minor() {
        assert_eq!(parse_dev("8:17\n"), Some((8, 17)));
        assert_eq!(parse_dev("259:0"), Some((259, 0)));
        assert_eq!(parse_dev("x"), None);
    }
}
