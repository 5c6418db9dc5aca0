//! The import's mapping, checked on small projects (the corpus test checks real files).

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
            ("processes:\n  _:\n    command: x\n", "DNS labels"),
            ("processes:\n  web+api:\n    command: x\n", "DNS labels"),
            ("processes:\n  web_1:\n    command: x\n  Web.1:\n    command: y\n", "would both be service \"web-1\""),
            ("processes:\n  a:\n    command: x\n    schedule: {cron: '* * * * *'}\n", "processes.a.schedule"),
            ("processes:\n  a:\n    command: x\n    is_interactive: true\n", "have none"),
            ("processes:\n  a:\n    command: x\n    mcp: {}\n", "MCP"),
            ("processes:\n  a:\n    command: x\n    readiness_probe:\n      http_get: {host: example.com, port: 80}\n", "127.0.0.1"),
            ("is_strict: true\nwatch: []\nprocesses: {}\n", "watch: unknown key"),
            ("is_strict: true\nprocesses:\n  a:\n    command: x\n    ports: [80]\n", "processes.a.ports: unknown key"),
            ("[1, 2]\n", "not a process-compose project"),
        ] {
            let err = process_compose(yaml, "/srv/app", None).expect_err(yaml);
            assert!(err.contains(want), "{yaml}: {err}");
        }
}

/// What process-compose only logs (an unknown key in a project that is not `is_strict`, a
/// process with no command) is warned about and imported as process-compose runs it.
#[test]
fn unknown_keys_warn_unless_strict_and_a_process_without_a_command_runs_an_empty_one() {
    let yaml = "x-anchors: {a: 1}\nprocess-compose-file-version: 2\nprocesses:\n  db:\n    disabled: true\n  web:\n    command: serve\n    ports: [\"80:80\"]\n";
    let (doc, warnings) = process_compose(yaml, "/srv/app", None).expect("import");
    assert_eq!(doc["Containers"][0]["exec"], json!(["bash", "-c", ""]));
    assert_eq!(doc["Containers"][0]["start"], "manual");
    for want in [
        "process-compose-file-version: unknown key, ignored",
        "processes.web.ports: unknown key, ignored",
        "processes.db: no command",
    ] {
        assert!(
            warnings.iter().any(|w| w.starts_with(want)),
            "{want}: {warnings:?}"
        );
    }
    assert!(
        !warnings.iter().any(|w| w.contains("x-anchors")),
        "{warnings:?}"
    );
}

/// Variables: the `.env` first, then what `--env` gives (process-compose's own environment),
/// then a `${VAR:-default}`'s default; the rest left as written and named. A process with
/// `is_dotenv_disabled` does not get the `.env`'s variables in its env.
#[test]
fn variables_come_from_the_dotenv_then_the_given_environment_then_defaults() {
    let yaml = "processes:\n  api:\n    command: api --port $PORT --db $DB\n    working_dir: ${ROOT}/api\n    readiness_probe:\n      http_get: {host: 127.0.0.1, port: \"${HEALTH_PORT:-3000}\"}\n  job:\n    command: job $$HOME $HOME\n    is_dotenv_disabled: true\n";
    let given = BTreeMap::from([
        ("PORT".to_string(), "9000".to_string()),
        ("ROOT".to_string(), "/srv/root".to_string()),
    ]);
    let (doc, warnings) = import(
        yaml,
        Path::new("/srv/app"),
        "/srv/app",
        Some("PORT=8080\nDB=pg\n"),
        &given,
    )
    .expect("import");
    let api = &doc["Containers"][0];
    // process-compose's substitution prefers the `.env`.
    assert_eq!(api["exec"][2], "api --port 8080 --db pg");
    assert_eq!(api["working_dir"], "/srv/root/api");
    assert_eq!(api["healthchecks"][0]["http"]["port"], 3000);
    // In the env, process-compose's own environment is over the `.env`.
    assert_eq!(api["env"]["PORT"], "9000");
    assert_eq!(api["env"]["DB"], "pg");
    let job = &doc["Containers"][1];
    assert_eq!(job["exec"][2], "job $HOME $HOME");
    assert_eq!(job["env"], json!({"PORT": "9000", "ROOT": "/srv/root"}));
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("not set at import") && w.contains(": HOME;")),
        "{warnings:?}"
    );
}
