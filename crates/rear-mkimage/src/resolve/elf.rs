//! Resolve stage, ELF part: which interpreter and shared libraries a program or library needs.
//!
//! Input: the bytes of one host file ([`parse`]) and the sysroot's loader configuration
//! ([`LibraryPaths::load`], read once). Output: the host paths of its `PT_INTERP` and of each
//! `DT_NEEDED` ([`resolve`]), for one object; the caller iterates to a fixpoint.
//!
//! Nothing is executed: `ldd` runs the dynamic loader, which is unsafe on untrusted files and
//! wrong for a `--root` sysroot. Instead this module does what glibc's `ld.so` does
//! (`elf/dl-load.c` `_dl_map_object`, `elf/dl-cache.c`, `ldconfig`'s `parse_conf`):
//!
//! 1. `DT_RPATH` of the object, only when it has no `DT_RUNPATH` (`LD_LIBRARY_PATH` is the
//!    build machine's business and is ignored);
//! 2. `DT_RUNPATH`;
//! 3. the directories of `/etc/ld.so.conf` and its `include`d files (what `ldconfig` puts in
//!    `/etc/ld.so.cache`), then the trusted directories `/lib/<multiarch>`,
//!    `/usr/lib/<multiarch>`, `/lib64`, `/usr/lib64` (64-bit only), `/lib`, `/usr/lib`.
//!
//! Each directory `D` is preceded by its `D/glibc-hwcaps/<level>` subdirectories (best level
//! first). The rescue CPU is unknown at build time, so a library found in a hwcaps directory
//! is returned *together with* the baseline copy that follows it. `$ORIGIN`, `$LIB` and
//! `$PLATFORM` are expanded in search paths (`ld.so(8)`, "Dynamic string tokens"). A candidate
//! whose ELF class or machine differs from the object's is skipped, as `ld.so` does
//! (`open_verify`); only its first 64 bytes are read. [`LibraryPaths::find`] looks a soname
//! up in the system directories alone, for libraries a recipe names (`dlopen`ed ones).
//!
//! Not modelled, because one object is resolved at a time: a library the loader already has
//! in memory is matched by soname before any search (a JDK's `libjvm.so`, systemd's private
//! `libsystemd-shared-*.so` found through the executable's `RUNPATH`), and an executable's
//! `DT_RPATH` also applies to its libraries. Such a library is [`Error::NotFound`] here; the
//! caller may accept it when the closure already holds a file of that name.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use goblin::container::Ctx;
use goblin::elf::dynamic::{DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, Dynamic};
use goblin::elf::header::{
    EI_CLASS, EI_DATA, ELFCLASS32, ELFCLASS64, ELFDATA2MSB, ELFMAG, EM_386, EM_AARCH64, EM_ARM,
    EM_LOONGARCH, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64, SELFMAG,
};
use goblin::elf::program_header::{PT_INTERP, ProgramHeader};

use rear_sys::sysroot::{self, Sysroot};

/// Errors from reading ELF files and finding their libraries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file with the ELF magic that cannot be read as ELF (truncated, corrupt).
    #[error("{}: malformed ELF file: {source}", .path.display())]
    Malformed {
        /// The host path of the file.
        path: PathBuf,
        /// What goblin (or the string-table reader) found wrong.
        source: goblin::error::Error,
    },
    /// A `DT_NEEDED` library that is in none of the directories `ld.so` would search.
    #[error(
        "{}: needed library {soname} not found (searched: {})",
        .object.display(),
        shown_list(.searched)
    )]
    NotFound {
        /// The program or library that needs it.
        object: PathBuf,
        /// The `DT_NEEDED` entry, verbatim.
        soname: String,
        /// Every directory searched, in order.
        searched: Vec<PathBuf>,
    },
    /// The `PT_INTERP` program interpreter does not exist in the sysroot.
    #[error("{}: program interpreter {} not found", .object.display(), .interp.display())]
    InterpNotFound {
        /// The program.
        object: PathBuf,
        /// Its `PT_INTERP`.
        interp: PathBuf,
    },
    /// Reading the sysroot failed (the error names the path).
    #[error(transparent)]
    Sysroot(#[from] sysroot::Error),
}

fn shown_list(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "nothing".to_string();
    }
    let v: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    v.join(", ")
}

