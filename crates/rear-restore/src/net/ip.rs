//! The kernel's `ip=` boot option (Documentation/admin-guide/nfs/nfsroot.rst), read by the
//! rescue system instead of the kernel (Debian kernels have no `CONFIG_IP_PNP`):
//!
//! ```text
//! ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//! ip=dhcp | ip=on | ip=any | ip=bootp | ip=both | ip=off | ip=none
//! ```
//!
//! Every field may be empty. A client address with an empty or `off` autoconf field is a
//! static configuration; `dhcp`, `on`, `any`, `bootp` or `both` ask for DHCP (this client
//! speaks DHCP, which answers BOOTP's purpose); `rarp` is not supported. A missing netmask is
//! the class default of the address, as the kernel does; a prefix length (`24`) is accepted
//! too. [`parse`] is pure.

use std::net::Ipv4Addr;

use rear_model::netconf::{Cidr, mask_prefix_v4};

/// A bad `ip=` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ip={value}: {reason}")]
pub struct Error {
    /// The whole value.
    pub value: String,
    /// What is wrong, naming the field.
    pub reason: String,
}

/// What `ip=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpConfig {
    /// `ip=off` / `ip=none`: no network.
    Off,
    /// DHCP on `device`, or on every wired interface.
    Dhcp {
        /// The interface (`<device>` field), if named.
        device: Option<String>,
        /// The `<hostname>` field, if given.
        hostname: Option<String>,
    },
    /// A fixed address.
    Static(StaticIp),
}

/// A static configuration from `ip=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    /// Address and prefix length.
    pub address: Cidr,
    /// The default gateway, if given.
    pub gateway: Option<Ipv4Addr>,
    /// The host name, if given.
    pub hostname: Option<String>,
    /// The interface, if named; otherwise the first wired interface with a link.
    pub device: Option<String>,
    /// Name servers (`<dns0-ip>`, `<dns1-ip>`).
    pub dns: Vec<Ipv4Addr>,
}

/// The autoconf methods that mean DHCP to this client.
const DHCP_WORDS: [&str; 5] = ["dhcp", "on", "any", "bootp", "both"];

/// Parses the value of `ip=`.
pub fn parse(value: &str) -> Result<IpConfig, Error> {
    let err = |reason: String| Error {
        value: value.to_owned(),
        reason,
    };
    if !value.contains(':') {
        return match value {
            "off" | "none" => Ok(IpConfig::Off),
            v if DHCP_WORDS.contains(&v) => Ok(IpConfig::Dhcp {
                device: None,
                hostname: None,
            }),
            "rarp" => Err(err(
                "RARP is not supported; use dhcp or a static address".into()
            )),
            "" => Err(err("empty value".into())),
            v => Err(err(format!(
                "{v:?} is neither an autoconf method (dhcp, on, any, off) nor client-ip:server-ip:gw-ip:netmask:hostname:device:autoconf"
            ))),
        };
    }
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() > 10 {
        return Err(err(format!(
            "{} fields, at most 10 are defined",
            fields.len()
        )));
    }
    let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
    let addr = |i: usize, name: &str| -> Result<Option<Ipv4Addr>, Error> {
        match field(i) {
            "" => Ok(None),
            s => s
                .parse::<Ipv4Addr>()
                .map(Some)
                .map_err(|_| err(format!("{name} {s:?} is not an IPv4 address"))),
        }
    };
    let client = addr(0, "client-ip")?;
    let _server = addr(1, "server-ip")?;
    let gateway = addr(2, "gw-ip")?.filter(|g| !g.is_unspecified());
    let hostname = Some(field(4)).filter(|s| !s.is_empty()).map(str::to_owned);
    let device = Some(field(5)).filter(|s| !s.is_empty()).map(str::to_owned);
    let dns = [addr(7, "dns0-ip")?, addr(8, "dns1-ip")?]
        .into_iter()
        .flatten()
        .collect();
    let _ntp = addr(9, "ntp0-ip")?;
    let autoconf = field(6);
    let dhcp = match autoconf {
        "" => client.is_none(),
        "off" | "none" => false,
        v if DHCP_WORDS.contains(&v) => true,
        "rarp" => return Err(err("autoconf rarp is not supported".into())),
        v => {
            return Err(err(format!(
                "autoconf {v:?} is not one of dhcp, on, any, off, none"
            )));
        }
    };
    if dhcp {
        return Ok(IpConfig::Dhcp { device, hostname });
    }
    let Some(client) = client else {
        return Ok(IpConfig::Off);
    };
    let prefix = match field(3) {
        "" => class_prefix(client),
        s => match s.parse::<u8>() {
            Ok(p) if p <= 32 => p,
            _ => s
                .parse::<Ipv4Addr>()
                .ok()
                .and_then(mask_prefix_v4)
                .ok_or_else(|| err(format!("netmask {s:?} is not a netmask or prefix length")))?,
        },
    };
    let address = Cidr::new(client.into(), prefix)
        .ok_or_else(|| err(format!("prefix length {prefix} is too long")))?;
    Ok(IpConfig::Static(StaticIp {
        address,
        gateway,
        hostname,
        device,
        dns,
    }))
}

