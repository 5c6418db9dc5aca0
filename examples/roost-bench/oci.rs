//! OCI runtimes side by side: `run` of `/bin/true` in a small bundle (a static busybox root),
//! create, start and exit, then delete, with roost-oci, crun and runc (Debian's packages) in
//! one interleaved run.
//!
//! `roost-bench oci --roost-oci PATH [--runs N]`

use super::*;

fn bundle(dir: &Path) {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("static busybox (busybox-static)");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/true")).expect("link");
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
                    "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": true},
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]}
    });
    std::fs::write(dir.join("config.json"), spec.to_string()).expect("config");
}

/// One `run` (create, start, wait, delete) in ms, or the runtime's refusal.
fn sample(runtime: &Path, root: &Path, dir: &Path, n: usize) -> Result<f64, String> {
    let id = format!("bench-{}-{n}", std::process::id());
    let t0 = Instant::now();
    let out = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["run", "--bundle"])
        .arg(dir)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("runtime");
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    // runc and crun delete after a foreground run; make sure nothing is left.
    let _ = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", &id])
        .stderr(Stdio::null())
        .status();
    Ok(ms)
}

pub fn run(args: &[String]) {
    let ours = PathBuf::from(arg_value(args, "--roost-oci").expect("--roost-oci PATH"));
    let runs: usize = arg_value(args, "--runs").map_or(50, |v| v.parse().unwrap());
    let mut runtimes: Vec<(String, PathBuf)> = vec![("roost-oci".into(), ours)];
    for name in ["crun", "runc"] {
        if let Some(path) = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        }) {
            runtimes.push((name.into(), path));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    bundle(dir.path());
    let mut samples = vec![Vec::with_capacity(runs); runtimes.len()];
    // A runtime that refuses this machine (crun refuses hybrid cgroups) is reported, not run.
    let mut refused: Vec<Option<String>> = vec![None; runtimes.len()];
    for n in 0..runs {
        for (k, (name, path)) in runtimes.iter().enumerate() {
            if refused[k].is_some() {
                continue;
            }
            let root = dir.path().join(format!("state-{name}"));
            match sample(path, &root, dir.path(), n) {
                Ok(ms) => samples[k].push(ms),
                Err(why) => refused[k] = Some(why),
            }
        }
    }
    println!("| runtime | run of /bin/true (create, start, exit, delete): median (p90), {runs} runs | / roost-oci |");
    println!("|---|---|---|");
    for s in &mut samples {
        s.sort_by(f64::total_cmp);
    }
    let ours = (!samples[0].is_empty()).then(|| percentile(&samples[0], 0.5));
    for (k, (name, path)) in runtimes.iter().enumerate() {
        let version = Command::new(path)
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        match &refused[k] {
            Some(why) if samples[k].is_empty() => {
                println!("| {name} ({version}) | refuses this machine: {why} | |")
            }
            _ => {
                let median = percentile(&samples[k], 0.5);
                let ratio = ours.map_or(String::new(), |o| format!("{:.2}×", median / o));
                println!(
                    "| {name} ({version}) | {median:.1} ms ({:.1} ms) | {ratio} |",
                    percentile(&samples[k], 0.9)
                );
            }
        }
    }
}
