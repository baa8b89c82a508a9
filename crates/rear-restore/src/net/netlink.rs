//! rtnetlink, by hand: the few requests the rescue system needs to configure interfaces
//! (rtnetlink(7), netlink(7); `include/uapi/linux/{netlink,rtnetlink,if_link,if_addr}.h`).
//!
//! Building and parsing are pure functions on byte vectors (tested below); [`Socket`] sends a
//! request and waits for the kernel's acknowledgement, or collects a dump. No async runtime,
//! no external crate: a message is a 16-byte `nlmsghdr`, a fixed family header and
//! 4-byte-aligned `rtattr` attributes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, sockopt};
use nix::sys::time::TimeVal;

use rear_model::netconf::Cidr;

// Message types (rtnetlink.h, netlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;

// Flags.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

// Link attributes (if_link.h).
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VLAN_ID: u16 = 1;
const IFLA_BOND_MODE: u16 = 1;
const IFLA_BOND_MIIMON: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;

// Address attributes (if_addr.h).
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_F_NODAD: u8 = 0x02;

// Route attributes and values (rtnetlink.h).
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RT_TABLE_MAIN: u8 = 254;
const RTN_UNICAST: u8 = 1;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;

/// `IFF_UP` from if.h.
const IFF_UP: u32 = 0x1;

/// Who set a route (`rtm_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A configured route (`RTPROT_BOOT`, what `ip route add` uses).
    Static,
    /// From a DHCP lease (`RTPROT_DHCP`).
    Dhcp,
}

impl Proto {
    fn value(self) -> u8 {
        match self {
            Proto::Static => 3,
            Proto::Dhcp => 16,
        }
    }
}

/// A request being built: header, family header, attributes.
#[derive(Debug, Clone)]
struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    fn new(ty: u16, flags: u16, family_header: &[u8]) -> Builder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by finish
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        buf.extend_from_slice(family_header);
        pad(&mut buf);
        Builder { buf }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
        self
    }

    fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    fn attr_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.attr(ty, &b)
    }

    /// Starts a nested attribute; returns where its header is, for [`Builder::end_nested`].
    fn begin_nested(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end_nested(&mut self, at: usize) {
        let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// `struct ifinfomsg`: family, type, index, flags, change mask.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = libc::AF_UNSPEC as u8;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

fn family(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A change to an existing link (`ip link set`): up or down, MTU, bonding master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkChange {
    /// `Some(true)` sets `IFF_UP`, `Some(false)` clears it.
    pub up: Option<bool>,
    /// A new MTU.
    pub mtu: Option<u32>,
    /// Enslave to this master's index.
    pub master: Option<u32>,
}

/// `RTM_NEWLINK` changing the link `index`.
pub fn set_link(index: u32, change: LinkChange) -> Vec<u8> {
    let (flags, mask) = match change.up {
        Some(true) => (IFF_UP, IFF_UP),
        Some(false) => (0, IFF_UP),
        None => (0, 0),
    };
    let mut b = Builder::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, flags, mask));
    if let Some(mtu) = change.mtu {
        b.attr_u32(IFLA_MTU, mtu);
    }
    if let Some(m) = change.master {
        b.attr_u32(IFLA_MASTER, m);
    }
    b.finish(0)
}

/// `RTM_NEWLINK` creating VLAN `name` with `id` on the link `parent` (`ip link add link P
/// name N type vlan id ID`).
pub fn new_vlan(name: &str, parent: u32, id: u16) -> Vec<u8> {
    let mut b = Builder::new(
        RTM_NEWLINK,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        &ifinfomsg(0, 0, 0),
    );
    b.attr_str(IFLA_IFNAME, name).attr_u32(IFLA_LINK, parent);
    let info = b.begin_nested(IFLA_LINKINFO);
    b.attr(IFLA_INFO_KIND, b"vlan");
    let data = b.begin_nested(IFLA_INFO_DATA);
    b.attr(IFLA_VLAN_ID, &id.to_ne_bytes());
    b.end_nested(data);
    b.end_nested(info);
    b.finish(0)
}

/// The number of a bonding mode name (Documentation/networking/bonding.rst); numbers are
/// accepted as they are.
pub fn bond_mode(name: &str) -> Option<u8> {
    Some(match name {
        "balance-rr" | "0" => 0,
        "active-backup" | "1" => 1,
        "balance-xor" | "2" => 2,
        "broadcast" | "3" => 3,
        "802.3ad" | "4" => 4,
        "balance-tlb" | "5" => 5,
        "balance-alb" | "6" => 6,
        _ => return None,
    })
}

/// `RTM_NEWLINK` creating bond `name` (`ip link add N type bond mode M miimon X`).
pub fn new_bond(name: &str, mode: u8, miimon: Option<u32>) -> Vec<u8> {
    let mut b = Builder::new(
        RTM_NEWLINK,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        &ifinfomsg(0, 0, 0),
    );
    b.attr_str(IFLA_IFNAME, name);
    let info = b.begin_nested(IFLA_LINKINFO);
    b.attr(IFLA_INFO_KIND, b"bond");
    let data = b.begin_nested(IFLA_INFO_DATA);
    b.attr(IFLA_BOND_MODE, &[mode]);
    if let Some(m) = miimon {
        b.attr_u32(IFLA_BOND_MIIMON, m);
    }
    b.end_nested(data);
    b.end_nested(info);
    b.finish(0)
}

/// `RTM_NEWADDR` adding (or replacing) `addr` on the link `index` (`ip addr replace`), with
/// the broadcast address for IPv4 and without duplicate address detection for IPv6.
pub fn new_addr(index: u32, addr: Cidr) -> Vec<u8> {
    let mut h = [0u8; 8];
    h[0] = family(addr.addr);
    h[1] = addr.prefix;
    h[2] = if addr.addr.is_ipv6() { IFA_F_NODAD } else { 0 };
    h[3] = RT_SCOPE_UNIVERSE;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    let mut b = Builder::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, &h);
    let bytes = addr_bytes(addr.addr);
    b.attr(IFA_LOCAL, &bytes).attr(IFA_ADDRESS, &bytes);
    if let Some(brd) = addr.broadcast() {
        b.attr(IFA_BROADCAST, &brd.octets());
    }
    b.finish(0)
}

