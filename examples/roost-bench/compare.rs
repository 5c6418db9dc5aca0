//! roost against tini: the exec to the workload's first instruction, idle RSS, and the reap
//! of many orphans, interleaved runs, with the ratio of the medians.

use super::*;

pub(crate) fn monotonic_ns() -> u128 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    ts.tv_sec() as u128 * 1_000_000_000 + ts.tv_nsec() as u128
}

/// Leaves `n` orphans: each is the child of a short-lived intermediate process.
pub(crate) fn orphans(n: usize) {
    use nix::unistd::{fork, ForkResult};
    for _ in 0..n {
        // SAFETY: single-threaded helper; the children only call _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                // SAFETY: as above.
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    // SAFETY: _exit is always safe to call.
                    unsafe { libc::_exit(0) };
                }
                // SAFETY: _exit is always safe to call.
                unsafe { libc::_exit(0) };
            }
            ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).expect("wait");
            }
        }
    }
}

enum Init<'a> {
    Roost {
        bin: &'a Path,
        dir: &'a Path,
        name: String,
    },
    Tini(&'a Path),
}

impl Init<'_> {
    fn name(&self) -> &str {
        match self {
            Init::Roost { name, .. } => name,
            Init::Tini(_) => "tini -s",
        }
    }

    fn command(&self, argv: &[String]) -> Command {
        match self {
            Init::Roost { bin, dir, .. } => {
                let config = dir.join(format!("bench-{}.json", monotonic_ns()));
                let doc = serde_json::json!({ "ExecOverride": argv, "KillTimeout": 1 });
                std::fs::write(&config, doc.to_string()).expect("write config");
                let mut cmd = Command::new(bin);
                cmd.arg("container").arg("--config").arg(config);
                cmd
            }
            Init::Tini(bin) => {
                let mut cmd = Command::new(bin);
                cmd.arg("-s").arg("--").args(argv);
                cmd
            }
        }
    }
}

/// One startup sample: milliseconds from before the init's fork+exec to the workload's exec.
fn startup_sample(init: &Init, me: &Path) -> f64 {
    let argv = vec![me.display().to_string(), "stamp".into()];
    let mut cmd = init.command(&argv);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let t0 = monotonic_ns();
    let out = cmd.output().expect("run init");
    let text = String::from_utf8_lossy(&out.stdout);
    let stamp: u128 = text.trim().parse().expect("stamp output");
    (stamp - t0) as f64 / 1e6
}

