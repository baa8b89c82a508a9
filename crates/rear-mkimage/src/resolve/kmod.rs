//! Resolver: which kernel modules go into the image, their bytes and depmod files.
//!
//! Stage: resolve. Input: a [`Sysroot`], the kernel release, a [`Selection`] and the modules
//! the recipes ask for ([`Request`]). Output: a [`ModuleSet`]: the sorted, closed set of
//! modules (dependencies and `pre:`/`post:` soft dependencies, transitively), each with the
//! reason it is in, its decompressed bytes and the `firmware=` names of its `.modinfo`, plus
//! depmod's files written for exactly that set.
//!
//! Selections:
//! - `host`: modules loaded on the host (`/proc/modules`, only when the sysroot is `/`) and
//!   those whose aliases match a device's `modalias` under `/sys/devices`;
//! - `rescue`: `host` plus [`SAFETY_SET`], so the image also boots on other hardware and VMs;
//! - `all`: every module of the kernel;
//! - `none`: no modules at all (nothing under `/lib/modules` is read; recipe requests too are
//!   ignored), for monolithic kernels and quick test images.
//!
//! Module files are `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz`; compressed ones are decompressed
//! in process (the image stores every module as `.ko`), in parallel with rayon.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;

use rear_sys::kmod::{self, IndexFiles, Lookup, ModuleIndex, uncompressed_path};
use rear_sys::sysroot::{self, Sysroot};

/// Errors of module resolution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--modules` got something other than rescue, host, all or none.
    #[error("unknown module selection {0:?} (expected rescue, host, all or none)")]
    BadSelection(String),
    /// depmod's files do not parse (the error names the file and line).
    #[error(transparent)]
    Index(#[from] kmod::Error),
    /// Reading the host failed (the error names the path).
    #[error(transparent)]
    Sysroot(#[from] sysroot::Error),
    /// A module a recipe requires is neither a module, nor an alias, nor built in.
    #[error("module {name} required by recipe {recipe} is not a module of kernel {kernel}")]
    MissingModule {
        /// The name or alias asked for.
        name: String,
        /// The recipe that asked.
        recipe: String,
        /// The kernel release.
        kernel: String,
    },
    /// A module file that does not decompress or is no ELF file with a readable `.modinfo`.
    #[error("{}: {reason}", .path.display())]
    BadModule {
        /// Host path of the module file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Which modules go in (`--modules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// What the host uses plus [`SAFETY_SET`] (the default).
    #[default]
    Rescue,
    /// What the host uses: loaded modules and modules for its devices.
    Host,
    /// Every module of the kernel.
    All,
    /// No modules.
    None,
}

impl FromStr for Selection {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "rescue" => Ok(Selection::Rescue),
            "host" => Ok(Selection::Host),
            "all" => Ok(Selection::All),
            "none" => Ok(Selection::None),
            other => Err(Error::BadSelection(other.to_string())),
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Selection::Rescue => "rescue",
            Selection::Host => "host",
            Selection::All => "all",
            Selection::None => "none",
        })
    }
}

/// Modules a rescue image carries whatever the host uses, so that it boots on other hardware
/// (P2V, V2V, V2P): virtio, NVMe/AHCI/SCSI disks and CD-ROMs, USB storage and keyboards,
/// common NICs, the filesystems and block layers ReaR recreates. Members this kernel lacks
/// or has built in are skipped without complaint.
pub const SAFETY_SET: &[&str] = &[
    // virtio
    "virtio_blk",
    "virtio_scsi",
    "virtio_net",
    "virtio_pci",
    "virtio_console",
    "virtio_rng",
    // disks and CD-ROMs
    "nvme",
    "ahci",
    "sd_mod",
    "sr_mod",
    // USB storage, host controllers, keyboards
    "usb_storage",
    "uas",
    "xhci_pci",
    "xhci_hcd",
    "ehci_pci",
    "ehci_hcd",
    "ohci_pci",
    "uhci_hcd",
    "usbhid",
    "hid_generic",
    "atkbd",
    "i8042",
    // NICs
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
    "r8169",
    "tg3",
    "bnx2",
    "bnxt_en",
    "vmxnet3",
    // filesystems and block layers
    "ext4",
    "xfs",
    "btrfs",
    "vfat",
    "isofs",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
    "dm_mod",
    "dm_crypt",
    "raid1",
    "raid456",
    "md_mod",
    "loop",
    "squashfs",
    "overlay",
    "efivarfs",
];

