//! `roostctl import process-compose FILE`: a process-compose project as roost's `Containers`
//! (docs/services.md has the mapping). What roost cannot express is refused with the
//! process's name and the key, never dropped silently. YAML is parsed here, on the host:
//! PID 1 reads JSON only.

mod interpolate;
mod lifecycle;
mod project;
mod values;

use lifecycle::{availability, probe_to_check, stop};
use project::{expand_replicas, service_names, FileOrder, Project};
use serde_json::{json, Map, Value};

/// Converts a process-compose YAML document to `{"Containers": [...]}`, or explains why not.
/// Warnings (keys roost ignores, such as logging options, and names it changed) come back
/// beside the result. `project_dir` is where the project's directory is when it runs (an
/// absolute path): process-compose runs a process without `working_dir` there and resolves
/// a relative one from there, so every service gets its directory written out. `dotenv` is
/// the project's `.env` file, when it has one: its variables are substituted in the file
/// and given to every process, as process-compose does ([`interpolate`]).
pub fn process_compose(
    yaml: &str,
    project_dir: &str,
    dotenv: Option<&str>,
) -> Result<(Value, Vec<String>), String> {
    if !project_dir.starts_with('/') {
        return Err(format!(
            "the project directory {project_dir:?} must be an absolute path"
        ));
    }
    let doc: Value = serde_saphyr::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
    let flag = |key: &str| doc.get(key).and_then(Value::as_bool) == Some(true);
    let vars = match dotenv {
        Some(text) if !flag("is_dotenv_disabled") => interpolate::dotenv(text),
        _ => Default::default(),
    };
    let expanded;
    let (yaml, doc) = if flag("disable_env_expansion") {
        (yaml, doc)
    } else {
        expanded = interpolate::expand(yaml, &vars);
        let doc = serde_saphyr::from_str(&expanded).map_err(|e| format!("not YAML: {e}"))?;
        (expanded.as_str(), doc)
    };
    let mut warnings = Vec::new();
    let Some(project) = doc.as_object() else {
        return Err("the file is not a process-compose project (a mapping)".into());
    };
    for key in project.keys() {
        match key.as_str() {
            "version"
            | "processes"
            | "environment"
            | "shell"
            | "is_strict"
            | "is_dotenv_disabled"
            | "disable_env_expansion" => {}
            "log_location" | "log_level" | "log_length" | "log_configuration"
            | "is_tui_disabled" | "name" => {
                warnings.push(format!("{key}: ignored (roost's logs go to the console)"))
            }
            "ordered_shutdown" => warnings
                .push("ordered_shutdown: roost always stops in reverse dependency order".into()),
            other => return Err(format!("{other}: not expressible in roost's Containers")),
        }
    }
    let shell = shell(project.get("shell"))?;
    // The `.env` under the project's own `environment`, as process-compose's own environment
    // is under it.
    let mut project_env: Map<String, Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    project_env.extend(env_list("environment", project.get("environment"))?);
    let Some(processes) = project.get("processes").and_then(Value::as_object) else {
        return Err("processes: missing (a mapping of name to process)".into());
    };
    // The file's order, which a JSON map does not keep: the first process is the machine's
    // main service (where signals go and whose code a requested stop reports).
    let order = serde_saphyr::from_str::<FileOrder>(yaml)
        .map(|o| o.processes.0)
        .unwrap_or_default();
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
    let (ordered, replicas) = expand_replicas(&in_order)?;
    let names = service_names(ordered.iter().map(|(name, _)| name), &mut warnings)?;
    let project = Project {
        shell,
        env: project_env,
        dir: project_dir.trim_end_matches('/').to_string(),
        names,
        replicas,
    };
    let mut containers = Vec::new();
    for (name, p) in &ordered {
        containers.push(process(name, p, &project, &mut warnings)?);
    }
    Ok((json!({ "Containers": containers }), warnings))
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
            "is_daemon" | "replicas" | "disabled" | "is_foreground" | "extends" => {}
            // They change how process-compose shows a process, not how it runs.
            "namespace" | "is_tty" | "truncate_log" | "disable_ansi_colors" | "monitor_for"
            | "is_template_disabled" => warnings.push(format!(
                "{}: ignored (it changes how process-compose shows the process, not how it runs)",
                at(key)
            )),
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
            "schedule"
            | "watch"
            | "is_elevated"
            | "env_file"
            | "vars"
            | "env_cmds" => return refuse("not expressible in roost's Containers"),
            "launch_timeout_seconds" => warnings.push(format!(
                "{}: ignored (roost has no launch timeout: a daemon is running as soon as its command has exited 0)",
                at(key)
            )),
            other if other.starts_with("x-") => {}
            _ => return refuse("unknown key"),
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
        (None, None) => return Err(format!("processes.{name}: no command or entrypoint")),
    }
    let mut env = project.env.clone();
    env.extend(env_list(&at("environment"), p.get("environment"))?);
    if !env.is_empty() {
        c.insert("env".into(), Value::Object(env));
    }
    let working_dir = match p.get("working_dir") {
        None => None,
        Some(Value::String(dir)) => Some(dir.as_str()),
        Some(_) => return Err(format!("{}: a string", at("working_dir"))),
    };
    c.insert("working_dir".into(), project.dir_of(working_dir).into());
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
                // process-compose's own default (its zero value) is process_completed.
                None | Some("process_completed") => "completed",
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
mod tests {
    use super::*;

