//! roostctl's command line.

use crate::failure::Failure;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "roostctl",
    version,
    about = "Drive roost's control API from the host"
)]
pub struct Cli {
    /// Firecracker's host-side vsock Unix socket (speaks `CONNECT <port>`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["cid", "unix"])]
    pub uds: Option<PathBuf>,
    /// The guest's vsock CID (kernel AF_VSOCK).
    #[arg(long, value_name = "N", conflicts_with = "unix")]
    pub cid: Option<u32>,
    /// roost's control socket in container mode.
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// The control API's vsock port.
    #[arg(long, default_value_t = 10000)]
    pub port: u32,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print roost's status.
    Status,
    /// Wait for the workload to exit; exit with its code.
    Wait,
    /// Send a signal (number or name) to the workload's process group, or to a service's.
    Signal {
        signal: String,
        /// The service to signal (default: the main one, as /v1/signals does).
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
    },
    /// List the services: name, state, readiness, restarts, last exit, pid.
    Ps,
    /// Print a service's last lines; with -f, follow them.
    Logs {
        name: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop a service (its signal, SIGKILL after its timeout); it stays stopped.
    Stop { name: String },
    /// Start a service that is over.
    Start { name: String },
    /// Stop a service and start it again.
    Restart { name: String },
    /// Convert another tool's file to roost's config: `import process-compose FILE` prints
    /// the `Containers` JSON for a process-compose project (no connection to roost needed).
    /// What process-compose reads when it loads the project is read here, on this host: the
    /// `.env` beside FILE, the files `extends` names, each `env_file`; the project's
    /// `env_cmds` are run here, now, and their output written into the config.
    Import {
        #[arg(value_parser = ["process-compose"])]
        format: String,
        file: PathBuf,
        /// Where the project's directory is when it runs (in the VM): each service runs
        /// there, or in its `working_dir` resolved from there. Default: FILE's directory.
        #[arg(long)]
        project_dir: Option<PathBuf>,
        /// NAME=VALUE: a variable of the environment process-compose would run with (it
        /// substitutes `$NAME` in the file from there, after the `.env`, and gives it to every
        /// process). Repeatable.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
    },
    /// Make an image a container service can use (no connection to roost needed):
    /// `image build SOURCE (--dir DIR | --ext4 FILE) [--config FILE]` applies the layers of
    /// an OCI image layout, an oci-archive or a docker-archive into a directory or an ext4
    /// disk, and writes the image's config as `image_config` JSON.
    Image {
        #[command(subcommand)]
        command: ImageCmd,
    },
    /// Around a VM snapshot: `prepare` before the host saves the VM, `restored` after it
    /// restores one (docs/snapshots.md). Prints roost's answer.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCmd,
    },
    /// Run a command; print its output; exit with its code.
    Exec {
        #[arg(long)]
        timeout: Option<f64>,
        /// Run as the workload's user, in its directory.
        #[arg(long)]
        workload_user: bool,
        /// Run inside this service: its user, env, directory and cgroup.
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// An interactive shell (or CMD) on a terminal; exit with its code.
    Shell {
        #[arg(long)]
        workload_user: bool,
        /// Run inside this service: its user, env, directory and cgroup.
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        #[arg(last = true)]
        cmd: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Run the services' before-snapshot hooks and sync; exit 0 when the VM may be saved.
    Prepare {
        /// The bound of the whole call, in ms (default 30000).
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
    },
    /// Tell roost the VM was restored: fresh entropy (32 bytes of this host's `getrandom`),
    /// this host's clock, new tokens, the after-restore hooks.
    Restored {
        /// The VM is a new machine from the snapshot, not the one that was saved.
        #[arg(long)]
        clone: bool,
        /// The generation this restore makes (default: one more than the machine's).
        #[arg(long)]
        generation: Option<u64>,
        /// The wall clock to send, ns since 1970 (default: this host's now).
        #[arg(long, value_name = "NS")]
        time_unix_ns: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    Build {
        /// An OCI image layout directory, or an oci-archive or docker-archive tarball.
        source: PathBuf,
        /// Which image of an OCI layout (its `org.opencontainers.image.ref.name`, the tag).
        #[arg(long = "ref", value_name = "NAME")]
        reference: Option<String>,
        /// Write the root into this directory (made; it must not exist or be empty).
        #[arg(
            long,
            value_name = "DIR",
            conflicts_with = "ext4",
            required_unless_present = "ext4"
        )]
        dir: Option<PathBuf>,
        /// Write an ext4 disk image holding the root (needs mke2fs).
        #[arg(long, value_name = "FILE")]
        ext4: Option<PathBuf>,
        /// Write the image's config (`image_config` of a service) here.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub fn parse_signal(text: &str) -> Result<i64, Failure> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i64)
        .map_err(|_| Failure(2, format!("unknown signal {text:?}")))
}

/// A service name as one path segment (names are DNS labels; anything else is escaped).
pub fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
