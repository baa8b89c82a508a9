//! `rear-mkimage verify`: checks produced media.
//!
//! - [`verify_sums`]: an output directory against its `SHA256SUMS` (the format `sha256sum`
//!   writes and `sha256sum -c` reads: `<hex>  <name>`, or `<hex> *<name>`).
//! - [`boot_check`]: boots an ISO (as a CD), a disk image (as the first disk) or a
//!   kernel + initrd pair in QEMU ([`super::qemu`]), BIOS or UEFI, and passes when the rescue
//!   system prints [`READY_MARKER`] on the serial console; then it types `poweroff` and waits
//!   for QEMU to end. This is the check a CI pipeline runs on every medium it publishes.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::qemu::{self, Accel, Boot, Firmware, Guest, Machine, WaitEnd};
use rear_sys::sysroot::Sysroot;

/// The line `rear-restore` prints on every console when the rescue system is up.
pub const READY_MARKER: &str = "rear rescue ready";
/// How long [`boot_check`] waits for [`READY_MARKER`] unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);
/// The kernel command line for a kernel + initrd pair unless told otherwise.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0,115200n8 panic=5";
/// How many console lines a failed boot check shows.
pub const TAIL_LINES: usize = 40;
/// The name of the checksum file.
pub const SUMS: &str = "SHA256SUMS";

/// How long to wait for the shell prompt after the ready line before typing `poweroff`.
const PROMPT_WAIT: Duration = Duration::from_secs(30);
/// How long QEMU may take to end after `poweroff`.
const POWEROFF_WAIT: Duration = Duration::from_secs(60);
/// The start of the rescue shell's prompt (`RESCUE <host>:/ # `).
const PROMPT: &str = "RESCUE ";

/// Errors of `verify`; each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The checksum file could not be read.
    #[error("{}: {error}", .path.display())]
    SumsRead {
        /// The `SHA256SUMS` file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// A line of the checksum file is not `<64 hex digits>  <relative name>`.
    #[error("{}:{line}: {why}: {text:?}", .path.display())]
    SumsSyntax {
        /// The `SHA256SUMS` file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Files listed in the checksum file are missing, changed or unreadable.
    #[error("{}: {} of {total} files fail the check:{}", .path.display(), .missing.len() + .changed.len() + .unreadable.len(), failures(.missing, .changed, .unreadable))]
    Mismatch {
        /// The `SHA256SUMS` file.
        path: PathBuf,
        /// How many files it lists.
        total: usize,
        /// Names of listed files that do not exist.
        missing: Vec<String>,
        /// Names of files whose SHA-256 differs.
        changed: Vec<String>,
        /// `name (error)` of files that exist but could not be read.
        unreadable: Vec<String>,
    },
    /// The medium to boot cannot be opened.
    #[error("{}: {error}", .path.display())]
    Medium {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// QEMU could not be started (missing QEMU or OVMF, ...).
    #[error(transparent)]
    Qemu(#[from] qemu::Error),
    /// The rescue system did not report ready.
    #[error("{}: rescue system not ready ({firmware}, {accel}): {what}; last console lines:\n{console}", .path.display())]
    NotReady {
        /// The medium (the initrd for a kernel + initrd pair).
        path: PathBuf,
        /// The firmware used.
        firmware: Firmware,
        /// The accelerator used.
        accel: Accel,
        /// What happened instead.
        what: String,
        /// The last [`TAIL_LINES`] console lines.
        console: String,
    },
    /// The rescue system came up but `poweroff` did not end QEMU.
    #[error("{}: the rescue system came up but did not power off within {} s; last console lines:\n{console}", .path.display(), POWEROFF_WAIT.as_secs())]
    NoPoweroff {
        /// The medium.
        path: PathBuf,
        /// The last [`TAIL_LINES`] console lines.
        console: String,
    },
}

fn failures(missing: &[String], changed: &[String], unreadable: &[String]) -> String {
    let mut s = String::new();
    for (what, names) in [
        ("missing", missing),
        ("changed", changed),
        ("unreadable", unreadable),
    ] {
        if !names.is_empty() {
            s.push_str(&format!(" {what}: {};", names.join(", ")));
        }
    }
    s.pop();
    s
}

/// One file that matched its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Its name as listed (relative to the directory).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its hex SHA-256.
    pub sha256: String,
}

/// What [`verify_sums`] checked; every listed file matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The `SHA256SUMS` file.
    pub sums: PathBuf,
    /// The files, in the order listed.
    pub files: Vec<Checked>,
}

/// Checks every file listed in `dir/SHA256SUMS`; the error names every missing, changed or
/// unreadable file. Files are hashed in parallel.
pub fn verify_sums(dir: &Path) -> Result<VerifyReport, Error> {
    let path = dir.join(SUMS);
    let text = std::fs::read_to_string(&path).map_err(|error| Error::SumsRead {
        path: path.clone(),
        error,
    })?;
    let listed = parse_sums(&path, &text)?;
    let results: Vec<Result<(u64, String), std::io::Error>> = listed
        .par_iter()
        .map(|(_, name)| hash_file(&dir.join(name)))
        .collect();
    let (mut missing, mut changed, mut unreadable, mut files) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((want, name), got) in listed.iter().zip(results) {
        match got {
            Ok((size, sha256)) if sha256 == *want => files.push(Checked {
                name: name.clone(),
                size,
                sha256,
            }),
            Ok(_) => changed.push(name.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(name.clone()),
            Err(e) => unreadable.push(format!("{name} ({e})")),
        }
    }
    if missing.is_empty() && changed.is_empty() && unreadable.is_empty() {
        Ok(VerifyReport { sums: path, files })
    } else {
        Err(Error::Mismatch {
            path,
            total: listed.len(),
            missing,
            changed,
            unreadable,
        })
    }
}

/// Parses `SHA256SUMS`: (lower-case hex, name) per non-empty line. Names must be relative
/// and stay inside the directory.
fn parse_sums(path: &Path, text: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why| Error::SumsSyntax {
            path: path.to_path_buf(),
            line: i + 1,
            text: line.to_string(),
            why,
        };
        let (hex, rest) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected `<sha256>  <name>`"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("not a SHA-256 in hex"));
        }
        // `sha256sum` writes a space (text mode) or `*` (binary mode) before the name.
        let name = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(|| bad("expected two spaces or ` *` before the name"))?;
        let p = Path::new(name);
        if name.is_empty()
            || !p
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(bad("the name must be a relative path inside the directory"));
        }
        out.push((hex.to_ascii_lowercase(), name.to_string()));
    }
    Ok(out)
}