/// What the loader needs to know about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElfInfo {
    /// `PT_INTERP`: the program interpreter (`/lib64/ld-linux-x86-64.so.2`), for programs.
    pub interp: Option<PathBuf>,
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` entries, split at `:`, empty entries dropped, tokens not yet expanded.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries, split at `:`, empty entries dropped, tokens not yet expanded.
    pub runpath: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `ELFCLASS64` (true) or `ELFCLASS32`.
    pub class64: bool,
    /// `e_machine` (`EM_X86_64` = 62, ...).
    pub machine: u16,
}

/// Reads the interpreter and dynamic section of an ELF file.
///
/// `Ok(None)` when `bytes` do not start with the ELF magic (scripts, data); an
/// [`Error::Malformed`] naming `path` when they do but the file is truncated or corrupt. Only
/// the header, the program headers, the dynamic array and the strings it names are read, so
/// large libraries cost little.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Option<ElfInfo>, Error> {
    if bytes.len() < SELFMAG || &bytes[..SELFMAG] != ELFMAG {
        return Ok(None);
    }
    let bad = |source| Error::Malformed {
        path: path.to_path_buf(),
        source,
    };
    let malformed = |what: String| bad(goblin::error::Error::Malformed(what));

    let header = goblin::elf::Elf::parse_header(bytes).map_err(bad)?;
    let ctx = Ctx::new(
        header.container().map_err(bad)?,
        header.endianness().map_err(bad)?,
    );
    let phdrs = ProgramHeader::parse(
        bytes,
        to_usize(header.e_phoff),
        usize::from(header.e_phnum),
        ctx,
    )
    .map_err(bad)?;

    let mut info = ElfInfo {
        class64: header.e_ident[EI_CLASS] == ELFCLASS64,
        machine: header.e_machine,
        ..ElfInfo::default()
    };
    if let Some(ph) = phdrs.iter().find(|ph| ph.p_type == PT_INTERP) {
        let raw = slice(bytes, ph.p_offset, ph.p_filesz).ok_or_else(|| {
            malformed(format!(
                "PT_INTERP at {:#x} is outside the file",
                ph.p_offset
            ))
        })?;
        let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
        // Separate debug files (`.debug`) keep the segment but zero its bytes.
        if !raw.is_empty() {
            info.interp = Some(PathBuf::from(OsStr::from_bytes(raw)));
        }
    }

    let Some(dynamic) = Dynamic::parse(bytes, &phdrs, ctx).map_err(bad)? else {
        return Ok(Some(info));
    };
    // goblin turns DT_STRTAB's address into a file offset through PT_LOAD (0 if it cannot).
    let strtab = slice(bytes, dynamic.info.strtab as u64, dynamic.info.strsz as u64)
        .ok_or_else(|| malformed("DT_STRTAB is outside the file".to_string()))?;
    let string = |tag: &str, at: u64| -> Result<String, Error> {
        let s = strtab
            .get(to_usize(at)..)
            .and_then(|s| s.split(|&b| b == 0).next())
            .filter(|_| dynamic.info.strtab != 0)
            .ok_or_else(|| malformed(format!("{tag} string at {at:#x} is outside DT_STRTAB")))?;
        String::from_utf8(s.to_vec())
            .map_err(|_| malformed(format!("{tag} string at {at:#x} is not UTF-8")))
    };
    let split = |s: String| -> Vec<String> {
        s.split(':')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    for d in &dynamic.dyns {
        match d.d_tag {
            DT_NEEDED => info.needed.push(string("DT_NEEDED", d.d_val)?),
            DT_SONAME => info.soname = Some(string("DT_SONAME", d.d_val)?),
            DT_RPATH => info.rpath.extend(split(string("DT_RPATH", d.d_val)?)),
            DT_RUNPATH => info.runpath.extend(split(string("DT_RUNPATH", d.d_val)?)),
            _ => {}
        }
    }
    Ok(Some(info))
}

/// `bytes[offset..offset + len]`, or `None` when that is not inside `bytes`.
fn slice(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let end = offset.checked_add(len)?;
    bytes.get(usize::try_from(offset).ok()?..usize::try_from(end).ok()?)
}

/// A file offset as an index; offsets beyond the address space saturate and then fail the
/// bounds check that follows.
fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The interpreter named on a script's `#!` line: the first word after `#!`, surrounding
/// whitespace trimmed (`#!/usr/bin/env python3` gives `/usr/bin/env`; the caller handles
/// `env`). `None` when `bytes` do not start with `#!` or the line names nothing.
pub fn script_interpreter(bytes: &[u8]) -> Option<PathBuf> {
    let rest = bytes.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let word = line
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())?;
    Some(PathBuf::from(OsStr::from_bytes(word)))
}

/// What differs between architectures in the loader's search: `(e_machine, 64-bit, Debian
/// multiarch tuple, what `$PLATFORM` gives on a typical machine (the kernel's `AT_PLATFORM`),
/// `glibc-hwcaps` subdirectories best first (glibc `sysdeps/*/dl-hwcaps-subdirs.c`))`.
type Arch = (
    u16,
    bool,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const X86_64_HWCAPS: &[&str] = &["x86-64-v4", "x86-64-v3", "x86-64-v2"];

#[rustfmt::skip]
const ARCHES: &[Arch] = &[
    (EM_X86_64, true, "x86_64-linux-gnu", "x86_64", X86_64_HWCAPS),
    (EM_X86_64, false, "x86_64-linux-gnux32", "x86_64", X86_64_HWCAPS),
    (EM_386, false, "i386-linux-gnu", "i686", &[]),
    (EM_AARCH64, true, "aarch64-linux-gnu", "aarch64", &[]),
    (EM_ARM, false, "arm-linux-gnueabihf", "v7l", &[]),
    (EM_PPC64, true, "powerpc64le-linux-gnu", "power9", &["power10", "power9"]),
    (EM_S390, true, "s390x-linux-gnu", "z13", &["z16", "z15", "z14", "z13"]),
    (EM_RISCV, true, "riscv64-linux-gnu", "riscv64", &[]),
    (EM_LOONGARCH, true, "loongarch64-linux-gnu", "loongarch64", &[]),
];

/// One directory of a search list.
#[derive(Debug, Clone)]
struct SearchDir {
    /// As configured (`/lib/x86_64-linux-gnu`): found libraries are returned below it.
    shown: PathBuf,
    /// Its canonical host path, probed with a single `lstat` per candidate.
    canonical: PathBuf,
    /// A `glibc-hwcaps` subdirectory: a hit here does not end the search.
    hwcaps: bool,
}

/// The system search list and token values for one (class, machine).
#[derive(Debug, Clone)]
struct ArchDirs {
    machine: u16,
    class64: bool,
    /// `$LIB`.
    lib: String,
    /// `$PLATFORM`; empty when unknown (paths using it are then dropped, as `ld.so` does).
    platform: &'static str,
    hwcaps: &'static [&'static str],
    dirs: Vec<SearchDir>,
}

