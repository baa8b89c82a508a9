//! `rear-restore layout apply`: runs the steps of a [`Plan`] on the target machine.
//!
//! Input: a plan (from [`crate::plan::plan`]) and, for LUKS, a key. Output: the disks
//! partitioned, arrays, volumes and file systems made with their saved UUIDs, and the tree
//! mounted at `/mnt/local`. Each step's commands come from [`commands`], a pure function, so
//! the exact argv is tested without disks. Every command and its output goes to
//! `/var/log/rear/recover.log`; completed steps are recorded in a state file, so a rerun after a
//! failure continues with the step that failed.
//!
//! The rescue system runs no udev: device-mapper users (LVM, cryptsetup) are told so with
//! `DM_DISABLE_UDEV=1` and create their device nodes themselves; the kernel's devtmpfs makes
//! partition and md nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::plan::{Action, Plan, Step, TargetDisk};
use rear_model::layout::model::MOUNT_ROOT;
use rear_model::layout::model::{Disk, FsType, LvKind, TableKind};
use rear_sys::exec;

/// Where the commands and their output are logged.
pub const LOG: &str = "/var/log/rear/recover.log";
/// Where completed steps are recorded.
pub const STATE: &str = "/var/lib/rear/layout-apply.json";
/// The plan `layout apply` ran, for `finalize` (which needs its renames) and for people.
pub const PLAN: &str = "/var/lib/rear/layout-plan.json";

/// Errors of applying a plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command failed.
    #[error("step \"{step}\": {error}")]
    Command {
        /// The step.
        step: String,
        /// What failed.
        error: exec::Error,
    },
    /// A step would touch a device the plan does not name as a target.
    #[error(
        "step \"{step}\" would write to {device}, which is not a target disk of the plan ({targets}); refusing"
    )]
    NotATarget {
        /// The step.
        step: String,
        /// The device.
        device: String,
        /// The plan's target disks.
        targets: String,
    },
    /// A device did not appear after the step that makes it.
    #[error("step \"{step}\": {device} did not appear within {seconds} s")]
    NoDevice {
        /// The step.
        step: String,
        /// The device.
        device: String,
        /// How long we waited.
        seconds: u64,
    },
    /// The plan needs a LUKS key and none was given.
    #[error(
        "LUKS container {device} needs a passphrase: give --luks-key FILE or run on a terminal"
    )]
    NoKey {
        /// The encrypted device.
        device: String,
    },
    /// A file could not be read or written.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// One command of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Written to stdin.
    pub input: Option<String>,
    /// The Debian package providing the program, for the error when it is missing.
    pub package: &'static str,
}

impl Cmd {
    fn new(package: &'static str, argv: &[&str]) -> Cmd {
        Cmd {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            input: None,
            package,
        }
    }

    fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.argv.push(a.into());
        self
    }

    fn args<S: Into<String>>(mut self, a: impl IntoIterator<Item = S>) -> Cmd {
        self.argv.extend(a.into_iter().map(Into::into));
        self
    }

    fn input(mut self, s: String) -> Cmd {
        self.input = Some(s);
        self
    }
}

/// Values the commands need beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The LUKS key file.
    pub luks_key: Option<PathBuf>,
    /// Where to mount (normally [`MOUNT_ROOT`]).
    pub mount_root: String,
    /// Scratch directory for temporary mounts (btrfs subvolumes).
    pub scratch: String,
}

/// The sfdisk script for a table: the label, its id, the first usable sector, then each
/// partition with start, size, type, UUID, name and attributes (sfdisk(8), "Input format").
pub fn sfdisk_script(
    disk: &str,
    sector_size: u32,
    table: &rear_model::layout::model::PartitionTable,
) -> String {
    let mut s = String::new();
    s.push_str(match table.kind {
        TableKind::Gpt => "label: gpt\n",
        TableKind::Dos => "label: dos\n",
    });
    s.push_str(&format!("label-id: {}\n", table.id));
    s.push_str(&format!("device: {disk}\nunit: sectors\n"));
    if let Some(first) = table.first_lba {
        s.push_str(&format!("first-lba: {first}\n"));
    }
    s.push_str(&format!("sector-size: {sector_size}\n\n"));
    for p in &table.partitions {
        let mut fields = vec![
            format!("start={}", p.start),
            format!("size={}", p.size),
            format!("type={}", p.type_),
        ];
        if table.kind == TableKind::Gpt {
            if !p.uuid.is_empty() {
                fields.push(format!("uuid={}", p.uuid));
            }
            if !p.name.is_empty() {
                fields.push(format!("name=\"{}\"", p.name.replace('"', "")));
            }
            if !p.attrs.is_empty() {
                fields.push(format!("attrs=\"{}\"", p.attrs));
            }
        } else if p.flags.contains(&rear_model::layout::model::PartFlag::Boot) {
            fields.push("bootable".into());
        }
        s.push_str(&format!("{} : {}\n", p.device, fields.join(", ")));
    }
    s
}

