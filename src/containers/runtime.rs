//! The OCI runtime (runc's command line: `roost-oci`, crun, runc, youki) as PID 1 drives it:
//! the argv of each verb and their bounds, pure. The supervisor runs them
//! ([`crate::containers::verb`]) through the one reaper.

use crate::workload::Identity;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `create` may take (it mounts, runs hooks, clones the init).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `start`, `delete` and `kill` may take.
pub const VERB_TIMEOUT: Duration = Duration::from_secs(10);

/// A runtime and the state directory it keeps its containers in (its `--root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub program: PathBuf,
    pub root: PathBuf,
}

/// Why a verb failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{verb}` did not end within {} s and was killed", .timeout.as_secs())]
    Timeout { verb: String, timeout: Duration },
    #[error("`{verb}` failed with code {code}{}", stderr_suffix(.stderr))]
    Failed {
        verb: String,
        code: i32,
        stderr: String,
    },
}

pub(crate) fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl Runtime {
    fn base(&self, verb: &str) -> Vec<String> {
        vec![
            self.program.to_string_lossy().into_owned(),
            "--root".into(),
            self.root.to_string_lossy().into_owned(),
            verb.into(),
        ]
    }

    pub fn create_argv(&self, id: &str, bundle: &Path, pid_file: &Path) -> Vec<String> {
        let mut argv = self.base("create");
        argv.extend([
            "--bundle".into(),
            bundle.to_string_lossy().into_owned(),
            "--pid-file".into(),
            pid_file.to_string_lossy().into_owned(),
            id.into(),
        ]);
        argv
    }

    pub fn start_argv(&self, id: &str) -> Vec<String> {
        let mut argv = self.base("start");
        argv.push(id.into());
        argv
    }

    /// `delete --force`: also a container whose init is still there (a start that failed).
    pub fn delete_argv(&self, id: &str) -> Vec<String> {
        let mut argv = self.base("delete");
        argv.extend(["--force".into(), id.into()]);
        argv
    }

    /// A command inside the running container, as `identity` in `cwd`, with the container's
    /// own env (the runtime takes it from the bundle, so no value is on a command line).
    pub fn exec_argv(
        &self,
        id: &str,
        identity: &Identity,
        cwd: &Path,
        command: &[String],
    ) -> Vec<String> {
        let mut argv = self.base("exec");
        argv.extend([
            "--cwd".into(),
            cwd.to_string_lossy().into_owned(),
            "--user".into(),
            format!("{}:{}", identity.uid, identity.gid),
        ]);
        for gid in identity.groups.iter().filter(|&&g| g != identity.gid) {
            argv.extend(["--additional-gids".into(), gid.to_string()]);
        }
        argv.push(id.into());
        argv.extend(command.iter().cloned());
        argv
    }
}

/// The runtime's environment: nothing of roost's own.
pub fn runtime_env() -> Vec<(String, String)> {
    vec![(
        "PATH".into(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> Runtime {
        Runtime {
            program: "/usr/bin/roost-oci".into(),
            root: "/run/roost/containers/.state".into(),
        }
    }

    #[test]
    fn verbs_carry_the_state_root_first() {
        let argv = rt().create_argv("web", Path::new("/b/web"), Path::new("/b/web/pid"));
        assert_eq!(
            argv,
            [
                "/usr/bin/roost-oci",
                "--root",
                "/run/roost/containers/.state",
                "create",
                "--bundle",
                "/b/web",
                "--pid-file",
                "/b/web/pid",
                "web"
            ]
        );
        assert_eq!(rt().start_argv("web")[3..], ["start", "web"]);
        assert_eq!(rt().delete_argv("web")[3..], ["delete", "--force", "web"]);
    }

    #[test]
    fn exec_names_user_groups_and_directory_but_no_env() {
        let identity = Identity {
            uid: 300,
            gid: 300,
            groups: vec![300, 301],
            home: "/home/svc".into(),
        };
        let cmd = vec!["sh".to_string(), "-c".into(), "id -u".into()];
        let argv = rt().exec_argv("web", &identity, Path::new("/srv"), &cmd);
        assert_eq!(
            argv[3..],
            [
                "exec",
                "--cwd",
                "/srv",
                "--user",
                "300:300",
                "--additional-gids",
                "301",
                "web",
                "sh",
                "-c",
                "id -u"
            ]
        );
        assert!(!argv.iter().any(|a| a == "--env"));
    }
}
