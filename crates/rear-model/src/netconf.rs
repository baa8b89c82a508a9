//! `/etc/rear/network.json`: the protected host's network, saved by `rear-mkimage`
//! (`inventory::network`) and applied by the rescue system's PID 1
//! (`restore::net::apply`). A versioned serde contract shared by both binaries; the format is
//! documented in `docs/rescue.md`.
//!
//! ```json
//! {"version":1,
//!  "interfaces":[{"name":"eth0","mac":"52:54:00:12:34:56","mtu":1500,
//!                 "addresses":["192.0.2.2/24","2001:db8::2/64"],"dhcp":false,
//!                 "kind":{"type":"ethernet"}}],
//!  "routes":[{"gateway":"192.0.2.1","dev":"eth0"}],
//!  "dns":{"servers":["192.0.2.53"],"search":["example.com"]}}
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

/// Where the image carries the saved configuration.
pub const PATH: &str = "/etc/rear/network.json";

/// Errors reading a saved network configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The file is not valid JSON of this format.
    #[error("{}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, with line and column.
        error: serde_json::Error,
    },
    /// The file has a version this program does not know.
    #[error("{}: format version {found}, this rear-restore reads version {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
    },
}

/// A text value that is not a MAC address or CIDR address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {what}")]
pub struct ParseError {
    /// The text.
    pub value: String,
    /// What it should have been.
    pub what: &'static str,
}

/// An Ethernet (EUI-48) hardware address, written `52:54:00:12:34:56` (lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for Mac {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError {
            value: s.to_owned(),
            what: "a MAC address (xx:xx:xx:xx:xx:xx)",
        };
        let mut out = [0u8; 6];
        let mut parts = s.trim().split([':', '-']);
        for b in &mut out {
            let p = parts.next().filter(|p| p.len() == 2).ok_or_else(err)?;
            *b = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

impl TryFrom<String> for Mac {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

impl Mac {
    /// Whether this is all zeros (a loopback or tunnel device has no real address).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

/// An address with its prefix length, written `192.0.2.2/24` or `2001:db8::2/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (0-32 for IPv4, 0-128 for IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// A CIDR value; `None` when the prefix is too long for the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = prefix_mask_v4(self.prefix);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }

    /// The IPv4 broadcast address of the subnet; `None` for IPv6 and for /31, /32.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) if self.prefix < 31 => {
                Some(Ipv4Addr::from(u32::from(a) | !prefix_mask_v4(self.prefix)))
            }
            _ => None,
        }
    }
}

/// The IPv4 netmask of a prefix length as a number (`24` -> `0xffffff00`).
pub fn prefix_mask_v4(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// The prefix length of a contiguous IPv4 netmask (`255.255.255.0` -> 24); `None` when the
/// ones are not contiguous.
pub fn mask_prefix_v4(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = ParseError;

    /// `ADDR/PREFIX`; a bare address is a host route (/32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError {
            value: s.to_owned(),
            what: "an address with prefix length (ADDR/LEN)",
        };
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        Cidr::new(addr, prefix).ok_or_else(err)
    }
}

impl TryFrom<String> for Cidr {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

/// The saved network configuration of the protected host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The format version, [`VERSION`].
    pub version: u32,
    /// Interfaces: physical ones first, then bonds, then VLANs (the order they are set up).
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Routes other than the ones the kernel makes for each address.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Name resolution (`/etc/resolv.conf`).
    #[serde(default)]
    pub dns: Dns,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            version: VERSION,
            interfaces: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
        }
    }
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name on the host, e.g. `enp1s0`, `bond0`, `eth0.100`.
    pub name: String,
    /// Its permanent hardware address; the rescue system finds the interface by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Its MTU, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Addresses with prefix length (global scope only). With `dhcp` these are what the host
    /// had from its DHCP server, used only when DHCP fails in the rescue system.
    #[serde(default)]
    pub addresses: Vec<Cidr>,
    /// The host got its IPv4 address by DHCP: run DHCP here too.
    #[serde(default)]
    pub dhcp: bool,
    /// What kind of link it is.
    #[serde(default)]
    pub kind: LinkKind,
}

/// The kind of a link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LinkKind {
    /// A physical Ethernet interface (possibly a bond member).
    #[default]
    Ethernet,
    /// An 802.1Q VLAN on `parent`.
    Vlan {
        /// The parent interface's host name.
        parent: String,
        /// The VLAN id (1-4094).
        id: u16,
    },
    /// A bonding master.
    Bond {
        /// The bonding mode name, e.g. `active-backup`, `802.3ad`.
        mode: String,
        /// Link monitoring interval in milliseconds, when set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        miimon: Option<u32>,
        /// The host names of its members.
        slaves: Vec<String>,
    },
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination; absent for the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Cidr>,
    /// The next hop; absent for a route to a directly connected network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The interface's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// The metric (priority), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// Name resolution settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers in order.
    #[serde(default)]
    pub servers: Vec<IpAddr>,
    /// Search domains in order.
    #[serde(default)]
    pub search: Vec<String>,
}

