//! `roostctl import process-compose FILE`: a process-compose project as roost's `Containers`
//! (docs/services.md has the mapping). What roost cannot express is refused with the
//! process's name and the key, never dropped silently. YAML is parsed here, on the host:
//! PID 1 reads JSON only.

mod interpolate;
mod lifecycle;
mod load;
mod project;
mod templates;
mod values;

use lifecycle::{availability, probe_to_check, stop};
use project::{expand_replicas, service_names, Project};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// `FILE` as process-compose loads it: the `.env` beside it, the files its `extends` names,
/// each process's `env_file` and the project's `env_cmds`, read and run here, on this host.
/// `project_dir` is where the project's directory is when it runs (an absolute path; the
/// file's own directory by default).
pub fn process_compose_file(
    file: &Path,
    project_dir: Option<&str>,
    given: &BTreeMap<String, String>,
) -> Result<(Value, Vec<String>), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let host_dir = std::fs::canonicalize(file)
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .ok_or_else(|| format!("cannot resolve the directory of {}", file.display()))?;
    let project_dir = match project_dir {
        Some(dir) => dir.to_string(),
        None => host_dir.to_string_lossy().into_owned(),
    };
    // The project's `.env`, beside the file, as process-compose reads it.
    let dotenv = std::fs::read_to_string(host_dir.join(".env")).ok();
    import(&text, &host_dir, &project_dir, dotenv.as_deref(), given)
}

/// Converts a process-compose YAML document to `{"Containers": [...]}`, or explains why not.
/// Warnings (keys roost ignores, such as logging options, and names it changed) come back
/// beside the result. `project_dir` is where the project's directory is when it runs (an
/// absolute path): process-compose runs a process without `working_dir` there and resolves
/// a relative one from there, so every service gets its directory written out. `dotenv` is
/// the project's `.env` file, when it has one: its variables are substituted in the file
/// and given to every process, as process-compose does ([`interpolate`]). A file that
/// names other files (`extends`, `env_file`) has them read from `project_dir` on this host.
#[cfg(test)]
pub fn process_compose(
    yaml: &str,
    project_dir: &str,
    dotenv: Option<&str>,
) -> Result<(Value, Vec<String>), String> {
    import(
        yaml,
        Path::new(project_dir),
        project_dir,
        dotenv,
        &BTreeMap::new(),
    )
}

fn import(
    yaml: &str,
    host_dir: &Path,
    project_dir: &str,
    dotenv: Option<&str>,
    given: &BTreeMap<String, String>,
) -> Result<(Value, Vec<String>), String> {
    if !project_dir.starts_with('/') {
        return Err(format!(
            "the project directory {project_dir:?} must be an absolute path"
        ));
    }
    let loaded = load::load(yaml, host_dir, dotenv, given)?;
    let doc = loaded.doc;
    let mut warnings = Vec::new();
    if !loaded.unset.is_empty() {
        let names: Vec<&str> = loaded.unset.iter().map(String::as_str).collect();
        warnings.push(format!(
            "not set at import (the .env or --env NAME=VALUE), so left as written: {}; a command's shell expands them when it runs, anywhere else they stay as they are",
            names.join(", ")
        ));
    }
    let Some(project) = doc.as_object() else {
        return Err("the file is not a process-compose project (a mapping)".into());
    };
    let strict = project.get("is_strict").and_then(Value::as_bool) == Some(true);
    for key in project.keys() {
        match key.as_str() {
            "version"
            | "processes"
            | "environment"
            | "shell"
            | "is_strict"
            | "is_dotenv_disabled"
            | "disable_env_expansion"
            | "vars"
            | "env_cmds" => {}
            "log_location" | "log_level" | "log_length" | "log_configuration"
            | "is_tui_disabled" | "name" => {
                warnings.push(format!("{key}: ignored (roost's logs go to the console)"))
            }
            "ordered_shutdown" => warnings
                .push("ordered_shutdown: roost always stops in reverse dependency order".into()),
            other if other.starts_with("x-") => {}
            other => unknown_key(other, strict, &mut warnings)?,
        }
    }
    let shell = shell(project.get("shell"))?;
    // process-compose's order, lowest first: the `.env`, its own environment (here what
    // `--env` gives), the project's `environment`, then the `env_cmds`' values, as
    // process-compose appends them.
    let as_env = |vars: &BTreeMap<String, String>| -> Map<String, Value> {
        vars.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    };
    let mut project_env = as_env(given);
    project_env.extend(env_list("environment", project.get("environment"))?);
    match project.get("env_cmds") {
        None | Some(Value::Null) => {}
        Some(Value::Object(cmds)) => {
            project_env.extend(load::env_cmds(cmds, &shell, host_dir, &mut warnings)?)
        }
        Some(_) => return Err("env_cmds: a mapping of variable name to command".into()),
    }
    let vars = match project.get("vars") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(vars)) => vars.clone(),
        Some(_) => return Err("vars: a mapping of name to value".into()),
    };
    let Some(processes) = project.get("processes").and_then(Value::as_object) else {
        return Err("processes: missing (a mapping of name to process)".into());
    };
    // The file's order, which a JSON map does not keep: the first process is the machine's
    // main service (where signals go and whose code a requested stop reports).
    let order = loaded.order;
    let mut in_order: Vec<(&String, &Value)> = order
        .iter()
        .filter_map(|name| processes.get_key_value(name))
        .collect();
    for (name, p) in processes {
        if !order.contains(name) {
            in_order.push((name, p));
        }
    }
    let extended = project::resolve_extends(&in_order)?;
    let in_order: Vec<(&String, &Value)> = extended.iter().map(|(n, p)| (n, p)).collect();
    let (mut ordered, replicas) = expand_replicas(&in_order)?;
    for (name, p, replica) in &mut ordered {
        templates::render_process(&format!("processes.{name}"), p, &vars, *replica)?;
    }
    let names = service_names(ordered.iter().map(|(name, _, _)| name), &mut warnings)?;
    let project = Project {
        shell,
        strict,
        dotenv: as_env(&loaded.dotenv),
        env: project_env,
        dir: project_dir.trim_end_matches('/').to_string(),
        host_dir: host_dir.to_path_buf(),
        names,
        replicas,
    };
    let mut containers = Vec::new();
    for (name, p, _) in &ordered {
        containers.push(process(name, p, &project, &mut warnings)?);
    }
    Ok((json!({ "Containers": containers }), warnings))
}

