//! Shell patterns, the one matcher of this project: `fnmatch(pattern, text, 0)` of glibc, as
//! modprobe matches module aliases and as [`crate::sysroot::Sysroot::glob`] matches each
//! component of a path.
//!
//! Module aliases are patterns (`pci:v00008086d00002922sv*sd*bc*sc*i*`,
//! `usb:v13FDp3940d0[0-2]*dc*...`) matched against the `modalias` of a device. With flags 0,
//! `*` also matches `/` and leading dots, `\` quotes the next byte, and a `[` without its `]`
//! is an ordinary byte. The matcher works on bytes, allocates nothing and backtracks only to
//! the last `*` (the classic greedy algorithm), so it is linear for the usual alias shapes.

/// Whether `text` matches the shell pattern `pattern` (`*`, `?`, `[...]` with ranges, `!`/`^`
/// negation and `[:class:]`, `\` escapes), as glibc's `fnmatch(pattern, text, 0) == 0`.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    fnmatch_bytes(pattern.as_bytes(), text.as_bytes())
}

/// The literal start of a pattern: everything before its first `*`, `?`, `[` or `\`.
///
/// Every text the pattern matches starts with it, so an index keyed by it finds the candidate
/// patterns of a text with one hash probe per prefix length.
pub fn literal_prefix(pattern: &str) -> &str {
    let end = pattern
        .bytes()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    &pattern[..end]
}

/// [`fnmatch`] on bytes (file names need not be UTF-8).
pub fn fnmatch_bytes(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // After a `*`: the pattern index just past it and the text index it currently absorbs up to.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() && p[pi] == b'*' {
            while pi < p.len() && p[pi] == b'*' {
                pi += 1;
            }
            if pi == p.len() {
                return true;
            }
            resume = Some((pi, ti));
            continue;
        }
        if pi == p.len() {
            if ti == t.len() {
                return true;
            }
        } else if ti < t.len()
            && let Some(next) = single(p, pi, t[ti])
        {
            pi = next;
            ti += 1;
            continue;
        }
        // Mismatch: let the last `*` absorb one more byte, if there is one.
        match resume {
            Some((rp, rt)) if rt < t.len() => {
                resume = Some((rp, rt + 1));
                pi = rp;
                ti = rt + 1;
            }
            _ => return false,
        }
    }
}

/// If the one-byte token at `p[pi]` (anything but `*`) matches `c`: the index after it.
fn single(p: &[u8], pi: usize, c: u8) -> Option<usize> {
    match p[pi] {
        b'?' => Some(pi + 1),
        b'[' => match bracket(p, pi + 1, c) {
            Some((true, next)) => Some(next),
            Some((false, _)) => None,
            // No closing `]`: the `[` is an ordinary byte.
            None => (c == b'[').then_some(pi + 1),
        },
        b'\\' if pi + 1 < p.len() => (p[pi + 1] == c).then_some(pi + 2),
        lit => (lit == c).then_some(pi + 1),
    }
}

/// Matches `c` against the bracket expression starting at `p[i]` (just after `[`).
/// Returns whether it matched and the index after the closing `]`, or `None` if unterminated.
fn bracket(p: &[u8], mut i: usize, c: u8) -> Option<(bool, usize)> {
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let b = *p.get(i)?;
        if b == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if b == b'['
            && p.get(i + 1) == Some(&b':')
            && let Some(len) = p[i + 2..].windows(2).position(|w| w == b":]")
        {
            matched |= class(&p[i + 2..i + 2 + len], c);
            i += 2 + len + 2;
            continue;
        }
        let (lo, next) = escaped(p, i);
        if p.get(next) == Some(&b'-') && p.get(next + 1).is_some_and(|&x| x != b']') {
            let (hi, after) = escaped(p, next + 1);
            matched |= lo <= c && c <= hi;
            i = after;
        } else {
            matched |= lo == c;
            i = next;
        }
    }
}

