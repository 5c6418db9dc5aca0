//! systemd's readiness protocol (`sd_notify(3)`): a service given `notify: true` finds a
//! datagram socket in `NOTIFY_SOCKET` and sends `READY=1` on it when it is ready, as many
//! daemons already do. The socket is in the abstract namespace (`@...`: no file to create or
//! clean up, and `sd_notify` implementations take it), and a message counts only when the
//! kernel's credentials say it came from the service's own session (its main process or a
//! child of it): another process cannot make a service ready.

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, UnixAddr};
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use tokio::io::Interest;

/// The largest notification read; longer ones are cut (READY=1 is 7 bytes).
const MAX_MESSAGE: usize = 4096;

/// Names tried before a start gives up on its notify socket.
const BIND_TRIES: usize = 8;

/// 128 bits from the kernel's random source (`getrandom(2)`).
fn random_u128() -> std::io::Result<u128> {
    let mut bytes = [0u8; 16];
    // SAFETY: the buffer is valid for 16 bytes of writes; getrandom writes at most that.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != 16 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u128::from_ne_bytes(bytes))
}

#[derive(Debug)]
pub struct NotifySocket {
    socket: tokio::net::UnixDatagram,
    name: String,
}

impl NotifySocket {
    /// Binds `@name` with SO_PASSCRED. Needs a tokio runtime.
    pub fn bind(name: &str) -> std::io::Result<Self> {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let std_socket = std::os::unix::net::UnixDatagram::bind_addr(&addr)?;
        std_socket.set_nonblocking(true)?;
        socket::setsockopt(&std_socket, sockopt::PassCred, &true)?;
        Ok(NotifySocket {
            socket: tokio::net::UnixDatagram::from_std(std_socket)?,
            name: name.to_string(),
        })
    }

    /// Binds `@prefix-<random>`: the name is in `/proc/net/unix` once bound, but not before,
    /// so no other service can take a start's name ahead of it. A name taken all the same
    /// (`EADDRINUSE`) is retried with another random part, a few times.
    pub fn bind_unguessable(prefix: &str) -> std::io::Result<Self> {
        let mut last = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        for _ in 0..BIND_TRIES {
            match Self::bind(&format!("{prefix}-{:032x}", random_u128()?)) {
                Ok(sock) => return Ok(sock),
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => last = err,
                Err(err) => return Err(err),
            }
        }
        Err(last)
    }

    /// The `NOTIFY_SOCKET` value.
    pub fn env_value(&self) -> String {
        format!("@{}", self.name)
    }

    /// The next message and the pid the kernel says sent it.
    pub async fn recv(&self) -> std::io::Result<(Option<i32>, Vec<u8>)> {
        self.socket
            .async_io(Interest::READABLE, || {
                let mut buf = vec![0u8; MAX_MESSAGE];
                let mut cmsg = nix::cmsg_space!(socket::UnixCredentials);
                let (len, pid) = {
                    let mut iov = [IoSliceMut::new(&mut buf)];
                    let msg = socket::recvmsg::<UnixAddr>(
                        self.socket.as_raw_fd(),
                        &mut iov,
                        Some(&mut cmsg),
                        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
                    )
                    .map_err(std::io::Error::from)?;
                    let pid = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                            _ => None,
                        })
                    });
                    (msg.bytes.min(MAX_MESSAGE), pid)
                };
                buf.truncate(len);
                Ok((pid, buf))
            })
            .await
    }
}

/// Whether a notification says `READY=1` (one of its newline-separated assignments).
pub fn says_ready(message: &[u8]) -> bool {
    message
        .split(|&b| b == b'\n')
        .any(|line| line == b"READY=1")
}

/// Whether `pid` belongs to the session of the service whose main process is `leader`
/// (each service is its own session; its children stay in it unless they leave).
pub fn from_service(pid: i32, leader: i32) -> bool {
    if pid <= 0 || leader <= 0 {
        return false;
    }
    // SAFETY: getsid(2) takes a pid and returns an id or -1.
    let sid = unsafe { libc::getsid(pid) };
    sid == leader
}

