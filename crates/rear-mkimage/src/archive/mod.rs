//! Archive stage: [`rear_model::manifest::Image`] -> compressed newc cpio, and reading one back.
//!
//! Input: the resolved [`Image`] and `SOURCE_DATE_EPOCH`; output: the initramfs bytes.
//! [`cpio`] writes the deterministic newc stream (and the early microcode archive),
//! [`compress`] compresses it in process while it is written, [`read`] parses any initrd the
//! kernel would accept (for `rear-mkimage inspect` and `verify`). [`write_initrd`] chains the
//! first two: the uncompressed archive is never held in memory.

pub mod compress;
pub mod cpio;
pub mod read;

use std::io::{self, BufWriter, Write};

pub use compress::Compression;
use rear_model::manifest::Image;

/// Size of the buffer between the cpio writer (many small header writes) and the compressor.
const BUFFER: usize = 256 * 1024;

/// Errors of [`write_initrd`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the cpio stream failed (bad image or failed output).
    #[error(transparent)]
    Cpio(#[from] cpio::Error),
    /// Setting up or finishing the compressor failed.
    #[error(transparent)]
    Compress(#[from] compress::Error),
}

/// Sizes of a written initramfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// How it was compressed.
    pub compression: Compression,
    /// Bytes of the newc archive.
    pub raw: u64,
    /// Bytes written to the output.
    pub compressed: u64,
}

