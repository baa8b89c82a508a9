//! Where a backup directory lives, on both sides.
//!
//! On the host (backup time): the file system holding a directory, from
//! `/proc/self/mountinfo` (the longest mount point that contains it; its `root` field makes a
//! bind mount's subdirectory right) and `blkid` (UUID, label), so the rescue system can find
//! it again. In the rescue system (restore time, no udev, so no `/dev/disk/by-*`): `blkid`
//! probes every block device, the one with the saved UUID (else the label) is mounted
//! read-only at [`MOUNT_POINT`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Error;
use super::config::Location;
use crate::exec;
use crate::layout::parse::blkid::Tags;
use crate::mounts::{mount_of, parse_mountinfo};
use crate::sysroot::Sysroot;

/// Where the rescue system mounts the file system holding the backup.
pub const MOUNT_POINT: &str = "/run/rear/backup";

/// The device of `blkid` output with this UUID, else this label (UUID first: labels repeat).
pub fn find_device(devices: &BTreeMap<String, Tags>, uuid: &str, label: &str) -> Option<String> {
    let by = |key: &str, want: &str| {
        (!want.is_empty())
            .then(|| {
                devices
                    .iter()
                    .find(|(_, t)| t.get(key).is_some_and(|v| v == want))
                    .map(|(dev, _)| dev.clone())
            })
            .flatten()
    };
    by("UUID", uuid).or_else(|| by("LABEL", label))
}

fn blkid(args: &[&str]) -> BTreeMap<String, Tags> {
    // blkid exits 2 when it finds nothing: that is "no device", not a failure to report.
    exec::run(
        Command::new("blkid")
            .args(["-c", "/dev/null", "-o", "export"])
            .args(args),
        Some("util-linux"),
    )
    .ok()
    .and_then(|o| crate::layout::parse::blkid::parse(&String::from_utf8_lossy(&o.stdout)).ok())
    .unwrap_or_default()
}

/// The location of the existing directory `dir` on this host, for the rescue system.
pub fn locate(dir: &Path) -> Result<Location, Error> {
    let canon = std::fs::canonicalize(dir).map_err(|error| Error::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    let host = Sysroot::host();
    let text = host.read_to_string(Path::new("/proc/self/mountinfo"))?;
    let mounts = parse_mountinfo(&text);
    let m = mount_of(&mounts, &canon).ok_or_else(|| Error::Locate {
        dir: dir.to_path_buf(),
        reason: "no mount in /proc/self/mountinfo holds it".into(),
    })?;
    let rel = canon.strip_prefix(&m.mount_point).unwrap_or(Path::new(""));
    let subpath = m.root.join(rel);
    let mut loc = Location {
        fstype: m.fstype.clone(),
        uuid: String::new(),
        label: String::new(),
        source: m.source.clone(),
        subpath,
    };
    if loc.is_network() {
        return Ok(loc);
    }
    if !m.source.starts_with("/dev/") {
        return Err(Error::Locate {
            dir: dir.to_path_buf(),
            reason: format!(
                "it is on {} ({}), which the rescue system cannot reach",
                m.source, m.fstype
            ),
        });
    }
    if let Some(d) = blkid(&[&m.source]).into_values().next() {
        loc.uuid = d.get("UUID").cloned().unwrap_or_default();
        loc.label = d.get("LABEL").cloned().unwrap_or_default();
    }
    if loc.uuid.is_empty() && loc.label.is_empty() {
        return Err(Error::Locate {
            dir: dir.to_path_buf(),
            reason: format!("blkid finds no UUID or label on {}", m.source),
        });
    }
    Ok(loc)
}

/// The mount point of a mounted file system with this label (the `REAR-DATA` partition of a
/// USB stick at backup time).
pub fn mounted_with_label(label: &str) -> Result<PathBuf, Error> {
    let devices = blkid(&["-t", &format!("LABEL={label}")]);
    let host = Sysroot::host();
    let text = host.read_to_string(Path::new("/proc/self/mountinfo"))?;
    let mounts = parse_mountinfo(&text);
    for dev in devices.keys() {
        if let Some(m) = mounts
            .iter()
            .find(|m| &m.source == dev && m.root == Path::new("/"))
        {
            return Ok(m.mount_point.clone());
        }
    }
    Err(Error::NotFound {
        what: format!("a mounted file system labelled {label}"),
        hint: if devices.is_empty() {
            format!(
                "blkid finds no device labelled {label}; plug in the USB stick written with --output usb"
            )
        } else {
            format!("mount the {label} partition first")
        },
    })
}

/// A file system mounted for a restore; unmounted when dropped (if we mounted it).
#[derive(Debug)]
pub struct Mounted {
    /// The directory that holds the backup.
    pub dir: PathBuf,
    mounted: Option<PathBuf>,
}

impl Mounted {
    /// A directory that needs no mount.
    pub fn plain(dir: PathBuf) -> Mounted {
        Mounted { dir, mounted: None }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mp) = self.mounted.take()
            && let Err(e) = exec::run(Command::new("umount").arg(&mp), Some("mount"))
        {
            log::warn!("{e}");
        }
    }
}

