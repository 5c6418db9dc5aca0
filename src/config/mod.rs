//! The run config (docs/run-config.md), parsed with serde and validated.
//!
//! Parsing is strict about types (a wrong type names its field through `serde_path_to_error`)
//! and lenient about presence: every field is optional, an unknown top-level key is a warning,
//! and `null` (which the Go host drivers send for empty slices and maps) means "absent". A Fly
//! machine config or Machines API request pasted as it is becomes the run config first
//! ([`fly_forms`]).

mod checks;
pub mod containers;
pub mod decode;
mod fly_forms;
pub mod graph;
mod healthcheck;
mod lifecycle;
pub mod limits;
mod schema;
mod service_files;
pub mod services;
pub mod snapshot_hooks;
pub mod typed;
mod validate;

pub use schema::{
    ApiConfig, ControlConfig, EtcHost, EtcResolv, ImageConfig, IpConfig, MmdsAfterBoot, MmdsConfig,
    MountSpec, OidcConfig, RunConfig, SignalSpec,
};
pub use validate::{parse_signal, Validated};

use std::path::{Path, PathBuf};

/// Default grace period between KillSignal and SIGKILL (Fly's default).
pub const DEFAULT_KILL_TIMEOUT_SECS: u64 = 5;
/// Longest grace period accepted; beyond it a typo ("300000") would hang a stop for days.
pub const MAX_KILL_TIMEOUT_SECS: u64 = 86_400;
/// Largest config document accepted, so a hostile source cannot make PID 1 allocate without
/// bound.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Why a run config was refused. Every variant names where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("config is not valid JSON: {0}")]
    Syntax(String),
    #[error("config field `{field}`: {problem}")]
    Field { field: String, problem: String },
}

impl ConfigError {
    pub(crate) fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Parses and validates a run config document.
pub fn parse(bytes: &[u8]) -> Result<Validated, ConfigError> {
    // serde would also accept an array for a struct; the document must be an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ConfigError::Syntax(
            "the config must be a JSON object".into(),
        ));
    }
    let form = fly_forms::recognise(bytes)?;
    let translated = match &form.translated {
        Some(doc) => Some(serde_json::to_vec(doc).map_err(|e| ConfigError::Syntax(e.to_string()))?),
        None => None,
    };
    let parsed = parse_run_config(translated.as_deref().unwrap_or(bytes))
        .and_then(validate::validate)
        .map_err(|err| match err {
            ConfigError::Field { field, problem } => ConfigError::Field {
                field: form.field_as_written(&field),
                problem,
            },
            other => other,
        });
    let mut validated = parsed?;
    let mut warnings = form.warnings;
    warnings.append(&mut validated.warnings);
    validated.warnings = warnings;
    Ok(validated)
}

fn parse_run_config(bytes: &[u8]) -> Result<RunConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let config: RunConfig = match serde_path_to_error::deserialize(&mut de) {
        Ok(config) => config,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() || path == "." {
                return Err(ConfigError::Syntax(inner.to_string()));
            }
            return Err(ConfigError::field(path, strip_position(&inner.to_string())));
        }
    };
    // Trailing garbage after the document is a syntax error, not something to ignore.
    de.end()
        .map_err(|err| ConfigError::Syntax(err.to_string()))?;
    Ok(config)
}

/// Reads and parses a config file, refusing files larger than [`MAX_CONFIG_BYTES`].
pub fn load_file(path: &Path) -> Result<Validated, ConfigError> {
    use std::io::Read;
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    // Sized from the fstat (bounded), so a config is one read and its end another.
    let size = file.metadata().map_or(0, |m| m.len().min(MAX_CONFIG_BYTES));
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            max: MAX_CONFIG_BYTES,
        });
    }
    parse(&bytes)
}

/// serde_json appends " at line L column C" to type errors; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;