/// A module a recipe asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Module name or alias (`ext4`, `fs-vfat`, `crypto-xts`).
    pub name: String,
    /// The recipe that asks for it.
    pub recipe: String,
    /// Whether a kernel without it is fine (a warning instead of an error).
    pub optional: bool,
}

/// Why a module is in the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// A recipe asked for it (the recipe's name).
    Recipe(String),
    /// It is loaded on the host.
    LoadedOnHost,
    /// One of its aliases matches this device modalias of the host.
    Modalias(String),
    /// It is in [`SAFETY_SET`].
    SafetySet,
    /// `--modules all`.
    All,
    /// A module in the set depends on it.
    DependencyOf(String),
    /// A module in the set names it as a soft dependency.
    SoftdepOf(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Recipe(r) => write!(f, "recipe {r}"),
            Reason::LoadedOnHost => f.write_str("loaded on host"),
            Reason::Modalias(a) => write!(f, "modalias {a}"),
            Reason::SafetySet => f.write_str("safety set"),
            Reason::All => f.write_str("all modules"),
            Reason::DependencyOf(m) => write!(f, "dependency of {m}"),
            Reason::SoftdepOf(m) => write!(f, "softdep of {m}"),
        }
    }
}

/// The modules chosen, before their files are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    /// Module name -> the first reason it was chosen for; closed under dependencies.
    pub modules: BTreeMap<String, Reason>,
    /// Things the operator should know (optional modules missing, no `/proc/modules`).
    pub warnings: Vec<String>,
}

/// One module of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenModule {
    /// Module name (`virtio_blk`).
    pub name: String,
    /// Host path of its file (`/lib/modules/<kver>/kernel/.../virtio_blk.ko.xz`).
    pub host_path: PathBuf,
    /// Path below `/lib/modules/<kver>` in the image, always `.ko`.
    pub image_rel_path: String,
    /// Why it is in.
    pub reason: Reason,
    /// The module's bytes, decompressed.
    pub bytes: Vec<u8>,
    /// The `firmware=` entries of its `.modinfo`, in order, each once.
    pub firmware: Vec<String>,
}

impl ChosenModule {
    /// Whether the host file was compressed (so the image's file is its decompression).
    pub fn decompressed(&self) -> bool {
        self.host_path.to_str().map(uncompressed_path) != self.host_path.to_str()
    }
}

/// The resolver's result.
#[derive(Debug, Clone, Default)]
pub struct ModuleSet {
    /// Kernel release.
    pub kernel: String,
    /// The modules, sorted by name.
    pub modules: Vec<ChosenModule>,
    /// depmod's files for exactly these modules (name, bytes), sorted; they go to
    /// `/lib/modules/<kver>/` of the image. Empty for [`Selection::None`].
    pub index_files: Vec<(String, Vec<u8>)>,
    /// Things the operator should know.
    pub warnings: Vec<String>,
}

impl ModuleSet {
    /// Every firmware name the modules ask for, sorted, each once.
    pub fn firmware(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.modules.iter().flat_map(|m| &m.firmware).collect();
        set.into_iter().cloned().collect()
    }
}

/// The kernel's module directory on the host (`/lib/modules/<kver>`).
pub fn modules_dir(kver: &str) -> PathBuf {
    PathBuf::from("/lib/modules").join(kver)
}

