//! `rear-restore`: the rescue system's `/init` (PID 1) and its power commands.
//!
//! Run as PID 1 it is always the init, whatever its arguments (the kernel passes unknown
//! boot options as arguments). Called as `poweroff`, `reboot` or `halt` (the image's
//! `/sbin` symlinks) it asks PID 1 for that action, like the subcommands of the same name.

use std::io::Write;
use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::bail;
use clap::{ArgAction, Parser, Subcommand};
use rear_restore::init::{self, Action};
use rear_restore::layout;
use rear_restore::plan::Resize;

/// The rescue side of Relax-and-Recover.
#[derive(Debug, Parser)]
#[command(name = "rear-restore", version, about)]
struct Cli {
    /// More output (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run as the rescue system's init (what PID 1 does); refused when not PID 1.
    Init,
    /// Stop all processes and switch the power off.
    Poweroff,
    /// Stop all processes and restart the machine.
    Reboot,
    /// Stop all processes and halt.
    Halt,
    /// Print the rescue system's banner: host, image date, addresses, how to recover.
    Banner,
    /// Restore the backup into the recreated tree (default /mnt/local), verifying its SHA-256.
    Restore(rear_sys::backup::cli::RestoreCommand),
    /// The saved disk layout: plan it onto this machine's disks, or apply the plan.
    Layout {
        #[command(subcommand)]
        command: LayoutCmd,
    },
    /// Make the restored tree at /mnt/local boot: fstab/crypttab, initramfs, GRUB, EFI entry.
    Finalize {
        /// The saved layout.
        #[arg(long, value_name = "FILE", default_value = layout::LAYOUT_JSON)]
        layout: PathBuf,
    },
    /// The whole recovery: mount the backup, plan, confirm, recreate the layout, restore,
    /// finalize (and reboot with --auto).
    Recover {
        #[command(flatten)]
        plan: PlanArgs,
        /// No question (refuses when the plan is ambiguous); reboot at the end.
        #[arg(long)]
        auto: bool,
        /// Key file for the LUKS containers (default: ask for a passphrase).
        #[arg(long, value_name = "FILE")]
        luks_key: Option<PathBuf>,
        /// Where the backup is (default: what the image's backup configuration says).
        #[arg(long, value_name = "URL")]
        backup_url: Option<rear_model::backup::url::BackupUrl>,
    },
}

