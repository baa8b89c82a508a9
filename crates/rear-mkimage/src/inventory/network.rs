//! Inventory of the host's network: interfaces, addresses, routes, DNS ->
//! [`NetworkConfig`] (`/etc/rear/network.json` in the image).
//!
//! Stage: inventory. Input: `ip -json -details addr show`, `ip -json route show table main`
//! (IPv4 and IPv6) run through [`rear_sys::exec`], and `/etc/resolv.conf` read through the
//! [`Sysroot`]. Output: the saved configuration, plus notes about what was left out.
//! The network lives in the running kernel, so it is captured only when the sysroot is `/`.
//!
//! The parsers are pure functions tested on captured `ip -j` output. What is kept:
//! physical Ethernet interfaces (those with a parent bus device), bonds with their members'
//! permanent MACs, VLANs; global-scope addresses (a dynamic IPv4 address marks the interface
//! as DHCP, dynamic IPv6 ones come back by themselves through router advertisements);
//! routes set by an administrator or at boot (protocol `boot`/`static`), not the kernel's,
//! DHCP's or router advertisements'. Bridges, tunnels and other virtual links are noted as
//! skipped.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use rear_model::netconf::{Cidr, Dns, Interface, LinkKind, Mac, NetworkConfig, Route};
use rear_sys::sysroot::Sysroot;

/// Errors capturing the network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ip` failed or is missing.
    #[error(transparent)]
    Exec(#[from] rear_sys::exec::Error),
    /// `ip` printed something that is not the expected JSON.
    #[error("parsing the output of `{command}`: {error}")]
    Parse {
        /// The command.
        command: String,
        /// The cause.
        error: serde_json::Error,
    },
}

/// One link of `ip -j -d addr show` (only the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct IpLink {
    /// `ifname`.
    pub ifname: String,
    /// `link_type`: `ether`, `loopback`, `none`...
    #[serde(default)]
    pub link_type: String,
    /// `address`: the hardware address.
    #[serde(default)]
    pub address: Option<String>,
    /// `mtu`.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// `master`: the bond or bridge this link belongs to.
    #[serde(default)]
    pub master: Option<String>,
    /// `link`: the parent of a VLAN.
    #[serde(default)]
    pub link: Option<String>,
    /// `parentbus`: set for links backed by a device.
    #[serde(default)]
    pub parentbus: Option<String>,
    /// `linkinfo`: the kind of a virtual link and its data.
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
    /// `addr_info`.
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
}

/// `linkinfo` of `ip -d`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LinkInfo {
    /// `info_kind`: `vlan`, `bond`, `bridge`...
    #[serde(default)]
    pub info_kind: Option<String>,
    /// `info_data`: the kind's settings.
    #[serde(default)]
    pub info_data: Option<serde_json::Value>,
    /// `info_slave_kind`: `bond` for a bond member.
    #[serde(default)]
    pub info_slave_kind: Option<String>,
    /// `info_slave_data`: a bond member's `perm_hwaddr`.
    #[serde(default)]
    pub info_slave_data: Option<serde_json::Value>,
}

/// One entry of `addr_info`.
#[derive(Debug, Clone, Deserialize)]
pub struct AddrInfo {
    /// `inet` or `inet6`.
    pub family: String,
    /// The address.
    pub local: String,
    /// The prefix length.
    pub prefixlen: u8,
    /// `global`, `link`, `host`.
    #[serde(default)]
    pub scope: String,
    /// Set for addresses from DHCP or SLAAC.
    #[serde(default)]
    pub dynamic: bool,
}

/// One route of `ip -j route show`.
#[derive(Debug, Clone, Deserialize)]
pub struct IpRoute {
    /// `default`, `A.B.C.D/N` or a bare address.
    pub dst: String,
    /// The next hop.
    #[serde(default)]
    pub gateway: Option<String>,
    /// The interface.
    #[serde(default)]
    pub dev: Option<String>,
    /// `kernel`, `dhcp`, `ra`, `boot`, `static`...; absent means `boot`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `unicast` when absent; `unreachable`, `blackhole`, `local`...
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The metric.
    #[serde(default)]
    pub metric: Option<u32>,
}

