//! A small DHCPv4 client (RFC 2131, options RFC 2132) for the rescue system.
//!
//! [`packet`] builds and reads the BOOTP packet (pure functions). [`obtain`] runs the
//! exchange DISCOVER -> OFFER -> REQUEST -> ACK on one interface over a UDP socket bound to
//! `0.0.0.0:68` with `SO_BINDTODEVICE` and `SO_BROADCAST`: the interface has no address yet,
//! so the broadcast flag asks the server to broadcast its replies, which Linux delivers to
//! that socket. [`renew`] extends a lease (a broadcast REQUEST with `ciaddr`, the REBINDING
//! form, which needs no route to the server).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::libc;

use rear_model::netconf::Mac;

pub mod packet;

pub use packet::{
    CLIENT_PORT, ClientMessage, Lease, MessageType, ParseError, Reply, SERVER_PORT, build,
    discover, dns_names, parse, request,
};

/// Errors of the DHCP exchange; each names the interface.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be set up or used.
    #[error("{ifname}: DHCP socket: {error}")]
    Socket {
        /// The interface.
        ifname: String,
        /// The cause.
        error: io::Error,
    },
    /// No server answered in time.
    #[error("{ifname}: no DHCP {waiting_for} within {} s", .after.as_secs())]
    Timeout {
        /// The interface.
        ifname: String,
        /// `offer` or `ack`.
        waiting_for: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// The server refused the request.
    #[error("{ifname}: DHCP server {server} refused the request{}", .message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Nak {
        /// The interface.
        ifname: String,
        /// The server.
        server: Ipv4Addr,
        /// Its message (option 56), if any.
        message: Option<String>,
    },
}

/// A transaction id that differs between interfaces and boots.
pub fn new_xid(mac: Mac) -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    let m = u32::from_be_bytes([mac.0[2], mac.0[3], mac.0[4], mac.0[5]]);
    t.rotate_left(7) ^ m ^ std::process::id()
}

/// A UDP socket on port 68 of one interface, allowed to broadcast.
fn client_socket(ifname: &str) -> io::Result<UdpSocket> {
    // SAFETY: plain socket(2); the result is checked and then owned.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh valid descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let int_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_REUSEADDR, libc::SO_BROADCAST] {
        // SAFETY: the option value points to a live c_int of the given length.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                int_len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let name = ifname.as_bytes();
    // SAFETY: the option value is the interface name's bytes, live for the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: CLIENT_PORT.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: the address points to a live sockaddr_in of the given length.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UdpSocket::from(fd))
}

/// Sends `packet` to the broadcast address, then waits until `until` for a reply that
/// `want` accepts, resending with doubling intervals (RFC 2131 4.1: 4 s, 8 s, ... — shorter
/// here, a rescue system should not wait long).
fn exchange(
    sock: &UdpSocket,
    packet: &[u8],
    until: Instant,
    want: &dyn Fn(&Reply) -> bool,
) -> io::Result<Option<Reply>> {
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
    let mut interval = Duration::from_millis(1000);
    let mut buf = [0u8; 1500];
    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        sock.send_to(packet, to)?;
        let resend = (now + interval).min(until);
        interval = (interval * 2).min(Duration::from_secs(8));
        loop {
            let left = resend.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))?;
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Ok(r) = parse(&buf[..n])
                        && want(&r)
                    {
                        return Ok(Some(r));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Runs DISCOVER/OFFER/REQUEST/ACK on `ifname` (which must be up) within `timeout`.
pub fn obtain(
    ifname: &str,
    mac: Mac,
    hostname: Option<&str>,
    timeout: Duration,
) -> Result<Lease, Error> {
    let sock_err = |error| Error::Socket {
        ifname: ifname.to_owned(),
        error,
    };
    let sock = client_socket(ifname).map_err(sock_err)?;
    let start = Instant::now();
    let until = start + timeout;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let xid = new_xid(mac).wrapping_add(attempts);
        let ours = |r: &Reply, ty: MessageType| r.xid == xid && r.chaddr == mac && r.ty == ty;
        let offer = exchange(&sock, &discover(xid, mac, hostname), until, &|r| {
            ours(r, MessageType::Offer) && !r.yiaddr.is_unspecified()
        })
        .map_err(sock_err)?
        .ok_or_else(|| Error::Timeout {
            ifname: ifname.to_owned(),
            waiting_for: "offer",
            after: timeout,
        })?;
        let ack_until = (Instant::now() + Duration::from_secs(10)).min(until);
        let reply = exchange(
            &sock,
            &request(xid, mac, &offer, hostname),
            ack_until,
            &|r| {
                r.xid == xid
                    && r.chaddr == mac
                    && matches!(r.ty, MessageType::Ack | MessageType::Nak)
            },
        )
        .map_err(sock_err)?;
        match reply {
            Some(r) if r.ty == MessageType::Ack => return Ok(Lease::from_ack(ifname, &r)),
            // A NAK sends the client back to DISCOVER (RFC 2131 3.1 step 5), a few times.
            Some(r) if Instant::now() >= until || attempts >= 4 => {
                return Err(Error::Nak {
                    ifname: ifname.to_owned(),
                    server: r.server.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    message: r.message,
                });
            }
            Some(_) => {}
            None if Instant::now() >= until => {
                return Err(Error::Timeout {
                    ifname: ifname.to_owned(),
                    waiting_for: "ack",
                    after: timeout,
                });
            }
            None => {}
        }
    }
}

/// Extends `lease` with a broadcast REQUEST carrying `ciaddr` (REBINDING, RFC 2131 4.4.5).
pub fn renew(lease: &Lease, mac: Mac, timeout: Duration) -> Result<Lease, Error> {
    let ifname = lease.ifname.as_str();
    let sock_err = |error| Error::Socket {
        ifname: ifname.to_owned(),
        error,
    };
    let sock = client_socket(ifname).map_err(sock_err)?;
    let xid = new_xid(mac);
    let packet = build(&ClientMessage {
        ty: MessageType::Request,
        xid,
        secs: 0,
        mac,
        ciaddr: lease.address,
        requested: None,
        server: None,
        hostname: None,
    });
    let reply = exchange(&sock, &packet, Instant::now() + timeout, &|r| {
        r.xid == xid && r.chaddr == mac && matches!(r.ty, MessageType::Ack | MessageType::Nak)
    })
    .map_err(sock_err)?;
    match reply {
        Some(r) if r.ty == MessageType::Ack => Ok(Lease::from_ack(ifname, &r)),
        Some(r) => Err(Error::Nak {
            ifname: ifname.to_owned(),
            server: r.server.unwrap_or(Ipv4Addr::UNSPECIFIED),
            message: r.message,
        }),
        None => Err(Error::Timeout {
            ifname: ifname.to_owned(),
            waiting_for: "ack",
            after: timeout,
        }),
    }
}
