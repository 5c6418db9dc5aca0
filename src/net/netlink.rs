//! Applying network settings over rtnetlink, with the few messages roost sends written out
//! here: links (index, up, MTU), addresses (add with NODAD, delete), routes (add, delete,
//! prohibit, list to one /32). A blocking `NETLINK_ROUTE` socket with a receive timeout: the
//! kernel answers these at once, and a bounded wait keeps PID 1 from hanging on one. (The
//! rtnetlink crate did this before; its packet parsers for every netlink family cost PID 1
//! about 440 KB of its 4 MiB budget, for five message types.)

use super::plan::NetPlan;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("no network interface named {0}")]
    NoInterface(String),
}

/// How long one request may wait for the kernel's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

// From linux/netlink.h and linux/rtnetlink.h (libc has the message types and flags).
const NLMSG_HDRLEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RTN_UNICAST: u8 = 1;
const RTN_PROHIBIT: u8 = 8;
const RTNH_F_ONLINK: u32 = 4;

/// A request's outcome from the kernel: its errno, if it refused.
#[derive(Debug)]
enum Refused {
    Errno(i32),
    Other(NetError),
}

impl From<Refused> for NetError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Errno(e) => {
                NetError::Netlink(std::io::Error::from_raw_os_error(e).to_string())
            }
            Refused::Other(e) => e,
        }
    }
}

fn io(e: std::io::Error) -> Refused {
    Refused::Other(NetError::Netlink(e.to_string()))
}

/// One message as the kernel sent it: its type and its payload after the netlink header.
#[derive(Debug, Clone)]
struct Message {
    kind: u16,
    payload: Vec<u8>,
}

/// A message being built: a fixed header, then attributes.
struct Request {
    buf: Vec<u8>,
}

impl Request {
    fn new(kind: u16, flags: u16, header: &[u8]) -> Self {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(header);
        Request { buf }
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
        self
    }

    fn ip(self, kind: u16, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => self.attr(kind, &v4.octets()),
            IpAddr::V6(v6) => self.attr(kind, &v6.octets()),
        }
    }
}

fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

/// `struct ifaddrmsg`.
fn ifaddrmsg(ip: IpAddr, prefix: u8, index: u32) -> Vec<u8> {
    let mut h = vec![family(ip), prefix, IFA_F_NODAD as u8, 0];
    h.extend_from_slice(&index.to_ne_bytes());
    h
}

/// `struct rtmsg`.
fn rtmsg(family: u8, dst_len: u8, kind: u8, flags: u32) -> Vec<u8> {
    let mut h = vec![family, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, 0, kind];
    h.extend_from_slice(&flags.to_ne_bytes());
    h
}