    /// The sidecar set the multi-process blog post runs (nginx, tailscale, vault-agent,
    /// unbound), as a process-compose project.
    const BLOG: &str = r#"
version: "0.5"
log_level: info
processes:
  unbound:
    command: "unbound -d -c /etc/unbound/unbound.conf"
    readiness_probe:
      exec:
        command: "dig @127.0.0.1 -p 53 fly.io +short"
      initial_delay_seconds: 1
      period_seconds: 5
    availability:
      restart: always
  tailscale:
    entrypoint: ["tailscaled", "--state=mem:"]
    environment:
      - "TS_AUTHKEY=from-a-secret"
    availability:
      restart: on_failure
      max_restarts: 5
      backoff_seconds: 2
  vault-agent:
    command: "vault agent -config=/etc/vault/agent.hcl"
    depends_on:
      unbound:
        condition: process_healthy
    ready_log_line: "rendered"
  nginx:
    command: "nginx -g 'daemon off;'"
    depends_on:
      vault-agent:
        condition: process_log_ready
      tailscale:
        condition: process_started
    liveness_probe:
      http_get:
        host: 127.0.0.1
        port: 8080
        path: /healthz
    shutdown:
      signal: 3
      timeout_seconds: 5
    availability:
      exit_on_end: true
"#;

