//! Where log lines go: straight to the console while it keeps up, through a writer thread
//! when it does not.
//!
//! A line is written at once through a file description of roost's own on the console,
//! opened non-blocking (stderr reopened through `/proc/self/fd/2`, or `/dev/console` in a
//! VM): that write never waits, and a console that is full answers `EAGAIN`. Then that line,
//! and every line after it until the backlog is written, goes to a bounded queue that a
//! writer thread (started the first time it is needed) writes with ordinary blocking writes.
//! When the queue is full a line is dropped and counted, and the next line written says how
//! many were lost. So a slow serial console, or a stderr pipe nobody reads, never stalls the
//! event loop, and a console that keeps up costs no thread and no wake-up per line.
//!
//! The description is roost's own so that `O_NONBLOCK` never reaches the workload, which
//! shares the console's original description. A regular file (`2>file`) is written through
//! fd 2 itself: reopening it would start a second offset at 0, and a file never waits on a
//! reader; so is a character device that is not a terminal (`/dev/null`). A socket, or a
//! console that cannot be reopened, always takes the thread.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Lines held for the console at most; beyond it lines are dropped and counted.
pub const QUEUE_LINES: usize = 1024;

/// How a line reaches the console without waiting.
enum Direct {
    /// roost's own non-blocking description of the console.
    NonBlocking(File),
    /// fd 2 itself: a regular file, which never waits on a reader.
    Stderr,
}

impl Direct {
    /// Writes what the console takes now: how many bytes of `line` it took.
    fn try_write(&self, line: &[u8]) -> usize {
        let mut done = 0;
        while done < line.len() {
            let result = match self {
                Direct::NonBlocking(file) => (&*file).write(&line[done..]),
                Direct::Stderr => std::io::stderr().write(&line[done..]),
            };
            match result {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EAGAIN, and any other failure: the writer thread takes it from here (it
                // meets the same console with a blocking write, and ignores what fails).
                Err(_) => break,
            }
        }
        done
    }
}

/// Where the writer thread writes, waiting as long as the console makes it.
#[derive(Clone)]
enum Blocking {
    Stderr,
    #[cfg(test)]
    File(Arc<File>),
}

impl Blocking {
    fn write_all(&self, bytes: &[u8]) {
        let _ = match self {
            Blocking::Stderr => std::io::stderr().write_all(bytes),
            #[cfg(test)]
            Blocking::File(file) => (&**file).write_all(bytes),
        };
    }
}

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The writer thread's end of the queue. The channel itself is unbounded: the bound is
/// `backlog`, checked before each line is sent, with room for the one tail of a line the
/// console took in part (which is never dropped, so no line is torn).
struct Writer {
    tx: Sender<Msg>,
    /// Lines queued and not yet written: while any are, new lines queue behind them.
    backlog: Arc<AtomicUsize>,
}

/// The console as the log sees it.
struct Sink {
    direct: Option<Direct>,
    blocking: Blocking,
    writer: Option<Writer>,
    /// The thread could not be started: lines are written with `blocking` directly.
    no_thread: bool,
    /// Lines dropped since the last line that said so.
    unreported: u64,
}

static SINK: LazyLock<Mutex<Sink>> =
    LazyLock::new(|| Mutex::new(Sink::new(None, Blocking::Stderr)));
/// Lines dropped in all, for the control API.
static DROPPED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// How many log lines were dropped because the console was too slow.
pub fn dropped_lines() -> u64 {
    DROPPED_TOTAL.load(Ordering::Relaxed)
}

fn lock() -> MutexGuard<'static, Sink> {
    SINK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes lines without waiting through stderr as it is now (see the module's text).
pub fn attach_stderr() {
    use nix::sys::stat::SFlag;
    let direct = match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(stat) => match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFREG => Some(Direct::Stderr),
            // `/dev/null` and its kind never make a writer wait; a terminal does.
            SFlag::S_IFCHR if !nix::unistd::isatty(std::io::stderr()).unwrap_or(true) => {
                Some(Direct::Stderr)
            }
            SFlag::S_IFIFO | SFlag::S_IFCHR => {
                open_non_blocking(Path::new("/proc/self/fd/2")).map(Direct::NonBlocking)
            }
            _ => None,
        },
        Err(_) => None,
    };
    lock().direct = direct;
}

/// Writes lines without waiting through `console` (a VM's `/dev/console`, once it is on the
/// standard descriptors).
pub fn attach_console(console: &Path) {
    if let Some(file) = open_non_blocking(console) {
        lock().direct = Some(Direct::NonBlocking(file));
    }
}

/// `path` opened for writing, non-blocking, never as a controlling terminal.
fn open_non_blocking(path: &Path) -> Option<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()
}

