//! The network-config matcher: saved configuration + the interfaces of the machine the
//! rescue system runs on -> an ordered list of [`Step`]s. Pure; [`super::apply`] executes it.
//!
//! Interfaces are found by their hardware address (the kernel's names differ between the
//! installed system, which udev renames, and the rescue system, which keeps `eth0`...).
//! A saved physical interface whose MAC is not present is reported and skipped, and so is
//! everything built on it: a VLAN on it, a bond with none of its members, routes through
//! it. When no saved physical interface matches, [`Plan::matched`] is false and the caller
//! falls back to DHCP on every wired interface.

use std::collections::BTreeMap;

use rear_model::netconf::{Cidr, Dns, LinkKind, Mac, NetworkConfig, Route, route_text};

/// An interface of the running machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Its kernel name.
    pub name: String,
    /// Its permanent hardware address.
    pub mac: Mac,
    /// Whether it is a wired Ethernet device (not wireless, loopback or virtual).
    pub wired: bool,
}

/// One configuration action; interface names are the rescue system's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create a bonding master.
    CreateBond {
        /// Its name.
        name: String,
        /// Mode name.
        mode: String,
        /// Link monitoring interval.
        miimon: Option<u32>,
    },
    /// Put `slave` (down first) into bond `master`.
    Enslave {
        /// The member.
        slave: String,
        /// The bond.
        master: String,
    },
    /// Create VLAN `name` with `id` on `parent`.
    CreateVlan {
        /// Its name.
        name: String,
        /// The parent link.
        parent: String,
        /// The VLAN id.
        id: u16,
    },
    /// Set the MTU (if any) and bring the link up.
    Up {
        /// The link.
        dev: String,
        /// The MTU.
        mtu: Option<u32>,
    },
    /// Add an address.
    Address {
        /// The link.
        dev: String,
        /// The address.
        addr: Cidr,
    },
    /// Run DHCP; on failure apply `fallback` statically.
    Dhcp {
        /// The link.
        dev: String,
        /// The addresses the host had, used when no server answers.
        fallback: Vec<Cidr>,
    },
    /// Add a route.
    Route {
        /// The link, if the saved route named one that is configured.
        dev: Option<String>,
        /// The route (its `dev` is the host name; use the step's `dev`).
        route: Route,
    },
}

/// The outcome of matching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// What to do, in order: links, then addresses, then routes.
    pub steps: Vec<Step>,
    /// Saved host name -> rescue name, for every configured interface.
    pub names: BTreeMap<String, String>,
    /// One line per saved interface or route that is skipped, and why.
    pub skipped: Vec<String>,
    /// Whether at least one saved physical interface was found.
    pub matched: bool,
    /// Name resolution to write.
    pub dns: Dns,
}

