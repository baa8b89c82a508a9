//! The rescue skeleton: the settings of the rescue system (consoles, network, SSH, extra
//! kernel options) and the files the build generates for it.
//!
//! Stage: build. Input: [`RescueArgs`] (the `rear-mkimage` flags) -> [`RescueOptions`].
//! Output: [`add_to_image`] writes the generated files (`/etc/rear/rescue.json`,
//! `/etc/rear/network.json`, `/etc/ssh/sshd_config`, `/root/.ssh/authorized_keys`, the shell
//! profile that prints the banner) into the image, and [`kernel_cmdline`] gives the options
//! the boot entries of the media carry. PID 1 reads [`RescueConfig`] (`/etc/rear/rescue.json`)
//! for the defaults that the kernel command line may override. The files are documented in
//! `docs/rescue.md`.

use std::path::{Path, PathBuf};

use crate::closure::{self, Closure};
use crate::inventory::Inventory;
use crate::inventory::network::HostNetwork;
use rear_model::manifest::Kind;
use rear_model::rescue::{self, Net, REAR_RESTORE, RESCUE_JSON, RescueConfig, VERSION};
use rear_sys::sysroot::Sysroot;

/// On or off, for flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl OnOff {
    /// Whether this is [`OnOff::On`].
    pub fn on(self) -> bool {
        self == OnOff::On
    }
}

/// The `rear-mkimage` flags for the rescue system (flattened into its build arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct RescueArgs {
    /// Serial console (ttyS0) on the boot entries: on or off.
    #[arg(long, value_enum, default_value = "on")]
    pub serial_console: OnOff,
    /// Speed of the serial console.
    #[arg(long, value_name = "BAUD", default_value_t = 115_200,
          value_parser = clap::value_parser!(u32).range(50..))]
    pub serial_speed: u32,
    /// Network of the rescue system: static (the saved configuration, DHCP when it does not
    /// fit the hardware), dhcp, or none.
    #[arg(long, value_enum, default_value = "static")]
    pub net: Net,
    /// Start an SSH server in the rescue system (default: on when the host has sshd).
    #[arg(long, value_enum)]
    pub ssh: Option<OnOff>,
    /// authorized_keys for root in the rescue system (default: the host's
    /// /root/.ssh/authorized_keys).
    #[arg(long, value_name = "FILE")]
    pub ssh_authorized_keys: Option<PathBuf>,
    /// Extra kernel command line for the boot entries.
    #[arg(long, value_name = "OPTIONS", default_value = "")]
    pub kernel_cmdline: String,
}

impl RescueArgs {
    /// The options these flags ask for.
    pub fn options(&self) -> RescueOptions {
        RescueOptions {
            serial_console: self.serial_console.on(),
            serial_speed: self.serial_speed,
            net: self.net,
            ssh: self.ssh.map(OnOff::on),
            authorized_keys: self.ssh_authorized_keys.clone(),
            extra_cmdline: self.kernel_cmdline.trim().to_owned(),
        }
    }
}

/// What the rescue system does at boot; part of [`crate::build::Options`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescueOptions {
    /// A serial console on ttyS0 in the boot entries.
    pub serial_console: bool,
    /// Its speed.
    pub serial_speed: u32,
    /// The network mode.
    pub net: Net,
    /// Start sshd; `None`: when the host has it.
    pub ssh: Option<bool>,
    /// root's authorized_keys file on the build machine; `None`: the host's.
    pub authorized_keys: Option<PathBuf>,
    /// Extra kernel options for the boot entries.
    pub extra_cmdline: String,
}

impl Default for RescueOptions {
    fn default() -> Self {
        RescueOptions {
            serial_console: true,
            serial_speed: 115_200,
            net: Net::Static,
            ssh: None,
            authorized_keys: None,
            extra_cmdline: String::new(),
        }
    }
}

