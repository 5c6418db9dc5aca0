//! roost-oci's lifecycle against real bundles (a static busybox root), as root on this
//! machine: create, state, start, kill, delete, run, exec, ps, the pid file, the errors the
//! OCI runtime spec asks for, and the refusal of confinement it cannot give.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roost-oci");

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct Bundle {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Bundle {
    /// A bundle whose root is a static busybox; `args` is the process.
    fn new(args: &[&str], patch: impl FnOnce(&mut Value)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
        }
        assert!(
            Path::new("/bin/busybox").exists(),
            "static busybox is needed: apt-get install busybox-static"
        );
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox");
        for tool in [
            "sh", "sleep", "cat", "echo", "id", "hostname", "ls", "true", "kill", "grep",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).expect("link");
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        )
        .expect("passwd");
        let mut spec = default_spec(args);
        patch(&mut spec);
        std::fs::write(dir.path().join("config.json"), spec.to_string()).expect("config");
        let state = dir.path().join("state");
        Bundle { dir, state }
    }

    /// Runs roost-oci with its stdout and stderr in files: a container's process inherits the
    /// stdio of `create` (as with runc), so pipes read to their end would wait for it.
    fn oci(&self, args: &[&str]) -> Output {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (out, err) = (
            self.dir.path().join(format!("out.{n}")),
            self.dir.path().join(format!("err.{n}")),
        );
        let mut child = Command::new(BIN)
            .arg("--root")
            .arg(&self.state)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out"))
            .stderr(std::fs::File::create(&err).expect("err"))
            .spawn()
            .expect("roost-oci");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("roost-oci {args:?} did not finish in 30 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.oci(args);
        assert!(
            out.status.success(),
            "roost-oci {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self, id: &str) -> String {
        let state: Value = serde_json::from_str(&self.ok(&["state", id])).expect("state json");
        state["status"].as_str().unwrap_or("?").to_string()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status(id) != want {
            assert!(Instant::now() < deadline, "{id} never became {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Whatever a failed test left: killed and deleted.
        if let Ok(entries) = std::fs::read_dir(&self.state) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.oci(&["delete", "--force", &id]);
            }
        }
    }
}

/// What `runc spec` writes, trimmed: own mount, PID, IPC and UTS namespaces, the host's
/// network, the usual mounts, masked and read-only paths.
fn default_spec(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"],
                "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"],
                "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "roost-oci-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

fn id(tag: &str) -> String {
    format!("roost-oci-test-{tag}-{}", std::process::id())
}

#[test]
fn create_start_state_kill_delete_with_the_errors_the_spec_asks_for() {
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "trap 'exit 7' TERM; while :; do sleep 0.05; done",
        ],
        |_| {},
    );
    let c = id("life");
    let pid_file = b.dir.path().join("pid");
    b.ok(&[
        "create",
        "--bundle",
        ".",
        "--pid-file",
        pid_file.to_str().expect("path"),
        &c,
    ]);
    assert_eq!(b.status(&c), "created");
    // The pid file holds the container's init, which has not run the program yet.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let state: Value = serde_json::from_str(&b.ok(&["state", &c])).expect("json");
    assert_eq!(state["pid"], pid);
    // The version of the runtime spec the state complies with (libcontainer's).
    assert!(
        state["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{state}"
    );
    // Deleting a created-but-not-stopped container is refused.
    b.ok(&["start", &c]);
    b.wait_status(&c, "running");
    // start twice: an error.
    let again = b.oci(&["start", &c]);
    assert!(!again.status.success(), "a second start succeeded");
    // delete of a running container: an error.
    let del = b.oci(&["delete", &c]);
    assert!(!del.status.success(), "deleted a running container");
    assert!(
        String::from_utf8_lossy(&del.stderr).contains("cannot delete"),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    // Own PID namespace: the program is PID 1 inside; ps sees it.
    let ps: Vec<i32> =
        serde_json::from_str(&b.ok(&["ps", "--format", "json", &c])).expect("ps json");
    assert!(ps.contains(&pid), "{ps:?}");
    // The signal is optional: TERM.
    b.ok(&["kill", &c]);
    b.wait_status(&c, "stopped");
    let state: Value = serde_json::from_str(&b.ok(&["state", &c])).expect("json");
    assert!(
        state.get("pid").is_none(),
        "a stopped container has no pid: {state}"
    );
    // kill of a stopped container: an error.
    assert!(!b.oci(&["kill", &c, "KILL"]).status.success());
    b.ok(&["delete", &c]);
    assert!(
        !b.oci(&["state", &c]).status.success(),
        "state after delete"
    );
    assert!(b.ok(&["list"]).trim().is_empty());
}

#[test]
fn run_exits_with_the_programs_code_inside_its_own_namespaces_and_root() {
    let b = Bundle::new(
        &["sh", "-c", "echo pid=$$ host=$(hostname) uid=$(id -u); ls /; cat /proc/kcore 2>&1 | head -c 0; exit 3"],
        |_| {},
    );
    let out = b.oci(&["run", "--bundle", ".", &id("run")]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pid=1 host=roost-oci-test uid=0"), "{text}");
    // Its own root: the bundle's rootfs, not the machine's.
    assert!(text.contains("bin") && !text.contains("usr"), "{text}");
    // Deleted after the run.
    assert!(b.ok(&["list"]).trim().is_empty());
}

#[test]
fn exec_runs_inside_a_running_container() {
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let c = id("exec");
    b.ok(&["run", "--detach", "--bundle", ".", &c]);
    b.wait_status(&c, "running");
    let out = b.oci(&[
        "exec",
        &c,
        "sh",
        "-c",
        "echo in=$(hostname) pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); exit 4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("in=roost-oci-test pid1=sleep 60"), "{text}");
    b.ok(&["delete", "--force", &c]);
}

/// An `exec` that roost-oci waits for dies with roost-oci: a caller that kills a timed-out
/// exec (SIGKILL, which roost-oci cannot pass on) leaves nothing running in the container.
#[test]
fn an_exec_dies_with_the_roost_oci_that_waits_for_it() {
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let c = id("execdies");
    b.ok(&["run", "--detach", "--bundle", ".", &c]);
    b.wait_status(&c, "running");
    let mut exec = Command::new(BIN)
        .arg("--root")
        .arg(&b.state)
        .args(["exec", &c, "sleep", "77"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("roost-oci exec");
    // The `sleep` processes inside: the container's own (`sleep 60`) and the exec's.
    let count = |b: &Bundle| {
        b.ok(&[
            "exec",
            &c,
            "sh",
            "-c",
            "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$'",
        ])
        .trim()
        .parse::<u32>()
        .unwrap_or(u32::MAX)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&b) != 2 {
        assert!(Instant::now() < deadline, "the exec never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    exec.kill().expect("SIGKILL roost-oci exec");
    exec.wait().expect("reap");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&b) != 1 {
        assert!(
            Instant::now() < deadline,
            "the exec's command outlived roost-oci"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    b.ok(&["delete", "--force", &c]);
}

#[test]
fn the_process_user_rlimits_and_masked_paths_apply() {
    let b = Bundle::new(
        &["sh", "-c", "echo uid=$(id -u) gid=$(id -g) nofile=$(ulimit -n); cat /proc/kcore | wc -c; echo x > /proc/sys/kernel/hostname || echo ro"],
        |spec| {
            spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 321, "soft": 123}]);
        },
    );
    let text = b.ok(&["run", "--bundle", ".", &id("user")]);
    assert!(text.contains("uid=1000 gid=1000 nofile=123"), "{text}");
    // /proc/kcore is masked (empty), /proc/sys is read-only.
    assert!(text.lines().any(|l| l.trim() == "0"), "{text}");
    assert!(text.contains("ro"), "{text}");
}

#[test]
fn a_bundle_asking_for_confinement_roost_oci_cannot_give_is_refused() {
    for (field, patch) in [
        (
            "linux.seccomp.syscalls[0]",
            json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}}}),
        ),
        (
            "process.apparmorProfile",
            json!({"process": {"apparmorProfile": "docker-default"}}),
        ),
        (
            "process.selinuxLabel",
            json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
        ),
    ] {
        let b = Bundle::new(&["true"], |spec| merge(spec, &patch));
        let out = b.oci(&["create", "--bundle", ".", &id("refuse")]);
        assert!(!out.status.success(), "{field}: created");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{field}: {err}");
        assert!(
            b.ok(&["list"]).trim().is_empty(),
            "{field}: left state behind"
        );
    }
    let features: Value =
        serde_json::from_str(&Bundle::new(&["true"], |_| {}).ok(&["features"])).expect("json");
    assert_eq!(features["linux"]["seccomp"]["enabled"], true);
    assert_eq!(features["linux"]["apparmor"]["enabled"], false);
}

/// A deny list: mkdir and mkdirat fail with EACCES, kill(2) with SIGUSR1 (argument 1 equal
/// to 10) with EPERM while other signals pass; the process runs in seccomp filter mode.
fn deny_list() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}
        ]
    })
}