/// A key process-compose does not know: it logs an error and goes on, or refuses the project
/// when it is `is_strict`; so does the import.
fn unknown_key(at: &str, strict: bool, warnings: &mut Vec<String>) -> Result<(), String> {
    if strict {
        return Err(format!(
            "{at}: unknown key (the project is is_strict, which process-compose refuses too)"
        ));
    }
    warnings.push(format!(
        "{at}: unknown key, ignored (process-compose ignores it too, with an error)"
    ));
    Ok(())
}

fn shell(v: Option<&Value>) -> Result<Vec<String>, String> {
    // process-compose's default: `bash -c`.
    let Some(v) = v else {
        return Ok(vec!["bash".into(), "-c".into()]);
    };
    let command = v["shell_command"].as_str().unwrap_or("bash");
    let argument = v["shell_argument"].as_str().unwrap_or("-c");
    Ok(vec![command.into(), argument.into()])
}

fn env_list(field: &str, v: Option<&Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    let Some(items) = v.as_array() else {
        return Err(format!("{field}: a list of KEY=VALUE entries"));
    };
    for item in items {
        let entry = item
            .as_str()
            .ok_or_else(|| format!("{field}: {item} is not KEY=VALUE"))?;
        let (k, val) = entry
            .split_once('=')
            .ok_or_else(|| format!("{field}: {entry:?} is not KEY=VALUE"))?;
        out.insert(k.to_string(), Value::String(val.to_string()));
    }
    Ok(out)
}

