//! What process-compose reads from disk when it loads a project, read here at import, on the
//! host: the `.env` beside the file, the files a project's `extends` names (each merged under
//! the file that names it), each process's `env_file`, and the output of the project's
//! `env_cmds`. The result is one document, as process-compose has it after loading.

use super::interpolate;
use super::project::{merge, FileOrder};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A project as loaded: its files merged, their variables substituted.
pub(super) struct Loaded {
    pub doc: Value,
    /// The processes in the files' order: an extended file's first.
    pub order: Vec<String>,
    /// The `.env`'s variables (empty when the project disables it).
    pub dotenv: BTreeMap<String, String>,
    /// The variables the files use that the import could not set (left as written).
    pub unset: BTreeSet<String>,
}

/// How many files one `extends` chain may name.
const MAX_EXTENDS: usize = 16;

/// What every file of a project is read with.
struct Reading<'a> {
    dotenv: Option<&'a str>,
    /// `--env NAME=VALUE`: the environment process-compose would have had.
    given: &'a BTreeMap<String, String>,
    seen: Vec<PathBuf>,
    unset: BTreeSet<String>,
}

/// `yaml` (a file in `host_dir`, with the `.env` text `dotenv`) and every file its `extends`
/// chain names; `given` are the variables the user set for the import.
pub(super) fn load(
    yaml: &str,
    host_dir: &Path,
    dotenv: Option<&str>,
    given: &BTreeMap<String, String>,
) -> Result<Loaded, String> {
    let mut reading = Reading {
        dotenv,
        given,
        seen: Vec::new(),
        unset: BTreeSet::new(),
    };
    let (doc, order, dotenv_disabled) = load_file(yaml, host_dir, "", &mut reading)?;
    let dotenv = match dotenv {
        Some(text) if !dotenv_disabled => interpolate::dotenv(text),
        _ => BTreeMap::new(),
    };
    Ok(Loaded {
        doc,
        order,
        dotenv,
        unset: reading.unset,
    })
}

/// One file, its `extends` merged under it. `prefix` is the file's directory relative to the
/// first file's (or absolute), where its processes run when they name no directory.
fn load_file(
    yaml: &str,
    host_dir: &Path,
    prefix: &str,
    reading: &mut Reading<'_>,
) -> Result<(Value, Vec<String>, bool), String> {
    let raw: Value = serde_saphyr::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
    let flag = |key: &str| raw.get(key).and_then(Value::as_bool) == Some(true);
    let dotenv_disabled = flag("is_dotenv_disabled");
    // process-compose's substitution prefers the `.env` to its own environment.
    let mut vars = reading.given.clone();
    if let Some(text) = reading.dotenv.filter(|_| !dotenv_disabled) {
        vars.extend(interpolate::dotenv(text));
    }
    let expanded;
    let (yaml, mut doc) = if flag("disable_env_expansion") {
        (yaml, raw)
    } else {
        expanded = interpolate::expand(yaml, &vars, &mut reading.unset);
        let doc = serde_saphyr::from_str(&expanded).map_err(|e| format!("not YAML: {e}"))?;
        (expanded.as_str(), doc)
    };
    let order = serde_saphyr::from_str::<FileOrder>(yaml)
        .map(|o| o.processes.0)
        .unwrap_or_default();
    if !prefix.is_empty() {
        rebase_working_dirs(&mut doc, prefix);
    }
    let Some(extends) = doc.as_object_mut().and_then(|d| d.remove("extends")) else {
        return Ok((doc, order, dotenv_disabled));
    };
    let Some(base_file) = extends.as_str() else {
        return Err("extends: the path of another project file".into());
    };
    let base_path = host_dir.join(base_file);
    let canonical = std::fs::canonicalize(&base_path)
        .map_err(|e| format!("extends: cannot read {}: {e}", base_path.display()))?;
    if reading.seen.contains(&canonical) {
        return Err(format!(
            "extends: {} is already in this chain of files",
            base_path.display()
        ));
    }
    if reading.seen.len() >= MAX_EXTENDS {
        return Err(format!("extends: a chain of more than {MAX_EXTENDS} files"));
    }
    reading.seen.push(canonical);
    let base_text = std::fs::read_to_string(&base_path)
        .map_err(|e| format!("extends: cannot read {}: {e}", base_path.display()))?;
    let base_dir = base_path.parent().unwrap_or(host_dir);
    let base_prefix = join(prefix, &parent_of(base_file));
    let (base, base_order, _) = load_file(&base_text, base_dir, &base_prefix, reading)
        .map_err(|e| format!("{}: {e}", base_path.display()))?;
    let mut merged_order = base_order;
    for name in order {
        if !merged_order.contains(&name) {
            merged_order.push(name);
        }
    }
    Ok((merge(&base, &doc), merged_order, dotenv_disabled))
}

