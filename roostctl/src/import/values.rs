//! Numbers as process-compose reads them.

use serde_json::Value;

/// A number as process-compose reads one: a YAML number, or a string holding one (`"5"`,
/// and what `${WAIT_SEC}` became). Anything else is refused with its key, never dropped
/// (a dropped `backoff_seconds: "5"` was 1 s, a dropped `max_restarts: "3"` unlimited).
pub(super) fn number(field: &str, v: Option<&Value>) -> Result<Option<f64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| format!("{field}: {s:?} is not a number")),
        Some(other) => Err(format!("{field}: {other} is not a number")),
    }
}

/// A string as process-compose's YAML reads one into a string field: a scalar's text, so
/// `command: false` is the command `false` (not a refusal).
pub(super) fn text(field: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("{field}: a string")),
    }
}

/// A whole number >= 0, as [`number`] reads it.
pub(super) fn whole(field: &str, v: Option<&Value>) -> Result<Option<u64>, String> {
    match number(field, v)? {
        None => Ok(None),
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => Ok(Some(n as u64)),
        Some(n) => Err(format!("{field}: {n} is not a whole number >= 0")),
    }
}
