//! Carries out the network configuration at boot (a thread of PID 1, so the rescue system is
//! ready before the network is).
//!
//! Order of precedence: `rear.net=none` (nothing), then `ip=` on the command line (static or
//! DHCP), then `rear.net=dhcp` (DHCP on every wired interface), then the saved
//! `/etc/rear/network.json` matched by MAC ([`super::plan`]). A missing or malformed file,
//! or one that matches no interface here, is reported and DHCP on every wired interface
//! takes over. Each step's failure is one line on the console; nothing here panics or stops
//! the boot. DHCP leases are renewed by a thread each for as long as the rescue system runs.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dhcp::{self, Lease};
use super::ip::{IpConfig, StaticIp};
use super::netlink::{self, LinkChange, Proto, RouteSpec, Socket};
use super::plan::{self, Present, Step};
use rear_model::netconf::route_text;
use rear_model::netconf::{Cidr, Dns, Mac, NetworkConfig, resolv_conf};
use rear_model::rescue::Net;

/// How long to wait for the interfaces to appear and for a link.
pub const LINK_WAIT: Duration = Duration::from_secs(5);
/// How long to wait for saved interfaces when none of them has appeared but other wired
/// ones have (the NIC drivers are loaded before the network thread starts).
pub const FOREIGN_WAIT: Duration = Duration::from_secs(1);
/// The state of the network thread, for the banner: `configuring`, then `done`.
pub const STATE_FILE: &str = "/run/rear/network.state";
/// How long DHCP may take on one interface.
pub const DHCP_TIMEOUT: Duration = Duration::from_secs(20);

/// A message sink (the console), shared with the lease renewal threads.
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// What to configure and where the files are.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `rear.net=` (or the image's default).
    pub mode: Net,
    /// `ip=`, when given and valid.
    pub ip: Option<IpConfig>,
    /// The saved configuration, [`rear_model::netconf::PATH`].
    pub config: PathBuf,
    /// `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// `/sys/class/net`.
    pub sys_class_net: PathBuf,
    /// `/lib/modules/<release>`, for bonding and 8021q.
    pub modules_dir: PathBuf,
    /// The host name to send to the DHCP server.
    pub hostname: Option<String>,
}

/// What was configured: one entry per interface with an address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// (interface, address, how) in order, e.g. `("eth0", 10.0.2.15/24, "dhcp")`.
    pub addresses: Vec<(String, Cidr, &'static str)>,
}

/// Configures the network as [`Settings`] say, printing what it does through `say`.
pub fn run(s: &Settings, say: Say) -> Outcome {
    set_state("configuring");
    let out = configure(s, &say);
    set_state("done");
    out
}

/// Records the thread's progress in [`STATE_FILE`] (best effort).
fn set_state(state: &str) {
    let path = Path::new(STATE_FILE);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(path, format!("{state}\n"));
}

/// Whether the network thread has finished ([`STATE_FILE`] says `done`, or is missing, as
/// when the network is off).
pub fn finished() -> bool {
    std::fs::read_to_string(STATE_FILE).map_or(true, |s| s.trim() == "done")
}