/// ext features the kernel sets while mounted or that mkfs cannot be asked for.
const EXT_RUNTIME_FEATURES: &[&str] = &[
    "needs_recovery",
    "orphan_present",
    "recover",
    "journal_dev",
    "snapshot_bitmap",
];
/// ext features that mke2fs may turn on by default: switched off (`^name`) when the saved file
/// system did not have them, so the new one has the same feature set.
const EXT_DEFAULT_FEATURES: &[&str] = &[
    "metadata_csum",
    "metadata_csum_seed",
    "64bit",
    "orphan_file",
    "huge_file",
    "dir_nlink",
    "extra_isize",
    "flex_bg",
];

/// The commands of one step.
pub fn commands(step: &Step, ctx: &Context) -> Result<Vec<Cmd>, Error> {
    let lvm = |args: &[&str]| Cmd::new("lvm2", &["lvm"]).args(args.iter().copied());
    let kib = |bytes: u64| format!("{}k", bytes / 1024);
    Ok(match &step.action {
        Action::Wipe { disk } => {
            vec![Cmd::new("util-linux", &["wipefs", "--all", "--force"]).arg(disk)]
        }
        Action::Partition {
            disk,
            sector_size,
            table,
        } => vec![
            // sfdisk tells the kernel about the new partitions; devtmpfs makes their nodes.
            Cmd::new(
                "fdisk",
                &["sfdisk", "--wipe", "always", "--wipe-partitions", "always"],
            )
            .arg(disk)
            .input(sfdisk_script(disk, *sector_size, table)),
        ],
        Action::Md { array } => {
            let mut c = Cmd::new("mdadm", &["mdadm", "--create"])
                .arg(&array.device)
                .args(["--run", "--force"])
                .arg(format!("--metadata={}", array.metadata))
                .arg(format!("--level={}", array.level))
                .arg(format!("--raid-devices={}", array.raid_devices))
                .arg(format!("--uuid={}", array.uuid));
            if let Some((host, name)) = array.name.split_once(':') {
                c = c
                    .arg(format!("--homehost={host}"))
                    .arg(format!("--name={name}"));
            } else if !array.name.is_empty() {
                c = c.arg(format!("--name={}", array.name));
            }
            if let Some(chunk) = array.chunk_kib {
                c = c.arg(format!("--chunk={chunk}"));
            }
            if !array.layout.is_empty() {
                c = c.arg(format!("--layout={}", array.layout));
            }
            if !array.spares.is_empty() {
                c = c.arg(format!("--spare-devices={}", array.spares.len()));
            }
            // mdadm asks before using a device that looks used; the wipe made sure it is not.
            vec![
                c.args(array.members.iter().chain(&array.spares).cloned())
                    .input("y\n".into()),
            ]
        }
        Action::Luks { luks } => {
            let key = ctx
                .luks_key
                .as_ref()
                .ok_or_else(|| Error::NoKey {
                    device: luks.device.clone(),
                })?
                .display()
                .to_string();
            let mut c = Cmd::new(
                "cryptsetup-bin",
                &["cryptsetup", "luksFormat", "--batch-mode"],
            )
            .arg(format!("--type=luks{}", luks.version))
            .arg(format!("--cipher={}", luks.cipher))
            .arg(format!("--key-size={}", luks.key_size))
            .arg(format!("--hash={}", luks.hash))
            .arg(format!("--uuid={}", luks.uuid));
            if !luks.pbkdf.is_empty() && luks.version == 2 {
                c = c.arg(format!("--pbkdf={}", luks.pbkdf));
            }
            if let Some(s) = luks.sector_size.filter(|_| luks.version == 2) {
                c = c.arg(format!("--sector-size={s}"));
            }
            if !luks.label.is_empty() && luks.version == 2 {
                c = c.arg(format!("--label={}", luks.label));
            }
            vec![
                c.arg(format!("--key-file={key}")).arg(&luks.device),
                Cmd::new("cryptsetup-bin", &["cryptsetup", "open"])
                    .arg(format!("--key-file={key}"))
                    .arg(&luks.device)
                    .arg(&luks.name),
            ]
        }
        Action::Pv { device, uuid } => vec![
            lvm(&["pvcreate", "--yes", "-ff", "--norestorefile"])
                .arg(format!("--uuid={uuid}"))
                .arg(device),
        ],
        Action::Vg {
            name,
            extent_size,
            pvs,
        } => vec![
            lvm(&["vgcreate", "--yes"])
                .arg(format!("--physicalextentsize={}", kib(*extent_size)))
                .arg(name)
                .args(pvs.iter().cloned()),
        ],
        Action::Lv { vg, lv } => {
            // Thin pools and thin volumes are zeroed by LVM itself and refuse
            // --wipesignatures.
            let c = match &lv.kind {
                LvKind::ThinPool { .. } | LvKind::Thin { .. } => lvm(&["lvcreate", "--yes"]),
                _ => lvm(&["lvcreate", "--yes", "--wipesignatures=y"]),
            };
            let c = match &lv.kind {
                LvKind::Linear => c.arg(format!("--size={}", kib(lv.size))),
                LvKind::Striped {
                    stripes,
                    stripe_size,
                } => c
                    .arg(format!("--size={}", kib(lv.size)))
                    .arg(format!("--stripes={stripes}"))
                    .arg(format!("--stripesize={}", kib(*stripe_size))),
                LvKind::Raid { level, stripes } => {
                    let c = c
                        .arg(format!("--type={level}"))
                        .arg(format!("--size={}", kib(lv.size)));
                    if level == "raid1" {
                        c.arg(format!("--mirrors={}", stripes.saturating_sub(1)))
                    } else {
                        c.arg(format!("--stripes={stripes}"))
                    }
                }
                LvKind::ThinPool {
                    chunk_size,
                    metadata_size,
                } => c
                    .arg("--type=thin-pool")
                    .arg(format!("--size={}", kib(lv.size)))
                    .arg(format!("--chunksize={}", kib(*chunk_size)))
                    .arg(format!("--poolmetadatasize={}", kib(*metadata_size))),
                LvKind::Thin { pool } => c
                    .arg("--type=thin")
                    .arg(format!("--virtualsize={}", kib(lv.size)))
                    .arg(format!("--thinpool={pool}")),
            };
            vec![c.arg(format!("--name={}", lv.name)).arg(vg)]
        }
        Action::Mkfs { fs } => vec![mkfs(fs)],
        Action::Mkswap { swap } => {
            let mut c =
                Cmd::new("util-linux", &["mkswap", "--force"]).arg(format!("--uuid={}", swap.uuid));
            if !swap.label.is_empty() {
                c = c.arg(format!("--label={}", swap.label));
            }
            vec![c.arg(&swap.device)]
        }
        Action::Subvolumes {
            device,
            subvolumes,
            default,
        } => {
            let dir = format!("{}/btrfs-top", ctx.scratch);
            let mut v = vec![
                Cmd::new("coreutils", &["mkdir", "-p"]).arg(&dir),
                Cmd::new("mount", &["mount", "-t", "btrfs", "-o", "subvolid=5"])
                    .arg(device)
                    .arg(&dir),
            ];
            for s in subvolumes {
                v.push(
                    Cmd::new("btrfs-progs", &["btrfs", "subvolume", "create"])
                        .arg(format!("{dir}/{}", s.path)),
                );
                if s.nodatacow {
                    v.push(
                        Cmd::new("e2fsprogs", &["chattr", "+C"]).arg(format!("{dir}/{}", s.path)),
                    );
                }
            }
            if !default.is_empty() {
                v.push(
                    Cmd::new("btrfs-progs", &["btrfs", "subvolume", "set-default"])
                        .arg(format!("{dir}/{default}")),
                );
            }
            v.push(Cmd::new("mount", &["umount"]).arg(&dir));
            v
        }
        Action::Mount {
            device,
            fstype,
            target,
            options,
            subvolume,
        } => {
            let dir = format!(
                "{}{}",
                ctx.mount_root,
                if target == "/" { "" } else { target }
            );
            let mut opts: Vec<String> = options
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect();
            if !subvolume.is_empty() {
                opts.push(format!("subvol={subvolume}"));
            }
            let mut c = Cmd::new("mount", &["mount", "-t", fstype.as_str()]);
            if !opts.is_empty() {
                c = c.arg("-o").arg(opts.join(","));
            }
            vec![
                Cmd::new("coreutils", &["mkdir", "-p"]).arg(&dir),
                c.arg(device).arg(dir),
            ]
        }
    })
}

