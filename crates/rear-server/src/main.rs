//! `rear-server`: the fleet server: report and media ingest, web GUI, metrics, Nagios check.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser, Subcommand};
use rear_server::{config::Config, status::Nagios};

/// Central server for Relax-and-Recover hosts.
#[derive(Debug, Parser)]
#[command(name = "rear-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The configuration file.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "/etc/rear-server/config.toml"
    )]
    config: PathBuf,
    /// More output (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (and with --smtp an SMTP receiver for mailed reports).
    Serve {
        /// Also accept reports by SMTP on this address (such as 127.0.0.1:2525).
        #[arg(long, value_name = "ADDR")]
        smtp: Option<std::net::SocketAddr>,
    },
    /// Read one mail message on stdin and store its report (for an MTA's pipe transport).
    /// Exit codes (sysexits.h): 0 stored, 65 bad message, 77 not authenticated, 75 try
    /// later, 78 configuration error.
    IngestMail,
    /// Manage host tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Read a password on stdin and print its argon2 hash for the [[users]] section.
    HashPassword,
    /// Nagios check over all hosts: exit 0 ok, 1 some stale, 2 some failed, 3 unknown.
    Check {
        /// Media older than this is stale (default: max_age of the configuration).
        #[arg(long, value_name = "DURATION")]
        max_age: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create the host if needed and print a new token for it (the old one stops working).
    Add {
        /// The host's short name, as its reports give it.
        host: String,
    },
    /// Make the host's token stop working.
    Revoke {
        /// The host.
        host: String,
    },
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(&cli.config)?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::IngestMail => return Ok(ingest_mail(&cli)),
        Command::Serve { smtp } => {
            let config = load(&cli)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(rear_server::serve(config, *smtp))?;
        }
        Command::Token {
            command: TokenCommand::Add { host },
        } => {
            let token = rear_server::token_add(&load(&cli)?, host)?;
            println!("{token}");
        }
        Command::Token {
            command: TokenCommand::Revoke { host },
        } => {
            rear_server::token_revoke(&load(&cli)?, host)?;
            eprintln!("rear-server: token of {host} revoked");
        }
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let pw = line.trim_end_matches(['\n', '\r']);
            if pw.is_empty() {
                bail!("no password on stdin");
            }
            println!("{}", rear_server::auth::hash_password(pw)?);
        }
        Command::Check { max_age } => {
            // A Nagios plugin prints one line and exits 3 when it cannot tell.
            let result = load(&cli).and_then(|config| {
                let age = match max_age {
                    Some(s) => rear_server::config::parse_duration(s).with_context(|| {
                        format!("--max-age {s:?} is not a duration such as 7d or 12h")
                    })?,
                    None => config.max_age,
                };
                Ok(rear_server::check(&config, age)?)
            });
            let (state, line) =
                result.unwrap_or_else(|e| (Nagios::Unknown, format!("REAR UNKNOWN - {e:#}")));
            println!("{line}");
            return Ok(ExitCode::from(state as u8));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ingest-mail`: the exit code tells the MTA whether to bounce (65, 77), retry (75, 78)
/// or deliver (0); the reason goes to stderr, which MTAs put into the bounce or the log.
fn ingest_mail(cli: &Cli) -> ExitCode {
    use std::io::Read as _;
    const EX_TEMPFAIL: u8 = 75;
    const EX_CONFIG: u8 = 78;
    let config = match load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    // Read one byte past the limit, so a larger message is told apart without reading it all.
    let mut raw = Vec::new();
    let limit = config.max_mail_bytes as u64 + 1;
    if let Err(e) = std::io::stdin().lock().take(limit).read_to_end(&mut raw) {
        eprintln!("error: reading the message from stdin: {e}");
        return ExitCode::from(EX_TEMPFAIL);
    }
    match rear_server::ingest_mail(&config, &raw) {
        Ok(a) => {
            println!(
                "report {} of {} {}",
                a.id,
                a.host,
                if a.stored {
                    "stored"
                } else {
                    "was stored before"
                }
            );
            ExitCode::SUCCESS
        }
        // ingest_mail logged the reason on stderr.
        Err(e) => ExitCode::from(e.exit_code()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    rear_model::logger::init("rear-server", cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
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
        Cli::command().debug_assert();
    }
}
