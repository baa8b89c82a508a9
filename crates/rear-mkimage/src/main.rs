//! `rear-mkimage`: turns the running system (or a sysroot) into rescue media.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use rear_mkimage::archive::Compression;
use rear_mkimage::build::{self, Options, OutputKind};
use rear_mkimage::inventory::KernelSpec;
use rear_mkimage::resolve::kmod::Selection;
use rear_model::config::Config;

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
    /// Check the files of an output directory against its SHA256SUMS, or boot a medium in
    /// QEMU and wait for the rescue system to report ready.
    Verify {
        /// The output directory (with SHA256SUMS), or with --boot the medium.
        path: PathBuf,
        /// Boot PATH (an ISO, a USB image, or an initrd with --kernel) in QEMU.
        #[arg(long)]
        boot: bool,
        /// With --boot: the kernel to boot PATH (an initrd) with.
        #[arg(long, value_name = "FILE", requires = "boot")]
        kernel: Option<PathBuf>,
        /// With --boot: firmware.
        #[arg(long, value_enum, default_value = "bios", requires = "boot")]
        firmware: FirmwareArg,
        /// With --boot: seconds to wait for the rescue system.
        #[arg(long, default_value_t = 180, requires = "boot")]
        timeout: u64,
    },
    /// Back up the file systems of a saved layout (tar + zstd, or a backup recipe).
    Backup(rear_sys::backup::cli::BackupCommand),
    /// Show what is in an ISO, a USB image or an initrd (boot entries, partitions, files,
    /// the initrd's entries like lsinitrd).
    Inspect {
        /// The ISO, USB image or initrd file.
        file: PathBuf,
        /// Print the embedded /etc/rear/manifest.json instead of the listing.
        #[arg(long)]
        manifest: bool,
    },
    /// The disk layout of this system: save it, show it, or check it against the last image.
    Layout {
        #[command(subcommand)]
        command: LayoutCmd,
    },
}

#[derive(Debug, Subcommand)]
enum LayoutCmd {
    /// Capture the layout of this system and write it as JSON.
    Save {
        /// Where to write it (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print a layout as a tree (default: the layout of this system).
    Show {
        /// A saved layout file.
        file: Option<PathBuf>,
    },
    /// Exit 1 and print the differences when this system's layout differs from the one in
    /// the last built image (cron: `rear-mkimage layout check || rear-mkimage --output iso`).
    Check {
        /// The output directory of the last build (it holds layout.json).
        #[arg(
            long = "out",
            value_name = "DIR",
            default_value = "/var/lib/rear/output"
        )]
        out_dir: PathBuf,
    },
}

/// The kinds of output a build can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Kernel and initramfs (`vmlinuz-<ver>`, `initrd-<ver>.img`).
    Initrd,
    /// Hybrid ISO (`rear-<host>.iso`): BIOS and UEFI, CD and USB stick.
    Iso,
    /// GPT disk image (`rear-<host>.usb.img`) with a data partition.
    Usb,
    /// PXE tree (kernel, initrd, pxelinux, GRUB and iPXE configuration).
    Pxe,
}

impl From<Output> for OutputKind {
    fn from(o: Output) -> OutputKind {
        match o {
            Output::Initrd => OutputKind::Initrd,
            Output::Iso => OutputKind::Iso,
            Output::Usb => OutputKind::Usb,
            Output::Pxe => OutputKind::Pxe,
        }
    }
}