/// The attributes after a fixed header of `skip` bytes: (type, data).
fn attributes(payload: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = skip;
    while at + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[at], payload[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]) & 0x3fff;
        if len < 4 || at + len > payload.len() {
            break;
        }
        out.push((kind, &payload[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// A netlink route socket. Cheap to clone; requests are serialised.
#[derive(Debug, Clone)]
pub struct Netlink {
    socket: Arc<Mutex<OwnedFd>>,
    seq: Arc<AtomicU32>,
}

impl Netlink {
    pub fn connect() -> Result<Self, NetError> {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(NetError::Netlink(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: REPLY_TIMEOUT.as_secs() as _,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a live timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(NetError::Netlink(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        Ok(Netlink {
            socket: Arc::new(Mutex::new(socket)),
            seq: Arc::new(AtomicU32::new(1)),
        })
    }

    /// Sends `req` and reads the answer: with `dump`, every message to NLMSG_DONE; else the
    /// acknowledgement.
    fn exchange(&self, req: Request, dump: bool) -> Result<Vec<Message>, Refused> {
        let mut buf = req.buf;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let len = buf.len() as u32;
        buf[0..4].copy_from_slice(&len.to_ne_bytes());
        buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        let socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        let fd = socket.as_raw_fd();
        // SAFETY: sockaddr_nl zeroed is the kernel as the peer.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sendto with a live buffer and address of the sizes passed.
        let sent = unsafe {
            libc::sendto(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        let mut out = Vec::new();
        let mut rx = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: recv into a live buffer of the size passed.
            let n = unsafe { libc::recv(fd, rx.as_mut_ptr().cast(), rx.len(), 0) };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(io(err));
            }
            let data = &rx[..n as usize];
            let mut at = 0;
            while at + NLMSG_HDRLEN <= data.len() {
                let len = u32_at(data, at).unwrap_or(0) as usize;
                let kind = u16::from_ne_bytes([data[at + 4], data[at + 5]]);
                let msg_seq = u32_at(data, at + 8).unwrap_or(0);
                if len < NLMSG_HDRLEN || at + len > data.len() {
                    return Err(Refused::Other(NetError::Netlink("malformed reply".into())));
                }
                let payload = &data[at + NLMSG_HDRLEN..at + len];
                at += (len + 3) & !3;
                if msg_seq != seq {
                    continue;
                }
                match i32::from(kind) {
                    libc::NLMSG_ERROR => {
                        let errno = u32_at(payload, 0).map_or(0, |e| e as i32);
                        if errno == 0 && !dump {
                            return Ok(out);
                        }
                        if errno != 0 {
                            return Err(Refused::Errno(-errno));
                        }
                    }
                    libc::NLMSG_DONE => return Ok(out),
                    _ => out.push(Message {
                        kind,
                        payload: payload.to_vec(),
                    }),
                }
            }
        }
    }

    fn ack(
        &self,
        kind: u16,
        flags: u16,
        header: &[u8],
        build: impl FnOnce(Request) -> Request,
    ) -> Result<(), Refused> {
        let req = build(Request::new(
            kind,
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16 | flags,
            header,
        ));
        self.exchange(req, false).map(|_| ())
    }

    fn dump(&self, kind: u16, header: &[u8]) -> Result<Vec<Message>, NetError> {
        let req = Request::new(
            kind,
            (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            header,
        );
        self.exchange(req, true).map_err(NetError::from)
    }

    pub async fn index(&self, name: &str) -> Result<u32, NetError> {
        let c = std::ffi::CString::new(name).map_err(|_| NetError::NoInterface(name.into()))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        match unsafe { libc::if_nametoindex(c.as_ptr()) } {
            0 => Err(NetError::NoInterface(name.into())),
            index => Ok(index),
        }
    }

    /// The VM's first interface: `eth0` when there is one, else the lowest-indexed one that
    /// is not loopback.
    pub async fn first_ethernet(&self) -> Result<String, NetError> {
        let links = self.dump(libc::RTM_GETLINK, &[0u8; 16])?;
        let mut found: Vec<(u32, String)> = links
            .iter()
            .filter(|m| m.kind == libc::RTM_NEWLINK)
            .filter_map(|m| {
                let index = u32_at(&m.payload, 4)?;
                let name = attributes(&m.payload, 16)
                    .into_iter()
                    .find(|(k, _)| *k == IFLA_IFNAME)
                    .map(|(_, v)| {
                        String::from_utf8_lossy(v)
                            .trim_end_matches('\0')
                            .to_string()
                    })?;
                Some((index, name))
            })
            .filter(|(_, n)| n != "lo")
            .collect();
        if found.iter().any(|(_, n)| n == "eth0") {
            return Ok("eth0".into());
        }
        found.sort();
        found
            .into_iter()
            .next()
            .map(|(_, n)| n)
            .ok_or_else(|| NetError::NoInterface("(any besides lo)".into()))
    }

    pub async fn up(&self, index: u32, mtu: Option<u32>) -> Result<(), NetError> {
        // struct ifinfomsg: family, pad, type, index, flags, change.
        let mut h = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
        h.extend_from_slice(&index.to_ne_bytes());
        h.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        h.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        self.ack(libc::RTM_NEWLINK, 0, &h, |r| match mtu {
            Some(mtu) => r.attr(IFLA_MTU, &mtu.to_ne_bytes()),
            None => r,
        })
        .map_err(NetError::from)
    }

    /// Adds an address without duplicate address detection (IFA_F_NODAD: a VM's address is
    /// its own, and DAD would delay IPv6 by seconds).
    pub async fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
        let result = self.ack(
            libc::RTM_NEWADDR,
            flags,
            &ifaddrmsg(addr, prefix, index),
            |r| {
                let r = r.ip(IFA_LOCAL, addr).ip(IFA_ADDRESS, addr);
                r.attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes())
            },
        );
        match result {
            Ok(()) | Err(Refused::Errno(libc::EEXIST)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn del_address(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut h = vec![family(addr), 0, 0, 0];
        h.extend_from_slice(&0u32.to_ne_bytes());
        for m in self.dump(libc::RTM_GETADDR, &h)? {
            let matches = m.kind == libc::RTM_NEWADDR
                && m.payload.get(1) == Some(&prefix)
                && u32_at(&m.payload, 4) == Some(index)
                && attributes(&m.payload, 8)
                    .into_iter()
                    .any(|(k, v)| k == IFA_LOCAL && ip_of(v) == Some(addr));
            if matches {
                let header = m.payload.get(..8).unwrap_or_default().to_vec();
                let attrs = m.payload.get(8..).unwrap_or_default().to_vec();
                self.ack(libc::RTM_DELADDR, 0, &header, |mut r| {
                    r.buf.extend_from_slice(&attrs);
                    r
                })
                .map_err(NetError::from)?;
            }
        }
        Ok(())
    }

    /// A route to `dest/prefix`, via `gateway` when given, out of `index`.
    pub async fn add_route(
        &self,
        index: u32,
        dest: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
        onlink: bool,
    ) -> Result<(), NetError> {
        let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
        let header = rtmsg(
            family(dest),
            prefix,
            RTN_UNICAST,
            if onlink { RTNH_F_ONLINK } else { 0 },
        );
        let result = self.ack(libc::RTM_NEWROUTE, flags, &header, |r| {
            let mut r = r;
            if prefix > 0 {
                r = r.ip(RTA_DST, dest);
            }
            if let Some(gw) = gateway.filter(|g| family(*g) == family(dest)) {
                r = r.ip(RTA_GATEWAY, gw);
            }
            r.attr(RTA_OIF, &index.to_ne_bytes())
        });
        match result {
            Ok(()) | Err(Refused::Errno(libc::EEXIST)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the default route via `gateway` out of `index`; one already gone is not an
    /// error.
    pub async fn del_default_route(&self, index: u32, gateway: IpAddr) -> Result<(), NetError> {
        let header = rtmsg(family(gateway), 0, RTN_UNICAST, 0);
        let result = self.ack(libc::RTM_DELROUTE, 0, &header, |r| {
            r.ip(RTA_GATEWAY, gateway)
                .attr(RTA_OIF, &index.to_ne_bytes())
        });
        match result {
            Ok(()) | Err(Refused::Errno(libc::ESRCH)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn del_route_v4(
        &self,
        index: u32,
        dest: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetError> {
        let header = rtmsg(libc::AF_INET as u8, prefix, RTN_UNICAST, 0);
        self.ack(libc::RTM_DELROUTE, 0, &header, |r| {
            r.ip(RTA_DST, IpAddr::V4(dest))
                .attr(RTA_OIF, &index.to_ne_bytes())
        })
        .map_err(NetError::from)
    }

    /// Makes `dest` unreachable for every process with a prohibit route (`ip route add
    /// prohibit`), and checks that one is in place. A route to `dest`/32 already there (a
    /// leftover of the MMDS fetch) would make the add fail with EEXIST while `dest` stays
    /// reachable: it is removed and the add retried.
    /// Removes every prohibit route to `dest` ([`Netlink::prohibit_v4`]'s undoing), and checks
    /// that none is left.
    pub async fn unprohibit_v4(&self, dest: Ipv4Addr) -> Result<(), NetError> {
        for route in self.routes_to_v4(dest)? {
            if route.payload.get(7) == Some(&RTN_PROHIBIT) {
                let header = route.payload.get(..12).unwrap_or_default().to_vec();
                let attrs = route.payload.get(12..).unwrap_or_default().to_vec();
                self.ack(libc::RTM_DELROUTE, 0, &header, |mut r| {
                    r.buf.extend_from_slice(&attrs);
                    r
                })
                .map_err(NetError::from)?;
            }
        }
        let left = self
            .routes_to_v4(dest)?
            .iter()
            .any(|r| r.payload.get(7) == Some(&RTN_PROHIBIT));
        if left {
            return Err(NetError::Netlink(format!(
                "a prohibit route to {dest} is still there after removing it"
            )));
        }
        Ok(())
    }

    pub async fn prohibit_v4(&self, dest: Ipv4Addr) -> Result<(), NetError> {
        let add = || {
            let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
            self.ack(
                libc::RTM_NEWROUTE,
                flags,
                &rtmsg(libc::AF_INET as u8, 32, RTN_PROHIBIT, 0),
                |r| r.ip(RTA_DST, IpAddr::V4(dest)),
            )
        };
        match add() {
            Ok(()) => {}
            Err(Refused::Errno(libc::EEXIST)) => {
                for route in self.routes_to_v4(dest)? {
                    if route.payload.get(7) != Some(&RTN_PROHIBIT) {
                        let header = route.payload.get(..12).unwrap_or_default().to_vec();
                        let attrs = route.payload.get(12..).unwrap_or_default().to_vec();
                        self.ack(libc::RTM_DELROUTE, 0, &header, |mut r| {
                            r.buf.extend_from_slice(&attrs);
                            r
                        })
                        .map_err(NetError::from)?;
                    }
                }
                match add() {
                    Ok(()) | Err(Refused::Errno(libc::EEXIST)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        let in_place = self
            .routes_to_v4(dest)?
            .iter()
            .any(|r| r.payload.get(7) == Some(&RTN_PROHIBIT));
        if in_place {
            Ok(())
        } else {
            Err(NetError::Netlink(format!(
                "no prohibit route to {dest} after adding one"
            )))
        }
    }

    /// The IPv4 routes (every table) whose destination is exactly `dest`/32.
    fn routes_to_v4(&self, dest: Ipv4Addr) -> Result<Vec<Message>, NetError> {
        let routes = self.dump(libc::RTM_GETROUTE, &rtmsg(libc::AF_INET as u8, 0, 0, 0))?;
        Ok(routes
            .into_iter()
            .filter(|m| {
                m.kind == libc::RTM_NEWROUTE
                    && m.payload.get(1) == Some(&32)
                    && attributes(&m.payload, 12)
                        .into_iter()
                        .any(|(k, v)| k == RTA_DST && ip_of(v) == Some(IpAddr::V4(dest)))
            })
            .collect())
    }

    pub async fn del_prohibit_v4(&self, dest: Ipv4Addr) -> Result<(), NetError> {
        self.ack(
            libc::RTM_DELROUTE,
            0,
            &rtmsg(libc::AF_INET as u8, 32, RTN_PROHIBIT, 0),
            |r| r.ip(RTA_DST, IpAddr::V4(dest)),
        )
        .map_err(NetError::from)
    }

    /// lo up; `iface` up with its MTU, addresses and default routes.
    pub async fn apply(&self, iface: &str, plan: &NetPlan) -> Result<(), NetError> {
        let lo = self.index("lo").await?;
        self.up(lo, None).await?;
        if plan.addrs.is_empty() && plan.mtu.is_none() {
            return Ok(());
        }
        let index = self.index(iface).await?;
        self.up(index, plan.mtu).await?;
        for a in &plan.addrs {
            self.add_address(index, a.addr, a.prefix).await?;
        }
        for r in &plan.default_routes {
            let any = if r.gateway.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            self.add_route(index, any, 0, Some(r.gateway), r.onlink)
                .await?;
        }
        Ok(())
    }
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(bytes);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_aligned_and_read_back() {
        let r = Request::new(libc::RTM_NEWADDR, 0, &[0u8; 8])
            .attr(IFLA_IFNAME, b"eth0\0")
            .ip(IFA_LOCAL, "10.0.0.2".parse().expect("ip"))
            .attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
        assert_eq!(r.buf.len() % 4, 0);
        let attrs = attributes(&r.buf[NLMSG_HDRLEN..], 8);
        assert_eq!(attrs.len(), 3);
        assert_eq!(attrs[0], (IFLA_IFNAME, &b"eth0\0"[..]));
        assert_eq!(ip_of(attrs[1].1), Some("10.0.0.2".parse().expect("ip")));
        assert_eq!(u32_at(attrs[2].1, 0), Some(IFA_F_NODAD));
        // A truncated or zero-length attribute ends the walk instead of looping or panicking.
        assert!(attributes(&[8, 0, 1, 0, 1], 0).is_empty());
        assert!(attributes(&[0, 0, 1, 0], 0).is_empty());
    }
}
