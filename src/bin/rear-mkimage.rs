//! `rear-mkimage`: turns the running system (or a sysroot) into rescue media.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use rear::archive::Compression;
use rear::build::{self, Options};
use rear::inventory::KernelSpec;
use rear::resolve::kmod::Selection;

/// Build bootable rescue media of this system.
#[derive(Debug, Parser)]
#[command(name = "rear-mkimage", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
    /// More output (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the entries of an initrd like lsinitrd (all concatenated archives).
    Inspect {
        /// The initrd file.
        file: PathBuf,
        /// Print the embedded /etc/rear/manifest.json instead of the listing.
        #[arg(long)]
        manifest: bool,
    },
}

/// The kinds of output a build can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Kernel and initramfs (`vmlinuz-<ver>`, `initrd-<ver>.img`).
    Initrd,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// What to write; a comma list.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "initrd")]
    output: Vec<Output>,
    /// The system to build from (default: the running system).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Kernel release or kernel image path (default: the running kernel, else the newest).
    #[arg(long, value_name = "VERSION|PATH")]
    kernel: Option<String>,
    /// Recipe name or file, added to the default recipe (base); repeatable.
    #[arg(long = "recipe", value_name = "NAME|FILE")]
    recipes: Vec<String>,
    /// Use only the recipes given with --recipe, not the default base recipe.
    #[arg(long)]
    no_default_recipes: bool,
    /// Which kernel modules to include: rescue, host, all or none.
    #[arg(long, default_value = "rescue")]
    modules: Selection,
    /// Initrd compression: zstd, xz, gzip or none (optionally with a level: zstd:19).
    #[arg(long = "compress", default_value = "zstd")]
    compression: Compression,
    /// Output directory.
    #[arg(
        long = "out",
        value_name = "DIR",
        default_value = "/var/lib/rear/output"
    )]
    out_dir: PathBuf,
    /// Also write the manifest next to the output.
    #[arg(long)]
    json: bool,
    /// The rear-restore binary to install as /init (default: next to this program).
    #[arg(long, value_name = "PATH")]
    init: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    rear::logger::init("rear-mkimage", cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rear-mkimage: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Inspect { file, manifest }) => inspect(&file, manifest),
        None => build(cli.build),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    if !args.output.contains(&Output::Initrd) {
        bail!("--output: nothing to build");
    }
    let mut recipes: Vec<String> = Vec::new();
    if !args.no_default_recipes {
        recipes.extend(rear::recipe::DEFAULT.iter().map(|s| s.to_string()));
    }
    for r in args.recipes {
        if !recipes.contains(&r) {
            recipes.push(r);
        }
    }
    let opts = Options {
        root: args.root,
        kernel: KernelSpec::parse(args.kernel.as_deref()),
        recipes,
        modules: args.modules,
        compression: args.compression,
        out_dir: args.out_dir,
        json: args.json,
        init: args.init,
        epoch: build::epoch_from_env()?,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let progress = |stage: &str| {
        if let Some(b) = &bar {
            b.set_message(stage.to_string());
        }
    };
    let result = build::build(&opts, &progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result?;
    for a in &report.artefacts {
        println!(
            "{}  {}  {}",
            a.sha256,
            build::human(a.size),
            a.path.display()
        );
    }
    eprintln!("rear-mkimage: {}", report.summary(&opts.compression));
    Ok(())
}

fn inspect(file: &PathBuf, manifest: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let archives = rear::archive::read::read_initrd(&bytes)
        .with_context(|| format!("reading {}", file.display()))?;
    if manifest {
        for a in &archives {
            for e in &a.entries {
                if e.path == "etc/rear/manifest.json"
                    && let Some(d) = &e.data
                {
                    print!("{}", String::from_utf8_lossy(d));
                    return Ok(());
                }
            }
        }
        bail!(
            "{}: no /etc/rear/manifest.json in it (not built by rear-mkimage?)",
            file.display()
        );
    }
    print!("{}", rear::archive::read::list(&archives));
    Ok(())
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