#[derive(Debug, Subcommand)]
enum LayoutCmd {
    /// Print the steps that would recreate the saved layout on this machine's disks.
    Plan {
        #[command(flatten)]
        plan: PlanArgs,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recreate the saved layout: wipe, partition, RAID, LUKS, LVM, mkfs, mount at /mnt/local.
    Apply {
        #[command(flatten)]
        plan: PlanArgs,
        /// Do not ask before overwriting the target disks.
        #[arg(long)]
        yes: bool,
        /// Key file for the LUKS containers (default: ask for a passphrase).
        #[arg(long, value_name = "FILE")]
        luks_key: Option<PathBuf>,
    },
    /// Print the saved layout as a tree.
    Show {
        #[command(flatten)]
        show: ShowArgs,
    },
    /// Capture the layout of the disks of this machine as JSON (after `apply`: what was made).
    Save {
        /// Take mount points relative to this directory (the recreated tree).
        #[arg(long, value_name = "DIR", default_value = rear_model::layout::model::MOUNT_ROOT)]
        below: String,
    },
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The layout file.
    #[arg(default_value = layout::LAYOUT_JSON)]
    file: PathBuf,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// The saved layout.
    #[arg(long, value_name = "FILE", default_value = layout::LAYOUT_JSON)]
    layout: PathBuf,
    /// Disk mapping file (`OLD NEW` per line); used when it exists.
    #[arg(long, value_name = "FILE", default_value = layout::MAPPINGS)]
    mapping: PathBuf,
    /// What to do with the extra space of a larger disk.
    #[arg(long, value_enum, default_value = "last")]
    resize: Resize,
}

fn main() -> ExitCode {
    if std::process::id() == 1 {
        rear_model::logger::init("rear", 0);
        init::run();
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let result = match Action::from_program_name(&argv0) {
        Some(action) => {
            rear_model::logger::init("rear", 0);
            init::request(action).map_err(anyhow::Error::from)
        }
        None => {
            let cli = Cli::parse();
            rear_model::logger::init("rear-restore", cli.verbose);
            match cli.command {
                // Not PID 1 (PID 1 never gets here): on a normal host the init would mount
                // over /tmp and /run, repoint the kernel's modprobe helper, start DHCP and
                // shells. Refused.
                Cmd::Init => Err(anyhow::anyhow!(
                    "rear-restore init is the rescue system's PID 1 and this is process {}: refusing to run it on a running system (the rescue media start it as /init)",
                    std::process::id()
                )),
                Cmd::Poweroff => init::request(Action::Poweroff).map_err(anyhow::Error::from),
                Cmd::Reboot => init::request(Action::Reboot).map_err(anyhow::Error::from),
                Cmd::Halt => init::request(Action::Halt).map_err(anyhow::Error::from),
                Cmd::Banner => {
                    init::banner::print();
                    Ok(())
                }
                Cmd::Layout { command } => layout_cmd(command),
                Cmd::Finalize { layout: path } => finalize_cmd(&path),
                Cmd::Recover {
                    plan,
                    auto,
                    luks_key,
                    backup_url,
                } => recover_cmd(plan, auto, luks_key, backup_url),
                Cmd::Restore(cmd) => {
                    use std::io::IsTerminal;
                    cmd.run(std::io::stderr().is_terminal())
                        .map(|r| println!("{}", r.summary(&cmd.target)))
                        .map_err(anyhow::Error::from)
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `finalize` after `layout apply` and `restore`: the plan apply kept says what was renamed.
fn finalize_cmd(path: &std::path::Path) -> anyhow::Result<()> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    let saved = rear_sys::layout::Layout::from_json(&read(path)?, &path.display().to_string())?;
    let plan_path = std::path::Path::new(layout::PLAN);
    let plan: rear_restore::plan::Plan = serde_json::from_str(&read(plan_path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `layout apply` first)", plan_path.display()))?;
    rear_restore::finalize::finalize(
        &saved,
        &plan,
        std::path::Path::new(rear_model::layout::model::MOUNT_ROOT),
        std::path::Path::new(layout::LOG),
    )?;
    println!("finalized {}", rear_model::layout::model::MOUNT_ROOT);
    Ok(())
}

/// Asks the operator to type YES before the plan's disks are overwritten; off a terminal,
/// an error naming `flag`, which skips the question.
fn confirm_overwrite(p: &rear_restore::plan::Plan, flag: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let disks: Vec<&str> = p.target_disks().into_iter().collect();
    if !std::io::stdin().is_terminal() {
        bail!(
            "not a terminal: give {flag} to overwrite {}",
            disks.join(", ")
        );
    }
    eprint!(
        "All data on {} will be destroyed. Type YES to go on: ",
        disks.join(", ")
    );
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "YES" {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

fn recover_cmd(
    plan: PlanArgs,
    auto: bool,
    luks_key: Option<PathBuf>,
    backup_url: Option<rear_model::backup::url::BackupUrl>,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let o = rear_restore::recover::Options {
        auto,
        layout: plan.layout,
        mapping: plan.mapping,
        resize: plan.resize,
        luks_key,
        ask_key: !auto && std::io::stdin().is_terminal(),
        backup_url,
        backup_config: PathBuf::from(rear_model::backup::config::CONFIG_IN_IMAGE),
    };
    let mut confirm = |p: &rear_restore::plan::Plan| match confirm_overwrite(p, "--auto") {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{e}");
            false
        }
    };
    rear_restore::recover::recover(&o, &mut confirm)?;
    if auto {
        println!("rear: recover: rebooting into the recovered system");
        // The recreated tree is unmounted by the shutdown of PID 1 (it syncs first).
        init::request(Action::Reboot)?;
    }
    Ok(())
}

fn layout_cmd(command: LayoutCmd) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    match command {
        LayoutCmd::Show { show } => {
            let text = std::fs::read_to_string(&show.file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", show.file.display()))?;
            let saved =
                rear_sys::layout::Layout::from_json(&text, &show.file.display().to_string())?;
            print!("{}", rear_sys::layout::show::tree(&saved));
            Ok(())
        }
        LayoutCmd::Save { below } => {
            let sys = rear_sys::sysroot::Sysroot::host();
            print!(
                "{}",
                rear_sys::layout::capture::capture_below(&sys, &below)?.to_json()
            );
            Ok(())
        }
        LayoutCmd::Plan { plan, json } => {
            let (_, p) = layout::plan_here(&plan.layout, &plan.mapping, plan.resize)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print!("{}", p.render());
            }
            Ok(())
        }
        LayoutCmd::Apply {
            plan,
            yes,
            luks_key,
        } => {
            let (saved, p) = layout::plan_here(&plan.layout, &plan.mapping, plan.resize)?;
            print!("{}", p.render());
            if !yes {
                confirm_overwrite(&p, "--yes")?;
            }
            layout::load_modules(&saved);
            layout::apply_plan(&p, luks_key, std::io::stdin().is_terminal())?;
            println!(
                "layout recreated and mounted at {}",
                rear_model::layout::model::MOUNT_ROOT
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_debug_assert() {
        Cli::command().debug_assert()
    }

    #[test]
    fn cli_parses_subcommands() {
        let cli = Cli::try_parse_from(["rear-restore", "-vv", "poweroff"]).unwrap();
        assert_eq!(cli.verbose, 2);
        assert!(matches!(cli.command, Cmd::Poweroff));
        assert!(Cli::try_parse_from(["rear-restore"]).is_err());
    }
}