/// A route to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The destination; `None` is the default route of `family_v6`'s family.
    pub dst: Option<Cidr>,
    /// The next hop, if any.
    pub gateway: Option<IpAddr>,
    /// The outgoing link's index, if known.
    pub oif: Option<u32>,
    /// The metric.
    pub metric: Option<u32>,
    /// Who set it.
    pub proto: Proto,
    /// For a default route without a gateway: IPv6 or IPv4.
    pub family_v6: bool,
}

/// `RTM_NEWROUTE` adding (or replacing) a route in the main table (`ip route replace`).
pub fn new_route(r: &RouteSpec) -> Vec<u8> {
    let v6 = match (r.dst, r.gateway) {
        (Some(d), _) => d.addr.is_ipv6(),
        (None, Some(g)) => g.is_ipv6(),
        (None, None) => r.family_v6,
    };
    let mut h = [0u8; 12];
    h[0] = if v6 {
        libc::AF_INET6 as u8
    } else {
        libc::AF_INET as u8
    };
    h[1] = r.dst.map_or(0, |d| d.prefix);
    h[4] = RT_TABLE_MAIN;
    h[5] = r.proto.value();
    h[6] = if r.gateway.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    h[7] = RTN_UNICAST;
    let mut b = Builder::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, &h);
    if let Some(d) = r.dst {
        b.attr(RTA_DST, &addr_bytes(d.network()));
    }
    if let Some(g) = r.gateway {
        b.attr(RTA_GATEWAY, &addr_bytes(g));
    }
    if let Some(i) = r.oif {
        b.attr_u32(RTA_OIF, i);
    }
    if let Some(m) = r.metric {
        b.attr_u32(RTA_PRIORITY, m);
    }
    b.finish(0)
}

/// `RTM_GETADDR` dump of every address (`ip addr show`).
pub fn get_addrs() -> Vec<u8> {
    Builder::new(RTM_GETADDR, NLM_F_DUMP, &[0u8; 8]).finish(0)
}

/// One address from an `RTM_GETADDR` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// The link's index.
    pub index: u32,
    /// The label (the link's name for IPv4), when given.
    pub label: Option<String>,
    /// The address with prefix length.
    pub addr: Cidr,
    /// `rt_scope` (0 global, 253 link, 254 host).
    pub scope: u8,
}