    #[test]
    fn the_blogs_sidecar_set_maps_onto_containers() {
        let (v, warnings) = process_compose(BLOG, "/srv/app", None).expect("import");
        assert!(
            warnings.iter().any(|w| w.contains("log_level")),
            "{warnings:?}"
        );
        let c = v["Containers"].as_array().expect("containers");
        let by = |n: &str| c.iter().find(|s| s["name"] == n).expect(n).clone();
        let nginx = by("nginx");
        assert_eq!(
            nginx["exec"],
            json!(["bash", "-c", "nginx -g 'daemon off;'"])
        );
        assert_eq!(nginx["on_exit"], "stop_machine");
        assert_eq!(nginx["stop"], json!({"signal": 3, "timeout": "5s"}));
        assert_eq!(nginx["healthchecks"][0]["kind"], "liveness");
        assert_eq!(
            nginx["healthchecks"][0]["http"],
            json!({"port": 8080, "path": "/healthz"})
        );
        let deps: Vec<(String, String)> = nginx["depends_on"]
            .as_array()
            .expect("deps")
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or("").into(),
                    d["condition"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        assert!(deps.contains(&("vault-agent".into(), "log_ready".into())));
        assert!(deps.contains(&("tailscale".into(), "started".into())));
        let unbound = by("unbound");
        assert_eq!(unbound["restart"]["policy"], "always");
        assert_eq!(unbound["on_exit"], "ignore");
        assert_eq!(unbound["healthchecks"][0]["grace_period"], 1.0);
        assert_eq!(unbound["healthchecks"][0]["interval"], 5.0);
        let ts = by("tailscale");
        assert_eq!(ts["exec"], json!(["tailscaled", "--state=mem:"]));
        assert_eq!(ts["restart"]["max_retries"], 5);
        assert_eq!(ts["restart"]["backoff_seconds"], 2.0);
        assert_eq!(ts["env"]["TS_AUTHKEY"], "from-a-secret");
        assert_eq!(by("vault-agent")["depends_on"][0]["condition"], "healthy");
        let pg = process_compose(
            "processes:\n  pg:\n    command: postgres\n    shutdown:\n      command: pg_ctl stop\n      timeout_seconds: 20\n",
            "/srv/app",
            None,
        )
        .expect("import")
        .0;
        assert_eq!(
            pg["Containers"][0]["stop"],
            json!({"command": ["bash", "-c", "pg_ctl stop"], "timeout": "20s"})
        );
        // Numbers written as strings are numbers; what is not one is refused with its key.
        let yaml = "processes:\n  a:\n    command: x\n    availability:\n      restart: on_failure\n      backoff_seconds: \"5\"\n      max_restarts: \"3\"\n";
        let a = process_compose(yaml, "/srv/app", None).expect("import").0;
        assert_eq!(a["Containers"][0]["restart"]["backoff_seconds"], 5.0);
        assert_eq!(a["Containers"][0]["restart"]["max_retries"], 3);
        let err = process_compose(&yaml.replace("\"3\"", "\"three\""), "/srv/app", None)
            .expect_err("refused");
        assert!(
            err.contains("processes.a.availability.max_restarts: \"three\" is not a number"),
            "{err}"
        );
        let err =
            process_compose(&yaml.replace("\"3\"", "\"\""), "/srv/app", None).expect_err("refused");
        assert!(err.contains("max_restarts"), "{err}");
        let probe = "processes:\n  a:\n    command: x\n    readiness_probe:\n      http_get:\n        port: \"8080\"\n        path: /ready\n        headers:\n          Authorization: Bearer t\n";
        let a = process_compose(probe, "/srv/app", None).expect("import").0;
        assert_eq!(
            a["Containers"][0]["healthchecks"][0]["http"],
            json!({"port": 8080, "path": "/ready", "headers": [{"name": "Authorization", "values": ["Bearer t"]}]})
        );
        let (_, warnings) = process_compose(
            "processes:\n  a:\n    command: x\n    namespace: web\n    is_tty: true\n",
            "/srv/app",
            None,
        )
        .expect("import");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("processes.a.is_tty: ignored")
                || warnings[1].contains("processes.a.is_tty: ignored"),
            "{warnings:?}"
        );
        // replicas: NAME-0.. with PC_REPLICA_NUM, and a dependent waits for each; disabled
        // and foreground processes are defined but started only when asked.
        let (v, _) = process_compose(
            "processes:\n  worker:\n    command: w\n    replicas: 2\n  api:\n    command: a\n    depends_on:\n      worker:\n        condition: process_started\n  debug:\n    command: d\n    disabled: true\n  repl:\n    command: r\n    is_foreground: true\n",
            "/srv/app",
            None,
        )
        .expect("import");
        let c = v["Containers"].as_array().expect("containers");
        let names: Vec<&str> = c.iter().map(|s| s["name"].as_str().unwrap_or("")).collect();
        assert_eq!(names, ["worker-0", "worker-1", "api", "debug", "repl"]);
        assert_eq!(c[1]["env"]["PC_REPLICA_NUM"], "1");
        assert_eq!(
            c[2]["depends_on"],
            json!([{"name": "worker-0", "condition": "started"}, {"name": "worker-1", "condition": "started"}])
        );
        assert_eq!(c[3]["start"], "manual");
        let (v, _) = process_compose(
            "processes:\n  pg:\n    command: pg_ctl start\n    is_daemon: true\n",
            "/srv/app",
            None,
        )
        .expect("import");
        assert_eq!(v["Containers"][0]["daemon"], true);
        assert_eq!(c[4]["start"], "manual");
        assert!(c[0].get("start").is_none());
        // The project's .env: substituted everywhere, and in every process's env; `$$` is the
        // shell's `$`; a variable the .env lacks is left for the shell.
        let yaml = "processes:\n  db:\n    command: \"pg -p ${DB_PORT} -D $$PGDATA $HOME\"\n    readiness_probe:\n      http_get:\n        port: ${DB_PORT}\n";
        let (v, _) = process_compose(yaml, "/srv/app", Some("DB_PORT=5433\n")).expect("import");
        let db = &v["Containers"][0];
        assert_eq!(
            db["exec"],
            json!(["bash", "-c", "pg -p 5433 -D $PGDATA $HOME"])
        );
        assert_eq!(db["healthchecks"][0]["http"]["port"], 5433);
        assert_eq!(db["env"]["DB_PORT"], "5433");
        let off = format!(
            "disable_env_expansion: true\n{}",
            yaml.replace("port: ${DB_PORT}", "port: 1")
        );
        let (v, _) = process_compose(&off, "/srv/app", Some("DB_PORT=5433\n")).expect("import");
        assert_eq!(
            v["Containers"][0]["exec"][2],
            "pg -p ${DB_PORT} -D $$PGDATA $HOME"
        );
        let (v, _) = process_compose(
            &format!("is_dotenv_disabled: true\n{yaml}").replace("port: ${DB_PORT}", "port: 1"),
            "/srv/app",
            Some("DB_PORT=5433\n"),
        )
        .expect("import");
        assert!(v["Containers"][0].get("env").is_none(), "{v}");
        // extends: the base's keys under the process's own, environment merged by name; a
        // chain that comes back to itself is refused.
        let err = process_compose(
            "processes:\n  a:\n    extends: b\n    command: x\n  b:\n    extends: a\n    command: y\n",
            "/srv/app",
            None,
        )
        .expect_err("a cycle");
        assert!(err.contains("comes back to itself"), "{err}");
        // Every service runs in the project's directory, as process-compose runs them.
        for s in c {
            assert_eq!(s["working_dir"], "/srv/app", "{s}");
        }
    }

