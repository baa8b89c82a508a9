//! The DHCPv4 packet (RFC 2131 section 2, options RFC 2132, RFC 3396, RFC 3397): building
//! client messages and reading server replies. Pure functions, no I/O; the exchange itself is
//! in [`super`].
//!
//! Layout: a 236-byte BOOTP fixed part (op, htype, hlen, hops, xid, secs, flags, ciaddr,
//! yiaddr, siaddr, giaddr, chaddr, sname, file), the magic cookie 99.130.83.99, then
//! type-length-value options ending in 255.

use std::net::Ipv4Addr;

use rear_model::netconf::{Mac, mask_prefix_v4};

/// The client port.
pub const CLIENT_PORT: u16 = 68;
/// The server port.
pub const SERVER_PORT: u16 = 67;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const FIXED: usize = 236;
const BROADCAST_FLAG: u16 = 0x8000;

// Options (RFC 2132, RFC 3397).
const OPT_PAD: u8 = 0;
const OPT_SUBNET: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_HOSTNAME: u8 = 12;
const OPT_DOMAIN: u8 = 15;
const OPT_MTU: u8 = 26;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE: u8 = 51;
const OPT_MSG_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_MESSAGE: u8 = 56;
const OPT_MAX_SIZE: u8 = 57;
const OPT_T1: u8 = 58;
const OPT_CLIENT_ID: u8 = 61;
const OPT_SEARCH: u8 = 119;
const OPT_END: u8 = 255;

/// A packet that is not a usable DHCP reply (ignored by the client, reported by tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a DHCP reply: {0}")]
pub struct ParseError(pub &'static str);

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// DHCPDISCOVER.
    Discover,
    /// DHCPOFFER.
    Offer,
    /// DHCPREQUEST.
    Request,
    /// DHCPDECLINE.
    Decline,
    /// DHCPACK.
    Ack,
    /// DHCPNAK.
    Nak,
    /// DHCPRELEASE.
    Release,
    /// DHCPINFORM.
    Inform,
}

impl MessageType {
    fn code(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
        }
    }

    fn from_code(c: u8) -> Option<MessageType> {
        Some(match c {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }
}

/// What a client sends: the fields that differ between messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    /// The message type.
    pub ty: MessageType,
    /// Transaction id.
    pub xid: u32,
    /// Seconds since the exchange began.
    pub secs: u16,
    /// The client's hardware address.
    pub mac: Mac,
    /// `ciaddr`: the address the client has (renewing), else 0.
    pub ciaddr: Ipv4Addr,
    /// Option 50, requested address.
    pub requested: Option<Ipv4Addr>,
    /// Option 54, the chosen server.
    pub server: Option<Ipv4Addr>,
    /// Option 12, the client's host name.
    pub hostname: Option<String>,
}

/// Builds a client message. The broadcast flag is set unless the client has an address.
pub fn build(m: &ClientMessage) -> Vec<u8> {
    let mut p = vec![0u8; FIXED];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&m.xid.to_be_bytes());
    p[8..10].copy_from_slice(&m.secs.to_be_bytes());
    if m.ciaddr.is_unspecified() {
        p[10..12].copy_from_slice(&BROADCAST_FLAG.to_be_bytes());
    }
    p[12..16].copy_from_slice(&m.ciaddr.octets());
    p[28..34].copy_from_slice(&m.mac.0);
    p.extend_from_slice(&MAGIC);
    let mut opt = |code: u8, data: &[u8]| {
        p.push(code);
        p.push(u8::try_from(data.len()).unwrap_or(u8::MAX));
        p.extend_from_slice(&data[..data.len().min(255)]);
    };
    opt(OPT_MSG_TYPE, &[m.ty.code()]);
    let mut id = vec![1u8];
    id.extend_from_slice(&m.mac.0);
    opt(OPT_CLIENT_ID, &id);
    if let Some(r) = m.requested {
        opt(OPT_REQUESTED_IP, &r.octets());
    }
    if let Some(s) = m.server {
        opt(OPT_SERVER_ID, &s.octets());
    }
    if let Some(h) = m.hostname.as_deref().filter(|h| !h.is_empty()) {
        opt(OPT_HOSTNAME, h.as_bytes());
    }
    opt(OPT_MAX_SIZE, &1500u16.to_be_bytes());
    opt(
        OPT_PARAMS,
        &[
            OPT_SUBNET,
            OPT_ROUTER,
            OPT_DNS,
            OPT_DOMAIN,
            OPT_MTU,
            OPT_LEASE,
            OPT_SERVER_ID,
            OPT_T1,
            OPT_SEARCH,
        ],
    );
    p.push(OPT_END);
    // Some old servers drop requests shorter than a BOOTP packet (300 bytes).
    if p.len() < 300 {
        p.resize(300, OPT_PAD);
    }
    p
}

