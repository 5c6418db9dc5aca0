//! The documents users paste from Fly, and keys roost does not know (docs/run-config.md,
//! "Fly's own forms"). A Fly machine config as written (`{"containers": [...], "env": {...}}`)
//! or a Machines API request (`{"name": ..., "config": {...}}`) is turned into roost's run
//! config, with each key that is the host's (flyd's) business named in a warning and each that
//! cannot be expressed refused; in roost's own form, every top-level key it does not know is a
//! warning (before, both were ignored without a word). Errors name the keys the user wrote.

use super::schema::RunConfig;
use super::ConfigError;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Keys of a Fly machine config that are the host's to act on (flyd's, or its proxy's): the
/// guest has nothing to do with them.
const HOST_KEYS: [&str; 14] = [
    "auto_destroy",
    "checks",
    "dns",
    "guest",
    "image",
    "metadata",
    "metrics",
    "restart",
    "schedule",
    "services",
    "size",
    "standbys",
    "statics",
    "disable_machine_autostart",
];

/// Keys of a Fly machine config roost maps (or refuses with a reason).
const MAPPED_KEYS: [&str; 7] = [
    "containers",
    "volumes",
    "env",
    "stop_config",
    "init",
    "mounts",
    "files",
];

/// What was made of a document.
#[derive(Debug, Default)]
pub struct Recognised {
    /// roost's run config made from a Fly form (None: the document is roost's own).
    pub translated: Option<Value>,
    /// Where a Fly form's machine config was (`""` or `"config."`), for error paths.
    pub fly_prefix: Option<&'static str>,
    pub warnings: Vec<String>,
}

impl Recognised {
    /// A field path of the run config as the user wrote it.
    pub fn field_as_written(&self, field: &str) -> String {
        let Some(prefix) = self.fly_prefix else {
            return field.to_string();
        };
        for (ours, theirs) in [
            ("Containers", "containers"),
            ("Volumes", "volumes"),
            ("ExtraEnv", "env"),
            ("KillSignal", "stop_config.signal"),
            ("KillTimeout", "stop_config.timeout"),
            ("ExecOverride", "init.exec"),
        ] {
            if let Some(rest) = field.strip_prefix(ours) {
                return format!("{prefix}{theirs}{rest}");
            }
        }
        format!("{prefix}{field}")
    }
}

/// Looks at a document's top-level keys, and turns a Fly form into roost's.
pub fn recognise(bytes: &[u8]) -> Result<Recognised, ConfigError> {
    // A document that is not a JSON object is reported by the real parse.
    let Ok(TopLevelKeys(keys)) = serde_json::from_slice::<TopLevelKeys>(bytes) else {
        return Ok(Recognised::default());
    };
    let ours = run_config_keys();
    let is_ours = |k: &str| ours.contains(&k);
    let fly_key = |k: &str| HOST_KEYS.contains(&k) || MAPPED_KEYS.contains(&k);
    let request = keys.iter().any(|k| k == "config");
    let fly = !keys.iter().any(|k| is_ours(k)) && (request || keys.iter().any(|k| fly_key(k)));
    if !fly {
        // roost's own form (also when nothing in it is anyone's): its unknown keys said.
        let warnings = keys
            .iter()
            .filter(|k| !is_ours(k))
            .map(|k| format!("{k}: not a key of the run config (docs/run-config.md): ignored"))
            .collect();
        return Ok(Recognised {
            warnings,
            ..Recognised::default()
        });
    }
    let doc: Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    let mut warnings = Vec::new();
    let (config, prefix) = if request {
        for key in doc.keys().filter(|k| *k != "config") {
            warnings.push(format!(
                "{key}: part of the Machines API request, not of the machine: ignored"
            ));
        }
        match doc.get("config") {
            Some(Value::Object(config)) => (config.clone(), "config."),
            _ => {
                return Err(ConfigError::field(
                    "config",
                    "a Machines API request's config must be an object",
                ))
            }
        }
    } else {
        (doc, "")
    };
    let translated = from_machine_config(&config, prefix, &mut warnings)?;
    Ok(Recognised {
        translated: Some(Value::Object(translated)),
        fly_prefix: Some(prefix),
        warnings,
    })
}