/// The processes of an extended file run in its directory: one without `working_dir` gets
/// `prefix` (the file's directory from the first file's), a relative one is resolved from it.
fn rebase_working_dirs(doc: &mut Value, prefix: &str) {
    let Some(processes) = doc.get_mut("processes").and_then(Value::as_object_mut) else {
        return;
    };
    for process in processes.values_mut() {
        let Some(p) = process.as_object_mut() else {
            continue;
        };
        let dir = match p.get("working_dir").and_then(Value::as_str) {
            Some(dir) if dir.starts_with('/') => continue,
            Some(dir) => join(prefix, dir),
            None => prefix.to_string(),
        };
        p.insert("working_dir".into(), Value::String(dir));
    }
}

/// `dir/path`, or `path` when it is absolute or `dir` is empty.
fn join(dir: &str, path: &str) -> String {
    if dir.is_empty() || path.starts_with('/') {
        path.to_string()
    } else if path.is_empty() {
        dir.to_string()
    } else {
        format!("{}/{path}", dir.trim_end_matches('/'))
    }
}

/// A path's directory as written (`../db/pc.yaml` is `../db`, `pc.yaml` is empty).
fn parent_of(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(dir, _)| if dir.is_empty() { "/" } else { dir })
        .unwrap_or("")
        .to_string()
}

