//! process-compose's own repository's 68 project files (tests/corpus/process-compose, Apache
//! 2.0, SOURCE.md there) through the real `roostctl import process-compose`. Each either
//! imports into a config roost's own validation takes, or is refused for the one reason
//! listed below, naming the key. Before roost read project directories, names that are not
//! DNS labels, string numbers, daemons, replicas, disabled processes, stop commands,
//! `parent_only`, `exit_on_skipped`, `extends`, `vars` templates, `env_cmds` and `env_file`,
//! 22 of the 68 imported; now 58 do, and 57 of those pass roost's validation (the 58th is
//! process-compose's own fixture of a dependency cycle, which it refuses too). The same is
//! done for 34 files of other public repositories and the 96 project blocks of
//! process-compose's docs (below). Five projects whose commands run on Debian also run under
//! roost, with their behaviour checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

/// The files roost refuses, and the key each refusal names.
const REFUSED: &[(&str, &str)] = &[
    // An interactive process reads the terminal process-compose gives it.
    (
        "demo/process-compose.yaml",
        "processes.lazygit.is_interactive",
    ),
    (
        "issues/issue_508/compose.yaml",
        "processes.noisy.is_interactive",
    ),
    (
        "issues/issue_512/compose.yaml",
        "processes.interactive.is_interactive",
    ),
    (
        "test-simple-interactive.yaml",
        "processes.my-htop.is_interactive",
    ),
    // process-compose's own MCP server.
    ("examples/mcp-example.yaml", "processes.search-logs.mcp"),
    (
        "process-compose.override.yaml",
        "processes._process2.readiness_probe.http_get.host",
    ),
    // Written for process-compose's own tests, which run it from their `src/app` directory:
    // its `working_dir: ../../fixtures-code/` is relative to that, so from the file's own
    // directory (the project's, at import) the `env_file` is not there, and the import says
    // which path it read.
    (
        "fixtures-code/process-compose-env-file.yaml",
        "processes.test_env_file.env_file",
    ),
    // A job every 30 s: roost has no schedules.
    (
        "video-series/demo/process-compose.yaml",
        "processes.vacuum.schedule",
    ),
    // sudo for one process: roost runs each service as its configured user.
    (
        "issues/issue_238/process-compose.yaml",
        "processes.elevated.is_elevated",
    ),
    // A probe of another host: roost's checks look at 127.0.0.1.
    (
        "process-compose.yaml",
        "processes._process2.readiness_probe.http_get.host",
    ),
];

