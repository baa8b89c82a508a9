//! The backup stage of a build (`--backup`): the backup into the ISO (`--backup-url iso`),
//! and the file system holding a `file://` backup left out of the saved layout.

use super::*;

/// `--backup-url iso`: makes the backup into a staging directory in the output directory
/// (left out of the backup itself, like the whole output directory) and returns its files
/// as the ISO's `/rear/...`, the staging directory (removed when dropped, after the ISO is
/// written) and the backup's report with its paths naming the ISO `iso_name`.
pub(super) fn backup_into_iso(
    opts: &Options,
    config: &rear_model::backup::config::Config,
    layout: &rear_sys::layout::Layout,
    origin: &str,
    iso_name: &str,
) -> Result<
    (
        media::iso::HostFiles,
        tempfile::TempDir,
        rear_sys::backup::BackupReport,
    ),
    Error,
> {
    let out_err = |error| Error::Output {
        path: opts.out_dir.clone(),
        error,
    };
    let dir = tempfile::Builder::new()
        .prefix(".rear-backup.")
        .tempdir_in(&opts.out_dir)
        .map_err(out_err)?;
    let mut report = rear_sys::backup::backup(
        config,
        layout,
        &format!("the layout {origin}"),
        &opts.root,
        dir.path(),
        &[&opts.out_dir],
        opts.backup_progress,
    )?;
    let mut files = media::iso::HostFiles::new();
    for entry in std::fs::read_dir(dir.path()).map_err(out_err)? {
        let entry = entry.map_err(out_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        files.insert(
            format!("{}/{name}", rear_sys::backup::ISO_DIR),
            entry.path(),
        );
    }
    let on_iso = format!(
        "{}:/{}",
        opts.out_dir.join(iso_name).display(),
        rear_sys::backup::ISO_DIR
    );
    report.archive = report.archive.as_deref().map(|a| {
        PathBuf::from(format!(
            "{on_iso}/{}",
            a.file_name().unwrap_or_default().to_string_lossy()
        ))
    });
    report.dir = PathBuf::from(on_iso);
    Ok((files, dir, report))
}

/// Leaves the file system holding a `file://` backup out of the layout: recovery would wipe
/// it before restoring from it. A backup on the root file system cannot be left out; that
/// gives a warning instead.
pub(super) fn exclude_backup(
    layout: &mut rear_sys::layout::Layout,
    url: &BackupUrl,
) -> Option<String> {
    let BackupUrl::File(path) = url else {
        return None;
    };
    let holder = layout
        .mounts
        .iter()
        .map(|m| m.target.as_str())
        .filter(|t| path.starts_with(t))
        .max_by_key(|t| t.len())?
        .to_string();
    if holder == "/" {
        return Some(format!(
            "the backup {url} is on the root file system, which recovery recreates: put it on another disk"
        ));
    }
    rear_sys::layout::prune::exclude_mount(layout, &holder, &format!("holds the backup {url}"));
    None
}