/// The directories the glibc loader searches after an object's own `RPATH`/`RUNPATH`, read
/// once per build from the sysroot's `/etc/ld.so.conf` and the trusted directories, for each
/// known architecture (so 32-bit programs on a 64-bit host resolve too).
#[derive(Debug, Clone)]
pub struct LibraryPaths {
    conf: Vec<PathBuf>,
    arches: Vec<ArchDirs>,
    /// For machines not in the table, 64-bit and 32-bit: no multiarch, no hwcaps.
    fallback: [ArchDirs; 2],
}

const LD_SO_CONF: &str = "/etc/ld.so.conf";

impl LibraryPaths {
    /// Reads `/etc/ld.so.conf` (with its `include` globs; a missing file or include target is
    /// fine) and probes which trusted and `glibc-hwcaps` directories exist in `sys`.
    pub fn load(sys: &Sysroot) -> Result<LibraryPaths, Error> {
        let mut conf = Vec::new();
        let mut seen = Vec::new();
        read_conf(sys, Path::new(LD_SO_CONF), &mut seen, &mut conf)?;
        let mut arches = Vec::with_capacity(ARCHES.len());
        for a in ARCHES {
            arches.push(arch_dirs(sys, &conf, a)?);
        }
        let fallback = [
            arch_dirs(sys, &conf, &(0, true, "", "", &[]))?,
            arch_dirs(sys, &conf, &(0, false, "", "", &[]))?,
        ];
        log::debug!("ld.so.conf directories: {conf:?}");
        Ok(LibraryPaths {
            conf,
            arches,
            fallback,
        })
    }

    /// The directories named by `/etc/ld.so.conf` and its includes, in order, as written.
    pub fn conf_dirs(&self) -> &[PathBuf] {
        &self.conf
    }

    /// The existing system directories searched for an object of this class and machine, in
    /// order, `glibc-hwcaps` subdirectories included.
    pub fn search_dirs(&self, class64: bool, machine: u16) -> Vec<PathBuf> {
        let a = self.arch(class64, machine);
        a.dirs.iter().map(|d| d.shown.clone()).collect()
    }

    /// Finds a library by soname in the system directories only (for libraries a recipe names,
    /// such as `dlopen`ed NSS modules): the first file of this class and machine outside the
    /// `glibc-hwcaps` directories, as found there (not canonicalised). `None` when there is
    /// none; a directory that cannot be read counts as not having it (logged).
    pub fn find(
        &self,
        sys: &Sysroot,
        soname: &str,
        class64: bool,
        machine: u16,
    ) -> Option<PathBuf> {
        let info = ElfInfo {
            class64,
            machine,
            ..ElfInfo::default()
        };
        for dir in self
            .arch(class64, machine)
            .dirs
            .iter()
            .filter(|d| !d.hwcaps)
        {
            match probe(sys, dir, soname, &info) {
                Ok(true) => return Some(dir.shown.join(soname)),
                Ok(false) => {}
                Err(e) => log::warn!("looking for {soname}: {e}"),
            }
        }
        None
    }

    fn arch(&self, class64: bool, machine: u16) -> &ArchDirs {
        self.arches
            .iter()
            .find(|a| a.class64 == class64 && a.machine == machine)
            .unwrap_or(&self.fallback[usize::from(!class64)])
    }
}

/// Whether a sysroot error just says "not there".
fn absent(e: &sysroot::Error) -> bool {
    e.is_not_found() || matches!(e, sysroot::Error::SymlinkLoop { .. })
}