fn configure(s: &Settings, say: &Say) -> Outcome {
    let mut out = Outcome::default();
    if s.mode == Net::None || s.ip == Some(IpConfig::Off) {
        say("rear: network: off (rear.net=none or ip=off)");
        return out;
    }
    let mut nl = match Socket::open() {
        Ok(n) => n,
        Err(e) => {
            say(&format!("rear: network: netlink socket: {e}"));
            return out;
        }
    };
    if let Some(lo) = super::ifindex(&s.sys_class_net, "lo") {
        let _ = nl.request(netlink::set_link(lo, up()));
    }
    let mut dns = Dns::default();
    match &s.ip {
        Some(IpConfig::Static(st)) => {
            let present = wait_links(&s.sys_class_net, |p, _| p.iter().any(|l| l.wired));
            static_ip(s, &mut nl, &present, st, &mut out, &**say);
            dns.servers = st.dns.iter().map(|&d| IpAddr::V4(d)).collect();
        }
        Some(IpConfig::Dhcp { device, hostname }) => {
            let present = wait_links(&s.sys_class_net, |p, _| p.iter().any(|l| l.wired));
            let devs: Vec<Present> = plan::dhcp_candidates(&present)
                .into_iter()
                .filter(|p| device.as_ref().is_none_or(|d| *d == p.name))
                .cloned()
                .collect();
            if devs.is_empty() {
                say(&format!(
                    "rear: network: ip=: no wired interface{}",
                    device.as_ref().map(|d| format!(" {d}")).unwrap_or_default()
                ));
            }
            let host = hostname.clone().or(s.hostname.clone());
            dhcp_all(s, &mut nl, &devs, host.as_deref(), &mut out, &mut dns, say);
        }
        Some(IpConfig::Off) => {}
        None if s.mode == Net::Dhcp => {
            let present = wait_links(&s.sys_class_net, |p, _| p.iter().any(|l| l.wired));
            let devs: Vec<Present> = plan::dhcp_candidates(&present)
                .into_iter()
                .cloned()
                .collect();
            dhcp_all(
                s,
                &mut nl,
                &devs,
                s.hostname.as_deref(),
                &mut out,
                &mut dns,
                say,
            );
        }
        None => saved(s, &mut nl, &mut out, &mut dns, say),
    }
    if (!dns.servers.is_empty() || !dns.search.is_empty())
        && let Err(e) = std::fs::write(&s.resolv_conf, resolv_conf(&dns))
    {
        say(&format!(
            "rear: network: writing {}: {e}",
            s.resolv_conf.display()
        ));
    }
    if out.addresses.is_empty() {
        say(
            "rear: network: no address configured (see `ip addr`; `rear-restore` reads rear.net= and ip=)",
        );
    } else {
        let list: Vec<String> = out
            .addresses
            .iter()
            .map(|(d, a, how)| format!("{d} {a} ({how})"))
            .collect();
        say(&format!("rear: network ready: {}", list.join(", ")));
    }
    out
}

fn up() -> LinkChange {
    LinkChange {
        up: Some(true),
        ..LinkChange::default()
    }
}