/// The kernel releases with a `modules.dep` under `/lib/modules`, sorted.
pub fn kernel_releases(sys: &Sysroot) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for dir in sys.read_dir(Path::new("/lib/modules"))? {
        if sys.is_file(&dir.join(IndexFiles::DEP))
            && let Some(name) = dir.file_name().and_then(|n| n.to_str())
        {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Reads and parses depmod's files of a kernel through the sysroot. `modules.dep` must exist;
/// the others may be missing.
pub fn load_index(sys: &Sysroot, kver: &str) -> Result<ModuleIndex, Error> {
    let dir = modules_dir(kver);
    let text = |name: &str| -> Result<String, Error> {
        match sys.read_to_string(&dir.join(name)) {
            Ok(t) => Ok(t),
            Err(e) if e.is_not_found() && name != IndexFiles::DEP => Ok(String::new()),
            Err(e) => Err(e.into()),
        }
    };
    let builtin_modinfo = match sys.read(&dir.join(IndexFiles::BUILTIN_MODINFO)) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let files = IndexFiles {
        dep: text(IndexFiles::DEP)?,
        alias: text(IndexFiles::ALIAS)?,
        softdep: text(IndexFiles::SOFTDEP)?,
        builtin: text(IndexFiles::BUILTIN)?,
        order: text(IndexFiles::ORDER)?,
        symbols: text(IndexFiles::SYMBOLS)?,
        builtin_modinfo,
    };
    Ok(ModuleIndex::parse(&dir, &files)?)
}

/// The names of the modules in `/proc/modules` text (first word of each line).
pub fn parse_proc_modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(kmod::normalize_name)
        .collect()
}

/// The device modaliases of the sysroot's `/sys` (none if it has no `/sys`).
pub fn host_modaliases(sys: &Sysroot) -> Vec<String> {
    match sys.resolve(Path::new("/sys")) {
        Ok(r) => kmod::sysfs::modaliases(&sys.real(&r.path)),
        Err(_) => Vec::new(),
    }
}

/// Chooses the modules: the selection's roots and the recipe requests, closed under
/// dependencies and soft dependencies. A required request that names nothing is an error.
pub fn select(
    sys: &Sysroot,
    kver: &str,
    index: &ModuleIndex,
    selection: Selection,
    requests: &[Request],
) -> Result<Selected, Error> {
    let mut out = Selected::default();
    if selection == Selection::None {
        return Ok(out);
    }
    let mut roots: Vec<(String, Reason)> = Vec::new();
    for r in requests {
        match index.lookup(&r.name) {
            Lookup::Modules(ms) => roots.extend(
                ms.iter()
                    .map(|m| (m.to_string(), Reason::Recipe(r.recipe.clone()))),
            ),
            Lookup::Builtin(m) => {
                log::debug!("module {} (recipe {}) is built in as {m}", r.name, r.recipe)
            }
            Lookup::NotFound if r.optional => out.warnings.push(format!(
                "optional module {} (recipe {}) is not a module of kernel {kver}",
                r.name, r.recipe
            )),
            Lookup::NotFound => {
                return Err(Error::MissingModule {
                    name: r.name.clone(),
                    recipe: r.recipe.clone(),
                    kernel: kver.to_string(),
                });
            }
        }
    }
    if matches!(selection, Selection::Host | Selection::Rescue) {
        if sys.is_host() {
            match sys.read_to_string(Path::new("/proc/modules")) {
                Ok(text) => {
                    for m in parse_proc_modules(&text) {
                        if index.module(&m).is_some() {
                            roots.push((m, Reason::LoadedOnHost));
                        }
                    }
                }
                Err(e) => out.warnings.push(format!(
                    "loaded modules unknown ({e}); using device modaliases only"
                )),
            }
        } else {
            out.warnings.push(format!(
                "sysroot {} is not the running system: its loaded modules are unknown",
                sys.root().display()
            ));
        }
        for alias in host_modaliases(sys) {
            for m in index.match_alias(&alias) {
                if index.module(m).is_some() {
                    roots.push((m.to_string(), Reason::Modalias(alias.clone())));
                }
            }
        }
    }
    if selection == Selection::Rescue {
        for name in SAFETY_SET {
            if let Lookup::Modules(ms) = index.lookup(name) {
                roots.extend(ms.iter().map(|m| (m.to_string(), Reason::SafetySet)));
            }
        }
    }
    if selection == Selection::All {
        roots.extend(
            index
                .modules()
                .iter()
                .map(|m| (m.name.clone(), Reason::All)),
        );
    }
    out.modules = close(index, roots);
    Ok(out)
}

/// Adds dependencies and soft dependencies (transitively) to the roots; the first reason
/// given for a module wins.
fn close(index: &ModuleIndex, roots: Vec<(String, Reason)>) -> BTreeMap<String, Reason> {
    let mut chosen: BTreeMap<String, Reason> = BTreeMap::new();
    let mut queue: VecDeque<String> = VecDeque::new();
    for (name, reason) in roots {
        if !chosen.contains_key(&name) {
            chosen.insert(name.clone(), reason);
            queue.push_back(name);
        }
    }
    while let Some(m) = queue.pop_front() {
        let (pre, post) = index.softdeps(&m);
        let deps = index.deps(&m);
        let pulled = deps
            .iter()
            .map(|d| (*d, Reason::DependencyOf(m.clone())))
            .chain(
                pre.iter()
                    .chain(&post)
                    .map(|d| (*d, Reason::SoftdepOf(m.clone()))),
            );
        for (d, reason) in pulled {
            if !chosen.contains_key(d) {
                chosen.insert(d.to_string(), reason);
                queue.push_back(d.to_string());
            }
        }
    }
    chosen
}

/// Decompresses a module file by its suffix (`.xz`, `.zst`, `.gz`; others as they are) and
/// checks that the result is an ELF file.
pub fn decompress(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
    let bad = |reason: String| Error::BadModule {
        path: path.to_path_buf(),
        reason,
    };
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    let result = if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new_multi_decoder(&bytes[..]).read_to_end(&mut out)
    } else if name.ends_with(".zst") {
        zstd::stream::read::Decoder::new(&bytes[..]).and_then(|mut d| d.read_to_end(&mut out))
    } else if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut out)
    } else {
        out = bytes;
        Ok(0)
    };
    result.map_err(|e| bad(format!("cannot decompress: {e}")))?;
    if !out.starts_with(b"\x7fELF") {
        return Err(bad("not an ELF file".into()));
    }
    Ok(out)
}

