//! Compression of the initramfs, in process: zstd (default, multithreaded), xz, gzip or none.
//!
//! Stage: archive. Input: the uncompressed newc stream from [`super::cpio`], written into an
//! [`Encoder`] so it never sits in memory uncompressed; output: one compressed stream of the
//! kind the Linux initramfs unpacker accepts (`init/initramfs.c`, `lib/decompress_*.c`).
//!
//! Every encoder is deterministic: gzip writes mtime 0 and no file name, xz uses a preset with
//! the CRC32 check (the kernel's xz decoder, `lib/xz`, supports only CRC32 or no check), zstd
//! stores no checksum and no content size and always runs in its multithreaded mode, whose
//! output does not depend on the number of workers. The decoders read one stream back and say
//! how much of the input it took, so [`super::read`] can walk concatenated archives.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::str::FromStr;

/// zstd level when none is given: fast enough for ~100 MB in well under a second on 2 cores.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// xz preset when none is given (what `xz` itself uses).
pub const DEFAULT_XZ_LEVEL: u32 = 6;
/// gzip level when none is given (what `gzip` itself uses).
pub const DEFAULT_GZIP_LEVEL: u32 = 6;

/// Operating-system byte of the gzip header: 3 (Unix), as GNU gzip writes it.
const GZIP_OS_UNIX: u8 = 3;

/// Magic numbers of the streams the kernel can unpack (`lib/decompress.c`).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const CPIO_MAGIC: &[u8] = b"0707";

/// Errors of compressing, decompressing or naming a compression.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A compression name that is not one of ours.
    #[error(
        "unknown compression {0:?} (expected none, gzip, xz or zstd, optionally as NAME:LEVEL)"
    )]
    Unknown(String),
    /// A level that is not a number or out of the algorithm's range.
    #[error("compression level {level:?} of {name} is not a number in {min}..={max}")]
    Level {
        /// The algorithm.
        name: &'static str,
        /// The level as given.
        level: String,
        /// The lowest level allowed.
        min: i64,
        /// The highest level allowed.
        max: i64,
    },
    /// The encoder could not be set up or failed while writing.
    #[error("{name} compressor: {source}")]
    Encode {
        /// The algorithm.
        name: &'static str,
        /// What failed.
        source: io::Error,
    },
    /// The compressed input is corrupt or cut off.
    #[error("{name} decompressor: {source}")]
    Decode {
        /// The algorithm.
        name: &'static str,
        /// What failed.
        source: io::Error,
    },
}

/// How an initramfs is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain newc cpio.
    None,
    /// gzip (deflate), `level` 0-9.
    Gzip {
        /// Compression level, 0 (store) to 9 (best).
        level: u32,
    },
    /// xz with the CRC32 check, preset `level` 0-9.
    Xz {
        /// Preset, 0 to 9.
        level: u32,
    },
    /// zstd, multithreaded, `level` as zstd takes it (negative levels are the fast modes).
    Zstd {
        /// Compression level, see `zstd::compression_level_range`.
        level: i32,
    },
}

impl Default for Compression {
    /// zstd at [`DEFAULT_ZSTD_LEVEL`].
    fn default() -> Self {
        Compression::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl Compression {
    /// The algorithm's name as [`FromStr`] takes it: `none`, `gzip`, `xz` or `zstd`.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip { .. } => "gzip",
            Compression::Xz { .. } => "xz",
            Compression::Zstd { .. } => "zstd",
        }
    }