/// The byte at `p[i]`, or the one after it when `p[i]` is a `\`, and the index after that.
fn escaped(p: &[u8], i: usize) -> (u8, usize) {
    if p[i] == b'\\' && i + 1 < p.len() {
        (p[i + 1], i + 2)
    } else {
        (p[i], i + 1)
    }
}

/// POSIX character classes in the C locale.
fn class(name: &[u8], c: u8) -> bool {
    match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"digit" => c.is_ascii_digit(),
        b"xdigit" => c.is_ascii_hexdigit(),
        b"lower" => c.is_ascii_lowercase(),
        b"upper" => c.is_ascii_uppercase(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"blank" => c == b' ' || c == b'\t',
        b"punct" => c.is_ascii_punctuation(),
        b"print" => (0x20..0x7f).contains(&c),
        b"graph" => c.is_ascii_graphic(),
        b"cntrl" => c.is_ascii_control(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_literals_and_question_marks() {
        assert!(fnmatch("virtio:d00000002v*", "virtio:d00000002v00001AF4"));
        assert!(!fnmatch("virtio:d00000002v*", "virtio:d00000001v00001AF4"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("", ""));
        assert!(!fnmatch("", "a"));
    }

    #[test]
    fn fnmatch_stars_backtrack() {
        let pat = "pci:v00008086d00002922sv*sd*bc*sc*i*";
        assert!(fnmatch(
            pat,
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
        ));
        assert!(!fnmatch(
            pat,
            "pci:v00008086d00002923sv00001AF4sd00001100bc01sc06i01"
        ));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("a*b*c", "aXbYbZc"));
        assert!(!fnmatch("a*b*c", "aXbYbZ"));
        assert!(fnmatch("**x", "yyx"));
        assert!(fnmatch("*/x", "a/b/x"), "* matches / without FNM_PATHNAME");
        assert!(fnmatch("acpi*:PNP0303:*", "acpi:PNP0A08:PNP0303:"));
    }

    #[test]
    fn fnmatch_character_classes() {
        let pat = "usb:v13FDp3940d0[0-2]*dc*";
        assert!(fnmatch(pat, "usb:v13FDp3940d0100dc00"));
        assert!(!fnmatch(pat, "usb:v13FDp3940d0300dc00"));
        assert!(fnmatch("x[!a-c]", "xd"));
        assert!(!fnmatch("x[!a-c]", "xb"));
        assert!(fnmatch("x[^a]", "xb"));
        assert!(fnmatch("x[]]", "x]"));
        assert!(fnmatch("x[a-]", "x-"));
        assert!(fnmatch("x[[:digit:]]y", "x7y"));
        assert!(!fnmatch("x[[:digit:]]y", "xay"));
        assert!(fnmatch("x[[:xdigit:]_]", "x_"));
        assert!(fnmatch("x[", "x["), "unterminated bracket is literal");
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
    }

    #[test]
    fn literal_prefix_stops_at_first_wildcard() {
        assert_eq!(literal_prefix("pci:v0000*d*"), "pci:v0000");
        assert_eq!(literal_prefix("acpi*:PNP0303:*"), "acpi");
        assert_eq!(literal_prefix("usb:v13FDp3940d0[0-2]"), "usb:v13FDp3940d0");
        assert_eq!(literal_prefix("fs-ext4"), "fs-ext4");
        assert_eq!(literal_prefix("*"), "");
    }

    #[test]
    fn fnmatch_bytes_glob_component_cases() {
        assert!(fnmatch_bytes(b"*.conf", b"libc.conf"));
        assert!(!fnmatch_bytes(b"*.conf", b"libc.conf.bak"));
        assert!(fnmatch_bytes(b"lib?.[a-c]", b"libx.b"));
        assert!(!fnmatch_bytes(b"[!a]*", b"abc"));
        assert!(fnmatch_bytes(b"\\*", b"*"));
    }
}
