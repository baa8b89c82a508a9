//! Networking of the rescue system.
//!
//! Stage: restore (boot). Input: `/etc/rear/network.json` ([`rear_model::netconf`], saved by
//! `rear-mkimage`), the kernel options `rear.net=` and `ip=` ([`ip`]), and the interfaces in
//! `/sys/class/net`. Output: configured interfaces, routes and `/etc/resolv.conf`.
//!
//! [`plan`] matches the saved configuration to the interfaces present by MAC, [`apply`]
//! carries it out through rtnetlink ([`netlink`]) and falls back to the built-in DHCPv4
//! client ([`dhcp`]) on every wired interface when nothing matches, when asked to
//! (`rear.net=dhcp`, `ip=dhcp`), or when the saved file is unusable.

pub mod apply;
pub mod dhcp;
pub mod ip;
pub mod netlink;
pub mod plan;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use plan::Present;
use rear_model::netconf::{Cidr, Mac};

/// Where the kernel lists network interfaces.
pub const SYS_CLASS_NET: &str = "/sys/class/net";

/// `ARPHRD_ETHER` in `/sys/class/net/*/type`.
const ARPHRD_ETHER: u32 = 1;

fn read_trim(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// The interfaces under `dir` (`/sys/class/net`) that have a hardware address, sorted by
/// name. A bond member's permanent address comes from `bonding_slave/perm_hwaddr` (its
/// `address` is the bond's). Wired means Ethernet type, backed by a device, not wireless.
pub fn present_links(dir: &Path) -> Vec<Present> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Present> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = dir.join(&name);
            let mac = read_trim(&p.join("bonding_slave/perm_hwaddr"))
                .or_else(|| read_trim(&p.join("address")))?
                .parse::<Mac>()
                .ok()
                .filter(|m| !m.is_zero())?;
            let ether = read_trim(&p.join("type")).and_then(|t| t.parse::<u32>().ok())
                == Some(ARPHRD_ETHER);
            let wireless = p.join("wireless").exists() || p.join("phy80211").exists();
            let device = p.join("device").exists();
            Some(Present {
                name,
                mac,
                wired: ether && device && !wireless,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The kernel index of interface `name` (from `dir`, `/sys/class/net`).
pub fn ifindex(dir: &Path, name: &str) -> Option<u32> {
    read_trim(&dir.join(name).join("ifindex")).and_then(|s| s.parse().ok())
}

/// Whether interface `name` has a link (`carrier` is 1; unreadable while it is down).
pub fn has_carrier(dir: &Path, name: &str) -> bool {
    read_trim(&dir.join(name).join("carrier")).as_deref() == Some("1")
}

/// The addresses of every interface but loopback, by interface name, read through
/// rtnetlink (`ip -brief addr`); global and link scope, IPv4 first.
pub fn addresses() -> BTreeMap<String, Vec<Cidr>> {
    let mut out: BTreeMap<String, Vec<Cidr>> = BTreeMap::new();
    let Ok(list) = netlink::Socket::open().and_then(|mut s| s.addresses()) else {
        return out;
    };
    let names: BTreeMap<u32, String> = fs::read_dir(SYS_CLASS_NET)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((ifindex(Path::new(SYS_CLASS_NET), &name)?, name))
        })
        .collect();
    for a in list {
        // Host scope (254) is loopback; skip IPv6 link-local noise too.
        if a.scope == 254 || a.addr.addr.is_loopback() {
            continue;
        }
        if let std::net::IpAddr::V6(v6) = a.addr.addr
            && (v6.segments()[0] & 0xffc0) == 0xfe80
        {
            continue;
        }
        let name = names
            .get(&a.index)
            .cloned()
            .or(a.label)
            .unwrap_or_else(|| format!("if{}", a.index));
        out.entry(name).or_default().push(a.addr);
    }
    for v in out.values_mut() {
        v.sort_by_key(|c| c.addr.is_ipv6());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(dir: &Path, name: &str, mac: &str, ty: &str, device: bool) -> std::path::PathBuf {
        let p = dir.join(name);
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("address"), format!("{mac}\n")).unwrap();
        fs::write(p.join("type"), format!("{ty}\n")).unwrap();
        if device {
            fs::create_dir(p.join("device")).unwrap();
        }
        p
    }

    #[test]
    fn present_links_classifies() {
        let d = tempfile::tempdir().unwrap();
        link(d.path(), "lo", "00:00:00:00:00:00", "772", false);
        link(d.path(), "eth1", "52:54:00:00:00:02", "1", true);
        let slave = link(d.path(), "eth0", "52:54:00:00:00:09", "1", true);
        fs::create_dir(slave.join("bonding_slave")).unwrap();
        fs::write(
            slave.join("bonding_slave/perm_hwaddr"),
            "52:54:00:00:00:01\n",
        )
        .unwrap();
        let wl = link(d.path(), "wlan0", "52:54:00:00:00:03", "1", true);
        fs::create_dir(wl.join("wireless")).unwrap();
        link(d.path(), "bond0", "52:54:00:00:00:09", "1", false);
        let got: Vec<(String, String, bool)> = present_links(d.path())
            .into_iter()
            .map(|p| (p.name, p.mac.to_string(), p.wired))
            .collect();
        let want = [
            ("bond0", "52:54:00:00:00:09", false),
            ("eth0", "52:54:00:00:00:01", true),
            ("eth1", "52:54:00:00:00:02", true),
            ("wlan0", "52:54:00:00:00:03", false),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c))
        .to_vec();
        assert_eq!(got, want);
    }

    #[test]
    fn ifindex_and_carrier_read_sysfs() {
        let d = tempfile::tempdir().unwrap();
        let p = link(d.path(), "eth0", "52:54:00:00:00:02", "1", true);
        fs::write(p.join("ifindex"), "2\n").unwrap();
        fs::write(p.join("carrier"), "1\n").unwrap();
        assert_eq!(ifindex(d.path(), "eth0"), Some(2));
        assert!(has_carrier(d.path(), "eth0"));
        assert_eq!(ifindex(d.path(), "eth9"), None);
        assert!(!has_carrier(d.path(), "eth9"));
    }
}