/// A Fly machine config as roost's run config.
fn from_machine_config(
    config: &Map<String, Value>,
    prefix: &str,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, ConfigError> {
    let mut out = Map::new();
    for (key, value) in config {
        let at = format!("{prefix}{key}");
        match key.as_str() {
            "containers" => {
                out.insert("Containers".into(), value.clone());
            }
            "volumes" => {
                out.insert("Volumes".into(), value.clone());
            }
            "env" => {
                out.insert("ExtraEnv".into(), value.clone());
            }
            "stop_config" => stop_config(&at, value, &mut out)?,
            "init" => init(&at, value, &mut out, warnings)?,
            "mounts" => warnings.push(format!(
                "{at}: Fly volumes are attached by the host as disks; roost mounts a disk given as Mounts [{{DevicePath, MountPath}}]: ignored"
            )),
            "files" => {
                return Err(ConfigError::field(
                    at,
                    "machine-level files are not supported: give them to a container (containers[].files)",
                ))
            }
            host if HOST_KEYS.contains(&host) => warnings.push(format!(
                "{at}: the host's (flyd's) part of the machine config, not the guest's: ignored"
            )),
            _ => warnings.push(format!(
                "{at}: not a key of a Fly machine config roost knows: ignored"
            )),
        }
    }
    Ok(out)
}

/// `stop_config {signal, timeout}`: `KillSignal`, and `KillTimeout` in whole seconds (the
/// timeout is nanoseconds as a number, or a Go duration string).
fn stop_config(at: &str, value: &Value, out: &mut Map<String, Value>) -> Result<(), ConfigError> {
    let Some(stop) = value.as_object() else {
        return Err(ConfigError::field(at, "an object {signal, timeout}"));
    };
    if let Some(signal) = stop.get("signal").filter(|s| !s.is_null()) {
        out.insert("KillSignal".into(), signal.clone());
    }
    let secs = match stop.get("timeout") {
        None | Some(Value::Null) => None,
        Some(Value::Number(ns)) => {
            let ns = ns.as_u64().ok_or_else(|| {
                ConfigError::field(format!("{at}.timeout"), "nanoseconds: a whole number >= 0")
            })?;
            Some(ns.div_ceil(1_000_000_000))
        }
        Some(Value::String(text)) => {
            let d = super::decode::parse_go_duration(text)
                .map_err(|e| ConfigError::field(format!("{at}.timeout"), e))?;
            Some(d.as_secs() + u64::from(d.subsec_nanos() > 0))
        }
        Some(_) => {
            return Err(ConfigError::field(
                format!("{at}.timeout"),
                "nanoseconds or a Go duration (\"30s\")",
            ))
        }
    };
    if let Some(secs) = secs {
        out.insert("KillTimeout".into(), secs.into());
    }
    Ok(())
}

/// `init`: `exec` is the argv (`ExecOverride`); `entrypoint` and `cmd` replace the image's,
/// which a pasted machine config does not carry (the host resolves `image`).
fn init(
    at: &str,
    value: &Value,
    out: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let Some(init) = value.as_object() else {
        return Err(ConfigError::field(at, "an object"));
    };
    for (key, v) in init {
        let empty = v.is_null() || v.as_array().is_some_and(Vec::is_empty);
        match key.as_str() {
            "exec" if !empty => {
                out.insert("ExecOverride".into(), v.clone());
            }
            "entrypoint" | "cmd" if !empty => {
                return Err(ConfigError::field(
                    format!("{at}.{key}"),
                    "replaces the image's, and the image's config is the host's to resolve from image: give init.exec (the whole argv) instead",
                ))
            }
            "exec" | "entrypoint" | "cmd" => {}
            _ => warnings.push(format!(
                "{at}.{key}: the host's (the VM's settings), not the init's: ignored"
            )),
        }
    }
    Ok(())
}

/// A document's top-level keys, read without building its values.
struct TopLevelKeys(Vec<String>);

impl<'de> Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = TopLevelKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevelKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(TopLevelKeys(keys))
            }
        }
        de.deserialize_map(Keys)
    }
}

/// The run config's top-level keys as serde knows them, so the list cannot drift from
/// [`RunConfig`]: its `Deserialize` is handed a deserializer that only records the field
/// names it is asked for.
fn run_config_keys() -> &'static [&'static str] {
    match RunConfig::deserialize(FieldNames) {
        Err(FieldsOf(fields)) => fields,
        Ok(_) => &[],
    }
}

struct FieldNames;

#[derive(Debug)]
struct FieldsOf(&'static [&'static str]);

impl std::fmt::Display for FieldsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} fields", self.0.len())
    }
}

impl std::error::Error for FieldsOf {}

impl serde::de::Error for FieldsOf {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        FieldsOf(&[])
    }
}

impl<'de> serde::Deserializer<'de> for FieldNames {
    type Error = FieldsOf;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, FieldsOf> {
        Err(FieldsOf(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, FieldsOf> {
        Err(FieldsOf(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_configs_keys_come_from_its_struct() {
        let keys = run_config_keys();
        for key in [
            "ImageConfig",
            "MTU",
            "IPConfigs",
            "Containers",
            "Snapshot",
            "MemoryLimitMiB",
        ] {
            assert!(keys.contains(&key), "{key}: {keys:?}");
        }
        assert!(!keys.contains(&"containers"));
    }

    #[test]
    fn paths_name_what_the_user_wrote() {
        let r = recognise(br#"{"config": {"containers": []}, "region": "ord"}"#).expect("ok");
        assert_eq!(
            r.field_as_written("Containers[0].name"),
            "config.containers[0].name"
        );
        assert_eq!(
            r.field_as_written("KillTimeout"),
            "config.stop_config.timeout"
        );
        let r = recognise(br#"{"containers": []}"#).expect("ok");
        assert_eq!(r.field_as_written("Volumes[1]"), "volumes[1]");
        let r = recognise(br#"{"Containers": []}"#).expect("ok");
        assert_eq!(r.field_as_written("Containers[0]"), "Containers[0]");
    }
}
