//! roostctl: the host-side CLI for roost's control API.
//!
//! ```text
//! roostctl --uds PATH [--port 10000]   Firecracker's host-side vsock socket (CONNECT handshake)
//! roostctl --cid N [--port 10000]      kernel AF_VSOCK
//! roostctl --unix PATH                 container mode (roost container --control unix:PATH)
//!          status | wait | signal N | exec [--timeout S] [--workload-user] -- CMD... | shell [-- CMD...]
//!          ps | logs NAME [-f] | stop NAME | start NAME | restart NAME   (services, docs/services.md)
//!          exec --container NAME -- CMD... | shell --container NAME
//! ```
//!
//! Exit codes: `wait`, `exec` and `shell` exit with the workload's or the command's code
//! (128 + signal when a signal ended it); otherwise 0 on success, 1 when the API refused
//! (4xx/5xx), 2 for a bad command line, 69 when roost cannot be reached (no socket, failed
//! handshake, guest not listening), 70 for an answer roostctl cannot read.

mod cli;
mod failure;
mod image;
mod import;
mod print;
mod shell;
mod transport;

use clap::Parser;
use cli::{parse_signal, path_segment, Cli, Cmd, ImageCmd};
use print::{code_of, ps_table};
use roost_control_protocol::{ExecRequest, ExecResponse, ExitCode, LogsPage, ServiceList, Status};
use shell::shell;
use std::io::Write;
use transport::{parse, refused, request, Failure, EXIT_PROTOCOL, EXIT_REFUSED, EXIT_UNAVAILABLE};

async fn run(cli: Cli) -> Result<i32, Failure> {
    match &cli.command {
        Cmd::Status => {
            let (status, body) = request(&cli, "GET", "/v2/status", None).await?;
            if status != 200 {
                return Err(refused(status, &body));
            }
            let status: Status = parse(&body)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
            Ok(0)
        }
        Cmd::Wait => wait(&cli).await,
        Cmd::Signal { signal, container } => {
            let signal = parse_signal(signal)?;
            let body = serde_json::json!({ "signal": signal });
            let path = match container {
                Some(name) => format!("/v2/services/{}/signal", path_segment(name)),
                None => "/v1/signals".into(),
            };
            let (status, body) = request(&cli, "POST", &path, Some(body)).await?;
            if status != 200 {
                return Err(refused(status, &body));
            }
            Ok(0)
        }
        Cmd::Image {
            command:
                ImageCmd::Build {
                    source,
                    reference,
                    dir,
                    ext4,
                    config,
                },
        } => image_build(
            source,
            reference.as_deref(),
            dir.as_deref(),
            ext4.as_deref(),
            config.as_deref(),
        ),
        Cmd::Import {
            file,
            project_dir,
            env,
            ..
        } => {
            let project_dir = project_dir.as_ref().map(|d| d.to_string_lossy());
            let mut given = std::collections::BTreeMap::new();
            for entry in env {
                let Some((name, value)) = entry.split_once('=') else {
                    return Err(Failure(2, format!("--env {entry:?}: NAME=VALUE")));
                };
                given.insert(name.to_string(), value.to_string());
            }
            let (value, warnings) =
                import::process_compose_file(file, project_dir.as_deref(), &given)
                    .map_err(|e| Failure(EXIT_REFUSED, format!("{}: {e}", file.display())))?;
            for w in warnings {
                eprintln!("roostctl: {w}");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            Ok(0)
        }
        Cmd::Ps => {
            let (status, body) = request(&cli, "GET", "/v2/services", None).await?;
            if status != 200 {
                return Err(refused(status, &body));
            }
            let list: ServiceList = parse(&body)?;
            print!("{}", ps_table(&list));
            Ok(0)
        }
        Cmd::Logs { name, follow } => logs(&cli, name, *follow).await,
        Cmd::Stop { name } | Cmd::Start { name } | Cmd::Restart { name } => {
            let action = match &cli.command {
                Cmd::Stop { .. } => "stop",
                Cmd::Start { .. } => "start",
                _ => "restart",
            };
            let path = format!("/v2/services/{}/{action}", path_segment(name));
            let (status, body) = request(&cli, "POST", &path, None).await?;
            if status != 200 {
                return Err(refused(status, &body));
            }
            Ok(0)
        }
        Cmd::Exec {
            timeout,
            workload_user,
            container,
            cmd,
        } => {
            let req = ExecRequest {
                cmd: cmd.clone(),
                timeout: *timeout,
                workload_user: *workload_user,
                container: container.clone(),
                ..ExecRequest::default()
            };
            let body =
                serde_json::to_value(&req).map_err(|e| Failure(EXIT_PROTOCOL, e.to_string()))?;
            let (status, body) = request(&cli, "POST", "/v1/exec", Some(body)).await?;
            if status != 200 {
                return Err(refused(status, &body));
            }
            let resp: ExecResponse = parse(&body)?;
            let _ = std::io::stdout().write_all(&resp.stdout.into_bytes());
            let _ = std::io::stderr().write_all(&resp.stderr.into_bytes());
            if resp.timed_out {
                eprintln!("roostctl: the command timed out and was killed");
            }
            Ok(code_of(resp.exit_code, resp.exit_signal))
        }
        Cmd::Shell {
            workload_user,
            container,
            cmd,
        } => shell(&cli, cmd.clone(), *workload_user, container.clone()).await,
        Cmd::Snapshot { command } => snapshot(&cli, command).await,
    }
}

/// How long `wait` keeps reconnecting while roost's control API cannot be reached (a VM
/// being snapshotted resets its vsock connections; one that stays away is gone).
const RECONNECT_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// `wait`: the long-poll of `/v1/exit_code`, connected again whenever its connection is cut
/// (a suspend resets every vsock connection), until roost has been unreachable for
/// [`RECONNECT_FOR`].
async fn wait(cli: &Cli) -> Result<i32, Failure> {
    let mut unreachable_since: Option<std::time::Instant> = None;
    loop {
        let asked = std::time::Instant::now();
        match request(cli, "GET", "/v1/exit_code", None).await {
            Ok((200, body)) => {
                let exit: ExitCode = parse(&body)?;
                println!("{}", String::from_utf8_lossy(&body));
                return Ok(exit.code);
            }
            Ok((status, body)) => return Err(refused(status, &body)),
            Err(failure) if failure.0 == EXIT_UNAVAILABLE => {
                // A long-poll that was answering for a while was connected: the clock of
                // "unreachable" starts again.
                if asked.elapsed() > std::time::Duration::from_secs(1) {
                    unreachable_since = None;
                }
                let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > RECONNECT_FOR {
                    return Err(failure);
                }
                eprintln!("roostctl: {}; connecting again", failure.1);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(failure) => return Err(failure),
        }
    }
}

/// `snapshot prepare|restored`: one call, its answer printed; 0 when roost took it.
async fn snapshot(cli: &Cli, command: &cli::SnapshotCmd) -> Result<i32, Failure> {
    let (path, body) = match command {
        cli::SnapshotCmd::Prepare { timeout_ms } => {
            let mut body = serde_json::json!({});
            if let Some(ms) = timeout_ms {
                body["timeout_ms"] = (*ms).into();
            }
            ("/v2/snapshot/prepare", body)
        }
        cli::SnapshotCmd::Restored {
            clone,
            generation,
            time_unix_ns,
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| Failure(EXIT_PROTOCOL, format!("this host's clock: {e}")))?;
            let time = time_unix_ns.unwrap_or(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX));
            let mut entropy = [0u8; 32];
            std::io::Read::read_exact(
                &mut std::fs::File::open("/dev/urandom")
                    .map_err(|e| Failure(EXIT_PROTOCOL, format!("/dev/urandom: {e}")))?,
                &mut entropy,
            )
            .map_err(|e| Failure(EXIT_PROTOCOL, format!("/dev/urandom: {e}")))?;
            let mut body = serde_json::json!({
                "time_unix_ns": time,
                "entropy": base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    entropy
                ),
                "clone": clone,
            });
            if let Some(g) = generation {
                body["generation"] = (*g).into();
            }
            ("/v2/snapshot/restored", body)
        }
    };
    let (status, answer) = request(cli, "POST", path, Some(body)).await?;
    if status != 200 {
        return Err(refused(status, &answer));
    }
    println!("{}", String::from_utf8_lossy(&answer));
    Ok(0)
}

