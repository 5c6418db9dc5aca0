//! The project as a whole: its processes in the file's order, `replicas` expanded, each
//! name as a roost service name, and what every process shares (the shell, the project's
//! environment and directory).

use super::values::whole;
use serde_json::{Map, Value};

/// The processes' names in the file's order.
#[derive(serde::Deserialize)]
pub(super) struct FileOrder {
    #[serde(default)]
    pub processes: KeysInOrder,
}

#[derive(Default)]
pub(super) struct KeysInOrder(pub Vec<String>);

impl<'de> serde::Deserialize<'de> for KeysInOrder {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = KeysInOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeysInOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(KeysInOrder(keys))
            }
        }
        de.deserialize_map(Keys)
    }
}

/// What every process of a project shares.
pub(super) struct Project {
    pub shell: Vec<String>,
    /// `is_strict: true`: an unknown key is refused, as process-compose refuses it.
    pub strict: bool,
    /// The `.env`'s variables, which a process with `is_dotenv_disabled` does not get.
    pub dotenv: Map<String, Value>,
    /// What every process gets over the `.env`: the project's environment.
    pub env: Map<String, Value>,
    /// Absolute, without a trailing `/` (empty for `/`).
    pub dir: String,
    /// The same directory on this host, where the files the project names are read.
    pub host_dir: std::path::PathBuf,
    /// Each process's name as a roost service name.
    pub names: std::collections::BTreeMap<String, String>,
    /// A process with `replicas` > 1: its replicas' process names.
    pub replicas: Replicas,
}

/// The processes to run, each replica apart: its name, its keys, its replica number.
pub(super) type Instances = Vec<(String, Value, u64)>;

/// Each process with `replicas` > 1, and its replicas' process names.
pub(super) type Replicas = std::collections::BTreeMap<String, Vec<String>>;

/// `replicas: N` (N > 1) as N processes `NAME-0` .. `NAME-(N-1)`, each with
/// `PC_REPLICA_NUM` in its environment, as process-compose runs them.
/// Each process comes with its replica number (0 for one without replicas).
pub(super) fn expand_replicas(
    processes: &[(&String, &Value)],
) -> Result<(Instances, Replicas), String> {
    let mut out = Vec::new();
    let mut replicas = Replicas::new();
    for (name, p) in processes {
        let n = whole(&format!("processes.{name}.replicas"), p.get("replicas"))?.unwrap_or(1);
        if n <= 1 {
            out.push(((*name).clone(), (*p).clone(), 0));
            continue;
        }
        if n > 64 {
            return Err(format!(
                "processes.{name}.replicas: {n} is more than roost's 64 services of one kind"
            ));
        }
        let mut names = Vec::new();
        for k in 0..n {
            let mut replica = (*p).clone();
            if let Some(map) = replica.as_object_mut() {
                map.remove("replicas");
                let mut env = map
                    .get("environment")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                env.push(Value::String(format!("PC_REPLICA_NUM={k}")));
                map.insert("environment".into(), Value::Array(env));
            }
            let replica_name = format!("{name}-{k}");
            names.push(replica_name.clone());
            out.push((replica_name, replica, k));
        }
        replicas.insert((*name).clone(), names);
    }
    Ok((out, replicas))
}

impl Project {
    /// The processes a dependency on `process` waits for: each of its replicas, or itself.
    pub(super) fn targets_of(&self, process: &str) -> Vec<String> {
        match self.replicas.get(process) {
            Some(replicas) => replicas.iter().map(|r| self.name_of(r)).collect(),
            None => vec![self.name_of(process)],
        }
    }

    pub(super) fn name_of(&self, process: &str) -> String {
        self.names
            .get(process)
            .cloned()
            .unwrap_or_else(|| service_name(process))
    }

    /// A process's directory: the project's, or a `working_dir` resolved from it, with `.`
    /// and `..` resolved as the kernel would (roost refuses a `..` in a path).
    pub(super) fn dir_of(&self, working_dir: Option<&str>) -> String {
        let joined = match working_dir {
            Some(dir) if dir.starts_with('/') => dir.to_string(),
            Some(dir) => format!("{}/{dir}", self.dir),
            None => self.dir.clone(),
        };
        let mut parts: Vec<&str> = Vec::new();
        for part in joined.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                part => parts.push(part),
            }
        }
        format!("/{}", parts.join("/"))
    }
}