fn parse_json<T: serde::de::DeserializeOwned>(command: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|error| Error::Parse {
        command: command.to_owned(),
        error,
    })
}

/// Parses `ip -j -d addr show`.
pub fn parse_links(text: &str) -> Result<Vec<IpLink>, Error> {
    parse_json("ip -j -d addr show", text)
}

/// Parses `ip -j route show` (either family).
pub fn parse_routes(text: &str) -> Result<Vec<IpRoute>, Error> {
    // `ip -j -6 route` prints nothing at all when IPv6 is disabled.
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    parse_json("ip -j route show table main", text)
}

/// Name servers and search domains from the text of `resolv.conf` (resolv.conf(5): the last
/// `search` or `domain` line wins).
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                if let Some(a) = w.next().and_then(|a| a.parse::<IpAddr>().ok())
                    && !dns.servers.contains(&a)
                {
                    dns.servers.push(a);
                }
            }
            Some("search" | "domain") => dns.search = w.map(str::to_owned).collect(),
            _ => {}
        }
    }
    dns
}

fn str_field(v: &Option<serde_json::Value>, key: &str) -> Option<String> {
    v.as_ref()?.get(key)?.as_str().map(str::to_owned)
}

fn u64_field(v: &Option<serde_json::Value>, key: &str) -> Option<u64> {
    v.as_ref()?.get(key)?.as_u64()
}

/// Builds the saved configuration from parsed `ip` output and DNS settings. Returns it with
/// one note per link or route left out. Pure.
pub fn from_ip(links: &[IpLink], routes: &[IpRoute], dns: Dns) -> (NetworkConfig, Vec<String>) {
    let mut notes = Vec::new();
    let mut physical = Vec::new();
    let mut bonds = Vec::new();
    let mut vlans = Vec::new();
    for l in links {
        if l.link_type == "loopback" {
            continue;
        }
        let info = l.linkinfo.clone().unwrap_or_default();
        let kind = match info.info_kind.as_deref() {
            None if l.parentbus.is_some() && l.link_type == "ether" => LinkKind::Ethernet,
            Some("vlan") => {
                let id = u64_field(&info.info_data, "id").and_then(|i| u16::try_from(i).ok());
                match (l.link.clone(), id) {
                    (Some(parent), Some(id)) => LinkKind::Vlan { parent, id },
                    _ => {
                        notes.push(format!("{}: VLAN without parent or id, skipped", l.ifname));
                        continue;
                    }
                }
            }
            Some("bond") => LinkKind::Bond {
                mode: str_field(&info.info_data, "mode").unwrap_or_else(|| "balance-rr".into()),
                miimon: u64_field(&info.info_data, "miimon")
                    .and_then(|m| u32::try_from(m).ok())
                    .filter(|&m| m > 0),
                slaves: links
                    .iter()
                    .filter(|s| s.master.as_deref() == Some(&l.ifname))
                    .map(|s| s.ifname.clone())
                    .collect(),
            },
            other => {
                let has_addr = l.addr_info.iter().any(|a| a.scope == "global");
                if has_addr {
                    notes.push(format!(
                        "{}: {} link with addresses not saved (only Ethernet, bond and VLAN are)",
                        l.ifname,
                        other.unwrap_or("virtual")
                    ));
                }
                continue;
            }
        };
        let perm = str_field(&info.info_slave_data, "perm_hwaddr");
        let mac = perm
            .or(l.address.clone())
            .and_then(|m| m.parse::<Mac>().ok())
            .filter(|m| !m.is_zero());
        let mut addresses = Vec::new();
        let mut dhcp = false;
        for a in &l.addr_info {
            if a.scope != "global" {
                continue;
            }
            let Some(cidr) = a
                .local
                .parse::<IpAddr>()
                .ok()
                .and_then(|ip| Cidr::new(ip, a.prefixlen))
            else {
                notes.push(format!(
                    "{}: address {}/{} unreadable, skipped",
                    l.ifname, a.local, a.prefixlen
                ));
                continue;
            };
            if a.dynamic && a.family == "inet6" {
                continue;
            }
            if a.dynamic {
                dhcp = true;
            }
            addresses.push(cidr);
        }
        let iface = Interface {
            name: l.ifname.clone(),
            mac,
            mtu: l.mtu.filter(|&m| m != 1500),
            addresses,
            dhcp,
            kind,
        };
        match iface.kind {
            LinkKind::Ethernet => physical.push(iface),
            LinkKind::Bond { .. } => bonds.push(iface),
            LinkKind::Vlan { .. } => vlans.push(iface),
        }
    }
    let mut interfaces = physical;
    interfaces.append(&mut bonds);
    interfaces.append(&mut vlans);
    let kept = |dev: &Option<String>| {
        dev.as_ref()
            .is_none_or(|d| interfaces.iter().any(|i| i.name == *d))
    };
    let mut saved = Vec::new();
    for r in routes {
        let proto = r.protocol.as_deref().unwrap_or("boot");
        if !matches!(proto, "boot" | "static") || r.kind.as_deref().is_some_and(|k| k != "unicast")
        {
            continue;
        }
        let dst = if r.dst == "default" {
            None
        } else {
            match r.dst.parse::<Cidr>() {
                Ok(c) => Some(c),
                Err(_) => {
                    notes.push(format!("route {}: unreadable destination, skipped", r.dst));
                    continue;
                }
            }
        };
        let gateway = r.gateway.as_deref().and_then(|g| g.parse().ok());
        if !kept(&r.dev) {
            notes.push(format!(
                "route {} dev {}: its interface is not saved, skipped",
                r.dst,
                r.dev.as_deref().unwrap_or("?")
            ));
            continue;
        }
        saved.push(Route {
            dst,
            gateway,
            dev: r.dev.clone(),
            metric: r.metric,
        });
    }
    (
        NetworkConfig {
            interfaces,
            routes: saved,
            dns,
            ..NetworkConfig::default()
        },
        notes,
    )
}