/// A DHCPDISCOVER.
pub fn discover(xid: u32, mac: Mac, hostname: Option<&str>) -> Vec<u8> {
    build(&ClientMessage {
        ty: MessageType::Discover,
        xid,
        secs: 0,
        mac,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        requested: None,
        server: None,
        hostname: hostname.map(str::to_owned),
    })
}

/// A DHCPREQUEST for an offer (SELECTING state: requested address and server id).
pub fn request(xid: u32, mac: Mac, offer: &Reply, hostname: Option<&str>) -> Vec<u8> {
    build(&ClientMessage {
        ty: MessageType::Request,
        xid,
        secs: 0,
        mac,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        requested: Some(offer.yiaddr),
        server: offer.server,
        hostname: hostname.map(str::to_owned),
    })
}

/// A server's reply, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The message type.
    pub ty: MessageType,
    /// Transaction id.
    pub xid: u32,
    /// The client hardware address it is for.
    pub chaddr: Mac,
    /// `yiaddr`: the address offered or assigned.
    pub yiaddr: Ipv4Addr,
    /// Option 54, else `siaddr`.
    pub server: Option<Ipv4Addr>,
    /// Option 1 as a prefix length.
    pub prefix: Option<u8>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 119.
    pub search: Vec<String>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 51, seconds (`u32::MAX` is infinite).
    pub lease_secs: Option<u32>,
    /// Option 58, seconds.
    pub renew_secs: Option<u32>,
    /// Option 56, text for a NAK.
    pub message: Option<String>,
}

fn addrs(data: &[u8]) -> Vec<Ipv4Addr> {
    data.chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect()
}

fn be32(data: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(0..4)?.try_into().ok()?))
}

fn text(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).trim().to_owned()
}

/// Parses a BOOTREPLY. Options split over several instances of one code are joined
/// (RFC 3396); the `file`/`sname` overload (option 52) is not read.
pub fn parse(p: &[u8]) -> Result<Reply, ParseError> {
    if p.len() < FIXED + 4 {
        return Err(ParseError("too short"));
    }
    if p[0] != 2 {
        return Err(ParseError("not a BOOTREPLY"));
    }
    if p[FIXED..FIXED + 4] != MAGIC {
        return Err(ParseError("no DHCP magic cookie"));
    }
    let ip = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
    let mut options: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut at = FIXED + 4;
    while at < p.len() {
        let code = p[at];
        if code == OPT_END {
            break;
        }
        if code == OPT_PAD {
            at += 1;
            continue;
        }
        let len = usize::from(*p.get(at + 1).ok_or(ParseError("truncated option"))?);
        let data = p
            .get(at + 2..at + 2 + len)
            .ok_or(ParseError("truncated option"))?;
        match options.iter_mut().find(|(c, _)| *c == code) {
            Some((_, d)) => d.extend_from_slice(data),
            None => options.push((code, data.to_vec())),
        }
        at += 2 + len;
    }
    let get = |code: u8| {
        options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d.as_slice())
    };
    let ty = get(OPT_MSG_TYPE)
        .and_then(|d| d.first().copied())
        .and_then(MessageType::from_code)
        .ok_or(ParseError("no message type"))?;
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&p[28..34]);
    let siaddr = ip(20);
    Ok(Reply {
        ty,
        xid: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        chaddr: Mac(mac),
        yiaddr: ip(16),
        server: get(OPT_SERVER_ID)
            .and_then(|d| addrs(d).first().copied())
            .or((!siaddr.is_unspecified()).then_some(siaddr)),
        prefix: get(OPT_SUBNET)
            .and_then(|d| addrs(d).first().copied())
            .and_then(mask_prefix_v4),
        routers: get(OPT_ROUTER).map(addrs).unwrap_or_default(),
        dns: get(OPT_DNS).map(addrs).unwrap_or_default(),
        domain: get(OPT_DOMAIN).map(text).filter(|s| !s.is_empty()),
        search: get(OPT_SEARCH).map(dns_names).unwrap_or_default(),
        mtu: get(OPT_MTU)
            .and_then(|d| d.get(0..2))
            .map(|d| u16::from_be_bytes([d[0], d[1]])),
        lease_secs: get(OPT_LEASE).and_then(be32),
        renew_secs: get(OPT_T1).and_then(be32),
        message: get(OPT_MESSAGE).map(text),
    })
}

