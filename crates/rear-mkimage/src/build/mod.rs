//! The build pipeline of `rear-mkimage`, stage by stage:
//! recipes -> inventory -> resolve (programs and modules, in parallel) -> closure -> archive ->
//! output. Each stage hands the next a typed value; this module only wires them and times them.
//!
//! Outputs are written atomically: every file goes to a temporary name in the output
//! directory, is synced, and only when all of them are complete are they renamed into place,
//! so a failed build leaves nothing behind.

mod backup;
mod lookup;
mod outputs;
pub mod report;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::archive::{self, Compression};
use crate::closure::{self, Closure, Role};
use crate::inventory::network::HostNetwork;
use crate::inventory::{self, Inventory, Kernel, KernelSpec};
use crate::media::{self, MediaInput};
use crate::resolve::{
    self,
    kmod::{ModuleSet, Selection},
};
use backup::{backup_into_iso, exclude_backup};
use lookup::{add_modules, resolve_files, resolve_modules};
use outputs::Outputs;
use rear_model::backup::url::BackupUrl;
use rear_model::manifest::{Image, Kind, Source, sha256_hex};
use rear_model::recipe::{self, Recipe};
use rear_model::units::human;
use rear_sys::atomic::Staged;
use rear_sys::sysroot::Sysroot;