/// The `key=value` entries of a module's `.modinfo` section, in order.
pub fn modinfo(elf: &[u8]) -> Result<Vec<(String, String)>, String> {
    use goblin::container::Ctx;
    use goblin::elf::{Elf, SectionHeader};
    let header = Elf::parse_header(elf).map_err(|e| e.to_string())?;
    let ctx = Ctx::new(
        header.container().map_err(|e| e.to_string())?,
        header.endianness().map_err(|e| e.to_string())?,
    );
    let shdrs = SectionHeader::parse(elf, header.e_shoff as usize, header.e_shnum as usize, ctx)
        .map_err(|e| format!("section headers: {e}"))?;
    // SHN_XINDEX: the real index is in the first section header's sh_link.
    let strndx = match header.e_shstrndx {
        0xffff => shdrs.first().map(|s| s.sh_link as usize).unwrap_or(0),
        n => n as usize,
    };
    let strtab = shdrs.get(strndx).ok_or("no section name table")?;
    let section_data = |sh: &SectionHeader| -> Option<&[u8]> {
        let start = usize::try_from(sh.sh_offset).ok()?;
        let len = usize::try_from(sh.sh_size).ok()?;
        elf.get(start..start.checked_add(len)?)
    };
    let names = section_data(strtab).ok_or("section name table out of bounds")?;
    let modinfo = shdrs.iter().find(|sh| {
        names
            .get(sh.sh_name..)
            .and_then(|s| s.split(|&b| b == 0).next())
            .is_some_and(|n| n == b".modinfo")
    });
    let Some(sh) = modinfo else {
        return Ok(Vec::new());
    };
    let data = section_data(sh).ok_or(".modinfo out of bounds")?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|e| std::str::from_utf8(e).ok())
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Reads, decompresses and inspects the chosen modules (in parallel) and writes depmod's
/// files for them.
pub fn read_modules(
    sys: &Sysroot,
    kver: &str,
    index: &ModuleIndex,
    selected: Selected,
) -> Result<ModuleSet, Error> {
    let dir = modules_dir(kver);
    let chosen: Vec<(String, Reason)> = selected.modules.into_iter().collect();
    let modules = chosen
        .into_par_iter()
        .map(|(name, reason)| -> Result<ChosenModule, Error> {
            let rel = index.path_of(&name)?;
            let host_path = kmod::module_file(&dir, rel);
            let raw = sys.read(&host_path)?;
            let bytes = decompress(&host_path, raw)?;
            let info = modinfo(&bytes).map_err(|reason| Error::BadModule {
                path: host_path.clone(),
                reason,
            })?;
            let mut firmware: Vec<String> = Vec::new();
            for (k, v) in info {
                if k == "firmware" && !firmware.contains(&v) {
                    firmware.push(v);
                }
            }
            let image_rel_path = image_rel_path(kver, rel);
            Ok(ChosenModule {
                name,
                host_path,
                image_rel_path,
                reason,
                bytes,
                firmware,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let index_files = if names.is_empty() {
        Vec::new()
    } else {
        index.write_subset(&names)?
    };
    Ok(ModuleSet {
        kernel: kver.to_string(),
        modules,
        index_files,
        warnings: selected.warnings,
    })
}

/// Where a module path of `modules.dep` goes below the image's `/lib/modules/<kver>`:
/// the same relative path ending in `.ko` (an absolute path loses its module-directory
/// prefix, or goes to `extra/`).
fn image_rel_path(kver: &str, rel: &str) -> String {
    let rel = uncompressed_path(rel);
    if let Some(abs) = rel.strip_prefix('/') {
        let prefix = format!("lib/modules/{kver}/");
        match abs.strip_prefix(&prefix) {
            Some(inside) => inside.to_string(),
            None => format!("extra/{}", abs.rsplit('/').next().unwrap_or(abs)),
        }
    } else {
        rel.to_string()
    }
}

/// The whole module stage: reads the kernel's index, selects, reads the module files and
/// writes depmod's files for the set. [`Selection::None`] reads nothing.
pub fn resolve(
    sys: &Sysroot,
    kver: &str,
    selection: Selection,
    requests: &[Request],
) -> Result<ModuleSet, Error> {
    if selection == Selection::None {
        return Ok(ModuleSet {
            kernel: kver.to_string(),
            ..Default::default()
        });
    }
    let index = load_index(sys, kver)?;
    let selected = select(sys, kver, &index, selection, requests)?;
    read_modules(sys, kver, &index, selected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_testutil::kmod::{FakeKernel, FakeModule, sample_kernel};

    const KVER: &str = "6.1.0-test";

    fn compress(suffix: &str, bytes: &[u8]) -> Vec<u8> {
        match suffix {
            ".xz" => {
                let mut out = Vec::new();
                liblzma::read::XzEncoder::new(bytes, 6)
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            ".zst" => zstd::encode_all(bytes, 3).unwrap(),
            other => panic!("no compressor for {other}"),
        }
    }

    fn fake(k: FakeKernel) -> (tempfile::TempDir, Sysroot) {
        let d = tempfile::tempdir().unwrap();
        k.write_with(d.path(), compress).unwrap();
        let sys = Sysroot::new(d.path()).unwrap();
        (d, sys)
    }

    fn req(name: &str, optional: bool) -> Request {
        Request {
            name: name.into(),
            recipe: "base".into(),
            optional,
        }
    }

    #[test]
    fn selection_from_str_round_trips_and_names_bad_value() {
        for s in ["rescue", "host", "all", "none"] {
            assert_eq!(s.parse::<Selection>().unwrap().to_string(), s);
        }
        let e = "most".parse::<Selection>().unwrap_err();
        assert!(e.to_string().contains("\"most\""), "{e}");
    }

    #[test]
    fn select_host_uses_modaliases_and_closes_over_deps() {
        let (_d, sys) = fake(sample_kernel(KVER));
        let ix = load_index(&sys, KVER).unwrap();
        let sel = select(&sys, KVER, &ix, Selection::Host, &[]).unwrap();
        let names: Vec<&str> = sel.modules.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["r8169", "virtio", "virtio_blk", "virtio_pci", "virtio_ring"]
        );
        assert_eq!(
            sel.modules["virtio_blk"].to_string(),
            "modalias virtio:d00000002v00001AF4"
        );
        assert_eq!(
            sel.modules["virtio"].to_string(),
            "dependency of virtio_pci"
        );
        assert!(
            sel.warnings
                .iter()
                .any(|w| w.contains("not the running system")),
            "{:?}",
            sel.warnings
        );
    }

    #[test]
    fn select_rescue_adds_safety_set_and_softdeps() {
        let (_d, sys) = fake(sample_kernel(KVER));
        let ix = load_index(&sys, KVER).unwrap();
        let sel = select(&sys, KVER, &ix, Selection::Rescue, &[]).unwrap();
        assert_eq!(sel.modules["ext4"], Reason::SafetySet);
        assert_eq!(sel.modules["jbd2"], Reason::DependencyOf("ext4".into()));
        assert_eq!(
            sel.modules["crc32c_generic"],
            Reason::SoftdepOf("ext4".into())
        );
        assert!(!sel.modules.contains_key("unused_thing"));
        assert!(!sel.modules.contains_key("loop"), "built in");
    }

    #[test]
    fn select_all_and_none() {
        let (_d, sys) = fake(sample_kernel(KVER));
        let ix = load_index(&sys, KVER).unwrap();
        let all = select(&sys, KVER, &ix, Selection::All, &[]).unwrap();
        assert_eq!(all.modules.len(), 11);
        assert_eq!(all.modules["unused_thing"], Reason::All);
        let none = select(&sys, KVER, &ix, Selection::None, &[req("ext4", false)]).unwrap();
        assert!(none.modules.is_empty());
    }

    #[test]
    fn select_requests_by_name_and_alias_and_missing() {
        let (_d, sys) = fake(sample_kernel(KVER));
        let ix = load_index(&sys, KVER).unwrap();
        let sel = select(
            &sys,
            KVER,
            &ix,
            Selection::Host,
            &[req("fs-ext4", false), req("loop", false), req("zfs", true)],
        )
        .unwrap();
        assert_eq!(sel.modules["ext4"], Reason::Recipe("base".into()));
        assert!(
            sel.warnings
                .iter()
                .any(|w| w.contains("optional module zfs"))
        );
        let e = select(&sys, KVER, &ix, Selection::Host, &[req("zfs", false)]).unwrap_err();
        assert!(
            matches!(&e, Error::MissingModule { name, recipe, .. } if name == "zfs" && recipe == "base"),
            "{e}"
        );
    }

    #[test]
    fn select_loaded_modules_only_on_the_host() {
        let k = sample_kernel(KVER).loaded(&["ext4"]);
        let (_d, sys) = fake(k);
        let ix = load_index(&sys, KVER).unwrap();
        let sel = select(&sys, KVER, &ix, Selection::Host, &[]).unwrap();
        assert!(!sel.modules.contains_key("ext4"), "not the running system");
        assert_eq!(
            parse_proc_modules("ext4 1 0 - Live 0x0\ncrc32c-intel 2 0\n"),
            ["ext4", "crc32c_intel"]
        );
    }

    #[test]
    fn resolve_decompresses_and_reads_firmware() {
        let k = FakeKernel::new(KVER)
            .module(
                FakeModule::new("kernel/a/xzmod")
                    .compressed(".xz")
                    .firmware("a.fw"),
            )
            .module(
                FakeModule::new("kernel/a/zstmod")
                    .compressed(".zst")
                    .dep("xzmod")
                    .firmware("b.fw")
                    .firmware("b.fw"),
            )
            .module(FakeModule::new("kernel/a/plain"));
        let (_d, sys) = fake(k);
        let set = resolve(&sys, KVER, Selection::Host, &[req("zstmod", false)]).unwrap();
        let names: Vec<&str> = set.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["xzmod", "zstmod"]);
        let z = &set.modules[1];
        assert!(z.bytes.starts_with(b"\x7fELF"));
        assert!(z.decompressed());
        assert_eq!(z.image_rel_path, "kernel/a/zstmod.ko");
        assert_eq!(
            z.host_path,
            Path::new("/lib/modules/6.1.0-test/kernel/a/zstmod.ko.zst")
        );
        assert_eq!(z.firmware, ["b.fw"]);
        assert_eq!(set.firmware(), ["a.fw", "b.fw"]);
        let dep = &set
            .index_files
            .iter()
            .find(|(n, _)| n == "modules.dep")
            .unwrap()
            .1;
        assert_eq!(
            String::from_utf8_lossy(dep),
            "kernel/a/xzmod.ko:\nkernel/a/zstmod.ko: kernel/a/xzmod.ko\n"
        );
    }

    #[test]
    fn resolve_corrupt_module_names_the_file() {
        let k = FakeKernel::new(KVER).module(FakeModule::new("kernel/a/bad").compressed(".xz"));
        let d = tempfile::tempdir().unwrap();
        k.write_with(d.path(), |_, _| b"garbage".to_vec()).unwrap();
        let sys = Sysroot::new(d.path()).unwrap();
        let e = resolve(&sys, KVER, Selection::All, &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("kernel/a/bad.ko.xz: cannot decompress"),
            "{e}"
        );
    }

    #[test]
    fn resolve_corrupt_modules_dep_names_file_and_line() {
        let (d, sys) = fake(sample_kernel(KVER));
        let dep = d.path().join("lib/modules").join(KVER).join("modules.dep");
        let mut text = std::fs::read_to_string(&dep).unwrap();
        text.push_str("this line has no colon\n");
        std::fs::write(&dep, text).unwrap();
        let e = resolve(&sys, KVER, Selection::Rescue, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/lib/modules/6.1.0-test/modules.dep:12: expected '<module path>: <deps>'"
        );
    }

    #[test]
    fn resolve_none_reads_nothing() {
        let d = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(d.path()).unwrap();
        let set = resolve(&sys, "x", Selection::None, &[]).unwrap();
        assert!(set.modules.is_empty() && set.index_files.is_empty());
    }

    #[test]
    fn image_rel_path_cases() {
        assert_eq!(image_rel_path("k", "kernel/x.ko.xz"), "kernel/x.ko");
        assert_eq!(
            image_rel_path("k", "/lib/modules/k/updates/x.ko"),
            "updates/x.ko"
        );
        assert_eq!(image_rel_path("k", "/opt/x.ko.zst"), "extra/x.ko");
    }

    /// The real kernel of this machine (Debian's linux-image): `rescue` must carry virtio_blk
    /// and ext4 with ext4's dependencies.
    #[test]
    fn resolve_rescue_on_real_host_kernel() {
        let sys = Sysroot::host();
        let kvers = kernel_releases(&sys).unwrap();
        let kver = kvers.last().expect(
            "no /lib/modules/<kver>/modules.dep here: install the Debian package linux-image-amd64",
        );
        let t = std::time::Instant::now();
        let set = resolve(&sys, kver, Selection::Rescue, &[]).unwrap();
        let took = t.elapsed();
        let names: BTreeSet<&str> = set.modules.iter().map(|m| m.name.as_str()).collect();
        for m in [
            "virtio_blk",
            "ext4",
            "jbd2",
            "mbcache",
            "crc16",
            "virtio_pci",
            "nvme",
        ] {
            assert!(names.contains(m), "{m} missing from {names:?}");
        }
        let ext4 = set.modules.iter().find(|m| m.name == "ext4").unwrap();
        assert_eq!(ext4.reason, Reason::SafetySet);
        assert!(ext4.image_rel_path.ends_with("/ext4.ko"));
        assert!(set.index_files.iter().any(|(n, _)| n == "modules.dep.bin"));
        eprintln!("rescue: {} modules in {took:?}", set.modules.len());
    }
}
