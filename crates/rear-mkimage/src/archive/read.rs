//! Reading an initramfs back, for `rear-mkimage inspect` (what dracut's `lsinitrd` does).
//!
//! Stage: inspect and verify. Input: the bytes of an initrd file; output: the cpio archives in
//! it with their entries, and an `ls -l`-like listing.
//!
//! It accepts what the kernel accepts (`unpack_to_rootfs` in `init/initramfs.c`): a sequence of
//! segments, each an uncompressed newc archive starting at a 4-byte-aligned offset or one
//! gzip member, xz stream or zstd frame, with zero bytes between them. A compressed segment may
//! hold several archives separated by zero padding. Debian's initramfs-tools writes an early
//! uncompressed archive (CPU microcode) followed by a zstd one. Entries are parsed with
//! hadris-cpio's streaming reader; an archive may end without `TRAILER!!!` at the end of its
//! segment, as the kernel allows. Corrupt input is an error naming the offset: in the file, or
//! in the data decompressed from the stream that starts at a given offset of the file.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use hadris_cpio::sync::CpioReader;
use hadris_fs::{DateTime, PathError};
use hadris_io::sync::Read as _;

use super::compress::{self, Compression};

/// File type bits of a mode (`S_IFMT`) and the types, as `stat(2)` defines them.
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

/// Where in the input something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Byte offset: in the file, or in the decompressed data of `stream`.
    pub offset: u64,
    /// The compression and file offset of the stream `offset` is inside, if any.
    pub stream: Option<(Compression, u64)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}", self.offset)?;
        if let Some((c, at)) = self.stream {
            write!(
                f,
                " of the data decompressed from the {} stream at offset {at}",
                c.name()
            )?;
        }
        Ok(())
    }
}

/// Errors of reading an initrd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing but zero bytes (or nothing at all).
    #[error("the input holds no cpio archive")]
    Empty,
    /// Bytes that are neither cpio nor a compressed stream.
    #[error("no cpio header or known compression at offset {offset} (bytes {magic})")]
    Magic {
        /// Offset in the file.
        offset: u64,
        /// The first bytes there, in hex.
        magic: String,
    },
    /// A cpio header where the kernel does not look for one.
    #[error("cpio header at offset {offset} is not 4-byte aligned")]
    Unaligned {
        /// Offset in the file.
        offset: u64,
    },
    /// A compression the kernel may know but this reader does not.
    #[error("{name} compressed data at offset {offset} is not supported")]
    Unsupported {
        /// Offset in the file.
        offset: u64,
        /// The compression.
        name: &'static str,
    },
    /// A compressed stream that does not decompress.
    #[error("stream at offset {offset}: {source}")]
    Decompress {
        /// Offset of the stream in the file.
        offset: u64,
        /// What the decompressor said.
        source: compress::Error,
    },
    /// Something other than a cpio header or zero padding inside decompressed data.
    #[error("junk at {at}: expected a 4-byte-aligned cpio header or zero padding")]
    Junk {
        /// Where.
        at: Location,
    },
    /// hadris-cpio found a corrupt header, name, padding or trailer.
    #[error("corrupt cpio archive at {at}: {}", describe(.error))]
    Cpio {
        /// Where the reader stopped.
        at: Location,
        /// What it found (boxed: it is large).
        error: Box<PathError>,
    },
    /// An entry whose data runs past the end of its segment.
    #[error("cpio entry {path} at {at} has {size} bytes of data, but only {left} follow")]
    Truncated {
        /// The entry's name.
        path: String,
        /// Its header.
        at: Location,
        /// The size in the header.
        size: u64,
        /// Bytes left in the segment.
        left: u64,
    },
}

/// The message of a hadris error and of its cause.
fn describe(e: &PathError) -> String {
    let mut s = e.to_string();
    if let Some(cause) = std::error::Error::source(e) {
        s.push_str(": ");
        s.push_str(&cause.to_string());
    }
    s
}

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (the first name of a hard link group too).
    File,
    /// A later name of a hard link group (same inode as an earlier regular file).
    HardLink {
        /// The first name of the group in this archive.
        to: String,
    },
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink {
        /// Its target.
        target: String,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

/// One entry of an archive, with the values of its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// The name as stored (normally relative, `usr/bin/sh`); bytes that are not UTF-8 are
    /// shown as U+FFFD.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// The whole mode: file type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Data size in the header (0 on the names of a hard link group that carry no data).
    pub size: u64,
    /// Modification time, seconds since 1970.
    pub mtime: u64,
    /// Link count.
    pub nlink: u32,
    /// Inode number.
    pub ino: u64,
    /// The data of a regular file (hard link names included), as stored in this entry.
    pub data: Option<Vec<u8>>,
}

