//! The newc cpio writer: [`Image`] -> the uncompressed initramfs stream.
//!
//! Stage: archive. Input: an [`Image`] (sorted manifest plus file bytes) and the
//! `SOURCE_DATE_EPOCH`; output: a newc (`070701`) archive as the kernel's initramfs unpacker
//! reads it (`Documentation/driver-api/early-userspace/buffer-format.rst`), written with
//! hadris-cpio.
//!
//! The archive is deterministic: entries in the manifest's sorted order, each missing parent
//! directory emitted (0755) right before the first entry below it, names relative
//! (`usr/bin/sh`), uid and gid 0, every mtime the epoch (the manifest has none, so the clamp to
//! `SOURCE_DATE_EPOCH` is the epoch itself), inode numbers in write order. A hard link group is
//! written where its last name falls in sorted order (by then every name's parents exist) as
//! consecutive entries with one inode and `nlink` = the number of names, the data on the last
//! name only: the GNU cpio newc layout, which the kernel accepts (`maybe_link` in
//! `init/initramfs.c` links later names to the first and then writes the data through the link).
//! hadris-cpio writes directories with `nlink` 2; the kernel ignores a directory's `nlink`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

use hadris_cpio::sync::Writer;
use hadris_cpio::{CpioOptions, Format};
use hadris_fs::{
    Content, DateTime, DeviceNumber, FileType, Node, Owner, PathError, Permissions, SetAttr,
};
use hadris_io::StdIo;
use hadris_io::sync::Write as _;

use rear_model::manifest::{Entry, Image, ImagePath, Kind, Manifest, Source};

/// Mode of a parent directory the manifest does not list.
pub const IMPLICIT_DIR_MODE: u32 = 0o755;
/// Mode of the files of an early cpio.
const EARLY_FILE_MODE: u32 = 0o644;

/// Errors of writing a cpio archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The epoch does not fit newc's 32-bit mtime field (after 2106-02-07).
    #[error("SOURCE_DATE_EPOCH {0} does not fit the 32-bit mtime field of a newc cpio archive")]
    Epoch(u64),
    /// A file entry has no bytes in [`Image::data`].
    #[error("image file {0} has no data")]
    MissingData(ImagePath),
    /// A file's bytes are not as long as its manifest entry says.
    #[error("image file {path}: the manifest says {expected} bytes, the data has {actual}")]
    SizeMismatch {
        /// The entry.
        path: ImagePath,
        /// The size in the manifest.
        expected: u64,
        /// The length of the data.
        actual: u64,
    },
    /// A hard link whose target is missing or not a regular file.
    #[error("hard link {path} points to {to}, which is not a regular file of the image")]
    HardLinkTarget {
        /// The link.
        path: ImagePath,
        /// What it points to.
        to: ImagePath,
    },
    /// An entry below something that is not a directory.
    #[error("{path} is below {parent}, which is not a directory in the image")]
    ParentNotDir {
        /// The entry.
        path: ImagePath,
        /// The ancestor that is not a directory.
        parent: ImagePath,
    },
    /// Permission bits beyond `0o7777`.
    #[error("mode {mode:#o} of {path} has bits beyond 0o7777")]
    Mode {
        /// The entry.
        path: ImagePath,
        /// The mode in the manifest.
        mode: u32,
    },
    /// The same path twice in an early cpio.
    #[error("early cpio file {0} is given twice")]
    Duplicate(ImagePath),
    /// hadris-cpio refused the entry or the output failed.
    #[error("writing cpio entry {path}: {}", describe(.error))]
    Write {
        /// The entry's name in the archive (`TRAILER!!!` for the end).
        path: String,
        /// What hadris-cpio reported (boxed: it is large).
        error: Box<PathError>,
    },
}

/// The message of a hadris error and of its cause, without the path it repeats.
fn describe(e: &PathError) -> String {
    let mut s = e.context().to_string();
    if let Some(cause) = std::error::Error::source(e) {
        s.push_str(": ");
        s.push_str(&cause.to_string());
    }
    s
}