fn image_build(
    source: &std::path::Path,
    reference: Option<&str>,
    dir: Option<&std::path::Path>,
    ext4: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
) -> Result<i32, Failure> {
    let fail = |e: String| Failure(EXIT_REFUSED, e);
    let scratch = tempfile::tempdir().map_err(|e| fail(format!("a scratch directory: {e}")))?;
    let image = image::read_source(source, reference, scratch.path()).map_err(fail)?;
    let root = match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
            let empty = std::fs::read_dir(dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty {
                return Err(fail(format!("{} is not empty", dir.display())));
            }
            dir.to_path_buf()
        }
        None => {
            let root = scratch.path().join("rootfs");
            std::fs::create_dir(&root).map_err(|e| fail(format!("{}: {e}", root.display())))?;
            root
        }
    };
    let applied = image::unpack(&image, &root).map_err(fail)?;
    if let Some(out) = ext4 {
        image::make_ext4(&root, out).map_err(fail)?;
    }
    if let Some(path) = config {
        let text =
            serde_json::to_string_pretty(&image::image_config(&image.config)).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|e| fail(format!("{}: {e}", path.display())))?;
    }
    eprintln!(
        "roostctl: {} layers, {} entries, {} whiteouts applied{}: {}",
        image.layers.len(),
        applied.entries,
        applied.whiteouts,
        if applied.devices_skipped > 0 {
            format!(" ({} device nodes skipped)", applied.devices_skipped)
        } else {
            String::new()
        },
        ext4.unwrap_or(&root).display()
    );
    Ok(0)
}

/// `roostctl logs NAME [-f]`: the kept lines, then (following) each new one as it comes,
/// by long-polls of at most 25 s each, until roost goes away.
async fn logs(cli: &Cli, name: &str, follow: bool) -> Result<i32, Failure> {
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            None => format!("/v2/services/{}/logs", path_segment(name)),
            Some(n) => format!("/v2/services/{}/logs?after={n}&wait=25", path_segment(name)),
        };
        let (status, body) = match request(cli, "GET", &path, None).await {
            Ok(answer) => answer,
            // Following a log until roost stops is a normal end.
            Err(Failure(EXIT_UNAVAILABLE, _)) if after.is_some() => return Ok(0),
            Err(e) => return Err(e),
        };
        if status != 200 {
            return Err(refused(status, &body));
        }
        let page: LogsPage = parse(&body)?;
        let mut stdout = std::io::stdout();
        for line in &page.lines {
            let _ = writeln!(stdout, "{line}");
        }
        let _ = stdout.flush();
        if !follow {
            return Ok(0);
        }
        after = Some(page.next);
    }
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roostctl: {e}");
            std::process::exit(EXIT_PROTOCOL);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Failure(code, message)) => {
            eprintln!("roostctl: {message}");
            code
        }
    };
    let _ = std::io::stdout().flush();
    // stdin may be blocked in tokio's reader thread: exit without waiting for it.
    std::process::exit(code);
}
