//! roost as PID 1 of fresh namespaces: exit codes, reaping, signals, stop, users, env, output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Shell that counts the zombies in the namespace into `$zombies` and prints `zombies=N`.
const COUNT_ZOMBIES: &str = r#"zombies=0
        for s in /proc/[0-9]*/stat; do
            state=$(sed 's/.*) //' "$s" 2>/dev/null | cut -d' ' -f1)
            [ "$state" = Z ] && zombies=$((zombies+1))
        done
        echo "zombies=$zombies""#;

#[test]
fn exit_codes_are_passed_through() {
    run_pid1(&sh_config("exit 0"), T).assert_code(0);
    run_pid1(&sh_config("exit 7"), T).assert_code(7);
    // Killed by a signal: 128 + the signal number.
    run_pid1(&sh_config("kill -TERM $$"), T).assert_code(128 + libc::SIGTERM);
}

#[test]
fn workload_runs_as_pid_1s_child_in_its_own_session() {
    // $$ is the workload's pid in the namespace; ps fields: pid, pgid, sid.
    let r = run_pid1(
        &sh_config("cat /proc/$$/stat | cut -d' ' -f4-6; cat /proc/1/comm"),
        T,
    );
    r.assert_code(0);
    let mut lines = r.stdout.lines();
    let ids: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    // ppid 1 (roost), pgid == sid == the workload's own pid.
    assert_eq!(ids[0], "1", "{}", r.stdout);
    assert_eq!(ids[1], ids[2], "{}", r.stdout);
    assert_ne!(ids[1], "1");
    assert_eq!(lines.next(), Some("roost"));
}

#[test]
fn five_hundred_orphans_are_reaped_while_the_workload_runs() {
    let script = format!(
        r#"
        i=0
        while [ $i -lt 500 ]; do sh -c 'sleep 0.2 &'; i=$((i+1)); done
        # Every orphan has exited by now; roost must have reaped them all.
        sleep 2
        {COUNT_ZOMBIES}
        [ $zombies -eq 0 ]
    "#
    );
    let r = run_pid1(&sh_config(&script), Duration::from_secs(120));
    r.assert_code(0);
    assert!(r.stdout.contains("zombies=0"), "{}", r.stdout);
    let reaped: u64 = r
        .stderr
        .split("orphans reaped: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|n| n.parse().ok())
        .expect("orphan count in the log");
    assert!(reaped >= 500, "only {reaped} orphans reaped\n{}", r.stderr);
}

#[test]
fn sigterm_reaches_the_whole_group_of_a_sh_c_wrapper() {
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    // The wrapper waits for its child; only a signal to the whole group reaches the child.
    let script = format!(
        r#"
        sh -c 'trap "echo child-got-term; exit 0" TERM; touch {ready}; while :; do sleep 0.05; done' &
        trap 'echo wrapper-got-term' TERM
        wait
        wait
        exit 3
    "#,
        ready = ready.display()
    );
    let config = scratch.config(&sh_config(&script));
    let running = Running::start(PID_NS, &config);
    wait_for_file(&ready, T);
    running.signal(libc::SIGTERM);
    let r = running.wait(T);
    r.assert_code(3);
    assert!(r.stdout.contains("child-got-term"), "{}", r.stdout);
    assert!(r.stdout.contains("wrapper-got-term"), "{}", r.stdout);
}

#[test]
fn other_signals_are_forwarded_unchanged() {
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let script = format!(
        r#"trap 'echo got-usr1' USR1; trap 'echo got-hup; exit 5' HUP
           touch {}; while :; do sleep 0.05; done"#,
        ready.display()
    );
    let config = scratch.config(&sh_config(&script));
    let running = Running::start(PID_NS, &config);
    wait_for_file(&ready, T);
    running.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(300));
    running.signal(libc::SIGHUP);
    let r = running.wait(T);
    r.assert_code(5);
    // The foreground `sleep` of the group gets the signals too (and the shell reports its
    // death), so only the order of the trap lines is asserted.
    let usr1 = r
        .stdout
        .find("got-usr1")
        .expect("USR1 reached the workload");
    let hup = r.stdout.find("got-hup").expect("HUP reached the workload");
    assert!(usr1 < hup, "{}", r.stdout);
}

