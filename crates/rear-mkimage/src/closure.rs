//! Closure stage: requests (programs, files, libraries, modules, generated files) -> [`Image`].
//!
//! Every host file is added under its own absolute path, with each symlink met on the way kept
//! as a symlink, so `/bin/sh`, `/lib64/ld-linux-x86-64.so.2` and a merged `/usr` look in the
//! image as they do on the host. ELF files and `#!` scripts pull in their interpreter and
//! libraries until nothing new appears; each round is resolved in parallel (rayon), results are
//! merged in sorted order, so the image does not depend on thread timing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::resolve::elf::{self, LibraryPaths};
use rear_model::manifest::{
    Entry, Image, ImagePath, Kind, Manifest, PathError, Source, sha256_hex,
};
use rear_sys::sysroot::{PATH, Sysroot};

/// Errors of the closure stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required recipe item does not exist on the host.
    #[error("{what} {name:?} (recipe {recipe}) not found{}", if .looked.is_empty() { String::new() } else { format!(" in {}", .looked) })]
    Missing {
        /// `program`, `file`, `library`, ...
        what: &'static str,
        /// The item.
        name: String,
        /// The recipe that asked for it.
        recipe: String,
        /// Where it looked.
        looked: String,
    },
    /// A program that is neither an ELF file nor a `#!` script.
    #[error("{}: not an ELF executable or a #! script (asked for by {why})", .path.display())]
    NotExecutable {
        /// The host path.
        path: PathBuf,
        /// Who asked for it.
        why: String,
    },
    /// Resolving an ELF file's libraries failed.
    #[error(transparent)]
    Elf(#[from] elf::Error),
    /// Reading the host failed.
    #[error(transparent)]
    Sysroot(#[from] rear_sys::sysroot::Error),
    /// A host path that cannot be an image path.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Two different things want the same image path.
    #[error("{path}: {first} and {second} both want this path")]
    Conflict {
        /// The path.
        path: ImagePath,
        /// What is there.
        first: String,
        /// What came second.
        second: String,
    },
}

/// What an added host file is, for the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Asked for by a recipe.
    Requested,
    /// Pulled in as an ELF dependency.
    Library,
    /// A kernel module.
    Module,
    /// A firmware file.
    Firmware,
}

/// The image being assembled.
pub struct Closure<'a> {
    sys: &'a Sysroot,
    libs: LibraryPaths,
    entries: BTreeMap<ImagePath, Entry>,
    data: BTreeMap<ImagePath, Arc<[u8]>>,
    /// Host (dev, inode) of every file added, to keep hard links.
    inodes: HashMap<(u64, u64), Vec<ImagePath>>,
    /// Files added since the last dependency round: host path and who asked.
    unscanned: Vec<(PathBuf, String)>,
    roles: BTreeMap<ImagePath, Role>,
    warnings: Vec<String>,
}

impl<'a> Closure<'a> {
    /// An empty image for a sysroot.
    pub fn new(sys: &'a Sysroot) -> Result<Self, Error> {
        Ok(Closure {
            sys,
            libs: LibraryPaths::load(sys)?,
            entries: BTreeMap::new(),
            data: BTreeMap::new(),
            inodes: HashMap::new(),
            unscanned: Vec::new(),
            roles: BTreeMap::new(),
            warnings: Vec::new(),
        })
    }

    /// Records a warning for the manifest and the log.
    pub fn warn(&mut self, text: String) {
        log::warn!("{text}");
        self.warnings.push(text);
    }

    /// Looks a program up on [`PATH`] and adds it; `Ok(false)` when it is missing.
    pub fn add_program(&mut self, name: &str, why: &str) -> Result<bool, Error> {
        let Some(path) = self.sys.which_on_path(name) else {
            return Ok(false);
        };
        let data = self.sys.read(&path)?;
        if elf::parse(&path, &data)?.is_none() && elf::script_interpreter(&data).is_none() {
            return Err(Error::NotExecutable {
                path,
                why: why.to_string(),
            });
        }
        self.add_host_path(&path, why, Role::Requested)?;
        Ok(true)
    }