/// The canonical host path of `dir` if it exists and is a directory.
fn canonical_dir(sys: &Sysroot, dir: &Path) -> Result<Option<PathBuf>, Error> {
    let resolved = match sys.resolve(dir) {
        Ok(r) => r.path,
        Err(e) if absent(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match sys.symlink_metadata(&resolved) {
        Ok(m) if m.is_dir() => Ok(Some(resolved)),
        Ok(_) => Ok(None),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads one ld.so.conf-format file into `out`, following `include` lines.
///
/// Format (glibc `ldconfig.c` `parse_conf`): `#` starts a comment; `include PATTERN...`
/// reads the files matching each glob, a relative pattern being relative to the including
/// file's directory; `hwcap ...` lines are obsolete and skipped; any other line is one
/// directory (an old `DIR=TYPE` suffix is dropped). Relative directories are ignored.
fn read_conf(
    sys: &Sysroot,
    file: &Path,
    seen: &mut Vec<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    // An include loop would recurse forever; glibc does not guard, reading a file twice is
    // pointless anyway.
    if seen.iter().any(|s| s == file) {
        return Ok(());
    }
    seen.push(file.to_path_buf());
    let bytes = match sys.read(file) {
        Ok(b) => b,
        Err(e) if absent(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            None => {}
            Some("include") => {
                for pattern in words {
                    let pattern = match file.parent() {
                        Some(dir) if !pattern.starts_with('/') => dir.join(pattern),
                        _ => PathBuf::from(pattern),
                    };
                    for f in sys.glob(&pattern)? {
                        read_conf(sys, &f, seen, out)?;
                    }
                }
            }
            Some(w) if w.eq_ignore_ascii_case("hwcap") => {}
            Some(_) => {
                let dir = line.split('=').next().unwrap_or_default().trim_end();
                let dir = dir.trim_end_matches('/');
                let dir = if dir.is_empty() { "/" } else { dir };
                if dir.starts_with('/') && !out.iter().any(|d| d == Path::new(dir)) {
                    out.push(PathBuf::from(dir));
                }
            }
        }
    }
    Ok(())
}

/// Builds the system search list for one architecture (an empty tuple: unknown machine).
fn arch_dirs(sys: &Sysroot, conf: &[PathBuf], arch: &Arch) -> Result<ArchDirs, Error> {
    let &(machine, class64, tuple, platform, hwcaps) = arch;
    let mut bases: Vec<PathBuf> = conf.to_vec();
    let mut lib = None;
    if !tuple.is_empty() {
        for prefix in ["/lib", "/usr/lib"] {
            let d = Path::new(prefix).join(tuple);
            if lib.is_none() && canonical_dir(sys, &d)?.is_some() {
                lib = Some(format!("lib/{tuple}"));
            }
            bases.push(d);
        }
    }
    if class64 {
        bases.extend(["/lib64", "/usr/lib64"].map(PathBuf::from));
    }
    bases.extend(["/lib", "/usr/lib"].map(PathBuf::from));
    let lib = match lib {
        Some(l) => l,
        // Fedora-like: a real lib64 beside lib. Arch Linux links lib64 to lib and uses lib.
        None if class64
            && canonical_dir(sys, Path::new("/usr/lib64"))?.is_some()
            && canonical_dir(sys, Path::new("/usr/lib64"))?
                != canonical_dir(sys, Path::new("/usr/lib"))? =>
        {
            "lib64".to_string()
        }
        None => "lib".to_string(),
    };
    let mut dirs: Vec<SearchDir> = Vec::new();
    let push = |dirs: &mut Vec<SearchDir>, shown: PathBuf, canonical: PathBuf, hw: bool| {
        if !dirs.iter().any(|d| d.canonical == canonical) {
            dirs.push(SearchDir {
                shown,
                canonical,
                hwcaps: hw,
            });
        }
    };
    for base in bases {
        let Some(canonical) = canonical_dir(sys, &base)? else {
            continue;
        };
        for level in hwcaps {
            let sub = base.join("glibc-hwcaps").join(level);
            if let Some(c) = canonical_dir(sys, &sub)? {
                push(&mut dirs, sub, c, true);
            }
        }
        push(&mut dirs, base, canonical, false);
    }
    Ok(ArchDirs {
        machine,
        class64,
        lib,
        platform,
        hwcaps,
        dirs,
    })
}

/// One directory of an object's own search path (`RPATH` or `RUNPATH`, expanded).
struct OwnDir {
    dir: SearchDir,
    /// False when it does not exist (still listed among the searched directories).
    exists: bool,
}

/// The host paths of the interpreter and of every `DT_NEEDED` library of `object`, as found
/// in their search directory (not canonicalised: the caller keeps the symlink chain).
///
/// Not transitive: the caller resolves the returned libraries in turn. Each library is
/// searched like `ld.so` does (see the module documentation); a library found in a
/// `glibc-hwcaps` directory comes with the baseline copy found after it. A library found
/// nowhere is [`Error::NotFound`] listing every directory searched.
pub fn resolve(
    sys: &Sysroot,
    paths: &LibraryPaths,
    object: &Path,
    info: &ElfInfo,
) -> Result<Vec<PathBuf>, Error> {
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some(interp) = &info.interp {
        match sys.metadata(interp) {
            Ok(_) => out.push(interp.clone()),
            Err(e) if absent(&e) => {
                return Err(Error::InterpNotFound {
                    object: object.to_path_buf(),
                    interp: interp.clone(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    if info.needed.is_empty() {
        return Ok(out);
    }
    let arch = paths.arch(info.class64, info.machine);
    let own = own_dirs(sys, arch, object, info)?;
    for soname in &info.needed {
        let found = if soname.contains('/') {
            needed_path(sys, arch, object, soname)?
                .into_iter()
                .collect()
        } else {
            search(
                sys,
                own.iter().filter(|o| o.exists).map(|o| &o.dir),
                arch,
                soname,
                info,
            )?
        };
        if found.is_empty() {
            let mut searched: Vec<PathBuf> = own.iter().map(|o| o.dir.shown.clone()).collect();
            if !soname.contains('/') {
                searched.extend(arch.dirs.iter().map(|d| d.shown.clone()));
            }
            return Err(Error::NotFound {
                object: object.to_path_buf(),
                soname: soname.clone(),
                searched,
            });
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Searches `own` then the system list; hwcaps hits are kept and the search goes on to the
/// first plain directory that has the library.
fn search<'a>(
    sys: &Sysroot,
    own: impl Iterator<Item = &'a SearchDir>,
    arch: &'a ArchDirs,
    soname: &str,
    info: &ElfInfo,
) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    for dir in own.chain(arch.dirs.iter()) {
        if probe(sys, dir, soname, info)? {
            found.push(dir.shown.join(soname));
            if !dir.hwcaps {
                break;
            }
        }
    }
    Ok(found)
}

/// Whether a path names something (links followed), telling "absent" from real I/O errors.
fn probe_exists(sys: &Sysroot, path: &Path) -> Result<bool, Error> {
    match sys.metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if absent(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `dir` holds a file `name` of the object's class and machine. One `lstat` when it
/// does not (the common case); otherwise its first 64 bytes are read.
fn probe(sys: &Sysroot, dir: &SearchDir, name: &str, info: &ElfInfo) -> Result<bool, Error> {
    let host = dir.canonical.join(name);
    let meta = match sys.symlink_metadata(&host) {
        Ok(m) => m,
        Err(e) if absent(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let (meta, target) = if meta.file_type().is_symlink() {
        let followed = sys
            .resolve(&host)
            .and_then(|r| Ok((sys.symlink_metadata(&r.path)?, r.path)));
        match followed {
            Ok(t) => t,
            Err(e) if absent(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    } else {
        (meta, host)
    };
    // Only regular files are opened: opening a FIFO would block.
    if !meta.is_file() {
        return Ok(false);
    }
    let io_err = |error| sysroot::Error::Io {
        root: sys.root().to_path_buf(),
        path: target.clone(),
        error,
    };
    let file = File::open(sys.real(&target)).map_err(io_err)?;
    let mut head = Vec::with_capacity(64);
    file.take(64).read_to_end(&mut head).map_err(io_err)?;
    Ok(header_matches(&head, info.class64, info.machine))
}

/// Whether an ELF header has this class and machine (`e_machine` at offset 18 in both
/// classes, in the file's byte order).
fn header_matches(head: &[u8], class64: bool, machine: u16) -> bool {
    if head.len() < 20 || &head[..SELFMAG] != ELFMAG {
        return false;
    }
    let class = if class64 { ELFCLASS64 } else { ELFCLASS32 };
    let m = [head[18], head[19]];
    let m = if head[EI_DATA] == ELFDATA2MSB {
        u16::from_be_bytes(m)
    } else {
        u16::from_le_bytes(m)
    };
    head[EI_CLASS] == class && m == machine
}

/// The object's own search directories: `RUNPATH`, or `RPATH` when there is no `RUNPATH`,
/// tokens expanded, each with its hwcaps subdirectories.
fn own_dirs(
    sys: &Sysroot,
    arch: &ArchDirs,
    object: &Path,
    info: &ElfInfo,
) -> Result<Vec<OwnDir>, Error> {
    let list = if info.runpath.is_empty() {
        &info.rpath
    } else {
        &info.runpath
    };
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let origins = if list.iter().any(|e| e.contains("ORIGIN")) {
        origins(sys, object)
    } else {
        Vec::new()
    };
    let mut out: Vec<OwnDir> = Vec::new();
    for entry in list {
        for dir in expand(entry, &origins, &arch.lib, arch.platform) {
            // Relative entries are relative to the loader's working directory: meaningless.
            if !dir.is_absolute() {
                continue;
            }
            let (shown, canonical) = tidy_dir(sys, &dir)?;
            if out.iter().any(|o| o.dir.shown == shown) {
                continue;
            }
            let Some(canonical) = canonical else {
                out.push(OwnDir {
                    dir: SearchDir {
                        canonical: shown.clone(),
                        shown,
                        hwcaps: false,
                    },
                    exists: false,
                });
                continue;
            };
            for level in arch.hwcaps {
                let sub = canonical.join("glibc-hwcaps").join(level);
                if let Some(c) = canonical_dir(sys, &sub)? {
                    out.push(OwnDir {
                        dir: SearchDir {
                            shown: shown.join("glibc-hwcaps").join(level),
                            canonical: c,
                            hwcaps: true,
                        },
                        exists: true,
                    });
                }
            }
            out.push(OwnDir {
                dir: SearchDir {
                    shown,
                    canonical,
                    hwcaps: false,
                },
                exists: true,
            });
        }
    }
    Ok(out)
}

/// The values of `$ORIGIN` for `object`.
///
/// `$ORIGIN` is the directory of the path the loader opened. For a library that is the path
/// it was found at; for the main program it is `/proc/self/exe`, the canonical path. Both are
/// tried so that `/usr/bin/java -> .../jdk/bin/java` finds `$ORIGIN/../lib`.
fn origins(sys: &Sysroot, object: &Path) -> Vec<PathBuf> {
    let mut origins: Vec<PathBuf> = object.parent().map(Path::to_path_buf).into_iter().collect();
    if let Ok(r) = sys.resolve(object)
        && let Some(p) = r.path.parent()
        && !origins.iter().any(|o| o == p)
    {
        origins.push(p.to_path_buf());
    }
    origins
}

/// How an expanded directory is shown (and returned), and its canonical path if it exists.
///
/// `$ORIGIN/../lib` gives `/opt/a/bin/../lib`: a `..` is only meaningful after the links
/// before it, so such a directory is replaced by its canonical path; others are kept as
/// written (minus `.` and doubled `/`) so that the caller sees the links.
fn tidy_dir(sys: &Sysroot, dir: &Path) -> Result<(PathBuf, Option<PathBuf>), Error> {
    let canonical = canonical_dir(sys, dir)?;
    let has_dotdot = dir.components().any(|c| c == Component::ParentDir);
    let shown = match &canonical {
        Some(c) if has_dotdot => c.clone(),
        _ => dir.components().collect(),
    };
    Ok((shown, canonical))
}

/// Finds a `DT_NEEDED` entry that is a path (it contains `/`), tokens expanded. A relative
/// one would be relative to the loader's working directory, which means nothing here.
fn needed_path(
    sys: &Sysroot,
    arch: &ArchDirs,
    object: &Path,
    needed: &str,
) -> Result<Option<PathBuf>, Error> {
    let origins = if needed.contains("ORIGIN") {
        origins(sys, object)
    } else {
        Vec::new()
    };
    for p in expand(needed, &origins, &arch.lib, arch.platform) {
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            continue;
        };
        if !p.is_absolute() {
            continue;
        }
        let (shown, canonical) = tidy_dir(sys, parent)?;
        if canonical.is_some() && probe_exists(sys, &p)? {
            return Ok(Some(shown.join(name)));
        }
    }
    Ok(None)
}

/// Expands the dynamic string tokens of one search-path entry (`ld.so(8)`): `$ORIGIN` (once
/// per origin), `$LIB`, `$PLATFORM`, each also as `${NAME}`; an unbraced token must end the
/// entry or be followed by `/`. An unknown `$` stays literal. An entry using `$PLATFORM`
/// when it is unknown is dropped.
fn expand(entry: &str, origins: &[PathBuf], lib: &str, platform: &str) -> Vec<PathBuf> {
    let mut outs: Vec<Vec<u8>> = vec![Vec::new()];
    let mut rest = entry;
    while let Some(i) = rest.find('$') {
        let literal = &rest.as_bytes()[..i];
        outs.iter_mut().for_each(|o| o.extend_from_slice(literal));
        let after = &rest[i + 1..];
        let Some((name, len)) = token(after) else {
            outs.iter_mut().for_each(|o| o.push(b'$'));
            rest = after;
            continue;
        };
        match name {
            "ORIGIN" => {
                outs = outs
                    .iter()
                    .flat_map(|o| {
                        origins.iter().map(move |origin| {
                            let mut v = o.clone();
                            v.extend_from_slice(origin.as_os_str().as_bytes());
                            v
                        })
                    })
                    .collect();
            }
            "LIB" => outs
                .iter_mut()
                .for_each(|o| o.extend_from_slice(lib.as_bytes())),
            _ if platform.is_empty() => return Vec::new(),
            _ => outs
                .iter_mut()
                .for_each(|o| o.extend_from_slice(platform.as_bytes())),
        }
        rest = &after[len..];
    }
    outs.into_iter()
        .map(|mut o| {
            o.extend_from_slice(rest.as_bytes());
            PathBuf::from(OsString::from_vec(o))
        })
        .collect()
}

/// The token at the start of `s` (just after a `$`) and its length in `s`.
fn token(s: &str) -> Option<(&'static str, usize)> {
    for name in ["ORIGIN", "LIB", "PLATFORM"] {
        if let Some(r) = s.strip_prefix('{') {
            if r.strip_prefix(name).is_some_and(|t| t.starts_with('}')) {
                return Some((name, name.len() + 2));
            }
        } else if let Some(t) = s.strip_prefix(name)
            && (t.is_empty() || t.starts_with('/'))
        {
            return Some((name, name.len()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_testutil::elf::{DynElf, EM_386, dyn_elf};
    use std::fs;

    /// A fake sysroot in a tempdir.
    struct Root {
        dir: tempfile::TempDir,
    }

    impl Root {
        fn new() -> Root {
            Root {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn put(&self, path: &str, bytes: &[u8]) -> &Self {
            let p = self.dir.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, bytes).unwrap();
            self
        }
        fn lib(&self, path: &str) -> &Self {
            let name = path.rsplit('/').next().unwrap();
            self.put(path, &dyn_elf(&DynElf::lib(name)))
        }
        fn link(&self, path: &str, target: &str) -> &Self {
            let p = self.dir.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
            self
        }
        fn mkdir(&self, path: &str) -> &Self {
            fs::create_dir_all(self.dir.path().join(path.trim_start_matches('/'))).unwrap();
            self
        }
        fn sys(&self) -> Sysroot {
            Sysroot::new(self.dir.path()).unwrap()
        }
    }

    fn paths(v: &[PathBuf]) -> Vec<&str> {
        v.iter().map(|p| p.to_str().unwrap()).collect()
    }

    /// Parses and resolves `path` in the fake root.
    fn resolve_in(r: &Root, path: &str) -> Result<Vec<PathBuf>, Error> {
        let sys = r.sys();
        let lp = LibraryPaths::load(&sys)?;
        let p = Path::new(path);
        let info = parse(p, &sys.read(p)?)?.unwrap();
        resolve(&sys, &lp, p, &info)
    }

    #[test]
    fn parse_reads_interp_needed_runpath() {
        let bytes = dyn_elf(&DynElf {
            soname: Some("libx.so.1".into()),
            runpath: vec!["$ORIGIN/../lib:/opt/x".into()],
            rpath: vec!["/old".into()],
            ..DynElf::program(&["libc.so.6", "libm.so.6"])
        });
        let info = parse(Path::new("/bin/x"), &bytes).unwrap().unwrap();
        assert_eq!(
            info,
            ElfInfo {
                interp: Some("/lib64/ld-linux-x86-64.so.2".into()),
                needed: vec!["libc.so.6".into(), "libm.so.6".into()],
                rpath: vec!["/old".into()],
                runpath: vec!["$ORIGIN/../lib".into(), "/opt/x".into()],
                soname: Some("libx.so.1".into()),
                class64: true,
                machine: EM_X86_64,
            }
        );
    }

    #[test]
    fn parse_not_elf_is_none() {
        assert_eq!(parse(Path::new("/x"), b"#!/bin/sh\n").unwrap(), None);
        assert_eq!(parse(Path::new("/x"), b"").unwrap(), None);
    }

    #[test]
    fn parse_truncated_names_the_path() {
        let bytes = dyn_elf(&DynElf::program(&["libc.so.6"]));
        for len in [10, 63, 100, bytes.len() - 8] {
            let e = parse(Path::new("/usr/bin/broken"), &bytes[..len]).unwrap_err();
            assert!(matches!(e, Error::Malformed { .. }), "{len}: {e}");
            assert!(e.to_string().starts_with("/usr/bin/broken: "), "{e}");
        }
    }

    #[test]
    fn script_interpreter_first_word() {
        let f = |b: &[u8]| script_interpreter(b).map(|p| p.display().to_string());
        assert_eq!(f(b"#!/bin/sh -e\necho"), Some("/bin/sh".into()));
        assert_eq!(f(b"#! /usr/bin/env python3\n"), Some("/usr/bin/env".into()));
        assert_eq!(f(b"#!/bin/bash\r\n"), Some("/bin/bash".into()));
        assert_eq!(f(b"#!  \n/bin/sh"), None);
        assert_eq!(f(b"\x7fELF"), None);
    }

    #[test]
    fn expand_tokens() {
        let o = [PathBuf::from("/opt/a/bin")];
        let f = |e: &str| {
            expand(e, &o, "lib/x86_64-linux-gnu", "x86_64")
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(f("$ORIGIN/../lib"), ["/opt/a/bin/../lib"]);
        assert_eq!(f("${ORIGIN}/x:$LIB"), ["/opt/a/bin/x:lib/x86_64-linux-gnu"]);
        assert_eq!(
            f("/usr/${LIB}/$PLATFORM"),
            ["/usr/lib/x86_64-linux-gnu/x86_64"]
        );
        assert_eq!(f("$ORIGINAL/$FOO"), ["$ORIGINAL/$FOO"]);
        assert!(expand("/x/$PLATFORM", &o, "lib", "").is_empty());
    }

    #[test]
    fn resolve_finds_libraries_in_trusted_dirs() {
        let r = Root::new();
        r.link("/lib", "usr/lib")
            .link("/lib64", "usr/lib64")
            .link(
                "/usr/lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld.so",
            )
            .lib("/usr/lib/x86_64-linux-gnu/ld.so")
            .lib("/usr/lib/x86_64-linux-gnu/libc.so.6.real")
            .link("/usr/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6.real")
            .put("/bin/p", &dyn_elf(&DynElf::program(&["libc.so.6"])));
        let found = resolve_in(&r, "/bin/p").unwrap();
        assert_eq!(
            paths(&found),
            [
                "/lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/libc.so.6"
            ]
        );
    }

    #[test]
    fn resolve_missing_interp_is_an_error() {
        let r = Root::new();
        r.put("/bin/p", &dyn_elf(&DynElf::program(&[])));
        let e = resolve_in(&r, "/bin/p").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/bin/p: program interpreter /lib64/ld-linux-x86-64.so.2 not found"
        );
    }

    #[test]
    fn resolve_expands_origin() {
        let r = Root::new();
        let prog = DynElf {
            interp: None,
            runpath: vec!["$ORIGIN/../lib".into(), "/opt/app/${LIB}".into()],
            ..DynElf::program(&["liba.so", "libb.so"])
        };
        r.put("/opt/app/bin/app", &dyn_elf(&prog))
            .lib("/opt/app/lib/liba.so")
            .lib("/opt/app/lib64/libb.so")
            .link("/usr/bin/app", "../../opt/app/bin/app");
        // $LIB is lib64 here: no multiarch dir, a real /usr/lib64.
        r.mkdir("/usr/lib64").mkdir("/usr/lib");
        let found = resolve_in(&r, "/opt/app/bin/app").unwrap();
        assert_eq!(
            paths(&found),
            ["/opt/app/lib/liba.so", "/opt/app/lib64/libb.so"]
        );
        // Through a symlink: the canonical directory is tried too, as for a main program.
        let found = resolve_in(&r, "/usr/bin/app").unwrap();
        assert_eq!(
            paths(&found),
            ["/opt/app/lib/liba.so", "/opt/app/lib64/libb.so"]
        );
    }

    #[test]
    fn resolve_ignores_rpath_when_runpath_present() {
        let r = Root::new();
        r.lib("/opt/old/libz.so.1").mkdir("/opt/new");
        let both = DynElf {
            interp: None,
            rpath: vec!["/opt/old".into()],
            runpath: vec!["/opt/new".into()],
            ..DynElf::program(&["libz.so.1"])
        };
        r.put("/bin/both", &dyn_elf(&both));
        let e = resolve_in(&r, "/bin/both").unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("searched: /opt/new"), "{e}");
        let rpath_only = DynElf {
            runpath: Vec::new(),
            ..both
        };
        r.put("/bin/old", &dyn_elf(&rpath_only));
        let found = resolve_in(&r, "/bin/old").unwrap();
        assert_eq!(paths(&found), ["/opt/old/libz.so.1"]);
    }

    #[test]
    fn load_follows_include_globs() {
        let r = Root::new();
        r.put(
            "/etc/ld.so.conf",
            b"# comment\ninclude ld.so.conf.d/*.conf /etc/missing/*.conf\n/opt/first\n",
        )
        .put("/etc/ld.so.conf.d/b.conf", b"/opt/b/\n")
        .put(
            "/etc/ld.so.conf.d/a.conf",
            b"/opt/a # trailing\nhwcap 0 x\n",
        )
        .put("/etc/ld.so.conf.d/.hidden.conf", b"/opt/hidden\n")
        .put("/etc/ld.so.conf.d/c.conf.bak", b"/opt/bak\n")
        .mkdir("/opt/a")
        .mkdir("/opt/b")
        .mkdir("/opt/first")
        .lib("/opt/b/libb.so.1");
        let sys = r.sys();
        let lp = LibraryPaths::load(&sys).unwrap();
        assert_eq!(paths(lp.conf_dirs()), ["/opt/a", "/opt/b", "/opt/first"]);
        assert_eq!(
            paths(&lp.search_dirs(true, EM_X86_64)),
            ["/opt/a", "/opt/b", "/opt/first"]
        );
        r.put(
            "/bin/p",
            &dyn_elf(&DynElf {
                interp: None,
                ..DynElf::program(&["libb.so.1"])
            }),
        );
        assert_eq!(
            paths(&resolve_in(&r, "/bin/p").unwrap()),
            ["/opt/b/libb.so.1"]
        );
    }

    #[test]
    fn load_without_ld_so_conf_is_fine() {
        let r = Root::new();
        r.mkdir("/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3")
            .mkdir("/usr/lib64");
        let lp = LibraryPaths::load(&r.sys()).unwrap();
        assert!(lp.conf_dirs().is_empty());
        assert_eq!(
            paths(&lp.search_dirs(true, EM_X86_64)),
            [
                "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3",
                "/usr/lib/x86_64-linux-gnu",
                "/usr/lib64",
                "/usr/lib"
            ]
        );
        assert_eq!(paths(&lp.search_dirs(false, EM_386)), ["/usr/lib"]);
    }

    #[test]
    fn resolve_includes_hwcaps_variant() {
        let r = Root::new();
        r.lib("/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libm.so.6")
            .lib("/usr/lib/x86_64-linux-gnu/libm.so.6")
            .lib("/usr/lib/x86_64-linux-gnu/libc.so.6")
            .put(
                "/bin/p",
                &dyn_elf(&DynElf {
                    interp: None,
                    ..DynElf::program(&["libm.so.6", "libc.so.6"])
                }),
            );
        assert_eq!(
            paths(&resolve_in(&r, "/bin/p").unwrap()),
            [
                "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libm.so.6",
                "/usr/lib/x86_64-linux-gnu/libm.so.6",
                "/usr/lib/x86_64-linux-gnu/libc.so.6"
            ]
        );
    }

    #[test]
    fn resolve_skips_wrong_class_then_not_found() {
        let r = Root::new();
        let lib32 = DynElf {
            class64: false,
            machine: EM_386,
            ..DynElf::lib("libfoo.so.1")
        };
        r.put("/etc/ld.so.conf", b"/usr/lib32\n")
            .put("/usr/lib32/libfoo.so.1", &dyn_elf(&lib32))
            .put("/usr/lib/libfoo.so.1", b"not an ELF file")
            .mkdir("/usr/lib/x86_64-linux-gnu")
            .put(
                "/usr/bin/tool",
                &dyn_elf(&DynElf {
                    interp: None,
                    ..DynElf::program(&["libfoo.so.1"])
                }),
            );
        let e = resolve_in(&r, "/usr/bin/tool").unwrap_err();
        let Error::NotFound {
            object,
            soname,
            searched,
        } = &e
        else {
            panic!("{e}");
        };
        assert_eq!(object, Path::new("/usr/bin/tool"));
        assert_eq!(soname, "libfoo.so.1");
        assert_eq!(
            paths(searched),
            ["/usr/lib32", "/usr/lib/x86_64-linux-gnu", "/usr/lib"]
        );
        assert_eq!(
            e.to_string(),
            "/usr/bin/tool: needed library libfoo.so.1 not found \
             (searched: /usr/lib32, /usr/lib/x86_64-linux-gnu, /usr/lib)"
        );
        // The 32-bit one does satisfy a 32-bit program.
        let prog32 = DynElf {
            interp: None,
            class64: false,
            machine: EM_386,
            ..DynElf::program(&["libfoo.so.1"])
        };
        r.put("/usr/bin/tool32", &dyn_elf(&prog32));
        assert_eq!(
            paths(&resolve_in(&r, "/usr/bin/tool32").unwrap()),
            ["/usr/lib32/libfoo.so.1"]
        );
    }

    #[test]
    fn find_skips_hwcaps_and_other_classes() {
        let r = Root::new();
        let lib32 = DynElf {
            class64: false,
            machine: EM_386,
            ..DynElf::lib("libnss_files.so.2")
        };
        r.put("/etc/ld.so.conf", b"/usr/lib32\n")
            .put("/usr/lib32/libnss_files.so.2", &dyn_elf(&lib32))
            .lib("/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libnss_files.so.2")
            .lib("/usr/lib/x86_64-linux-gnu/libnss_files.so.2");
        let sys = r.sys();
        let lp = LibraryPaths::load(&sys).unwrap();
        assert_eq!(
            lp.find(&sys, "libnss_files.so.2", true, EM_X86_64),
            Some(PathBuf::from("/usr/lib/x86_64-linux-gnu/libnss_files.so.2"))
        );
        assert_eq!(
            lp.find(&sys, "libnss_files.so.2", false, EM_386),
            Some(PathBuf::from("/usr/lib32/libnss_files.so.2"))
        );
        assert_eq!(lp.find(&sys, "libnope.so", true, EM_X86_64), None);
    }

    #[test]
    fn resolve_needed_path_is_used_as_is() {
        let r = Root::new();
        let prog = DynElf {
            interp: None,
            ..DynElf::program(&["/opt/x/libx.so", "$ORIGIN/../lib/liby.so"])
        };
        r.lib("/opt/x/libx.so")
            .lib("/opt/x/lib/liby.so")
            .put("/opt/x/bin/p", &dyn_elf(&prog));
        assert_eq!(
            paths(&resolve_in(&r, "/opt/x/bin/p").unwrap()),
            ["/opt/x/libx.so", "/opt/x/lib/liby.so"]
        );
    }

    #[test]
    fn resolve_host_bin_sh() {
        let sys = Sysroot::host();
        let lp = LibraryPaths::load(&sys).unwrap();
        let sh = Path::new("/bin/sh");
        let info = parse(sh, &sys.read(sh).unwrap()).unwrap().unwrap();
        let found = resolve(&sys, &lp, sh, &info).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert!(names.contains(&"libc.so.6"), "{found:?}");
        assert!(names.contains(&"ld-linux-x86-64.so.2"), "{found:?}");
    }

    #[test]
    fn library_paths_is_sync() {
        fn sync<T: Sync + Send>() {}
        sync::<LibraryPaths>();
        sync::<Error>();
    }
}