/// mkfs with the saved UUID, label and options.
fn mkfs(fs: &rear_model::layout::model::Filesystem) -> Cmd {
    let o = &fs.options;
    match fs.fstype {
        FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => {
            let mut c = Cmd::new(
                "e2fsprogs",
                &[&format!("mkfs.{}", fs.fstype.as_str()), "-F", "-q"],
            )
            .arg("-U")
            .arg(&fs.uuid);
            if !fs.label.is_empty() {
                c = c.arg("-L").arg(&fs.label);
            }
            if let Some(b) = o.block_size {
                c = c.arg("-b").arg(b.to_string());
            }
            if let Some(i) = o.inode_size {
                c = c.arg("-I").arg(i.to_string());
            }
            if !o.features.is_empty() {
                let mut f: Vec<String> = o
                    .features
                    .iter()
                    .filter(|f| !EXT_RUNTIME_FEATURES.contains(&f.as_str()))
                    .cloned()
                    .collect();
                for d in EXT_DEFAULT_FEATURES {
                    if !o.features.iter().any(|f| f == d) {
                        f.push(format!("^{d}"));
                    }
                }
                c = c.arg("-O").arg(f.join(","));
            }
            c.arg(&fs.device)
        }
        FsType::Xfs => {
            let mut c =
                Cmd::new("xfsprogs", &["mkfs.xfs", "-f", "-m"]).arg(format!("uuid={}", fs.uuid));
            if !fs.label.is_empty() {
                c = c.arg("-L").arg(&fs.label);
            }
            if let Some(b) = o.block_size {
                c = c.arg("-b").arg(format!("size={b}"));
            }
            if let Some(s) = o.sector_size {
                c = c.arg("-s").arg(format!("size={s}"));
            }
            c.arg(&fs.device)
        }
        FsType::Btrfs => {
            let mut c = Cmd::new("btrfs-progs", &["mkfs.btrfs", "-f", "-U"]).arg(&fs.uuid);
            if !fs.label.is_empty() {
                c = c.arg("-L").arg(&fs.label);
            }
            if !o.data_profile.is_empty() {
                c = c.arg("-d").arg(&o.data_profile);
            }
            if !o.metadata_profile.is_empty() {
                c = c.arg("-m").arg(&o.metadata_profile);
            }
            c.arg(&fs.device)
        }
        FsType::Vfat => {
            let mut c = Cmd::new("dosfstools", &["mkfs.vfat", "-i"]).arg(fs.uuid.replace('-', ""));
            if !fs.label.is_empty() {
                c = c.arg("-n").arg(&fs.label);
            }
            if let Some(f) = o.fat_size {
                c = c.arg("-F").arg(f.to_string());
            }
            c.arg(&fs.device)
        }
    }
}

