//! Several services under the real roost as PID 1 of a fresh PID namespace (container mode):
//! dependency conditions, skipping, restarts, health checks, the ordered stop with SIGKILL
//! escalation, the logs, a refused graph, and a realistic sidecar set with real programs
//! (python3's HTTP server as its own user, curl), as docs/services.md describes them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

fn run(doc: serde_json::Value) -> (Scratch, Finished) {
    let scratch = Scratch::new();
    let config = scratch.config(&doc);
    let finished = Running::start(PID_NS, &config).wait(T);
    (scratch, finished)
}

fn sh(script: String) -> serde_json::Value {
    json!(["/bin/sh", "-c", script])
}

/// Runs `doc` for a second (its services started and their traps set), then stops the
/// machine as a host does (SIGTERM to roost): how it ended, and how long the stop took.
fn stopped_after_a_second(scratch: &Scratch, doc: &serde_json::Value) -> (Finished, Duration) {
    let config = scratch.config(doc);
    let roost = Running::start(PID_NS, &config);
    std::thread::sleep(Duration::from_millis(1000));
    let asked = Instant::now();
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    (done, asked.elapsed())
}

/// The lines of `text` holding `needle`, in order, as indices.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn a_sidecar_set_starts_in_dependency_order_and_stops_cleanly() {
    let scratch = Scratch::new();
    let www = scratch.path("www");
    let result = scratch.path("result");
    let port = free_port();
    let doc = json!({
        "KillTimeout": 10,
        "Containers": [
            // A one-shot that makes the web root (as root), then exits.
            {"name": "setup", "exec": sh(format!(
                "mkdir -p {w} && echo hello from roost > {w}/index.html && chmod -R a+rX {w} && echo setup done", w = www.display()))},
            // The web server: its own user, only once setup succeeded; ready on its HTTP check.
            {"name": "web", "user": "65534:65534",
             "exec": ["python3", "-m", "http.server", port.to_string(), "--bind", "127.0.0.1", "--directory", www.display().to_string()],
             "depends_on": [{"name": "setup", "condition": "exited_successfully"}],
             "healthchecks": [{"http": {"port": port, "path": "/index.html"}, "interval": 0.1, "timeout": 1}],
             "stop": {"signal": "SIGINT", "timeout": "2s"},
             "on_exit": "ignore"},
            // The client: only once the server is healthy; its exit ends the machine.
            {"name": "client", "exec": sh(format!(
                "curl -sf http://127.0.0.1:{port}/index.html > {r} && echo fetched", r = result.display())),
             "depends_on": [{"name": "web", "condition": "healthy"}]},
        ]
    });
    let config = scratch.config(&doc);
    let done = Running::start(PID_NS, &config).wait(T);
    done.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&result).expect("result"),
        "hello from roost\n"
    );
    let out = &done.stdout;
    let err = &done.stderr;
    // Each service's output on the console, prefixed with its name.
    assert!(out.contains("[setup] setup done"), "{out}");
    assert!(out.contains("[client] fetched"), "{out}");
    assert!(
        out.contains("[web] ") && out.contains("GET /index.html"),
        "{out}"
    );
    // The order: setup exited, then web started; web ready, then client started; the client's
    // exit decided; web was stopped (SIGINT) after.
    assert!(
        line_of(err, "setup exited: code 0") < line_of(err, "web started"),
        "{err}"
    );
    assert!(
        line_of(err, "web is ready") < line_of(err, "client started"),
        "{err}"
    );
    assert!(
        line_of(err, "client decided") < line_of(err, "web exited"),
        "{err}"
    );
    assert!(err.contains("uid=65534"), "web ran as its own user: {err}");
    assert!(!err.contains("SIGKILL"), "nothing needed SIGKILL: {err}");
}

#[test]
fn a_failed_one_shot_skips_its_dependents_and_ends_the_machine_with_its_code() {
    let scratch = Scratch::new();
    let report_sock = scratch.path("host-exit.sock");
    let host = exit_report_listener(&report_sock);
    let doc = json!({"MachineId": "m-svc", "Control": {"ExitReportSocket": report_sock}, "Containers": [
        {"name": "setup", "exec": ["sh", "-c", "echo failing; exit 3"], "restart": {"policy": "no"}},
        {"name": "app", "exec": ["sh", "-c", "echo app ran"], "depends_on": [{"name": "setup", "condition": "exited_successfully"}]},
        {"name": "watcher", "exec": ["sh", "-c", "echo watcher ran"], "depends_on": [{"name": "app"}]},
    ]});
    let config = scratch.config(&doc);
    let done = Running::start(PID_NS, &config).wait(T);
    done.assert_code(3);
    // The exit report names the service that decided, and why.
    let (_, body) = host.join().expect("host");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["code"], 3);
    assert_eq!(body["decided_by"]["service"], "setup");
    assert!(
        body["decided_by"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("stop_machine_on_failure")),
        "{body}"
    );
    assert!(
        !done.stdout.contains("app ran") && !done.stdout.contains("watcher ran"),
        "{}",
        done.stdout
    );
}

#[test]
fn a_failed_one_shot_is_reported_on_the_console_too() {
    let (scratch, done) = run(json!({"Containers": [
        {"name": "setup", "exec": ["sh", "-c", "echo failing; exit 3"], "restart": {"policy": "no"}},
        {"name": "app", "exec": ["sh", "-c", "echo app ran"], "depends_on": [{"name": "setup", "condition": "exited_successfully"}]},
        {"name": "watcher", "exec": ["sh", "-c", "echo watcher ran"], "depends_on": [{"name": "app"}]},
    ]}));
    drop(scratch);
    done.assert_code(3);
    assert!(
        !done.stdout.contains("app ran") && !done.stdout.contains("watcher ran"),
        "{}",
        done.stdout
    );
    assert!(done.stderr.contains("setup decided"), "{}", done.stderr);
}