/// One cpio archive of an initrd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// How the segment holding it is compressed; detected streams have the default level.
    pub compression: Compression,
    /// File offset of the segment (the archive itself, or its compressed stream).
    pub offset: u64,
    /// The entries in archive order, without the trailer.
    pub entries: Vec<ArchiveEntry>,
}

/// Reads every archive of an initrd: one or more segments, each an uncompressed cpio
/// archive or a gzip/xz/zstd stream of archives, with zero padding between them.
pub fn read_initrd(bytes: &[u8]) -> Result<Vec<Archive>, Error> {
    let mut archives = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest[0] == 0 {
            pos += rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
            continue;
        }
        let offset = pos as u64;
        if compress::is_cpio(rest) {
            if !pos.is_multiple_of(4) {
                return Err(Error::Unaligned { offset });
            }
            let at = |o: u64| Location {
                offset: offset + o,
                stream: None,
            };
            let (entries, used) = read_archive(rest, &at)?;
            archives.push(Archive {
                compression: Compression::None,
                offset,
                entries,
            });
            pos += used;
        } else if let Some(c) = compress::detect(rest) {
            let (data, used) = compress::decompress_stream(c, rest)
                .map_err(|source| Error::Decompress { offset, source })?;
            read_segment(&data, c, offset, &mut archives)?;
            pos += used;
        } else if let Some(name) = compress::detect_unsupported(rest) {
            return Err(Error::Unsupported { offset, name });
        } else {
            return Err(Error::Magic {
                offset,
                magic: hex::encode(&rest[..rest.len().min(8)]),
            });
        }
    }
    if archives.is_empty() {
        return Err(Error::Empty);
    }
    Ok(archives)
}

/// Reads the archives in the decompressed data of the `c` stream at file offset `offset`.
fn read_segment(
    data: &[u8],
    c: Compression,
    offset: u64,
    archives: &mut Vec<Archive>,
) -> Result<(), Error> {
    let at = |o: u64| Location {
        offset: o,
        stream: Some((c, offset)),
    };
    let first = archives.len();
    let mut p = 0usize;
    loop {
        p += data[p..]
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(data.len() - p);
        if p == data.len() {
            break;
        }
        if !p.is_multiple_of(4) || !compress::is_cpio(&data[p..]) {
            return Err(Error::Junk { at: at(p as u64) });
        }
        let base = p as u64;
        let (entries, used) = read_archive(&data[p..], &|o| at(base + o))?;
        archives.push(Archive {
            compression: c,
            offset,
            entries,
        });
        p += used;
    }
    if archives.len() == first {
        // A stream of nothing but padding: the kernel accepts it; show it.
        archives.push(Archive {
            compression: c,
            offset,
            entries: Vec::new(),
        });
    }
    Ok(())
}

/// Reads one archive from the start of `input`, up to its trailer or the end of `input`;
/// returns its entries and the bytes it took. `at` turns an offset in `input` into a location.
fn read_archive(
    input: &[u8],
    at: &dyn Fn(u64) -> Location,
) -> Result<(Vec<ArchiveEntry>, usize), Error> {
    let mut reader = CpioReader::new(input);
    let mut entries = Vec::new();
    // First name of each (dev, ino) of a regular file with nlink > 1, for hard links.
    let mut first_name: HashMap<(u32, u32, u64), String> = HashMap::new();
    loop {
        let mut entry = match reader.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => {
                return Err(Error::Cpio {
                    at: at(reader.offset()),
                    error: Box::new(PathError::from(e)),
                });
            }
        };
        let path = String::from_utf8_lossy(entry.path()).into_owned();
        let header = entry.offset();
        let size = entry.len();
        let left = (input.len() as u64).saturating_sub(entry.data_offset());
        if size > left {
            return Err(Error::Truncated {
                path,
                at: at(header),
                size,
                left,
            });
        }
        let mode = entry.mode();
        let mut data = None;
        let kind = match mode & S_IFMT {
            S_IFDIR => EntryKind::Dir,
            S_IFCHR => EntryKind::CharDevice {
                major: entry.rdev().major(),
                minor: entry.rdev().minor(),
            },
            S_IFBLK => EntryKind::BlockDevice {
                major: entry.rdev().major(),
                minor: entry.rdev().minor(),
            },
            S_IFIFO => EntryKind::Fifo,
            S_IFSOCK => EntryKind::Socket,
            S_IFLNK | S_IFREG => {
                // `size` fits: it is at most the length of `input`.
                let mut buf = vec![0u8; size as usize];
                if let Err(e) = entry.read_exact(&mut buf) {
                    let error =
                        PathError::from(hadris_io::Error::<std::convert::Infallible>::from(e));
                    return Err(Error::Cpio {
                        at: at(header),
                        error: Box::new(error),
                    });
                }
                if mode & S_IFMT == S_IFLNK {
                    EntryKind::Symlink {
                        target: String::from_utf8_lossy(&buf).into_owned(),
                    }
                } else {
                    data = Some(buf);
                    let key = (entry.dev().major(), entry.dev().minor(), entry.ino());
                    match first_name.get(&key) {
                        Some(to) if entry.nlink() > 1 => EntryKind::HardLink { to: to.clone() },
                        _ => {
                            if entry.nlink() > 1 {
                                first_name.insert(key, path.clone());
                            }
                            EntryKind::File
                        }
                    }
                }
            }
            // hadris-cpio rejects other type bits; the reader's error names the offset.
            _ => {
                return Err(Error::Cpio {
                    at: at(header),
                    error: Box::new(PathError::new(
                        hadris_fs::ErrorKind::Corrupt,
                        "unknown file type",
                    )),
                });
            }
        };
        entries.push(ArchiveEntry {
            path,
            kind,
            mode,
            uid: entry.uid(),
            gid: entry.gid(),
            size,
            mtime: entry.mtime(),
            nlink: entry.nlink(),
            ino: entry.ino(),
            data,
        });
    }
    // `offset` counts the bytes of `input` read, which is at most its length.
    let used = usize::try_from(reader.offset()).unwrap_or(input.len());
    Ok((entries, used.min(input.len())))
}

