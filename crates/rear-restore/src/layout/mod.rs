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

mod apply;
mod argv;
mod disks;
mod luks;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plan::{Action, Plan};
use rear_model::layout::model::MOUNT_ROOT;
use rear_sys::exec;

pub use apply::apply;
pub use argv::{Cmd, commands, sfdisk_script};
pub use disks::target_disks;
pub use luks::ask_passphrase;

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
    /// `/proc/swaps` could not be read.
    #[error(transparent)]
    Swaps(#[from] rear_sys::layout::parse::Error),
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
    // What the rescue system uses must be known, not guessed: a mount table that cannot be
    // read would make the backup disk look free.
    let read = |p: &str| {
        std::fs::read_to_string(p).map_err(|error| PlanError::Read {
            path: p.into(),
            error,
        })
    };
    let mounts = rear_sys::mounts::parse_mounts(&read("/proc/self/mounts")?);
    let swaps = rear_sys::layout::parse::swaps::parse(&read("/proc/swaps")?)?;
    let disks = target_disks(disks, &mounts, &swaps, &blkid);
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

/// A step with the id `x` and nothing before or after it, for the tests of the submodules.
#[cfg(test)]
fn step(action: Action) -> crate::plan::Step {
    crate::plan::Step {
        id: "x".into(),
        action,
        creates: vec![],
        needs: vec![],
    }
}