    /// The file-name extension of an archive in this compression, without the leading dot
    /// (`cpio`, `cpio.gz`, `cpio.xz`, `cpio.zst`).
    pub fn extension(&self) -> &'static str {
        match self {
            Compression::None => "cpio",
            Compression::Gzip { .. } => "cpio.gz",
            Compression::Xz { .. } => "cpio.xz",
            Compression::Zstd { .. } => "cpio.zst",
        }
    }

    /// The same algorithm at its default level.
    fn with_default_level(self) -> Self {
        match self {
            Compression::None => Compression::None,
            Compression::Gzip { .. } => Compression::Gzip {
                level: DEFAULT_GZIP_LEVEL,
            },
            Compression::Xz { .. } => Compression::Xz {
                level: DEFAULT_XZ_LEVEL,
            },
            Compression::Zstd { .. } => Compression::Zstd {
                level: DEFAULT_ZSTD_LEVEL,
            },
        }
    }
}

impl fmt::Display for Compression {
    /// The name, with `:LEVEL` when the level is not the default; [`FromStr`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if *self != self.with_default_level() {
            match self {
                Compression::None => {}
                Compression::Gzip { level } | Compression::Xz { level } => write!(f, ":{level}")?,
                Compression::Zstd { level } => write!(f, ":{level}")?,
            }
        }
        Ok(())
    }
}

impl FromStr for Compression {
    type Err = Error;

    /// Parses `none`, `gzip`, `xz`, `zstd`, each optionally followed by `:LEVEL`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let (name, level) = match s.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (s, None),
        };
        let parse = |name: &'static str, min: i64, max: i64, default: i64| -> Result<i64, Error> {
            let Some(text) = level else {
                return Ok(default);
            };
            match text.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(Error::Level {
                    name,
                    level: text.to_string(),
                    min,
                    max,
                }),
            }
        };
        // Each value below was checked against a range inside the target type.
        match name.trim() {
            "none" if level.is_none() => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip {
                level: parse("gzip", 0, 9, DEFAULT_GZIP_LEVEL.into())? as u32,
            }),
            "xz" => Ok(Compression::Xz {
                level: parse("xz", 0, 9, DEFAULT_XZ_LEVEL.into())? as u32,
            }),
            "zstd" => {
                let range = zstd::compression_level_range();
                Ok(Compression::Zstd {
                    level: parse(
                        "zstd",
                        (*range.start()).into(),
                        (*range.end()).into(),
                        DEFAULT_ZSTD_LEVEL.into(),
                    )? as i32,
                })
            }
            _ => Err(Error::Unknown(s.to_string())),
        }
    }
}

/// The compression of a stream by its magic number, at the default level (levels are not
/// recorded in the stream); `None` for anything else, including uncompressed cpio.
pub fn detect(bytes: &[u8]) -> Option<Compression> {
    if bytes.starts_with(&ZSTD_MAGIC) {
        Some(Compression::default())
    } else if bytes.starts_with(&XZ_MAGIC) {
        Some(Compression::Xz {
            level: DEFAULT_XZ_LEVEL,
        })
    } else if bytes.starts_with(&GZIP_MAGIC) {
        Some(Compression::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        })
    } else {
        None
    }
}

/// Whether `bytes` start like a cpio header (`0707`: newc, newc with checksums or odc).
pub fn is_cpio(bytes: &[u8]) -> bool {
    bytes.starts_with(CPIO_MAGIC)
}

/// The name of a compression the kernel may know but this crate does not read, by magic
/// (`lib/decompress.c`), for error messages.
pub fn detect_unsupported(bytes: &[u8]) -> Option<&'static str> {
    const OTHERS: [(&[u8], &str); 6] = [
        (&[0x1f, 0x9e], "old gzip"),
        (b"BZh", "bzip2"),
        (&[0x5d, 0x00, 0x00], "lzma"),
        (&[0x89, 0x4c, 0x5a, 0x4f], "lzo"),
        (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4 frame"),
    ];
    OTHERS
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, name)| *name)
}

/// A streaming compressor: write the uncompressed bytes into it, then call
/// [`Encoder::finish`] to end the stream and get the output back.
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.inner {
            Inner::None(_) => "none",
            Inner::Gzip(_) => "gzip",
            Inner::Xz(_) => "xz",
            Inner::Zstd(_) => "zstd",
        };
        f.debug_struct("Encoder")
            .field("compression", &name)
            .finish()
    }
}

