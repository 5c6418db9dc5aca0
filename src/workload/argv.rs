//! Which argv the workload runs with. Pure.

use crate::config::ImageConfig;

/// Why no argv could be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    #[error("the workload has no command: ExecOverride, ImageConfig.Entrypoint and ImageConfig.Cmd are all empty")]
    Empty,
    #[error("the workload's program name (argv[0]) is an empty string")]
    EmptyProgram,
}

/// Resolves the argv, highest priority first:
/// 1. `ExecOverride` (a non-empty one replaces everything; `[]` counts as absent, as Go drivers
///    send it for "not set"),
/// 2. `Entrypoint` + `[CmdOverride]` when `CmdOverride` is given and non-empty,
/// 3. `Entrypoint` + `Cmd`.
pub fn resolve_argv(
    image: &ImageConfig,
    exec_override: Option<&[String]>,
    cmd_override: Option<&str>,
) -> Result<Vec<String>, ArgvError> {
    let argv: Vec<String> = match (exec_override, cmd_override) {
        (Some(exec), _) if !exec.is_empty() => exec.to_vec(),
        (_, Some(cmd)) if !cmd.is_empty() => {
            let mut argv = image.entrypoint.clone();
            argv.push(cmd.to_string());
            argv
        }
        _ => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    match argv.first() {
        None => Err(ArgvError::Empty),
        Some(program) if program.is_empty() => Err(ArgvError::EmptyProgram),
        Some(_) => Ok(argv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..ImageConfig::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exec_override_wins_and_keeps_order() {
        let img = image(&["/entry"], &["cmd"]);
        let exec = strings(&["ls", "-l", "-a", "/tmp"]);
        assert_eq!(
            resolve_argv(&img, Some(&exec), Some("other")),
            Ok(strings(&["ls", "-l", "-a", "/tmp"]))
        );
    }

    #[test]
    fn cmd_override_replaces_cmd_after_entrypoint() {
        let img = image(&["/entry", "--flag"], &["default", "args"]);
        assert_eq!(
            resolve_argv(&img, None, Some("run all")),
            Ok(strings(&["/entry", "--flag", "run all"]))
        );
        // With no entrypoint the override is the program.
        let img = image(&[], &["default"]);
        assert_eq!(
            resolve_argv(&img, None, Some("/bin/x")),
            Ok(strings(&["/bin/x"]))
        );
    }

    #[test]
    fn entrypoint_then_cmd() {
        let img = image(&["/entry"], &["a", "b"]);
        assert_eq!(
            resolve_argv(&img, None, None),
            Ok(strings(&["/entry", "a", "b"]))
        );
        let img = image(&[], &["/bin/sh", "-c", "x"]);
        assert_eq!(
            resolve_argv(&img, Some(&[]), Some("")),
            Ok(strings(&["/bin/sh", "-c", "x"]))
        );
    }

    #[test]
    fn empty_argv_is_an_error_not_a_panic() {
        assert_eq!(
            resolve_argv(&image(&[], &[]), None, None),
            Err(ArgvError::Empty)
        );
        assert_eq!(
            resolve_argv(&image(&[], &[]), Some(&[]), Some("")),
            Err(ArgvError::Empty)
        );
        assert_eq!(
            resolve_argv(&image(&[""], &["x"]), None, None),
            Err(ArgvError::EmptyProgram)
        );
    }
}
