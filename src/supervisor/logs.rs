//! Each service's output: one pipe per service for its whole life (every restart writes to
//! the same one), read by an async task that prefixes each line with the service's name for
//! the console, keeps the last lines in a bounded buffer for the control API, and watches for
//! the service's ready line. One thread writes the console, so a blocked console stalls only
//! the services' pipes (their own writes block, as they would on a full terminal), never PID
//! 1's loop.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError};

/// What the kept lines of one service may cost PID 1, in bytes: each line counts its text
/// plus [`LINE_OVERHEAD`], so a service printing empty lines fills it as surely as one
/// printing long ones.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// What one kept line costs beyond its text: the `String` in the ring and its allocation.
pub const LINE_OVERHEAD: usize = 64;
/// Most lines kept per service, whatever their length (the same bound as the bytes give for
/// empty lines, stated on its own so it does not hang on the overhead's value). It also
/// bounds what one `/v2/services/NAME/logs` answer returns.
pub const MAX_LINES: usize = 1024;
/// A line longer than this is cut into pieces of this size.
pub const MAX_LINE: usize = 8 * 1024;

/// The last lines of one service.
#[derive(Debug, Default)]
pub struct LogBuffer {
    inner: Mutex<Ring>,
    /// Woken on every new line (followers of the log wait on it), and when it closes.
    grew: tokio::sync::Notify,
    /// Every writer is gone (the pipe reached its end): no line will come, so nobody waits.
    closed: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<String>,
    bytes: usize,
    /// Lines ever written (the number of the next one).
    total: u64,
}

/// Buffers are compared by identity (events carry them).
impl PartialEq for LogBuffer {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for LogBuffer {}

impl LogBuffer {
    /// What `line` costs while kept: its allocation plus the fixed per-line overhead.
    fn cost(line: &str) -> usize {
        line.len().saturating_add(LINE_OVERHEAD)
    }

    fn push(&self, mut line: String) {
        line.shrink_to_fit();
        let mut ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        ring.bytes = ring.bytes.saturating_add(Self::cost(&line));
        ring.lines.push_back(line);
        ring.total += 1;
        while ring.bytes > BUFFER_BYTES || ring.lines.len() > MAX_LINES {
            match ring.lines.pop_front() {
                Some(old) => ring.bytes = ring.bytes.saturating_sub(Self::cost(&old)),
                None => break,
            }
        }
        drop(ring);
        self.grew.notify_waiters();
    }

    /// No line will come any more: followers get what there is at once.
    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.grew.notify_waiters();
    }

    /// The lines numbered `after` and later (all kept ones without it), with the number of
    /// the first returned and of the next to come. With `wait`, waits up to that long for a
    /// line when there is none yet.
    pub async fn since(
        &self,
        after: Option<u64>,
        wait: std::time::Duration,
    ) -> (u64, u64, Vec<String>) {
        let read = || {
            let ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let first_kept = ring.total - ring.lines.len() as u64;
            let from = after.unwrap_or(first_kept).max(first_kept);
            let skip = (from - first_kept) as usize;
            let lines: Vec<String> = ring.lines.iter().skip(skip).cloned().collect();
            (from, ring.total, lines)
        };
        let closed = || self.closed.load(std::sync::atomic::Ordering::Acquire);
        let first = read();
        if !first.2.is_empty() || wait.is_zero() || after.is_none() || closed() {
            return first;
        }
        let notified = self.grew.notified();
        // A line pushed (or the close) between the read and here is seen by the second read.
        let again = read();
        if !again.2.is_empty() || closed() {
            return again;
        }
        let _ = tokio::time::timeout(wait, notified).await;
        read()
    }

    /// The lines kept, oldest first, with the number of the first (lines before it were
    /// dropped).
    pub fn snapshot(&self) -> (u64, Vec<String>) {
        let ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let first = ring.total - ring.lines.len() as u64;
        (first, ring.lines.iter().cloned().collect())
    }
}

