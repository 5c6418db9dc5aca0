//! `kind: container` services under the real roost (container mode, PID 1 of a fresh PID
//! namespace) driving the real `roost-oci`: each container in its own PID namespace and
//! root (an overlay over a read-only image directory), the machine's network shared, a
//! dependency on another container's exec health check, `exec` through the control API and
//! `roostctl`, roost as the container's init, restarts, and nothing left behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn roost_oci_bin() -> PathBuf {
    let path = Path::new(ROOST).with_file_name("roost-oci");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p roost-oci` first)",
        path.display()
    );
    path
}

/// A busybox image root as the host would deliver it (a directory), with users `app`
/// (1000) and `nobody`. `with_roost_libs`: the shared libraries roost's own (dynamic,
/// test-built) binary needs, so it can be the container's init.
fn image(scratch: &Scratch, with_roost_libs: bool) -> PathBuf {
    let root = scratch.path("image");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "srv"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "static busybox is needed: ./test.sh setup installs it"
    );
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox");
    for tool in [
        "sh", "sleep", "cat", "echo", "id", "hostname", "ls", "true", "kill", "grep", "httpd",
        "wget", "mkdir", "test", "tr", "wc", "readlink", "head", "mknod", "unshare", "mount",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).expect("link");
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\nweb:x:1001:app\n",
    )
    .expect("group");
    std::fs::set_permissions(
        root.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("chmod tmp");
    if with_roost_libs {
        copy_libraries(&root, Path::new(ROOST));
    }
    root
}

/// The shared libraries `program` loads (as ldd lists them), copied into the image `root`.
fn copy_libraries(root: &Path, program: &Path) {
    let out = Command::new("ldd").arg(program).output().expect("ldd");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(lib) = lib {
            let dest = root.join(lib.strip_prefix("/").expect("absolute"));
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir lib");
            std::fs::copy(&lib, &dest).expect("copy lib");
        }
    }
}

fn container_dir(scratch: &Scratch) -> PathBuf {
    let dir = scratch.path("containers");
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn start(scratch: &Scratch, doc: &serde_json::Value, dir: &Path) -> Running {
    start_config(&scratch.config(doc), dir)
}

fn start_config(config: &Path, dir: &Path) -> Running {
    let mut cmd = Command::new("unshare");
    cmd.args(PID_NS)
        .arg(ROOST)
        .args(["container", "--config"])
        .arg(config)
        .env("ROOST_CONTAINER_DIR", dir);
    Running::spawn(cmd)
}

/// As [`start`], with the control API on `<scratch>/ctl.sock` (returned).
fn start_with_control(
    scratch: &Scratch,
    doc: &serde_json::Value,
    dir: &Path,
) -> (Running, PathBuf) {
    let ctl = scratch.path("ctl.sock");
    let dir = dir.to_str().expect("utf-8");
    let roost = roost_with_control(&scratch.config(doc), &ctl, &[("ROOST_CONTAINER_DIR", dir)]);
    (roost, ctl)
}

/// What roost left in the container directory: only the runtime's (empty) state directory.
fn assert_nothing_left(dir: &Path, log: &str) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("container dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".state")
        .collect();
    assert!(left.is_empty(), "bundles left behind: {left:?}\n{log}");
    let state: Vec<_> = std::fs::read_dir(dir.join(".state"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        state.is_empty(),
        "containers left in the runtime's state: {state:?}\n{log}"
    );
}

#[test]
fn two_containers_one_waiting_on_the_others_health_check_share_the_network_not_the_root() {
    two_containers(None);
}

/// The same through Debian's runc, named as `ContainerRuntime`: roost needs nothing of its
/// own runtime.
#[test]
fn the_same_with_runc_named_as_the_runtime() {
    assert!(
        Path::new("/usr/sbin/runc").exists(),
        "runc is needed: ./test.sh setup installs it"
    );
    two_containers(Some("/usr/sbin/runc"));
}

fn two_containers(runtime: Option<&str>) {
    let scratch = Scratch::new();
    let image = image(&scratch, false);
    let dir = container_dir(&scratch);
    let port = free_port();
    let root = json!({"directory": image});
    let mut doc = json!({"KillTimeout": 10, "Containers": [
        {"name": "app", "kind": "container", "image_root": root, "user": "app",
         "depends_on": [{"name": "db", "condition": "healthy"}],
         "env": {"GREETING": "hi"}, "restart": {"policy": "no"},
         "exec": ["sh", "-c", format!(
             "echo app pid=$$ uid=$(id -u) groups=$(id -G) cwd=$(pwd) greeting=$GREETING; \
              echo app got $(wget -q -O - http://127.0.0.1:{port}/); \
              test -e /tmp/www && echo app sees db root || echo app has its own root; \
              echo app hostname=$(hostname); exit 7")]},
        // httpd as the PID 1 of its namespace has no SIGTERM handler, so the kernel drops
        // the signal: a short stop timeout, then SIGKILL.
        {"name": "db", "kind": "container", "image_root": root, "on_exit": "ignore",
         "stop": {"timeout": "1s"},
         "exec": ["sh", "-c", format!(
             "mkdir -p /tmp/www && echo db-says-hello > /tmp/www/index.html && \
              echo db pid=$$ && exec httpd -f -p 127.0.0.1:{port} -h /tmp/www")],
         "healthchecks": [{"name": "up", "interval": 0.2, "timeout": 5,
                           "exec": {"command": ["wget", "-q", "-O", "/dev/null", format!("http://127.0.0.1:{port}/")]}}]},
    ]});
    if let Some(runtime) = runtime {
        doc["ContainerRuntime"] = json!(runtime);
    }
    let done = start(&scratch, &doc, &dir).wait(T);
    // The machine ends with the main service's code, which the container's init exited with.
    done.assert_code(7);
    let out = &done.stdout;
    // Each container is PID 1 of its own PID namespace.
    assert!(out.contains("[db] db pid=1"), "{out}\n{}", done.stderr);
    assert!(
        out.contains("[app] app pid=1 uid=1000 groups=1000 1001 cwd=/ greeting=hi"),
        "{out}\n{}",
        done.stderr
    );
    // The network is shared: app reached db's server on the loopback.
    assert!(out.contains("[app] app got db-says-hello"), "{out}");
    // Roots are not: what db wrote is in its own writable layer only, not app's, not the image.
    assert!(out.contains("[app] app has its own root"), "{out}");
    assert!(
        !image.join("tmp/www").exists(),
        "a container wrote to the image"
    );
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert!(
        out.contains(&format!("[app] app hostname={}", machine.trim())),
        "{out}"
    );
    // app started only after db's check passed.
    let healthy = done
        .stderr
        .find("db is ready")
        .unwrap_or_else(|| panic!("no readiness line:\n{}", done.stderr));
    let app_started = done
        .stderr
        .find("app started")
        .unwrap_or_else(|| panic!("app never started:\n{}", done.stderr));
    assert!(healthy < app_started, "{}", done.stderr);
    assert_nothing_left(&dir, &done.stderr);
}

#[test]
fn exec_into_a_container_as_its_user_and_roost_as_its_init_reaping_zombies() {
    let scratch = Scratch::new();
    let image = image(&scratch, true);
    let dir = container_dir(&scratch);
    let doc = json!({"KillTimeout": 10, "Containers": [
        {"name": "web", "kind": "container", "image_root": {"directory": image},
         "user": "app", "init": true, "working_dir": "/tmp",
         "stop": {"signal": "SIGTERM", "timeout": "5s"},
         // An orphan whose parent exits, under a workload that never waits: only an init
         // reaps it.
         "exec": ["sh", "-c", "(sleep 0.2 &); echo web up; exec sleep 1000"]},
        // The same without an init: `sleep` is the namespace's PID 1 and the orphan stays a
        // zombie (what the init is for).
        {"name": "bare", "kind": "container", "image_root": {"directory": image},
         "on_exit": "ignore", "stop": {"timeout": "1s"},
         "exec": ["sh", "-c", "(sleep 0.2 &); exec sleep 1000"]},
    ]});
    let (roost, ctl) = start_with_control(&scratch, &doc, &dir);
    let ctl_run = |args: &[&str]| roostctl_on(&ctl, args);
    let deadline = std::time::Instant::now() + T;
    loop {
        let (_, out, _) = ctl_run(&["ps"]);
        if out.lines().filter(|l| l.contains(" running ")).count() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "web never ran: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(800));
    // The bundle holds the service's env (secrets included): root's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("web")), 0o700);
    assert_eq!(mode(&dir.join("web/config.json")), 0o600);
    assert_eq!(mode(&dir.join("web/init.json")), 0o600);
    let zombies = "z=0; for s in /proc/[0-9]*/stat; do read -r line < $s; case \"$line\" in *') Z '*) z=$((z+1));; esac; done; echo zombies=$z";
    let (code, out, err) = ctl_run(&["exec", "--container", "bare", "--", "sh", "-c", zombies]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("zombies=1"), "{out}");
    let (code, out, err) = ctl_run(&[
        "exec",
        "--container",
        "web",
        "--",
        "sh",
        "-c",
        &format!("echo uid=$(id -u) cwd=$(pwd) init=$(tr '\\0' ' ' < /proc/1/cmdline); {zombies}; exit 3"),
    ]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("uid=1000 cwd=/tmp"), "{out}\n{err}");
    assert!(
        out.contains("init=/.roost/init container --config /.roost/init.json"),
        "{out}"
    );
    assert!(out.contains("zombies=0"), "{out}");
    // The ws exec (`roostctl shell`, stdin piped): inside the container too.
    let mut shell = Command::new(roostctl_bin())
        .arg("--unix")
        .arg(&ctl)
        .args(["shell", "--container", "web", "--", "sh"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("roostctl shell");
    {
        use std::io::Write;
        shell
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"echo ws uid=$(id -u) init=$(tr '\\0' ' ' < /proc/1/cmdline); exit 6\n")
            .expect("write");
    }
    let out = shell.wait_with_output().expect("shell output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ws uid=1000 init=/.roost/init container --config /.roost/init.json"),
        "{text}"
    );
    // The machine's stop: web's signal goes to its container's init (roost), which passes it
    // on to `sleep` and reports its code (143, SIGTERM), well before the outer SIGKILL.
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    done.assert_code(143);
    assert!(done.stdout.contains("[web] web up"), "{}", done.stdout);
    assert!(
        done.stderr.contains("web exited: code 143"),
        "{}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("web did not stop in time"),
        "{}",
        done.stderr
    );
    assert_nothing_left(&dir, &done.stderr);
}

#[test]
fn a_failing_container_restarts_with_a_fresh_root_and_its_code_ends_the_machine() {
    let scratch = Scratch::new();
    let image = image(&scratch, false);
    let dir = container_dir(&scratch);
    let doc = json!({"Containers": [
        {"name": "job", "kind": "container", "image_root": {"directory": image},
         "restart": {"policy": "on-failure", "max_retries": 2, "backoff_seconds": 0.05},
         "exec": ["sh", "-c", "test -e /tmp/mark && echo job saw a mark; touch /tmp/mark; echo job run; exit 5"]},
    ]});
    let done = start(&scratch, &doc, &dir).wait(T);
    done.assert_code(5);
    assert_eq!(
        done.stdout.matches("[job] job run").count(),
        3,
        "{}\n{}",
        done.stdout,
        done.stderr
    );
    // Each start's writable layer is its own.
    assert!(!done.stdout.contains("saw a mark"), "{}", done.stdout);
    assert_nothing_left(&dir, &done.stderr);
}

#[test]
fn a_container_whose_image_is_missing_or_whose_runtime_fails_is_a_clear_error() {
    let scratch = Scratch::new();
    let dir = container_dir(&scratch);
    let doc = json!({"Containers": [
        {"name": "app", "kind": "container", "image_root": {"directory": scratch.path("no-such-image")},
         "exec": ["true"]},
    ]});
    let done = start(&scratch, &doc, &dir).wait(T);
    assert_eq!(done.code, Some(78), "{}", done.stderr);
    assert!(done.stderr.contains("no-such-image"), "{}", done.stderr);

    // A path overlayfs options cannot carry: refused at boot, before anything is mounted.
    let odd = scratch.path("image:1");
    std::fs::create_dir(&odd).expect("mkdir");
    let doc = json!({"Containers": [
        {"name": "app", "kind": "container", "image_root": {"directory": odd}, "exec": ["true"]},
    ]});
    let done = start(&scratch, &doc, &dir).wait(T);
    assert_eq!(done.code, Some(78), "{}", done.stderr);
    assert!(
        done.stderr.contains("overlayfs options cannot carry"),
        "{}",
        done.stderr
    );

    // A program the image does not have: the runtime refuses it, roost says so and where
    // the runtime's own words are, and the code is 126.
    let image = image(&scratch, false);
    let doc = json!({"Containers": [
        {"name": "app", "kind": "container", "image_root": {"directory": image},
         "exec": ["/bin/not-in-the-image"]},
    ]});
    let done = start(&scratch, &doc, &dir).wait(T);
    assert_eq!(done.code, Some(126), "{}\n{}", done.stdout, done.stderr);
    assert!(done.stderr.contains("cannot start app"), "{}", done.stderr);
    assert_nothing_left(&dir, &done.stderr);
    let _ = roost_oci_bin();
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed_and_reported_so() {
    let scratch = Scratch::new();
    let image = image(&scratch, false);
    let dir = container_dir(&scratch);
    // The shell keeps 64 MiB in a variable under a 16 MiB limit: the OOM killer takes it,
    // the namespace's PID 1, and with it the container.
    let doc = json!({"Containers": [
        {"name": "hog", "kind": "container", "image_root": {"directory": image},
         "cgroup": {"memory_mib": 16}, "restart": {"policy": "no"},
         "exec": ["sh", "-c", "echo hog start; x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo hog survived"]},
    ]});
    let done = start(&scratch, &doc, &dir).wait(T);
    done.assert_code(137);
    assert!(done.stdout.contains("[hog] hog start"), "{}", done.stdout);
    assert!(!done.stdout.contains("hog survived"), "{}", done.stdout);
    let hog = done
        .stderr
        .lines()
        .find(|l| l.contains("msg=\"hog exited"))
        .unwrap_or_else(|| panic!("{}", done.stderr));
    assert!(
        hog.contains("exit_code=137") && hog.contains("oom_killed=true"),
        "{hog}"
    );
    let both = format!("{}{}", done.stdout, done.stderr);
    assert!(
        both.contains(r#"roost: exit {"code":137,"oom_killed":true}"#),
        "{both}"
    );
    assert_nothing_left(&dir, &done.stderr);
}

/// A container whose env asks for a cloud role: the broker's token, fetched from the
/// devplatform's issuer through `/.fly/api`, is where `AWS_WEB_IDENTITY_TOKEN_FILE` says inside
/// the container, readable by its user and not writable.
/// A container that asks for a cloud role finds its own token, in a directory of its own
/// (`<TokenPath's directory>/<service>/`, bound read-only), and nothing else of `/.fly`: not
/// the token of the process service at `TokenPath`, not another container's, not the API
/// socket. A container with `fly_api: true` gets the socket and reaches the API through it,
/// and the proxy's audit line names each caller's service. Before, the first container to
/// ask got `TokenPath`'s directory bound, with every other service's token and the socket
/// in it.
#[test]
fn a_container_that_asks_for_a_cloud_role_finds_its_token_inside() {
    let scratch = Scratch::new();
    let image = image(&scratch, false);
    let socat = Path::new("/usr/bin/socat");
    assert!(
        socat.exists(),
        "socat is needed: ./test.sh setup installs it"
    );
    std::fs::copy(socat, image.join("bin/socat")).expect("socat");
    copy_libraries(&image, socat);
    let dir = container_dir(&scratch);
    let token = scratch.path("fly/oidc_token");
    let api = scratch.path("fly/api");
    let probe = |other: &str| {
        format!(
        "echo $0 file=$AWS_WEB_IDENTITY_TOKEN_FILE; head -c 3 $AWS_WEB_IDENTITY_TOKEN_FILE; echo; \
         echo x >> $AWS_WEB_IDENTITY_TOKEN_FILE 2>/dev/null && echo $0 wrote it || echo $0 cannot write it; \
         echo $0 sees $(ls $(dirname $AWS_WEB_IDENTITY_TOKEN_FILE) | tr '\\n' ' '); \
         test -e {t} && echo $0 sees the process service token; \
         test -e {d}/{other}/oidc_token && echo $0 sees the other container token; \
         test -S {a} && echo $0 has the api socket; true",
        t = token.display(),
        d = scratch.path("fly").display(),
        a = api.display()
    )
    };
    let config = json!({
        "Api": {"SocketPath": api},
        "Oidc": {"TokenPath": token},
        "Containers": [
            {"name": "app", "kind": "container", "image_root": {"directory": image},
             "user": "app", "restart": {"policy": "no"},
             "env": {"AWS_ROLE_ARN": "arn:aws:iam::1:role/app"},
             "depends_on": [{"name": "proc", "condition": "started"}, {"name": "other", "condition": "exited_successfully"}],
             "exec": ["sh", "-c", probe("other"), "app"]},
            {"name": "other", "kind": "container", "image_root": {"directory": image},
             "restart": {"policy": "no"}, "on_exit": "ignore", "fly_api": true,
             "env": {"AWS_ROLE_ARN": "arn:aws:iam::1:role/other"},
             "exec": ["sh", "-c", format!("{}; printf 'GET /v1/apps/test-app/machines/m-0123456789/metadata HTTP/1.0\\r\\n\\r\\n' | socat -t 10 - UNIX-CONNECT:{a},shut-none 2>&1 | head -1", probe("app"), a = api.display()), "other"]},
            {"name": "proc", "exec": ["sh", "-c", format!("printf 'GET /v1/apps/test-app/machines/m-0123456789/metadata HTTP/1.0\\r\\n\\r\\n' | socat -t 10 - UNIX-CONNECT:{},shut-none 2>&1 | head -1; sleep 30", api.display())], "on_exit": "ignore",
             "env": {"AWS_ROLE_ARN": "arn:aws:iam::1:role/proc"}, "stop": {"signal": "SIGKILL"}},
        ],
    });
    let platform = DevPlatform::start(scratch.dir.path(), &config, &[]);
    let done = start_config(&platform.config, &dir).wait(T);
    done.assert_code(0);
    let out = &done.stdout;
    let own = scratch.path("fly/app/oidc_token");
    assert!(
        out.contains(&format!("[app] app file={}", own.display())),
        "{out}\n{}",
        done.stderr
    );
    assert!(out.contains("[app] eyJ"), "{out}\n{}", done.stderr);
    assert!(out.contains("[app] app cannot write it"), "{out}");
    assert!(out.contains("[app] app sees oidc_token"), "{out}");
    assert!(!out.contains("[app] app sees the"), "{out}");
    assert!(!out.contains("[app] app has the api socket"), "{out}");
    // The one with fly_api: the socket, the API behind it, and its name in the audit line.
    assert!(out.contains("[other] other has the api socket"), "{out}");
    assert!(!out.contains("[other] other sees the"), "{out}");
    assert!(
        out.contains("[other] HTTP/1.0 200") || out.contains("[other] HTTP/1.1 200"),
        "{out}\n{}",
        done.stderr
    );
    // The audit line names each caller's service.
    assert!(done.stderr.contains("service=other"), "{}", done.stderr);
    assert!(out.contains("[proc] HTTP/1.0 200"), "{out}");
    assert!(done.stderr.contains("service=proc"), "{}", done.stderr);
    // The process service's token is at TokenPath, as the first asking process service's
    // always is (the broker wrote it there; the containers did not see it above).
    assert!(
        done.stderr.contains(&format!("{}", token.display())),
        "{}",
        done.stderr
    );
    assert_nothing_left(&dir, &done.stderr);
}