/// The kernel command line of the media's boot entries, e.g.
/// `console=tty0 console=ttyS0,115200n8 rear.net=static`. The serial console comes last, so
/// it is `/dev/console` (where the rescue system's messages and first shell go).
pub fn kernel_cmdline(o: &RescueOptions) -> String {
    let mut parts = vec!["console=tty0".to_owned()];
    if o.serial_console {
        parts.push(format!("console=ttyS0,{}n8", o.serial_speed));
    }
    parts.push(format!("rear.net={}", o.net.name()));
    if o.ssh == Some(false) {
        parts.push("rear.ssh=0".to_owned());
    }
    if !o.extra_cmdline.is_empty() {
        parts.push(o.extra_cmdline.clone());
    }
    parts.join(" ")
}

/// Adds the rescue system's generated files to the image: `rescue.json`, the network
/// configuration captured from the running host, the SSH server configuration and root's
/// keys, the shell profile with the banner and `rear-restore` on the `PATH`. Problems that
/// leave the image usable (no network captured, no keys) are warnings in the manifest.
pub fn add_to_image(
    c: &mut Closure<'_>,
    sys: &Sysroot,
    o: &RescueOptions,
    inventory: &Inventory,
    epoch: u64,
) -> Result<(), closure::Error> {
    let hostname = &inventory.hostname;
    let by = "rescue settings";
    let sshd_on_host = sys.which_on_path("sshd").is_some();
    let ssh = o.ssh.unwrap_or(sshd_on_host);
    let config = RescueConfig {
        version: VERSION,
        hostname: hostname.to_owned(),
        built: epoch,
        net: o.net,
        ssh,
    };
    let json = serde_json::to_string_pretty(&config).unwrap_or_default() + "\n";
    c.add_generated(RESCUE_JSON, json.into_bytes(), 0o644, by)?;

    if o.net != Net::None {
        match &inventory.network {
            HostNetwork::Probed(probe) => {
                let (config, notes) = probe.config();
                for w in &notes {
                    c.warn(format!("network: {w}"));
                }
                c.add_generated(
                    rear_model::netconf::PATH,
                    config.to_json().into_bytes(),
                    0o644,
                    "network inventory",
                )?;
            }
            HostNetwork::NotRunning => c.warn(
                "network configuration not saved: --root is not the running system; the rescue system will use DHCP"
                    .to_owned(),
            ),
            // The build has said so already, with the consequences.
            HostNetwork::Failed(_) => {}
        }
    }

    if ssh {
        if !sshd_on_host {
            c.warn(
                "--ssh on, but the host has no sshd: the rescue system will have no SSH server"
                    .to_owned(),
            );
        }
        let sftp = rescue::SFTP_PATHS
            .iter()
            .find(|p| sys.is_file(Path::new(p)))
            .copied();
        c.add_special("/etc/ssh", Kind::Dir, 0o755, by)?;
        c.add_special("/var/empty", Kind::Dir, 0o755, by)?;
        c.add_generated(
            rescue::SSHD_CONFIG,
            rescue::sshd_config(sftp).into_bytes(),
            0o644,
            by,
        )?;
        let keys = match &o.authorized_keys {
            Some(path) => Some(std::fs::read(path).map_err(|error| {
                closure::Error::Sysroot(rear_sys::sysroot::Error::Io {
                    root: PathBuf::from("/"),
                    path: path.clone(),
                    error,
                })
            })?),
            None => sys.read(Path::new(rescue::AUTHORIZED_KEYS)).ok(),
        };
        match keys.filter(|k| count_keys(k) > 0) {
            Some(k) => {
                c.add_special("/root/.ssh", Kind::Dir, 0o700, by)?;
                c.add_generated(rescue::AUTHORIZED_KEYS, k, 0o600, by)?;
            }
            None => c.warn(format!(
                "no SSH keys for root ({}): nobody can log in to the rescue system over ssh; pass --ssh-authorized-keys FILE",
                o.authorized_keys
                    .as_ref()
                    .map_or_else(|| format!("{} on the host", rescue::AUTHORIZED_KEYS), |p| p.display().to_string())
            )),
        }
    }

    c.add_generated("/etc/profile", PROFILE.as_bytes().to_vec(), 0o644, by)?;
    c.add_generated(
        "/etc/profile.d/rear.sh",
        PROFILE_REAR.as_bytes().to_vec(),
        0o644,
        by,
    )?;
    c.add_special(
        REAR_RESTORE,
        Kind::Symlink {
            target: "/init".into(),
        },
        0o777,
        by,
    )?;
    Ok(())
}