fn process(
    name: &str,
    p: &Value,
    project: &Project,
    warnings: &mut Vec<String>,
) -> Result<Value, String> {
    let at = |key: &str| format!("processes.{name}.{key}");
    let shell = project.shell.as_slice();
    let Some(p) = p.as_object() else {
        return Err(format!("processes.{name}: not a mapping"));
    };
    let mut c = Map::new();
    c.insert("name".into(), project.name_of(name).into());
    for (key, value) in p {
        let refuse = |why: &str| Err(format!("{}: {why}", at(key)));
        match key.as_str() {
            "command" | "entrypoint" | "environment" | "working_dir" | "depends_on"
            | "readiness_probe" | "liveness_probe" | "ready_log_line" | "availability"
            | "shutdown" | "success_exit_codes" | "description" => {}
            "log_location" | "log_configuration" => warnings.push(format!(
                "{}: ignored (roost's logs go to the console)",
                at(key)
            )),
            // Forks and exits (`pg_ctl start`): roost's `daemon`, alive while its leaf is.
            "is_daemon" if value.as_bool() == Some(true) => {
                c.insert("daemon".into(), true.into());
            }
            // Defined, started only when asked: roost's `start: manual`.
            "disabled" | "is_foreground" if value.as_bool() == Some(true) => {
                c.insert("start".into(), "manual".into());
            }
            "is_daemon" | "replicas" | "disabled" | "is_foreground" | "extends" | "env_file"
            | "is_dotenv_disabled" => {}
            // They change how process-compose shows a process, not how it runs.
            "namespace" | "is_tty" | "truncate_log" | "disable_ansi_colors" | "monitor_for" => {
                warnings.push(format!(
                    "{}: ignored (it changes how process-compose shows the process, not how it runs)",
                    at(key)
                ))
            }
            "is_interactive" => {
                return refuse(
                    "an interactive process reads a terminal process-compose gives it; roost's services have none (use roostctl shell for a terminal)",
                )
            }
            "mcp" => {
                return refuse(
                    "an MCP server run by process-compose's own MCP host; roost has none",
                )
            }
            "schedule" | "watch" | "is_elevated" => {
                return refuse("not expressible in roost's Containers")
            }
            "launch_timeout_seconds" => warnings.push(format!(
                "{}: ignored (roost has no launch timeout: a daemon is running as soon as its command has exited 0)",
                at(key)
            )),
            other if other.starts_with("x-") => {}
            _ => unknown_key(&at(key), project.strict, warnings)?,
        }
    }
    match (p.get("command"), p.get("entrypoint")) {
        (Some(cmd), _) => {
            let cmd = values::text(&at("command"), cmd)?;
            let mut argv = shell.to_vec();
            argv.push(cmd.to_string());
            c.insert("exec".into(), json!(argv));
        }
        (None, Some(entry)) => {
            if !entry
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string))
            {
                return Err(format!("{}: a list of strings", at("entrypoint")));
            }
            c.insert("exec".into(), entry.clone());
        }
        // process-compose runs `SHELL -c ""`, which exits 0 at once.
        (None, None) => {
            warnings.push(format!(
                "processes.{name}: no command: it runs the shell with an empty command, as process-compose does (it exits 0 at once)"
            ));
            let mut argv = shell.to_vec();
            argv.push(String::new());
            c.insert("exec".into(), json!(argv));
        }
    }
    let working_dir = match p.get("working_dir") {
        None => None,
        Some(Value::String(dir)) => Some(dir.as_str()),
        Some(_) => return Err(format!("{}: a string", at("working_dir"))),
    };
    let dir = project.dir_of(working_dir);
    // process-compose's order, lowest first: the project's env, the process's `env_file`
    // (read now, from its directory), its `environment`.
    let mut env = match p.get("is_dotenv_disabled").and_then(Value::as_bool) {
        Some(true) => Map::new(),
        _ => project.dotenv.clone(),
    };
    env.extend(project.env.clone());
    match p.get("env_file") {
        None | Some(Value::Null) => {}
        Some(Value::String(file)) => env.extend(load::env_file(
            &at("env_file"),
            file,
            working_dir,
            &project.host_dir,
            &project.dir,
        )?),
        Some(_) => return Err(format!("{}: a path", at("env_file"))),
    }
    env.extend(env_list(&at("environment"), p.get("environment"))?);
    if !env.is_empty() {
        c.insert("env".into(), Value::Object(env));
    }
    c.insert("working_dir".into(), dir.into());
    if let Some(line) = p.get("ready_log_line") {
        c.insert("ready_log_line".into(), line.clone());
    }
    if let Some(codes) = p.get("success_exit_codes") {
        c.insert("success_exit_codes".into(), codes.clone());
    }
    if let Some(deps) = p.get("depends_on") {
        let deps = deps
            .as_object()
            .ok_or_else(|| format!("{}: a mapping of name to condition", at("depends_on")))?;
        let mut out = Vec::new();
        for (target, d) in deps {
            let condition = match d["condition"].as_str() {
                // process-compose's own default (its zero value) is process_completed, which
                // a file that means "after it started" does not expect: said.
                None => {
                    warnings.push(format!(
                        "{}.{target}: no condition is process_completed (process-compose's default): {name} starts only once {target} has exited; write condition: process_started if {name} is to start beside it",
                        at("depends_on")
                    ));
                    "completed"
                }
                Some("process_completed") => "completed",
                Some("process_started") => "started",
                Some("process_healthy") => "healthy",
                Some("process_completed_successfully") => "exited_successfully",
                Some("process_log_ready") => "log_ready",
                Some(other) => {
                    return Err(format!(
                        "{}.{target}.condition: {other:?} is unknown",
                        at("depends_on")
                    ))
                }
            };
            if !project.names.contains_key(target) && !project.replicas.contains_key(target) {
                if project.strict {
                    return Err(format!(
                        "{}.{target}: no such process in the project (it is is_strict, which process-compose refuses too)",
                        at("depends_on")
                    ));
                }
                warnings.push(format!(
                    "{}.{target}: no such process in the project: it starts without waiting, as process-compose starts it (with an error)",
                    at("depends_on")
                ));
                continue;
            }
            for name in project.targets_of(target) {
                out.push(json!({ "name": name, "condition": condition }));
            }
        }
        c.insert("depends_on".into(), Value::Array(out));
    }
    let mut checks = Vec::new();
    for (key, kind) in [
        ("readiness_probe", "readiness"),
        ("liveness_probe", "liveness"),
    ] {
        if let Some(probe) = p.get(key) {
            checks.push(probe_to_check(&at(key), probe, kind, shell)?);
        }
    }
    if !checks.is_empty() {
        c.insert("healthchecks".into(), Value::Array(checks));
    }
    let (restart, on_exit) = availability(&at("availability"), p.get("availability"))?;
    c.insert("restart".into(), restart);
    c.insert("on_exit".into(), on_exit.into());
    if let Some(shutdown) = p.get("shutdown") {
        c.insert("stop".into(), stop(&at("shutdown"), shutdown, shell)?);
    }
    Ok(Value::Object(c))
}

#[cfg(test)]
mod tests;