fn write_error(path: &str) -> impl FnOnce(PathError) -> Error + '_ {
    move |error| Error::Write {
        path: path.to_string(),
        error: Box::new(error),
    }
}

/// A hard link group: every name of one inode, sorted.
struct Group {
    /// The regular file that carries the data and the mode.
    head: ImagePath,
    /// All names, the head included, sorted.
    names: Vec<ImagePath>,
}

/// The hard link groups of `manifest` and, for each name in one, the group's index.
fn link_groups(manifest: &Manifest) -> Result<(Vec<Group>, BTreeMap<ImagePath, usize>), Error> {
    let mut by_head: BTreeMap<&ImagePath, Vec<ImagePath>> = BTreeMap::new();
    for (path, entry) in &manifest.entries {
        if let Kind::HardLink { to } = &entry.kind {
            match manifest.entries.get(to) {
                Some(Entry {
                    kind: Kind::File, ..
                }) => by_head.entry(to).or_default().push(path.clone()),
                _ => {
                    return Err(Error::HardLinkTarget {
                        path: path.clone(),
                        to: to.clone(),
                    });
                }
            }
        }
    }
    let mut groups = Vec::new();
    let mut member = BTreeMap::new();
    for (head, mut names) in by_head {
        names.push(head.clone());
        names.sort();
        for n in &names {
            member.insert(n.clone(), groups.len());
        }
        groups.push(Group {
            head: head.clone(),
            names,
        });
    }
    Ok((groups, member))
}

/// Owner 0:0 and `mode`; the mtime comes from the writer's options.
fn attrs(mode: u32) -> SetAttr {
    SetAttr::new()
        .with_permissions(Permissions::new(mode))
        .with_owner(Owner::new(0, 0))
}

/// The bytes of file `path`, checked against the manifest's size.
fn file_data<'a>(image: &'a Image, path: &ImagePath, entry: &Entry) -> Result<&'a [u8], Error> {
    let data = image
        .data
        .get(path)
        .ok_or_else(|| Error::MissingData(path.clone()))?;
    if data.len() as u64 != entry.size {
        return Err(Error::SizeMismatch {
            path: path.clone(),
            expected: entry.size,
            actual: data.len() as u64,
        });
    }
    Ok(data)
}