    /// Names that are not DNS labels are made ones (and said), with every `depends_on`
    /// following; a relative `working_dir` is resolved from the project's directory.
    #[test]
    fn names_become_dns_labels_and_directories_resolve_from_the_project() {
        let yaml = "processes:\n  Postgres_Init:\n    command: init\n    working_dir: ./db\n  \
                    broker.0:\n    command: run\n    working_dir: /opt/broker\n    depends_on:\n      \
                    Postgres_Init:\n        condition: process_completed_successfully\n  web:\n    \
                    command: serve\n    working_dir: .\n";
        let (v, warnings) = process_compose(yaml, "/srv/app/", None).expect("import");
        let c = v["Containers"].as_array().expect("containers");
        let names: Vec<&str> = c.iter().map(|s| s["name"].as_str().unwrap_or("")).collect();
        assert_eq!(names, ["postgres-init", "broker-0", "web"]);
        // The file's order, not the alphabet's: the first process is the main service.
        let (v, _) = process_compose(
            "processes:\n  zeta:\n    command: z\n  alpha:\n    command: a\n",
            "/srv/app",
            None,
        )
        .expect("import");
        assert_eq!(v["Containers"][0]["name"], "zeta");
        assert_eq!(c[0]["working_dir"], "/srv/app/db");
        assert_eq!(c[1]["working_dir"], "/opt/broker");
        assert_eq!(c[2]["working_dir"], "/srv/app");
        let up = process_compose(
            "processes:\n  a:\n    command: x\n    working_dir: ../../..\n  b:\n    command: y\n    working_dir: ./x/../y/\n",
            "/srv/app",
            None,
        )
        .expect("import")
        .0;
        assert_eq!(up["Containers"][0]["working_dir"], "/");
        assert_eq!(up["Containers"][1]["working_dir"], "/srv/app/y");
        assert_eq!(c[1]["depends_on"][0]["name"], "postgres-init");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("processes.Postgres_Init: the service is named \"postgres-init\""),
            "{warnings:?}"
        );
        assert!(
            process_compose(yaml, "srv", None).is_err(),
            "a relative project directory"
        );
        assert_eq!(
            process_compose("processes:\n  a:\n    command: x\n", "/", None)
                .expect("import")
                .0["Containers"][0]["working_dir"],
            "/"
        );
    }

    #[test]
    fn what_roost_cannot_express_is_refused_with_its_place() {
        for (yaml, want) in [
            ("processes:\n  a:\n    command: x\n    replicas: 65\n", "processes.a.replicas"),
            ("processes:\n  a:\n    command: x\n    shutdown:\n      send_keys: q\n", "processes.a.shutdown.send_keys"),
            ("processes:\n  a:\n    command: x\n    shutdown:\n      parent_only: true\n", "parent_only"),
            ("processes:\n  _:\n    command: x\n", "DNS labels"),
            ("processes:\n  web+api:\n    command: x\n", "DNS labels"),
            ("processes:\n  web_1:\n    command: x\n  Web.1:\n    command: y\n", "would both be service \"web-1\""),
            ("processes:\n  a:\n    command: x\n    schedule: {cron: '* * * * *'}\n", "processes.a.schedule"),
            ("processes:\n  a:\n    command: x\n    is_interactive: true\n", "have none"),
            ("processes:\n  a:\n    command: x\n    mcp: {}\n", "MCP"),
            ("processes:\n  a:\n    command: x\n    availability:\n      exit_on_skipped: true\n", "exit_on_skipped"),
            ("processes:\n  a:\n    command: x\n    readiness_probe:\n      http_get: {host: example.com, port: 80}\n", "127.0.0.1"),
            ("processes:\n  a: {}\n", "no command"),
            ("watch: []\nprocesses: {}\n", "watch"),
            ("[1, 2]\n", "not a process-compose project"),
        ] {
            let err = process_compose(yaml, "/srv/app", None).expect_err(yaml);
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