/// Devices a step writes to, which must be target disks of the plan or their partitions.
fn written_disks(step: &Step) -> Vec<&str> {
    match &step.action {
        Action::Wipe { disk } | Action::Partition { disk, .. } => vec![disk],
        _ => vec![],
    }
}

/// Whether `dev` is `disk` or one of its partitions (`/dev/vda2`, `/dev/nvme0n1p2`).
fn on_disk(dev: &str, disk: &str) -> bool {
    dev.strip_prefix(disk).is_some_and(|rest| {
        let digits = rest.strip_prefix('p').unwrap_or(rest);
        rest.is_empty() || (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
    })
}

/// The target machine's disks (from [`rear_sys::layout::capture::disks_from_lsblk`]) with the
/// ones that must not be touched marked: a disk is unavailable when it or one of its
/// partitions is mounted or used as swap (`mounts`, `swaps`: `/proc/self/mounts` and
/// `/proc/swaps`; the backup disk, the USB stick the rescue system runs from), or when it
/// carries a label of the rescue media (`REAR-*`, from `blkid`).
pub fn target_disks(
    disks: Vec<Disk>,
    mounts: &str,
    swaps: &str,
    blkid: &BTreeMap<String, rear_sys::layout::parse::blkid::Tags>,
) -> Vec<TargetDisk> {
    let used: BTreeSet<String> = rear_sys::mounts::parse_mounts(mounts)
        .into_iter()
        .map(|m| m.source)
        .chain(
            swaps
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(rear_sys::mounts::unescape_octal),
        )
        .filter(|d| d.starts_with("/dev/"))
        .collect();
    disks
        .into_iter()
        .map(|disk| {
            let in_use = used.iter().find(|d| on_disk(d, &disk.device));
            let media = blkid.iter().find(|(dev, tags)| {
                on_disk(dev, &disk.device)
                    && tags.get("LABEL").is_some_and(|l| l.starts_with("REAR-"))
            });
            let unavailable = match (in_use, media) {
                (Some(d), _) => Some(format!("{d} is in use (mounted or swap)")),
                (None, Some((d, tags))) => Some(format!(
                    "{d} is rescue media (label {})",
                    tags.get("LABEL").map(String::as_str).unwrap_or_default()
                )),
                (None, None) => None,
            };
            TargetDisk { disk, unavailable }
        })
        .collect()
}

/// Completed steps, kept between runs of `layout apply`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Digest of the plan the steps belong to: another plan starts from the beginning.
    plan: String,
    /// Ids of completed steps.
    done: Vec<String>,
}

/// Runs the plan's steps, skipping those a previous run completed. `confirm` has already
/// been asked by the caller.
pub fn apply(plan: &Plan, ctx: &Context, state_path: &Path, log_path: &Path) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| Error::Io {
            path: path.clone(),
            error,
        }
    };
    for p in [state_path, log_path] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(io(log_path))?;
    let digest = rear_model::manifest::sha256_hex(
        serde_json::to_string(&plan.steps)
            .unwrap_or_default()
            .as_bytes(),
    );
    let mut state: State = std::fs::read_to_string(state_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|s: &State| s.plan == digest)
        .unwrap_or_else(|| State {
            plan: digest.clone(),
            done: Vec::new(),
        });
    // finalize needs the renames after the disks are in use (and no longer plannable).
    let plan_path = state_path.with_file_name("layout-plan.json");
    let text = serde_json::to_string_pretty(plan).unwrap_or_default();
    rear_sys::atomic::write(&plan_path, text.as_bytes(), 0o644).map_err(io(&plan_path))?;
    let targets = plan.target_disks();
    let udev = Path::new("/run/udev/control").exists();
    for (i, step) in plan.steps.iter().enumerate() {
        if state.done.contains(&step.id) {
            log::info!(
                "step {}/{} done before: {}",
                i + 1,
                plan.steps.len(),
                step.describe()
            );
            continue;
        }
        for d in written_disks(step) {
            if !targets.contains(d) {
                return Err(Error::NotATarget {
                    step: step.id.clone(),
                    device: d.to_string(),
                    targets: targets.iter().copied().collect::<Vec<_>>().join(", "),
                });
            }
        }
        log::info!("step {}/{}: {}", i + 1, plan.steps.len(), step.describe());
        let _ = writeln!(log, "## step {}: {}", step.id, step.describe());
        if matches!(step.action, Action::Mount { .. }) && mounted_at(&mount_dir(step, ctx)) {
            let _ = writeln!(log, "already mounted");
            state.done.push(step.id.clone());
            continue;
        }
        for cmd in commands(step, ctx)? {
            run_logged(&cmd, udev, &mut log).map_err(|error| Error::Command {
                step: step.id.clone(),
                error,
            })?;
        }
        if let Action::Partition { table, .. } = &step.action {
            for p in &table.partitions {
                wait_for(&p.device, &step.id)?;
            }
        }
        for c in &step.creates {
            if c.starts_with("/dev/") && !c.starts_with("/dev/mapper/") {
                wait_for(c, &step.id)?;
            }
        }
        state.done.push(step.id.clone());
        let text = serde_json::to_string_pretty(&state).unwrap_or_default();
        rear_sys::atomic::write(state_path, text.as_bytes(), 0o644).map_err(io(state_path))?;
    }
    Ok(())
}

