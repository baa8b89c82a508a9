//! Byte-stream helpers of the built-in method: a SHA-256 that counts while bytes pass, and
//! an observer that reads the tar headers going by to write the file list, without a
//! second pass over the archive.
//!
//! The observer follows POSIX.1-2001 pax (`ustar` headers of 512 bytes, `x` extended
//! headers of `LEN key=value\n` records overriding `path`, `linkpath` and `size`) and GNU
//! tar's sparse 1.0 keys (`GNU.sparse.name`, `GNU.sparse.realsize`), which is what
//! `tar --format=pax --sparse` writes.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// A writer that hashes and counts what it passes on.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the hex SHA-256 and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what it hands out.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads the rest of the input (so the hash covers the whole file even when the
    /// consumer stopped early), then returns the hex SHA-256 and the byte count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        let mut buf = vec![0u8; 1 << 16];
        while self.read(&mut buf)? != 0 {}
        Ok((hex::encode(self.hasher.finalize()), self.count))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// One member of the archive, as the file list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `-` file, `d` directory, `l` symlink, `h` hard link, `c`/`b` device, `p` FIFO.
    pub kind: char,
    /// Size of the file's content (the real size of a sparse file); 0 for others.
    pub size: u64,
    /// The member name (`./etc/passwd`).
    pub path: Vec<u8>,
    /// Symlink or hard-link target.
    pub link: Vec<u8>,
}

/// Watches a tar stream go by and collects its members.
#[derive(Debug, Default)]
pub struct TarObserver {
    /// Bytes of the current 512-byte block seen so far.
    block: Vec<u8>,
    /// Data bytes still to skip (content of a member, with padding).
    skip: u64,
    /// Data of an extended header being collected, and its unpadded length.
    pax: Option<(Vec<u8>, usize)>,
    /// Overrides from the last extended header.
    pending: Vec<(String, Vec<u8>)>,
    /// Members seen.
    pub members: Vec<Member>,
    /// Whether the end-of-archive block was seen.
    pub ended: bool,
    /// The first malformed header, if any.
    pub error: Option<String>,
}

fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256 for values that do not fit the octal field.
        return Some(
            field[1..]
                .iter()
                .fold(u64::from(field[0] & 0x7f), |n, b| (n << 8) | u64::from(*b)),
        );
    }
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

/// `LEN key=value\n` records of a pax extended header.
pub fn pax_records(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= sp + 1 || len > rest.len() {
            break;
        }
        let record = &rest[sp + 1..len - 1];
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            out.push((
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                record[eq + 1..].to_vec(),
            ));
        }
        rest = &rest[len..];
    }
    out
}

impl TarObserver {
    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.ended || self.error.is_some() {
                return;
            }
            if self.skip > 0 {
                let n = (self.skip.min(bytes.len() as u64)) as usize;
                if let Some((data, len)) = &mut self.pax {
                    let want = len.saturating_sub(data.len()).min(n);
                    data.extend_from_slice(&bytes[..want]);
                }
                self.skip -= n as u64;
                bytes = &bytes[n..];
                if self.skip == 0
                    && let Some((data, _)) = self.pax.take()
                {
                    self.pending = pax_records(&data);
                }
                continue;
            }
            let n = (512 - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.block.len() == 512 {
                let block = std::mem::take(&mut self.block);
                self.header(&block);
            }
        }
    }

    fn header(&mut self, h: &[u8]) {
        if h.iter().all(|b| *b == 0) {
            self.ended = true;
            return;
        }
        let Some(size) = octal(&h[124..136]) else {
            self.error = Some(format!(
                "bad size field in the header after {} members",
                self.members.len()
            ));
            return;
        };
        let padded = size.div_ceil(512) * 512;
        let flag = h[156];
        match flag {
            b'x' => {
                self.pax = Some((Vec::with_capacity(size as usize), size as usize));
                self.skip = padded;
                if padded == 0 {
                    self.pax = None;
                }
                return;
            }
            b'g' => {
                self.skip = padded;
                return;
            }
            _ => {}
        }
        let mut path = cstr(&h[0..100]).to_vec();
        let prefix = cstr(&h[345..500]);
        if &h[257..262] == b"ustar" && !prefix.is_empty() {
            let mut p = prefix.to_vec();
            p.push(b'/');
            p.extend_from_slice(&path);
            path = p;
        }
        let mut link = cstr(&h[157..257]).to_vec();
        let mut real_size = size;
        let mut sparse_name = None;
        for (k, v) in std::mem::take(&mut self.pending) {
            match k.as_str() {
                "path" => path = v,
                "linkpath" => link = v,
                "size" => {
                    if let Some(n) = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()) {
                        real_size = n;
                    }
                }
                "GNU.sparse.name" => sparse_name = Some(v),
                "GNU.sparse.realsize" => {
                    if let Some(n) = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()) {
                        real_size = n;
                    }
                }
                _ => {}
            }
        }
        // A pax `size` record replaces the header's stored size for skipping too.
        let stored = if real_size != size && sparse_name.is_none() {
            real_size
        } else {
            size
        };
        if let Some(n) = sparse_name {
            path = n;
        }
        let kind = match flag {
            b'0' | 0 | b'7' => '-',
            b'1' => 'h',
            b'2' => 'l',
            b'3' => 'c',
            b'4' => 'b',
            b'5' => 'd',
            b'6' => 'p',
            _ => '?',
        };
        let carries_data = matches!(kind, '-' | '?');
        self.members.push(Member {
            kind,
            size: if kind == '-' { real_size } else { 0 },
            path,
            link: if matches!(kind, 'l' | 'h') {
                link
            } else {
                Vec::new()
            },
        });
        if carries_data {
            self.skip = stored.div_ceil(512) * 512;
        }
    }
}

/// Escapes a name for one line of the file list: backslash, tab and newline and other
/// control bytes become `\\`, `\t`, `\n` and `\xNN`; other non-UTF-8 bytes too.
pub fn escape(name: &[u8]) -> String {
    let mut s = String::new();
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\t' => s.push_str("\\t"),
                '\n' => s.push_str("\\n"),
                c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// The file list: a line per member, `TYPE<TAB>SIZE<TAB>NAME[<TAB>LINK TARGET]`.
pub fn file_list(members: &[Member]) -> String {
    let mut out = String::new();
    for m in members {
        out.push(m.kind);
        out.push('\t');
        out.push_str(&m.size.to_string());
        out.push('\t');
        out.push_str(&escape(&m.path));
        if !m.link.is_empty() {
            out.push('\t');
            out.push_str(&escape(&m.link));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_parse_lengths() {
        let data = b"30 mtime=1749734112.123456789\n21 path=dir/a b\xff.txt\n";
        let r = pax_records(data);
        assert_eq!(r[0].0, "mtime");
        assert_eq!(r[1], ("path".to_string(), b"dir/a b\xff.txt".to_vec()));
    }

    #[test]
    fn escape_keeps_lines_whole() {
        assert_eq!(escape(b"a\tb\nc\\d\x01\xff"), "a\\tb\\nc\\\\d\\x01\\xff");
    }

    #[test]
    fn octal_reads_both_encodings() {
        assert_eq!(octal(b"00000001750\0"), Some(1000));
        assert_eq!(
            octal(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            Some(1 << 32)
        );
        assert_eq!(octal(b"zz"), None);
    }
}