/// Size and hex SHA-256 of a file, read in chunks (media can be gigabytes).
fn hash_file(path: &Path) -> Result<(u64, String), std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// How the file given to [`boot_check`] is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// A CD when the file has an ISO 9660 volume descriptor, else a disk.
    Auto,
    /// As a CD.
    Cdrom,
    /// As the first disk (a USB image, or a hybrid ISO written to a stick).
    Disk,
}

/// How [`boot_check`] boots.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// A kernel: boot it with the file as its initrd (QEMU loads both).
    pub kernel: Option<PathBuf>,
    /// CD or disk (ignored with `kernel`).
    pub medium: Medium,
    /// BIOS (SeaBIOS) or UEFI (OVMF).
    pub firmware: Firmware,
    /// KVM or TCG; `Auto` uses KVM when it works.
    pub accel: Accel,
    /// How long to wait for [`READY_MARKER`].
    pub timeout: Duration,
    /// The kernel command line with `kernel` (the boot menu's entry otherwise).
    pub cmdline: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Also write the whole console output here.
    pub console_log: Option<PathBuf>,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            kernel: None,
            medium: Medium::Auto,
            firmware: Firmware::Bios,
            accel: Accel::Auto,
            timeout: DEFAULT_TIMEOUT,
            cmdline: DEFAULT_CMDLINE.to_string(),
            memory_mib: 1024,
            console_log: None,
        }
    }
}

/// A passed boot check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// What was booted and how it was attached.
    pub boot: Boot,
    /// The firmware used.
    pub firmware: Firmware,
    /// The accelerator used.
    pub accel: Accel,
    /// The kernel release the rescue system reported.
    pub release: String,
    /// From QEMU's start to the ready line.
    pub ready_after: Duration,
    /// From QEMU's start to its end.
    pub total: Duration,
}