/// Waits up to [`LINK_WAIT`] for `enough` (given the interfaces present and the time
/// waited) to hold.
fn wait_links(dir: &Path, enough: impl Fn(&[Present], Duration) -> bool) -> Vec<Present> {
    let start = Instant::now();
    loop {
        let present = super::present_links(dir);
        let waited = start.elapsed();
        if enough(&present, waited) || waited >= LINK_WAIT {
            return present;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Brings `dev` up and waits up to [`LINK_WAIT`] for a carrier; false without one.
fn link_up(s: &Settings, nl: &mut Socket, dev: &str, mtu: Option<u32>) -> Result<bool, String> {
    let index =
        super::ifindex(&s.sys_class_net, dev).ok_or_else(|| format!("{dev}: no such interface"))?;
    nl.request(netlink::set_link(
        index,
        LinkChange {
            up: Some(true),
            mtu,
            master: None,
        },
    ))
    .map_err(|e| format!("{dev}: setting it up: {e}"))?;
    let end = Instant::now() + LINK_WAIT;
    while Instant::now() < end {
        if super::has_carrier(&s.sys_class_net, dev) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(false)
}

fn add_addr(s: &Settings, nl: &mut Socket, dev: &str, addr: Cidr) -> Result<(), String> {
    let index =
        super::ifindex(&s.sys_class_net, dev).ok_or_else(|| format!("{dev}: no such interface"))?;
    nl.request(netlink::new_addr(index, addr))
        .map_err(|e| format!("{dev}: adding {addr}: {e}"))
}

fn add_route(
    s: &Settings,
    nl: &mut Socket,
    dev: Option<&str>,
    spec: RouteSpec,
) -> Result<(), String> {
    let oif = match dev {
        Some(d) => Some(
            super::ifindex(&s.sys_class_net, d).ok_or_else(|| format!("{d}: no such interface"))?,
        ),
        None => None,
    };
    nl.request(netlink::new_route(&RouteSpec { oif, ..spec }))
        .map_err(|e| format!("route {}: {e}", spec_text(&spec, dev)))
}

fn spec_text(r: &RouteSpec, dev: Option<&str>) -> String {
    route_text(&rear_model::netconf::Route {
        dst: r.dst,
        gateway: r.gateway,
        dev: dev.map(str::to_owned),
        metric: r.metric,
    })
}

/// `ip=client::gw:mask:host:dev:off`.
fn static_ip(
    s: &Settings,
    nl: &mut Socket,
    present: &[Present],
    st: &StaticIp,
    out: &mut Outcome,
    say: &dyn Fn(&str),
) {
    let dev = match &st.device {
        Some(d) => d.clone(),
        None => {
            // The first wired interface with a link, as the kernel's ipconfig picks.
            let wired = plan::dhcp_candidates(present);
            let mut pick = None;
            for p in &wired {
                if link_up(s, nl, &p.name, None).unwrap_or(false) {
                    pick = Some(p.name.clone());
                    break;
                }
            }
            match pick.or_else(|| wired.first().map(|p| p.name.clone())) {
                Some(d) => d,
                None => {
                    say("rear: network: ip=: no wired interface");
                    return;
                }
            }
        }
    };
    if let Some(h) = &st.hostname
        && let Err(e) = nix::unistd::sethostname(h)
    {
        say(&format!("rear: network: ip=: setting hostname {h}: {e}"));
    }
    let r = link_up(s, nl, &dev, None).and_then(|_| add_addr(s, nl, &dev, st.address));
    if let Err(e) = r {
        say(&format!("rear: network: {e}"));
        return;
    }
    out.addresses.push((dev.clone(), st.address, "ip="));
    if let Some(gw) = st.gateway {
        let spec = RouteSpec {
            dst: None,
            gateway: Some(IpAddr::V4(gw)),
            oif: None,
            metric: None,
            proto: Proto::Static,
            family_v6: false,
        };
        if let Err(e) = add_route(s, nl, Some(&dev), spec) {
            say(&format!("rear: network: {e}"));
        }
    }
}

/// The saved configuration, or DHCP everywhere when it does not apply.
fn saved(s: &Settings, nl: &mut Socket, out: &mut Outcome, dns: &mut Dns, say: &Say) {
    let config = match NetworkConfig::load(&s.config) {
        Ok(c) => c,
        Err(rear_model::netconf::Error::Read { error, .. })
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            say("rear: network: no saved configuration in the image; trying DHCP");
            return dhcp_everywhere(s, nl, out, dns, say);
        }
        Err(e) => {
            say(&format!("rear: network: {e}; trying DHCP"));
            return dhcp_everywhere(s, nl, out, dns, say);
        }
    };
    let macs: Vec<Mac> = config.interfaces.iter().filter_map(|i| i.mac).collect();
    let present = wait_links(&s.sys_class_net, |p, waited| {
        saved_links_ready(&macs, p, waited)
    });
    let plan = plan::plan(&config, &present);
    for line in &plan.skipped {
        say(&format!("rear: network: saved {line}"));
    }
    if !plan.matched {
        say("rear: network: no saved interface is on this machine; trying DHCP");
        return dhcp_everywhere(s, nl, out, dns, say);
    }
    *dns = plan.dns.clone();
    for step in &plan.steps {
        if let Err(e) = execute(s, nl, step, out, dns, say) {
            say(&format!("rear: network: {e}"));
        }
    }
}

/// Whether to stop waiting for the saved interfaces: all are here; or, after
/// [`FOREIGN_WAIT`], none is but wired interfaces are (other hardware: DHCP, do not wait
/// [`LINK_WAIT`] for MACs that will never come). Pure.
pub fn saved_links_ready(macs: &[Mac], present: &[Present], waited: Duration) -> bool {
    let here = |m: &Mac| present.iter().any(|l| l.mac == *m);
    if macs.iter().all(here) {
        return true;
    }
    waited >= FOREIGN_WAIT && !macs.iter().any(here) && present.iter().any(|l| l.wired)
}

fn dhcp_everywhere(s: &Settings, nl: &mut Socket, out: &mut Outcome, dns: &mut Dns, say: &Say) {
    let present = wait_links(&s.sys_class_net, |p, _| p.iter().any(|l| l.wired));
    let devs: Vec<Present> = plan::dhcp_candidates(&present)
        .into_iter()
        .cloned()
        .collect();
    if devs.is_empty() {
        say("rear: network: no wired interface found");
    }
    dhcp_all(s, nl, &devs, s.hostname.as_deref(), out, dns, say);
}

/// Runs one planned step.
fn execute(
    s: &Settings,
    nl: &mut Socket,
    step: &Step,
    out: &mut Outcome,
    dns: &mut Dns,
    say: &Say,
) -> Result<(), String> {
    let index = |d: &str| {
        super::ifindex(&s.sys_class_net, d).ok_or_else(|| format!("{d}: no such interface"))
    };
    match step {
        Step::CreateBond { name, mode, miimon } => {
            load_module(s, "bonding", say);
            let m = netlink::bond_mode(mode)
                .ok_or_else(|| format!("{name}: unknown bonding mode {mode}"))?;
            nl.request(netlink::new_bond(name, m, *miimon))
                .map_err(|e| format!("{name}: creating the bond: {e}"))
        }
        Step::Enslave { slave, master } => {
            let (si, mi) = (index(slave)?, index(master)?);
            let down = LinkChange {
                up: Some(false),
                ..LinkChange::default()
            };
            nl.request(netlink::set_link(si, down))
                .and_then(|_| {
                    nl.request(netlink::set_link(
                        si,
                        LinkChange {
                            master: Some(mi),
                            ..LinkChange::default()
                        },
                    ))
                })
                .map_err(|e| format!("{slave}: adding it to {master}: {e}"))
        }
        Step::CreateVlan { name, parent, id } => {
            load_module(s, "8021q", say);
            let p = index(parent)?;
            nl.request(netlink::new_vlan(name, p, *id))
                .map_err(|e| format!("{name}: creating VLAN {id} on {parent}: {e}"))
        }
        Step::Up { dev, mtu } => link_up(s, nl, dev, *mtu).map(|_| ()),
        Step::Address { dev, addr } => {
            add_addr(s, nl, dev, *addr)?;
            out.addresses.push((dev.clone(), *addr, "saved"));
            Ok(())
        }
        Step::Dhcp { dev, fallback } => {
            let devs: Vec<Present> = super::present_links(&s.sys_class_net)
                .into_iter()
                .filter(|p| p.name == *dev)
                .collect();
            let before = out.addresses.len();
            dhcp_all(s, nl, &devs, s.hostname.as_deref(), out, dns, say);
            if out.addresses.len() == before && !fallback.is_empty() {
                say(&format!(
                    "rear: network: {dev}: no DHCP lease; using the host's last addresses"
                ));
                for a in fallback {
                    add_addr(s, nl, dev, *a)?;
                    out.addresses.push((dev.clone(), *a, "saved"));
                }
            }
            Ok(())
        }
        Step::Route { dev, route } => add_route(
            s,
            nl,
            dev.as_deref(),
            RouteSpec {
                dst: route.dst,
                gateway: route.gateway,
                oif: None,
                metric: route.metric,
                proto: Proto::Static,
                family_v6: false,
            },
        ),
    }
}

fn load_module(s: &Settings, name: &str, say: &Say) {
    let report = rear_sys::kmod::load::load(&s.modules_dir, &[name]);
    for (m, why) in report.failed {
        say(&format!("rear: network: module {m}: {why}"));
    }
}

/// DHCP on `devs` in parallel; applies each lease and starts its renewal.
fn dhcp_all(
    s: &Settings,
    nl: &mut Socket,
    devs: &[Present],
    hostname: Option<&str>,
    out: &mut Outcome,
    dns: &mut Dns,
    say: &Say,
) {
    let mut ready = Vec::new();
    for d in devs {
        match link_up(s, nl, &d.name, None) {
            Ok(true) => ready.push(d.clone()),
            Ok(false) => say(&format!(
                "rear: network: {}: no link, not trying DHCP",
                d.name
            )),
            Err(e) => say(&format!("rear: network: {e}")),
        }
    }
    let results: Vec<(Present, Result<Lease, dhcp::Error>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ready
            .iter()
            .map(|d| {
                scope.spawn(move || {
                    (
                        d.clone(),
                        dhcp::obtain(&d.name, d.mac, hostname, DHCP_TIMEOUT),
                    )
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (d, r) in results {
        match r {
            Ok(lease) => {
                if let Err(e) = apply_lease(s, nl, &lease) {
                    say(&format!("rear: network: {e}"));
                    continue;
                }
                let addr = Cidr {
                    addr: IpAddr::V4(lease.address),
                    prefix: lease.prefix,
                };
                say(&format!(
                    "rear: network: {} {addr} by DHCP from {}{}{}",
                    d.name,
                    lease
                        .server
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "?".into()),
                    lease
                        .router
                        .map(|r| format!(", router {r}"))
                        .unwrap_or_default(),
                    if lease.dns.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", DNS {}",
                            lease
                                .dns
                                .iter()
                                .map(Ipv4Addr::to_string)
                                .collect::<Vec<_>>()
                                .join(" ")
                        )
                    }
                ));
                out.addresses.push((d.name.clone(), addr, "dhcp"));
                for server in &lease.dns {
                    let a = IpAddr::V4(*server);
                    if !dns.servers.contains(&a) {
                        dns.servers.push(a);
                    }
                }
                for dom in &lease.search {
                    if !dns.search.contains(dom) {
                        dns.search.push(dom.clone());
                    }
                }
                spawn_renewal(s.clone(), lease, d.mac, say.clone());
            }
            Err(e) => say(&format!("rear: network: {e}")),
        }
    }
}

/// Puts a lease on its interface: MTU, address, default route (metric 1024 + index, so
/// several leases can each have one).
fn apply_lease(s: &Settings, nl: &mut Socket, lease: &Lease) -> Result<(), String> {
    let dev = lease.ifname.as_str();
    let index =
        super::ifindex(&s.sys_class_net, dev).ok_or_else(|| format!("{dev}: no such interface"))?;
    if let Some(mtu) = lease.mtu {
        let _ = nl.request(netlink::set_link(
            index,
            LinkChange {
                mtu: Some(u32::from(mtu)),
                ..LinkChange::default()
            },
        ));
    }
    let addr = Cidr {
        addr: IpAddr::V4(lease.address),
        prefix: lease.prefix,
    };
    add_addr(s, nl, dev, addr)?;
    if let Some(router) = lease.router {
        add_route(
            s,
            nl,
            Some(dev),
            RouteSpec {
                dst: None,
                gateway: Some(IpAddr::V4(router)),
                oif: None,
                metric: Some(1024 + index),
                proto: Proto::Dhcp,
                family_v6: false,
            },
        )?;
    }
    Ok(())
}

/// Renews `lease` at its T1 for as long as the system runs; a failure retries after a
/// minute (the address stays: the rescue system has no other).
fn spawn_renewal(s: Settings, lease: Lease, mac: Mac, say: Say) {
    let Some(first) = lease.renew_secs else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name(format!("dhcp-{}", lease.ifname))
        .spawn(move || {
            let mut lease = lease;
            let mut wait = Duration::from_secs(u64::from(first.max(30)));
            loop {
                std::thread::sleep(wait);
                match dhcp::renew(&lease, mac, Duration::from_secs(30)) {
                    Ok(new) => {
                        if let Ok(mut nl) = Socket::open()
                            && let Err(e) = apply_lease(&s, &mut nl, &new)
                        {
                            say(&format!("rear: network: renewing: {e}"));
                        }
                        wait =
                            Duration::from_secs(u64::from(new.renew_secs.unwrap_or(3600).max(30)));
                        lease = new;
                    }
                    Err(e) => {
                        say(&format!("rear: network: renewing the lease: {e}"));
                        wait = Duration::from_secs(60);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        log::debug!("no renewal thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(last: u8, wired: bool) -> Present {
        Present {
            name: format!("eth{last}"),
            mac: Mac([0x52, 0x54, 0, 0, 0, last]),
            wired,
        }
    }

    #[test]
    fn saved_links_ready_cases() {
        let macs = [link(1, true).mac, link(2, true).mac];
        let short = Duration::from_millis(100);
        let long = FOREIGN_WAIT;
        // All saved interfaces present: go.
        assert!(saved_links_ready(
            &macs,
            &[link(1, true), link(2, true)],
            short
        ));
        // Some present: keep waiting for the rest (until LINK_WAIT).
        assert!(!saved_links_ready(&macs, &[link(1, true)], long));
        // None present, other wired ones are: go after FOREIGN_WAIT.
        assert!(!saved_links_ready(&macs, &[link(7, true)], short));
        assert!(saved_links_ready(&macs, &[link(7, true)], long));
        // Nothing wired yet: keep waiting.
        assert!(!saved_links_ready(&macs, &[link(7, false)], long));
        assert!(saved_links_ready(&[], &[], short));
    }
}
