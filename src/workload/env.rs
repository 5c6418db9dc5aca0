//! The workload's environment. Pure.

use std::collections::BTreeMap;

/// PATH used when neither the image nor ExtraEnv sets one (Docker's and runc's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An environment: `KEY=VALUE` pairs in a stable order, each key once. The one type every
/// environment roost builds is (a service's, the broker's additions, `NOTIFY_SOCKET`, an
/// exec's); it reads as a slice of pairs wherever one is taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(Vec<(String, String)>);

impl Env {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key`, replacing an existing value in place (else appending it).
    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }
}

impl std::ops::Deref for Env {
    type Target = [(String, String)];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Env {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq<Vec<(String, String)>> for Env {
    fn eq(&self, other: &Vec<(String, String)>) -> bool {
        &self.0 == other
    }
}

impl From<Vec<(String, String)>> for Env {
    /// Pairs in order; a later pair of a key already there replaces its value.
    fn from(pairs: Vec<(String, String)>) -> Self {
        let mut env = Env::default();
        for (k, v) in pairs {
            env.set(&k, &v);
        }
        env
    }
}

/// The merged environment in a stable order, and what was skipped on the way.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MergedEnv {
    pub vars: Env,
    pub warnings: Vec<String>,
}

impl MergedEnv {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key)
    }

    /// Sets `key`, replacing an existing value in place.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.set(key, value);
    }
}

/// A variable name the kernel and libc can carry: non-empty, no `=` and no NUL.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('=') && !key.contains('\0')
}

/// Merges the image's `Env` (`"K=V"` entries, later ones win) with `ExtraEnv` (wins over the
/// image), then fills `HOME` from the user's passwd entry and a default `PATH` when absent.
/// Malformed entries are skipped with a warning instead of failing the boot.
pub fn merge_env(
    image_env: &[String],
    extra_env: &BTreeMap<String, String>,
    home: &str,
) -> MergedEnv {
    let mut merged = MergedEnv::default();
    for (i, entry) in image_env.iter().enumerate() {
        match entry.split_once('=') {
            Some((key, value)) if valid_key(key) && !value.contains('\0') => merged.set(key, value),
            _ => merged.warnings.push(format!(
                "skipping ImageConfig.Env[{i}] {entry:?}: not a KEY=VALUE entry"
            )),
        }
    }
    for (key, value) in extra_env {
        if valid_key(key) && !value.contains('\0') {
            merged.set(key, value);
        } else {
            merged.warnings.push(format!(
                "skipping ExtraEnv key {key:?}: not a valid variable name"
            ));
        }
    }
    if merged.get("HOME").is_none() {
        merged.set("HOME", home);
    }
    if merged.get("PATH").is_none() {
        merged.set("PATH", DEFAULT_PATH);
    }
    merged
}

/// The environment of a command the host runs as root (`/v1/exec`, ws exec without
/// `workload_user`), as `sudo`'s `env_reset` builds it: nothing that names a path is taken
/// from the workload's environment, which a non-root workload may have pointed at files of
/// its own (a `PATH` entry holding its `ls`, a `HOME` with a `.bashrc`, `ENV`, `BASH_ENV`,
/// `LD_PRELOAD`...). Only the locale, `TERM` and `TZ` are carried over, and only when their
/// value names no file (no `/`).
pub fn root_env(workload_env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOME".to_string(), "/root".to_string()),
        ("USER".to_string(), "root".to_string()),
        ("LOGNAME".to_string(), "root".to_string()),
    ];
    let kept = |key: &str| {
        matches!(key, "LANG" | "LANGUAGE" | "TERM" | "TZ")
            || (key.starts_with("LC_") && key[3..].bytes().all(|b| b.is_ascii_uppercase()))
    };
    for (key, value) in workload_env {
        if kept(key) && !value.contains('/') && !value.contains("..") {
            env.push((key.clone(), value.clone()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_env_takes_nothing_that_names_a_path() {
        let workload: Vec<(String, String)> = [
            ("PATH", "/home/app/bin:/usr/bin"),
            ("HOME", "/home/app"),
            ("ENV", "/home/app/.rc"),
            ("BASH_ENV", "/home/app/.rc"),
            ("LD_PRELOAD", "/home/app/evil.so"),
            ("PYTHONPATH", "/home/app"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("TZ", "/home/app/tz"),
            ("TERM", "xterm"),
            ("SECRET", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = root_env(&workload);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM"]
        );
        assert_eq!(env[0].1, DEFAULT_PATH);
        assert_eq!(env[1].1, "/root");
    }

    fn env(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn extra_env_wins_and_order_is_stable() {
        let extra = BTreeMap::from([("B".to_string(), "extra".to_string())]);
        let m = merge_env(&env(&["A=1", "B=image", "A=2"]), &extra, "/root");
        assert_eq!(
            m.vars,
            vec![
                ("A".into(), "2".into()),
                ("B".into(), "extra".into()),
                ("HOME".into(), "/root".into()),
                ("PATH".into(), DEFAULT_PATH.into()),
            ]
        );
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn malformed_entries_are_skipped_with_a_warning() {
        let extra = BTreeMap::from([
            ("".to_string(), "x".to_string()),
            ("A=B".to_string(), "x".to_string()),
        ]);
        let m = merge_env(
            &env(&["NOEQUALS", "=empty", "OK=v=w", "NUL=a\0b"]),
            &extra,
            "/",
        );
        assert_eq!(m.get("OK"), Some("v=w"));
        assert_eq!(m.get("NUL"), None);
        assert_eq!(m.warnings.len(), 5, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("ImageConfig.Env[0]"));
    }

    #[test]
    fn image_path_and_home_are_kept() {
        let m = merge_env(
            &env(&["PATH=/opt/bin", "HOME=/app"]),
            &BTreeMap::new(),
            "/home/u",
        );
        assert_eq!(m.get("PATH"), Some("/opt/bin"));
        assert_eq!(m.get("HOME"), Some("/app"));
    }

    #[test]
    fn empty_value_is_kept() {
        let m = merge_env(&env(&["EMPTY="]), &BTreeMap::new(), "/");
        assert_eq!(m.get("EMPTY"), Some(""));
    }
}