/// Boots `file` in QEMU (see [`BootOptions`]) and passes when the rescue system reports
/// ready within `opts.timeout`; then powers it off. A failure carries the last
/// [`TAIL_LINES`] console lines.
pub fn boot_check(file: &Path, opts: &BootOptions) -> Result<BootReport, Error> {
    let sys = Sysroot::host();
    let boot = boot_of(file, opts)?;
    let machine = Machine {
        boot: boot.clone(),
        firmware: opts.firmware,
        accel: opts.accel.resolve(&sys),
        memory_mib: opts.memory_mib,
        console_log: opts.console_log.clone(),
    };
    let start = Instant::now();
    let mut guest = Guest::start(&machine, &sys)?;
    let not_ready = |guest: &Guest, what: String| Error::NotReady {
        path: file.to_path_buf(),
        firmware: machine.firmware,
        accel: machine.accel,
        what,
        console: guest.tail(TAIL_LINES),
    };
    let release = match guest.wait_for_line(READY_MARKER, start + opts.timeout) {
        Ok(rest) => rest.trim().to_string(),
        Err(WaitEnd::Timeout) => {
            return Err(not_ready(
                &guest,
                format!(
                    "{READY_MARKER:?} not seen within {} s",
                    opts.timeout.as_secs()
                ),
            ));
        }
        Err(WaitEnd::Exited) => {
            let status = guest
                .wait_exit(Instant::now() + Duration::from_secs(5))
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown status".into());
            return Err(not_ready(
                &guest,
                format!("QEMU ended ({status}) before {READY_MARKER:?}"),
            ));
        }
    };
    let ready_after = start.elapsed();
    log::info!(
        "{}: rescue system ready after {:.1} s",
        file.display(),
        ready_after.as_secs_f64()
    );
    // Typed before the shell reads the serial line, the command could be lost.
    if guest
        .wait_for(PROMPT, Instant::now() + PROMPT_WAIT)
        .is_err()
    {
        log::warn!(
            "{}: no shell prompt seen; typing poweroff anyway",
            file.display()
        );
    }
    let _ = guest.send_line("poweroff");
    if guest.wait_exit(Instant::now() + POWEROFF_WAIT).is_none() {
        return Err(Error::NoPoweroff {
            path: file.to_path_buf(),
            console: guest.tail(TAIL_LINES),
        });
    }
    Ok(BootReport {
        boot,
        firmware: machine.firmware,
        accel: machine.accel,
        release,
        ready_after,
        total: start.elapsed(),
    })
}

/// What to boot: a kernel + initrd pair, or the file as CD or disk.
fn boot_of(file: &Path, opts: &BootOptions) -> Result<Boot, Error> {
    let opened = |path: &Path| {
        std::fs::File::open(path).map_err(|error| Error::Medium {
            path: path.to_path_buf(),
            error,
        })
    };
    let mut f = opened(file)?;
    if let Some(kernel) = &opts.kernel {
        opened(kernel)?;
        return Ok(Boot::Kernel {
            kernel: kernel.clone(),
            initrd: file.to_path_buf(),
            cmdline: opts.cmdline.clone(),
        });
    }
    let cd = match opts.medium {
        Medium::Cdrom => true,
        Medium::Disk => false,
        Medium::Auto => is_iso9660(&mut f),
    };
    Ok(if cd {
        Boot::Cdrom(file.to_path_buf())
    } else {
        Boot::Disk(file.to_path_buf())
    })
}

