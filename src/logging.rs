//! Log output: one line per event on stderr (the console in a VM), with the time since roost
//! started, so boot phases can be read off the log.
//!
//! Each line is logfmt, `t=0.001234s level=info target=roost::supervise pid=4 uid=1000
//! msg="workload started: ..."`, with stable keys a driver or operator can grep: `exit_code`
//! and `oom_killed` on the exit, `pid`, `uid` and `gid` when the workload starts, `phase`,
//! `at_ms` and `duration_ms` for each boot phase, `level=error` for errors; the message is
//! always last. `ROOST_LOG_FORMAT=json` writes the same as one JSON object per line. The one
//! machine-readable exit line (`roost: exit {...}`) is not a log line and stays as it is.
//!
//! Lines go through a bounded queue to a writer thread of their own: a slow serial console
//! (or a stderr pipe nobody reads) must never stall the event loop, where the reaper, the
//! signals, the stop timers and the control API run. When the queue is full a line is
//! dropped and counted, and the writer says how many were lost once it catches up. The one
//! machine-readable exit line is written after a bounded [`flush`], directly.
//!
//! Hand-written rather than tracing-appender's `non_blocking`: that one's flush is only on
//! drop of its guard, which joins the writer thread without a bound (a console that never
//! drains would hang PID 1's last step).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

/// Lines held for the console at most; beyond it lines are dropped and counted.
pub const QUEUE_LINES: usize = 1024;
/// Longest line kept (a hostile path in an audit line cannot make one huge write).
const MAX_LINE: usize = 8 * 1024;

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

struct Queue {
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();
/// Lines dropped in all, for the control API.
static DROPPED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// How many log lines were dropped because the console was too slow.
pub fn dropped_lines() -> u64 {
    DROPPED_TOTAL.load(Ordering::Relaxed)
}

fn writer_thread(rx: Receiver<Msg>, queue: &'static OnceLock<Queue>) {
    let mut err = std::io::stderr();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Line(line) => {
                let _ = err.write_all(&line);
                let lost = queue
                    .get()
                    .map_or(0, |q| q.dropped.swap(0, Ordering::Relaxed));
                if lost > 0 {
                    let _ = writeln!(
                        err,
                        "roost: {lost} log line(s) dropped: the console is slower than the log"
                    );
                }
            }
            Msg::Flush(done) => {
                let _ = err.flush();
                let _ = done.try_send(());
            }
        }
    }
}

/// What the subscriber writes through: one `write` per formatted event.
#[derive(Debug, Clone, Copy)]
pub struct QueuedStderr;

impl Write for QueuedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(queue) = QUEUE.get() else {
            // No writer thread (it could not be started): write directly.
            return std::io::stderr().write(buf);
        };
        let line = buf[..buf.len().min(MAX_LINE)].to_vec();
        match queue.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                queue.dropped.fetch_add(1, Ordering::Relaxed);
                DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                let _ = std::io::stderr().write_all(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits up to `timeout` for every queued line to reach stderr.
pub fn flush(timeout: Duration) {
    let Some(queue) = QUEUE.get() else { return };
    let (tx, rx) = sync_channel(1);
    let deadline = std::time::Instant::now() + timeout;
    if send_by(queue, Msg::Flush(tx), deadline) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = rx.recv_timeout(left);
    }
}

/// Queues `msg`, waiting for room until `deadline` at most; whether it was queued.
fn send_by(queue: &Queue, mut msg: Msg, deadline: std::time::Instant) -> bool {
    loop {
        match queue.tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return false,
        }
    }
}

/// One event's fields: the message and the rest, in the order they were recorded.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(&'static str, serde_json::Value)>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.others
                .push((field.name(), serde_json::Value::String(text)));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.others.push((field.name(), value.into()));
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.others.push((field.name(), value.into()));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.others.push((field.name(), value.into()));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.others.push((field.name(), value.into()));
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.others.push((field.name(), value.into()));
    }
}