/// How many lines of an authorized_keys file look like keys (not empty, not comments).
pub fn count_keys(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// `/etc/profile` of the rescue system: `PATH`, the prompt, then `/etc/profile.d/*.sh`.
pub const PROFILE: &str = r#"# /etc/profile of the Relax-and-Recover rescue system (written by rear-mkimage)
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
case $- in *i*) PS1='RESCUE \h:\w # ' ;; esac
for f in /etc/profile.d/*.sh; do
    [ -r "$f" ] && . "$f"
done
unset f
"#;

/// `/etc/profile.d/rear.sh`: the banner before the first prompt of every interactive shell.
pub const PROFILE_REAR: &str = r#"# The rescue system's banner (host, image date, addresses, how to recover)
case $- in *i*) /usr/sbin/rear-restore banner 2>/dev/null ;; esac
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        rescue: RescueArgs,
    }

    fn opts(args: &[&str]) -> RescueOptions {
        let mut argv = vec!["x"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().rescue.options()
    }

    #[test]
    fn kernel_cmdline_defaults() {
        let o = opts(&[]);
        assert_eq!(o, RescueOptions::default());
        assert_eq!(
            kernel_cmdline(&o),
            "console=tty0 console=ttyS0,115200n8 rear.net=static"
        );
    }

    #[test]
    fn kernel_cmdline_all_flags() {
        let o = opts(&[
            "--serial-console",
            "off",
            "--net",
            "dhcp",
            "--ssh",
            "off",
            "--kernel-cmdline",
            " rear.debug quiet ",
        ]);
        assert_eq!(
            kernel_cmdline(&o),
            "console=tty0 rear.net=dhcp rear.ssh=0 rear.debug quiet"
        );
        let o = opts(&["--serial-speed", "9600", "--ssh", "on"]);
        assert_eq!(o.ssh, Some(true));
        assert_eq!(
            kernel_cmdline(&o),
            "console=tty0 console=ttyS0,9600n8 rear.net=static"
        );
    }

    #[test]
    fn rescue_args_reject_bad_values() {
        let mut argv = vec!["x", "--net", "wifi"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv = vec!["x", "--serial-speed", "0"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv = vec!["x", "--ssh", "maybe"];
        assert!(Cli::try_parse_from(&argv).is_err());
    }

    #[test]
    fn rescue_config_round_trip() {
        let c = RescueConfig {
            version: VERSION,
            hostname: "web1".into(),
            built: 1_700_000_000,
            net: Net::Dhcp,
            ssh: true,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains(r#""net":"dhcp""#), "{text}");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rescue.json");
        std::fs::write(&p, &text).unwrap();
        assert_eq!(RescueConfig::load(&p).unwrap(), c);
        std::fs::write(&p, "{").unwrap();
        assert!(
            RescueConfig::load(&p)
                .unwrap_err()
                .starts_with(&p.display().to_string())
        );
    }

    #[test]
    fn count_keys_skips_comments() {
        assert_eq!(
            count_keys(b"# keys\n\nssh-ed25519 AAAA a@b\n  ecdsa-sha2-nistp256 BBBB\n"),
            2
        );
        assert_eq!(count_keys(b"\n# none\n"), 0);
    }
}