/// Matches `config` against the interfaces `present` and plans the configuration.
pub fn plan(config: &NetworkConfig, present: &[Present]) -> Plan {
    let mut p = Plan {
        dns: config.dns.clone(),
        ..Plan::default()
    };
    let mut used: Vec<&str> = Vec::new();
    // Physical interfaces by MAC.
    for i in config
        .interfaces
        .iter()
        .filter(|i| i.kind == LinkKind::Ethernet)
    {
        let found = i.mac.and_then(|mac| {
            present
                .iter()
                .find(|d| d.mac == mac && !used.contains(&d.name.as_str()))
        });
        match (found, i.mac) {
            (Some(d), _) => {
                used.push(&d.name);
                p.names.insert(i.name.clone(), d.name.clone());
                p.matched = true;
            }
            (None, Some(mac)) => p
                .skipped
                .push(format!("{}: no interface with MAC {mac} here", i.name)),
            (None, None) => p.skipped.push(format!("{}: saved without a MAC", i.name)),
        }
    }
    // Bonds: created when at least one member is here.
    for i in &config.interfaces {
        let LinkKind::Bond {
            mode,
            miimon,
            slaves,
        } = &i.kind
        else {
            continue;
        };
        let members: Vec<String> = slaves
            .iter()
            .filter_map(|s| p.names.get(s).cloned())
            .collect();
        if members.is_empty() {
            p.skipped.push(format!(
                "{}: none of its members ({}) is here",
                i.name,
                slaves.join(", ")
            ));
            continue;
        }
        p.steps.push(Step::CreateBond {
            name: i.name.clone(),
            mode: mode.clone(),
            miimon: *miimon,
        });
        for m in members {
            p.steps.push(Step::Enslave {
                slave: m,
                master: i.name.clone(),
            });
        }
        p.names.insert(i.name.clone(), i.name.clone());
    }
    // VLANs: on a parent that is configured; in saved order, so a VLAN on a bond works.
    for i in &config.interfaces {
        let LinkKind::Vlan { parent, id } = &i.kind else {
            continue;
        };
        match p.names.get(parent).cloned() {
            Some(parent) => {
                p.steps.push(Step::CreateVlan {
                    name: i.name.clone(),
                    parent,
                    id: *id,
                });
                p.names.insert(i.name.clone(), i.name.clone());
            }
            None => p
                .skipped
                .push(format!("{}: its parent {parent} is not here", i.name)),
        }
    }
    // Bond members carry no configuration of their own.
    let slaves: Vec<&str> = config
        .interfaces
        .iter()
        .filter_map(|i| match &i.kind {
            LinkKind::Bond { slaves, .. } => Some(slaves.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    for i in &config.interfaces {
        let Some(dev) = p.names.get(&i.name).cloned() else {
            continue;
        };
        if slaves.contains(&i.name.as_str()) {
            continue;
        }
        p.steps.push(Step::Up {
            dev: dev.clone(),
            mtu: i.mtu,
        });
        if i.dhcp {
            p.steps.push(Step::Dhcp {
                dev,
                fallback: i.addresses.clone(),
            });
        } else {
            for a in &i.addresses {
                p.steps.push(Step::Address {
                    dev: dev.clone(),
                    addr: *a,
                });
            }
        }
    }
    // Routes through configured interfaces; those of DHCP interfaces come from the lease.
    for r in &config.routes {
        let dev = match &r.dev {
            Some(d) => match p.names.get(d) {
                Some(n) => Some(n.clone()),
                None => {
                    p.skipped.push(format!(
                        "route {}: interface {d} is not here",
                        route_text(r)
                    ));
                    continue;
                }
            },
            None => None,
        };
        let dhcp_dev = r
            .dev
            .as_ref()
            .and_then(|d| config.interface(d))
            .is_some_and(|i| i.dhcp);
        if dhcp_dev && r.dst.is_none() {
            continue;
        }
        p.steps.push(Step::Route {
            dev,
            route: r.clone(),
        });
    }
    p
}

/// The wired interfaces to run DHCP on when the saved configuration does not apply, in name
/// order.
pub fn dhcp_candidates(present: &[Present]) -> Vec<&Present> {
    let mut v: Vec<&Present> = present.iter().filter(|p| p.wired).collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::netconf::Interface;

    fn mac(last: u8) -> Mac {
        Mac([0x52, 0x54, 0, 0, 0, last])
    }

    fn eth(name: &str, last: u8, addrs: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            mac: Some(mac(last)),
            mtu: None,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            dhcp: false,
            kind: LinkKind::Ethernet,
        }
    }

    fn here(name: &str, last: u8) -> Present {
        Present {
            name: name.into(),
            mac: mac(last),
            wired: true,
        }
    }

    fn route(dst: Option<&str>, gw: &str, dev: &str) -> Route {
        Route {
            dst: dst.map(|d| d.parse().unwrap()),
            gateway: Some(gw.parse().unwrap()),
            dev: Some(dev.into()),
            metric: None,
        }
    }

    #[test]
    fn plan_matches_by_mac_not_name() {
        let config = NetworkConfig {
            interfaces: vec![eth("enp1s0", 1, &["192.0.2.2/24"]), eth("enp2s0", 2, &[])],
            routes: vec![route(None, "192.0.2.1", "enp1s0")],
            ..NetworkConfig::default()
        };
        let p = plan(&config, &[here("eth0", 2), here("eth1", 1)]);
        assert!(p.matched);
        assert_eq!(p.names.get("enp1s0").map(String::as_str), Some("eth1"));
        assert_eq!(
            p.steps,
            vec![
                Step::Up {
                    dev: "eth1".into(),
                    mtu: None
                },
                Step::Address {
                    dev: "eth1".into(),
                    addr: "192.0.2.2/24".parse().unwrap()
                },
                Step::Up {
                    dev: "eth0".into(),
                    mtu: None
                },
                Step::Route {
                    dev: Some("eth1".into()),
                    route: route(None, "192.0.2.1", "enp1s0")
                },
            ]
        );
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn plan_no_match_reports_and_is_unmatched() {
        let config = NetworkConfig {
            interfaces: vec![eth("eno1", 9, &["192.0.2.2/24"])],
            routes: vec![route(None, "192.0.2.1", "eno1")],
            ..NetworkConfig::default()
        };
        let p = plan(&config, &[here("eth0", 1)]);
        assert!(!p.matched);
        assert!(p.steps.is_empty());
        assert_eq!(
            p.skipped,
            vec![
                "eno1: no interface with MAC 52:54:00:00:00:09 here".to_owned(),
                "route default via 192.0.2.1 dev eno1: interface eno1 is not here".to_owned(),
            ]
        );
    }

    #[test]
    fn plan_bond_with_vlan_and_missing_member() {
        let mut bond = eth("bond0", 1, &["192.0.2.2/24"]);
        bond.mtu = Some(9000);
        bond.kind = LinkKind::Bond {
            mode: "active-backup".into(),
            miimon: Some(100),
            slaves: vec!["eno1".into(), "eno2".into()],
        };
        let vlan = Interface {
            name: "bond0.7".into(),
            mac: None,
            mtu: None,
            addresses: vec!["198.51.100.2/24".parse().unwrap()],
            dhcp: false,
            kind: LinkKind::Vlan {
                parent: "bond0".into(),
                id: 7,
            },
        };
        let config = NetworkConfig {
            interfaces: vec![eth("eno1", 1, &[]), eth("eno2", 2, &[]), bond, vlan],
            ..NetworkConfig::default()
        };
        let p = plan(&config, &[here("eth0", 1)]);
        assert!(p.matched);
        assert_eq!(
            p.skipped,
            vec!["eno2: no interface with MAC 52:54:00:00:00:02 here"]
        );
        let kinds: Vec<String> = p
            .steps
            .iter()
            .map(|s| match s {
                Step::CreateBond { name, .. } => format!("bond {name}"),
                Step::Enslave { slave, master } => format!("enslave {slave} {master}"),
                Step::CreateVlan { name, parent, id } => format!("vlan {name} {parent} {id}"),
                Step::Up { dev, mtu } => format!("up {dev} {mtu:?}"),
                Step::Address { dev, addr } => format!("addr {dev} {addr}"),
                Step::Dhcp { dev, .. } => format!("dhcp {dev}"),
                Step::Route { dev, .. } => format!("route {dev:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "bond bond0",
                "enslave eth0 bond0",
                "vlan bond0.7 bond0 7",
                "up bond0 Some(9000)",
                "addr bond0 192.0.2.2/24",
                "up bond0.7 None",
                "addr bond0.7 198.51.100.2/24",
            ]
        );
    }

    #[test]
    fn plan_vlan_on_missing_parent_and_bond_without_members() {
        let config = NetworkConfig {
            interfaces: vec![
                Interface {
                    name: "bond1".into(),
                    mac: None,
                    mtu: None,
                    addresses: vec![],
                    dhcp: false,
                    kind: LinkKind::Bond {
                        mode: "802.3ad".into(),
                        miimon: None,
                        slaves: vec!["eno5".into()],
                    },
                },
                Interface {
                    name: "vlan9".into(),
                    mac: None,
                    mtu: None,
                    addresses: vec![],
                    dhcp: false,
                    kind: LinkKind::Vlan {
                        parent: "bond1".into(),
                        id: 9,
                    },
                },
            ],
            ..NetworkConfig::default()
        };
        let p = plan(&config, &[here("eth0", 1)]);
        assert!(!p.matched);
        assert_eq!(
            p.skipped,
            vec![
                "bond1: none of its members (eno5) is here",
                "vlan9: its parent bond1 is not here"
            ]
        );
    }

    #[test]
    fn plan_dhcp_interface_keeps_fallback_and_skips_default_route() {
        let mut i = eth("ens3", 1, &["10.0.2.15/24"]);
        i.dhcp = true;
        let config = NetworkConfig {
            interfaces: vec![i],
            routes: vec![
                route(None, "10.0.2.2", "ens3"),
                route(Some("172.16.0.0/12"), "10.0.2.1", "ens3"),
            ],
            ..NetworkConfig::default()
        };
        let p = plan(&config, &[here("eth0", 1)]);
        assert_eq!(
            p.steps[1],
            Step::Dhcp {
                dev: "eth0".into(),
                fallback: vec!["10.0.2.15/24".parse().unwrap()]
            }
        );
        assert_eq!(p.steps.len(), 3, "{:?}", p.steps);
        assert!(matches!(&p.steps[2], Step::Route { route, .. } if route.dst.is_some()));
    }

    #[test]
    fn plan_same_mac_twice_takes_distinct_devices() {
        let config = NetworkConfig {
            interfaces: vec![eth("a", 1, &[]), eth("b", 1, &[])],
            ..NetworkConfig::default()
        };
        let p = plan(&config, &[here("eth0", 1)]);
        assert_eq!(p.names.len(), 1);
        assert_eq!(p.skipped.len(), 1);
    }

    #[test]
    fn dhcp_candidates_wired_sorted() {
        let mut wifi = here("wlan0", 3);
        wifi.wired = false;
        let present = [here("eth1", 1), wifi, here("eth0", 2)];
        let names: Vec<&str> = dhcp_candidates(&present)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, vec!["eth0", "eth1"]);
    }
}