/// catatonit's rule: every catchable signal reaches the workload, not only the usual five;
/// here SIGWINCH, SIGURG, SIGPWR and a real-time one (40).
#[test]
fn every_catchable_signal_is_forwarded_real_time_ones_too() {
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let script = format!(
        r#"trap 'echo got-28' 28; trap 'echo got-23' 23; trap 'echo got-30' 30
           trap 'echo got-40; exit 6' 40
           touch {}; while :; do sleep 0.05; done"#,
        ready.display()
    );
    let config = scratch.config(&sh_config(&script));
    let running = Running::start(PID_NS, &config);
    wait_for_file(&ready, T);
    for sig in [libc::SIGWINCH, libc::SIGURG, libc::SIGPWR] {
        running.signal(sig);
        std::thread::sleep(Duration::from_millis(300));
    }
    running.signal(40);
    let r = running.wait(T);
    r.assert_code(6);
    for sig in [28, 23, 30, 40] {
        assert!(
            r.stdout.contains(&format!("got-{sig}")),
            "{sig}: {}",
            r.stdout
        );
    }
}

#[test]
fn workload_ignoring_sigterm_is_killed_after_kill_timeout() {
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let mut doc = sh_config(&format!(
        r#"trap 'echo ignoring-term' TERM; touch {}; while :; do sleep 0.05; done"#,
        ready.display()
    ));
    doc["KillTimeout"] = json!(1);
    let config = scratch.config(&doc);
    let running = Running::start(PID_NS, &config);
    wait_for_file(&ready, T);
    let sent = std::time::Instant::now();
    running.signal(libc::SIGTERM);
    let r = running.wait(T);
    r.assert_code(128 + libc::SIGKILL);
    assert!(r.stdout.contains("ignoring-term"), "{}", r.stdout);
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "killed before KillTimeout"
    );
    assert!(r.stderr.contains("sending SIGKILL"), "{}", r.stderr);
}

#[test]
fn a_requested_stop_takes_one_kill_timeout_in_all() {
    // The workload ignores SIGTERM, and so does a daemon it started in a session of its own
    // (out of reach of the group signal). Both must be gone one KillTimeout after the request,
    // not one KillTimeout for the workload and another for the daemon.
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let mut doc = sh_config(&format!(
        r#"setsid sh -c 'trap "" TERM; while :; do sleep 0.05; done' &
           trap 'echo ignoring-term' TERM; touch {}; while :; do sleep 0.05; done"#,
        ready.display()
    ));
    doc["KillTimeout"] = json!(3);
    let config = scratch.config(&doc);
    let running = Running::start(PID_NS, &config);
    wait_for_file(&ready, T);
    let sent = std::time::Instant::now();
    running.signal(libc::SIGTERM);
    let r = running.wait(T);
    r.assert_code(128 + libc::SIGKILL);
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "stopped before KillTimeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "stop took two KillTimeouts: {took:?}\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("leftover processes are still running"),
        "{}",
        r.stderr
    );
}

#[test]
fn kill_signal_is_configurable() {
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let mut doc = sh_config(&format!(
        r#"trap 'echo got-int; exit 9' INT; touch {}; while :; do sleep 0.05; done"#,
        ready.display()
    ));
    doc["KillSignal"] = json!("SIGINT");
    let config = scratch.config(&doc);
    let running = Running::start(PID_NS, &config);
    wait_for_file(&ready, T);
    running.signal(libc::SIGTERM);
    let r = running.wait(T);
    r.assert_code(9);
    assert!(r.stdout.contains("got-int"), "{}", r.stdout);
}

