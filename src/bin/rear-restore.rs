//! `rear-restore`: the rescue system's `/init` (PID 1) and its power commands.
//!
//! Run as PID 1 it is always the init, whatever its arguments (the kernel passes unknown
//! boot options as arguments). Called as `poweroff`, `reboot` or `halt` (the image's
//! `/sbin` symlinks) it asks PID 1 for that action, like the subcommands of the same name.

use std::io::Write;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use rear::restore::init::{self, Action};

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
    /// Run as the rescue system's init (what PID 1 does).
    Init,
    /// Stop all processes and switch the power off.
    Poweroff,
    /// Stop all processes and restart the machine.
    Reboot,
    /// Stop all processes and halt.
    Halt,
    /// Print the rescue system's banner: host, image date, addresses, how to recover.
    Banner,
}

fn main() -> ExitCode {
    if std::process::id() == 1 {
        rear::logger::init("rear", 0);
        init::run();
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let result = match Action::from_program_name(&argv0) {
        Some(action) => {
            rear::logger::init("rear", 0);
            init::request(action).map_err(anyhow::Error::from)
        }
        None => {
            let cli = Cli::parse();
            rear::logger::init("rear-restore", cli.verbose);
            match cli.command {
                Cmd::Init => init::run(),
                Cmd::Poweroff => init::request(Action::Poweroff).map_err(anyhow::Error::from),
                Cmd::Reboot => init::request(Action::Reboot).map_err(anyhow::Error::from),
                Cmd::Halt => init::request(Action::Halt).map_err(anyhow::Error::from),
                Cmd::Banner => {
                    init::banner::print();
                    Ok(())
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