/// One message of a reply: type, flags and payload after the 16-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The payload.
    pub payload: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Splits a datagram from the kernel into messages; stops at the first malformed one.
pub fn messages(buf: &[u8]) -> Vec<Reply<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(ty), Some(flags), Some(seq)) = (
        u32_at(buf, at),
        u16_at(buf, at + 4),
        u16_at(buf, at + 6),
        u32_at(buf, at + 8),
    ) {
        let len = len as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        out.push(Reply {
            ty,
            flags,
            seq,
            payload: &buf[at + 16..at + len],
        });
        at += len.next_multiple_of(4);
    }
    out
}

/// The attributes in `b`: (type without flag bits, data).
pub fn attributes(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(ty)) = (u16_at(b, at), u16_at(b, at + 2)) {
        let len = usize::from(len);
        if len < 4 || at + len > b.len() {
            break;
        }
        out.push((ty & 0x3fff, &b[at + 4..at + len]));
        at += len.next_multiple_of(4);
    }
    out
}

/// The error code of an `NLMSG_ERROR` payload: 0 is an acknowledgement, otherwise a
/// negative errno.
pub fn error_code(payload: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?))
}

fn ip_from(family: u8, b: &[u8]) -> Option<IpAddr> {
    if family == libc::AF_INET as u8 {
        let o: [u8; 4] = b.get(0..4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(o)))
    } else if family == libc::AF_INET6 as u8 {
        let o: [u8; 16] = b.get(0..16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(o)))
    } else {
        None
    }
}

/// The address of an `RTM_NEWADDR` payload (`ifaddrmsg` + attributes); `IFA_LOCAL` wins over
/// `IFA_ADDRESS`, which is the peer on point-to-point links.
pub fn parse_addr(payload: &[u8]) -> Option<AddrInfo> {
    let h = payload.get(0..8)?;
    let (fam, prefix, scope) = (h[0], h[1], h[3]);
    let index = u32_at(h, 4)?;
    let mut local = None;
    let mut address = None;
    let mut label = None;
    for (ty, data) in attributes(payload.get(8..)?) {
        match ty {
            IFA_LOCAL => local = ip_from(fam, data),
            IFA_ADDRESS => address = ip_from(fam, data),
            IFA_LABEL => {
                let s = data.split(|&c| c == 0).next().unwrap_or_default();
                label = Some(String::from_utf8_lossy(s).into_owned());
            }
            _ => {}
        }
    }
    let addr = Cidr::new(local.or(address)?, prefix)?;
    Some(AddrInfo {
        index,
        label,
        addr,
        scope,
    })
}