    /// Adds a library by soname, searched like the dynamic loader does; `Ok(false)` when missing.
    pub fn add_library(&mut self, soname: &str, why: &str) -> Result<bool, Error> {
        match self
            .libs
            .find(self.sys, soname, host_class64(), host_machine())
        {
            Some(path) => {
                self.add_host_path(&path, why, Role::Library)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Adds files matching a host path or glob; a directory is added with all it contains.
    /// Returns how many matched.
    pub fn add_files(&mut self, pattern: &str, why: &str) -> Result<usize, Error> {
        if !pattern.contains(['*', '?', '[']) {
            let path = PathBuf::from(pattern);
            if self.sys.symlink_metadata(&path).is_err() {
                return Ok(0);
            }
            self.add_host_path(&path, why, Role::Requested)?;
            return Ok(1);
        }
        let found = self.sys.glob(Path::new(pattern))?;
        for p in &found {
            self.add_host_path(p, why, Role::Requested)?;
        }
        Ok(found.len())
    }

    /// Adds a host path: the links on its way as symlinks, its directories, and the file or
    /// directory itself (directories recursively). Files are queued for dependency scanning.
    pub fn add_host_path(&mut self, path: &Path, why: &str, role: Role) -> Result<(), Error> {
        // Resolve the parent fully but keep a final symlink as a symlink, then follow it.
        let resolved = self.sys.resolve(path)?;
        for link in &resolved.links {
            self.add_host_dirs(link.path.parent())?;
            let ip = ImagePath::from_host(&link.path)?;
            let target = link.target.to_string_lossy().into_owned();
            self.insert(
                ip,
                Entry {
                    kind: Kind::Symlink { target },
                    mode: 0o777,
                    size: 0,
                    sha256: None,
                    source: Source::Host {
                        path: link.path.clone(),
                    },
                    why: why.to_string(),
                },
                None,
            )?;
        }
        let real = &resolved.path;
        let ip = ImagePath::from_host(real)?;
        if self.entries.contains_key(&ip) {
            return Ok(());
        }
        self.add_host_dirs(real.parent())?;
        let meta = self.sys.symlink_metadata(real)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            self.insert(
                ip,
                dir_entry(mode, Source::Host { path: real.clone() }, why),
                None,
            )?;
            for child in self.sys.read_dir(real)? {
                self.add_host_path(&child, why, role)?;
            }
            return Ok(());
        }
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            let (major, minor) = (
                nix::sys::stat::major(rdev) as u32,
                nix::sys::stat::minor(rdev) as u32,
            );
            if ft.is_char_device() {
                Kind::CharDevice { major, minor }
            } else {
                Kind::BlockDevice { major, minor }
            }
        } else if ft.is_file() {
            Kind::File
        } else {
            // Sockets and fifos are made at run time, never copied.
            return Ok(());
        };
        let data = if kind == Kind::File {
            Some(self.sys.read(real)?)
        } else {
            None
        };
        let entry = Entry {
            kind,
            mode,
            size: data.as_ref().map_or(0, |d| d.len() as u64),
            sha256: None,
            source: Source::Host { path: real.clone() },
            why: why.to_string(),
        };
        if data.is_some() {
            if meta.nlink() > 1 {
                self.inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(ip.clone());
            }
            if matches!(role, Role::Requested | Role::Library) {
                self.unscanned.push((real.clone(), why.to_string()));
            }
            self.roles.insert(ip.clone(), role);
        }
        self.insert(ip, entry, data.map(Arc::from))
    }

    /// Adds the host directories from `/` down to `dir` (modes from the host).
    fn add_host_dirs(&mut self, dir: Option<&Path>) -> Result<(), Error> {
        let Some(dir) = dir else { return Ok(()) };
        let mut chain: Vec<&Path> = dir.ancestors().filter(|a| *a != Path::new("/")).collect();
        chain.reverse();
        for d in chain {
            let ip = ImagePath::from_host(d)?;
            if self.entries.contains_key(&ip) {
                continue;
            }
            let mode = self.sys.symlink_metadata(d)?.permissions().mode() & 0o7777;
            self.entries.insert(
                ip,
                dir_entry(
                    mode,
                    Source::Host {
                        path: d.to_path_buf(),
                    },
                    "",
                ),
            );
        }
        Ok(())
    }

    /// Adds a file made by the build.
    pub fn add_generated(
        &mut self,
        path: &str,
        bytes: Vec<u8>,
        mode: u32,
        by: &str,
    ) -> Result<(), Error> {
        let ip = ImagePath::new(path)?;
        let entry = Entry {
            kind: Kind::File,
            mode,
            size: bytes.len() as u64,
            sha256: None,
            source: Source::Generated { by: by.to_string() },
            why: String::new(),
        };
        self.insert_replacing(ip, entry, Some(Arc::from(bytes)));
        Ok(())
    }

    /// Adds a file whose bytes the caller already has (a decompressed module, a build tool).
    pub fn add_bytes(
        &mut self,
        path: &str,
        bytes: Arc<[u8]>,
        mode: u32,
        source: Source,
        why: &str,
        role: Role,
    ) -> Result<(), Error> {
        let ip = ImagePath::new(path)?;
        let entry = Entry {
            kind: Kind::File,
            mode,
            size: bytes.len() as u64,
            sha256: None,
            source,
            why: why.to_string(),
        };
        self.roles.insert(ip.clone(), role);
        self.insert_replacing(ip, entry, Some(bytes));
        Ok(())
    }

    /// Adds an entry that is not a file: directory, symlink or device node made by the build.
    pub fn add_special(
        &mut self,
        path: &str,
        kind: Kind,
        mode: u32,
        by: &str,
    ) -> Result<(), Error> {
        let ip = ImagePath::new(path)?;
        let entry = Entry {
            kind,
            mode,
            size: 0,
            sha256: None,
            source: Source::Generated { by: by.to_string() },
            why: String::new(),
        };
        self.insert_replacing(ip, entry, None);
        Ok(())
    }

    /// Queues a file already in the image for dependency scanning (a dynamic `/init`).
    pub fn scan_later(&mut self, host_path: &Path, why: &str) {
        self.unscanned
            .push((host_path.to_path_buf(), why.to_string()));
    }

    fn insert(
        &mut self,
        ip: ImagePath,
        entry: Entry,
        data: Option<Arc<[u8]>>,
    ) -> Result<(), Error> {
        if let Some(old) = self.entries.get(&ip) {
            if old.kind == entry.kind || (old.kind == Kind::Dir && entry.kind == Kind::Dir) {
                return Ok(());
            }
            return Err(Error::Conflict {
                path: ip,
                first: describe(old),
                second: describe(&entry),
            });
        }
        if let Some(d) = data {
            self.data.insert(ip.clone(), d);
        }
        self.entries.insert(ip, entry);
        Ok(())
    }

    fn insert_replacing(&mut self, ip: ImagePath, entry: Entry, data: Option<Arc<[u8]>>) {
        match data {
            Some(d) => {
                self.data.insert(ip.clone(), d);
            }
            None => {
                self.data.remove(&ip);
            }
        }
        self.entries.insert(ip, entry);
    }

    /// Adds interpreters and libraries of every queued file until nothing new appears.
    /// Each round runs in parallel; new paths are added in sorted order.
    pub fn resolve_dependencies(&mut self) -> Result<(), Error> {
        while !self.unscanned.is_empty() {
            let mut batch = std::mem::take(&mut self.unscanned);
            batch.sort();
            batch.dedup();
            let found: Vec<Result<Vec<(PathBuf, String)>, Error>> = batch
                .par_iter()
                .map(|(path, _why)| self.dependencies_of(path))
                .collect();
            let mut new: BTreeSet<(PathBuf, String)> = BTreeSet::new();
            for deps in found {
                new.extend(deps?);
            }
            for (path, why) in new {
                let ip = ImagePath::from_host(&path)?;
                if !self.entries.contains_key(&ip) {
                    self.add_host_path(&path, &why, Role::Library)?;
                }
            }
        }
        Ok(())
    }

    /// The interpreter and libraries one file needs, with the reason for each.
    fn dependencies_of(&self, path: &Path) -> Result<Vec<(PathBuf, String)>, Error> {
        let ip = ImagePath::from_host(path)?;
        let owned;
        let data: &[u8] = match self.data.get(&ip) {
            Some(d) => d,
            None => {
                owned = self.sys.read(path)?;
                &owned
            }
        };
        let why = format!("needed by {}", path.display());
        if let Some(info) = elf::parse(path, data)? {
            let libs = elf::resolve(self.sys, &self.libs, path, &info)?;
            return Ok(libs.into_iter().map(|l| (l, why.clone())).collect());
        }
        if let Some(interp) = elf::script_interpreter(data) {
            let mut out = vec![(interp.clone(), why.clone())];
            // `#!/usr/bin/env prog`: env finds prog on PATH at run time, so it must be there.
            if interp.file_name().is_some_and(|n| n == "env")
                && let Some(prog) = script_env_program(data)
            {
                match self.sys.which_on_path(&prog) {
                    Some(p) => out.push((p, why.clone())),
                    None => {
                        return Err(Error::Missing {
                            what: "program",
                            name: prog,
                            recipe: format!("the #! line of {}", path.display()),
                            looked: PATH.join(":"),
                        });
                    }
                }
            }
            return Ok(out);
        }
        Ok(Vec::new())
    }

    /// Counts of added host files by role.
    pub fn count(&self, role: Role) -> usize {
        self.roles.values().filter(|r| **r == role).count()
    }

    /// Finishes the image: entries under a symlinked directory of the image are moved to where
    /// the link points (a generated `/lib/modules/...` lands in `/usr/lib/modules/...` on a
    /// merged-/usr host), missing directories are added, hard links are grouped and every
    /// file's SHA-256 is computed (in parallel).
    pub fn finish(mut self, kernel: &str) -> Result<Image, Error> {
        self.follow_image_links()?;
        // Missing parent directories.
        let missing: BTreeSet<ImagePath> = self
            .entries
            .keys()
            .flat_map(|p| p.ancestors())
            .filter(|a| !self.entries.contains_key(a))
            .collect();
        for dir in missing {
            self.entries.insert(
                dir,
                dir_entry(
                    0o755,
                    Source::Generated {
                        by: "closure".into(),
                    },
                    "",
                ),
            );
        }
        // Hard links: the first path of a group (sorted) carries the data.
        for group in self.inodes.values() {
            let mut paths: Vec<&ImagePath> = group
                .iter()
                .filter(|p| self.entries.get(*p).is_some_and(|e| e.kind == Kind::File))
                .collect();
            paths.sort();
            paths.dedup();
            if let Some((first, rest)) = paths.split_first() {
                for p in rest {
                    if let Some(e) = self.entries.get_mut(*p) {
                        e.kind = Kind::HardLink {
                            to: (*first).clone(),
                        };
                    }
                    self.data.remove(*p);
                }
            }
        }
        let sums: Vec<(ImagePath, String)> = self
            .data
            .par_iter()
            .map(|(p, d)| (p.clone(), sha256_hex(d)))
            .collect();
        for (p, sum) in sums {
            if let Some(e) = self.entries.get_mut(&p) {
                e.sha256 = Some(sum);
            }
        }
        for e in self.entries.values_mut() {
            if let Kind::HardLink { to } = &e.kind
                && let Some(d) = self.data.get(to)
            {
                e.size = d.len() as u64;
            }
        }
        let hardlink_sums: Vec<(ImagePath, Option<String>)> = self
            .entries
            .iter()
            .filter_map(|(p, e)| match &e.kind {
                Kind::HardLink { to } => Some((
                    p.clone(),
                    self.entries.get(to).and_then(|t| t.sha256.clone()),
                )),
                _ => None,
            })
            .collect();
        for (p, s) in hardlink_sums {
            if let Some(e) = self.entries.get_mut(&p) {
                e.sha256 = s;
            }
        }
        let mut manifest = Manifest::new(kernel);
        manifest.entries = self.entries;
        manifest.warnings = self.warnings;
        Ok(Image {
            manifest,
            data: self.data,
        })
    }

    /// Moves entries that sit below a symlink of the image to the link's target directory.
    fn follow_image_links(&mut self) -> Result<(), Error> {
        let links: BTreeMap<ImagePath, String> = self
            .entries
            .iter()
            .filter_map(|(p, e)| match &e.kind {
                Kind::Symlink { target } => Some((p.clone(), target.clone())),
                _ => None,
            })
            .collect();
        if links.is_empty() {
            return Ok(());
        }
        let misplaced: Vec<ImagePath> = self
            .entries
            .keys()
            .filter(|p| p.ancestors().iter().any(|a| links.contains_key(a)))
            .cloned()
            .collect();
        for old in misplaced {
            let new = resolve_in_image(&old, &links)?;
            let Some(entry) = self.entries.remove(&old) else {
                continue;
            };
            let data = self.data.remove(&old);
            if let Some(r) = self.roles.remove(&old) {
                self.roles.insert(new.clone(), r);
            }
            if self.entries.contains_key(&new) {
                continue;
            }
            if let Some(d) = data {
                self.data.insert(new.clone(), d);
            }
            for group in self.inodes.values_mut() {
                for p in group.iter_mut() {
                    if *p == old {
                        *p = new.clone();
                    }
                }
            }
            self.entries.insert(new, entry);
        }
        Ok(())
    }
}

/// Resolves the directory links of the image in `path` (not its last component).
fn resolve_in_image(
    path: &ImagePath,
    links: &BTreeMap<ImagePath, String>,
) -> Result<ImagePath, PathError> {
    let mut current = path.clone();
    for _ in 0..40 {
        let Some(link) = current
            .ancestors()
            .into_iter()
            .find(|a| links.contains_key(a))
        else {
            return Ok(current);
        };
        let target = &links[&link];
        let base = if target.starts_with('/') {
            String::new()
        } else {
            link.parent()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default()
        };
        let rest = &current.as_str()[link.as_str().len()..];
        current = ImagePath::new(&normalise(&format!("{base}/{target}{rest}")))?;
    }
    Ok(current)
}

/// Folds `..` in an absolute path textually (image links never point outside the image).
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The program a `#!/usr/bin/env [-S] prog` line runs.
fn script_env_program(data: &[u8]) -> Option<String> {
    let line = data.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.trim_start_matches("#!")
        .split_whitespace()
        .skip(1)
        .find(|w| !w.starts_with('-') && !w.contains('='))
        .map(str::to_string)
}

fn dir_entry(mode: u32, source: Source, why: &str) -> Entry {
    Entry {
        kind: Kind::Dir,
        mode,
        size: 0,
        sha256: None,
        source,
        why: why.to_string(),
    }
}

fn describe(e: &Entry) -> String {
    let kind = match &e.kind {
        Kind::Dir => "a directory".to_string(),
        Kind::File | Kind::HardLink { .. } => "a file".to_string(),
        Kind::Symlink { target } => format!("a symlink to {target}"),
        Kind::CharDevice { .. } | Kind::BlockDevice { .. } => "a device node".to_string(),
    };
    match &e.source {
        Source::Host { path } | Source::Decompressed { path } => {
            format!("{kind} from {}", path.display())
        }
        Source::Build { program } => format!("{kind} from {program}"),
        Source::Generated { by } => format!("{kind} made by {by}"),
    }
}

/// Whether the image's ELF files are 64-bit (the build's own architecture).
fn host_class64() -> bool {
    cfg!(target_pointer_width = "64")
}

/// The ELF machine of the build's own architecture.
fn host_machine() -> u16 {
    match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        "x86" => 3,
        "riscv64" => 243,
        "powerpc64" => 21,
        "s390x" => 22,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_in_image_follows_relative_and_absolute_links() {
        let mut links = BTreeMap::new();
        links.insert(ImagePath::new("/lib").unwrap(), "usr/lib".to_string());
        links.insert(ImagePath::new("/sbin").unwrap(), "/usr/sbin".to_string());
        let p = ImagePath::new("/lib/modules/6.1/kernel/a.ko").unwrap();
        assert_eq!(
            resolve_in_image(&p, &links).unwrap().as_str(),
            "/usr/lib/modules/6.1/kernel/a.ko"
        );
        let p = ImagePath::new("/sbin/poweroff").unwrap();
        assert_eq!(
            resolve_in_image(&p, &links).unwrap().as_str(),
            "/usr/sbin/poweroff"
        );
        let p = ImagePath::new("/lib").unwrap();
        assert_eq!(resolve_in_image(&p, &links).unwrap().as_str(), "/lib");
    }

    #[test]
    fn script_env_program_skips_options() {
        assert_eq!(
            script_env_program(b"#!/usr/bin/env python3\n").as_deref(),
            Some("python3")
        );
        assert_eq!(
            script_env_program(b"#!/usr/bin/env -S perl -w\n").as_deref(),
            Some("perl")
        );
        assert_eq!(script_env_program(b"#!/bin/sh\n"), None);
    }
}
