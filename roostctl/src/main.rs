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

mod image;
mod import;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use roost_control_protocol::{
    ExecRequest, ExecResponse, ExitCode, WsInit, WsResize, WsServerMessage,
};
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const EXIT_REFUSED: i32 = 1;
const EXIT_UNAVAILABLE: i32 = 69;
const EXIT_PROTOCOL: i32 = 70;

#[derive(Debug, Parser)]
#[command(
    name = "roostctl",
    version,
    about = "Drive roost's control API from the host"
)]
struct Cli {
    /// Firecracker's host-side vsock Unix socket (speaks `CONNECT <port>`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["cid", "unix"])]
    uds: Option<PathBuf>,
    /// The guest's vsock CID (kernel AF_VSOCK).
    #[arg(long, value_name = "N", conflicts_with = "unix")]
    cid: Option<u32>,
    /// roost's control socket in container mode.
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// The control API's vsock port.
    #[arg(long, default_value_t = 10000)]
    port: u32,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print roost's status.
    Status,
    /// Wait for the workload to exit; exit with its code.
    Wait,
    /// Send a signal (number or name) to the workload's process group, or to a service's.
    Signal {
        signal: String,
        /// The service to signal (default: the main one, as /v1/signals does).
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
    },
    /// List the services: name, state, readiness, restarts, last exit, pid.
    Ps,
    /// Print a service's last lines; with -f, follow them.
    Logs {
        name: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop a service (its signal, SIGKILL after its timeout); it stays stopped.
    Stop { name: String },
    /// Start a service that is over.
    Start { name: String },
    /// Stop a service and start it again.
    Restart { name: String },
    /// Convert another tool's file to roost's config: `import process-compose FILE` prints
    /// the `Containers` JSON for a process-compose project (no connection to roost needed).
    Import {
        #[arg(value_parser = ["process-compose"])]
        format: String,
        file: PathBuf,
    },
    /// Make an image a container service can use (no connection to roost needed):
    /// `image build SOURCE (--dir DIR | --ext4 FILE) [--config FILE]` applies the layers of
    /// an OCI image layout, an oci-archive or a docker-archive into a directory or an ext4
    /// disk, and writes the image's config as `image_config` JSON.
    Image {
        #[command(subcommand)]
        command: ImageCmd,
    },
    /// Run a command; print its output; exit with its code.
    Exec {
        #[arg(long)]
        timeout: Option<f64>,
        /// Run as the workload's user, in its directory.
        #[arg(long)]
        workload_user: bool,
        /// Run inside this service: its user, env, directory and cgroup.
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// An interactive shell (or CMD) on a terminal; exit with its code.
    Shell {
        #[arg(long)]
        workload_user: bool,
        /// Run inside this service: its user, env, directory and cgroup.
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        #[arg(last = true)]
        cmd: Vec<String>,
    },
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
struct Failure(i32, String);

type Stream = Pin<Box<dyn Io>>;
trait Io: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

async fn connect(cli: &Cli) -> Result<Stream, Failure> {
    let unavailable = |what: String| Failure(EXIT_UNAVAILABLE, what);
    if let Some(path) = &cli.unix {
        let s = tokio::net::UnixStream::connect(path).await.map_err(|e| {
            unavailable(format!(
                "cannot connect to {}: {e} (is roost running with --control unix:{}?)",
                path.display(),
                path.display()
            ))
        })?;
        return Ok(Box::pin(s));
    }
    if let Some(path) = &cli.uds {
        let s = tokio::net::UnixStream::connect(path).await.map_err(|e| {
            unavailable(format!(
                "cannot connect to the VM's vsock socket {}: {e} (is the VM running?)",
                path.display()
            ))
        })?;
        let mut s = tokio::io::BufReader::new(s);
        s.write_all(format!("CONNECT {}\n", cli.port).as_bytes())
            .await
            .map_err(|e| unavailable(format!("vsock handshake: {e}")))?;
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            // Bounded: the answer is a short line.
            (&mut s).take(128).read_line(&mut line).await
        })
        .await;
        match read {
            Ok(Ok(_)) if line.starts_with("OK ") => return Ok(Box::pin(s)),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Err(unavailable(format!(
                    "the guest is not listening on vsock port {} (roost not up yet?)",
                    cli.port
                )))
            }
            Ok(Ok(_)) => {
                return Err(unavailable(format!(
                    "vsock handshake failed: expected \"OK <port>\", got {:?}",
                    line.trim_end()
                )))
            }
            Err(_) => return Err(unavailable("vsock handshake timed out".into())),
        }
    }
    if let Some(cid) = cli.cid {
        let addr = tokio_vsock::VsockAddr::new(cid, cli.port);
        let s = tokio_vsock::VsockStream::connect(addr)
            .await
            .map_err(|e| unavailable(format!("cannot connect to vsock {cid}:{}: {e}", cli.port)))?;
        return Ok(Box::pin(s));
    }
    Err(Failure(
        2,
        "one of --uds, --cid or --unix is required".into(),
    ))
}