fn mount_dir(step: &Step, ctx: &Context) -> String {
    match &step.action {
        Action::Mount { target, .. } => {
            format!(
                "{}{}",
                ctx.mount_root,
                if target == "/" { "" } else { target }
            )
        }
        _ => String::new(),
    }
}

/// Whether something is mounted exactly at `dir`.
fn mounted_at(dir: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|t| t.lines().any(|l| l.split_whitespace().nth(1) == Some(dir)))
        .unwrap_or(false)
}

/// Runs one command, logging argv and output.
fn run_logged(cmd: &Cmd, udev: bool, log: &mut std::fs::File) -> Result<(), exec::Error> {
    let mut c = Command::new(&cmd.argv[0]);
    c.args(&cmd.argv[1..]);
    if !udev {
        // No udev: libdevmapper makes the /dev/mapper nodes itself instead of waiting.
        c.env("DM_DISABLE_UDEV", "1");
    }
    let _ = writeln!(log, "+ {}", exec::argv_string(&c));
    let result = match &cmd.input {
        Some(input) => exec::run_with_input(&mut c, input.as_bytes(), Some(cmd.package)),
        None => exec::run(&mut c, Some(cmd.package)),
    };
    match &result {
        Ok(out) => {
            let _ = log.write_all(&out.stdout);
            let _ = log.write_all(&out.stderr);
        }
        Err(e) => {
            let _ = writeln!(log, "FAILED: {e}");
        }
    }
    result.map(|_| ())
}

