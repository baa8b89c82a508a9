//! `/etc/rear/rescue.json` and the other files through which `rear-mkimage` tells the rescue
//! system how to come up: a versioned serde contract shared by both binaries (the build side is
//! `skeleton` in `rear-mkimage`, the boot side `restore::init`). The files are documented in
//! `docs/rescue.md`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where the image carries [`RescueConfig`].
pub const RESCUE_JSON: &str = "/etc/rear/rescue.json";
/// The format version of [`RescueConfig`].
pub const VERSION: u32 = 1;
/// The name of `rear-restore` in the shell's `PATH` (a link to `/init`).
pub const REAR_RESTORE: &str = "/usr/sbin/rear-restore";

/// Where the image's sshd reads its configuration, [`sshd_config`] (written by the build).
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// root's keys in the image.
pub const AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";
/// Where `sftp-server` may be, in order (Debian, Fedora/SUSE, Arch).
pub const SFTP_PATHS: [&str; 3] = [
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
];
/// The host key types made at boot, with their files.
pub const HOST_KEYS: [(&str, &str); 2] = [
    ("ed25519", "/etc/ssh/ssh_host_ed25519_key"),
    ("ecdsa", "/etc/ssh/ssh_host_ecdsa_key"),
];

/// `/etc/rear/rescue.json`: what the image was built with, read by PID 1 and the banner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescueConfig {
    /// The format version, [`VERSION`].
    pub version: u32,
    /// The protected host's name.
    pub hostname: String,
    /// When the image was built (`SOURCE_DATE_EPOCH`), seconds since 1970.
    pub built: u64,
    /// The default network mode (`rear.net=` overrides it).
    pub net: Net,
    /// Whether sshd starts by default (`rear.ssh=` overrides it).
    pub ssh: bool,
}

impl RescueConfig {
    /// Reads `path`; `None` when it is missing or unreadable (PID 1 then uses the built-in
    /// defaults and says so).
    pub fn load(path: &Path) -> Result<RescueConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How the rescue system configures its network (`rear.net=`, `rear-mkimage --net`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// Run a DHCP client on every interface with a link.
    Dhcp,
    /// Apply the network configuration saved from the protected host.
    #[default]
    Static,
    /// Leave the network down.
    None,
}

impl Net {
    /// The name used on the command line: `dhcp`, `static`, `none`.
    pub fn name(self) -> &'static str {
        match self {
            Net::Dhcp => "dhcp",
            Net::Static => "static",
            Net::None => "none",
        }
    }
}

/// The rescue system's `sshd_config`: root logs in with a key only; `sftp` when the image
/// has `sftp-server` (at that path).
pub fn sshd_config(sftp_server: Option<&str>) -> String {
    let mut s = String::from(
        "# sshd_config of the rescue system, written by rear-mkimage (the host's is not copied).\n\
         # Host keys are made fresh at every boot; only key login for root.\n",
    );
    for (_, file) in HOST_KEYS {
        s.push_str(&format!("HostKey {file}\n"));
    }
    s.push_str(
        "PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         PidFile /run/sshd.pid\n\
         ClientAliveInterval 60\n",
    );
    if let Some(p) = sftp_server {
        s.push_str(&format!("Subsystem sftp {p}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_config_key_only_root() {
        let c = sshd_config(Some("/usr/lib/openssh/sftp-server"));
        for line in [
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "UsePAM no",
            "PidFile /run/sshd.pid",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "HostKey /etc/ssh/ssh_host_ed25519_key",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} missing:\n{c}");
        }
        assert!(!sshd_config(None).contains("Subsystem"));
    }
}