/// Firmware for `verify --boot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FirmwareArg {
    /// SeaBIOS.
    Bios,
    /// OVMF.
    Uefi,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// What to write; a comma list (iso, usb, pxe, initrd).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "iso")]
    output: Vec<Output>,
    /// Seconds the boot menus wait before booting the default entry.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    boot_timeout: u32,
    /// Size of the USB image's data partition for backups (e.g. 512M, 4G; 0 for none).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    usb_size: u64,
    /// After the build, write the USB image to this whole-disk device (a USB stick); shows
    /// the device's model, size and serial and asks first.
    #[arg(long, value_name = "DEVICE")]
    usb_device: Option<PathBuf>,
    /// Do not ask before writing to --usb-device (for scripts).
    #[arg(long, requires = "usb_device")]
    yes: bool,
    /// Where the PXE tree goes (default: OUT/pxe).
    #[arg(long, value_name = "DIR")]
    pxe_dir: Option<PathBuf>,
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
    /// The disk layout to store in the image: a file from `layout save`, or `none`
    /// (default: captured from this system).
    #[arg(long, value_name = "FILE|none")]
    layout: Option<String>,
    /// The configuration file (its [server] section says where reports go).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    rescue: rear_mkimage::skeleton::RescueArgs,
    #[command(flatten)]
    backup: rear_sys::backup::cli::BuildBackupArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    rear_model::logger::init("rear-mkimage", cli.verbose);
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
        Some(Command::Verify {
            path,
            boot,
            kernel,
            firmware,
            timeout,
        }) => verify(&path, boot, kernel, firmware, timeout),
        Some(Command::Layout { command }) => layout(command),
        Some(Command::Backup(cmd)) => {
            let report = cmd.run(std::io::stderr().is_terminal())?;
            report
                .warnings
                .iter()
                .for_each(|w| eprintln!("rear-mkimage: warning: {w}"));
            println!("{}", report.summary());
            Ok(())
        }
        None => build(cli.build),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    if args.usb_device.is_some() && !args.output.contains(&Output::Usb) {
        bail!("--usb-device needs --output usb");
    }
    let mut recipes: Vec<String> = Vec::new();
    if !args.no_default_recipes {
        recipes.extend(rear_model::recipe::DEFAULT.iter().map(|s| s.to_string()));
    }
    for r in args.recipes {
        if !recipes.contains(&r) {
            recipes.push(r);
        }
    }
    let (usb_device, yes) = (args.usb_device.clone(), args.yes);
    let config = match &args.config {
        Some(p) => Config::load(p, true)?,
        None => Config::load(Path::new(rear_model::config::DEFAULT_PATH), false)?,
    };
    let backup = args.backup.prepare(&args.root)?;
    for w in backup.iter().flat_map(|b| &b.warnings) {
        eprintln!("rear-mkimage: warning: {w}");
    }
    let root = args.root.clone();
    let out_dir = args.out_dir.clone();
    // Progress bars only on a terminal.
    let tty = std::io::stderr().is_terminal();
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
        outputs: args.output.iter().map(|o| OutputKind::from(*o)).collect(),
        boot_timeout: args.boot_timeout,
        usb_size: args.usb_size,
        pxe_dir: args.pxe_dir,
        rescue: args.rescue.options(),
        layout: match args.layout.as_deref() {
            None => build::LayoutSource::Capture,
            Some("none") => build::LayoutSource::None,
            Some(file) => build::LayoutSource::File(PathBuf::from(file)),
        },
        backup: backup.as_ref().map(|b| b.config.clone()),
        backup_progress: tty,
    };
    let bar = tty.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let progress = |stage: &str| {
        if let Some(b) = &bar {
            // A backup made by the build draws its own bar with bytes and rate.
            b.set_draw_target(if stage == "backup" {
                indicatif::ProgressDrawTarget::hidden()
            } else {
                indicatif::ProgressDrawTarget::stderr()
            });
            b.set_message(stage.to_string());
        }
    };
    let result = build::build(&opts, &progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(server) = &config.server {
        send_report(server, &opts.root, &result);
    }
    let report = result?;
    for a in &report.artefacts {
        println!(
            "{}  {}  {}",
            a.sha256,
            rear_model::units::human(a.size),
            a.path.display()
        );
    }
    if let Some(dir) = &report.pxe_dir {
        println!("PXE tree: {}", dir.display());
    }
    eprintln!("rear-mkimage: {}", report.summary(&opts.compression));
    // A backup into the ISO was made by the build; any other goes where --backup-url says.
    let written = match (&backup, &report.iso_backup) {
        (_, Some(r)) => Some(r.clone()),
        (Some(b), None) => {
            // The layout of the image: what recovery recreates is what is backed up.
            let layout = report
                .layout
                .as_ref()
                .context("--backup needs a layout: leave out --layout none")?;
            let dest = b.dest.as_ref().context("no backup directory")?;
            Some(rear_sys::backup::backup(
                &b.config,
                layout,
                "the image's layout",
                &root,
                dest,
                &[&out_dir],
                tty,
            )?)
        }
        (None, None) => None,
    };
    if let Some(r) = written {
        r.warnings
            .iter()
            .for_each(|w| eprintln!("rear-mkimage: warning: {w}"));
        println!("{}", r.summary());
    }
    if let Some(device) = &usb_device {
        write_usb_device(&report, device, yes)?;
    }
    Ok(())
}