/// Waits for a device node made by the kernel (partitions, md arrays).
fn wait_for(device: &str, step: &str) -> Result<(), Error> {
    let limit = Duration::from_secs(15);
    let start = Instant::now();
    while !Path::new(device).exists() {
        if start.elapsed() > limit {
            return Err(Error::NoDevice {
                step: step.to_string(),
                device: device.to_string(),
                seconds: limit.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The default context: mount at [`MOUNT_ROOT`], scratch in `/run/rear`.
pub fn default_context(luks_key: Option<PathBuf>) -> Context {
    Context {
        luks_key,
        mount_root: MOUNT_ROOT.to_string(),
        scratch: "/run/rear".to_string(),
    }
}

/// Where `layout plan` and `layout apply` read the saved layout.
pub const LAYOUT_JSON: &str = "/etc/rear/layout.json";
/// The optional disk mapping file.
pub const MAPPINGS: &str = "/etc/rear/mappings/disks";

/// Errors before any step runs: reading the layout or mapping, planning.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The layout or mapping file could not be read.
    #[error("{}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// The layout file is bad.
    #[error(transparent)]
    Layout(#[from] rear_model::layout::model::Error),
    /// The plan cannot be made.
    #[error(transparent)]
    Plan(#[from] crate::plan::Error),
    /// The disks of this machine could not be listed.
    #[error("listing the disks: {0}")]
    Probe(exec::Error),
    /// lsblk's output could not be read.
    #[error(transparent)]
    Lsblk(#[from] rear_sys::layout::capture::Error),
}

/// Reads the layout and mapping files, looks at this machine's disks and makes the plan.
/// A missing mapping file is fine (no mappings).
pub fn plan_here(
    layout: &Path,
    mappings: &Path,
    resize: crate::plan::Resize,
) -> Result<(rear_sys::layout::Layout, Plan), PlanError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|error| PlanError::Read {
            path: p.to_path_buf(),
            error,
        })
    };
    let saved = rear_sys::layout::Layout::from_json(&read(layout)?, &layout.display().to_string())?;
    let plan = plan_layout(&saved, mappings, resize)?;
    Ok((saved, plan))
}

/// Plans `saved` onto this machine's disks (lsblk, blkid, the mounts and swaps mark those
/// that must not be touched) with the mapping file, when it exists.
pub fn plan_layout(
    saved: &rear_sys::layout::Layout,
    mappings: &Path,
    resize: crate::plan::Resize,
) -> Result<Plan, PlanError> {
    let mappings = match std::fs::read_to_string(mappings) {
        Ok(text) => crate::plan::Mappings::parse(&text, &mappings.display().to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(error) => {
            return Err(PlanError::Read {
                path: mappings.to_path_buf(),
                error,
            });
        }
    };
    let lsblk = exec::run(
        Command::new("lsblk").args(["-J", "-b", "-O"]),
        Some("util-linux"),
    )
    .map_err(PlanError::Probe)?;
    let disks =
        rear_sys::layout::capture::disks_from_lsblk(&String::from_utf8_lossy(&lsblk.stdout))?;
    // Labels tell the rescue media apart; blkid exits 2 when it finds nothing.
    let blkid = exec::run(
        Command::new("blkid").args(["-c", "/dev/null", "-o", "export"]),
        Some("util-linux"),
    )
    .ok()
    .and_then(|o| rear_sys::layout::parse::blkid::parse(&String::from_utf8_lossy(&o.stdout)).ok())
    .unwrap_or_default();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let disks = target_disks(
        disks,
        &read("/proc/self/mounts"),
        &read("/proc/swaps"),
        &blkid,
    );
    Ok(crate::plan::plan(saved, &disks, &mappings, resize)?)
}

/// Loads the kernel modules the layout needs (RAID levels, device-mapper targets, ciphers,
/// file systems): the rescue system runs no udev, and mount alone would load only the file
/// systems, and only when the image has modprobe. A module that fails to load is logged;
/// the step that needs it then fails with the tool's message.
pub fn load_modules(layout: &rear_sys::layout::Layout) {
    rear_sys::kmod::load::load_names(&rear_sys::layout::tools::modules(layout));
}

/// Takes the LUKS key (the file given, or asked on the terminal
/// when `ask` and the plan has LUKS steps; an asked key file is removed afterwards) and runs
/// the plan with the standard state, log and mount root.
pub fn apply_plan(plan: &Plan, luks_key: Option<PathBuf>, ask: bool) -> Result<(), Error> {
    let needs_key = plan
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Luks { .. }));
    let asked = match &luks_key {
        None if needs_key && ask => Some(ask_passphrase(Path::new("/run/rear"))?),
        _ => None,
    };
    let result = apply(
        plan,
        &default_context(luks_key.or(asked.clone())),
        Path::new(STATE),
        Path::new(LOG),
    );
    if let Some(k) = asked {
        let _ = std::fs::remove_file(k);
    }
    result
}

/// Asks for a LUKS passphrase twice on the terminal without echo and writes it to a key file
/// in `dir` (a tmpfs in the rescue system) readable only by root. The caller removes it.
pub fn ask_passphrase(dir: &Path) -> Result<PathBuf, Error> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| Error::Io { path, error }
    };
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|e| Error::Io {
        path: "/dev/stdin".into(),
        error: e.into(),
    })?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    let ask = |prompt: &str| -> Result<String, Error> {
        eprint!("{prompt}");
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        let mut line = String::new();
        let r = stdin.read_line(&mut line);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        r.map_err(io(Path::new("/dev/stdin")))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    loop {
        let a = ask("LUKS passphrase for the recreated containers: ")?;
        let b = ask("Again: ")?;
        if a == b && !a.is_empty() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let path = dir.join("luks.key");
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
            f.write_all(a.as_bytes()).map_err(io(&path))?;
            return Ok(path);
        }
        eprintln!("The passphrases differ or are empty; again.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::layout::model::{
        Filesystem, FsOptions, Luks, MdArray, Partition, PartitionTable, Subvolume,
    };

    fn step(action: Action) -> Step {
        Step {
            id: "x".into(),
            action,
            creates: vec![],
            needs: vec![],
        }
    }

    fn argv(action: Action, ctx: &Context) -> Vec<String> {
        commands(&step(action), ctx)
            .unwrap()
            .iter()
            .map(|c| c.argv.join(" "))
            .collect()
    }

    #[test]
    fn sfdisk_script_gpt_and_dos() {
        let table = PartitionTable {
            kind: TableKind::Gpt,
            id: "0D5B8C1E-1F8A-4E6B-9A41-7E4C7C1B2A10".into(),
            first_lba: Some(34),
            last_lba: None,
            partitions: vec![Partition {
                device: "/dev/vda1".into(),
                number: 1,
                start: 2048,
                size: 4096,
                start_bytes: 2048 * 512,
                size_bytes: 4096 * 512,
                type_: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".into(),
                uuid: "A0A0A0A0-0000-4000-8000-000000000001".into(),
                name: "EFI system".into(),
                attrs: "RequiredPartition".into(),
                flags: vec![],
            }],
        };
        expect_test::expect![[r#"
            label: gpt
            label-id: 0D5B8C1E-1F8A-4E6B-9A41-7E4C7C1B2A10
            device: /dev/vda
            unit: sectors
            first-lba: 34
            sector-size: 512

            /dev/vda1 : start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=A0A0A0A0-0000-4000-8000-000000000001, name="EFI system", attrs="RequiredPartition"
        "#]]
        .assert_eq(&sfdisk_script("/dev/vda", 512, &table));
        let mut dos = table.clone();
        dos.kind = TableKind::Dos;
        dos.id = "0x1234abcd".into();
        dos.first_lba = None;
        dos.partitions[0].type_ = "83".into();
        dos.partitions[0].flags = vec![rear_model::layout::model::PartFlag::Boot];
        let s = sfdisk_script("/dev/vda", 512, &dos);
        assert!(s.contains("label: dos\nlabel-id: 0x1234abcd\n"), "{s}");
        assert!(
            s.ends_with("/dev/vda1 : start=2048, size=4096, type=83, bootable\n"),
            "{s}"
        );
    }

    #[test]
    fn commands_md_luks_lvm() {
        let ctx = Context {
            luks_key: Some("/run/key".into()),
            ..default_context(None)
        };
        let md = MdArray {
            device: "/dev/md0".into(),
            name: "db1:root".into(),
            uuid: "a:b:c:d".into(),
            level: "raid1".into(),
            metadata: "1.2".into(),
            raid_devices: 2,
            members: vec!["/dev/vda2".into(), "/dev/vdb2".into()],
            ..MdArray::default()
        };
        assert_eq!(
            argv(Action::Md { array: md }, &ctx),
            [
                "mdadm --create /dev/md0 --run --force --metadata=1.2 --level=raid1 --raid-devices=2 --uuid=a:b:c:d --homehost=db1 --name=root /dev/vda2 /dev/vdb2"
            ]
        );
        let luks = Luks {
            device: "/dev/vda3".into(),
            name: "cryptroot".into(),
            version: 2,
            cipher: "aes-xts-plain64".into(),
            key_size: 512,
            hash: "sha256".into(),
            pbkdf: "argon2id".into(),
            sector_size: Some(512),
            uuid: "c0ffee00-0000-4000-8000-000000000000".into(),
            label: "root".into(),
        };
        assert_eq!(
            argv(Action::Luks { luks: luks.clone() }, &ctx),
            [
                "cryptsetup luksFormat --batch-mode --type=luks2 --cipher=aes-xts-plain64 --key-size=512 --hash=sha256 --uuid=c0ffee00-0000-4000-8000-000000000000 --pbkdf=argon2id --sector-size=512 --label=root --key-file=/run/key /dev/vda3",
                "cryptsetup open --key-file=/run/key /dev/vda3 cryptroot",
            ]
        );
        let e = commands(&step(Action::Luks { luks }), &default_context(None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "LUKS container /dev/vda3 needs a passphrase: give --luks-key FILE or run on a terminal"
        );
        let lv = |name: &str, size: u64, kind| rear_model::layout::model::LogicalVolume {
            name: name.into(),
            uuid: String::new(),
            size,
            kind,
        };
        let pool = LvKind::ThinPool {
            chunk_size: 64 << 10,
            metadata_size: 4 << 20,
        };
        assert_eq!(
            argv(
                Action::Lv {
                    vg: "vg0".into(),
                    lv: lv("pool", 200 << 20, pool)
                },
                &ctx
            ),
            [
                "lvm lvcreate --yes --type=thin-pool --size=204800k --chunksize=64k --poolmetadatasize=4096k --name=pool vg0"
            ]
        );
        assert_eq!(
            argv(
                Action::Lv {
                    vg: "vg0".into(),
                    lv: lv(
                        "srv",
                        1 << 30,
                        LvKind::Thin {
                            pool: "pool".into()
                        }
                    )
                },
                &ctx
            ),
            [
                "lvm lvcreate --yes --type=thin --virtualsize=1048576k --thinpool=pool --name=srv vg0"
            ]
        );
        assert_eq!(
            argv(
                Action::Vg {
                    name: "vg0".into(),
                    extent_size: 4 << 20,
                    pvs: vec!["/dev/md0".into()]
                },
                &ctx
            ),
            ["lvm vgcreate --yes --physicalextentsize=4096k vg0 /dev/md0"]
        );
    }

    #[test]
    fn commands_mkfs_keep_uuid_label_and_options() {
        let ctx = default_context(None);
        let fs = |fstype, options| Filesystem {
            device: "/dev/vda2".into(),
            fstype,
            uuid: "5a1f7a1e-3c2b-4d5e-8f90-123456789abc".into(),
            label: "root".into(),
            options,
        };
        let ext = FsOptions {
            block_size: Some(4096),
            inode_size: Some(256),
            features: vec![
                "extent".into(),
                "has_journal".into(),
                "metadata_csum".into(),
                "needs_recovery".into(),
            ],
            ..FsOptions::default()
        };
        assert_eq!(
            argv(
                Action::Mkfs {
                    fs: fs(FsType::Ext4, ext)
                },
                &ctx
            ),
            [
                "mkfs.ext4 -F -q -U 5a1f7a1e-3c2b-4d5e-8f90-123456789abc -L root -b 4096 -I 256 -O extent,has_journal,metadata_csum,^metadata_csum_seed,^64bit,^orphan_file,^huge_file,^dir_nlink,^extra_isize,^flex_bg /dev/vda2"
            ]
        );
        let xfs = FsOptions {
            block_size: Some(4096),
            sector_size: Some(512),
            ..FsOptions::default()
        };
        assert_eq!(
            argv(
                Action::Mkfs {
                    fs: fs(FsType::Xfs, xfs)
                },
                &ctx
            ),
            [
                "mkfs.xfs -f -m uuid=5a1f7a1e-3c2b-4d5e-8f90-123456789abc -L root -b size=4096 -s size=512 /dev/vda2"
            ]
        );
        let mut vfat = fs(
            FsType::Vfat,
            FsOptions {
                fat_size: Some(32),
                ..FsOptions::default()
            },
        );
        vfat.uuid = "ABCD-1234".into();
        vfat.label = "EFI".into();
        assert_eq!(
            argv(Action::Mkfs { fs: vfat }, &ctx),
            ["mkfs.vfat -i ABCD1234 -n EFI -F 32 /dev/vda2"]
        );
        assert_eq!(
            argv(
                Action::Subvolumes {
                    device: "/dev/vda2".into(),
                    subvolumes: vec![
                        Subvolume {
                            path: "@".into(),
                            nodatacow: false
                        },
                        Subvolume {
                            path: "@db".into(),
                            nodatacow: true
                        }
                    ],
                    default: "@".into()
                },
                &ctx
            ),
            [
                "mkdir -p /run/rear/btrfs-top",
                "mount -t btrfs -o subvolid=5 /dev/vda2 /run/rear/btrfs-top",
                "btrfs subvolume create /run/rear/btrfs-top/@",
                "btrfs subvolume create /run/rear/btrfs-top/@db",
                "chattr +C /run/rear/btrfs-top/@db",
                "btrfs subvolume set-default /run/rear/btrfs-top/@",
                "umount /run/rear/btrfs-top",
            ]
        );
        assert_eq!(
            argv(
                Action::Mount {
                    device: "/dev/vda2".into(),
                    fstype: FsType::Btrfs,
                    target: "/home".into(),
                    options: "relatime,compress=zstd:3".into(),
                    subvolume: "@home".into()
                },
                &ctx
            ),
            [
                "mkdir -p /mnt/local/home",
                "mount -t btrfs -o relatime,compress=zstd:3,subvol=@home /dev/vda2 /mnt/local/home"
            ]
        );
    }

    #[test]
    fn apply_refuses_disk_outside_plan_and_resumes() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = Context {
            mount_root: tmp.path().join("mnt").display().to_string(),
            scratch: tmp.path().display().to_string(),
            luks_key: None,
        };
        let mut plan = Plan {
            hostname: "h".into(),
            disks: vec![],
            renames: Default::default(),
            steps: vec![step(Action::Wipe {
                disk: "/dev/rear-test-no-such-disk".into(),
            })],
        };
        let state = tmp.path().join("state.json");
        let log = tmp.path().join("log/recover.log");
        let e = apply(&plan, &ctx, &state, &log).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "step \"x\" would write to /dev/rear-test-no-such-disk, which is not a target disk"
            ),
            "{e}"
        );
        // A plan whose only steps are recorded as done runs nothing (a wipe of /dev/rear-test-no-such-disk would
        // fail here without root).
        plan.disks.push(crate::plan::DiskMatch {
            old: "/dev/sda".into(),
            new: "/dev/rear-test-no-such-disk".into(),
            by: crate::plan::MatchedBy::Size,
            old_size: 1,
            new_size: 1,
        });
        let digest = rear_model::manifest::sha256_hex(
            serde_json::to_string(&plan.steps).unwrap().as_bytes(),
        );
        std::fs::write(
            &state,
            format!("{{\"plan\":\"{digest}\",\"done\":[\"x\"]}}"),
        )
        .unwrap();
        apply(&plan, &ctx, &state, &log).unwrap();
        // Another plan starts over and fails on the missing disk, logging the command.
        std::fs::write(&state, "{\"plan\":\"other\",\"done\":[\"x\"]}").unwrap();
        let e = apply(&plan, &ctx, &state, &log).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("step \"x\": wipefs --all --force /dev/rear-test-no-such-disk failed"),
            "{e}"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("+ wipefs --all --force /dev/rear-test-no-such-disk\nFAILED: "),
            "{text}"
        );
    }

    #[test]
    fn target_disks_marks_mounted_swap_and_media_disks() {
        let disk = |d: &str| Disk {
            device: d.into(),
            size: 1 << 30,
            ..Disk::default()
        };
        let blkid = rear_sys::layout::parse::blkid::parse(
            "DEVNAME=/dev/sdc1\nLABEL=REAR-DATA\nTYPE=ext4\n\nDEVNAME=/dev/vda1\nTYPE=ext4\n",
        )
        .unwrap();
        let t = target_disks(
            vec![
                disk("/dev/vda"),
                disk("/dev/vdb"),
                disk("/dev/sdc"),
                disk("/dev/nvme0n1"),
                disk("/dev/vd"),
            ],
            "/dev/vdb /backup ext4 rw 0 0\nproc /proc proc rw 0 0\n",
            "Filename Type Size Used Priority\n/dev/nvme0n1p3 partition 1 0 -2\n",
            &blkid,
        );
        let why: Vec<Option<&str>> = t.iter().map(|t| t.unavailable.as_deref()).collect();
        assert_eq!(
            why,
            [
                None,
                Some("/dev/vdb is in use (mounted or swap)"),
                Some("/dev/sdc1 is rescue media (label REAR-DATA)"),
                Some("/dev/nvme0n1p3 is in use (mounted or swap)"),
                None,
            ]
        );
        assert!(!on_disk("/dev/vda1", "/dev/vd"));
        assert!(on_disk("/dev/vd1", "/dev/vd"));
        assert!(on_disk("/dev/nvme0n1p3", "/dev/nvme0n1"));
        assert!(!on_disk("/dev/nvme0n10", "/dev/nvme0n1p"));
    }
}