/// The console writer: one thread, fed line by line, started by the first output (a machine
/// whose services print nothing never pays for it).
#[derive(Debug, Clone)]
pub struct Console {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// The receiving end until the writer thread takes it.
    waiting: Arc<Mutex<Option<tokio::sync::mpsc::Receiver<Vec<u8>>>>>,
    /// Told by the writer thread once it has written everything and every sender is gone.
    written: Arc<Mutex<Option<std::sync::mpsc::Receiver<()>>>>,
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

impl Console {
    /// The queue; its writer thread comes with the first output.
    pub fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
        Console {
            tx,
            waiting: Arc::new(Mutex::new(Some(rx))),
            written: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether the writer thread was started (some service wrote output).
    pub fn started(&self) -> bool {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Waits up to `timeout` for the writer to put every queued line on the console, once
    /// every service's reader has ended (they hold the other senders). Without this, roost's
    /// exit could cut the last lines a service wrote. Returns false on timeout.
    pub fn finish(self, timeout: std::time::Duration) -> bool {
        let written = self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(self.tx);
        match written {
            Some(done) => done.recv_timeout(timeout).is_ok(),
            // No output ever: no writer.
            None => true,
        }
    }

    /// Queues `bytes` for the console, starting the writer the first time. Waits while the
    /// queue is full (backpressure to the service's pipe). Without a writer (its thread
    /// could not start) the bytes are dropped, never queued for no one.
    async fn send(&self, bytes: Vec<u8>) {
        let first = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut rx) = first {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            *self.written.lock().unwrap_or_else(PoisonError::into_inner) = Some(done_rx);
            let spawned = std::thread::Builder::new()
                .name("service-console".into())
                .spawn(move || {
                    let mut out = std::io::stdout();
                    let mut writable = true;
                    while let Some(line) = rx.blocking_recv() {
                        if writable && (out.write_all(&line).is_err() || out.flush().is_err()) {
                            writable = false;
                        }
                    }
                    let _ = done_tx.send(());
                });
            if let Err(err) = spawned {
                // The receiver went with the closure: every send fails at once from now on.
                tracing::error!(
                    "cannot start the console writer: {err}; service output reaches only the logs"
                );
            }
        }
        let _ = self.tx.send(bytes).await;
    }
}

/// The read side of one service's output. The write end goes to each of its starts.
#[derive(Debug)]
pub struct ServiceLog {
    pub buffer: Arc<LogBuffer>,
    pub write_end: OwnedFd,
    pub reader: tokio::task::JoinHandle<()>,
}

/// How a service's output reaches the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleStyle {
    /// Line by line, each prefixed with `[name] ` (several services share the console).
    Prefixed,
    /// As written, byte for byte (the single workload: the console is its own).
    Raw,
}

/// Starts the reader of `name`'s pipe; `ready` is called once, when a line holding
/// `ready_line` is read. Lines are kept in the buffer whatever the console's style.
pub fn start(
    name: &str,
    console: &Console,
    style: ConsoleStyle,
    ready_line: Option<String>,
    ready: impl FnOnce() + Send + 'static,
) -> std::io::Result<ServiceLog> {
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end)?;
    let buffer = Arc::new(LogBuffer::default());
    let prefix = match style {
        ConsoleStyle::Prefixed => Some(format!("[{name}] ")),
        ConsoleStyle::Raw => None,
    };
    let reader = tokio::spawn(read_lines(
        receiver,
        prefix,
        console.clone(),
        buffer.clone(),
        ready_line,
        ready,
    ));
    Ok(ServiceLog {
        buffer,
        write_end,
        reader,
    })
}

/// `prefix`: None for the raw console (bytes forwarded as read, lines only kept).
async fn read_lines(
    mut pipe: tokio::net::unix::pipe::Receiver,
    prefix: Option<String>,
    console: Console,
    buffer: Arc<LogBuffer>,
    ready_line: Option<String>,
    ready: impl FnOnce() + Send + 'static,
) {
    use tokio::io::AsyncReadExt;
    let mut ready = Some(ready);
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if prefix.is_none() {
            // Backpressure as below: a full console queue stalls this pipe only.
            console.send(buf[..n].to_vec()).await;
        }
        pending.extend_from_slice(&buf[..n]);
        loop {
            let cut = match pending.iter().position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if pending.len() >= MAX_LINE => MAX_LINE,
                None => break,
            };
            let piece: Vec<u8> = pending.drain(..cut).collect();
            emit(&piece, &prefix, &console, &buffer, &ready_line, &mut ready).await;
        }
    }
    if !pending.is_empty() {
        if prefix.is_some() {
            pending.push(b'\n');
        }
        emit(
            &pending,
            &prefix,
            &console,
            &buffer,
            &ready_line,
            &mut ready,
        )
        .await;
    }
    buffer.close();
}