impl NetworkConfig {
    /// Parses the JSON text of `path` and checks the version.
    pub fn from_json(text: &str, path: &Path) -> Result<NetworkConfig, Error> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned = serde_json::from_str(text).map_err(|error| Error::Parse {
            path: path.to_owned(),
            error,
        })?;
        if v.version != VERSION {
            return Err(Error::Version {
                path: path.to_owned(),
                found: v.version,
            });
        }
        serde_json::from_str(text).map_err(|error| Error::Parse {
            path: path.to_owned(),
            error,
        })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<NetworkConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Read {
            path: path.to_owned(),
            error,
        })?;
        NetworkConfig::from_json(&text, path)
    }

    /// Pretty JSON, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The interface of this host name.
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

/// The text of `/etc/resolv.conf` for these settings (at most three servers, as the C
/// library reads, resolv.conf(5)).
pub fn resolv_conf(dns: &Dns) -> String {
    let mut s = String::from("# written by rear-restore\n");
    if !dns.search.is_empty() {
        s.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    for server in dns.servers.iter().take(3) {
        s.push_str(&format!("nameserver {server}\n"));
    }
    s
}

/// A route as `ip route` shows it, for messages.
pub fn route_text(r: &Route) -> String {
    let mut s = r
        .dst
        .map_or_else(|| "default".to_owned(), |d| d.to_string());
    if let Some(g) = r.gateway {
        s.push_str(&format!(" via {g}"));
    }
    if let Some(d) = &r.dev {
        s.push_str(&format!(" dev {d}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_display() {
        let m: Mac = "52:54:00:AB:cd:0f".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!("52-54-00-ab-cd-0f".parse::<Mac>().unwrap(), m);
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:11",
            "5:54:00:ab:cd:0f",
            "zz:54:00:ab:cd:0f",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert!(Mac([0; 6]).is_zero());
    }

    #[test]
    fn cidr_parse_network_broadcast() {
        let c: Cidr = "192.0.2.130/25".parse().unwrap();
        assert_eq!(c.network(), "192.0.2.128".parse::<IpAddr>().unwrap());
        assert_eq!(c.broadcast(), Some("192.0.2.255".parse().unwrap()));
        assert_eq!("10.0.0.1".parse::<Cidr>().unwrap().prefix, 32);
        let v6: Cidr = "2001:db8::5/64".parse().unwrap();
        assert_eq!(v6.network(), "2001:db8::".parse::<IpAddr>().unwrap());
        assert_eq!(v6.broadcast(), None);
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().network().to_string(),
            "0.0.0.0"
        );
    }

    #[test]
    fn mask_prefix_v4_contiguous_only() {
        assert_eq!(mask_prefix_v4("255.255.255.0".parse().unwrap()), Some(24));
        assert_eq!(mask_prefix_v4("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(mask_prefix_v4("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(mask_prefix_v4("255.0.255.0".parse().unwrap()), None);
        assert_eq!(prefix_mask_v4(24), 0xffff_ff00);
        assert_eq!(prefix_mask_v4(0), 0);
        assert_eq!(prefix_mask_v4(32), u32::MAX);
    }

    #[test]
    fn from_json_round_trip_and_kinds() {
        let text = r#"{"version":1,
          "interfaces":[
            {"name":"eno1","mac":"52:54:00:00:00:01","addresses":[]},
            {"name":"bond0","mac":"52:54:00:00:00:01","mtu":9000,"addresses":["192.0.2.2/24"],
             "kind":{"type":"bond","mode":"active-backup","miimon":100,"slaves":["eno1"]}},
            {"name":"bond0.7","addresses":["198.51.100.2/24"],
             "kind":{"type":"vlan","parent":"bond0","id":7}}],
          "routes":[{"gateway":"192.0.2.1","dev":"bond0"},{"dst":"203.0.113.0/24","gateway":"198.51.100.1"}],
          "dns":{"servers":["192.0.2.53"],"search":["example.com"]}}"#;
        let c = NetworkConfig::from_json(text, Path::new("n.json")).unwrap();
        assert_eq!(c.interfaces[0].kind, LinkKind::Ethernet);
        assert!(matches!(c.interfaces[2].kind, LinkKind::Vlan { id: 7, .. }));
        assert_eq!(c.routes[0].dst, None);
        assert_eq!(c.interface("bond0").and_then(|i| i.mtu), Some(9000));
        let again = NetworkConfig::from_json(&c.to_json(), Path::new("n.json")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn from_json_errors_name_the_file() {
        let p = Path::new("/etc/rear/network.json");
        let e = NetworkConfig::from_json("{", p).unwrap_err().to_string();
        assert!(e.starts_with("/etc/rear/network.json: "), "{e}");
        let e = NetworkConfig::from_json(r#"{"version":9}"#, p).unwrap_err();
        assert!(matches!(e, Error::Version { found: 9, .. }));
        let bad_mac = r#"{"version":1,"interfaces":[{"name":"x","mac":"nope"}]}"#;
        let e = NetworkConfig::from_json(bad_mac, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a MAC address"), "{e}");
    }

    #[test]
    fn resolv_conf_three_servers() {
        let dns = Dns {
            servers: ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            search: vec!["a.example".into(), "b.example".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "# written by rear-restore\nsearch a.example b.example\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
        );
    }
}