/// Workers for the zstd encoder: one per CPU.
fn zstd_workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// A zstd encoder in multithreaded mode with `workers` (at least 1) worker threads. With one
/// worker or many the output is the same; single-threaded mode (0) would differ.
fn zstd_encoder<W: Write>(
    out: W,
    level: i32,
    workers: u32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(out, level)?;
    enc.multithread(workers.max(1))?;
    enc.include_checksum(false)?;
    enc.include_contentsize(false)?;
    Ok(enc)
}

/// A streaming compressor for `c` writing into `out`.
pub fn compressor<W: Write>(c: Compression, out: W) -> Result<Encoder<W>, Error> {
    let encode = |source| Error::Encode {
        name: c.name(),
        source,
    };
    let inner = match c {
        Compression::None => Inner::None(out),
        Compression::Gzip { level } => Inner::Gzip(
            flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(GZIP_OS_UNIX)
                .write(out, flate2::Compression::new(level.min(9))),
        ),
        Compression::Xz { level } => {
            let stream =
                liblzma::stream::Stream::new_easy_encoder(level, liblzma::stream::Check::Crc32)
                    .map_err(|e| encode(e.into()))?;
            Inner::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
        }
        Compression::Zstd { level } => {
            Inner::Zstd(zstd_encoder(out, level, zstd_workers()).map_err(encode)?)
        }
    };
    Ok(Encoder { inner })
}

impl<W: Write> Encoder<W> {
    /// Ends the stream (trailer, checksums, flushing the workers) and returns the output.
    pub fn finish(self) -> Result<W, Error> {
        let (name, result) = match self.inner {
            Inner::None(mut w) => ("none", w.flush().map(|()| w)),
            Inner::Gzip(e) => ("gzip", e.finish()),
            Inner::Xz(e) => ("xz", e.finish()),
            Inner::Zstd(e) => ("zstd", e.finish()),
        };
        let mut w = result.map_err(|source| Error::Encode { name, source })?;
        w.flush().map_err(|source| Error::Encode { name, source })?;
        Ok(w)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::None(w) => w.write(buf),
            Inner::Gzip(e) => e.write(buf),
            Inner::Xz(e) => e.write(buf),
            Inner::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::None(w) => w.write_all(buf),
            Inner::Gzip(e) => e.write_all(buf),
            Inner::Xz(e) => e.write_all(buf),
            Inner::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::None(w) => w.flush(),
            Inner::Gzip(e) => e.flush(),
            Inner::Xz(e) => e.flush(),
            Inner::Zstd(e) => e.flush(),
        }
    }
}

/// `data` compressed as `c`, in memory.
pub fn compress(c: Compression, data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut enc = compressor(c, Vec::new())?;
    enc.write_all(data).map_err(|source| Error::Encode {
        name: c.name(),
        source,
    })?;
    enc.finish()
}

/// A reader of the decompressed bytes of the one `c` stream (one gzip member, one xz stream,
/// one zstd frame) at the start of `input`; [`Compression::None`] passes `input` through.
pub fn decompressor<'a, R: BufRead + 'a>(
    c: Compression,
    input: R,
) -> Result<Box<dyn Read + 'a>, Error> {
    Ok(match c {
        Compression::None => Box::new(input),
        Compression::Gzip { .. } => Box::new(flate2::bufread::GzDecoder::new(input)),
        Compression::Xz { .. } => Box::new(liblzma::bufread::XzDecoder::new(input)),
        Compression::Zstd { .. } => Box::new(
            zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|source| Error::Decode {
                    name: "zstd",
                    source,
                })?
                .single_frame(),
        ),
    })
}