/// A logfmt value: bare when it can be, else quoted with `\"`, `\\`, `\n`, `\t` escaped.
pub fn logfmt_value(value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if bare {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The line format: logfmt, or JSON with `ROOST_LOG_FORMAT=json`.
struct LineFormat {
    json: bool,
    started: std::time::Instant,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LineFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let level = meta.level().as_str().to_ascii_lowercase();
        let t = self.started.elapsed().as_secs_f64();
        if self.json {
            let mut line = serde_json::Map::new();
            line.insert("t".into(), serde_json::json!((t * 1e6).round() / 1e6));
            line.insert("level".into(), level.into());
            line.insert("target".into(), meta.target().into());
            for (key, value) in fields.others {
                line.insert(key.into(), value);
            }
            line.insert("msg".into(), fields.message.into());
            return writeln!(writer, "{}", serde_json::Value::Object(line));
        }
        write!(writer, "t={t:.6}s level={level} target={}", meta.target())?;
        for (key, value) in &fields.others {
            let text = match value {
                serde_json::Value::String(s) => logfmt_value(s),
                other => other.to_string(),
            };
            write!(writer, " {key}={text}")?;
        }
        writeln!(writer, " msg={}", logfmt_value(&fields.message))
    }
}

/// Installs the global subscriber. `ROOST_LOG` (`error`..`trace`) sets the level; default info.
/// `ROOST_LOG_FORMAT=json` writes JSON lines instead of logfmt.
pub fn init() {
    let level = std::env::var("ROOST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let (tx, rx) = sync_channel(QUEUE_LINES);
    // Builder::spawn reports a failure instead of panicking; without the thread, lines are
    // written directly.
    if std::thread::Builder::new()
        .name("roost-log".into())
        // It only writes what the callers formatted: a small stack keeps PID 1's RSS small.
        .stack_size(64 * 1024)
        .spawn(move || writer_thread(rx, &QUEUE))
        .is_ok()
    {
        let _ = QUEUE.set(Queue {
            tx,
            dropped: AtomicU64::new(0),
        });
    }
    let json = std::env::var("ROOST_LOG_FORMAT").is_ok_and(|v| v == "json");
    let subscriber = tracing_subscriber::fmt()
        .with_writer(|| QueuedStderr)
        .with_ansi(false)
        .with_max_level(level)
        .event_format(LineFormat {
            json,
            started: std::time::Instant::now(),
        })
        .finish();
    // Fails only when a subscriber is already set (tests): keep that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Writes `line` to the console after the log lines queued before it, and waits (at most
/// 2 s each) for room in the queue and for the line to be written: the line a host reads must
/// come after the log that explains it and is never dropped for a full queue, yet a console
/// that never drains cannot hold PID 1.
pub fn console_line(line: &str) {
    let mut bytes = line.as_bytes().to_vec();
    bytes.push(b'\n');
    match QUEUE.get() {
        None => {
            let _ = std::io::stderr().write_all(&bytes);
        }
        Some(queue) => {
            send_by(
                queue,
                Msg::Line(bytes),
                std::time::Instant::now() + Duration::from_secs(2),
            );
            flush(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::logfmt_value;

    #[test]
    fn logfmt_values_are_bare_or_quoted_and_escaped() {
        assert_eq!(logfmt_value("65534"), "65534");
        assert_eq!(logfmt_value("roost::boot"), "roost::boot");
        assert_eq!(logfmt_value(""), "\"\"");
        assert_eq!(logfmt_value("a b"), "\"a b\"");
        assert_eq!(logfmt_value("k=v"), "\"k=v\"");
        assert_eq!(logfmt_value("say \"hi\"\n\\"), "\"say \\\"hi\\\"\\n\\\\\"");
        assert_eq!(logfmt_value("\u{1b}[31m"), "\"\\u{1b}[31m\"");
    }
}