#[test]
fn leftover_processes_get_kill_signal_and_their_output_is_kept() {
    // The workload exits at once and leaves a daemon behind that reacts to SIGTERM by
    // printing; roost must stop it, and its last words must reach roost's stdout.
    let script = r#"
        sh -c 'trap "echo leftover-stopped; exit 0" TERM; while :; do sleep 0.05; done' &
        sleep 0.2
        exit 4
    "#;
    let r = run_pid1(&sh_config(script), T);
    r.assert_code(4);
    assert!(r.stdout.contains("leftover-stopped"), "{}", r.stdout);
}

#[test]
fn user_override_nobody_runs_as_65534_with_its_groups() {
    let scratch = Scratch::new();
    // Fixture passwd/group, bind-mounted over /etc inside a private mount namespace: the
    // machine's own /etc is never touched.
    let passwd = scratch.write(
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    );
    let group = scratch.write(
        "group",
        "root:x:0:\nnogroup:x:65534:\nroosters:x:4242:nobody\nhens:x:4243:other,nobody\nothers:x:4244:other\n",
    );
    let mut doc = json!({
        "ImageConfig": { "Cmd": ["/bin/sh", "-c", "id -u; id -g; id -G; echo HOME=$HOME; pwd"],
                         "User": "root", "WorkingDir": "/tmp" },
        "UserOverride": "nobody"
    });
    let config = scratch.config(&doc);
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(PID_NS).arg("--mount").arg("/bin/sh").arg("-c").arg(
        r#"mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && exec "$3" container --config "$4""#,
    );
    cmd.arg("sh")
        .arg(&passwd)
        .arg(&group)
        .arg(ROOST)
        .arg(&config);
    let r = Running::spawn(cmd).wait(T);
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "65534",
            "65534",
            "65534 4242 4243",
            "HOME=/nonexistent",
            "/tmp"
        ],
        "{}",
        r.stderr
    );

    // "user:group" by name picks the group, supplementary groups stay.
    doc["UserOverride"] = json!("nobody:roosters");
    let config = scratch.config(&doc);
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(PID_NS).arg("--mount").arg("/bin/sh").arg("-c").arg(
        r#"mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && exec "$3" container --config "$4""#,
    );
    cmd.arg("sh")
        .arg(&passwd)
        .arg(&group)
        .arg(ROOST)
        .arg(&config);
    let r = Running::spawn(cmd).wait(T);
    r.assert_code(0);
    assert!(r.stdout.starts_with("65534\n4242\n"), "{}", r.stdout);
}

#[test]
fn extra_env_and_default_path() {
    let doc = json!({
        "ImageConfig": { "Cmd": ["env"], "Env": ["FROM_IMAGE=1", "SHARED=image", "BROKEN"] },
        "ExtraEnv": { "SHARED": "extra", "GREETING": "hello world" }
    });
    let r = run_pid1(&doc, T);
    r.assert_code(0);
    let mut vars: Vec<&str> = r.stdout.lines().collect();
    vars.sort();
    assert_eq!(
        vars,
        [
            "FROM_IMAGE=1",
            "GREETING=hello world",
            "HOME=/root",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "SHARED=extra",
        ],
        "roost's own environment must not leak: {}",
        r.stdout
    );
    assert!(r.stderr.contains("ImageConfig.Env[2]"), "{}", r.stderr);
}

