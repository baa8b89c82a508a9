//! The resumable executor: runs a plan's steps in order, logs every command and its output,
//! records each completed step, and refuses a step that writes outside the plan's target
//! disks.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::plan::{Action, Plan, Step};
use rear_sys::exec;

use super::{Cmd, Context, Error, commands};

/// Devices a step writes to, which must be target disks of the plan or their partitions.
fn written_disks(step: &Step) -> Vec<&str> {
    match &step.action {
        Action::Wipe { disk } | Action::Partition { disk, .. } => vec![disk],
        _ => vec![],
    }
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
        .map(|t| {
            rear_sys::mounts::parse_mounts(&t)
                .iter()
                .any(|m| m.target == Path::new(dir))
        })
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

#[cfg(test)]
mod tests {
    use super::super::step;
    use super::*;

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
}
