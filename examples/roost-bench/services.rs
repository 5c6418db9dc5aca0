//! Many services: roost against supervisord and s6 (Debian's packages), each as PID 1 of a
//! PID namespace of its own (`unshare`), in the same run, interleaved.
//!
//! - time from the supervisor's exec to all N trivial services running (each service,
//!   `roost-bench mark FILE`, writes its CLOCK_MONOTONIC stamp and then sleeps), as a fan-out
//!   (all at once) and as a chain (each after the one before). roost's chain is its own
//!   `depends_on` (`started`); supervisord and s6 have no dependencies (Debian has no s6-rc),
//!   so their chain is the wait-for script a user would add: each service polls (1 ms) for
//!   its predecessor's stamp before writing its own;
//! - the supervisor's own memory (PSS of every process of the namespace but the services;
//!   for s6 that is s6-svscan and one s6-supervise per service) with 1 and with N services,
//!   and the difference per added service.

use super::*;

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    FanOut,
    Chain,
}

#[derive(Clone, Copy, PartialEq)]
enum Sup {
    Roost,
    Supervisord,
    S6,
}

impl Sup {
    fn name(self) -> &'static str {
        match self {
            Sup::Roost => "roost",
            Sup::Supervisord => "supervisord",
            Sup::S6 => "s6-svscan",
        }
    }
}