const SECCOMP_PROBE: &str = "mkdir /tmp/d 2>&1; kill -0 $$ && echo signal-0-passes; \
    kill -USR1 $$ 2>&1 || echo usr1-refused; grep -E '^(Seccomp|NoNewPrivs|CapEff|CapPrm|CapBnd):' /proc/self/status";

/// The bundle's capability sets (CHOWN, KILL, SETGID, SETUID, NET_BIND_SERVICE, AUDIT_WRITE:
/// bits 0, 5, 6, 7, 10, 29) as /proc shows them.
const BUNDLE_CAPS: &str = "00000000200004e1";

fn assert_confined(text: &str, no_new_privs: &str) {
    assert!(
        text.contains("Permission denied"),
        "mkdir not refused: {text}"
    );
    assert!(text.contains("signal-0-passes"), "{text}");
    assert!(text.contains("usr1-refused"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert!(
        text.contains(&format!("NoNewPrivs:\t{no_new_privs}")),
        "{text}"
    );
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            text.contains(&format!("{set}:\t{BUNDLE_CAPS}")),
            "{set}: {text}"
        );
    }
}

#[test]
fn a_seccomp_profile_is_enforced_with_no_new_privileges() {
    let b = Bundle::new(&["sh", "-c", SECCOMP_PROBE], |spec| {
        spec["linux"]["seccomp"] = deny_list();
    });
    let text = b.ok(&["run", "--bundle", ".", &id("seccomp-nnp")]);
    assert_confined(&text, "1");
}