#[test]
fn restarts_back_off_and_give_up_after_max_retries() {
    let scratch = Scratch::new();
    let count = scratch.path("count");
    let doc = json!({"Containers": [
        {"name": "flaky", "exec": sh(format!("echo run >> {c}; exit 7", c = count.display())),
         "restart": {"policy": "on-failure", "max_retries": 3, "backoff_seconds": 0.1, "max_backoff_seconds": 0.4}},
    ]});
    let config = scratch.config(&doc);
    let started = Instant::now();
    let done = Running::start(PID_NS, &config).wait(T);
    done.assert_code(7);
    let runs = std::fs::read_to_string(&count)
        .expect("count")
        .lines()
        .count();
    assert_eq!(runs, 4, "one start and 3 restarts");
    // Backoff 0.1, 0.2, 0.4: at least 0.7 s in all.
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(
        done.stderr.contains("flaky restarts in 0.4 s"),
        "{}",
        done.stderr
    );
}

#[test]
fn a_failing_liveness_check_stops_the_service_and_its_restart_policy_applies() {
    let scratch = Scratch::new();
    let alive = scratch.path("alive");
    let count = scratch.path("count");
    // First run: healthy for a moment, then its liveness file goes; it is stopped and
    // restarted. Second run: exits 0 by itself (on-failure does not restart a success).
    let doc = json!({"Containers": [
        {"name": "svc", "exec": sh(format!(
            "echo run >> {c}; n=$(wc -l < {c}); if [ $n -ge 2 ]; then exit 0; fi; touch {a}; sleep 0.5; rm -f {a}; trap 'exit 143' TERM; while :; do sleep 0.05; done",
            c = count.display(), a = alive.display())),
         "restart": {"policy": "on-failure", "backoff_seconds": 0.1},
         "healthchecks": [{"kind": "liveness", "exec": {"command": ["test", "-e", alive.display().to_string()]},
                           "interval": 0.1, "failure_threshold": 2, "grace_period": 0.2}]},
    ]});
    let config = scratch.config(&doc);
    let done = Running::start(PID_NS, &config).wait(T);
    done.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&count)
            .expect("count")
            .lines()
            .count(),
        2
    );
    assert!(
        done.stderr.contains("failed 2 times in a row: stopping it"),
        "{}",
        done.stderr
    );
}