/// One HTTP/1.1 request; returns (status, body).
/// Whether a request failed because the connection ended under it (closed, reset, broken pipe)
/// rather than on an answer that could not be read.
fn went_away(e: &hyper::Error) -> bool {
    use std::error::Error as _;
    e.is_incomplete_message()
        || e.is_closed()
        || e.is_canceled()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
}

async fn request(
    cli: &Cli,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, Bytes), Failure> {
    let stream = connect(cli).await?;
    let proto = |e: &dyn std::fmt::Display| Failure(EXIT_PROTOCOL, format!("control API: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| proto(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "roost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| proto(&e))?;
    // A connection that closes before any answer means roost went away (its control API closes
    // when it stops): unavailable, like a socket that is not there. Only an answer that is there
    // but unreadable is a protocol failure.
    let resp = sender.send_request(req).await.map_err(|e| {
        if went_away(&e) {
            Failure(
                EXIT_UNAVAILABLE,
                format!("control API: {e} (is roost stopping?)"),
            )
        } else {
            proto(&e)
        }
    })?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| proto(&e))?
        .to_bytes();
    Ok((status, bytes))
}

fn refused(status: u16, body: &[u8]) -> Failure {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    Failure(EXIT_REFUSED, format!("roost answered {status}: {message}"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| Failure(EXIT_PROTOCOL, format!("unreadable answer: {e}")))
}

fn code_of(code: Option<i32>, signal: Option<i32>) -> i32 {
    // A signal first: the pigeon dialect says -1 as the code of a signal death.
    signal.map(|s| 128 + s).or(code).unwrap_or(EXIT_PROTOCOL)
}

fn parse_signal(text: &str) -> Result<i64, Failure> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i64)
        .map_err(|_| Failure(2, format!("unknown signal {text:?}")))
}

/// Restores the terminal's mode when dropped.
struct RawTerminal(Option<nix::sys::termios::Termios>);