fn projects(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            projects(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every project file under `corpus`, in order, with what `roostctl import process-compose`
/// made of it (the project in the VM at /srv/project).
fn imports(corpus: &Path) -> Vec<(String, std::process::Output)> {
    let mut files = Vec::new();
    projects(corpus, &mut files);
    files.sort();
    files
        .iter()
        .map(|file| {
            let name = file
                .strip_prefix(corpus)
                .expect("inside")
                .display()
                .to_string();
            let out = std::process::Command::new(common::roostctl_bin())
                .args(["import", "process-compose"])
                .arg(file)
                .args(["--project-dir", "/srv/project"])
                .output()
                .expect("roostctl");
            (name, out)
        })
        .collect()
}

#[test]
fn process_composes_own_projects_import_or_are_refused_for_a_stated_reason() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/process-compose");
    let all = imports(&corpus);
    assert_eq!(all.len(), 68);
    let mut imported = 0;
    let mut refused = Vec::new();
    for (name, out) in all {
        let err = String::from_utf8_lossy(&out.stderr);
        match REFUSED.iter().find(|(f, _)| *f == name) {
            Some((_, key)) => {
                assert!(!out.status.success(), "{name} imports now: update REFUSED");
                assert!(err.contains(&format!("{key}:")), "{name}: {err}");
                refused.push(name);
            }
            None => {
                assert!(out.status.success(), "{name}: {err}");
                // roost's own validation takes what the import made.
                match roost::config::parse(&out.stdout) {
                    Ok(_) => imported += 1,
                    // process-compose's own fixture of a dependency cycle, which it refuses
                    // too: roost's validation says where the cycle is.
                    Err(e) if name == "fixtures-code/process-compose-circular.yaml" => {
                        assert!(e.to_string().contains("dependency cycle"), "{e}");
                    }
                    Err(e) => panic!("{name}: roost refuses the import: {e}"),
                }
            }
        }
    }
    assert_eq!(refused.len(), REFUSED.len());
    assert_eq!(imported, 57);
}

/// A corpus file (under tests/corpus) through `roostctl import process-compose`, which must
/// take it; the project's directory in the VM is `project_dir`, or the file's own.
fn import(file: &str, project_dir: Option<&Path>) -> serde_json::Value {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut command = std::process::Command::new(common::roostctl_bin());
    command
        .args(["import", "process-compose"])
        .arg(corpus.join(file));
    if let Some(dir) = project_dir {
        command.arg("--project-dir").arg(dir);
    }
    let out = command.output().expect("roostctl");
    assert!(
        out.status.success(),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// An imported project run under roost as PID 1 of a fresh PID namespace.
fn run(mut doc: serde_json::Value, scratch: &common::Scratch) -> common::Finished {
    // process-compose's default shell is bash; Debian has it.
    doc["KillTimeout"] = serde_json::json!(10);
    let config = scratch.config(&doc);
    common::Running::start(common::PID_NS, &config).wait(std::time::Duration::from_secs(60))
}

/// A corpus file whose commands need no files of their own, run in a scratch directory.
fn run_corpus(file: &str) -> common::Finished {
    let scratch = common::Scratch::new();
    let file = format!("process-compose/{file}");
    run(import(&file, Some(scratch.dir.path())), &scratch)
}

/// process-compose's rhombus fixture runs as its dependencies say: process8 first, 6 and 7
/// after it, 5 after both, then 4, 3, 2, 1; the machine ends with 0 when all are over.
#[test]
fn the_rhombus_fixture_runs_in_dependency_order() {
    let done = run_corpus("fixtures/process-compose-chain-rhombus.yaml");
    done.assert_code(0);
    let at = |n: u32| {
        done.stdout
            .find(&format!("[process{n}] process{n}"))
            .unwrap_or_else(|| panic!("process{n} did not run:\n{}", done.stdout))
    };
    assert!(at(8) < at(6) && at(8) < at(7), "{}", done.stdout);
    assert!(at(6) < at(5) && at(7) < at(5), "{}", done.stdout);
    assert!(at(5) < at(4) && at(4) < at(3) && at(3) < at(2) && at(2) < at(1));
    assert!(!done.stderr.contains("did not die"), "{}", done.stderr);
}

/// process-compose's `success_exit_codes` fixture: 130 allowed is a success (no restart);
/// without the allowance it is a failure, restarted once (`max_restarts: 1`), then over.
#[test]
fn the_success_exit_codes_fixture_restarts_only_the_failure() {
    let done = run_corpus("fixtures-code/process-compose-success-exit-codes.yaml");
    done.assert_code(0);
    let runs = |name: &str| {
        done.stderr
            .matches(&format!("{name} exited: code 130"))
            .count()
    };
    assert_eq!(runs("allowed"), 1, "{}", done.stderr);
    assert_eq!(runs("control"), 2, "{}", done.stderr);
}

/// A project that `extends` another file (process-compose's issue 278 reproduction: `server`
/// extends `../db`'s project): `db` runs in its own file's directory, `server` in its own,
/// after `db` has exited 0.
#[test]
fn the_extended_project_runs_each_process_in_its_own_files_directory() {
    let doc = import(
        "process-compose/issues/issue_278/server/process-compose.yaml",
        None,
    );
    let done = run(doc, &common::Scratch::new());
    done.assert_code(0);
    let db = done.stdout.find("[db] db started");
    let server = done.stdout.find("[server] server started");
    assert!(
        db.is_some() && server.is_some() && db < server,
        "{}",
        done.stdout
    );
}

/// What process-compose computes at load, computed at import: issue 120's `vars` rendered
/// into the command, issue 316's `env_cmds` run and written into the env (its probe reads it
/// through the shell, `$${HI}` being `${HI}` there).
#[test]
fn vars_and_env_cmds_of_real_projects_are_rendered_and_run_at_import() {
    let vars = import(
        "process-compose/issues/issue_120/process-compose.yaml",
        None,
    );
    assert_eq!(vars["Containers"][0]["exec"][2], "echo 5 > /tmp/output");
    let cmds = import(
        "process-compose/issues/issue_316/process-compose.yaml",
        None,
    );
    let hello = &cmds["Containers"][0];
    assert_eq!(hello["env"]["HI"], "Hello");
    assert_eq!(
        hello["healthchecks"][0]["exec"]["command"][2],
        "echo ${HI} there > test.txt"
    );
}

/// 34 process-compose files from 33 other public repositories (tests/corpus/external, each
/// under its own permissive licence, SOURCE.md there). Before roost read project
/// directories, label-less names, string numbers, daemons, stop commands and the rest, 12 of
/// them imported; now every one does, and roost's validation takes 33 of the results (the
/// 34th waits for a process that never exits, below).
#[test]
fn real_projects_from_other_repositories_import_and_validate() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/external");
    let all = imports(&corpus);
    assert_eq!(all.len(), 34);
    let mut validated = 0;
    for (name, out) in all {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {err}");
        match roost::config::parse(&out.stdout) {
            Ok(_) => validated += 1,
            // `ff-bot` waits with no condition (process-compose's process_completed) for
            // `build` and `groupmesim`, which never exit (a watcher and an always-restart):
            // process-compose never starts it. The import says so, and roost's validation
            // refuses the wait that cannot end.
            Err(e) if name == "dwhitacre+ff-bot/process-compose.yml" => {
                assert!(
                    err.contains("depends_on.groupmesim: no condition is process_completed"),
                    "{err}"
                );
                assert!(
                    e.to_string().contains("\"groupmesim\" restarts always"),
                    "{e}"
                );
            }
            Err(e) => panic!("{name}: roost refuses the import: {e}"),
        }
    }
    assert_eq!(validated, 33);
}

/// A real project's Redis (Bazinga9000/reservoir's file: `redis-server --dir data` with a
/// `redis-cli ping` readiness probe) run by Debian's redis-server under roost: a client
/// waiting for it to be healthy (the imported probe) stores and reads a key; its exit stops
/// the machine, and Redis stops cleanly on its SIGTERM. (The project's other two processes
/// are its own Django app and a Go tool, which Debian does not have.)
#[test]
fn a_real_projects_redis_runs_healthy_and_stops_cleanly() {
    assert!(
        Path::new("/usr/bin/redis-server").exists(),
        "redis-server is missing: run ./test.sh setup (it installs redis-server)"
    );
    let scratch = common::Scratch::new();
    std::fs::create_dir(scratch.dir.path().join("data")).expect("mkdir");
    let mut doc = import(
        "external/Bazinga9000+reservoir/process-compose.yaml",
        Some(scratch.dir.path()),
    );
    let redis = doc["Containers"]
        .as_array()
        .and_then(|c| c.iter().find(|s| s["name"] == "redis"))
        .cloned()
        .expect("a redis service");
    assert_eq!(
        redis["healthchecks"][0]["exec"]["command"][2],
        "redis-cli -p 6379 ping"
    );
    doc["Containers"] = serde_json::json!([redis, {
        "name": "client", "on_exit": "stop_machine",
        "exec": ["sh", "-c", "redis-cli -p 6379 set reservoir full && redis-cli -p 6379 get reservoir"],
        "depends_on": [{"name": "redis", "condition": "healthy"}],
    }]);
    let done = run(doc, &scratch);
    done.assert_code(0);
    let (out, err) = (&done.stdout, &done.stderr);
    assert!(out.contains("[client] full"), "{out}\n{err}");
    assert!(out.contains("Ready to accept connections"), "{out}");
    assert!(out.contains("Redis is now ready to exit"), "{out}");
    assert!(!err.contains("SIGKILL"), "{err}");
}

/// The 96 YAML blocks of process-compose's docs that hold `processes:` (its `www/docs`,
/// Apache 2.0, tests/corpus/process-compose-docs, named PAGE-N for the page's Nth block).
/// Each imports, or is refused for a reason of one of these kinds; the docs' own broken
/// examples (YAML that does not parse, a fragment, a placeholder name, a template Go cannot
/// run, a healthy wait on a process without a check) are refused as process-compose refuses
/// them (or, for the last, fails the dependent when it runs).
#[test]
fn process_composes_docs_examples_import_or_are_refused_by_kind() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/process-compose-docs");
    let all = imports(&corpus);
    assert_eq!(all.len(), 96);
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for (name, out) in all {
        let err = String::from_utf8_lossy(&out.stderr);
        let kind = if out.status.success() {
            match roost::config::parse(&out.stdout) {
                Ok(_) => "imported",
                // process-compose logs an error at load and fails the dependent when it runs.
                Err(e) if e.to_string().contains("healthy needs a health check") => {
                    "imported; a healthy wait on a process without a check, refused by roost's validation"
                }
                Err(e) => panic!("{name}: roost refuses the import: {e}"),
            }
        } else if err.contains(".mcp:") {
            "an MCP tool (process-compose's own MCP host)"
        } else if err.contains(".schedule:") {
            "a schedule"
        } else if err.contains(".is_interactive:") {
            "an interactive process"
        } else if err.contains(".watch:") {
            "a file watch"
        } else if err.contains(".is_elevated:") {
            "is_elevated"
        } else if err.contains("not YAML") || err.contains("processes.environment: not a mapping") {
            "YAML process-compose cannot read either"
        } else if err.contains("the template failed") {
            "a template Go cannot run ({{.State.Running}} unescaped)"
        } else if err.contains("cannot read") || err.contains("processes: missing") {
            "a fragment (a file it names is not in the docs, or no processes)"
        } else if err.contains("\"<process-name>\"") || err.contains("${WAIT_SEC}") {
            "a placeholder (a name, an unset variable for a number)"
        } else if err.contains("commnad: unknown key (the project is is_strict") {
            "is_strict's own example of a typo"
        } else {
            panic!("{name}: {err}")
        };
        *kinds.entry(kind).or_default() += 1;
    }
    let want = [
        ("YAML process-compose cannot read either", 4),
        ("a file watch", 2),
        (
            "a fragment (a file it names is not in the docs, or no processes)",
            3,
        ),
        ("a placeholder (a name, an unset variable for a number)", 2),
        ("a schedule", 10),
        ("a template Go cannot run ({{.State.Running}} unescaped)", 2),
        ("an MCP tool (process-compose's own MCP host)", 15),
        ("an interactive process", 4),
        ("imported", 49),
        (
            "imported; a healthy wait on a process without a check, refused by roost's validation",
            3,
        ),
        ("is_elevated", 1),
        ("is_strict's own example of a typo", 1),
    ];
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), want.to_vec());
}

/// process-compose's issue 400 reproduction: `dependent_process` waits for a log line of a
/// process that exits 1 without it, so it is skipped, and its `exit_on_skipped` ends the
/// project with 1 (roost's `on_exit: stop_machine_on_skip`); the skipped process never runs.
#[test]
fn a_skipped_process_with_exit_on_skipped_ends_the_machine_with_1() {
    let done = run_corpus("issues/issue_400/process-compose.yaml");
    done.assert_code(1);
    assert!(
        done.stdout.contains("[failing-process] This will fail"),
        "{}",
        done.stdout
    );
    assert!(
        !done.stdout.contains("This should be skipped"),
        "{}",
        done.stdout
    );
    assert!(
        done.stderr.contains("stop_machine_on_skip"),
        "{}",
        done.stderr
    );
}