/// Decompresses the one `c` stream at the start of `input`; returns its bytes and how many
/// bytes of `input` the stream took (what follows may be another archive).
/// [`Compression::None`] returns all of `input`.
pub fn decompress_stream(c: Compression, input: &[u8]) -> Result<(Vec<u8>, usize), Error> {
    let decode = |source| Error::Decode {
        name: c.name(),
        source,
    };
    let mut rest = input;
    let mut out = Vec::new();
    match c {
        Compression::None => {
            out.extend_from_slice(input);
            rest = &[];
        }
        Compression::Gzip { .. } => {
            let mut d = flate2::bufread::GzDecoder::new(&mut rest);
            d.read_to_end(&mut out).map_err(decode)?;
        }
        Compression::Xz { .. } => {
            let mut d = liblzma::bufread::XzDecoder::new(&mut rest);
            d.read_to_end(&mut out).map_err(decode)?;
        }
        Compression::Zstd { .. } => {
            let mut d = zstd::stream::read::Decoder::with_buffer(&mut rest)
                .map_err(decode)?
                .single_frame();
            d.read_to_end(&mut out).map_err(decode)?;
            // The last output can come before the frame's epilogue is read; take it too so
            // `rest` starts right after the frame.
            d.finish_frame().map_err(decode)?;
        }
    }
    Ok((out, input.len() - rest.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tests::tool;
    use std::process::Command;

    /// Compressible but not trivial bytes: numbered text lines, cheap to make in debug builds.
    fn sample(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 64);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(b"line ");
            v.extend_from_slice(&(x % 1000).to_le_bytes()[..2]);
            v.extend_from_slice(b" of some sample text\n");
        }
        v.truncate(len);
        v
    }

    fn all() -> [Compression; 4] {
        [
            Compression::None,
            Compression::Gzip { level: 6 },
            Compression::Xz { level: 6 },
            Compression::Zstd { level: 3 },
        ]
    }

    #[test]
    fn from_str_parses_names_and_levels() {
        assert_eq!("none".parse::<Compression>().unwrap(), Compression::None);
        assert_eq!(
            "zstd".parse::<Compression>().unwrap(),
            Compression::Zstd { level: 3 }
        );
        assert_eq!(
            "zstd:19".parse::<Compression>().unwrap(),
            Compression::Zstd { level: 19 }
        );
        assert_eq!(
            "zstd:-5".parse::<Compression>().unwrap(),
            Compression::Zstd { level: -5 }
        );
        assert_eq!(
            "xz:6".parse::<Compression>().unwrap(),
            Compression::Xz { level: 6 }
        );
        assert_eq!(
            "gzip:9".parse::<Compression>().unwrap(),
            Compression::Gzip { level: 9 }
        );
        assert_eq!(Compression::default(), Compression::Zstd { level: 3 });
    }

    #[test]
    fn from_str_rejects_bad_input() {
        let e = "lz4".parse::<Compression>().unwrap_err();
        assert!(matches!(e, Error::Unknown(ref s) if s == "lz4"), "{e}");
        let e = "xz:10".parse::<Compression>().unwrap_err();
        assert!(e.to_string().contains("\"10\" of xz"), "{e}");
        let e = "gzip:x".parse::<Compression>().unwrap_err();
        assert!(matches!(e, Error::Level { name: "gzip", .. }), "{e}");
        assert!("none:1".parse::<Compression>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for c in [
            Compression::None,
            Compression::Gzip { level: 6 },
            Compression::Gzip { level: 1 },
            Compression::Xz { level: 9 },
            Compression::Zstd { level: 3 },
            Compression::Zstd { level: -3 },
        ] {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c, "{c}");
        }
        assert_eq!(Compression::Zstd { level: 3 }.to_string(), "zstd");
        assert_eq!(Compression::Zstd { level: 19 }.to_string(), "zstd:19");
        assert_eq!(Compression::Xz { level: 6 }.extension(), "cpio.xz");
    }

    #[test]
    fn detect_reads_magic() {
        for c in all() {
            let out = compress(c, b"0707010000").unwrap();
            let want = match c {
                Compression::None => None,
                c => Some(c),
            };
            assert_eq!(detect(&out), want, "{c}");
        }
        assert!(is_cpio(b"070701"));
        assert_eq!(detect_unsupported(b"BZh91AY"), Some("bzip2"));
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn decompress_stream_round_trips_and_stops_at_stream_end() {
        let data = sample(300_000);
        for c in all() {
            let mut z = compress(c, &data).unwrap();
            let len = z.len();
            if c != Compression::None {
                z.extend_from_slice(b"\0\0\0\0TRAILING");
            }
            let (out, used) = decompress_stream(c, &z).unwrap();
            if c == Compression::None {
                assert_eq!(used, len);
            } else {
                assert_eq!(used, len, "{c} took {used} of {len} bytes");
            }
            assert_eq!(out, data, "{c}");
            let mut via_reader = Vec::new();
            decompressor(c, &z[..len])
                .unwrap()
                .read_to_end(&mut via_reader)
                .unwrap();
            assert_eq!(via_reader, data, "{c}");
        }
    }

    #[test]
    fn decompress_stream_rejects_truncated_input() {
        let data = sample(100_000);
        for c in [
            Compression::Gzip { level: 6 },
            Compression::Xz { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let z = compress(c, &data).unwrap();
            let e = decompress_stream(c, &z[..z.len() / 2]).unwrap_err();
            assert!(matches!(e, Error::Decode { .. }), "{c}: {e}");
            assert!(e.to_string().starts_with(c.name()), "{e}");
        }
    }

    #[test]
    fn compress_is_deterministic() {
        let data = sample(300_000);
        for c in all() {
            assert_eq!(
                compress(c, &data).unwrap(),
                compress(c, &data).unwrap(),
                "{c}"
            );
        }
    }

    #[test]
    fn zstd_encoder_output_does_not_depend_on_workers() {
        // More than one zstd job (4 windows of 2 MiB at level 3), so workers run in parallel.
        let data = sample(20_000_000);
        let run = |workers| {
            let mut e = zstd_encoder(Vec::new(), 3, workers).unwrap();
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(5));
    }

    #[test]
    fn gzip_header_has_no_time_and_no_name() {
        let z = compress(Compression::Gzip { level: 6 }, b"x").unwrap();
        // ID1 ID2 CM FLG MTIME(4) XFL OS
        assert_eq!(
            &z[..4],
            &[0x1f, 0x8b, 8, 0],
            "no FNAME/FEXTRA/FCOMMENT flag"
        );
        assert_eq!(&z[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(z[9], GZIP_OS_UNIX);
    }

    #[test]
    fn compress_output_passes_the_real_tools() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(1_000_000);
        for (c, file, argv, package) in [
            (
                Compression::Zstd { level: 3 },
                "a.zst",
                &["zstd", "-t", "-q"][..],
                "zstd",
            ),
            (
                Compression::Xz { level: 6 },
                "a.xz",
                &["xz", "-t", "--format=xz"][..],
                "xz-utils",
            ),
            (
                Compression::Gzip { level: 6 },
                "a.gz",
                &["gzip", "-t"][..],
                "gzip",
            ),
        ] {
            let path = dir.path().join(file);
            std::fs::write(&path, compress(c, &data).unwrap()).unwrap();
            tool(Command::new(argv[0]).args(&argv[1..]).arg(&path), package);
        }
        let out = tool(
            Command::new("xz")
                .args(["--robot", "--list"])
                .arg(dir.path().join("a.xz")),
            "xz-utils",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let file_line = text
            .lines()
            .find(|l| l.starts_with("file\t"))
            .unwrap_or_else(|| panic!("no file line in {text}"));
        assert_eq!(file_line.split('\t').nth(6), Some("CRC32"), "{text}");
    }
}
