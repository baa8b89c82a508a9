//! `rear-restore recover`: the whole recovery, in order: find and mount the backup, plan the
//! layout onto this machine's disks, confirm (skipped with `--auto` / `rear.auto`), recreate
//! the layout, restore the data, finalize, and reboot when automatic.
//!
//! The backup is mounted before planning on purpose: a mounted disk is never a target, so the
//! disk holding the backup cannot be chosen. Every stage can be run again after a failure:
//! `layout apply` continues with the step that failed, the restore overwrites, finalize
//! rewrites. Each stage prints one `rear: recover: …` line on the console.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::plan::{Plan, Resize};
use crate::{finalize, layout};
use rear_model::layout::model::MOUNT_ROOT;
use rear_sys::backup::{self, config::Config, url::BackupUrl};

/// Errors of a recovery; each names the stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backup configuration of the image is unreadable.
    #[error("backup configuration")]
    Config(#[from] backup::config::ConfigError),
    /// Finding, mounting or restoring the backup failed.
    #[error("restore")]
    Backup(#[from] backup::Error),
    /// The plan cannot be made (an ambiguous disk, a too-small disk, a bad layout file).
    #[error("plan")]
    Plan(#[from] layout::PlanError),
    /// Recreating the layout failed.
    #[error("layout apply")]
    Apply(#[from] layout::Error),
    /// Finalize failed.
    #[error("finalize")]
    Finalize(#[from] finalize::Error),
    /// The operator said no.
    #[error("not confirmed; nothing was changed")]
    NotConfirmed,
}

/// What `recover` works from.
#[derive(Debug, Clone)]
pub struct Options {
    /// No question; reboot at the end.
    pub auto: bool,
    /// The saved layout.
    pub layout: PathBuf,
    /// The disk mapping file.
    pub mapping: PathBuf,
    /// What to do with extra space.
    pub resize: Resize,
    /// LUKS key file.
    pub luks_key: Option<PathBuf>,
    /// Without a key file, ask for a passphrase on the terminal when the layout has LUKS.
    pub ask_key: bool,
    /// Where the backup is, overriding the image's configuration.
    pub backup_url: Option<BackupUrl>,
    /// The image's backup configuration.
    pub backup_config: PathBuf,
}

/// Prints a stage line on the console.
fn say(line: &str) {
    println!("rear: recover: {line}");
}

/// Runs the recovery. `confirm` is asked with the plan unless `auto`.
pub fn recover(o: &Options, confirm: &mut dyn FnMut(&Plan) -> bool) -> Result<(), Error> {
    let start = Instant::now();
    let config = match Config::load(&o.backup_config) {
        Ok(c) => Some(c),
        Err(backup::config::ConfigError::Read { error, .. })
            if error.kind() == std::io::ErrorKind::NotFound && o.backup_url.is_some() =>
        {
            None
        }
        Err(e) => return Err(e.into()),
    };
    // The rescue system runs no udev: load the drivers of the layout's file systems before
    // mounting anything (finding the backup loads the backup's own).
    let text = std::fs::read_to_string(&o.layout).map_err(|error| layout::PlanError::Read {
        path: o.layout.clone(),
        error,
    })?;
    let saved = rear_sys::layout::Layout::from_json(&text, &o.layout.display().to_string())
        .map_err(layout::PlanError::from)?;
    layout::load_modules(&saved);
    let found = backup::find(config.as_ref(), o.backup_url.as_ref())?;
    say(&format!("backup found in {}", found.dir.display()));
    let plan = layout::plan_layout(&saved, &o.mapping, o.resize)?;
    print!("{}", plan.render());
    if !o.auto && !confirm(&plan) {
        return Err(Error::NotConfirmed);
    }
    layout::apply_plan(&plan, o.luks_key.clone(), o.ask_key)?;
    say(&format!("layout recreated and mounted at {MOUNT_ROOT}"));
    let method = match &config {
        Some(c) => c.method.clone(),
        None => {
            backup::Info::load(&found.dir.join(backup::INFO))?
                .config
                .method
        }
    };
    let report = backup::method(&method)?.restore(&found.dir, Path::new(MOUNT_ROOT), !o.auto)?;
    say(&format!(
        "restored: {}",
        report.summary(Path::new(MOUNT_ROOT))
    ));
    drop(found);
    finalize::finalize(&saved, &plan, Path::new(MOUNT_ROOT), Path::new(layout::LOG))?;
    say(&format!(
        "finished in {:.0} s: {} recovered onto {}",
        start.elapsed().as_secs_f64(),
        plan.hostname,
        plan.target_disks()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}
