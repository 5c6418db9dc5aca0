//! roost-oci: roost's OCI runtime, with runc's command line (as the OCI runtime-tools
//! command-line document and runc define it), built on youki's libcontainer.
//!
//! PID 1 runs it as a short-lived child, the way containerd runs runc: libcontainer clones
//! from its caller and changes the working directory, neither of which is safe in a
//! multi-threaded tokio process. One file per verb under `commands/`; `refuse.rs` holds what
//! roost-oci will not run (a bundle asking for more confinement than it can give).
//!
//! Exit codes: 0 success; `run` and `exec` (without `--detach`) exit with the process's code
//! (128 + N for a signal); 1 for any error, printed as `roost-oci: <what>: <why>`.

mod commands;
mod devices;
mod executor;
mod init;
mod refuse;
mod seccomp;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The default state directory (runc's is /run/runc).
pub const DEFAULT_ROOT: &str = "/run/roost-oci";

#[derive(Debug, Parser)]
#[command(
    name = "roost-oci",
    version,
    about = "roost's OCI runtime (runc's command line)"
)]
struct Cli {
    /// Where container state is kept.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Accepted for runc compatibility (roost-oci logs to stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Accepted for runc compatibility.
    #[arg(long, global = true)]
    log_format: Option<String>,
    /// Accepted for runc compatibility.
    #[arg(long, global = true)]
    debug: bool,
    /// systemd cgroups are not supported: refused when set.
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    Create(liboci_cli::Create),
    Start(liboci_cli::Start),
    State(liboci_cli::State),
    Kill(KillArgs),
    Delete(liboci_cli::Delete),
    Run(liboci_cli::Run),
    Exec(liboci_cli::Exec),
    Ps(liboci_cli::Ps),
    Features(liboci_cli::Features),
    /// The ids of the containers under --root.
    List(liboci_cli::List),
}

/// `kill ID [SIGNAL] [--all]`: the signal is optional (TERM), as runc and the OCI command-line
/// document have it (liboci-cli's definition requires it).
#[derive(Debug, clap::Args)]
struct KillArgs {
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new(), required = true)]
    container_id: String,
    #[arg(default_value = "TERM")]
    signal: String,
    /// Every process of the container, not only its init.
    #[arg(short, long)]
    all: bool,
}

fn main() {
    let cli = Cli::parse();
    if cli.systemd_cgroup {
        eprintln!("roost-oci: --systemd-cgroup: systemd cgroups are not supported");
        std::process::exit(1);
    }
    let root = cli.root.clone();
    let result = match cli.command {
        Verb::Create(args) => commands::create::run(&root, args).map(|()| 0),
        Verb::Start(args) => commands::start::run(&root, &args.container_id).map(|()| 0),
        Verb::State(args) => commands::state::run(&root, &args.container_id).map(|()| 0),
        Verb::Kill(args) => {
            commands::kill::run(&root, &args.container_id, &args.signal, args.all).map(|()| 0)
        }
        Verb::Delete(args) => {
            commands::delete::run(&root, &args.container_id, args.force).map(|()| 0)
        }
        Verb::Run(args) => commands::run::run(&root, args),
        Verb::Exec(args) => commands::exec::run(&root, args),
        Verb::Ps(args) => commands::ps::run(&root, args).map(|()| 0),
        Verb::Features(_) => commands::features::run().map(|()| 0),
        Verb::List(_) => commands::list::run(&root).map(|()| 0),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("roost-oci: {err:#}");
            std::process::exit(1);
        }
    }
}