/// Counts the bytes that pass through to `inner`.
struct Counter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `image` as a newc archive compressed with `compression` to `out`, streaming (the
/// cpio writer feeds the compressor through a buffer), and flushes `out`.
pub fn write_initrd(
    image: &Image,
    epoch: u64,
    compression: Compression,
    out: impl Write,
) -> Result<Stats, Error> {
    let counter = Counter {
        inner: out,
        count: 0,
    };
    let encoder = compress::compressor(compression, counter)?;
    let mut buffered = BufWriter::with_capacity(BUFFER, encoder);
    let raw = cpio::write_cpio(image, epoch, &mut buffered)?;
    let encoder = buffered.into_inner().map_err(|e| compress::Error::Encode {
        name: compression.name(),
        source: e.into_error(),
    })?;
    let counter = encoder.finish()?;
    Ok(Stats {
        compression,
        raw,
        compressed: counter.count,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rear_model::manifest::{Entry, ImagePath, Kind, Manifest, Source};
    use rear_sys::exec;
    use std::collections::BTreeMap;
    use std::process::{Command, Output};
    use std::sync::Arc;

    /// The epoch of the test archives: 2023-11-14 22:13:20 UTC.
    pub(crate) const EPOCH: u64 = 1_700_000_000;

    pub(crate) fn image_path(s: &str) -> ImagePath {
        ImagePath::new(s).unwrap()
    }

    /// Runs a tool that a test needs; a missing tool fails the test naming the package.
    pub(crate) fn tool(cmd: &mut Command, package: &str) -> Output {
        match exec::run(cmd, Some(package)) {
            Ok(out) => out,
            Err(e @ exec::Error::ToolMissing { .. }) => {
                panic!("{e}: install the Debian package {package} to run this test")
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Pseudo-random bytes (compress poorly, like code).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// A small image: dirs, files (one empty, one setuid), a hard link pair, a symlink,
    /// `/dev/console` (5:1) and `/dev/null` (1:3); `/usr` and `/usr/lib...` are not listed.
    pub(crate) fn sample_image() -> Image {
        let mut manifest = Manifest::new("6.1.0-test-amd64");
        let mut data = BTreeMap::new();
        let mut add = |path: &str, kind: Kind, mode: u32, bytes: Option<Vec<u8>>| {
            let size = bytes.as_ref().map_or(0, |b| b.len() as u64);
            manifest.entries.insert(
                image_path(path),
                Entry {
                    kind,
                    mode,
                    size,
                    sha256: bytes.as_deref().map(rear_model::manifest::sha256_hex),
                    source: Source::Generated { by: "test".into() },
                    why: String::new(),
                },
            );
            if let Some(b) = bytes {
                data.insert(image_path(path), Arc::<[u8]>::from(b));
            }
        };
        add(
            "/bin",
            Kind::Symlink {
                target: "usr/bin".into(),
            },
            0o777,
            None,
        );
        add("/dev", Kind::Dir, 0o755, None);
        add(
            "/dev/console",
            Kind::CharDevice { major: 5, minor: 1 },
            0o600,
            None,
        );
        add(
            "/dev/null",
            Kind::CharDevice { major: 1, minor: 3 },
            0o666,
            None,
        );
        add("/etc", Kind::Dir, 0o755, None);
        add("/etc/empty", Kind::File, 0o644, Some(Vec::new()));
        add(
            "/etc/hostname",
            Kind::File,
            0o644,
            Some(b"rescue\n".to_vec()),
        );
        add("/usr/bin", Kind::Dir, 0o755, None);
        add(
            "/usr/bin/gunzip",
            Kind::File,
            0o755,
            Some(b"gzip!\n".to_vec()),
        );
        add(
            "/usr/bin/gzip",
            Kind::HardLink {
                to: image_path("/usr/bin/gunzip"),
            },
            0o755,
            None,
        );
        add("/usr/bin/sh", Kind::File, 0o755, Some(noise(70_001, 1)));
        add("/usr/bin/su", Kind::File, 0o4755, Some(noise(3, 2)));
        let mut libc = noise(300_000, 3);
        libc.extend(std::iter::repeat_n(b'A', 200_000));
        add(
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            Kind::File,
            0o755,
            Some(libc),
        );
        Image { manifest, data }
    }

    fn all() -> [Compression; 4] {
        [
            Compression::None,
            Compression::Gzip { level: 6 },
            Compression::Xz { level: 6 },
            Compression::Zstd { level: 3 },
        ]
    }

    fn written(c: Compression) -> (Vec<u8>, Stats) {
        let mut out = Vec::new();
        let stats = write_initrd(&sample_image(), EPOCH, c, &mut out).unwrap();
        (out, stats)
    }

    #[test]
    fn write_initrd_reads_back_with_every_compression() {
        let image = sample_image();
        let mut plain = Vec::new();
        cpio::write_cpio(&image, EPOCH, &mut plain).unwrap();
        for c in all() {
            let (bytes, stats) = written(c);
            assert_eq!(stats.compressed, bytes.len() as u64, "{c}");
            assert_eq!(stats.raw, plain.len() as u64, "{c}");
            if c == Compression::None {
                assert_eq!(bytes, plain);
            } else {
                assert!(stats.compressed < stats.raw, "{c}");
                assert_eq!(compress::detect(&bytes), Some(c));
            }
            let archives = read::read_initrd(&bytes).unwrap();
            assert_eq!(archives.len(), 1, "{c}");
            assert_eq!(archives[0].compression, c);
            let entries = &archives[0].entries;
            // Every manifest entry is there, with its kind, mode and data.
            for (path, entry) in &image.manifest.entries {
                let got = entries
                    .iter()
                    .find(|e| e.path == path.relative())
                    .unwrap_or_else(|| panic!("{c}: {path} missing"));
                assert_eq!(got.mode & 0o7777, entry.mode, "{c}: {path}");
                assert_eq!((got.uid, got.gid, got.mtime), (0, 0, EPOCH), "{path}");
                let want = match &entry.kind {
                    Kind::Dir => read::EntryKind::Dir,
                    Kind::File => read::EntryKind::File,
                    Kind::HardLink { to } => read::EntryKind::HardLink {
                        to: to.relative().to_string(),
                    },
                    Kind::Symlink { target } => read::EntryKind::Symlink {
                        target: target.clone(),
                    },
                    Kind::CharDevice { major, minor } => read::EntryKind::CharDevice {
                        major: *major,
                        minor: *minor,
                    },
                    Kind::BlockDevice { major, minor } => read::EntryKind::BlockDevice {
                        major: *major,
                        minor: *minor,
                    },
                };
                assert_eq!(got.kind, want, "{c}: {path}");
                if let Some(bytes) = image.data.get(path) {
                    // A hard link group's data travels on its last name.
                    let stored = entries
                        .iter()
                        .filter(|e| e.ino == got.ino)
                        .find_map(|e| e.data.as_deref().filter(|d| !d.is_empty()))
                        .unwrap_or_default();
                    assert_eq!(stored, &**bytes, "{c}: {path}");
                }
            }
            // And nothing else but the implicit parents.
            let extra: Vec<&str> = entries
                .iter()
                .filter(|e| {
                    !image
                        .manifest
                        .entries
                        .keys()
                        .any(|p| p.relative() == e.path)
                })
                .map(|e| &*e.path)
                .collect();
            assert_eq!(extra, ["usr", "usr/lib", "usr/lib/x86_64-linux-gnu"], "{c}");
        }
    }

    #[test]
    fn write_initrd_is_deterministic() {
        for c in all() {
            assert_eq!(written(c).0, written(c).0, "{c}");
        }
    }

    #[test]
    fn write_initrd_output_passes_the_real_tools() {
        let dir = tempfile::tempdir().unwrap();
        for (c, argv, package) in [
            (
                Compression::Zstd { level: 3 },
                &["zstd", "-t", "-q"][..],
                "zstd",
            ),
            (
                Compression::Xz { level: 6 },
                &["xz", "-t", "--format=xz"][..],
                "xz-utils",
            ),
            (Compression::Gzip { level: 6 }, &["gzip", "-t"][..], "gzip"),
        ] {
            let path = dir.path().join(format!("initrd.{}", c.extension()));
            std::fs::write(&path, written(c).0).unwrap();
            tool(Command::new(argv[0]).args(&argv[1..]).arg(&path), package);
        }
        let out = tool(
            Command::new("xz")
                .args(["--robot", "--list"])
                .arg(dir.path().join("initrd.cpio.xz")),
            "xz-utils",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let file_line = text
            .lines()
            .find(|l| l.starts_with("file\t"))
            .unwrap_or_else(|| panic!("no file line in {text}"));
        assert_eq!(file_line.split('\t').nth(6), Some("CRC32"), "{text}");
    }

    #[test]
    fn write_initrd_decompressed_extracts_with_gnu_cpio() {
        let dir = tempfile::tempdir().unwrap();
        for c in all() {
            let (bytes, _) = written(c);
            let raw = compress::decompress_stream(c, &bytes).unwrap().0;
            let file = dir.path().join(format!("{c}.cpio"));
            std::fs::write(&file, &raw).unwrap();
            let root = dir.path().join(format!("root-{c}"));
            std::fs::create_dir(&root).unwrap();
            tool(
                Command::new("cpio")
                    .args(["-idmu", "--no-absolute-filenames", "--quiet", "-F"])
                    .arg(&file)
                    .current_dir(&root),
                "cpio",
            );
            let image = sample_image();
            for (path, bytes) in &image.data {
                assert_eq!(
                    std::fs::read(root.join(path.relative())).unwrap(),
                    &**bytes,
                    "{c}: {path}"
                );
            }
        }
    }
}
