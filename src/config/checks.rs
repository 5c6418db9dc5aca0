//! The checks every section of the config shares, each once: field errors, number ranges,
//! id lists, names, text without NUL, absolute paths. A refusal always names its field.

use super::limits::{MAX_LIST, MAX_PER_SERVICE};
use super::ConfigError;
use std::path::PathBuf;

/// Shorthand for a field error.
pub fn f(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::field(field, problem)
}

/// A number within `min..=max` (each field's documented bounds), or absent.
pub fn check_range(field: &str, value: Option<u64>, min: u64, max: u64) -> Result<(), ConfigError> {
    match value {
        Some(v) if v < min || v > max => Err(f(field, format!("{v} is outside {min}..={max}"))),
        _ => Ok(()),
    }
}

/// A list of ids: at most [`MAX_LIST`] entries, none of them `u32::MAX` (`(uid_t)-1`).
pub fn check_list(field: &str, ids: &[u32]) -> Result<(), ConfigError> {
    if ids.len() > MAX_LIST {
        return Err(f(field, format!("has more than {MAX_LIST} entries")));
    }
    if ids.contains(&u32::MAX) {
        return Err(f(field, "4294967295 is not a usable id"));
    }
    Ok(())
}

/// `MachineId` and `AppName` become a host name, a line of `/etc/hosts`, path segments of
/// the Machines API and a caveat: 1 to 63 ASCII letters, digits, `-` and `_`.
pub fn check_identifier(field: &str, id: &str) -> Result<(), ConfigError> {
    let ok = (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(f(
            field,
            format!("{id:?} must be 1 to 63 ASCII letters, digits, '-' or '_'"),
        ));
    }
    Ok(())
}

pub fn check_no_nul(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.contains('\0') {
        return Err(f(field, "contains a NUL byte"));
    }
    Ok(())
}

pub fn check_argv(field: &str, argv: &[String]) -> Result<(), ConfigError> {
    for (i, arg) in argv.iter().enumerate() {
        check_no_nul(&format!("{field}[{i}]"), arg)?;
    }
    Ok(())
}

/// RFC 1123 host names: labels of letters, digits and hyphens, at most 253 characters.
pub fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} must be 1 to 253 characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!("{name:?} is not a valid host name"));
        }
    }
    Ok(())
}

/// An absolute path with no `..` component and no NUL: what every path of the config must
/// be (a `..` could lead a mount, a socket or a file outside where the field says).
pub fn check_absolute(field: &str, path: &str) -> Result<PathBuf, ConfigError> {
    check_no_nul(field, path)?;
    if !path.starts_with('/') {
        return Err(f(field, format!("{path:?} is not an absolute path")));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(f(field, format!("{path:?} has a '..' component")));
    }
    Ok(PathBuf::from(path))
}

/// A DNS label: 1 to 63 lowercase letters, digits and `-`, not at either end (the name is
/// a path segment of the API, a cgroup leaf and a log prefix).
pub fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = (1..=63).contains(&name.len())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(f(
            field,
            format!("{name:?} must be 1 to 63 lowercase letters, digits or '-' (a DNS label)"),
        ));
    }
    Ok(())
}

/// A list of a service: at most [`MAX_PER_SERVICE`] entries.
pub fn check_len<T>(field: &str, list: &[T]) -> Result<(), ConfigError> {
    if list.len() > MAX_PER_SERVICE {
        return Err(f(field, format!("has more than {MAX_PER_SERVICE} entries")));
    }
    Ok(())
}

pub fn check_env_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(f(
            field,
            format!("{name:?} is not an environment variable name"),
        ));
    }
    Ok(())
}