/// A route netlink socket (`NETLINK_ROUTE`), blocking.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// Opens the socket.
    pub fn open() -> io::Result<Socket> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        // A receive timeout, so a lost reply cannot hang the caller.
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(5, 0))?;
        Ok(Socket { fd, seq: 1 })
    }

    fn send(&mut self, mut msg: Vec<u8>) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        if let Some(s) = msg.get_mut(8..12) {
            s.copy_from_slice(&self.seq.to_ne_bytes());
        }
        // An unconnected netlink socket sends to the kernel.
        socket::send(self.fd.as_raw_fd(), &msg, MsgFlags::empty())?;
        Ok(self.seq)
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::empty())?)
    }

    /// Sends a request built by this module and waits for its acknowledgement; a kernel
    /// error becomes the matching `io::Error` (e.g. `EEXIST`).
    pub fn request(&mut self, msg: Vec<u8>) -> io::Result<()> {
        let seq = self.send(msg)?;
        let mut buf = vec![0u8; 16384];
        loop {
            let n = self.recv(&mut buf)?;
            for m in messages(&buf[..n]) {
                if m.seq != seq || m.ty != NLMSG_ERROR {
                    continue;
                }
                return match error_code(m.payload) {
                    Some(0) => Ok(()),
                    Some(e) => Err(io::Error::from_raw_os_error(-e)),
                    None => Err(io::Error::other("short netlink error message")),
                };
            }
        }
    }

    /// Sends a dump request and returns the payloads of all reply messages of `reply_type`.
    pub fn dump(&mut self, msg: Vec<u8>, reply_type: u16) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.send(msg)?;
        let mut buf = vec![0u8; 32768];
        let mut out = Vec::new();
        loop {
            let n = self.recv(&mut buf)?;
            for m in messages(&buf[..n]) {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => match error_code(m.payload) {
                        Some(0) | None => return Ok(out),
                        Some(e) => return Err(io::Error::from_raw_os_error(-e)),
                    },
                    t if t == reply_type => out.push(m.payload.to_vec()),
                    _ => {}
                }
                if m.flags & NLM_F_MULTI == 0 {
                    return Ok(out);
                }
            }
        }
    }

    /// Every address of every link.
    pub fn addresses(&mut self) -> io::Result<Vec<AddrInfo>> {
        Ok(self
            .dump(get_addrs(), RTM_NEWADDR)?
            .iter()
            .filter_map(|p| parse_addr(p))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(msg: &[u8]) -> (u32, u16, u16) {
        (
            u32_at(msg, 0).unwrap(),
            u16_at(msg, 4).unwrap(),
            u16_at(msg, 6).unwrap(),
        )
    }

    #[test]
    fn set_link_up_with_mtu() {
        let m = set_link(
            3,
            LinkChange {
                up: Some(true),
                mtu: Some(9000),
                master: None,
            },
        );
        let (len, ty, flags) = header(&m);
        assert_eq!(len as usize, m.len());
        assert_eq!(ty, RTM_NEWLINK);
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK);
        // ifinfomsg: index 3, flags IFF_UP, change IFF_UP.
        assert_eq!(u32_at(&m, 20), Some(3));
        assert_eq!(u32_at(&m, 24), Some(IFF_UP));
        assert_eq!(u32_at(&m, 28), Some(IFF_UP));
        let attrs = attributes(&m[32..]);
        assert_eq!(attrs, vec![(IFLA_MTU, &9000u32.to_ne_bytes()[..])]);
        assert_eq!(m.len(), 16 + 16 + 8);
    }

    #[test]
    fn set_link_down_clears_up_only() {
        let m = set_link(
            7,
            LinkChange {
                up: Some(false),
                mtu: None,
                master: Some(9),
            },
        );
        assert_eq!(u32_at(&m, 24), Some(0));
        assert_eq!(u32_at(&m, 28), Some(IFF_UP));
        assert_eq!(
            attributes(&m[32..]),
            vec![(IFLA_MASTER, &9u32.to_ne_bytes()[..])]
        );
    }

    #[test]
    fn new_vlan_nested_linkinfo() {
        let m = new_vlan("eth0.100", 2, 100);
        let (len, _, flags) = header(&m);
        assert_eq!(len as usize, m.len());
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let attrs = attributes(&m[32..]);
        assert_eq!(attrs[0], (IFLA_IFNAME, &b"eth0.100\0"[..]));
        assert_eq!(attrs[1], (IFLA_LINK, &2u32.to_ne_bytes()[..]));
        assert_eq!(attrs[2].0, IFLA_LINKINFO);
        let info = attributes(attrs[2].1);
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"vlan"[..]));
        let data = attributes(info[1].1);
        assert_eq!(data, vec![(IFLA_VLAN_ID, &100u16.to_ne_bytes()[..])]);
        // The nested flag is set on the wire.
        let raw_ty = u16_at(&m, 32 + 16 + 8 + 2).unwrap();
        assert_eq!(raw_ty, IFLA_LINKINFO | NLA_F_NESTED);
    }

    #[test]
    fn new_bond_mode_and_miimon() {
        let m = new_bond("bond0", bond_mode("802.3ad").unwrap(), Some(100));
        let attrs = attributes(&m[32..]);
        let info = attributes(attrs[1].1);
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"bond"[..]));
        let data = attributes(info[1].1);
        assert_eq!(data[0], (IFLA_BOND_MODE, &[4u8][..]));
        assert_eq!(data[1], (IFLA_BOND_MIIMON, &100u32.to_ne_bytes()[..]));
        assert_eq!(bond_mode("active-backup"), Some(1));
        assert_eq!(bond_mode("6"), Some(6));
        assert_eq!(bond_mode("roundrobin"), None);
    }

    #[test]
    fn new_addr_v4_has_local_and_broadcast() {
        let m = new_addr(2, "10.0.2.15/24".parse().unwrap());
        let (_, ty, flags) = header(&m);
        assert_eq!(ty, RTM_NEWADDR);
        assert_eq!(
            flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        );
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 24, 0, RT_SCOPE_UNIVERSE]);
        assert_eq!(u32_at(&m, 20), Some(2));
        let attrs = attributes(&m[24..]);
        assert_eq!(
            attrs,
            vec![
                (IFA_LOCAL, &[10u8, 0, 2, 15][..]),
                (IFA_ADDRESS, &[10u8, 0, 2, 15][..]),
                (IFA_BROADCAST, &[10u8, 0, 2, 255][..]),
            ]
        );
    }

    #[test]
    fn new_addr_v6_nodad() {
        let m = new_addr(4, "2001:db8::2/64".parse().unwrap());
        assert_eq!(m[16], libc::AF_INET6 as u8);
        assert_eq!(m[18], IFA_F_NODAD);
        let attrs = attributes(&m[24..]);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].1.len(), 16);
    }

    #[test]
    fn new_route_default_via_gateway() {
        let m = new_route(&RouteSpec {
            dst: None,
            gateway: Some("10.0.2.2".parse().unwrap()),
            oif: Some(2),
            metric: Some(1026),
            proto: Proto::Dhcp,
            family_v6: false,
        });
        let (_, ty, _) = header(&m);
        assert_eq!(ty, RTM_NEWROUTE);
        assert_eq!(
            &m[16..28],
            &[
                libc::AF_INET as u8,
                0,
                0,
                0,
                RT_TABLE_MAIN,
                16,
                RT_SCOPE_UNIVERSE,
                RTN_UNICAST,
                0,
                0,
                0,
                0
            ]
        );
        assert_eq!(
            attributes(&m[28..]),
            vec![
                (RTA_GATEWAY, &[10u8, 0, 2, 2][..]),
                (RTA_OIF, &2u32.to_ne_bytes()[..]),
                (RTA_PRIORITY, &1026u32.to_ne_bytes()[..]),
            ]
        );
    }

    #[test]
    fn new_route_link_scope_network_address() {
        let m = new_route(&RouteSpec {
            dst: Some("192.0.2.77/24".parse().unwrap()),
            gateway: None,
            oif: Some(5),
            metric: None,
            proto: Proto::Static,
            family_v6: false,
        });
        assert_eq!(m[17], 24);
        assert_eq!(m[22], RT_SCOPE_LINK);
        assert_eq!(attributes(&m[28..])[0], (RTA_DST, &[192u8, 0, 2, 0][..]));
    }

    #[test]
    fn messages_and_parse_addr_from_dump() {
        // A reply datagram: one RTM_NEWADDR for 10.0.2.15/24 on index 2, then NLMSG_DONE.
        let mut h = [0u8; 8];
        h[0] = libc::AF_INET as u8;
        h[1] = 24;
        h[4..8].copy_from_slice(&2u32.to_ne_bytes());
        let mut b = Builder::new(RTM_NEWADDR, NLM_F_MULTI, &h);
        b.attr(IFA_ADDRESS, &[10, 0, 2, 15])
            .attr(IFA_LOCAL, &[10, 0, 2, 15])
            .attr_str(IFA_LABEL, "eth0");
        let mut dgram = b.finish(9);
        dgram.extend(Builder::new(NLMSG_DONE, NLM_F_MULTI, &[0u8; 4]).finish(9));
        let msgs = messages(&dgram);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].seq, 9);
        assert_eq!(msgs[1].ty, NLMSG_DONE);
        let a = parse_addr(msgs[0].payload).unwrap();
        assert_eq!(a.index, 2);
        assert_eq!(a.addr.to_string(), "10.0.2.15/24");
        assert_eq!(a.label.as_deref(), Some("eth0"));
        assert_eq!(a.scope, 0);
    }

    #[test]
    fn messages_stops_at_garbage() {
        assert!(messages(&[1, 2, 3]).is_empty());
        let mut m = get_addrs();
        m[0] = 200; // length past the end
        assert!(messages(&m).is_empty());
        assert!(attributes(&[0, 0, 1, 0]).is_empty());
    }

    #[test]
    fn error_code_ack_and_errno() {
        assert_eq!(error_code(&0i32.to_ne_bytes()), Some(0));
        assert_eq!(error_code(&(-17i32).to_ne_bytes()), Some(-17));
        assert_eq!(error_code(&[0, 0]), None);
    }
}