/// process-compose's names as roost's (DNS labels): lowercase, `_` and `.` as `-`.
pub(super) fn service_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    // A label neither starts nor ends with `-` (`_pc_log` is `pc-log`).
    mapped.trim_matches('-').to_string()
}

/// Every process's service name; a name changed is said, two that become one are refused.
pub(super) fn service_names<'a>(
    processes: impl Iterator<Item = &'a String>,
    warnings: &mut Vec<String>,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut names = std::collections::BTreeMap::new();
    let mut taken: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for process in processes {
        let name = service_name(process);
        if !is_dns_label(&name) {
            return Err(format!(
                "processes.{process}: roost's service names are DNS labels (letters, digits, '-', at most 63, not starting or ending with '-'); {name:?} is not one, rename it"
            ));
        }
        if let Some(other) = taken.insert(name.clone(), process.clone()) {
            return Err(format!(
                "processes.{process} and processes.{other} would both be service {name:?}: rename one"
            ));
        }
        if name != *process {
            warnings.push(format!(
                "processes.{process}: the service is named {name:?} (roost's names are DNS labels)"
            ));
        }
        names.insert(process.clone(), name);
    }
    Ok(names)
}

pub(super) fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A process's `extends: OTHER` (another process of the project, as far down a chain as it
/// goes): the other's keys, with the process's own winning, and the two `environment` lists
/// merged by name (the process's value wins). A chain that comes back to itself is refused.
pub(super) fn resolve_extends(
    processes: &[(&String, &Value)],
) -> Result<Vec<(String, Value)>, String> {
    let by_name: std::collections::BTreeMap<&str, &Value> =
        processes.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    let mut out = Vec::new();
    for (name, p) in processes {
        let mut chain: Vec<String> = vec![(*name).clone()];
        let mut merged = (*p).clone();
        let mut next = p.get("extends").and_then(Value::as_str).map(str::to_string);
        while let Some(base_name) = next {
            if chain.contains(&base_name) {
                return Err(format!(
                    "processes.{name}.extends: a chain that comes back to itself ({} -> {base_name})",
                    chain.join(" -> ")
                ));
            }
            let Some(base) = by_name.get(base_name.as_str()) else {
                return Err(format!(
                    "processes.{name}.extends: no process named {base_name:?} in this file"
                ));
            };
            next = base
                .get("extends")
                .and_then(Value::as_str)
                .map(str::to_string);
            chain.push(base_name);
            merged = merge(base, &merged);
        }
        if let Some(map) = merged.as_object_mut() {
            map.remove("extends");
        }
        out.push(((*name).clone(), merged));
    }
    Ok(out)
}

/// `base` with `over` on top, as process-compose merges a process into the one it extends
/// and a project into the file it extends: a mapping key by key, down every level (so a
/// probe can change one field), `environment` lists by variable name, other lists appended
/// (`entrypoint`, `success_exit_codes`), except `namespace`, which is replaced; any other
/// value replaced. (process-compose's merge also keeps the base's value where `over` sets a
/// zero value such as `false` or `0`; here what the file says wins.)
pub(super) fn merge(base: &Value, over: &Value) -> Value {
    let (Some(b), Some(o)) = (base.as_object(), over.as_object()) else {
        return over.clone();
    };
    let mut out = b.clone();
    for (key, value) in o {
        let merged = match (key.as_str(), b.get(key), value) {
            ("environment", Some(Value::Array(base_env)), Value::Array(over_env)) => {
                let mut env = base_env.clone();
                for entry in over_env {
                    let name = entry
                        .as_str()
                        .and_then(|e| e.split_once('='))
                        .map(|(k, _)| k);
                    env.retain(|e| {
                        name.is_none()
                            || e.as_str().and_then(|e| e.split_once('=')).map(|(k, _)| k) != name
                    });
                    env.push(entry.clone());
                }
                Value::Array(env)
            }
            ("namespace", _, _) => value.clone(),
            (_, Some(Value::Array(base_list)), Value::Array(over_list)) => {
                Value::Array(base_list.iter().chain(over_list).cloned().collect())
            }
            (_, Some(base_value @ Value::Object(_)), Value::Object(_)) => merge(base_value, value),
            _ => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}