/// Writes one line: directly when nothing waits before it and the console takes it, else
/// through the queue (dropped and counted when the queue is full).
pub fn write_line(line: &[u8]) {
    lock().write_line(line, false);
}

/// Writes `line`, never dropped for a full queue, then waits up to `bound` for the queue to
/// be written.
pub fn write_line_surely(line: &[u8], bound: Duration) {
    let tx = {
        let mut sink = lock();
        sink.write_line(line, true);
        sink.writer.as_ref().map(|w| w.tx.clone())
    };
    if let Some(tx) = tx {
        flush_through(&tx, bound);
    }
}

/// Waits up to `timeout` for every queued line to reach the console.
pub fn flush(timeout: Duration) {
    let tx = lock().writer.as_ref().map(|w| w.tx.clone());
    if let Some(tx) = tx {
        flush_through(&tx, timeout);
    }
}

fn flush_through(tx: &Sender<Msg>, timeout: Duration) {
    let (done_tx, done_rx) = sync_channel(1);
    if tx.send(Msg::Flush(done_tx)).is_ok() {
        let _ = done_rx.recv_timeout(timeout);
    }
}

/// The line that tells of `lost` lines dropped.
fn lost_notice(lost: u64) -> String {
    format!("roost: {lost} log line(s) dropped: the console is slower than the log\n")
}

impl Sink {
    fn new(direct: Option<Direct>, blocking: Blocking) -> Self {
        Sink {
            direct,
            blocking,
            writer: None,
            no_thread: false,
            unreported: 0,
        }
    }

    /// Writes `line`, after the count of lines dropped before it if any were: directly if
    /// it can, else queued. A line the console took in part has its tail queued whatever
    /// the bound, and so has a line that `must` be written.
    fn write_line(&mut self, line: &[u8], must: bool) {
        let mut bytes = match self.unreported {
            0 => Vec::with_capacity(line.len()),
            lost => lost_notice(lost).into_bytes(),
        };
        bytes.extend_from_slice(line);
        let written = self.try_direct(&bytes);
        if written == bytes.len() {
            self.unreported = 0;
            return;
        }
        bytes.drain(..written);
        if self.enqueue(bytes, must || written > 0) {
            self.unreported = 0;
        } else {
            self.unreported = self.unreported.saturating_add(1);
            DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes `line` directly when nothing is queued before it: how many of its bytes were
    /// written (the rest is for the queue).
    fn try_direct(&self, line: &[u8]) -> usize {
        let queued = self
            .writer
            .as_ref()
            .is_some_and(|w| w.backlog.load(Ordering::Acquire) > 0);
        match &self.direct {
            Some(direct) if !queued => direct.try_write(line),
            _ => 0,
        }
    }

    /// The writer thread, started when first needed; `None` when it cannot be started.
    fn writer(&mut self) -> Option<&Writer> {
        if self.writer.is_none() && !self.no_thread {
            let (tx, rx) = channel();
            let backlog = Arc::new(AtomicUsize::new(0));
            let (theirs, blocking) = (backlog.clone(), self.blocking.clone());
            // Builder::spawn reports a failure instead of panicking.
            match std::thread::Builder::new()
                .name("roost-log".into())
                // It only writes what the callers formatted: a small stack keeps PID 1 small.
                .stack_size(64 * 1024)
                .spawn(move || writer_thread(rx, &blocking, &theirs))
            {
                Ok(_) => self.writer = Some(Writer { tx, backlog }),
                Err(_) => self.no_thread = true,
            }
        }
        self.writer.as_ref()
    }

    /// Queues `bytes` for the writer thread; false when the queue is full and they need not
    /// be written.
    fn enqueue(&mut self, bytes: Vec<u8>, must: bool) -> bool {
        let blocking = self.blocking.clone();
        let Some(writer) = self.writer() else {
            // No thread could be started: write with a wait, as a last resort.
            blocking.write_all(&bytes);
            return true;
        };
        if !must && writer.backlog.load(Ordering::Acquire) >= QUEUE_LINES {
            return false;
        }
        writer.backlog.fetch_add(1, Ordering::AcqRel);
        if let Err(unsent) = writer.tx.send(Msg::Line(bytes)) {
            // The thread is gone: write with a wait, as a last resort.
            writer.backlog.fetch_sub(1, Ordering::AcqRel);
            if let Msg::Line(bytes) = unsent.0 {
                blocking.write_all(&bytes);
            }
        }
        true
    }
}

fn writer_thread(rx: Receiver<Msg>, out: &Blocking, backlog: &AtomicUsize) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Line(line) => {
                out.write_all(&line);
                // After the write: a line written directly from now on comes after this one.
                backlog.fetch_sub(1, Ordering::AcqRel);
            }
            // Every line before it is written: each was one blocking write.
            Msg::Flush(done) => {
                let _ = done.try_send(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