/// Domain names in DNS wire format with compression pointers (RFC 1035 4.1.4), as option
/// 119 carries them (RFC 3397). Pointers refer to offsets in the option data; a loop or a bad
/// pointer ends the list.
pub fn dns_names(data: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = at;
        let mut next = None;
        let mut jumps = 0;
        loop {
            let Some(&len) = data.get(pos) else {
                return names;
            };
            if len == 0 {
                next.get_or_insert(pos + 1);
                break;
            }
            if len & 0xc0 == 0xc0 {
                let Some(&lo) = data.get(pos + 1) else {
                    return names;
                };
                next.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > 16 {
                    return names;
                }
                pos = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                continue;
            }
            let len = usize::from(len);
            let Some(label) = data.get(pos + 1..pos + 1 + len) else {
                return names;
            };
            labels.push(String::from_utf8_lossy(label).into_owned());
            pos += 1 + len;
        }
        if !labels.is_empty() {
            names.push(labels.join("."));
        }
        at = next.unwrap_or(data.len());
    }
    names
}

/// The result of a successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The interface.
    pub ifname: String,
    /// The address.
    pub address: Ipv4Addr,
    /// Its prefix length (from option 1, else the class default).
    pub prefix: u8,
    /// The first router, if any.
    pub router: Option<Ipv4Addr>,
    /// Name servers.
    pub dns: Vec<Ipv4Addr>,
    /// Search domains (option 119, else option 15).
    pub search: Vec<String>,
    /// The interface MTU the server asks for.
    pub mtu: Option<u16>,
    /// The server that granted it.
    pub server: Option<Ipv4Addr>,
    /// Lease time in seconds (`None` or `u32::MAX`: infinite).
    pub lease_secs: Option<u32>,
    /// When to renew (option 58, else half the lease).
    pub renew_secs: Option<u32>,
}