/// Sends the report of this build, ok or failed, to the server of `[server]`. Never fails
/// the build: the sender warns about what it could not do.
fn send_report(
    server: &rear_model::config::Server,
    root: &Path,
    result: &Result<build::Report, build::Error>,
) {
    let sys = match rear_sys::sysroot::Sysroot::new(root) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("no report sent to {}: {e}", server.target);
            return;
        }
    };
    let (report, media) = match result {
        Ok(r) => (
            rear_mkimage::build::report::of_build(r, &server.tags),
            r.artefacts
                .iter()
                .map(|a| (a.path.clone(), a.sha256.clone()))
                .collect::<Vec<_>>(),
        ),
        Err(e) => (
            rear_mkimage::build::report::of_failure(&sys, &format!("{e:#}"), &server.tags),
            Vec::new(),
        ),
    };
    let d = rear_mkimage::send::deliver(server, &report, &media);
    if d.sent > 0 {
        log::info!(
            "{} report{} sent to {}",
            d.sent,
            if d.sent == 1 { "" } else { "s" },
            server.target
        );
    }
}

/// Writes the build's USB image to a stick after showing what the stick is and asking.
fn write_usb_device(report: &build::Report, device: &Path, yes: bool) -> anyhow::Result<()> {
    let image = report
        .artefacts
        .iter()
        .find(|a| a.path.to_string_lossy().ends_with(".usb.img"))
        .map(|a| a.path.clone())
        .context("the build wrote no USB image")?;
    let mut confirm = |info: &rear_mkimage::media::usb::DeviceInfo| {
        eprintln!("rear-mkimage: about to overwrite {info}");
        if yes {
            return true;
        }
        eprint!(
            "Write {} to it, destroying all data on it? [y/N] ",
            image.display()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim(), "y" | "Y" | "yes")
    };
    rear_mkimage::media::usb::write_to_device(&image, device, &mut confirm)?;
    eprintln!(
        "rear-mkimage: wrote {} to {}",
        image.display(),
        device.display()
    );
    Ok(())
}

fn verify(
    path: &Path,
    boot: bool,
    kernel: Option<PathBuf>,
    firmware: FirmwareArg,
    timeout: u64,
) -> anyhow::Result<()> {
    use rear_mkimage::media::{qemu::Firmware, verify};
    if !boot {
        let report = verify::verify_sums(path)?;
        for f in &report.files {
            println!("{}: OK", f.name);
        }
        eprintln!(
            "rear-mkimage: {} files match {}",
            report.files.len(),
            report.sums.display()
        );
        return Ok(());
    }
    let opts = verify::BootOptions {
        kernel,
        firmware: match firmware {
            FirmwareArg::Bios => Firmware::Bios,
            FirmwareArg::Uefi => Firmware::Uefi,
        },
        timeout: Duration::from_secs(timeout),
        ..verify::BootOptions::default()
    };
    let report = verify::boot_check(path, &opts)?;
    println!(
        "{}: rescue system ready ({}, {}, kernel {})",
        path.display(),
        report.firmware,
        report.accel,
        report.release
    );
    Ok(())
}

/// Sizes like `512M`, `4G`, `1T` or plain bytes (binary units).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("{s:?}: unknown unit {c:?} (use K, M, G or T)")),
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (like 512M or 4G)"))
}

fn layout(command: LayoutCmd) -> anyhow::Result<()> {
    use rear_sys::layout::{Layout, capture, diff, show};
    let sys = rear_sys::sysroot::Sysroot::host();
    let load = |p: &Path| -> anyhow::Result<Layout> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        Ok(Layout::from_json(&text, &p.display().to_string())?)
    };
    match command {
        LayoutCmd::Save { out } => {
            let json = capture::capture(&sys)?.to_json();
            match out {
                None => print!("{json}"),
                Some(path) => {
                    rear_sys::atomic::write(&path, json.as_bytes(), 0o600)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("rear-mkimage: layout saved to {}", path.display());
                }
            }
        }
        LayoutCmd::Show { file } => {
            let layout = match file {
                Some(p) => load(&p)?,
                None => capture::capture(&sys)?,
            };
            print!("{}", show::tree(&layout));
        }
        LayoutCmd::Check { out_dir } => {
            let saved_path = out_dir.join(build::LAYOUT_OUTPUT);
            let saved = load(&saved_path)?;
            let live = capture::capture(&sys)?;
            let changes = diff::diff(&saved, &live);
            if changes.is_empty() {
                eprintln!(
                    "rear-mkimage: layout unchanged since the image in {}",
                    out_dir.display()
                );
            } else {
                for c in &changes {
                    println!("{c}");
                }
                bail!(
                    "the layout changed since the image in {} was built ({} differences): build new media",
                    out_dir.display(),
                    changes.len()
                );
            }
        }
    }
    Ok(())
}

fn inspect(file: &Path, manifest: bool) -> anyhow::Result<()> {
    print!("{}", rear_mkimage::media::inspect::inspect(file, manifest)?);
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

    #[test]
    fn parse_size_units() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("4X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("lots").is_err());
    }
}