#[test]
fn malformed_configs_exit_non_zero_naming_the_field() {
    for (doc, field) in [
        (r#"{"KillTimeout": "soon"}"#, "KillTimeout"),
        (
            r#"{"ImageConfig": {"Cmd": "not-a-list"}}"#,
            "ImageConfig.Cmd",
        ),
        (
            r#"{"KillSignal": "SIGNOPE", "ImageConfig": {"Cmd": ["true"]}}"#,
            "KillSignal",
        ),
        (
            r#"{"ImageConfig": {"Cmd": ["true"]}, "UserOverride": "ghost"}"#,
            "UserOverride",
        ),
    ] {
        let scratch = Scratch::new();
        let config = scratch.write("config.json", doc);
        let r = Running::start(PID_NS, &config).wait(T);
        r.assert_code(78);
        assert!(r.stderr.contains(field), "{doc}: {}", r.stderr);
    }
    // Not JSON at all, and no command.
    run_pid1(&json!({}), T).assert_code(78);
    let scratch = Scratch::new();
    let config = scratch.write("config.json", "{ not json");
    let r = Running::start(PID_NS, &config).wait(T);
    r.assert_code(78);
    assert!(r.stderr.contains("not valid JSON"), "{}", r.stderr);
}

#[test]
fn missing_program_exits_127() {
    let r = run_pid1(&json!({"ExecOverride": ["/nonexistent/program"]}), T);
    r.assert_code(127);
    assert!(r.stderr.contains("/nonexistent/program"), "{}", r.stderr);
}

#[test]
fn last_output_line_of_an_instant_exit_is_not_lost() {
    for i in 0..20 {
        let r = run_pid1(
            &sh_config(&format!("echo first; printf 'last-line-{i}'; exit 0")),
            T,
        );
        r.assert_code(0);
        assert!(
            r.stdout.ends_with(&format!("first\nlast-line-{i}")),
            "run {i}: {:?}",
            r.stdout
        );
    }
    // Much more than a pipe buffer, stdout and stderr both.
    let r = run_pid1(&sh_config("seq 1 200000; echo to-stderr >&2; exit 0"), T);
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 200_001);
    assert_eq!(lines[199_999], "200000");
    assert_eq!(lines[200_000], "to-stderr");
}

#[test]
fn subreaper_mode_when_not_pid_1() {
    let scratch = Scratch::new();
    let config = scratch.config(&sh_config("sh -c 'sleep 0.2 &'; sleep 0.5; exit 6"));
    let mut cmd = std::process::Command::new(ROOST);
    cmd.arg("container").arg("--config").arg(&config);
    let r = Running::spawn(cmd).wait(T);
    r.assert_code(6);
    assert!(r.stderr.contains("as a subreaper"), "{}", r.stderr);
    assert!(r.stderr.contains("orphans reaped: 1"), "{}", r.stderr);
}

#[test]
fn oom_kill_is_detected_from_the_workload_cgroup() {
    // 32 MiB limit; the shell buffers 200 MB of command substitution in its own memory.
    let mut doc = sh_config("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived");
    doc["MemoryLimitMiB"] = json!(32);
    let r = run_pid1(&doc, Duration::from_secs(60));
    r.assert_code(128 + libc::SIGKILL);
    assert!(!r.stdout.contains("survived"));
    assert!(r.stderr.contains("oom_killed: true"), "{}", r.stderr);
    // The leaf cgroup is removed again.
    for dir in leaf_dirs(&r.stderr) {
        assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    }
}

#[test]
fn real_time_signal_deaths_are_128_plus_n_for_workload_stop_and_orphans() {
    // The workload killed by SIGRTMIN (34): the exit code is not lost.
    run_pid1(&sh_config("kill -34 $$"), T).assert_code(128 + 34);
    run_pid1(&sh_config("kill -64 $$"), T).assert_code(128 + 64);

    // A stop with a real-time KillSignal ends (it used to hang: the exit was never learned).
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let mut doc = sh_config(&format!("touch {}; exec sleep 600", ready.display()));
    doc["KillSignal"] = json!(40);
    doc["KillTimeout"] = json!(20);
    let running = Running::start(PID_NS, &scratch.config(&doc));
    wait_for_file(&ready, T);
    running.signal(libc::SIGTERM);
    let r = running.wait(T);
    r.assert_code(128 + 40);
    // Within the KillTimeout: the signal killed it, no SIGKILL was needed.
    assert!(!r.stderr.contains("sending SIGKILL"), "{}", r.stderr);

    // Orphans killed by real-time signals are reaped, and the reap loop goes on to the rest.
    let r = run_pid1(
        &sh_config(&format!(
            r#"
            for sig in 34 40 50 64; do sh -c "sh -c 'kill -$sig \$\$' &"; done
            i=0; while [ $i -lt 20 ]; do sh -c 'sleep 0.1 &'; i=$((i+1)); done
            sleep 1
            {COUNT_ZOMBIES}
            exit 5
            "#
        )),
        T,
    );
    r.assert_code(5);
    assert!(r.stdout.contains("zombies=0"), "{}", r.stdout);
}