/// Writes `image` as a newc archive with its trailer to `out` and returns the bytes written.
///
/// Every mtime is `epoch`; see the module documentation for the layout. Fails before writing
/// an entry whose data, hard link target, parent or mode is wrong, naming it.
pub fn write_cpio(image: &Image, epoch: u64, out: &mut impl Write) -> Result<u64, Error> {
    let seconds = i64::from(u32::try_from(epoch).map_err(|_| Error::Epoch(epoch))?);
    let mtime = DateTime::from_unix_seconds(seconds).map_err(|_| Error::Epoch(epoch))?;
    let options = CpioOptions::new()
        .with_format(Format::Newc)
        .with_time(mtime);
    let entries = &image.manifest.entries;
    let (groups, member) = link_groups(&image.manifest)?;
    let mut w = Writer::new(StdIo::new(out), &options);
    let mut dirs: BTreeSet<ImagePath> = BTreeSet::new();

    for (path, entry) in entries {
        for parent in path.ancestors() {
            if dirs.contains(&parent) {
                continue;
            }
            // Sorted order puts a parent before its children, so a parent listed in the
            // manifest was handled already; if it is not in `dirs` it is no directory.
            if entries.contains_key(&parent) {
                return Err(Error::ParentNotDir {
                    path: path.clone(),
                    parent,
                });
            }
            let rel = parent.relative();
            w.append(rel, &Node::dir().with_attrs(attrs(IMPLICIT_DIR_MODE)))
                .map_err(write_error(rel))?;
            dirs.insert(parent);
        }
        if entry.mode & !0o7777 != 0 {
            return Err(Error::Mode {
                path: path.clone(),
                mode: entry.mode,
            });
        }
        let rel = path.relative();
        let node = match &entry.kind {
            Kind::Dir => {
                dirs.insert(path.clone());
                Node::dir()
            }
            Kind::File | Kind::HardLink { .. } => {
                match member.get(path).and_then(|&i| groups.get(i)) {
                    Some(group) => {
                        if group.names.last() == Some(path) {
                            write_group(image, group, &mut w)?;
                        }
                    }
                    None => {
                        let data = file_data(image, path, entry)?;
                        let mut ew = w
                            .append_file(rel, &attrs(entry.mode), data.len() as u64)
                            .map_err(write_error(rel))?;
                        ew.write_all(data)
                            .map_err(|e| {
                                PathError::from(hadris_io::Error::<std::io::Error>::from(e))
                            })
                            .map_err(write_error(rel))?;
                        ew.finish().map_err(write_error(rel))?;
                    }
                }
                continue;
            }
            Kind::Symlink { target } => Node::symlink(target),
            Kind::CharDevice { major, minor } => Node::special(
                FileType::CharDevice,
                Some(DeviceNumber::new(*major, *minor)),
            ),
            Kind::BlockDevice { major, minor } => Node::special(
                FileType::BlockDevice,
                Some(DeviceNumber::new(*major, *minor)),
            ),
        };
        w.append(rel, &node.with_attrs(attrs(entry.mode)))
            .map_err(write_error(rel))?;
    }
    let (_, report) = w.finish().map_err(write_error("TRAILER!!!"))?;
    for warning in report.warnings() {
        log::debug!("cpio: {warning}");
    }
    Ok(report.size())
}

/// Writes the names of `group` as one inode, the data on the last name.
fn write_group<W: Write>(
    image: &Image,
    group: &Group,
    w: &mut Writer<StdIo<&mut W>>,
) -> Result<(), Error> {
    let head = image
        .manifest
        .entries
        .get(&group.head)
        .ok_or_else(|| Error::MissingData(group.head.clone()))?;
    let data = file_data(image, &group.head, head)?;
    let names: Vec<&str> = group.names.iter().map(|n| n.relative()).collect();
    // hadris-cpio takes hard link content as an owned buffer; one copy of one file.
    let node = Node::file(Content::bytes(data.to_vec())).with_attrs(attrs(head.mode));
    w.append_hard_links(&names, &node)
        .map_err(write_error(group.head.relative()))
}