impl RawTerminal {
    fn enable() -> Self {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        match tcgetattr(&stdin) {
            Ok(saved) => {
                let mut raw = saved.clone();
                cfmakeraw(&mut raw);
                let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
                RawTerminal(Some(saved))
            }
            Err(_) => RawTerminal(None),
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`, which is valid and writable.
    let rc = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

async fn shell(
    cli: &Cli,
    cmd: Vec<String>,
    workload_user: bool,
    container: Option<String>,
) -> Result<i32, Failure> {
    let stream = connect(cli).await?;
    let (mut ws, _) = tokio_tungstenite::client_async("ws://roost/v1/ws/exec", stream)
        .await
        .map_err(|e| Failure(EXIT_PROTOCOL, format!("WebSocket: {e}")))?;
    use std::io::IsTerminal;
    let tty = std::io::stdin().is_terminal();
    let size = terminal_size();
    let init = WsInit {
        command: if cmd.is_empty() {
            vec!["/bin/sh".into()]
        } else {
            cmd
        },
        tty,
        cols: size.map(|s| s.0),
        rows: size.map(|s| s.1),
        workload_user,
        // roostctl forwards its stdin and shows stderr on its own stderr.
        stdin: true,
        separate_stderr: true,
        container,
    };
    let init = serde_json::to_string(&init).map_err(|e| Failure(EXIT_PROTOCOL, e.to_string()))?;
    ws.send(Message::Text(init.into()))
        .await
        .map_err(|e| Failure(EXIT_UNAVAILABLE, e.to_string()))?;
    let _raw = tty.then(RawTerminal::enable);
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(|e| Failure(EXIT_PROTOCOL, e.to_string()))?;
    let mut stdin = tokio::io::stdin();
    let mut stdin_open = true;
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    loop {
        tokio::select! {
            n = stdin.read(&mut buf), if stdin_open => {
                let data = match n {
                    Ok(0) | Err(_) => { stdin_open = false; Vec::new() } // empty frame: EOF
                    Ok(n) => buf[..n].to_vec(),
                };
                // The session may have ended (and roost closed) while stdin was still being
                // sent: stop sending, and read on for the Exit frame.
                if ws.send(Message::Binary(data.into())).await.is_err() {
                    stdin_open = false;
                }
            }
            _ = winch.recv() => {
                if let Some((cols, rows)) = terminal_size() {
                    let msg = serde_json::to_string(&WsResize { cols, rows }).unwrap_or_default();
                    let _ = ws.send(Message::Text(msg.into())).await;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    let _ = stdout.write_all(&data);
                    let _ = stdout.flush();
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<WsServerMessage>(text.as_str()) {
                    Ok(WsServerMessage::Exit { code, signal }) => return Ok(code_of(code, signal)),
                    Ok(WsServerMessage::Error { message }) => return Err(Failure(EXIT_REFUSED, message)),
                    Ok(WsServerMessage::Stderr(text)) => {
                        let _ = stderr.write_all(text.as_bytes());
                    }
                    Err(_) => {}
                },
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    return Err(Failure(EXIT_PROTOCOL, "the session ended without an exit status".into()))
                }
            },
        }
    }
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    Build {
        /// An OCI image layout directory, or an oci-archive or docker-archive tarball.
        source: PathBuf,
        /// Which image of an OCI layout (its `org.opencontainers.image.ref.name`, the tag).
        #[arg(long = "ref", value_name = "NAME")]
        reference: Option<String>,
        /// Write the root into this directory (made; it must not exist or be empty).
        #[arg(
            long,
            value_name = "DIR",
            conflicts_with = "ext4",
            required_unless_present = "ext4"
        )]
        dir: Option<PathBuf>,
        /// Write an ext4 disk image holding the root (needs mke2fs).
        #[arg(long, value_name = "FILE")]
        ext4: Option<PathBuf>,
        /// Write the image's config (`image_config` of a service) here.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
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

async fn run(cli: Cli) -> Result<i32, Failure> {
    match &cli.command {
        Cmd::Status => {
            let (status, body) = request(&cli, "GET", "/v2/status", None).await?;
            if status != 200 {
                return Err(refused(status, &body));
            }
            let value: serde_json::Value = parse(&body)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            Ok(0)
        }
        Cmd::Wait => {
            let (status, body) = request(&cli, "GET", "/v1/exit_code", None).await?;
            if status != 200 {
                return Err(refused(status, &body));
            }
            let exit: ExitCode = parse(&body)?;
            println!("{}", String::from_utf8_lossy(&body));
            Ok(exit.code)
        }
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
        Cmd::Import { file, .. } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure(2, format!("cannot read {}: {e}", file.display())))?;
            let (value, warnings) = import::process_compose(&text)
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
            let value: serde_json::Value = parse(&body)?;
            print!("{}", ps_table(&value));
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
    }
}

/// A service name as one path segment (names are DNS labels; anything else is escaped).
fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `roostctl ps`: one line per service.
fn ps_table(value: &serde_json::Value) -> String {
    let mut out = format!(
        "{:<24} {:<11} {:<6} {:>8} {:>9} {:>8}\n",
        "NAME", "STATE", "READY", "RESTARTS", "LAST EXIT", "PID"
    );
    for s in value["services"].as_array().into_iter().flatten() {
        let opt = |v: &serde_json::Value| v.as_i64().map_or("-".to_string(), |n| n.to_string());
        out.push_str(&format!(
            "{:<24} {:<11} {:<6} {:>8} {:>9} {:>8}\n",
            s["name"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?"),
            if s["ready"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            s["restarts"].as_u64().unwrap_or(0),
            opt(&s["last_exit_code"]),
            opt(&s["pid"]),
        ));
    }
    out
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
        let value: serde_json::Value = parse(&body)?;
        let mut stdout = std::io::stdout();
        for line in value["lines"].as_array().into_iter().flatten() {
            let _ = writeln!(stdout, "{}", line.as_str().unwrap_or_default());
        }
        let _ = stdout.flush();
        if !follow {
            return Ok(0);
        }
        after = value["next"].as_u64().or(after);
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
