//! The OCI runtime (runc's command line: `roost-oci`, crun, runc, youki) as PID 1 drives it:
//! the argv of each verb (pure), and one runner that starts a verb through the one reaper
//! and waits for it within a bound, so a runtime that hangs cannot hold PID 1.

use crate::supervise::handle::{ExecCommand, SupervisorHandle};
use crate::workload::Identity;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How long `create` may take (it mounts, runs hooks, clones the init).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `start`, `delete` and `kill` may take.
pub const VERB_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a failed verb's stderr goes into roost's log.
const STDERR_KEPT: usize = 2048;

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

fn stderr_suffix(stderr: &str) -> String {
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

/// Runs `argv` (a verb) to its end within `timeout`, stdout and stderr to `output` when
/// given (`create`: the container's init inherits them), else stderr kept for the error.
pub async fn run(
    handle: &SupervisorHandle,
    argv: &[String],
    output: Option<std::os::fd::OwnedFd>,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    let verb = argv.get(3).cloned().unwrap_or_default();
    let program = argv.first().cloned().unwrap_or_default();
    let spawn_err = |source| RuntimeError::Spawn {
        program: program.clone(),
        source,
    };
    let (stdout, stderr, captured) = match output {
        Some(fd) => {
            let out = fd.try_clone().map_err(spawn_err)?;
            (Stdio::from(out), Stdio::from(fd), None)
        }
        None => {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| spawn_err(e.into()))?;
            (Stdio::null(), Stdio::from(w), Some(r))
        }
    };
    let env = runtime_env();
    let identity = Identity::root();
    let (pid, exit) = handle
        .exec(ExecCommand {
            argv,
            env: &env,
            identity: &identity,
            cwd: Path::new("/"),
            stdio: [Stdio::null(), stdout, stderr],
            tty: false,
            cgroup_procs: Vec::new(),
        })
        .map_err(spawn_err)?;
    let read_stderr = async {
        let Some(fd) = captured else {
            return String::new();
        };
        read_capped(fd).await
    };
    let waited = tokio::time::timeout(timeout, async { tokio::join!(exit, read_stderr) }).await;
    match waited {
        Ok((Ok(exit), _)) if exit.exit_code() == 0 => Ok(()),
        Ok((exit, stderr)) => Err(RuntimeError::Failed {
            verb,
            code: exit.map_or(crate::exit::INTERNAL, |e| e.exit_code()),
            stderr,
        }),
        Err(_) => {
            handle.kill_exec(pid);
            Err(RuntimeError::Timeout { verb, timeout })
        }
    }
}

/// Up to [`STDERR_KEPT`] bytes of a pipe, the rest read and dropped, to its end.
async fn read_capped(fd: std::os::fd::OwnedFd) -> String {
    use tokio::io::AsyncReadExt;
    let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).trim().replace('\n', "; ")
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
