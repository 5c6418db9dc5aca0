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

impl LineFormat {
    /// One event as one line, newline included.
    fn line(&self, event: &tracing::Event<'_>) -> String {
        use std::fmt::Write;
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
            return format!("{}\n", serde_json::Value::Object(line));
        }
        let mut out = format!("t={t:.6}s level={level} target={}", meta.target());
        for (key, value) in &fields.others {
            let text = match value {
                serde_json::Value::String(s) => logfmt_value(s),
                other => other.to_string(),
            };
            let _ = write!(out, " {key}={text}");
        }
        let _ = writeln!(out, " msg={}", logfmt_value(&fields.message));
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