/// Writes an uncompressed early cpio with `files` (e.g.
/// `/kernel/x86/microcode/GenuineIntel.bin`), mode 0644, their parents 0755, mtime `epoch`;
/// returns the bytes written. The kernel's early microcode loader reads it before the
/// compressed initramfs that follows.
pub fn write_early_cpio(
    files: &[(ImagePath, Vec<u8>)],
    epoch: u64,
    out: &mut impl Write,
) -> Result<u64, Error> {
    let mut manifest = Manifest::new("");
    let mut data = BTreeMap::new();
    for (path, bytes) in files {
        let entry = Entry {
            kind: Kind::File,
            mode: EARLY_FILE_MODE,
            size: bytes.len() as u64,
            sha256: None,
            source: Source::Generated {
                by: "early cpio".into(),
            },
            why: String::new(),
        };
        if manifest.entries.insert(path.clone(), entry).is_some() {
            return Err(Error::Duplicate(path.clone()));
        }
        data.insert(path.clone(), Arc::<[u8]>::from(bytes.as_slice()));
    }
    write_cpio(&Image { manifest, data }, epoch, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tests::{EPOCH, image_path, sample_image, tool};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::process::Command;

    fn cpio_bytes(image: &Image) -> Vec<u8> {
        let mut out = Vec::new();
        let n = write_cpio(image, EPOCH, &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    /// Extracts `archive` with GNU cpio into a new tempdir.
    fn extract(archive: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("archive.cpio");
        std::fs::write(&file, archive).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        tool(
            Command::new("cpio")
                .args(["-idmu", "--no-absolute-filenames", "--quiet", "-F"])
                .arg(&file)
                .current_dir(&root),
            "cpio",
        );
        std::fs::remove_file(&file).unwrap();
        dir
    }

    #[test]
    fn write_cpio_extracts_with_gnu_cpio() {
        let image = sample_image();
        let archive = cpio_bytes(&image);
        let dir = extract(&archive);
        let root = dir.path().join("root");
        for (path, entry) in &image.manifest.entries {
            let host = root.join(path.relative());
            let meta = std::fs::symlink_metadata(&host)
                .unwrap_or_else(|e| panic!("{}: {e}", host.display()));
            match &entry.kind {
                Kind::Dir => assert!(meta.is_dir(), "{path}"),
                Kind::File | Kind::HardLink { .. } => {
                    assert!(meta.is_file(), "{path}");
                    let head = match &entry.kind {
                        Kind::HardLink { to } => to,
                        _ => path,
                    };
                    assert_eq!(std::fs::read(&host).unwrap(), &*image.data[head], "{path}");
                }
                Kind::Symlink { target } => {
                    assert!(meta.file_type().is_symlink(), "{path}");
                    assert_eq!(std::fs::read_link(&host).unwrap().to_str(), Some(&**target));
                }
                // Not root: cpio cannot mknod, and says so without failing.
                Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                    if nix::unistd::geteuid().is_root() {
                        assert!(meta.file_type().is_char_device(), "{path}");
                        let rdev = meta.rdev();
                        assert_eq!(
                            (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)),
                            (u64::from(*major), u64::from(*minor)),
                            "{path}"
                        );
                        assert_eq!(meta.permissions().mode() & 0o7777, entry.mode, "{path}");
                    }
                    continue;
                }
            }
            // GNU cpio sets neither the mode nor the mtime of a symlink, and directories
            // get their mtime changed by the files extracted into them.
            if !meta.file_type().is_symlink() {
                assert_eq!(meta.permissions().mode() & 0o7777, entry.mode, "{path}");
                if !meta.is_dir() {
                    assert_eq!(meta.mtime(), EPOCH as i64, "{path}");
                }
            }
        }
        // The implicit parent of /usr/lib/x86_64-linux-gnu/libc.so.6.
        let implicit = std::fs::metadata(root.join("usr/lib")).unwrap();
        assert_eq!(implicit.permissions().mode() & 0o7777, IMPLICIT_DIR_MODE);
        let a = std::fs::metadata(root.join("usr/bin/gzip")).unwrap();
        let b = std::fs::metadata(root.join("usr/bin/gunzip")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hard links share one inode");
        assert_eq!(a.nlink(), 2);
    }

    #[test]
    fn write_cpio_lists_with_gnu_cpio() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("archive.cpio");
        std::fs::write(&file, cpio_bytes(&sample_image())).unwrap();
        let out = tool(
            Command::new("cpio")
                .args(["-tv", "--quiet", "-F"])
                .arg(&file),
            "cpio",
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = text
            .lines()
            .map(|l| l.split(" -> ").next().unwrap_or(l))
            .map(|l| l.rsplit(' ').next().unwrap_or(""))
            .collect();
        let symlink_line = text
            .lines()
            .find(|l| l.ends_with(" bin -> usr/bin"))
            .unwrap();
        assert!(symlink_line.starts_with("lrwxrwxrwx"), "{text}");
        let console = text.lines().find(|l| l.ends_with(" dev/console")).unwrap();
        assert!(console.starts_with("crw-------"), "{text}");
        assert!(console.contains(" 5, "), "{text}");
        assert_eq!(
            names,
            [
                "bin",
                "dev",
                "dev/console",
                "dev/null",
                "etc",
                "etc/empty",
                "etc/hostname",
                "usr",
                "usr/bin",
                "usr/bin/gunzip",
                "usr/bin/gzip",
                "usr/bin/sh",
                "usr/bin/su",
                "usr/lib",
                "usr/lib/x86_64-linux-gnu",
                "usr/lib/x86_64-linux-gnu/libc.so.6",
            ],
            "{text}"
        );
    }

    #[test]
    fn write_cpio_layout_of_entries() {
        let archive = cpio_bytes(&sample_image());
        let archives = crate::archive::read::read_initrd(&archive).unwrap();
        assert_eq!(archives.len(), 1);
        let entries = &archives[0].entries;
        let inos: Vec<u64> = entries.iter().map(|e| e.ino).collect();
        let mut sorted = inos.clone();
        sorted.dedup();
        assert_eq!(sorted, (1..=entries.len() as u64 - 1).collect::<Vec<_>>());
        assert!(inos.windows(2).all(|w| w[0] <= w[1]), "{inos:?}");
        let gunzip = entries.iter().find(|e| e.path == "usr/bin/gunzip").unwrap();
        let gzip = entries.iter().find(|e| e.path == "usr/bin/gzip").unwrap();
        assert_eq!((gunzip.nlink, gzip.nlink), (2, 2));
        assert_eq!(gunzip.ino, gzip.ino);
        assert_eq!((gunzip.size, gzip.size), (0, 6), "data on the last name");
        assert!(entries.iter().all(|e| e.uid == 0 && e.gid == 0));
        assert!(entries.iter().all(|e| e.mtime == EPOCH));
        assert!(!entries.iter().any(|e| e.path.starts_with('/')));
    }

    #[test]
    fn write_cpio_is_deterministic() {
        let image = sample_image();
        assert_eq!(cpio_bytes(&image), cpio_bytes(&image));
    }

    #[test]
    fn write_cpio_rejects_bad_images() {
        let mut image = sample_image();
        image.data.remove(&image_path("/etc/hostname"));
        let e = write_cpio(&image, EPOCH, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::MissingData(ref p) if p.as_str() == "/etc/hostname"));

        let mut image = sample_image();
        image
            .data
            .insert(image_path("/etc/hostname"), Arc::from(&b"x"[..]));
        let e = write_cpio(&image, EPOCH, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("/etc/hostname"), "{e}");

        let mut image = sample_image();
        if let Some(e) = image
            .manifest
            .entries
            .get_mut(&image_path("/usr/bin/gunzip"))
        {
            e.kind = Kind::HardLink {
                to: image_path("/etc"),
            };
        }
        let e = write_cpio(&image, EPOCH, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::HardLinkTarget { .. }), "{e}");

        let mut image = sample_image();
        let mut entry = image.manifest.entries[&image_path("/etc/hostname")].clone();
        entry.kind = Kind::Dir;
        image
            .manifest
            .entries
            .insert(image_path("/bin/x"), entry.clone());
        let e = write_cpio(&image, EPOCH, &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/bin/x is below /bin, which is not a directory in the image"
        );

        let e = write_cpio(&sample_image(), 1 << 33, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::Epoch(_)), "{e}");
    }

    #[test]
    fn write_cpio_names_the_entry_when_output_fails() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let e = write_cpio(&sample_image(), EPOCH, &mut Full).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("writing cpio entry bin:"), "{text}");
        assert!(text.contains("No space left"), "{text}");
    }

    #[test]
    fn write_early_cpio_extracts() {
        let files = vec![(
            image_path("/kernel/x86/microcode/GenuineIntel.bin"),
            b"microcode".to_vec(),
        )];
        let mut out = Vec::new();
        write_early_cpio(&files, EPOCH, &mut out).unwrap();
        let dir = extract(&out);
        let root = dir.path().join("root");
        assert_eq!(
            std::fs::read(root.join("kernel/x86/microcode/GenuineIntel.bin")).unwrap(),
            b"microcode"
        );
        let twice = [files[0].clone(), files[0].clone()];
        let e = write_early_cpio(&twice, EPOCH, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::Duplicate(_)), "{e}");
    }
}