#[test]
fn an_image_passwd_that_is_a_fifo_or_a_device_is_refused_never_waited_on() {
    for (name, setup, source) in [
        ("fifo", "mkfifo \"$D/passwd\"", "\"$D/passwd\""),
        ("device", "true", "/dev/zero"),
    ] {
        let scratch = Scratch::new();
        let config = scratch.config(&sh_config("echo should-not-run"));
        // In a mount namespace of its own, the image's /etc/passwd becomes a FIFO (or
        // /dev/zero); the machine's own /etc is never touched.
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", "--mount", "--propagation", "private"])
            .arg("/bin/sh")
            .arg("-c")
            .arg(format!(
                "set -e; D={dir}; {setup}; mount --bind {source} /etc/passwd; exec {roost} container --config {config}",
                dir = scratch.dir.path().display(),
                roost = ROOST,
                config = config.display()
            ));
        let r = Running::spawn(cmd).wait(T);
        r.assert_code(78);
        assert!(
            r.stderr.contains("not a regular file"),
            "{name}: {}",
            r.stderr
        );
        assert!(!r.stdout.contains("should-not-run"), "{name}");
    }
}

#[test]
fn the_workload_is_born_in_every_leaf_with_a_fresh_signal_state() {
    // A bare program name (found on PATH, as execvp would), the cgroups the workload is in
    // from its first instruction, and its ignored signals (none: roost's SIGPIPE is not
    // inherited).
    let r = run_pid1(
        &json!({ "ImageConfig": { "Cmd": ["sh", "-c", "cat /proc/self/cgroup; grep SigIgn /proc/self/status"] } }),
        T,
    );
    r.assert_code(0);
    assert!(
        r.stdout.contains("SigIgn:\t0000000000000000"),
        "{}",
        r.stdout
    );
    let leaves = leaf_dirs(&r.stderr);
    for leaf in &leaves {
        let name = leaf.rsplit('/').next().expect("leaf name");
        let hierarchy = if leaf.contains("/memory/") {
            "memory"
        } else if leaf.contains("/pids/") {
            "pids"
        } else {
            ""
        };
        let line = r
            .stdout
            .lines()
            .find(|l| {
                let controllers = l.split(':').nth(1).unwrap_or("");
                if hierarchy.is_empty() {
                    l.starts_with("0::")
                } else {
                    controllers.split(',').any(|c| c == hierarchy)
                }
            })
            .unwrap_or_else(|| panic!("no {hierarchy:?} line in\n{}", r.stdout));
        assert!(line.ends_with(name), "{line} is not in {leaf}");
    }
    // Where the kernel clones into a cgroup v2 leaf (5.7 and later), no migration happened.
    if leaves
        .iter()
        .any(|l| !l.contains("/memory/") && !l.contains("/pids/"))
    {
        assert!(
            r.stderr
                .contains("workload born in its cgroup (clone3 CLONE_INTO_CGROUP)"),
            "{}",
            r.stderr
        );
        // ... and it joined its v1 leaves itself, before its exec (through their `tasks`
        // files), not by roost's move after.
        assert!(
            !r.stderr.contains("could not join its cgroup v1 leaves"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn a_workload_starts_with_no_signal_ignored_or_blocked_whatever_roost_inherited() {
    // roost's parent ignores and blocks signals, some roost handles (SIGHUP, SIGUSR1: the
    // exec resets those) and some it does not (SIGTRAP, SIGSYS, SIGPIPE: the child resets
    // those itself). The workload must start as a fresh process does: nothing ignored,
    // nothing blocked.
    let scratch = Scratch::new();
    let config = scratch.config(&sh_config("grep -E '^Sig(Ign|Blk)' /proc/self/status"));
    let mut cmd = roost_command(PID_NS, &config);
    // SAFETY: in the forked child before exec: signal(2) and sigprocmask(2) are
    // async-signal-safe and the set is a local value.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            for sig in [
                libc::SIGHUP,
                libc::SIGUSR1,
                libc::SIGTRAP,
                libc::SIGSYS,
                libc::SIGPIPE,
            ] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let r = Running::spawn(cmd).wait(T);
    r.assert_code(0);
    assert!(
        r.stdout.contains("SigIgn:\t0000000000000000"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("SigBlk:\t0000000000000000"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_kernel_without_openat2_still_resolves_the_workload_s_user() {
    // roost under a seccomp filter that answers ENOSYS to openat2 (as a kernel before 5.6
    // does, or a container runtime's filter that predates it): the machine's own /etc/passwd
    // is still read, so a user name resolves. Before, the machine exited 78.
    let scratch = Scratch::new();
    let mut doc = sh_config("id -u");
    doc["UserOverride"] = json!("nobody");
    let config = scratch.config(&doc);
    let mut cmd = roost_command(PID_NS, &config);
    // SAFETY: in the forked child before exec: prctl(2) with a filter program on this stack,
    // which the kernel copies. The test runs as root (CAP_SYS_ADMIN), so no no_new_privs.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            // x86_64: load the syscall number; openat2 (437) gets ENOSYS, the rest runs.
            let filter = [
                libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                libc::sock_filter {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: 437,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x0005_0000 | libc::ENOSYS as u32,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x7fff_0000,
                },
            ];
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r = Running::spawn(cmd).wait(T);
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), "65534", "{}", r.stderr);
}

#[test]
fn console_lines_are_logfmt_with_stable_keys_or_json() {
    // What a driver greps (pigeon's end-to-end suite looks for exit_code=0 and uid=65534):
    // the exit code, the workload's uid and pid, each phase with its duration, the level.
    let doc = json!({ "ImageConfig": { "Cmd": ["/bin/sh", "-c", "exit 3"], "User": "65534" } });
    let r = run_pid1(&doc, T);
    r.assert_code(3);
    let lines: Vec<&str> = r.stderr.lines().collect();
    let started = lines
        .iter()
        .find(|l| l.contains("msg=\"workload started"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(started.starts_with("t="), "{started}");
    for key in ["level=info", " pid=", " uid=65534 ", " gid=65534 "] {
        assert!(started.contains(key), "{key} in {started}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" exit_code=3 ") && l.contains(" oom_killed=false ")),
        "{}",
        r.stderr
    );
    let phase = lines
        .iter()
        .find(|l| l.contains(" phase=config "))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        phase.contains(" at_ms=") && phase.contains(" duration_ms="),
        "{phase}"
    );
    // The machine-readable exit line stays as it was.
    assert!(r
        .stderr
        .contains("roost: exit {\"code\":3,\"oom_killed\":false}"));

    // ROOST_LOG_FORMAT=json: one JSON object per line, the same keys.
    let scratch = Scratch::new();
    let config = scratch.config(&doc);
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(PID_NS)
        .arg("env")
        .arg("ROOST_LOG_FORMAT=json")
        .arg(ROOST)
        .arg("container")
        .arg("--config")
        .arg(&config);
    let r = Running::spawn(cmd).wait(T);
    r.assert_code(3);
    let events: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let started = events
        .iter()
        .find(|e| {
            e["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("workload started"))
        })
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert_eq!(
        (started["uid"].as_u64(), started["level"].as_str()),
        (Some(65534), Some("info"))
    );
    assert!(events.iter().any(|e| e["exit_code"] == 3), "{}", r.stderr);
    assert!(r
        .stderr
        .contains("roost: exit {\"code\":3,\"oom_killed\":false}"));
}

/// The workload's cgroup leaf directories, from roost's `workload cgroup: A, B, C` log line.
fn leaf_dirs(stderr: &str) -> Vec<String> {
    stderr
        .split("workload cgroup: ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .map(|s| s.trim_end_matches('"'))
        .expect("cgroup path in the log")
        .split(", ")
        .map(str::to_string)
        .collect()
}