/// `roost-bench mark FILE [--after PREV]`: waits for PREV (when given), writes the stamp to
/// FILE (atomically), then sleeps until killed.
pub(crate) fn mark(args: &[String]) {
    let file = PathBuf::from(&args[1]);
    if let (Some("--after"), Some(prev)) = (args.get(2).map(String::as_str), args.get(3)) {
        while !Path::new(prev).exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, compare::monotonic_ns().to_string()).expect("stamp");
    std::fs::rename(&tmp, &file).expect("rename");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The argv of service `i`.
fn service_argv(me: &Path, marks: &Path, i: usize, wait_for_previous: bool) -> Vec<String> {
    let mut argv = vec![
        me.display().to_string(),
        "mark".into(),
        marks.join(i.to_string()).display().to_string(),
    ];
    if wait_for_previous && i > 0 {
        argv.push("--after".into());
        argv.push(marks.join((i - 1).to_string()).display().to_string());
    }
    argv
}

/// Writes the supervisor's config for `n` services and returns its command line.
fn setup(sup: Sup, roost: &Path, me: &Path, dir: &Path, n: usize, shape: Shape) -> Command {
    let marks = dir.join("marks");
    std::fs::create_dir_all(&marks).expect("marks");
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"]);
    match sup {
        Sup::Roost => {
            let containers: Vec<serde_json::Value> = (0..n)
                .map(|i| {
                    let mut c = serde_json::json!({
                        "name": format!("s{i}"),
                        "exec": service_argv(me, &marks, i, false),
                        "restart": {"policy": "no"},
                        "on_exit": "ignore",
                    });
                    if shape == Shape::Chain && i > 0 {
                        c["depends_on"] = serde_json::json!([{"name": format!("s{}", i - 1)}]);
                    }
                    c
                })
                .collect();
            let config = dir.join("roost.json");
            let doc = serde_json::json!({"KillTimeout": 5, "Containers": containers});
            std::fs::write(&config, doc.to_string()).expect("config");
            cmd.arg(roost).arg("container").arg("--config").arg(config);
            cmd.env("ROOST_LOG", "warn");
        }
        Sup::Supervisord => {
            let mut conf = format!(
                "[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\npidfile={}/supervisord.pid\nuser=root\n",
                dir.display()
            );
            for i in 0..n {
                let argv = service_argv(me, &marks, i, shape == Shape::Chain);
                conf.push_str(&format!(
                    "\n[program:s{i}]\ncommand={}\nautorestart=false\nstartsecs=0\npriority={}\nstdout_logfile=NONE\nstderr_logfile=NONE\n",
                    argv.join(" "),
                    i + 1
                ));
            }
            let path = dir.join("supervisord.conf");
            std::fs::write(&path, conf).expect("conf");
            cmd.args(["supervisord", "-c"]).arg(path);
        }
        Sup::S6 => {
            let scan = dir.join("scan");
            for i in 0..n {
                let svc = scan.join(format!("s{i}"));
                std::fs::create_dir_all(&svc).expect("service dir");
                let argv = service_argv(me, &marks, i, shape == Shape::Chain);
                let run = svc.join("run");
                std::fs::write(&run, format!("#!/bin/sh\nexec {}\n", argv.join(" "))).expect("run");
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
            cmd.arg("s6-svscan").arg(scan);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The pid namespace of a process.
fn pid_ns(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// PSS (KiB) of every process in the namespace of `inner` but the services (`roost-bench`).
fn supervisor_rss_kib(inner: u32) -> u64 {
    let Some(ns) = pid_ns(inner) else { return 0 };
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid_ns(pid).as_ref() != Some(&ns) {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("")
            .trim();
        if name == "roost-bench" || name == "sleep" {
            continue;
        }
        // PSS, not RSS: shared pages (libc, a library every s6-supervise maps) are counted
        // once across the processes, not once per process.
        total += std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// The pid (host view) of the namespace's PID 1: unshare's child.
fn inner_pid(unshare: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// One run: ms from the exec to the last stamp, and the supervisor's RSS once all run.
fn sample(sup: Sup, roost: &Path, me: &Path, n: usize, shape: Shape) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = setup(sup, roost, me, dir.path(), n, shape);
    let marks = dir.path().join("marks");
    let t0 = compare::monotonic_ns();
    let mut child = cmd.spawn().expect("spawn supervisor");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = std::fs::read_dir(&marks).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.path().extension().is_none())
                .count()
        });
        if count >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: only {count} of {n} services ran",
            sup.name()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let last = (0..n)
        .filter_map(|i| {
            std::fs::read_to_string(marks.join(i.to_string()))
                .ok()?
                .trim()
                .parse::<u128>()
                .ok()
        })
        .max()
        .unwrap_or(t0);
    // Let the supervisor settle (supervisord polls its children) before its RSS is read.
    std::thread::sleep(Duration::from_millis(300));
    let rss = inner_pid(child.id()).map_or(0, supervisor_rss_kib);
    // roost gets the stop a host sends (SIGTERM: its stop removes every service's cgroup
    // leaves, which a SIGKILL would leave on the machine); then, or for the others, SIGKILL
    // to the namespace's PID 1 ends every process in it.
    if let (Sup::Roost, Some(inner)) = (sup, inner_pid(child.id())) {
        terminate_and_wait(&mut child, inner);
    }
    if let Some(inner) = inner_pid(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(inner as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.wait();
    ((last.saturating_sub(t0)) as f64 / 1e6, rss)
}

pub fn run(args: &[String]) {
    let roost = PathBuf::from(arg_value(args, "--roost").expect("--roost PATH"));
    let n: usize = arg_value(args, "--services").map_or(100, |v| v.parse().unwrap());
    let runs: usize = arg_value(args, "--runs").map_or(5, |v| v.parse().unwrap());
    let me = std::env::current_exe().expect("current exe");
    let sups: Vec<Sup> = [Sup::Roost, Sup::Supervisord, Sup::S6]
        .into_iter()
        .filter(|s| match s {
            Sup::Roost => true,
            Sup::Supervisord => which("supervisord"),
            Sup::S6 => which("s6-svscan"),
        })
        .collect();
    // Interleaved, so that drift in machine load hits every supervisor alike.
    let mut fan = vec![Vec::new(); sups.len()];
    let mut chain = vec![Vec::new(); sups.len()];
    let mut rss_n = vec![Vec::new(); sups.len()];
    let mut rss_1 = vec![Vec::new(); sups.len()];
    for _ in 0..runs {
        for (k, &sup) in sups.iter().enumerate() {
            let (t, rss) = sample(sup, &roost, &me, n, Shape::FanOut);
            fan[k].push(t);
            rss_n[k].push(rss);
            chain[k].push(sample(sup, &roost, &me, n, Shape::Chain).0);
            rss_1[k].push(sample(sup, &roost, &me, 1, Shape::FanOut).1);
        }
    }
    println!(
        "| supervisor | {n} services running, fan-out: median (p90), {runs} runs | chain: median (p90) | memory (PSS) with 1 service | with {n} | per added service |"
    );
    println!("|---|---|---|---|---|---|");
    for (k, sup) in sups.iter().enumerate() {
        fan[k].sort_by(f64::total_cmp);
        chain[k].sort_by(f64::total_cmp);
        rss_n[k].sort();
        rss_1[k].sort();
        let (r1, rn) = (rss_1[k][rss_1[k].len() / 2], rss_n[k][rss_n[k].len() / 2]);
        println!(
            "| {} | {:.1} ms ({:.1} ms) | {:.1} ms ({:.1} ms) | {r1} KiB | {rn} KiB | {:.1} KiB |",
            sup.name(),
            percentile(&fan[k], 0.5),
            percentile(&fan[k], 0.9),
            percentile(&chain[k], 0.5),
            percentile(&chain[k], 0.9),
            (rn as f64 - r1 as f64) / (n.max(2) - 1) as f64
        );
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