/// Finds the file system by UUID (else label) with `blkid` and mounts it read-only at
/// `mount_point`; a network location is mounted from its share. `subpath` is the backup
/// directory below the file system's root.
pub fn mount_location(loc: &Location, mount_point: &Path) -> Result<Mounted, Error> {
    let source = if loc.is_network() {
        loc.source.clone()
    } else {
        let devices = blkid(&[]);
        find_device(&devices, &loc.uuid, &loc.label).ok_or_else(|| Error::NotFound {
            what: format!(
                "the file system holding the backup ({}{}{})",
                if loc.uuid.is_empty() {
                    String::new()
                } else {
                    format!("UUID {}", loc.uuid)
                },
                if !loc.uuid.is_empty() && !loc.label.is_empty() {
                    ", "
                } else {
                    ""
                },
                if loc.label.is_empty() {
                    String::new()
                } else {
                    format!("label {}", loc.label)
                },
            ),
            hint: format!(
                "blkid sees {} device(s); attach the backup disk, or give --backup-url",
                devices.len()
            ),
        })?
    };
    let sub = loc.subpath.strip_prefix("/").unwrap_or(&loc.subpath);
    let host = Sysroot::host();
    let mounts = parse_mountinfo(
        &host
            .read_to_string(Path::new("/proc/self/mountinfo"))
            .unwrap_or_default(),
    );
    // Already mounted (a rerun, or the operator mounted it): use it as it is.
    if let Some(m) = mounts
        .iter()
        .find(|m| m.source == source && m.root == Path::new("/"))
    {
        return Ok(Mounted::plain(m.mount_point.join(sub)));
    }
    std::fs::create_dir_all(mount_point).map_err(|error| Error::Io {
        path: mount_point.to_path_buf(),
        error,
    })?;
    let mut cmd = Command::new("mount");
    cmd.args(["-o", "ro"]);
    if !loc.fstype.is_empty() {
        // The kernel would ask modprobe for the module, but modprobe is optional in the
        // image: load it ourselves first (by name, like ext4, or by alias, like fs-iso9660).
        crate::kmod::load::load_names(&[&loc.fstype, &format!("fs-{}", loc.fstype)]);
        cmd.args(["-t", &loc.fstype]);
    }
    cmd.arg(&source).arg(mount_point);
    exec::run(&mut cmd, Some("mount")).map_err(|error| Error::Exec {
        what: format!("mounting the backup file system {source}"),
        error,
    })?;
    Ok(Mounted {
        dir: mount_point.join(sub),
        mounted: Some(mount_point.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_device_prefers_uuid_then_label() {
        let d = crate::layout::parse::blkid::parse(
            "DEVNAME=/dev/sdb1\nLABEL=BACKUP\nUUID=1111\nTYPE=ext4\n\nDEVNAME=/dev/sdc1\nLABEL=BACKUP\nUUID=2222\nTYPE=ext4\n",
        )
        .unwrap();
        assert_eq!(
            find_device(&d, "2222", "BACKUP").as_deref(),
            Some("/dev/sdc1")
        );
        assert_eq!(
            find_device(&d, "9999", "BACKUP").as_deref(),
            Some("/dev/sdb1")
        );
        assert_eq!(find_device(&d, "9999", ""), None);
        assert_eq!(find_device(&d, "", ""), None);
    }
}
