//! The banner shown before the first prompt of every interactive shell (console or ssh):
//! host name, image build date, addresses, SSH, and the commands to recover.
//! `/etc/profile.d/rear.sh` runs `rear-restore banner`, which calls [`print()`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::ssh;
use rear_model::netconf::Cidr;
use rear_model::rescue::{RESCUE_JSON, RescueConfig};
use rear_model::timefmt::utc_date;

/// What the banner shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannerInfo {
    /// The protected host's name.
    pub hostname: String,
    /// When the image was built (seconds since 1970), if known.
    pub built: Option<u64>,
    /// The running kernel.
    pub kernel: String,
    /// Addresses by interface.
    pub addresses: BTreeMap<String, Vec<Cidr>>,
    /// Whether sshd is running.
    pub sshd: bool,
    /// Whether the network thread is still at work.
    pub configuring: bool,
}

/// The banner text. Pure.
pub fn banner_text(b: &BannerInfo) -> String {
    let mut s = format!("Relax-and-Recover rescue system of {}\n", b.hostname);
    s.push_str(&format!(
        "  image built {}, kernel {}\n",
        b.built.map_or_else(|| "(unknown)".to_owned(), utc_date),
        b.kernel
    ));
    if b.addresses.is_empty() && b.configuring {
        s.push_str("  network: being configured; the addresses appear on the console when ready\n");
    } else if b.addresses.is_empty() {
        s.push_str(
            "  network: no address (ip addr; rear.net=dhcp or ip= on the kernel command line)\n",
        );
    }
    for (dev, addrs) in &b.addresses {
        let list: Vec<String> = addrs.iter().map(Cidr::to_string).collect();
        s.push_str(&format!("  {dev}: {}\n", list.join(" ")));
    }
    let first_v4 = b
        .addresses
        .values()
        .flatten()
        .find(|a| a.addr.is_ipv4())
        .map(|a| a.addr.to_string());
    match (b.sshd, first_v4) {
        (true, Some(ip)) => s.push_str(&format!("  ssh: ssh root@{ip} (key login only)\n")),
        (true, None) => s.push_str("  ssh: sshd is running (key login only)\n"),
        (false, _) => {}
    }
    s.push_str(
        "Recover this system:  rear-restore recover\n\
         Leave:                poweroff | reboot\n",
    );
    s
}

/// Whether the sshd of [`ssh::PID_FILE`] is alive.
fn sshd_running() -> bool {
    std::fs::read_to_string(ssh::PID_FILE)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Gathers [`BannerInfo`] on the running rescue system.
pub fn gather() -> BannerInfo {
    let config = RescueConfig::load(Path::new(RESCUE_JSON)).ok();
    let hostname = nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty() && h != "(none)")
        .or_else(|| config.as_ref().map(|c| c.hostname.clone()))
        .unwrap_or_else(|| "rescue".to_owned());
    BannerInfo {
        hostname,
        built: config.map(|c| c.built),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        addresses: crate::net::addresses(),
        sshd: sshd_running(),
        configuring: !crate::net::apply::finished(),
    }
}

/// Prints the banner on stdout (`rear-restore banner`).
pub fn print() {
    let _ = std::io::stdout().write_all(banner_text(&gather()).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_text_with_network_and_ssh() {
        let mut addresses = BTreeMap::new();
        addresses.insert(
            "eth0".to_owned(),
            vec![
                "10.0.2.15/24".parse().unwrap(),
                "fec0::2/64".parse().unwrap(),
            ],
        );
        let b = BannerInfo {
            hostname: "web1".into(),
            built: Some(1_700_000_000),
            kernel: "6.1.0-56-amd64".into(),
            addresses,
            sshd: true,
            configuring: false,
        };
        assert_eq!(
            banner_text(&b),
            "Relax-and-Recover rescue system of web1\n  image built 2023-11-14 22:13 UTC, kernel 6.1.0-56-amd64\n  eth0: 10.0.2.15/24 fec0::2/64\n  ssh: ssh root@10.0.2.15 (key login only)\nRecover this system:  rear-restore recover\nLeave:                poweroff | reboot\n"
        );
    }

    #[test]
    fn banner_text_without_network() {
        let b = BannerInfo {
            hostname: "db".into(),
            built: None,
            kernel: "6.1".into(),
            addresses: BTreeMap::new(),
            sshd: false,
            configuring: false,
        };
        let t = banner_text(&b);
        assert!(t.contains("image built (unknown)"), "{t}");
        assert!(t.contains("network: no address"), "{t}");
        assert!(!t.contains("ssh:"), "{t}");
        let t = banner_text(&BannerInfo {
            configuring: true,
            ..b
        });
        assert!(t.contains("network: being configured"), "{t}");
    }
}