/// The classful prefix length of an address (A /8, B /16, C and above /24), which the kernel
/// uses when `ip=` has no netmask.
fn class_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(v: &str) -> StaticIp {
        match parse(v).unwrap() {
            IpConfig::Static(s) => s,
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn parse_keywords() {
        let dhcp = IpConfig::Dhcp {
            device: None,
            hostname: None,
        };
        for w in ["dhcp", "on", "any", "bootp", "both"] {
            assert_eq!(parse(w).unwrap(), dhcp, "{w}");
        }
        assert_eq!(parse("off").unwrap(), IpConfig::Off);
        assert_eq!(parse("none").unwrap(), IpConfig::Off);
        assert!(parse("rarp").unwrap_err().reason.contains("RARP"));
        assert!(parse("").is_err());
        assert!(parse("static").is_err());
    }

    #[test]
    fn parse_full_static() {
        let s = st(
            "192.0.2.10:192.0.2.1:192.0.2.254:255.255.255.0:web1:eth1:off:192.0.2.53:192.0.2.54:192.0.2.123",
        );
        assert_eq!(s.address.to_string(), "192.0.2.10/24");
        assert_eq!(s.gateway, Some(Ipv4Addr::new(192, 0, 2, 254)));
        assert_eq!(s.hostname.as_deref(), Some("web1"));
        assert_eq!(s.device.as_deref(), Some("eth1"));
        assert_eq!(
            s.dns,
            vec![Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)]
        );
    }

    #[test]
    fn parse_short_static_uses_class_mask() {
        let s = st("10.1.2.3::10.0.0.1");
        assert_eq!(s.address.to_string(), "10.1.2.3/8");
        assert_eq!(s.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(s.device, None);
        // Without a colon a bare address is no form of ip=.
        assert!(parse("172.16.0.5").is_err());
    }

    #[test]
    fn parse_prefix_length_and_zero_gateway() {
        let s = st("172.16.0.5::0.0.0.0:20::::");
        assert_eq!(s.address.to_string(), "172.16.0.5/20");
        assert_eq!(s.gateway, None);
        assert_eq!(st("172.16.0.5:::::").address.prefix, 16);
    }

    #[test]
    fn parse_dhcp_forms() {
        assert_eq!(
            parse(":::::eth0:dhcp").unwrap(),
            IpConfig::Dhcp {
                device: Some("eth0".into()),
                hostname: None
            }
        );
        // No client address and no autoconf: autoconfiguration, as the kernel does.
        assert_eq!(
            parse("::::rescue1:eth2:").unwrap(),
            IpConfig::Dhcp {
                device: Some("eth2".into()),
                hostname: Some("rescue1".into())
            }
        );
        assert_eq!(parse(":::::eth0:off").unwrap(), IpConfig::Off);
        // A client address with autoconf dhcp asks for DHCP.
        assert!(matches!(
            parse("10.0.0.2::::::dhcp").unwrap(),
            IpConfig::Dhcp { .. }
        ));
    }

    #[test]
    fn parse_errors_name_the_field() {
        let e = parse("10.0.0.300::10.0.0.1:255.255.255.0::eth0:off").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip=10.0.0.300::10.0.0.1:255.255.255.0::eth0:off: client-ip \"10.0.0.300\" is not an IPv4 address"
        );
        assert!(
            parse("10.0.0.2:::255.0.255.0")
                .unwrap_err()
                .reason
                .contains("netmask")
        );
        assert!(
            parse("10.0.0.2:::33")
                .unwrap_err()
                .reason
                .contains("netmask")
        );
        assert!(
            parse("10.0.0.2::::::static")
                .unwrap_err()
                .reason
                .contains("autoconf")
        );
        assert!(parse("10.0.0.2::::::rarp").is_err());
        assert!(
            parse("1:2:3:4:5:6:7:8:9:10:11")
                .unwrap_err()
                .reason
                .contains("fields")
        );
        assert!(
            parse("::::::off:dns")
                .unwrap_err()
                .reason
                .contains("dns0-ip")
        );
    }
}