/// Whether the first volume descriptor (sector 16) says `CD001` (ECMA-119 8.1).
fn is_iso9660(f: &mut (impl Read + std::io::Seek)) -> bool {
    let mut id = [0u8; 5];
    f.seek(std::io::SeekFrom::Start(16 * 2048 + 1)).is_ok()
        && f.read_exact(&mut id).is_ok()
        && &id == b"CD001"
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::manifest::sha256_hex;

    fn out_dir() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("a.iso"), b"iso bytes").unwrap();
        std::fs::create_dir(d.join("pxe")).unwrap();
        std::fs::write(d.join("pxe/vmlinuz"), b"kernel").unwrap();
        std::fs::write(d.join("b.img"), b"usb").unwrap();
        let sums = format!(
            "{}  a.iso\n{} *pxe/vmlinuz\n{}  b.img\n",
            sha256_hex(b"iso bytes"),
            sha256_hex(b"kernel").to_uppercase(),
            sha256_hex(b"usb"),
        );
        std::fs::write(d.join(SUMS), sums).unwrap();
        tmp
    }

    #[test]
    fn verify_sums_ok() {
        let tmp = out_dir();
        let r = verify_sums(tmp.path()).unwrap();
        let names: Vec<_> = r.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.iso", "pxe/vmlinuz", "b.img"]);
        assert_eq!(r.files[0].size, 9);
        assert_eq!(r.files[1].sha256, sha256_hex(b"kernel"));
    }

    #[test]
    fn verify_sums_changed_file() {
        let tmp = out_dir();
        std::fs::write(tmp.path().join("b.img"), b"USB").unwrap();
        let e = verify_sums(tmp.path()).unwrap_err();
        assert!(matches!(&e, Error::Mismatch { changed, .. } if changed == &["b.img"]));
        assert!(
            e.to_string()
                .ends_with("SHA256SUMS: 1 of 3 files fail the check: changed: b.img"),
            "{e}"
        );
    }

    #[test]
    fn verify_sums_missing_file() {
        let tmp = out_dir();
        std::fs::remove_file(tmp.path().join("a.iso")).unwrap();
        std::fs::write(tmp.path().join("b.img"), b"x").unwrap();
        let e = verify_sums(tmp.path()).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "SHA256SUMS: 2 of 3 files fail the check: missing: a.iso; changed: b.img"
            ),
            "{e}"
        );
    }

    #[test]
    fn verify_sums_no_sums_file() {
        let tmp = tempfile::tempdir().unwrap();
        let e = verify_sums(tmp.path()).unwrap_err();
        assert!(matches!(e, Error::SumsRead { .. }));
        assert!(e.to_string().contains("SHA256SUMS: "), "{e}");
    }

    #[test]
    fn parse_sums_rejects_bad_lines() {
        let p = Path::new("/o/SHA256SUMS");
        let h = "0".repeat(64);
        assert_eq!(parse_sums(p, &format!("{h}  x\n\n")).unwrap().len(), 1);
        for (text, why) in [
            ("garbage", "expected `<sha256>  <name>`"),
            ("abc  x", "not a SHA-256 in hex"),
            (
                &format!("{h} x"),
                "expected two spaces or ` *` before the name",
            ),
            (
                &format!("{h}  ../etc/passwd"),
                "the name must be a relative path inside the directory",
            ),
            (
                &format!("{h}  /etc/passwd"),
                "the name must be a relative path inside the directory",
            ),
        ] {
            match parse_sums(p, text) {
                Err(Error::SumsSyntax {
                    why: w, line: 1, ..
                }) => assert_eq!(w, why, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn boot_of_detects_iso() {
        let tmp = tempfile::tempdir().unwrap();
        let iso = tmp.path().join("x.iso");
        let mut bytes = vec![0u8; 17 * 2048];
        bytes[16 * 2048..16 * 2048 + 6].copy_from_slice(b"\x01CD001");
        std::fs::write(&iso, &bytes).unwrap();
        let img = tmp.path().join("x.img");
        std::fs::write(&img, vec![0u8; 4096]).unwrap();
        let o = BootOptions::default();
        assert_eq!(boot_of(&iso, &o).unwrap(), Boot::Cdrom(iso.clone()));
        assert_eq!(boot_of(&img, &o).unwrap(), Boot::Disk(img.clone()));
        let disk = BootOptions {
            medium: Medium::Disk,
            ..BootOptions::default()
        };
        assert_eq!(boot_of(&iso, &disk).unwrap(), Boot::Disk(iso.clone()));
        let pair = BootOptions {
            kernel: Some(img.clone()),
            ..BootOptions::default()
        };
        assert_eq!(
            boot_of(&iso, &pair).unwrap(),
            Boot::Kernel {
                kernel: img,
                initrd: iso,
                cmdline: DEFAULT_CMDLINE.into()
            }
        );
    }

    #[test]
    fn boot_check_missing_file_named() {
        let e =
            boot_check(Path::new("/nonexistent/rear.iso"), &BootOptions::default()).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/rear.iso: "), "{e}");
    }
}