/// The name servers of the host: `/etc/resolv.conf`, or systemd-resolved's upstream list
/// when that file only names the local stub (127.0.0.53).
pub fn read_dns(sys: &Sysroot) -> Dns {
    let read = |p: &str| {
        sys.read_to_string(Path::new(p))
            .ok()
            .map(|t| parse_resolv_conf(&t))
    };
    let main = read("/etc/resolv.conf").unwrap_or_default();
    let stub = main.servers.iter().all(|s| s.is_loopback());
    if stub && let Some(upstream) = read("/run/systemd/resolve/resolv.conf") {
        return Dns {
            servers: upstream.servers,
            search: if main.search.is_empty() {
                upstream.search
            } else {
                main.search
            },
        };
    }
    main
}

/// The running host's network as ip(8) shows it, probed once by the inventory stage: the
/// report's interfaces, the rescue system's configuration ([`Probe::config`]) and the PXE
/// tree's MAC files all come from this one value.
#[derive(Debug, Clone)]
pub enum HostNetwork {
    /// The build's root is not the running system (`--root DIR`): the kernel's network is
    /// not that system's.
    NotRunning,
    /// What ip(8) printed, parsed, and the name servers.
    Probed(Probe),
    /// ip(8) failed or printed what could not be read: the error.
    Failed(String),
}

/// Links, routes and name servers of the running host.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// `ip -j -d addr show`.
    pub links: Vec<IpLink>,
    /// `ip -j -4 route show table main`, then `-6`.
    pub routes: Vec<IpRoute>,
    /// `/etc/resolv.conf` (or systemd-resolved's upstream servers).
    pub dns: Dns,
}