async fn emit(
    piece: &[u8],
    prefix: &Option<String>,
    console: &Console,
    buffer: &LogBuffer,
    ready_line: &Option<String>,
    ready: &mut Option<impl FnOnce()>,
) {
    let text = String::from_utf8_lossy(piece);
    let line = text.trim_end_matches('\n');
    if let (Some(want), true) = (ready_line, ready.is_some()) {
        if line.contains(want.as_str()) {
            if let Some(ready) = ready.take() {
                ready();
            }
        }
    }
    buffer.push(line.to_string());
    let Some(prefix) = prefix else {
        return;
    };
    let mut out = Vec::with_capacity(prefix.len() + piece.len() + 1);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(piece);
    if !piece.ends_with(b"\n") {
        out.push(b'\n');
    }
    // Backpressure: a full console queue waits here, and so the service's pipe fills.
    console.send(out).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_keeps_the_last_bytes_and_counts_what_it_dropped() {
        let b = LogBuffer::default();
        for i in 0..10_000 {
            b.push(format!("line {i:05} {}", "x".repeat(90)));
        }
        let (first, lines) = b.snapshot();
        let bytes: usize = lines.iter().map(|l| l.len() + LINE_OVERHEAD).sum();
        assert!(bytes <= BUFFER_BYTES);
        assert_eq!(first + lines.len() as u64, 10_000);
        assert!(lines.last().is_some_and(|l| l.starts_with("line 09999")));
    }

    /// Empty lines cost their overhead: a million of them keep no more than the bound (they
    /// kept every one before, and `yes ''` grew PID 1 by hundreds of MiB).
    #[test]
    fn empty_lines_are_bounded_too() {
        let b = LogBuffer::default();
        for _ in 0..1_000_000 {
            b.push(String::new());
        }
        let (first, lines) = b.snapshot();
        assert!(lines.len() <= MAX_LINES, "{} lines kept", lines.len());
        assert!(lines.len() * LINE_OVERHEAD <= BUFFER_BYTES);
        assert_eq!(first + lines.len() as u64, 1_000_000);
    }

    #[tokio::test]
    async fn lines_are_prefixed_kept_and_the_ready_line_is_seen_once() {
        let console = Console::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let log = start(
            "web",
            &console,
            ConsoleStyle::Prefixed,
            Some("listening".into()),
            move || {
                let _ = tx.send(());
            },
        )
        .expect("log");
        let mut w = std::fs::File::from(log.write_end);
        w.write_all(b"booting\nlistening on :80\nlistening again\nno newline")
            .expect("write");
        drop(w);
        tokio::time::timeout(std::time::Duration::from_secs(5), rx)
            .await
            .expect("ready in time")
            .expect("ready");
        log.reader.await.expect("reader");
        let (_, lines) = log.buffer.snapshot();
        assert_eq!(
            lines,
            [
                "booting",
                "listening on :80",
                "listening again",
                "no newline"
            ]
        );
    }

    /// A follower of a log whose writers are all gone is answered at once, not after its
    /// wait: no line can come.
    #[tokio::test]
    async fn a_closed_log_answers_a_follower_at_once() {
        let console = Console::new();
        let log = start("one", &console, ConsoleStyle::Raw, None, || {}).expect("log");
        let mut w = std::fs::File::from(log.write_end);
        w.write_all(b"last words").expect("write");
        drop(w);
        log.reader.await.expect("reader");
        let asked = std::time::Instant::now();
        let (first, next, lines) = log
            .buffer
            .since(Some(1), std::time::Duration::from_secs(20))
            .await;
        assert!(asked.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!((first, next, lines.len()), (1, 1, 0));
        assert_eq!(log.buffer.snapshot().1, ["last words"]);
    }
}