/// The `ls -l` mode string of a whole mode: `drwxr-xr-x`, `-rwsr-xr-x`, `crw-------`.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        S_IFSOCK => 's',
        S_IFLNK => 'l',
        S_IFREG => '-',
        S_IFBLK => 'b',
        S_IFDIR => 'd',
        S_IFCHR => 'c',
        S_IFIFO => 'p',
        _ => '?',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    // (shift of the rwx triple, special bit, its letter when x is set / not set)
    for (shift, special, set, unset) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `seconds` as `YYYY-MM-DD HH:MM` in UTC.
fn date(seconds: u64) -> String {
    match i64::try_from(seconds)
        .ok()
        .and_then(|s| DateTime::from_unix_seconds(s).ok())
    {
        Some(t) => {
            let (d, t) = t.to_civil_utc();
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                d.year(),
                d.month(),
                d.day(),
                t.hour(),
                t.minute()
            )
        }
        None => format!("@{seconds}"),
    }
}

/// One line per entry, in archive order, like `ls -l`: mode, links, owner, group, size (or
/// `major, minor` for devices), mtime (UTC), path, and `-> target` for symlinks or
/// `link to first` for the later names of a hard link group.
pub fn list(archives: &[Archive]) -> String {
    let mut out = String::new();
    for e in archives.iter().flat_map(|a| &a.entries) {
        let size = match &e.kind {
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                format!("{major}, {minor}")
            }
            _ => e.size.to_string(),
        };
        let _ = write!(
            out,
            "{} {:>3} {:>5} {:>5} {:>10} {} {}",
            mode_string(e.mode),
            e.nlink,
            e.uid,
            e.gid,
            size,
            date(e.mtime),
            e.path
        );
        match &e.kind {
            EntryKind::Symlink { target } => {
                let _ = write!(out, " -> {target}");
            }
            EntryKind::HardLink { to } => {
                let _ = write!(out, " link to {to}");
            }
            _ => {}
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::cpio::{write_cpio, write_early_cpio};
    use crate::archive::tests::{EPOCH, image_path, sample_image};
    use crate::archive::write_initrd;

    fn plain() -> Vec<u8> {
        let mut out = Vec::new();
        write_cpio(&sample_image(), EPOCH, &mut out).unwrap();
        out
    }

    #[test]
    fn mode_string_formats_types_and_special_bits() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o102644), "-rw-r-Sr--");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o020600), "crw-------");
        assert_eq!(mode_string(0o060660), "brw-rw----");
    }

    #[test]
    fn list_formats_like_ls() {
        let archives = read_initrd(&plain()).unwrap();
        let text = list(&archives);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), archives[0].entries.len());
        assert_eq!(
            lines[0],
            "lrwxrwxrwx   1     0     0          7 2023-11-14 22:13 bin -> usr/bin"
        );
        assert!(
            text.contains("crw-------   1     0     0       5, 1 2023-11-14 22:13 dev/console\n"),
            "{text}"
        );
        assert!(
            text.contains(" usr/bin/gzip link to usr/bin/gunzip\n"),
            "{text}"
        );
        assert!(text.contains("-rwsr-xr-x "), "{text}");
    }

    #[test]
    fn read_initrd_reads_concatenated_early_and_zstd() {
        let mut bytes = Vec::new();
        let micro = vec![(
            image_path("/kernel/x86/microcode/GenuineIntel.bin"),
            vec![7u8; 1000],
        )];
        write_early_cpio(&micro, EPOCH, &mut bytes).unwrap();
        // Debian pads the early archive to a 512-byte boundary.
        bytes.resize(bytes.len().next_multiple_of(512), 0);
        let early_len = bytes.len() as u64;
        write_initrd(
            &sample_image(),
            EPOCH,
            Compression::Zstd { level: 3 },
            &mut bytes,
        )
        .unwrap();
        let archives = read_initrd(&bytes).unwrap();
        assert_eq!(archives.len(), 2);
        assert_eq!(archives[0].compression, Compression::None);
        assert_eq!(archives[0].offset, 0);
        let paths: Vec<&str> = archives[0].entries.iter().map(|e| &*e.path).collect();
        assert_eq!(
            paths,
            [
                "kernel",
                "kernel/x86",
                "kernel/x86/microcode",
                "kernel/x86/microcode/GenuineIntel.bin"
            ]
        );
        assert_eq!(
            archives[0].entries[3].data.as_deref(),
            Some(&[7u8; 1000][..])
        );
        assert_eq!(archives[1].compression, Compression::Zstd { level: 3 });
        assert_eq!(archives[1].offset, early_len);
        assert_eq!(
            archives[1].entries,
            read_initrd(&plain()).unwrap()[0].entries
        );
    }

    #[test]
    fn read_initrd_reads_several_archives_in_one_stream() {
        let mut raw = plain();
        raw.extend_from_slice(&[0; 8]);
        raw.extend(plain());
        let z = compress::compress(Compression::Xz { level: 1 }, &raw).unwrap();
        let archives = read_initrd(&z).unwrap();
        assert_eq!(archives.len(), 2);
        assert_eq!(archives[0].entries, archives[1].entries);
    }

    #[test]
    fn read_initrd_errors_name_the_offset() {
        let good = plain();

        let mut bad = good.clone();
        bad.extend_from_slice(b"\0\0\0\0garbage!");
        let e = read_initrd(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "no cpio header or known compression at offset {} (bytes 6761726261676521)",
                good.len() + 4
            )
        );

        // A broken hex digit in the second header's mode field.
        // "bin": 110-byte header + "bin\0" padded to 116, then "usr/bin" padded to 8.
        let second = 124;
        let mut bad = good.clone();
        bad[second + 14] = b'x';
        let e = read_initrd(&bad).unwrap_err();
        assert!(matches!(e, Error::Cpio { .. }), "{e}");
        assert!(
            e.to_string().starts_with("corrupt cpio archive at offset "),
            "{e}"
        );

        let e = read_initrd(&good[..good.len() - 200]).unwrap_err();
        assert!(e.to_string().contains("at offset"), "{e}");

        let z = compress::compress(Compression::Gzip { level: 6 }, &good[..300]).unwrap();
        let mut bytes = vec![0u8; 4];
        bytes.extend(z);
        let e = read_initrd(&bytes).unwrap_err();
        assert!(
            e.to_string()
                .contains("of the data decompressed from the gzip stream at offset 4"),
            "{e}"
        );

        let e = read_initrd(&[0; 64]).unwrap_err();
        assert!(matches!(e, Error::Empty), "{e}");
        let e = read_initrd(b"BZh91AY&SY").unwrap_err();
        assert!(matches!(e, Error::Unsupported { name: "bzip2", .. }), "{e}");
        let mut bytes = vec![0u8; 2];
        bytes.extend(&good);
        let e = read_initrd(&bytes).unwrap_err();
        assert!(matches!(e, Error::Unaligned { offset: 2 }), "{e}");
    }

    #[test]
    fn read_initrd_lists_the_host_initrd() {
        let mut found = false;
        for entry in std::fs::read_dir("/boot").unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("initrd.img-") {
                continue;
            }
            found = true;
            let bytes = std::fs::read(&path).unwrap();
            let archives =
                read_initrd(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Early (microcode) archives are there only when a microcode package is.
            let main = archives.last().unwrap();
            assert!(
                matches!(main.compression, Compression::Zstd { .. }),
                "{}: {:?}",
                path.display(),
                main.compression
            );
            eprintln!(
                "{}: {} archive(s), {} entries",
                path.display(),
                archives.len(),
                archives.iter().map(|a| a.entries.len()).sum::<usize>()
            );
            assert!(
                archives.iter().any(|a| a
                    .entries
                    .iter()
                    .any(|e| e.path.ends_with("bin/busybox") || e.path == "init")),
                "{}",
                path.display()
            );
            let text = list(&archives);
            assert_eq!(
                text.lines().count(),
                archives.iter().map(|a| a.entries.len()).sum::<usize>()
            );
        }
        assert!(found, "no /boot/initrd.img-* on this machine");
    }
}