/// Whether `pid` is in the PID namespace whose init is `init`: a container's processes all
/// are, whatever their session (with roost as the container's init, the workload has a
/// session of its own).
pub fn in_pid_namespace_of(pid: i32, init: i32) -> bool {
    if pid <= 0 || init <= 0 {
        return false;
    }
    let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    match (ns(pid), ns(init)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Whose `READY=1` counts: a process's session, or every process of a container's PID
/// namespace (the abstract socket is reachable over the shared network namespace).
#[derive(Debug, Clone, Copy)]
pub enum Sender {
    SessionOf(i32),
    PidNamespaceOf(i32),
}

impl Sender {
    fn is(self, pid: i32) -> bool {
        match self {
            Sender::SessionOf(leader) => from_service(pid, leader),
            Sender::PidNamespaceOf(init) => in_pid_namespace_of(pid, init),
        }
    }
}

/// Listens on `sock` for the service's life, and calls `ready` for every `READY=1` from
/// `ours`: the first says the service is ready, a later one ends a reload the service was
/// asked for (systemd's `Type=notify-reload` exchange; a `notify` snapshot hook waits for
/// it). Spoofs are logged (aggregated per [`SPOOF_WINDOW`]) and ignored.
pub async fn listen(sock: NotifySocket, service: String, ours: Sender, mut ready: impl FnMut()) {
    let mut spoofs = SpoofLog::default();
    let mut window = tokio::time::interval(SPOOF_WINDOW);
    window.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (sender, message) = tokio::select! {
            received = sock.recv() => match received {
                Ok(received) => received,
                Err(_) => return,
            },
            _ = window.tick() => {
                for line in spoofs.end_window(&service) {
                    tracing::warn!(service = service.as_str(), "{line}");
                }
                continue;
            }
        };
        if !says_ready(&message) {
            continue;
        }
        if sender.is_some_and(|p| ours.is(p)) {
            ready();
            continue;
        }
        if spoofs.record(sender) {
            tracing::warn!(
                service = service.as_str(),
                "READY=1 for {service} from pid {sender:?}, not of its session or container: ignored"
            );
        }
    }
}

/// How long one window of spoofed-notification aggregation lasts.
pub const SPOOF_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
/// Spoofed `READY=1`s of one sender logged in full per window; the rest are counted.
pub const SPOOF_BURST: u64 = 3;
/// Senders tracked one by one per window; any more are counted together.
const SPOOF_SENDERS: usize = 64;

/// `READY=1`s refused because they came from outside the service, aggregated as refused
/// `/.fly/api` requests are: a few lines per sender and window, then one summary line, so a
/// process flooding the socket costs the console a few lines, not one per datagram.
#[derive(Debug, Default)]
pub struct SpoofLog {
    /// sender pid (-1: the kernel named none) -> (logged, counted) in this window.
    senders: std::collections::BTreeMap<i32, (u64, u64)>,
    /// Counted for senders beyond [`SPOOF_SENDERS`].
    others: u64,
}

impl SpoofLog {
    /// Records one spoof from `sender`; true when it is to be logged in full.
    pub fn record(&mut self, sender: Option<i32>) -> bool {
        let key = sender.unwrap_or(-1);
        if !self.senders.contains_key(&key) && self.senders.len() >= SPOOF_SENDERS {
            self.others = self.others.saturating_add(1);
            return false;
        }
        let (logged, counted) = self.senders.entry(key).or_insert((0, 0));
        if *logged < SPOOF_BURST {
            *logged += 1;
            return true;
        }
        *counted = counted.saturating_add(1);
        false
    }

    /// Ends the window: one line per sender whose spoofs were counted, not logged.
    pub fn end_window(&mut self, service: &str) -> Vec<String> {
        let window = std::mem::take(self);
        let secs = SPOOF_WINDOW.as_secs();
        let mut lines: Vec<String> = window
            .senders
            .into_iter()
            .filter(|(_, (_, counted))| *counted > 0)
            .map(|(pid, (_, n))| {
                format!(
                    "{n} more READY=1 for {service} from pid {pid} ignored in the last {secs} s"
                )
            })
            .collect();
        if window.others > 0 {
            lines.push(format!(
                "{} more READY=1 for {service} from other processes ignored in the last {secs} s",
                window.others
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 500 spoofs from one sender: 3 lines, then one summary (before: 500 warning lines).
    #[test]
    fn spoofs_are_logged_a_few_per_sender_then_summed() {
        let mut log = SpoofLog::default();
        let logged = (0..500).filter(|_| log.record(Some(42))).count();
        assert_eq!(logged, SPOOF_BURST as usize);
        assert!(log.record(Some(43)));
        for pid in 1000..1200 {
            log.record(Some(pid));
        }
        let lines = log.end_window("web");
        assert_eq!(
            lines[0],
            "497 more READY=1 for web from pid 42 ignored in the last 10 s"
        );
        assert!(
            lines
                .last()
                .is_some_and(|l| l.contains("from other processes")),
            "{lines:?}"
        );
        assert!(lines.len() <= SPOOF_SENDERS + 1);
        // A new window logs again.
        assert!(log.record(Some(42)));
        assert!(log.end_window("web").is_empty());
    }

    #[test]
    fn ready_is_one_assignment_among_others() {
        assert!(says_ready(b"READY=1"));
        assert!(says_ready(b"STATUS=up\nREADY=1\nMAINPID=7"));
        assert!(!says_ready(b"READY=0"));
        assert!(!says_ready(b"NOT_READY=1"));
        assert!(!says_ready(b""));
    }

    /// Two starts of the same service get names nobody could have bound ahead of them:
    /// every name `prefix-N` a squatter took leaves the start's bind untouched.
    #[tokio::test]
    async fn names_are_unguessable_and_a_squatter_cannot_block_a_start() {
        let prefix = format!("roost-test-squat-{}", std::process::id());
        // Before: the name was `prefix` itself, or `prefix` with the next generation.
        let squatters: Vec<_> = (0..4)
            .map(|g| NotifySocket::bind(&format!("{prefix}-{g}")).expect("squat"))
            .collect();
        let _taken = NotifySocket::bind(&prefix).expect("squat");
        let a = NotifySocket::bind_unguessable(&prefix).expect("a start");
        let b = NotifySocket::bind_unguessable(&prefix).expect("another start");
        assert_ne!(a.env_value(), b.env_value());
        assert!(a.env_value().len() > prefix.len() + 32, "{}", a.env_value());
        drop(squatters);
    }

    #[tokio::test]
    async fn a_message_arrives_with_its_senders_pid() {
        let name = format!("roost-test-notify-{}", std::process::id());
        let sock = NotifySocket::bind(&name).expect("bind");
        assert_eq!(sock.env_value(), format!("@{name}"));
        let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
        use std::os::linux::net::SocketAddrExt;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        client.send_to_addr(b"READY=1", &addr).expect("send");
        let (pid, msg) = tokio::time::timeout(std::time::Duration::from_secs(5), sock.recv())
            .await
            .expect("in time")
            .expect("recv");
        assert_eq!(pid, Some(std::process::id() as i32));
        assert!(says_ready(&msg));
    }
}