/// One run to the end: milliseconds from before `unshare -p -f` starts the init, as
/// PID 1 of a fresh PID namespace, to its exit after the workload `/bin/true` exited.
fn exit_sample(init: &Init) -> f64 {
    let inner = init.command(&["/bin/true".to_string()]);
    let mut cmd = Command::new("unshare");
    // Short options: util-linux's and busybox's unshare (the VM's) both take them.
    cmd.args(["-p", "-f", "--"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let status = cmd.status().expect("run unshare");
    assert!(status.success(), "{} failed: {status}", init.name());
    t0.elapsed().as_secs_f64() * 1e3
}

/// (VmRSS, RssAnon) in KiB: all resident pages, and those that are the process's own (the rest
/// is the binary's pages in the page cache, shared by every process running it).
fn idle_rss_kib(init: &Init) -> (u64, u64) {
    let argv = vec!["/bin/sleep".to_string(), "2".into()];
    let mut child = init
        .command(&argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn init");
    std::thread::sleep(Duration::from_millis(1000));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.wait().expect("wait");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

fn orphan_reap_secs(init: &Init, me: &Path, n: usize) -> f64 {
    let argv = vec![me.display().to_string(), "orphans".into(), n.to_string()];
    let t0 = Instant::now();
    let status = init
        .command(&argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run init");
    assert!(status.success(), "{} failed: {status}", init.name());
    t0.elapsed().as_secs_f64()
}

pub fn run(args: &[String]) {
    let roost = PathBuf::from(arg_value(args, "--roost").expect("--roost PATH"));
    let tini = PathBuf::from(arg_value(args, "--tini").unwrap_or("/usr/bin/tini".into()));
    let runs: usize = arg_value(args, "--runs").map_or(200, |v| v.parse().unwrap());
    let n_orphans: usize = arg_value(args, "--orphans").map_or(10_000, |v| v.parse().unwrap());
    // `--baseline PATH --baseline-name NAME`: an earlier build of roost, measured in the same
    // interleaved run (bench/run.sh builds the previous release point).
    let baseline = arg_value(args, "--baseline").map(PathBuf::from);
    let baseline_name = arg_value(args, "--baseline-name").unwrap_or("roost (baseline)".into());
    // `--pause-ms N`: an idle pause before every sample, so that each start finds the kernel
    // settled, as a machine's one start does (back to back, a start can ride on the previous
    // run's kernel state: a cgroup lock whose RCU grace period has just been paid).
    let pause = std::time::Duration::from_millis(
        arg_value(args, "--pause-ms").map_or(0, |v| v.parse().unwrap()),
    );
    let me = std::env::current_exe().expect("current exe");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inits = vec![Init::Roost {
        bin: &roost,
        dir: dir.path(),
        name: "roost".into(),
    }];
    if let Some(bin) = &baseline {
        inits.push(Init::Roost {
            bin,
            dir: dir.path(),
            name: baseline_name,
        });
    }
    inits.push(Init::Tini(&tini));
    let mut out = std::io::stdout().lock();
    let after = if pause.is_zero() {
        String::new()
    } else {
        format!(", each after {} ms idle", pause.as_millis())
    };
    writeln!(
        out,
        "| init | exec → workload exec, median (p90), {runs} runs{after} | /bin/true to exit as PID 1 of a PID namespace, median (p90) | idle RSS (anonymous) | reap {n_orphans} orphans |"
    )
    .unwrap();
    writeln!(out, "|---|---|---|---|---|").unwrap();
    // Interleaved, so that drift in machine load hits every init alike, and the order
    // rotated each round, so that no init always runs right after the same other one: in a
    // fixed order the first init always followed tini, the next ones followed a roost whose
    // child had just moved between cgroups, and the first position measured about 3 % slower
    // to the exec whichever build held it.
    let mut starts = vec![Vec::with_capacity(runs); inits.len()];
    let mut exits = vec![Vec::with_capacity(runs); inits.len()];
    for round in 0..runs {
        for k in 0..inits.len() {
            let i = (round + k) % inits.len();
            std::thread::sleep(pause);
            starts[i].push(startup_sample(&inits[i], &me));
            std::thread::sleep(pause);
            exits[i].push(exit_sample(&inits[i]));
        }
    }
    let mut medians = Vec::new();
    for (i, init) in inits.iter().enumerate() {
        starts[i].sort_by(f64::total_cmp);
        exits[i].sort_by(f64::total_cmp);
        let (median, p90) = (percentile(&starts[i], 0.5), percentile(&starts[i], 0.9));
        let (exit_median, exit_p90) = (percentile(&exits[i], 0.5), percentile(&exits[i], 0.9));
        medians.push((median, exit_median));
        let (rss, anon) = idle_rss_kib(init);
        let reap = orphan_reap_secs(init, &me, n_orphans);
        writeln!(
            out,
            "| {} | {median:.2} ms ({p90:.2} ms) | {exit_median:.2} ms ({exit_p90:.2} ms) | {rss} KiB ({anon} KiB) | {reap:.2} s |",
            init.name()
        )
        .unwrap();
    }
    // The first row is this roost, the last tini; each other row is compared with both.
    if let (Some(&(tini_start, tini_exit)), Some(&(roost_start, roost_exit))) =
        (medians.last(), medians.first())
    {
        for (i, init) in inits.iter().enumerate().take(inits.len() - 1) {
            let (start, exit) = medians[i];
            writeln!(
                out,
                "| {} / tini (medians) | {:.2}× | {:.2}× | | |",
                init.name(),
                start / tini_start,
                exit / tini_exit
            )
            .unwrap();
        }
        if inits.len() > 2 {
            let (base_start, base_exit) = medians[1];
            writeln!(
                out,
                "| roost / {} (medians) | {:.2}× | {:.2}× | | |",
                inits[1].name(),
                roost_start / base_start,
                roost_exit / base_exit
            )
            .unwrap();
        }
    }
}