/// Probes the running host's network; [`HostNetwork::NotRunning`] when `sys` is not `/`.
pub fn probe(sys: &Sysroot) -> HostNetwork {
    if !sys.is_host() {
        return HostNetwork::NotRunning;
    }
    let run = |args: &[&str]| -> Result<String, Error> {
        let out = rear_sys::exec::run(Command::new("ip").args(args), Some("iproute2"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let ip = || -> Result<Probe, Error> {
        let links = parse_links(&run(&["-j", "-d", "addr", "show"])?)?;
        let mut routes = parse_routes(&run(&["-j", "-4", "route", "show", "table", "main"])?)?;
        routes.extend(parse_routes(&run(&[
            "-j", "-6", "route", "show", "table", "main",
        ])?)?);
        Ok(Probe {
            links,
            routes,
            dns: read_dns(sys),
        })
    };
    match ip() {
        Ok(p) => HostNetwork::Probed(p),
        Err(e) => HostNetwork::Failed(e.to_string()),
    }
}

impl Probe {
    /// The configuration the rescue system brings up, and notes about what was left out.
    pub fn config(&self) -> (NetworkConfig, Vec<String>) {
        from_ip(&self.links, &self.routes, self.dns.clone())
    }

    /// The report's interfaces: every link but loopback, sorted by name, with its MAC (empty
    /// when it has none or only zeros) and its global addresses (`192.0.2.10/24`), sorted.
    pub fn interfaces(&self) -> Vec<rear_model::report::Interface> {
        let mut out: Vec<_> = self
            .links
            .iter()
            .filter(|l| l.link_type != "loopback")
            .map(|l| {
                let mut addresses: Vec<String> = l
                    .addr_info
                    .iter()
                    .filter(|a| a.scope == "global")
                    .map(|a| format!("{}/{}", a.local, a.prefixlen))
                    .collect();
                addresses.sort();
                let mac = l
                    .address
                    .as_deref()
                    .filter(|m| m.bytes().any(|b| !matches!(b, b'0' | b':')))
                    .unwrap_or_default()
                    .to_lowercase();
                rear_model::report::Interface {
                    name: l.ifname.clone(),
                    mac,
                    addresses,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// `(interface, hardware address)` of the Ethernet devices (links with a parent bus:
    /// not bridges, bonds, VLANs, veth or tun), sorted by name. A bond member's address is
    /// its permanent one: the bond gives all its members the bond's MAC, while the firmware
    /// (PXE) still uses each card's own.
    pub fn device_addresses(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .links
            .iter()
            .filter(|l| l.parentbus.is_some() && l.link_type == "ether")
            .filter_map(|l| {
                let permanent = l
                    .linkinfo
                    .as_ref()
                    .and_then(|i| i.info_slave_data.as_ref())
                    .and_then(|d| d.get("perm_hwaddr"))
                    .and_then(|v| v.as_str());
                let address = permanent.or(l.address.as_deref())?;
                Some((l.ifname.clone(), address.to_lowercase()))
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ip -j -d addr` of a test machine (trimmed): loopback, two ifb devices, a virtio NIC
    /// with a static IPv4, a static and a link-local IPv6 address.
    const ADDR_VM: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"}]},{"ifindex":2,"ifname":"ifb0","flags":["BROADCAST","NOARP"],"mtu":1500,"link_type":"ether","address":"7a:fb:8a:7b:1b:42","linkinfo":{"info_kind":"ifb"},"addr_info":[]},{"ifindex":4,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,"link_type":"ether","address":"02:fc:00:00:00:01","parentbus":"virtio","parentdev":"virtio2","addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24,"broadcast":"192.0.2.255","scope":"global","label":"eth0","valid_life_time":4294967295},{"family":"inet6","local":"fd00::2","prefixlen":64,"scope":"global","nodad":true},{"family":"inet6","local":"fe80::fc:ff:fe00:1","prefixlen":64,"scope":"link"}]}]"#;
    const ROUTE4_VM: &str = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},{"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]}]"#;
    const ROUTE6_VM: &str = r#"[{"dst":"fd00::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":"default","gateway":"fd00::1","dev":"eth0","metric":1024,"flags":[],"pref":"medium"}]"#;

    /// A server with an active-backup bond of two NICs, a VLAN on it, a DHCP NIC and a bridge.
    const ADDR_BOND: &str = r#"[
 {"ifindex":2,"ifname":"eno1","mtu":9000,"master":"bond0","link_type":"ether","address":"52:54:00:aa:00:01","parentbus":"pci","linkinfo":{"info_slave_kind":"bond","info_slave_data":{"state":"ACTIVE","perm_hwaddr":"52:54:00:aa:00:01"}},"addr_info":[]},
 {"ifindex":3,"ifname":"eno2","mtu":9000,"master":"bond0","link_type":"ether","address":"52:54:00:aa:00:01","parentbus":"pci","linkinfo":{"info_slave_kind":"bond","info_slave_data":{"state":"BACKUP","perm_hwaddr":"52:54:00:aa:00:02"}},"addr_info":[]},
 {"ifindex":4,"ifname":"bond0","mtu":9000,"link_type":"ether","address":"52:54:00:aa:00:01","linkinfo":{"info_kind":"bond","info_data":{"mode":"active-backup","miimon":100}},"addr_info":[{"family":"inet","local":"192.0.2.10","prefixlen":24,"scope":"global"}]},
 {"ifindex":5,"ifname":"bond0.7","link":"bond0","mtu":9000,"link_type":"ether","address":"52:54:00:aa:00:01","linkinfo":{"info_kind":"vlan","info_data":{"protocol":"802.1Q","id":7,"flags":["REORDER_HDR"]}},"addr_info":[{"family":"inet","local":"198.51.100.10","prefixlen":24,"scope":"global"}]},
 {"ifindex":6,"ifname":"enp5s0","mtu":1500,"link_type":"ether","address":"52:54:00:bb:00:01","parentbus":"pci","addr_info":[{"family":"inet","local":"10.0.0.57","prefixlen":16,"scope":"global","dynamic":true},{"family":"inet6","local":"2001:db8::5054:ff:febb:1","prefixlen":64,"scope":"global","dynamic":true,"mngtmpaddr":true}]},
 {"ifindex":7,"ifname":"br0","mtu":1500,"link_type":"ether","address":"52:54:00:cc:00:01","linkinfo":{"info_kind":"bridge"},"addr_info":[{"family":"inet","local":"172.16.0.1","prefixlen":24,"scope":"global"}]}
]"#;
    const ROUTE_BOND: &str = r#"[{"dst":"default","gateway":"10.0.0.1","dev":"enp5s0","protocol":"dhcp","metric":100},{"dst":"default","gateway":"192.0.2.1","dev":"bond0","protocol":"static","metric":200},{"dst":"203.0.113.0/24","gateway":"198.51.100.1","dev":"bond0.7"},{"dst":"172.17.0.0/16","gateway":"172.16.0.254","dev":"br0"},{"dst":"10.9.9.9","type":"blackhole"}]"#;

    #[test]
    fn from_ip_vm_static() {
        let links = parse_links(ADDR_VM).unwrap();
        let mut routes = parse_routes(ROUTE4_VM).unwrap();
        routes.extend(parse_routes(ROUTE6_VM).unwrap());
        let dns = parse_resolv_conf("nameserver 10.255.255.53\n");
        let (c, notes) = from_ip(&links, &routes, dns);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(c.interfaces.len(), 1);
        let i = &c.interfaces[0];
        assert_eq!(i.name, "eth0");
        assert_eq!(i.mac.unwrap().to_string(), "02:fc:00:00:00:01");
        assert_eq!(i.mtu, Some(1400));
        assert!(!i.dhcp);
        let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, vec!["192.0.2.2/24", "fd00::2/64"]);
        let routes: Vec<String> = c
            .routes
            .iter()
            .map(rear_model::netconf::route_text)
            .collect();
        assert_eq!(
            routes,
            vec![
                "default via 192.0.2.1 dev eth0",
                "default via fd00::1 dev eth0"
            ]
        );
        assert_eq!(
            c.dns.servers,
            vec!["10.255.255.53".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn from_ip_bond_vlan_dhcp_bridge() {
        let links = parse_links(ADDR_BOND).unwrap();
        let routes = parse_routes(ROUTE_BOND).unwrap();
        let (c, notes) = from_ip(&links, &routes, Dns::default());
        let names: Vec<&str> = c.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, vec!["eno1", "eno2", "enp5s0", "bond0", "bond0.7"]);
        assert_eq!(
            c.interfaces[1].mac.unwrap().to_string(),
            "52:54:00:aa:00:02",
            "permanent MAC of a member"
        );
        assert_eq!(
            c.interfaces[3].kind,
            LinkKind::Bond {
                mode: "active-backup".into(),
                miimon: Some(100),
                slaves: vec!["eno1".into(), "eno2".into()]
            }
        );
        assert_eq!(
            c.interfaces[4].kind,
            LinkKind::Vlan {
                parent: "bond0".into(),
                id: 7
            }
        );
        let dhcp = &c.interfaces[2];
        assert!(dhcp.dhcp);
        assert_eq!(dhcp.addresses.len(), 1, "SLAAC address not saved");
        assert_eq!(dhcp.mtu, None);
        let routes: Vec<String> = c
            .routes
            .iter()
            .map(rear_model::netconf::route_text)
            .collect();
        assert_eq!(
            routes,
            vec![
                "default via 192.0.2.1 dev bond0",
                "203.0.113.0/24 via 198.51.100.1 dev bond0.7"
            ]
        );
        assert_eq!(
            notes,
            vec![
                "br0: bridge link with addresses not saved (only Ethernet, bond and VLAN are)",
                "route 172.17.0.0/16 dev br0: its interface is not saved, skipped"
            ]
        );
    }

    #[test]
    fn parse_errors_name_the_command() {
        let e = parse_links("[{").unwrap_err().to_string();
        assert!(
            e.starts_with("parsing the output of `ip -j -d addr show`: "),
            "{e}"
        );
        assert!(parse_routes("").unwrap().is_empty());
    }

    #[test]
    fn parse_resolv_conf_servers_and_search() {
        let d = parse_resolv_conf(
            "# generated\ndomain old.example\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 192.0.2.53\nnameserver bogus\nsearch a.example b.example\noptions edns0\n",
        );
        assert_eq!(d.servers.len(), 2);
        assert_eq!(d.search, vec!["a.example", "b.example"]);
    }

    #[test]
    fn read_dns_follows_resolved_stub() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::create_dir_all(d.path().join("run/systemd/resolve")).unwrap();
        std::fs::write(
            d.path().join("etc/resolv.conf"),
            "nameserver 127.0.0.53\nsearch lan\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("run/systemd/resolve/resolv.conf"),
            "nameserver 192.0.2.1\nsearch other\n",
        )
        .unwrap();
        let sys = Sysroot::new(d.path()).unwrap();
        let dns = read_dns(&sys);
        assert_eq!(dns.servers, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(dns.search, vec!["lan"]);
    }

    #[test]
    fn probe_skips_a_sysroot() {
        let d = tempfile::tempdir().unwrap();
        let sys = Sysroot::new(d.path()).unwrap();
        assert!(matches!(probe(&sys), HostNetwork::NotRunning));
    }

    fn probed(addr: &str) -> Probe {
        Probe {
            links: parse_links(addr).unwrap(),
            ..Probe::default()
        }
    }

    #[test]
    fn interfaces_for_the_report_are_all_but_loopback_with_global_addresses() {
        let got = probed(ADDR_VM).interfaces();
        let shown: Vec<(&str, &str, Vec<&str>)> = got
            .iter()
            .map(|i| {
                let a = i.addresses.iter().map(String::as_str).collect();
                (i.name.as_str(), i.mac.as_str(), a)
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "eth0",
                    "02:fc:00:00:00:01",
                    vec!["192.0.2.2/24", "fd00::2/64"]
                ),
                ("ifb0", "7a:fb:8a:7b:1b:42", vec![]),
            ]
        );
        let bond = probed(ADDR_BOND).interfaces();
        let names: Vec<&str> = bond.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["bond0", "bond0.7", "br0", "eno1", "eno2", "enp5s0"]);
    }

    #[test]
    fn device_addresses_are_ethernet_cards_with_their_permanent_macs() {
        assert_eq!(
            probed(ADDR_BOND).device_addresses(),
            [
                ("eno1".to_string(), "52:54:00:aa:00:01".to_string()),
                ("eno2".to_string(), "52:54:00:aa:00:02".to_string()),
                ("enp5s0".to_string(), "52:54:00:bb:00:01".to_string()),
            ],
            "not the bond, the VLAN or the bridge; eno2 by its own MAC, not the bond's"
        );
        assert_eq!(
            probed(ADDR_VM).device_addresses(),
            [("eth0".to_string(), "02:fc:00:00:00:01".to_string())]
        );
    }
}