/// Without noNewPrivileges the kernel needs CAP_SYS_ADMIN to install a filter, which the
/// bundle's capabilities lack: the filter still goes in, no_new_privs stays off, and the
/// capability sets end as the bundle's. The state names the caller's bundle and nothing
/// of the elevated copy stays behind.
#[test]
fn a_seccomp_profile_is_enforced_without_no_new_privileges_and_the_capabilities_end_as_asked() {
    let b = Bundle::new(
        &["sh", "-c", &format!("{SECCOMP_PROBE}; sleep 30")],
        |spec| {
            spec["process"]["noNewPrivileges"] = json!(false);
            spec["linux"]["seccomp"] = deny_list();
        },
    );
    let cid = id("seccomp-caps");
    b.ok(&["create", "--bundle", ".", &cid]);
    let state: Value = serde_json::from_str(&b.ok(&["state", &cid])).expect("state");
    assert_eq!(
        state["bundle"].as_str(),
        Some(
            std::fs::canonicalize(b.dir.path())
                .expect("bundle")
                .to_str()
                .expect("utf-8")
        )
    );
    let left: Vec<String> = std::fs::read_dir(&b.state)
        .expect("state dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![cid.clone()], "only the container's own state");
    b.ok(&["start", &cid]);
    // The probe's output goes to create's stdout, a file here.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_dir(b.dir.path())
            .expect("bundle dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("out."))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        if text.contains("CapBnd") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_confined(&text, "0");

    // An exec into the container is confined by the same profile (with no_new_privs).
    let text = b.ok(&["exec", &cid, "--", "sh", "-c", SECCOMP_PROBE]);
    assert!(
        text.contains("Permission denied") && text.contains("usr1-refused"),
        "{text}"
    );
    assert!(
        text.contains("Seccomp:\t2") && text.contains("NoNewPrivs:\t1"),
        "{text}"
    );
    b.ok(&["delete", "--force", &cid]);
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[test]
fn hooks_run_with_the_state_on_stdin() {
    let b = Bundle::new(&["true"], |_| {});
    let d = b.dir.path().display().to_string();
    let hook =
        |file: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {d}/{file}")]});
    let spec_path = b.dir.path().join("config.json");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_path).expect("spec")).expect("json");
    spec["hooks"] = json!({
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
    });
    std::fs::write(&spec_path, spec.to_string()).expect("spec");
    let c = id("hooks");
    let out = b.oci(&["run", "--bundle", ".", &c]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for hook in ["createRuntime", "poststart", "poststop"] {
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(b.dir.path().join(hook))
                .unwrap_or_else(|_| panic!("{hook} did not run")),
        )
        .unwrap_or_else(|e| panic!("{hook}'s stdin was not the state: {e}"));
        assert_eq!(state["id"], c, "{hook}: {state}");
    }
}

#[test]
fn cgroup_limits_are_set_and_removed_with_the_container() {
    let path = format!("/roost-oci-test-cg-{}", std::process::id());
    let b = Bundle::new(&["sleep", "60"], |spec| {
        spec["linux"]["cgroupsPath"] = json!(path);
        spec["linux"]["resources"] = json!({"memory": {"limit": 33554432}, "pids": {"limit": 20}});
    });
    let c = id("cg");
    b.ok(&["run", "--detach", "--bundle", ".", &c]);
    b.wait_status(&c, "running");
    // This machine's cgroups are v1 for memory and pids (a VM's are v2).
    let memory = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    let pids = Path::new("/sys/fs/cgroup/pids").join(path.trim_start_matches('/'));
    if memory.exists() {
        assert_eq!(
            std::fs::read_to_string(memory.join("memory.limit_in_bytes"))
                .expect("limit")
                .trim(),
            "33554432"
        );
        assert_eq!(
            std::fs::read_to_string(pids.join("pids.max"))
                .expect("pids.max")
                .trim(),
            "20"
        );
    } else {
        let v2 = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        assert_eq!(
            std::fs::read_to_string(v2.join("memory.max"))
                .expect("memory.max")
                .trim(),
            "33554432"
        );
        assert_eq!(
            std::fs::read_to_string(v2.join("pids.max"))
                .expect("pids.max")
                .trim(),
            "20"
        );
    }
    b.ok(&["delete", "--force", &c]);
    assert!(
        !memory.exists() && !pids.exists(),
        "the container's cgroups are left behind"
    );
}

/// `terminal: true` with `--console-socket`: the runtime sends the PTY's master over the
/// socket (SCM_RIGHTS), and what the container writes comes out of it.
#[test]
fn a_terminal_is_handed_over_the_console_socket() {
    use std::os::unix::net::UnixListener;
    let b = Bundle::new(
        &["sh", "-c", "echo on-the-tty; test -t 1 && echo is-a-tty"],
        |spec| {
            spec["process"]["terminal"] = json!(true);
        },
    );
    let socket = b.dir.path().join("console.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 64];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .expect("recvmsg");
        let fd = msg
            .cmsgs()
            .expect("cmsgs")
            .find_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("a PTY master fd");
        // SAFETY: the fd was just received and nothing else owns it.
        let mut master = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut text = Vec::new();
        let mut chunk = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !String::from_utf8_lossy(&text).contains("is-a-tty") {
            match std::io::Read::read(&mut master, &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let c = id("tty");
    b.ok(&[
        "create",
        "--bundle",
        ".",
        "--console-socket",
        socket.to_str().expect("path"),
        &c,
    ]);
    b.ok(&["start", &c]);
    let text = receiver.join().expect("receiver");
    assert!(
        text.contains("on-the-tty") && text.contains("is-a-tty"),
        "{text:?}"
    );
    b.wait_status(&c, "stopped");
    b.ok(&["delete", &c]);
}