/// A process's `env_file`, read on this host: `path` relative to the process's
/// `working_dir` (as written: relative to the project's directory, which is `host_dir` here
/// and `vm_dir` in the VM; an absolute one under `vm_dir` is read from under `host_dir`).
pub(super) fn env_file(
    at: &str,
    path: &str,
    working_dir: Option<&str>,
    host_dir: &Path,
    vm_dir: &str,
) -> Result<Map<String, Value>, String> {
    let here_of = |p: &str| -> PathBuf {
        match p.strip_prefix(vm_dir) {
            Some(rest) if p.starts_with('/') && (rest.is_empty() || rest.starts_with('/')) => {
                host_dir.join(rest.trim_start_matches('/'))
            }
            _ => host_dir.join(p),
        }
    };
    let here = if path.starts_with('/') {
        here_of(path)
    } else {
        here_of(working_dir.unwrap_or("")).join(path)
    };
    let text = std::fs::read_to_string(&here)
        .map_err(|e| format!("{at}: cannot read {}: {e}", here.display()))?;
    Ok(interpolate::dotenv(&text)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

/// How long one of `env_cmds` may run: process-compose's own bound.
const ENV_CMD_TIMEOUT: Duration = Duration::from_secs(2);
/// How much of its output is kept: a variable's value, not a stream.
const ENV_CMD_OUTPUT: u64 = 64 * 1024;

/// The project's `env_cmds` (`NAME: command`), each run here, now, with `shell` in
/// `host_dir`, its output (trimmed) the variable's value, as process-compose runs them when
/// it starts. A command that fails or outlives its 2 s is refused, naming it: process-compose
/// would only log it and start the processes without the variable.
pub(super) fn env_cmds(
    cmds: &Map<String, Value>,
    shell: &[String],
    host_dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, cmd) in cmds {
        let at = format!("env_cmds.{name}");
        let Some(cmd) = cmd.as_str() else {
            return Err(format!("{at}: a command (a string)"));
        };
        let value = run(shell, cmd, host_dir).map_err(|e| format!("{at}: {cmd:?} {e}"))?;
        notes.push(format!(
            "{at}: ran {cmd:?} here, now; the value is written into every service's env"
        ));
        out.insert(name.clone(), Value::String(value));
    }
    Ok(out)
}

fn run(shell: &[String], cmd: &str, dir: &Path) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let (program, args) = shell.split_first().ok_or("needs a shell")?;
    let mut child = std::process::Command::new(program)
        .args(args)
        // Its own process group, so what it leaves behind is ended with it.
        .process_group(0)
        .arg(cmd)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    let stdout = child.stdout.take();
    // Read on a thread, so a command that fills the pipe still ends; the text is waited for
    // only within the bound, as a process the command left behind may hold the pipe open.
    let (sender, text) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(out) = stdout {
            let _ = out.take(ENV_CMD_OUTPUT).read_to_end(&mut text);
        }
        let _ = sender.send(text);
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < ENV_CMD_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                kill_group(&child);
                let _ = child.wait();
                return Err(format!("ran past {} s", ENV_CMD_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
    };
    let left = ENV_CMD_TIMEOUT.saturating_sub(started.elapsed());
    let text = text.recv_timeout(left).map_err(|_| {
        kill_group(&child);
        format!("left its output open past {} s", ENV_CMD_TIMEOUT.as_secs())
    })?;
    if !status.success() {
        return Err(format!("failed ({status})"));
    }
    Ok(String::from_utf8_lossy(&text).trim().to_string())
}

/// SIGKILL to the command's process group (its pid is the group's id).
fn kill_group(child: &std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::process_compose;
    use serde_json::json;

    fn service<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        doc["Containers"]
            .as_array()
            .and_then(|c| c.iter().find(|s| s["name"] == name))
            .unwrap_or_else(|| panic!("no service {name} in {doc}"))
    }

    #[test]
    fn an_extended_file_is_merged_under_the_one_that_names_it() {
        let root = tempfile::tempdir().expect("tmp");
        let dir = root.path().join("app");
        std::fs::create_dir_all(root.path().join("common")).expect("mkdir");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            root.path().join("common/base.yaml"),
            "environment: [\"A=base\", \"B=base\"]\nvars: {WHO: base}\nprocesses:\n  db:\n    command: ./db.sh\n    readiness_probe: {exec: {command: \"true\"}, period_seconds: 5}\n  web:\n    command: \"serve {{.WHO}}\"\n    working_dir: www\n",
        )
        .expect("write");
        let over = "extends: ../common/base.yaml\nenvironment: [\"B=app\"]\nvars: {WHO: app}\nprocesses:\n  db:\n    readiness_probe: {period_seconds: 1}\n  api:\n    command: api\n";
        let dir_str = dir.to_string_lossy().into_owned();
        let (doc, _) = process_compose(over, &dir_str, None).expect("import");
        let names: Vec<&str> = doc["Containers"]
            .as_array()
            .map(|c| c.iter().filter_map(|s| s["name"].as_str()).collect())
            .unwrap_or_default();
        // The extended file's processes first, in its order.
        assert_eq!(names, ["db", "web", "api"]);
        let db = service(&doc, "db");
        // Each process runs in its own file's directory.
        assert_eq!(
            db["working_dir"],
            root.path().join("common").to_string_lossy().as_ref()
        );
        assert_eq!(
            service(&doc, "web")["working_dir"],
            root.path().join("common/www").to_string_lossy().as_ref()
        );
        assert_eq!(service(&doc, "api")["working_dir"], dir_str.as_str());
        // Environments merge by name; a probe field changes alone; vars are the merged ones.
        assert_eq!(db["env"], json!({"A": "base", "B": "app"}));
        assert_eq!(db["healthchecks"][0]["interval"], 1.0);
        assert_eq!(db["healthchecks"][0]["exec"]["command"][2], "true");
        assert_eq!(service(&doc, "web")["exec"][2], "serve app");

        // A chain that comes back is refused, naming the file.
        std::fs::write(
            root.path().join("common/base.yaml"),
            "extends: ../app/pc.yaml\nprocesses: {}\n",
        )
        .expect("write");
        std::fs::write(dir.join("pc.yaml"), over).expect("write");
        let err = process_compose(over, &dir_str, None).expect_err("a loop");
        assert!(
            err.contains("extends:") && err.contains("already in this chain"),
            "{err}"
        );
        let err = process_compose("extends: nowhere.yaml\nprocesses: {}\n", &dir_str, None)
            .expect_err("missing");
        assert!(err.starts_with("extends: cannot read"), "{err}");
    }

    #[test]
    fn env_file_is_read_from_the_processs_directory_between_the_projects_env_and_its_own() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("svc")).expect("mkdir");
        std::fs::write(
            dir.path().join("svc/.env.svc"),
            "# secrets\nA=file\nB=file\nexport C=\"quoted\"\n",
        )
        .expect("write");
        let yaml = "environment: [\"A=project\", \"D=project\"]\nprocesses:\n  s:\n    command: run\n    working_dir: svc\n    env_file: .env.svc\n    environment: [\"B=process\"]\n";
        let dir_str = dir.path().to_string_lossy().into_owned();
        let (doc, _) = process_compose(yaml, &dir_str, None).expect("import");
        assert_eq!(
            service(&doc, "s")["env"],
            json!({"A": "file", "B": "process", "C": "quoted", "D": "project"})
        );
        let err = process_compose(&yaml.replace(".env.svc", ".env.gone"), &dir_str, None)
            .expect_err("missing");
        assert!(
            err.starts_with("processes.s.env_file: cannot read") && err.contains("svc/.env.gone"),
            "{err}"
        );
    }

    #[test]
    fn env_cmds_run_now_and_a_failure_or_a_hang_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let dir_str = dir.path().to_string_lossy().into_owned();
        let yaml = "environment: [\"X=project\"]\nenv_cmds:\n  X: \"echo '  from the command  '\"\n  HERE: pwd\nprocesses:\n  s: {command: run}\n";
        let (doc, warnings) = process_compose(yaml, &dir_str, None).expect("import");
        let env = &service(&doc, "s")["env"];
        assert_eq!(env["X"], "from the command");
        let here = std::fs::canonicalize(dir.path()).expect("canonical");
        assert_eq!(env["HERE"], here.to_string_lossy().as_ref());
        assert!(
            warnings.iter().any(|w| w.starts_with("env_cmds.X: ran")),
            "{warnings:?}"
        );

        let err =
            process_compose(&yaml.replace("pwd", "exit 3"), &dir_str, None).expect_err("failed");
        assert!(err.starts_with("env_cmds.HERE: \"exit 3\" failed"), "{err}");
        let started = std::time::Instant::now();
        let err =
            process_compose(&yaml.replace("pwd", "sleep 30"), &dir_str, None).expect_err("hung");
        assert!(err.contains("ran past 2 s"), "{err}");
        // A command that leaves a process holding its output is not waited for either.
        let err = process_compose(
            &yaml.replace("pwd", "sleep 30 & echo started"),
            &dir_str,
            None,
        )
        .expect_err("left open");
        assert!(err.contains("left its output open"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