#[test]
fn a_stop_goes_in_reverse_dependency_order_with_each_timeout_and_sigkill() {
    let scratch = Scratch::new();
    let order = scratch.path("order");
    let o = order.display().to_string();
    let polite = |name: &str| {
        sh(format!(
            "trap 'echo {name} >> {o}; exit 0' TERM; while :; do sleep 0.05; done"
        ))
    };
    let doc = json!({"KillTimeout": 20, "Containers": [
        {"name": "db", "exec": polite("db")},
        {"name": "api", "exec": polite("api"), "depends_on": [{"name": "db"}]},
        // Ignores its stop signal: SIGKILLed after its own 1 s.
        {"name": "web", "exec": sh(format!("trap 'echo web >> {o}' TERM; while :; do sleep 0.05; done")),
         "depends_on": [{"name": "api"}], "stop": {"timeout": "1s"}},
    ]});
    // All three running (each has had time to install its trap) before the stop.
    let (done, took) = stopped_after_a_second(&scratch, &doc);
    // The main service (db, the first) handled TERM: 0.
    done.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&order).expect("order"),
        "web\napi\ndb\n"
    );
    assert!(
        done.stderr.contains("web did not stop in time: SIGKILL"),
        "{}",
        done.stderr
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn a_dependency_cycle_is_refused_with_its_names_before_anything_starts() {
    let (_scratch, done) = run(json!({"Containers": [
        {"name": "a", "exec": ["sh", "-c", "echo a ran"], "depends_on": [{"name": "b"}]},
        {"name": "b", "exec": ["sh", "-c", "echo b ran"], "depends_on": [{"name": "a"}]},
    ]}));
    done.assert_code(78);
    assert!(
        done.stderr.contains("dependency cycle: a -> b -> a"),
        "{}",
        done.stderr
    );
    assert!(!done.stdout.contains("ran"), "{}", done.stdout);
    assert!(
        done.stderr.contains(r#"roost: exit {"code":78"#),
        "{}",
        done.stderr
    );
}

#[test]
fn log_ready_and_completed_gate_their_dependents() {
    let (_scratch, done) = run(json!({"Containers": [
        {"name": "server", "exec": ["sh", "-c", "sleep 0.3; echo now accepting; trap 'exit 0' TERM; while :; do sleep 0.05; done"],
         "ready_log_line": "accepting", "on_exit": "ignore"},
        {"name": "migrate", "exec": ["sh", "-c", "echo migrated; exit 4"],
         "depends_on": [{"name": "server", "condition": "log_ready"}], "restart": {"policy": "no"}, "on_exit": "ignore"},
        {"name": "report", "exec": ["sh", "-c", "echo reported"],
         "depends_on": [{"name": "migrate", "condition": "completed"}], "restart": {"policy": "no"}},
    ]}));
    done.assert_code(0);
    let out = &done.stdout;
    assert!(
        line_of(out, "[server] now accepting") < line_of(out, "[migrate] migrated"),
        "{out}"
    );
    assert!(
        line_of(out, "[migrate] migrated") < line_of(out, "[report] reported"),
        "{out}"
    );
}

#[test]
fn v2_status_shows_each_service_and_v1_exit_code_means_the_machine() {
    let scratch = Scratch::new();
    let stop = scratch.path("stop");
    let doc = json!({"Control": {"LingerSeconds": 30}, "Containers": [
        {"name": "app", "exec": sh(format!("while [ ! -e {s} ]; do sleep 0.05; done; exit 5", s = stop.display())),
         "restart": {"policy": "no"}},
        {"name": "once", "exec": ["true"], "restart": {"policy": "no"}, "on_exit": "ignore"},
        {"name": "later", "exec": ["true"], "depends_on": [{"name": "app", "condition": "exited_successfully"}]},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    let deadline = Instant::now() + T;
    let services = loop {
        let r = http(&ctl, "GET", "/v2/status", &[], b"");
        let v = r.json();
        let s = v["services"].clone();
        if s[1]["state"] == "exited" && s[0]["state"] == "running" {
            break s;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(services[0]["name"], "app");
    assert!(
        services[0]["pid"].as_i64().is_some_and(|p| p > 1),
        "{services}"
    );
    assert_eq!(services[0]["ready"], true, "no checks: ready while running");
    assert_eq!(services[1]["last_exit_code"], 0);
    assert_eq!(services[2]["state"], "pending");
    // One service's exit is not the machine's: the exit code still waits.
    let (tx, rx) = std::sync::mpsc::channel();
    let ctl2 = ctl.clone();
    std::thread::spawn(move || {
        let _ = tx.send(http(&ctl2, "GET", "/v1/exit_code", &[], b"").json());
    });
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    std::fs::write(&stop, b"").expect("stop");
    let exit = rx.recv_timeout(T).expect("exit code");
    assert_eq!(exit["code"], 5, "{exit}");
    let v = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(v["services"][2]["state"], "skipped", "{v}");
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    done.assert_code(5);
    assert!(done.stderr.contains("code 5 from app"), "{}", done.stderr);
}

/// `/v1/exit_code` answers once the deciding service has exited, while another service is
/// still taking its time to stop (before, with `Containers`, only after the whole stop).
#[test]
fn the_exit_code_answers_at_the_deciding_exit_not_after_the_stop() {
    let scratch = Scratch::new();
    let stop = scratch.path("stop");
    let slow_got_term = scratch.path("slow-got-term");
    let doc = json!({"KillTimeout": 20, "Containers": [
        {"name": "app", "exec": sh(format!("while [ ! -e {s} ]; do sleep 0.05; done; exit 5", s = stop.display())),
         "restart": {"policy": "no"}},
        {"name": "slow", "exec": sh(format!(
            "trap 'touch {g}; sleep 4; exit 0' TERM; while :; do sleep 0.05; done", g = slow_got_term.display())),
         "on_exit": "ignore", "stop": {"timeout": "20s"}},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    wait_until("both running", || {
        let v = http(&ctl, "GET", "/v2/status", &[], b"").json();
        v["services"][0]["state"] == "running" && v["services"][1]["state"] == "running"
    });
    std::fs::write(&stop, b"").expect("stop");
    let exit = http(&ctl, "GET", "/v1/exit_code", &[], b"").json();
    let answered = Instant::now();
    assert_eq!(exit["code"], 5, "{exit}");
    // Answered while `slow` is still in its 4 s stop.
    wait_for_file(&slow_got_term, T);
    let v = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(v["services"][1]["state"], "stopping", "{v}");
    let done = roost.wait(T);
    done.assert_code(5);
    assert!(
        answered.elapsed() >= Duration::from_secs(3),
        "the machine ended {:?} after the answer: the answer waited for the stop",
        answered.elapsed()
    );
}

fn roostctl(ctl: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    roostctl_on(ctl, args)
}

/// A service's `state` as `/v2/services/NAME` answers it.
fn service_state(ctl: &std::path::Path, name: &str) -> String {
    http(ctl, "GET", &format!("/v2/services/{name}"), &[], b"").json()["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_control_api_and_roostctl_drive_each_service() {
    let scratch = Scratch::new();
    let doc = json!({"KillTimeout": 10, "Containers": [
        {"name": "web", "user": "65534:65534",
         "exec": ["sh", "-c", "trap 'echo got usr1' USR1; trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done"],
         "env": {"WHO": "web"}},
        {"name": "worker", "exec": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"], "on_exit": "ignore"},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    let ps = |ctl: &std::path::Path| roostctl(ctl, &["ps"]).1;
    wait_until("both running", || {
        let out = ps(&ctl);
        out.lines().filter(|l| l.contains(" running ")).count() == 2
    });
    let table = ps(&ctl);
    assert!(table.starts_with("NAME"), "{table}");
    let web_pid = |ctl: &std::path::Path| -> String {
        let v = http(ctl, "GET", "/v2/services/web", &[], b"").json();
        v["pid"].to_string()
    };
    let first_pid = web_pid(&ctl);

    // Logs: the kept lines, and a signal to one service shows in its log.
    wait_until("ticks", || {
        roostctl(&ctl, &["logs", "web"]).1.contains("tick 3")
    });
    let (code, _, err) = roostctl(&ctl, &["signal", "--container", "web", "USR1"]);
    assert_eq!(code, 0, "{err}");
    wait_until("usr1 in the log", || {
        roostctl(&ctl, &["logs", "web"]).1.contains("got usr1")
    });
    let logs = http(&ctl, "GET", "/v2/services/web/logs?after=0", &[], b"").json();
    assert!(logs["next"].as_u64().is_some_and(|n| n >= 3), "{logs}");
    // A follower gets the next line within its wait.
    let next = logs["next"].as_u64().unwrap_or(0);
    let follow = http(
        &ctl,
        "GET",
        &format!("/v2/services/web/logs?after={next}&wait=5"),
        &[],
        b"",
    )
    .json();
    assert!(
        follow["lines"].as_array().is_some_and(|l| !l.is_empty()),
        "{follow}"
    );

    // Exec inside a service: its user, env and cgroup leaf.
    let (code, out, err) = roostctl(
        &ctl,
        &[
            "exec",
            "--container",
            "web",
            "--",
            "sh",
            "-c",
            "id -u; echo $WHO; cat /proc/self/cgroup",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("65534"), "{out}");
    assert_eq!(lines.next(), Some("web"), "{out}");
    assert!(out.contains("-web"), "the exec joined web's leaf: {out}");
    let (code, _, err) = roostctl(&ctl, &["exec", "--container", "ghost", "--", "true"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no service named"), "{err}");

    // Stop, start, restart one service; the machine runs on.
    let (code, _, err) = roostctl(&ctl, &["stop", "worker"]);
    assert_eq!(code, 0, "{err}");
    wait_until("worker exited", || {
        ps(&ctl)
            .lines()
            .any(|l| l.starts_with("worker") && l.contains(" exited "))
    });
    let (code, _, err) = roostctl(&ctl, &["stop", "worker"]);
    assert_eq!(code, 1, "stopping a stopped service is refused: {err}");
    let (code, _, err) = roostctl(&ctl, &["start", "worker"]);
    assert_eq!(code, 0, "{err}");
    wait_until("worker running again", || {
        ps(&ctl)
            .lines()
            .any(|l| l.starts_with("worker") && l.contains(" running "))
    });
    let (code, _, err) = roostctl(&ctl, &["start", "worker"]);
    assert_eq!(code, 1, "starting a running service is refused: {err}");
    let (code, _, err) = roostctl(&ctl, &["restart", "web"]);
    assert_eq!(code, 0, "{err}");
    wait_until("web restarted", || {
        let pid = web_pid(&ctl);
        pid != first_pid && pid != "null"
    });
    let (code, _, err) = roostctl(&ctl, &["stop", "ghost"]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");

    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    done.assert_code(0);
}

/// A process-compose project, imported by roostctl and run by roost unchanged.
#[test]
fn a_process_compose_project_imports_and_runs() {
    let scratch = Scratch::new();
    let out = scratch.path("out");
    let port = free_port();
    let yaml = format!(
        r#"
version: "0.5"
shell:
  shell_command: /bin/sh
  shell_argument: -c
processes:
  prepare:
    command: "echo prepared > prepared.txt && cat prepared.txt > {out}"
  server:
    command: "exec python3 -m http.server {port} --bind 127.0.0.1 --directory {dir}"
    depends_on:
      prepare:
        condition: process_completed_successfully
    readiness_probe:
      http_get:
        port: {port}
        path: /out
      period_seconds: 0.2
  check:
    command: "curl -sf http://127.0.0.1:{port}/out"
    depends_on:
      server:
        condition: process_healthy
    availability:
      exit_on_end: true
"#,
        out = out.display(),
        dir = scratch.dir.path().display()
    );
    let file = scratch.write("process-compose.yaml", &yaml);
    let conv = std::process::Command::new(roostctl_bin())
        .args(["import", "process-compose"])
        .arg(&file)
        .output()
        .expect("roostctl");
    assert!(
        conv.status.success(),
        "{}",
        String::from_utf8_lossy(&conv.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&conv.stdout).expect("json");
    // roost's own validation takes it as it is.
    let v = roost::config::parse(doc.to_string().as_bytes()).expect("a valid config");
    assert_eq!(v.services.len(), 3);
    let config = scratch.config(&doc);
    let done = Running::start(PID_NS, &config).wait(T);
    done.assert_code(0);
    assert!(done.stdout.contains("[check] prepared"), "{}", done.stdout);
    // A relative path is the project's directory's, as under process-compose.
    assert!(scratch.path("prepared.txt").exists());
}

/// 1,000 trials of exits racing restarts and stops: two services that exit at once and are
/// restarted without delay, while the test sends stop, start and restart commands at random
/// to both. Every start's exit is recorded (as many exit lines as start lines), no zombie is
/// left once they are stopped, and the machine's stop still ends in time with a code.
#[test]
fn exits_racing_restarts_and_stops_lose_no_exit_and_leave_no_zombie() {
    let scratch = Scratch::new();
    let doc = json!({"KillTimeout": 10, "Control": {"LingerSeconds": 5}, "Containers": [
        {"name": "keeper", "exec": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"], "on_exit": "ignore"},
        {"name": "churn", "exec": ["sh", "-c", "exit 1"], "on_exit": "ignore",
         "restart": {"policy": "on-failure", "max_retries": 10000, "window_seconds": 86400, "backoff_seconds": 0.002, "max_backoff_seconds": 0.002}},
        {"name": "flip", "exec": ["sh", "-c", "sleep 0.01"], "on_exit": "ignore",
         "restart": {"policy": "always", "max_retries": 10000, "window_seconds": 86400, "backoff_seconds": 0.001, "max_backoff_seconds": 0.001}},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    wait_until("keeper running", || {
        http(&ctl, "GET", "/v2/services/keeper", &[], b"").json()["state"] == "running"
    });
    // A cheap deterministic sequence of commands.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut answered = 0;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let name = ["churn", "flip"][(x % 2) as usize];
        let action = ["stop", "start", "restart"][((x >> 8) % 3) as usize];
        let r = http(
            &ctl,
            "POST",
            &format!("/v2/services/{name}/{action}"),
            &[],
            b"",
        );
        assert!(
            matches!(r.status, 200 | 409),
            "{name} {action}: {} {}",
            r.status,
            r.text()
        );
        answered += 1;
        if x % 7 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert_eq!(answered, 1000);
    // Quiet: both stopped; then no zombie may be left.
    for name in ["churn", "flip"] {
        let _ = http(&ctl, "POST", &format!("/v2/services/{name}/stop"), &[], b"");
    }
    wait_until("both over", || {
        let v = http(&ctl, "GET", "/v2/services", &[], b"").json();
        v["services"].as_array().is_some_and(|s| {
            s.iter()
                .filter(|s| s["name"] != "keeper")
                .all(|s| s["pid"].is_null())
        })
    });
    let mut zombies = String::from("?");
    wait_until("no zombie", || {
        let r = http(&ctl, "POST", "/v1/exec", &[], br#"{"cmd": ["sh", "-c", "for s in /proc/[0-9]*/stat; do cut -d' ' -f3 $s 2>/dev/null; done | grep -c Z || true"]}"#).json();
        zombies = r["stdout"].as_str().unwrap_or("?").trim().to_string();
        zombies == "0"
    });
    let dropped = http(&ctl, "GET", "/v2/status", &[], b"").json()["log_lines_dropped"].clone();
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    done.assert_code(0);
    assert_eq!(
        dropped, 0,
        "log lines were dropped: the counts below would not hold"
    );
    for name in ["churn", "flip", "keeper"] {
        let started = done
            .stderr
            .matches(&format!("msg=\"{name} started: pid"))
            .count();
        let exited = done
            .stderr
            .matches(&format!("msg=\"{name} exited: code"))
            .count();
        assert_eq!(started, exited, "{name}: {started} starts, {exited} exits");
        assert!(started >= 1);
    }
    let restarts = done.stderr.matches("started: pid").count();
    assert!(
        restarts > 200,
        "only {restarts} starts: the race was not run"
    );
}

/// A sidecar set of real Debian daemons, each as its own user: dnsmasq (nobody) serves a
/// name once a one-shot made its files; lighttpd (www-data) starts only once dnsmasq answers
/// a real DNS query and the one-shot succeeded; a client (uid 1000) resolves the web server's
/// name through dnsmasq and fetches its page. The client's exit stops the machine: lighttpd,
/// then dnsmasq, stopped cleanly by their signals.
#[test]
fn real_debian_daemons_as_a_sidecar_set() {
    for daemon in ["/usr/sbin/dnsmasq", "/usr/sbin/lighttpd"] {
        assert!(
            std::path::Path::new(daemon).exists(),
            "{daemon} is missing: run ./test.sh setup (it installs dnsmasq-base and lighttpd)"
        );
    }
    let scratch = Scratch::new();
    let s = scratch.dir.path().display().to_string();
    let (dns_port, web_port) = (free_port(), free_port());
    let query = format!("{}/tests/python/dns_query.py", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        scratch.path("lighttpd.conf"),
        format!(
            "server.document-root = \"{s}/www\"\nserver.port = {web_port}\nserver.bind = \"127.0.0.1\"\n\
             index-file.names = ( \"index.html\" )\nmimetype.assign = ( \".html\" => \"text/html\" )\n"
        ),
    )
    .expect("lighttpd.conf");
    let doc = json!({"KillTimeout": 15, "Containers": [
        {"name": "setup", "exec": sh(format!(
            "mkdir -p {s}/www {s}/dns && echo 'served by lighttpd' > {s}/www/index.html && \
             echo '127.0.0.1 web.test' > {s}/dns/hosts && chown -R 33:33 {s}/www && chmod -R a+rX {s}/www {s}/dns"))},
        {"name": "dns", "user": "65534:65534",
         "exec": ["/usr/sbin/dnsmasq", "--keep-in-foreground", format!("--port={dns_port}"), "--listen-address=127.0.0.1",
                  "--bind-interfaces", "--no-resolv", "--no-hosts", format!("--addn-hosts={s}/dns/hosts"), "--pid-file=", "--log-facility=-"],
         "depends_on": [{"name": "setup", "condition": "exited_successfully"}],
         "healthchecks": [{"exec": {"command": ["python3", query.clone(), "web.test", dns_port.to_string()]}, "interval": 0.2, "timeout": 2}],
         "on_exit": "ignore"},
        {"name": "web", "user": "33:33", "exec": ["/usr/sbin/lighttpd", "-D", "-f", format!("{s}/lighttpd.conf")],
         "depends_on": [{"name": "dns", "condition": "healthy"}, {"name": "setup", "condition": "exited_successfully"}],
         "healthchecks": [{"http": {"port": web_port, "path": "/"}, "interval": 0.2}],
         "on_exit": "ignore"},
        {"name": "client", "user": "1000:1000", "exec": sh(format!(
            "ip=$(python3 {query} web.test {dns_port}) && echo resolved web.test to $ip && \
             curl -sf --resolve web.test:{web_port}:$ip http://web.test:{web_port}/")),
         "depends_on": [{"name": "web", "condition": "healthy"}]},
    ]});
    let config = scratch.config(&doc);
    let done = Running::start(PID_NS, &config).wait(T);
    done.assert_code(0);
    let (out, err) = (&done.stdout, &done.stderr);
    assert!(
        out.contains("[client] resolved web.test to 127.0.0.1"),
        "{out}\n{err}"
    );
    assert!(out.contains("[client] served by lighttpd"), "{out}\n{err}");
    assert!(
        out.contains("[dns] dnsmasq") || out.contains("[dns] "),
        "{out}"
    );
    assert!(
        line_of(err, "dns is ready") < line_of(err, "web started"),
        "{err}"
    );
    assert!(
        line_of(err, "web is ready") < line_of(err, "client started"),
        "{err}"
    );
    // Each as its own user.
    for (name, uid) in [("dns", 65534), ("web", 33), ("client", 1000)] {
        let line = &err
            .lines()
            .nth(line_of(err, &format!("{name} started")))
            .unwrap_or_default()
            .to_string();
        assert!(line.contains(&format!("uid={uid}")), "{line}");
    }
    // The stop: web before dns, each by its own signal, nothing killed.
    assert!(
        line_of(err, "web exited") < line_of(err, "dns exited"),
        "{err}"
    );
    assert!(!err.contains("SIGKILL"), "{err}");
}

/// systemd's readiness protocol: `notify: true` gives the service a `NOTIFY_SOCKET`; its
/// `READY=1` makes it healthy for its dependents. A `READY=1` from another process (another
/// service that found the socket) is ignored.
#[test]
fn ready_1_on_notify_socket_makes_a_service_healthy_and_a_spoof_does_not() {
    let notify = "import os, socket, time; time.sleep(1.0); a = os.environ['NOTIFY_SOCKET']; \
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); \
                  s.sendto(b'STATUS=up\\nREADY=1', '\\0' + a[1:] if a.startswith('@') else a); \
                  print('notified', flush=True); time.sleep(600)";
    // Finds db's socket among the abstract ones and sends READY=1 to it first.
    let spoof = "import socket, time\n\
                 for _ in range(100):\n    names = [l.split()[-1] for l in open('/proc/net/unix') if '-db-' in l and l.split()[-1].startswith('@')]\n    if names: break\n    time.sleep(0.02)\n\
                 s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                 s.sendto(b'READY=1', '\\0' + names[0][1:])\nprint('spoofed', flush=True)\n";
    let (_scratch, done) = run(json!({"KillTimeout": 5, "Containers": [
        {"name": "db", "exec": ["python3", "-c", notify], "notify": true, "on_exit": "ignore",
         "stop": {"signal": "SIGKILL"}},
        {"name": "spoofer", "exec": ["python3", "-c", spoof], "restart": {"policy": "no"}, "on_exit": "ignore"},
        {"name": "app", "exec": ["sh", "-c", "echo app ran"], "depends_on": [{"name": "db", "condition": "healthy"}],
         "restart": {"policy": "no"}},
    ]}));
    done.assert_code(0);
    let (out, err) = (&done.stdout, &done.stderr);
    assert!(out.contains("[spoofer] spoofed"), "{out}\n{err}");
    assert!(err.contains("not of its session"), "{err}");
    assert!(
        line_of(err, "db sent READY=1") < line_of(err, "app started"),
        "{err}"
    );
    assert!(
        line_of(out, "[db] notified") < line_of(out, "[app] app ran"),
        "{out}"
    );
}

/// Files (from base64 and from a secret) written before the start with the service's owner
/// and their mode, secrets and env_from in the env, an in-memory volume mounted at the
/// service's path, and a tcp readiness check that needs two passes in a row.
#[test]
fn files_secrets_env_from_volumes_and_a_tcp_check() {
    let scratch = Scratch::new();
    let s = scratch.dir.path().display().to_string();
    let port = free_port();
    // The probe runs as uid 1000: its report goes in a directory of its own.
    std::fs::create_dir(scratch.path("out")).expect("mkdir");
    std::os::unix::fs::chown(scratch.path("out"), Some(1000), Some(1000)).expect("chown");
    let report = scratch.path("out/report");
    let doc = json!({
    "MachineId": "m-files", "AppName": "app1", "ExtraEnv": {"FROM_MACHINE": "yes"},
    "Secrets": {"DB_PASSWORD": "hunter2", "TLS_KEY": "-----KEY-----"},
    "Volumes": [{"name": "scratch", "temp_dir": {"storage_type": "memory", "size_mb": 4}}],
    "Containers": [
        {"name": "server", "user": "1000:1000",
         "exec": ["python3", "-c", format!("import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen(8)\nwhile True:\n    c,_=s.accept(); c.close()")],
         "secrets": [{"env_var": "PASSWORD", "name": "DB_PASSWORD"}],
         "env_from": [{"env_var": "MACHINE", "field_ref": "id"}, {"env_var": "APP", "field_ref": "app_name"}],
         "files": [
            {"guest_path": format!("{s}/etc/server.conf"), "raw_value": "bGlzdGVuIDgwODAK", "mode": 384},
            {"guest_path": format!("{s}/etc/tls.key"), "secret_name": "TLS_KEY", "mode": 256},
         ],
         "mounts": [{"name": "scratch", "path": format!("{s}/scratch")}],
         "healthchecks": [{"tcp": {"port": port}, "interval": 0.1, "success_threshold": 2}],
         "on_exit": "ignore"},
        {"name": "probe", "user": "1000:1000", "exec": sh(format!(
            "{{ stat -c '%u %a' {s}/etc/server.conf {s}/etc/tls.key; cat {s}/etc/server.conf; \
               cat /proc/1/environ >/dev/null 2>&1 && echo environ-readable; \
               tr '\\0' '\\n' < /proc/$(pgrep -f '^python3 -c import socket')/environ | grep -E '^(PASSWORD|MACHINE|APP|FROM_MACHINE|DB_PASSWORD|TLS_KEY)=' | sort; \
               grep ' {s}/scratch ' /proc/self/mounts | cut -d' ' -f3; touch {s}/scratch/x && echo scratch-writable; }} > {r}",
            r = report.display())),
         "restart": {"policy": "no"},
         "depends_on": [{"name": "server", "condition": "healthy"}]},
    ]});
    let config = scratch.config(&doc);
    // Volumes under the scratch directory, not the host's /run.
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(PID_NS)
        .arg(ROOST)
        .args(["container", "--config"])
        .arg(&config)
        .env("ROOST_VOLUME_DIR", scratch.path("volumes"));
    let done = Running::spawn(cmd).wait(T);
    done.assert_code(0);
    let text = std::fs::read_to_string(&report).expect("report");
    assert!(
        !text.contains("environ-readable"),
        "a non-root service read PID 1's env: {text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1000 600", "{text}");
    assert_eq!(lines[1], "1000 400", "{text}");
    assert_eq!(lines[2], "listen 8080", "{text}");
    // The service's env: the named secret under its variable, env_from, the machine's env;
    // with a `secrets` list, only the secrets it names.
    for want in [
        "APP=app1",
        "FROM_MACHINE=yes",
        "MACHINE=m-files",
        "PASSWORD=hunter2",
    ] {
        assert!(lines.contains(&want), "{want}: {text}");
    }
    assert!(
        !text.contains("DB_PASSWORD=") && !text.contains("TLS_KEY="),
        "{text}"
    );
    assert!(lines.contains(&"tmpfs"), "the volume is in memory: {text}");
    assert!(lines.contains(&"scratch-writable"), "{text}");
    assert!(done.stderr.contains("server is ready"), "{}", done.stderr);
    // No secret on the console.
    assert!(!done.stderr.contains("hunter2") && !done.stdout.contains("hunter2"));
    assert!(!done.stderr.contains("-----KEY-----"));
}

/// https checks: a TLS server with a private CA's certificate (the devplatform's) is healthy
/// with `tls_skip_verify`, and never with verification (its CA is not among the roots).
#[test]
fn https_checks_verify_unless_told_not_to() {
    let scratch = Scratch::new();
    let base = json!({"ExecOverride": ["true"]});
    let platform = DevPlatform::start_on(
        scratch.dir.path(),
        "127.0.0.1:0",
        &base,
        &[
            "--tls-ca-out",
            &scratch.path("ca.pem").display().to_string(),
        ],
    );
    let ready: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.path("platform.ready")).expect("ready"),
    )
    .expect("json");
    let port: u16 = ready["api"]
        .as_str()
        .and_then(|a| a.rsplit(':').next()?.parse().ok())
        .expect("the platform's port");
    let check = |skip: bool| {
        json!([{"http": {"port": port, "path": "/_dev/requests", "scheme": "https",
                        "tls_skip_verify": skip, "tls_server_name": "localhost"},
                "interval": 0.1, "timeout": 2, "failure_threshold": 100}])
    };
    let (_s, done) = run(json!({"KillTimeout": 2, "Containers": [
        {"name": "skip", "exec": ["sleep", "600"], "healthchecks": check(true), "on_exit": "ignore",
         "stop": {"signal": "SIGKILL"}},
        {"name": "strict", "exec": ["sleep", "600"], "healthchecks": check(false), "on_exit": "ignore",
         "stop": {"signal": "SIGKILL"}},
        // Ends the machine once skip is ready, with strict still not ready.
        {"name": "after", "exec": ["sh", "-c", "sleep 1"], "depends_on": [{"name": "skip", "condition": "healthy"}],
         "restart": {"policy": "no"}},
    ]}));
    drop(platform);
    done.assert_code(0);
    assert!(done.stderr.contains("skip is ready"), "{}", done.stderr);
    assert!(!done.stderr.contains("strict is ready"), "{}", done.stderr);
}

/// Each service's cgroup limits, and OOM detection per service: a service over its
/// `memory_mib` is OOM-killed and its exit says so; another's `memory_mib` and `pids_max` are
/// in its own leaves.
#[test]
fn each_service_has_its_own_cgroup_limits_and_oom_detection() {
    let (_scratch, done) = run(json!({"Containers": [
        {"name": "hog", "exec": ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
         "cgroup": {"memory_mib": 32}, "restart": {"policy": "no"}, "on_exit": "ignore"},
        {"name": "limits", "exec": ["sh", "-c",
            "m=$(grep -E '^[0-9]+:memory:' /proc/self/cgroup | cut -d: -f3); p=$(grep -E '^[0-9]+:pids:' /proc/self/cgroup | cut -d: -f3); \
             echo memory=$(cat /sys/fs/cgroup/memory$m/memory.limit_in_bytes) pids=$(cat /sys/fs/cgroup/pids$p/pids.max)"],
         "cgroup": {"memory_mib": 48, "pids_max": 50},
         "depends_on": [{"name": "hog", "condition": "completed"}], "restart": {"policy": "no"}},
    ]}));
    done.assert_code(0);
    assert!(!done.stdout.contains("survived"), "{}", done.stdout);
    let hog = done
        .stderr
        .lines()
        .find(|l| l.contains("msg=\"hog exited"))
        .unwrap_or_else(|| panic!("{}", done.stderr));
    assert!(
        hog.contains("exit_code=137") && hog.contains("oom_killed=true"),
        "{hog}"
    );
    assert!(
        done.stdout.contains("[limits] memory=50331648 pids=50"),
        "{}",
        done.stdout
    );
}

/// Every service over by itself, none deciding the exit: the machine ends at once with 0,
/// not after its stop bound and a SIGKILL wait for nothing (it waited KillTimeout plus 10 s,
/// then logged `[] did not die within 10 s of SIGKILL`).
#[test]
fn when_every_service_is_over_and_none_decided_the_machine_ends_at_once() {
    let started = Instant::now();
    let (_scratch, done) = run(json!({"KillTimeout": 30, "Containers": [
        {"name": "a", "exec": ["true"], "on_exit": "ignore", "restart": {"policy": "no"}},
        {"name": "b", "exec": sh("exit 3".into()), "on_exit": "ignore", "restart": {"policy": "no"}},
    ]}));
    done.assert_code(0);
    let err = &done.stderr;
    assert!(
        err.contains("no service decided (every service is over)"),
        "{err}"
    );
    assert!(!err.contains("did not die"), "{err}");
    assert!(!err.contains("SIGKILL"), "{err}");
    // Not a timing claim: the bound it used to wait out is 30 s.
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
}

/// A Fly machine config pasted as it is (its `containers`, `env` and `stop_config`, and keys
/// that are the host's) runs: before, roost read nothing of it and refused it as a workload
/// without a command.
#[test]
fn a_fly_machine_config_runs_as_written() {
    let (_scratch, done) = run(json!({
        "containers": [
            {"name": "setup", "exec": sh("echo setup in $REGION".into()), "restart": {"policy": "no"}, "on_exit": "ignore"},
            {"name": "app", "exec": sh("echo app after setup".into()),
             "depends_on": [{"name": "setup", "condition": "exited_successfully"}]},
        ],
        "env": {"REGION": "ord"},
        "stop_config": {"timeout": "5s", "signal": "SIGINT"},
        "guest": {"cpus": 1, "memory_mb": 256},
        "image": "registry.fly.io/app:v1",
    }));
    done.assert_code(0);
    let (out, err) = (&done.stdout, &done.stderr);
    assert!(out.contains("[setup] setup in ord"), "{out}\n{err}");
    assert!(
        line_of(out, "[setup] setup in ord") < line_of(out, "[app] app after setup"),
        "{out}"
    );
    assert!(err.contains("guest: the host's (flyd's) part"), "{err}");
    assert!(err.contains("image: the host's (flyd's) part"), "{err}");
}

/// `stop.command`: a service that stops by its own command (`pg_ctl stop`, `mysqladmin
/// shutdown`) gets it first, run as the service, and no signal while it works; one still
/// running `stop.timeout` after its command gets its stop signal then.
#[test]
fn a_stop_command_runs_as_the_service_before_its_signal() {
    let scratch = Scratch::new();
    let dir = scratch.path("shared");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("mode");
    let d = dir.display();
    let doc = json!({"KillTimeout": 20, "Containers": [
        // Ignores SIGTERM; ends when its stop command says so.
        {"name": "db", "user": "65534",
         "exec": sh(format!("trap '' TERM; while [ ! -f {d}/stop-db ]; do sleep 0.05; done; echo db stopped by its command")),
         "stop": {"command": ["sh", "-c", format!("id -u > {d}/stopper; touch {d}/stop-db")], "timeout": "5s"}},
        // Its command does nothing: SIGTERM after its 1 s.
        {"name": "stubborn",
         "exec": sh("trap 'echo stubborn got TERM; exit 7' TERM; while :; do sleep 0.05; done".into()),
         "stop": {"command": ["true"], "timeout": "1s"}, "on_exit": "ignore"},
    ]});
    let (done, took) = stopped_after_a_second(&scratch, &doc);
    let (out, err) = (&done.stdout, &done.stderr);
    assert!(
        out.contains("[db] db stopped by its command"),
        "{out}\n{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("stopper"))
            .expect("the command ran")
            .trim(),
        "65534",
        "run as the service's user"
    );
    assert!(err.contains("db's stop command ended (0)"), "{err}");
    assert!(out.contains("[stubborn] stubborn got TERM"), "{out}");
    assert!(
        err.contains("stubborn still runs 1 s after its stop command"),
        "{err}"
    );
    assert!(!err.contains("SIGKILL"), "{err}");
    // The stubborn one waited its 1 s for nothing before its signal.
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

/// `stop.parent_only`: the stop signal goes to the service's own process, which passes it on
/// its own way (here as SIGUSR1); without it, the whole process group gets the signal.
#[test]
fn parent_only_signals_the_service_process_and_not_its_group() {
    let service = |name: &str, parent_only: bool| {
        json!({"name": name, "on_exit": "ignore",
         "exec": sh(format!("sh -c 'trap \"echo {name} child got USR1; exit 0\" USR1; trap \"echo {name} child got TERM; exit 0\" TERM; while :; do sleep 0.05; done' & child=$!; trap \"sleep 0.3; kill -USR1 $child 2>/dev/null; wait $child; exit 0\" TERM; echo {name} up; wait")),
         "stop": {"parent_only": parent_only, "timeout": "5s"}})
    };
    let scratch = Scratch::new();
    let doc =
        json!({"KillTimeout": 10, "Containers": [service("alone", true), service("group", false)]});
    let (done, _) = stopped_after_a_second(&scratch, &doc);
    let (out, err) = (&done.stdout, &done.stderr);
    assert!(out.contains("alone child got USR1"), "{out}\n{err}");
    assert!(!out.contains("alone child got TERM"), "{out}");
    assert!(out.contains("group child got TERM"), "{out}");
    assert!(!err.contains("SIGKILL"), "{err}");
}

/// `always` with a `max_retries` ends with its last exit (process-compose's `max_restarts`),
/// so a dependent waiting for a successful exit starts after it, once.
#[test]
fn a_dependent_waits_for_the_last_exit_of_a_limited_always_restart() {
    let (_scratch, done) = run(json!({"KillTimeout": 5, "Containers": [
        {"name": "warm", "exec": sh("echo warming".into()), "on_exit": "ignore",
         "restart": {"policy": "always", "max_retries": 2, "backoff_seconds": 0.05, "max_backoff_seconds": 0.05}},
        {"name": "app", "exec": sh("echo app ran".into()),
         "depends_on": [{"name": "warm", "condition": "exited_successfully"}]},
    ]}));
    done.assert_code(0);
    let out = &done.stdout;
    assert_eq!(out.matches("[warm] warming").count(), 3, "{out}");
    assert_eq!(out.matches("[app] app ran").count(), 1, "{out}");
    let last_warm = out.rfind("[warm] warming").unwrap_or(0);
    assert!(
        out.find("[app] app ran").is_some_and(|a| a > last_warm),
        "{out}"
    );
}

/// `start: manual`: defined, shown as `manual`, not started with the machine (and not waited
/// for at its end); a dependent waiting on it is skipped; it runs when asked.
#[test]
fn a_manual_service_runs_only_when_asked() {
    let scratch = Scratch::new();
    let doc = json!({"KillTimeout": 5, "Containers": [
        {"name": "web", "exec": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]},
        {"name": "tool", "exec": ["sh", "-c", "echo tool ran"], "start": "manual", "on_exit": "ignore"},
        {"name": "after-tool", "exec": ["sh", "-c", "echo after-tool ran"], "on_exit": "ignore",
         "depends_on": [{"name": "tool", "condition": "completed"}]},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    let state = |name: &str| service_state(&ctl, name);
    wait_until("web running", || state("web") == "running");
    assert_eq!(state("tool"), "manual");
    assert_eq!(state("after-tool"), "skipped");
    let r = http(&ctl, "POST", "/v2/services/tool/start", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_until("tool ran", || state("tool") == "exited");
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    assert!(done.stdout.contains("[tool] tool ran"), "{}", done.stdout);
    assert!(!done.stdout.contains("after-tool ran"), "{}", done.stdout);
}

/// `daemon`: a command that forks its daemon and exits 0 (`pg_ctl start`) leaves the service
/// running as its leaf's processes; a stop signals them; one whose daemon ends by itself
/// exits then, with code 0.
#[test]
fn a_daemon_service_lives_while_its_leaf_has_processes() {
    let scratch = Scratch::new();
    let doc = json!({"KillTimeout": 10, "Containers": [
        {"name": "pgish", "daemon": true,
         "exec": sh("(trap 'echo daemon got TERM; exit 0' TERM; while :; do sleep 0.05; done) & echo forked; exit 0".into())},
        {"name": "brief", "daemon": true, "on_exit": "ignore", "restart": {"policy": "no"},
         "exec": sh("(sleep 1; echo brief daemon done) & exit 0".into())},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    let state = |name: &str| service_state(&ctl, name);
    wait_until("brief's daemon ended", || state("brief") == "exited");
    // Its command exited long ago; its daemon still runs, and so does the service.
    assert_eq!(state("pgish"), "running");
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    let (out, err) = (&done.stdout, &done.stderr);
    assert!(out.contains("[brief] brief daemon done"), "{out}");
    assert!(out.contains("daemon got TERM"), "{out}\n{err}");
    assert!(err.contains("pgish's command exited 0 and left"), "{err}");
    assert!(!err.contains("SIGKILL"), "{err}");
}