/// An exec check that hangs is killed at its timeout with what it ran inside the container:
/// checks that time out every interval do not pile up processes there. Then a signal through
/// the control API to the container.
#[test]
fn hung_exec_checks_leave_nothing_running_in_the_container() {
    let scratch = Scratch::new();
    let image = image(&scratch, false);
    let dir = container_dir(&scratch);
    let port = free_port();
    let doc = json!({"KillTimeout": 5, "Containers": [
        {"name": "web", "kind": "container", "image_root": {"directory": image},
         "stop": {"timeout": "1s"}, "restart": {"policy": "no"},
         "exec": ["httpd", "-f", "-p", format!("127.0.0.1:{port}"), "-h", "/tmp"],
         "healthchecks": [{"name": "hangs", "interval": 0.1, "timeout": 0.2,
                           "exec": {"command": ["sleep", "30"]}}]},
    ]});
    let (roost, ctl) = start_with_control(&scratch, &doc, &dir);
    // Ten timed-out checks at least.
    std::thread::sleep(Duration::from_secs(4));
    let (code, out, err) = roostctl_on(
        &ctl,
        &[
            "exec",
            "--container",
            "web",
            "--",
            "sh",
            "-c",
            // grep -c prints 0 and exits 1 when no check is in flight at this moment.
            "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$' || true",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let sleeping: u32 = out.trim().parse().unwrap_or(u32::MAX);
    // The check in flight, if any.
    assert!(
        sleeping <= 1,
        "{sleeping} timed-out checks are still running in the container"
    );
    // A signal through the control API goes to the container's init: SIGKILL ends its PID
    // namespace, and the machine with it (web is the main service and does not restart).
    let (code, _, err) = roostctl_on(&ctl, &["signal", "--container", "web", "KILL"]);
    assert_eq!(code, 0, "{err}");
    let done = roost.wait(T);
    done.assert_code(137);
    assert!(
        done.stderr.contains("web exited: code 137"),
        "{}",
        done.stderr
    );
    assert_nothing_left(&dir, &done.stderr);
}

/// `notify` in a container: the service's abstract NOTIFY_SOCKET is reachable over the shared
/// network namespace, and READY=1 from any process of the container makes it ready (also
/// with roost as its init, where the workload has a session of its own); a dependent waits
/// for it. The sender is socat, with its libraries, in the image.
#[test]
fn ready_1_from_inside_a_container_makes_it_ready() {
    let socat = Path::new("/usr/bin/socat");
    assert!(
        socat.exists(),
        "socat is needed: ./test.sh setup installs it"
    );
    let scratch = Scratch::new();
    let image = image(&scratch, true);
    std::fs::copy(socat, image.join("bin/socat")).expect("socat");
    copy_libraries(&image, socat);
    let dir = container_dir(&scratch);
    for init in [false, true] {
        let root = json!({"directory": image});
        let doc = json!({"KillTimeout": 5, "Containers": [
            {"name": "app", "kind": "container", "image_root": root, "restart": {"policy": "no"},
             "depends_on": [{"name": "db", "condition": "healthy"}],
             "exec": ["sh", "-c", "echo app ran"]},
            {"name": "db", "kind": "container", "image_root": root, "notify": true, "init": init,
             "restart": {"policy": "no"}, "on_exit": "ignore", "stop": {"timeout": "1s"},
             "exec": ["sh", "-c", "sleep 0.3; echo db notifies; printf READY=1 | socat - ABSTRACT-SENDTO:${NOTIFY_SOCKET#@}; exec sleep 1000"]},
        ]});
        let done = start(&scratch, &doc, &dir).wait(T);
        done.assert_code(0);
        let (out, err) = (&done.stdout, &done.stderr);
        assert!(err.contains("db sent READY=1"), "init {init}: {err}");
        assert!(
            err.find("db sent READY=1") < err.find("app started"),
            "init {init}: {err}"
        );
        assert!(out.contains("[app] app ran"), "init {init}: {out}");
        assert_nothing_left(&dir, err);
    }
}

/// A root container cannot reach the VM's devices, make namespaces, or read the shared
/// network's traffic. Before: it kept CAP_MKNOD and CAP_NET_RAW, no device rule was set
/// (nothing filtered devices on cgroup v2), and no seccomp filter stood between it and
/// `unshare`, `keyctl`, `bpf`, `userfaultfd`, `perf_event_open` or io_uring. Here (a hybrid
/// host) the device rules are the v1 controller's; the VM boot test checks the eBPF program
/// of pure cgroup v2, and roost-oci's own tests check that program on this kernel.
#[test]
fn a_root_container_has_no_mknod_no_raw_sockets_a_seccomp_filter_and_device_rules() {
    let scratch = Scratch::new();
    let image = image(&scratch, false);
    let dir = container_dir(&scratch);
    let root = json!({"directory": image});
    let probe = "grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -s '\\t' ' '; \
                 grep ':devices:' /proc/self/cgroup; \
                 mknod /tmp/disk b 7 0 2>/dev/null && echo mknod-ok || echo mknod-denied; \
                 unshare -U -r sh -c 'mount -t tmpfs t /tmp' 2>/dev/null && echo userns-ok || echo userns-denied; \
                 echo DONE; exec sleep 60";
    let doc = json!({"KillTimeout": 5, "Containers": [
        {"name": "hostile", "kind": "container", "image_root": root, "exec": ["sh", "-c", probe],
         "stop": {"timeout": "1s"}},
        {"name": "open", "kind": "container", "image_root": root, "exec": ["sh", "-c", probe],
         "seccomp": "unconfined", "on_exit": "ignore", "stop": {"timeout": "1s"}},
    ]});
    let (roost, ctl) = start_with_control(&scratch, &doc, &dir);
    let log_of = |name: &str| -> Vec<String> {
        let v = http(&ctl, "GET", &format!("/v2/services/{name}/logs"), &[], b"").json();
        v["lines"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + T;
    while !["hostile", "open"]
        .iter()
        .all(|n| log_of(n).iter().any(|l| l == "DONE"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            log_of("hostile")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let hostile = log_of("hostile");
    // Docker's default set less CAP_MKNOD (bit 27) and CAP_NET_RAW (bit 13).
    assert!(
        hostile.contains(&"CapEff: 00000000a00405fb".to_string()),
        "{hostile:?}"
    );
    assert!(hostile.contains(&"Seccomp: 2".to_string()), "{hostile:?}");
    assert!(hostile.contains(&"mknod-denied".to_string()), "{hostile:?}");
    assert!(
        hostile.contains(&"userns-denied".to_string()),
        "{hostile:?}"
    );
    // The device rules in force for its cgroup: no `a *:* rwm`, no block device to read or
    // write; null and the pts are there (libcontainer adds its own defaults on v1: mknod of
    // any node, which CAP_MKNOD's absence already refuses, the console and tun).
    let cgroup = hostile
        .iter()
        .find_map(|l| l.split_once(":devices:").map(|(_, p)| p.to_string()))
        .expect("a devices cgroup");
    let list = std::fs::read_to_string(format!("/sys/fs/cgroup/devices{cgroup}/devices.list"))
        .expect("devices.list");
    for line in list.lines() {
        assert!(!line.starts_with('a'), "{list}");
        assert!(!line.starts_with('b') || line.ends_with(" m"), "{list}");
    }
    for want in ["c 1:3 rwm", "c 1:9 rwm", "c 5:2 rwm", "c 136:* rwm"] {
        assert!(list.lines().any(|l| l == want), "{want}: {list}");
    }
    // The documented opt-out: no filter.
    let open = log_of("open");
    assert!(open.contains(&"Seccomp: 0".to_string()), "{open:?}");
    assert!(open.contains(&"mknod-denied".to_string()), "{open:?}");
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    assert!(done.code.is_some(), "{}", done.stderr);
    assert_nothing_left(&dir, &done.stderr);
}

/// `/v1/exec` with `workload_user` on a machine whose first service is a container runs in
/// that container, as its user (before: as that uid on the VM's root, outside it).
#[test]
fn v1_exec_as_the_workload_user_runs_in_the_first_services_container() {
    let scratch = Scratch::new();
    let image = image(&scratch, false);
    let dir = container_dir(&scratch);
    let doc = json!({"KillTimeout": 5, "Containers": [
        {"name": "web", "kind": "container", "image_root": {"directory": image}, "user": "app",
         "exec": ["sleep", "60"], "stop": {"timeout": "1s"}},
    ]});
    let (roost, ctl) = start_with_control(&scratch, &doc, &dir);
    let deadline = std::time::Instant::now() + T;
    while http(&ctl, "GET", "/v2/services/web", &[], b"").json()["state"] != "running" {
        assert!(std::time::Instant::now() < deadline, "web never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        let body = json!({"cmd": ["sh", "-c", "echo uid=$(id -u) init=$(cat /proc/1/cmdline | tr '\\0' ' ')"],
                          "workload_user": true});
        let r = http(&ctl, "POST", "/v1/exec", &[], body.to_string().as_bytes());
        if r.status == 200 {
            let v = r.json();
            let out = v["stdout"].as_str().unwrap_or_default().to_string();
            assert!(out.contains("uid=1000 init=sleep 60"), "{v}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    assert!(done.code.is_some(), "{}", done.stderr);
    assert_nothing_left(&dir, &done.stderr);
}