impl Lease {
    /// The lease from an ACK.
    pub fn from_ack(ifname: &str, ack: &Reply) -> Lease {
        let prefix = ack.prefix.unwrap_or(match ack.yiaddr.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            _ => 24,
        });
        let mut search = ack.search.clone();
        if search.is_empty()
            && let Some(d) = &ack.domain
        {
            search.push(d.clone());
        }
        Lease {
            ifname: ifname.to_owned(),
            address: ack.yiaddr,
            prefix,
            router: ack.routers.first().copied(),
            dns: ack.dns.clone(),
            search,
            mtu: ack.mtu.filter(|&m| m >= 576),
            server: ack.server,
            lease_secs: ack.lease_secs,
            renew_secs: ack
                .renew_secs
                .or(ack.lease_secs.map(|l| l / 2))
                .filter(|_| ack.lease_secs != Some(u32::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    /// The options of a client packet: (code, data).
    fn options(p: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = FIXED + 4;
        while at < p.len() && p[at] != OPT_END {
            if p[at] == OPT_PAD {
                at += 1;
                continue;
            }
            let len = p[at + 1] as usize;
            out.push((p[at], p[at + 2..at + 2 + len].to_vec()));
            at += 2 + len;
        }
        out
    }

    /// A server reply like QEMU's (slirp) built-in DHCP server sends.
    fn reply(ty: u8, xid: u32, opts: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = vec![0u8; FIXED];
        p[0] = 2;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&xid.to_be_bytes());
        p[16..20].copy_from_slice(&[10, 0, 2, 15]);
        p[20..24].copy_from_slice(&[10, 0, 2, 2]);
        p[28..34].copy_from_slice(&MAC.0);
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&[OPT_MSG_TYPE, 1, ty]);
        for (c, d) in opts {
            p.push(*c);
            p.push(d.len() as u8);
            p.extend_from_slice(d);
        }
        p.push(OPT_END);
        p
    }

    #[test]
    fn discover_fixed_part_and_options() {
        let p = discover(0xdead_beef, MAC, Some("web1"));
        assert_eq!(p.len(), 300);
        assert_eq!(&p[0..4], &[1, 1, 6, 0]);
        assert_eq!(&p[4..8], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&p[10..12], &[0x80, 0], "broadcast flag");
        assert_eq!(&p[12..28], &[0u8; 16], "no addresses");
        assert_eq!(&p[28..34], &MAC.0);
        assert_eq!(&p[FIXED..FIXED + 4], &MAGIC);
        let o = options(&p);
        assert_eq!(o[0], (OPT_MSG_TYPE, vec![1]));
        assert_eq!(
            o[1],
            (OPT_CLIENT_ID, vec![1, 0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(o[2], (OPT_HOSTNAME, b"web1".to_vec()));
        assert!(
            o.iter()
                .any(|(c, d)| *c == OPT_PARAMS && d.contains(&OPT_ROUTER))
        );
        assert!(!o.iter().any(|(c, _)| *c == OPT_REQUESTED_IP));
    }

    #[test]
    fn request_names_offer_and_server() {
        let offer = parse(&reply(2, 7, &[(OPT_SERVER_ID, &[10, 0, 2, 2])])).unwrap();
        let p = request(7, MAC, &offer, None);
        let o = options(&p);
        assert_eq!(o[0], (OPT_MSG_TYPE, vec![3]));
        assert!(o.contains(&(OPT_REQUESTED_IP, vec![10, 0, 2, 15])));
        assert!(o.contains(&(OPT_SERVER_ID, vec![10, 0, 2, 2])));
        assert!(!o.iter().any(|(c, _)| *c == OPT_HOSTNAME));
    }

    #[test]
    fn build_renewal_has_ciaddr_no_broadcast_flag() {
        let p = build(&ClientMessage {
            ty: MessageType::Request,
            xid: 1,
            secs: 3,
            mac: MAC,
            ciaddr: Ipv4Addr::new(10, 0, 2, 15),
            requested: None,
            server: None,
            hostname: None,
        });
        assert_eq!(&p[8..10], &[0, 3]);
        assert_eq!(&p[10..12], &[0, 0]);
        assert_eq!(&p[12..16], &[10, 0, 2, 15]);
    }

    #[test]
    fn parse_ack_like_qemu() {
        let search = [
            3, b'l', b'a', b'b', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ];
        let p = reply(
            5,
            42,
            &[
                (OPT_SUBNET, &[255, 255, 255, 0]),
                (OPT_ROUTER, &[10, 0, 2, 2]),
                (OPT_DNS, &[10, 0, 2, 3, 10, 0, 2, 4]),
                (OPT_LEASE, &86400u32.to_be_bytes()),
                (OPT_SERVER_ID, &[10, 0, 2, 2]),
                (OPT_MTU, &1400u16.to_be_bytes()),
                (OPT_SEARCH, &search),
            ],
        );
        let r = parse(&p).unwrap();
        assert_eq!(r.ty, MessageType::Ack);
        assert_eq!(r.xid, 42);
        assert_eq!(r.chaddr, MAC);
        assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(r.prefix, Some(24));
        let lease = Lease::from_ack("eth0", &r);
        assert_eq!(lease.router, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(lease.dns.len(), 2);
        assert_eq!(lease.search, vec!["lab.example"]);
        assert_eq!(lease.mtu, Some(1400));
        assert_eq!(lease.renew_secs, Some(43200));
        assert_eq!(lease.server, Some(Ipv4Addr::new(10, 0, 2, 2)));
    }

    #[test]
    fn parse_defaults_and_split_options() {
        // No subnet option: class default; no server id: siaddr; option 6 split in two.
        let mut p = reply(5, 1, &[(OPT_DNS, &[1, 1, 1, 1]), (OPT_DNS, &[9, 9, 9, 9])]);
        p.insert(FIXED + 4, OPT_PAD);
        let r = parse(&p).unwrap();
        assert_eq!(r.server, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(r.dns.len(), 2);
        let lease = Lease::from_ack("eth0", &r);
        assert_eq!(lease.prefix, 8);
        assert_eq!(lease.renew_secs, None);
        let inf = parse(&reply(5, 1, &[(OPT_LEASE, &u32::MAX.to_be_bytes())])).unwrap();
        assert_eq!(Lease::from_ack("eth0", &inf).renew_secs, None);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert_eq!(parse(&[0u8; 10]), Err(ParseError("too short")));
        let mut p = reply(2, 1, &[]);
        p[0] = 1;
        assert_eq!(parse(&p), Err(ParseError("not a BOOTREPLY")));
        let mut p = reply(2, 1, &[]);
        p[FIXED] = 0;
        assert_eq!(parse(&p), Err(ParseError("no DHCP magic cookie")));
        let mut p = reply(2, 1, &[]);
        p.truncate(p.len() - 1);
        p.extend_from_slice(&[OPT_DNS, 8, 1, 2]);
        assert_eq!(parse(&p), Err(ParseError("truncated option")));
        let mut p = reply(2, 1, &[]);
        p[FIXED + 6] = 99;
        assert_eq!(parse(&p), Err(ParseError("no message type")));
    }

    #[test]
    fn parse_nak_message() {
        let r = parse(&reply(6, 3, &[(OPT_MESSAGE, b"wrong network")])).unwrap();
        assert_eq!(r.ty, MessageType::Nak);
        assert_eq!(r.message.as_deref(), Some("wrong network"));
    }

    #[test]
    fn dns_names_with_compression() {
        // "eng.example.com", then "sales" + pointer to "example.com" at offset 4.
        let mut d = vec![3, b'e', b'n', b'g', 7];
        d.extend_from_slice(b"example");
        d.push(3);
        d.extend_from_slice(b"com");
        d.push(0);
        d.push(5);
        d.extend_from_slice(b"sales");
        d.extend_from_slice(&[0xc0, 4]);
        assert_eq!(dns_names(&d), vec!["eng.example.com", "sales.example.com"]);
        // A pointer to itself ends the list instead of looping.
        assert!(dns_names(&[0xc0, 0]).is_empty());
        assert!(dns_names(&[5, b'a']).is_empty());
    }
}
