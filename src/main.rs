//! The `roost` binary: argument parsing only; everything else is in the library.

use roost::container_mode::{self, ContainerArgs};
use std::path::PathBuf;

const USAGE: &str = "\
usage:
  roost                                   PID 1 of a Firecracker VM
  roost container --config FILE [--control unix:PATH]
                                          PID 1 of a container or namespace
  roost --version";

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Vm,
    Container(ContainerArgs),
    Version,
    Help,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    match args.first().map(String::as_str) {
        Some("container") => {
            let mut config = None;
            let mut control = None;
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                let (name, inline) = match arg.split_once('=') {
                    Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                    _ => (arg.as_str(), None),
                };
                let mut value = |flag: &str| {
                    inline
                        .clone()
                        .or_else(|| rest.next().cloned())
                        .ok_or(format!("{flag} needs a value"))
                };
                match name {
                    "--config" => config = Some(PathBuf::from(value("--config")?)),
                    "--control" => {
                        let v = value("--control")?;
                        let path = v
                            .strip_prefix("unix:")
                            .ok_or(format!("--control {v:?}: only unix:PATH in container mode"))?;
                        control = Some(PathBuf::from(path));
                    }
                    _ => return Err(format!("unknown argument {arg:?}")),
                }
            }
            let config = config.ok_or("roost container needs --config FILE")?;
            Ok(Command::Container(ContainerArgs { config, control }))
        }
        Some("--version" | "-V") => Ok(Command::Version),
        Some("--help" | "-h") => Ok(Command::Help),
        Some(other) => Err(format!("unknown command {other:?}")),
        None if std::process::id() == 1 => Ok(Command::Vm),
        None => Err("roost without arguments is PID 1 of a VM; this is not PID 1".to_string()),
    }
}

fn main() {
    roost::logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match parse_args(&args) {
        Ok(Command::Vm) => roost::vm::main(),
        Ok(Command::Container(args)) => container_mode::run(&args),
        Ok(Command::Version) => {
            println!("roost {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Command::Help) => {
            println!("{USAGE}");
            0
        }
        Err(problem) => {
            tracing::error!("{problem}");
            eprintln!("{USAGE}");
            roost::exit::USAGE
        }
    };
    // Queued log lines reach the console before the process ends (bounded).
    roost::logging::flush(std::time::Duration::from_secs(2));
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn container_command() {
        let want = Command::Container(ContainerArgs {
            config: PathBuf::from("/c.json"),
            control: None,
        });
        assert_eq!(
            parse_args(&args(&["container", "--config", "/c.json"])),
            Ok(want)
        );
        let want = Command::Container(ContainerArgs {
            config: PathBuf::from("/c.json"),
            control: Some(PathBuf::from("/run/c.sock")),
        });
        assert_eq!(
            parse_args(&args(&[
                "container",
                "--config=/c.json",
                "--control",
                "unix:/run/c.sock"
            ])),
            Ok(want)
        );
        assert!(parse_args(&args(&[
            "container",
            "--config",
            "/c",
            "--control",
            "vsock:1"
        ]))
        .is_err());
        assert!(parse_args(&args(&["container"])).is_err());
        assert!(parse_args(&args(&["container", "--config"])).is_err());
        assert!(parse_args(&args(&["container", "--bogus"])).is_err());
        assert!(parse_args(&args(&[])).is_err());
    }
}
