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

/// `value` appended to `out` as a logfmt value: bare when it can be, else quoted with `\"`,
/// `\\`, `\n`, `\t` escaped.
fn append_logfmt(out: &mut String, value: &str) {
    use std::fmt::Write;
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if bare {
        out.push_str(value);
        return;
    }
    out.push('"');
    // Runs of characters that need no escape are copied whole.
    let mut plain = 0;
    for (at, c) in value.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\t' => "\\t",
            c if c.is_control() => "",
            _ => continue,
        };
        out.push_str(&value[plain..at]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push_str(escaped);
        }
        plain = at + c.len_utf8();
    }
    out.push_str(&value[plain..]);
    out.push('"');
}

/// One event's fields written straight into its logfmt line, ` key=value` in the order they
/// were recorded (values as [`Fields`] and `serde_json` would print them), the message kept
/// for the end. A line costs one string and the message, not a string per field: roost logs
/// on every start and exit.
struct LogfmtFields {
    line: String,
    message: String,
}

impl LogfmtFields {
    fn key(&mut self, field: &tracing::field::Field) {
        self.line.push(' ');
        self.line.push_str(field.name());
        self.line.push('=');
    }
}

impl tracing::field::Visit for LogfmtFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let text = format!("{value:?}");
            self.key(field);
            append_logfmt(&mut self.line, &text);
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.key(field);
            append_logfmt(&mut self.line, value);
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        use std::fmt::Write;
        self.key(field);
        let _ = write!(self.line, "{value}");
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        use std::fmt::Write;
        self.key(field);
        let _ = write!(self.line, "{value}");
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.key(field);
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        use std::fmt::Write;
        self.key(field);
        // serde_json's form: the shortest that reads back (`0.1`, `5.0`), `null` for NaN and
        // the infinities.
        if value.is_finite() {
            let _ = write!(self.line, "{value:?}");
        } else {
            self.line.push_str("null");
        }
    }
}

/// The line format: logfmt, or JSON with `ROOST_LOG_FORMAT=json`.
struct LineFormat {
    json: bool,
    started: std::time::Instant,
}

impl LineFormat {
    /// One event as one line, newline included.
    fn line(&self, event: &tracing::Event<'_>) -> String {
        use std::fmt::Write;
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        let t = self.started.elapsed().as_secs_f64();
        if self.json {
            let mut fields = Fields::default();
            event.record(&mut fields);
            let mut line = serde_json::Map::new();
            line.insert("t".into(), serde_json::json!((t * 1e6).round() / 1e6));
            line.insert("level".into(), level.into());
            line.insert("target".into(), meta.target().into());
            for (key, value) in fields.others {
                line.insert(key.into(), value);
            }
            line.insert("msg".into(), fields.message.into());
            return format!("{}\n", serde_json::Value::Object(line));
        }
        let mut fields = LogfmtFields {
            line: String::with_capacity(192),
            message: String::new(),
        };
        let _ = write!(
            fields.line,
            "t={t:.6}s level={level} target={}",
            meta.target()
        );
        event.record(&mut fields);
        let mut out = fields.line;
        out.push_str(" msg=");
        append_logfmt(&mut out, &fields.message);
        out.push('\n');
        out
    }
}

/// roost's subscriber: every enabled event is one line to the console sink. roost makes no
/// spans, so none are tracked (a span gets one id and is otherwise ignored); this is all
/// PID 1 needs of a subscriber, without a span registry to set up at start or consult per
/// event.
struct LineSubscriber {
    max: tracing::level_filters::LevelFilter,
    format: LineFormat,
}

impl tracing::Subscriber for LineSubscriber {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.enabled(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = self.format.line(event).into_bytes();
        if line.len() > MAX_LINE {
            // Cut, and still one line.
            line.truncate(MAX_LINE - 1);
            line.push(b'\n');
        }
        console::write_line(&line);
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
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
    let subscriber = LineSubscriber {
        max: tracing::level_filters::LevelFilter::from_level(level),
        format: LineFormat {
            json,
            started: std::time::Instant::now(),
        },
    };
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
    fn logfmt_value(value: &str) -> String {
        let mut out = String::new();
        super::append_logfmt(&mut out, value);
        out
    }

    #[test]
    fn logfmt_values_are_bare_or_quoted_and_escaped() {
        assert_eq!(logfmt_value("65534"), "65534");
        assert_eq!(logfmt_value("roost::boot"), "roost::boot");
        assert_eq!(logfmt_value(""), "\"\"");
        assert_eq!(logfmt_value("a b"), "\"a b\"");
        assert_eq!(logfmt_value("k=v"), "\"k=v\"");
        assert_eq!(logfmt_value("say \"hi\"\n\\"), "\"say \\\"hi\\\"\\n\\\\\"");
        assert_eq!(logfmt_value("\u{1b}[31m"), "\"\\u{1b}[31m\"");
        // Runs between escapes are copied whole, multi-byte characters included.
        assert_eq!(logfmt_value("é \"ü\"\u{7f}ß"), "\"é \\\"ü\\\"\\u{7f}ß\"");
    }
}