/// Errors of a build; each names the stage's object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A recipe could not be loaded.
    #[error(transparent)]
    Recipe(#[from] recipe::Error),
    /// `--root` is unusable or a host read failed.
    #[error(transparent)]
    Sysroot(#[from] rear_sys::sysroot::Error),
    /// The kernel could not be found.
    #[error(transparent)]
    Inventory(#[from] inventory::Error),
    /// Resolving programs, files or libraries failed.
    #[error(transparent)]
    Closure(#[from] closure::Error),
    /// Resolving kernel modules failed.
    #[error(transparent)]
    Modules(#[from] resolve::kmod::Error),
    /// Writing the archive failed.
    #[error(transparent)]
    Archive(#[from] archive::Error),
    /// Writing the ISO failed.
    #[error(transparent)]
    Iso(#[from] media::iso::Error),
    /// Writing the USB image failed.
    #[error(transparent)]
    Usb(#[from] media::usb::Error),
    /// Writing the PXE tree failed.
    #[error(transparent)]
    Pxe(#[from] media::pxe::Error),
    /// The layout file is unreadable or invalid.
    #[error(transparent)]
    Layout(#[from] rear_model::layout::model::Error),
    /// The layout of the running system could not be captured.
    #[error(
        "capturing the disk layout (an image without one, which cannot recreate the disks, is built with --layout none)"
    )]
    Capture(#[from] rear_sys::layout::capture::Error),
    /// The layout needs a tool the build host lacks.
    #[error(transparent)]
    LayoutTools(#[from] rear_sys::layout::tools::Error),
    /// The backup configuration is invalid.
    #[error(transparent)]
    Backup(#[from] rear_sys::backup::Error),
    /// `--backup-url iso` without an ISO to put the backup in.
    #[error("--backup-url iso puts the backup into the ISO of this build: add --output iso")]
    BackupNeedsIso,
    /// `--backup` without a layout: nothing says which file systems to back up.
    #[error("--backup backs up the file systems of the disk layout, and this build has none: {0}")]
    BackupNeedsLayout(String),
    /// The layout file could not be read.
    #[error("{}: {error}", .path.display())]
    LayoutRead {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// `rear-restore`, which becomes `/init`, was not found.
    #[error(
        "rear-restore (the rescue system's /init) not found; looked in {looked}; build it with `make static` or pass --init PATH"
    )]
    InitMissing {
        /// Where it looked.
        looked: String,
    },
    /// The kernel has no module directory but modules were asked for.
    #[error(
        "kernel {kernel} has no /lib/modules/{kernel}: install its modules, or build with --modules none"
    )]
    NoModules {
        /// The kernel release.
        kernel: String,
    },
    /// `SOURCE_DATE_EPOCH` is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH={0:?} is not a whole number of seconds since 1970")]
    Epoch(String),
    /// Writing an output file failed.
    #[error("{}: {error}", .path.display())]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// What to build and from what.
#[derive(Debug, Clone)]
pub struct Options {
    /// The sysroot (`/` or `--root DIR`).
    pub root: PathBuf,
    /// Which kernel.
    pub kernel: KernelSpec,
    /// Recipe names or files, in order (the CLI puts [`recipe::DEFAULT`] first).
    pub recipes: Vec<String>,
    /// Which kernel modules go in.
    pub modules: Selection,
    /// How the initrd is compressed.
    pub compression: Compression,
    /// The output directory.
    pub out_dir: PathBuf,
    /// Also write the manifest next to the outputs.
    pub json: bool,
    /// The `rear-restore` binary to install as `/init`; `None` looks next to this program.
    pub init: Option<PathBuf>,
    /// Timestamps in the archive are clamped to this (`SOURCE_DATE_EPOCH`).
    pub epoch: u64,
    /// What to write.
    pub outputs: BTreeSet<OutputKind>,
    /// Seconds the boot menus wait before booting the default entry.
    pub boot_timeout: u32,
    /// Size of the USB image's data partition in bytes (0: none).
    pub usb_size: u64,
    /// Where the PXE tree goes (default `<out>/pxe`).
    pub pxe_dir: Option<PathBuf>,
    /// Consoles, network, SSH and kernel options of the rescue system.
    pub rescue: crate::skeleton::RescueOptions,
    /// Where the disk layout stored in the image comes from.
    pub layout: LayoutSource,
    /// The backup configuration to store as `/etc/rear/backup.json`, with the programs its
    /// method needs to restore (`None`: no backup configured).
    pub backup: Option<rear_model::backup::config::Config>,
    /// Show a progress bar (bytes, rate) for the backup the build itself makes
    /// (`--backup-url iso`); the `progress` callback is told `"backup"` before it.
    pub backup_progress: bool,
}

/// Where a build gets the disk layout it stores as `/etc/rear/layout.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutSource {
    /// Captured from the running system (the default). Skipped with a warning when the
    /// build uses `--root DIR` or does not run as root (the tools need to read the disks).
    Capture,
    /// A layout file (`--layout FILE`), e.g. saved earlier or made for another machine.
    File(PathBuf),
    /// No layout (`--layout none`): the image is a plain rescue system.
    None,
}

/// Where the image keeps the layout.
pub const LAYOUT_IN_IMAGE: &str = "/etc/rear/layout.json";
/// The copy of the image's layout in the output directory.
pub const LAYOUT_OUTPUT: &str = "layout.json";

/// The kinds of output one build writes, all from the same initrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputKind {
    /// `vmlinuz-<release>` and `initrd-<release>.img`.
    Initrd,
    /// `rear-<host>.iso`: hybrid ISO, BIOS and UEFI, CD and USB stick.
    Iso,
    /// `rear-<host>.usb.img`: GPT disk image, BIOS and UEFI, with a data partition.
    Usb,
    /// A PXE tree: kernel, initrd, pxelinux, GRUB and iPXE configuration.
    Pxe,
}

/// One file the build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artefact {
    /// Its final path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its hex SHA-256.
    pub sha256: String,
}

/// What a build did: counts, sizes and time per stage, for the summary line and the report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Kernel release.
    pub kernel: String,
    /// Files asked for by recipes (programs, files), after symlinks are followed.
    pub files: usize,
    /// Libraries and interpreters pulled in.
    pub libraries: usize,
    /// Kernel modules.
    pub modules: usize,
    /// Firmware files.
    pub firmware: usize,
    /// Entries in the archive.
    pub entries: usize,
    /// Uncompressed archive size.
    pub bytes_raw: u64,
    /// Compressed archive size.
    pub bytes_compressed: u64,
    /// Wall time per stage, in order.
    pub stages: Vec<(&'static str, Duration)>,
    /// The files written.
    pub artefacts: Vec<Artefact>,
    /// The PXE tree written, with `--output pxe`.
    pub pxe_dir: Option<PathBuf>,
    /// Warnings (also in the manifest).
    pub warnings: Vec<String>,
    /// The layout stored in the image, if any (what a `--backup` backs up).
    pub layout: Option<rear_sys::layout::Layout>,
    /// The backup written into the ISO (`--backup-url iso`); its paths name the ISO.
    pub iso_backup: Option<rear_sys::backup::BackupReport>,
    /// The host's facts from the inventory stage, for the report to `rear-server`.
    pub facts: rear_model::report::Facts,
}

impl Report {
    /// The one summary line printed at the end of a build.
    pub fn summary(&self, compression: &Compression) -> String {
        let mut s = format!(
            "{} files, {} libraries, {} modules, {} firmware; {} -> {} ({compression});",
            self.files,
            self.libraries,
            self.modules,
            self.firmware,
            human(self.bytes_raw),
            human(self.bytes_compressed),
        );
        for (name, d) in &self.stages {
            let _ = write!(s, " {name} {:.2} s", d.as_secs_f64());
            s.push(',');
        }
        s.pop();
        s
    }
}

/// `SOURCE_DATE_EPOCH` from the environment, or now when unset; a bad value is an error.
pub fn epoch_from_env() -> Result<u64, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse::<u64>().map_err(|_| Error::Epoch(v)),
        Err(_) => Ok(SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    }
}

/// Where `rear-restore` is when `--init` is not given: next to this program, then the
/// installed locations.
pub fn find_init(given: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::InitMissing {
                looked: p.display().to_string(),
            })
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join("rear-restore"));
    }
    candidates.push(PathBuf::from("/usr/lib/rear/rear-restore"));
    candidates.push(PathBuf::from("/usr/libexec/rear/rear-restore"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::InitMissing {
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A stage timer.
struct Stages(Vec<(&'static str, Duration)>, Instant);

impl Stages {
    fn next(&mut self, name: &'static str) {
        let now = Instant::now();
        self.0.push((name, now - self.1));
        self.1 = now;
    }
}

/// Runs the whole build. `progress` is told the name of each stage as it starts.
pub fn build(opts: &Options, progress: &dyn Fn(&str)) -> Result<Report, Error> {
    let mut t = Stages(Vec::new(), Instant::now());
    let iso_backup = opts.backup.as_ref().filter(|b| b.url == BackupUrl::Iso);
    if iso_backup.is_some() && !opts.outputs.contains(&OutputKind::Iso) {
        return Err(Error::BackupNeedsIso);
    }
    progress("recipes");
    let sys = Sysroot::new(&opts.root)?;
    let mut names = opts.recipes.clone();
    // The ssh recipe follows the rescue system's ssh setting (default: on when the host has an
    // OpenSSH server), so `--ssh off` leaves sshd out and a host without it builds fine.
    let ssh = opts
        .rescue
        .ssh
        .unwrap_or_else(|| sys.which_on_path("sshd").is_some());
    if ssh && !names.iter().any(|n| n == "ssh") {
        names.push("ssh".to_string());
    }
    let mut recipes = names
        .iter()
        .map(|n| Recipe::load(n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut warnings: Vec<String> = Vec::new();
    let (mut layout, origin) = match &opts.layout {
        LayoutSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| Error::LayoutRead {
                path: path.clone(),
                error,
            })?;
            let origin = path.display().to_string();
            (
                Some(rear_sys::layout::Layout::from_json(&text, &origin)?),
                origin,
            )
        }
        LayoutSource::Capture if sys.is_host() && nix::unistd::geteuid().is_root() => (
            Some(rear_sys::layout::capture::capture(&sys)?),
            "of this system".to_string(),
        ),
        LayoutSource::Capture => {
            warnings.push(if sys.is_host() {
                "disk layout not captured: not running as root (the image cannot recreate the disks; run as root or pass --layout FILE)".into()
            } else {
                "disk layout not captured: --root builds cannot see the disks (pass --layout FILE)".into()
            });
            (None, String::new())
        }
        LayoutSource::None => (None, String::new()),
    };
    if let (Some(layout), Some(backup)) = (&mut layout, &opts.backup) {
        warnings.extend(exclude_backup(layout, &backup.url));
    }
    if iso_backup.is_some() && layout.is_none() {
        return Err(Error::BackupNeedsLayout(
            "capture it (run as root on the host) or pass --layout FILE".into(),
        ));
    }
    if let Some(layout) = &layout {
        recipes.push(rear_sys::layout::tools::recipe(&sys, layout, &origin)?);
    }
    if let Some(b) = &opts.backup {
        recipes.push(rear_sys::backup::image_recipe(b)?);
    }
    let init = find_init(opts.init.as_deref())?;
    t.next("recipes");

    progress("inventory");
    let inventory = Inventory::take(&sys, &opts.kernel)?;
    let (kernel, hostname) = (&inventory.kernel, &inventory.hostname);
    if let HostNetwork::Failed(e) = &inventory.network {
        warnings.push(format!(
            "network not probed ({e}): the rescue system will use DHCP, the report lists no interfaces and the PXE tree has no per-MAC menus"
        ));
    }
    t.next("inventory");

    progress("resolve");
    let (modules, closure) = rayon::join(
        || resolve_modules(&sys, kernel, opts.modules, &recipes),
        || resolve_files(&sys, &recipes, &init),
    );
    let modules = modules?;
    let mut closure = closure?;
    for w in &modules.warnings {
        closure.warn(w.clone());
    }
    let report_files = closure.count(Role::Requested);
    let report_libs = closure.count(Role::Library);
    add_modules(&mut closure, &sys, kernel, &modules, &recipes)?;
    let report_firmware = closure.count(Role::Firmware);
    add_rescue_skeleton(&mut closure, hostname)?;
    for w in warnings {
        closure.warn(w);
    }
    if let Some(layout) = &layout {
        closure.add_generated(
            LAYOUT_IN_IMAGE,
            layout.to_json().into_bytes(),
            0o644,
            "disk layout",
        )?;
    }
    if let Some(b) = &opts.backup {
        closure.add_generated(
            rear_model::backup::config::CONFIG_IN_IMAGE,
            b.to_json().into_bytes(),
            0o644,
            "backup configuration",
        )?;
    }
    crate::skeleton::add_to_image(&mut closure, &sys, &opts.rescue, &inventory, opts.epoch)?;
    let mut image = closure.finish(&kernel.release)?;
    t.next("resolve");

    progress("archive");
    let manifest_json = image.manifest.to_json();
    add_manifest_file(&mut image, &manifest_json)?;
    // The initrd is kept in memory: every medium embeds the same bytes (built once).
    let mut initrd = Vec::new();
    let stats = archive::write_initrd(&image, opts.epoch, opts.compression, &mut initrd)?;
    t.next("archive");

    progress("media");
    std::fs::create_dir_all(&opts.out_dir).map_err(|error| Error::Output {
        path: opts.out_dir.clone(),
        error,
    })?;
    let kernel_bytes = sys.read(&kernel.image)?;
    let input = MediaInput {
        hostname,
        release: &kernel.release,
        kernel: &kernel_bytes,
        initrd: &initrd,
        cmdline: crate::skeleton::kernel_cmdline(&opts.rescue),
        boot_timeout: opts.boot_timeout,
        epoch: opts.epoch,
    };
    let mut outputs = Outputs::new(&opts.out_dir);
    let write_all = |bytes: &[u8], name: &str, file: &mut dyn Write| {
        file.write_all(bytes).map_err(|error| Error::Output {
            path: opts.out_dir.join(name),
            error,
        })
    };
    if opts.outputs.contains(&OutputKind::Initrd) {
        let name = format!("initrd-{}.img", kernel.release);
        outputs.create(&name, |file| write_all(&initrd, &name, file))?;
        let name = format!("vmlinuz-{}", kernel.release);
        outputs.create(&name, |file| write_all(&kernel_bytes, &name, file))?;
    }
    if let Some(layout) = &layout {
        // `rear-mkimage layout check` compares the live layout with this copy.
        let json = layout.to_json();
        outputs.create(LAYOUT_OUTPUT, |file| {
            write_all(json.as_bytes(), LAYOUT_OUTPUT, file)
        })?;
    }
    if opts.json {
        let name = format!("initrd-{}.manifest.json", kernel.release);
        outputs.create(&name, |file| {
            write_all(manifest_json.as_bytes(), &name, file)
        })?;
    }
    let iso_name = format!("rear-{hostname}.iso");
    let (on_iso, staging, iso_report) = match (iso_backup, &layout) {
        (Some(b), Some(layout)) => {
            progress("backup");
            let (files, dir, r) = backup_into_iso(opts, b, layout, &origin, &iso_name)?;
            t.next("backup");
            (files, Some(dir), Some(r))
        }
        _ => (media::iso::HostFiles::new(), None, None),
    };
    if opts.outputs.contains(&OutputKind::Iso) {
        outputs.create_at(&iso_name, |path| {
            media::iso::write_iso_file(&sys, &input, media::iso::Backend::Hadris, &on_iso, path)
                .map_err(Error::from)
        })?;
    }
    if opts.outputs.contains(&OutputKind::Usb) {
        outputs.create_at(&format!("rear-{hostname}.usb.img"), |path| {
            media::usb::write_usb_image(&sys, &input, opts.usb_size, path).map_err(Error::from)
        })?;
    }
    let mut pxe = None;
    if opts.outputs.contains(&OutputKind::Pxe) {
        let dir = opts
            .pxe_dir
            .clone()
            .unwrap_or_else(|| opts.out_dir.join("pxe"));
        let macs = media::pxe::host_macs(&inventory.network);
        media::pxe::write_pxe_tree(&input, &macs, &dir)?;
        pxe = Some(dir);
    }
    let artefacts = outputs.commit()?;
    drop(staging);
    t.next("media");

    Ok(Report {
        kernel: kernel.release.clone(),
        files: report_files,
        libraries: report_libs,
        modules: modules.modules.len(),
        firmware: report_firmware,
        entries: image.manifest.entries.len(),
        bytes_raw: stats.raw,
        bytes_compressed: stats.compressed,
        stages: t.0,
        artefacts,
        pxe_dir: pxe,
        warnings: image.manifest.warnings.clone(),
        layout,
        iso_backup: iso_report,
        facts: inventory.facts,
    })
}

/// The fixed skeleton of the rescue system: mount points, device nodes, host name, and the
/// `poweroff`/`reboot`/`halt` commands, which are `/init` itself.
fn add_rescue_skeleton(c: &mut Closure<'_>, hostname: &str) -> Result<(), Error> {
    for (dir, mode) in [
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/dev", 0o755),
        ("/run", 0o755),
        ("/tmp", 0o1777),
        ("/root", 0o700),
        ("/mnt", 0o755),
        ("/etc/rear", 0o755),
        ("/var/log", 0o755),
    ] {
        c.add_special(dir, Kind::Dir, mode, "skeleton")?;
    }
    c.add_special(
        "/dev/console",
        Kind::CharDevice { major: 5, minor: 1 },
        0o600,
        "skeleton",
    )?;
    c.add_special(
        "/dev/null",
        Kind::CharDevice { major: 1, minor: 3 },
        0o666,
        "skeleton",
    )?;
    for cmd in ["poweroff", "reboot", "halt"] {
        c.add_special(
            &format!("/sbin/{cmd}"),
            Kind::Symlink {
                target: "/init".into(),
            },
            0o777,
            "skeleton",
        )?;
    }
    c.add_generated(
        "/etc/hostname",
        format!("{hostname}\n").into_bytes(),
        0o644,
        "inventory",
    )?;
    Ok(())
}

/// Adds `/etc/rear/manifest.json` after the manifest is final (it does not list itself).
fn add_manifest_file(image: &mut Image, json: &str) -> Result<(), Error> {
    let path = rear_model::manifest::ImagePath::new("/etc/rear/manifest.json")
        .map_err(closure::Error::from)?;
    image.data.insert(path.clone(), Arc::from(json.as_bytes()));
    image.manifest.entries.insert(
        path,
        rear_model::manifest::Entry {
            kind: Kind::File,
            mode: 0o644,
            size: json.len() as u64,
            sha256: Some(sha256_hex(json.as_bytes())),
            source: Source::Generated {
                by: "manifest".into(),
            },
            why: String::new(),
        },
    );
    Ok(())
}
