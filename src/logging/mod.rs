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
//! Where the lines go, and how a slow console is kept from stalling PID 1, is
//! [`console`]'s job.
//!
use std::time::Duration;

mod console;

pub use console::{dropped_lines, QUEUE_LINES};

/// Longest line kept (a hostile path in an audit line cannot make one huge write).
const MAX_LINE: usize = 8 * 1024;

/// What the subscriber writes through: one `write` per formatted event.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleWriter;

impl std::io::Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        console::write_line(&buf[..buf.len().min(MAX_LINE)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits up to `timeout` for every queued line to reach the console.
pub fn flush(timeout: Duration) {
    console::flush(timeout);
}

/// Writes log lines through `path` (a VM's `/dev/console`) once it is the console.
pub fn attach_console(path: &std::path::Path) {
    console::attach_console(path);
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
    console::attach_stderr();
    let json = std::env::var("ROOST_LOG_FORMAT").is_ok_and(|v| v == "json");
    let subscriber = tracing_subscriber::fmt()
        .with_writer(|| ConsoleWriter)
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
    console::write_line_surely(&bytes, Duration::from_secs(2));
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
