//! `GET /v1/ws/exec`: an interactive command over a WebSocket.
//!
//! The first text frame is `{"command": [...], "tty": bool}` as the Fly and pigeon-init
//! clients send it, with roost's optional `cols`, `rows`, `workload_user`, `stdin` and
//! `separate_stderr`. Text frames `{"cols": N, "rows": N}` resize the terminal.
//! - With `tty: true` the command runs on a PTY (its controlling terminal, `TERM` set to
//!   `xterm-256color` when its env has none, as both anchors do); binary frames from the
//!   client are its input and binary frames from roost carry the terminal's output.
//! - Without a tty the command's stdin is `/dev/null` (as both anchors give it) unless the
//!   client asked for `stdin: true`: then binary frames are its stdin and an empty one closes
//!   it. stdout and stderr go into roost's binary frames through one pipe, in the order they
//!   were written, unless the client asked for `separate_stderr: true`: then stderr comes
//!   apart in text frames `{"Stderr": "..."}` (lossy UTF-8).
//!
//! roost sends `{"Exit": {"code": N|null, "signal": N|null}}` once all output has been sent
//! (at most 2 s after the exit if something else still holds the output open) and closes with
//! 1000 (normal closure), or sends `{"Error": {"message": "..."}}` and closes with 1011. A
//! client that goes away takes the session's whole process group with it (SIGKILL).

use super::exec::{check_command, launch_for};
use super::protocol::{WsInit, WsResize, WsServerMessage};
use super::state::ControlState;
use crate::supervisor::handle::ChildExit;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// How long the client has to send the first frame.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// After the command exits, how long output may still come before `Exit` is sent anyway.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

async fn send_json(ws: &mut Ws, msg: &WsServerMessage) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => ws.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

/// Closes with a status code: clients that test for 1000 read a close without one as 1005.
async fn close(ws: &mut Ws, code: CloseCode) {
    let _ = ws
        .close(Some(CloseFrame {
            code,
            reason: "".into(),
        }))
        .await;
}

async fn fail(ws: &mut Ws, message: String) {
    let _ = send_json(ws, &WsServerMessage::Error { message }).await;
    close(ws, CloseCode::Error).await;
}

/// `TERM` for a terminal session whose env has none (both anchors set this one).
const DEFAULT_TERM: &str = "xterm-256color";

/// Runs one session on an upgraded connection.
pub async fn session(state: ControlState, mut ws: Ws) {
    let init = match tokio::time::timeout(INIT_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<WsInit>(text.as_str()),
        Ok(_) => return fail(&mut ws, "the first frame must be a JSON text frame".into()).await,
        Err(_) => return fail(&mut ws, "no first frame within 10 s".into()).await,
    };
    let init = match init {
        Ok(init) => init,
        Err(e) => return fail(&mut ws, format!("bad first frame: {e}")).await,
    };
    if let Err(e) = check_command(&init.command) {
        return fail(&mut ws, e.to_string()).await;
    }
    let mut launch = match launch_for(&state, init.workload_user, init.container.as_deref()).await {
        Ok(l) => l,
        Err(e) => return fail(&mut ws, e.to_string()).await,
    };
    if init.tty && launch.env.get("TERM").is_none() {
        launch.env.set("TERM", DEFAULT_TERM);
    }
    let result = if init.tty {
        run_tty(&state, &mut ws, &init, launch).await
    } else {
        run_pipes(&state, &mut ws, &init, launch).await
    };
    match result {
        Ok(exit) => {
            let _ = send_json(
                &mut ws,
                &WsServerMessage::Exit {
                    code: exit.and_then(|e| e.code),
                    signal: exit.and_then(|e| e.signal),
                },
            )
            .await;
            close(&mut ws, CloseCode::Normal).await;
        }
        Err(SessionEnd::ClientGone) => {}
        Err(SessionEnd::Failed(message)) => fail(&mut ws, message).await,
    }
}

enum SessionEnd {
    /// The client closed or broke the socket; the session's group has been killed.
    ClientGone,
    Failed(String),
}

fn cloexec(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

fn set_winsize(master: &OwnedFd, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `master` is an open PTY master and `ws` a valid winsize for TIOCSWINSZ to read.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Reads from a non-blocking fd registered with the runtime. `Ok(0)` at end of output (EIO is
/// how a PTY master says the other side is closed).
async fn read_fd(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard
            .try_io(|inner| nix::unistd::read(inner.get_ref(), buf).map_err(std::io::Error::from))
        {
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

async fn write_fd(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard
            .try_io(|inner| nix::unistd::write(inner.get_ref(), data).map_err(std::io::Error::from))
        {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// Stdin a client may have sent that the command has not read, before the socket is read
/// no further: 1 MiB.
const MAX_STDIN_BACKLOG: usize = 1024 * 1024;

/// Waits until the command's stdin can take bytes; false when it is closed (or gone).
async fn writable(stdin: &Option<tokio::net::unix::pipe::Sender>) -> bool {
    match stdin {
        Some(w) => w.writable().await.is_ok(),
        None => false,
    }
}

/// Writes as much of `pending` as the pipe takes now, without waiting.
fn write_pending(
    stdin: &mut Option<tokio::net::unix::pipe::Sender>,
    pending: &mut std::collections::VecDeque<bytes::Bytes>,
    pending_len: &mut usize,
) {
    let Some(w) = stdin.as_ref() else { return };
    while let Some(front) = pending.front_mut() {
        match w.try_write(front) {
            Ok(n) => {
                *pending_len = pending_len.saturating_sub(n);
                if n >= front.len() {
                    pending.pop_front();
                } else {
                    let _ = front.split_to(n);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            // The command closed its stdin: what it was sent is dropped, as a pipe would.
            Err(_) => {
                *stdin = None;
                return;
            }
        }
    }
}

/// Reads the separate stderr pipe, when there is one (else never ready: its arm is off).
async fn read_opt(
    pipe: &mut Option<tokio::net::unix::pipe::Receiver>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Waits for the exit once it is known, or forever.
async fn exit_of(rx: &mut Option<oneshot::Receiver<ChildExit>>) -> Option<ChildExit> {
    match rx {
        Some(rx) => rx.await.ok(),
        None => std::future::pending().await,
    }
}

async fn run_tty(
    state: &ControlState,
    ws: &mut Ws,
    init: &WsInit,
    launch: super::exec::Launch,
) -> Result<Option<ChildExit>, SessionEnd> {
    let failed = |what: &str, e: &dyn std::fmt::Display| SessionEnd::Failed(format!("{what}: {e}"));
    let size = nix::pty::Winsize {
        ws_row: init.rows.unwrap_or(24),
        ws_col: init.cols.unwrap_or(80),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).map_err(|e| failed("openpty", &e))?;
    cloexec(&pty.master).map_err(|e| failed("pty", &e))?;
    cloexec(&pty.slave).map_err(|e| failed("pty", &e))?;
    let slave_in = pty.slave.try_clone().map_err(|e| failed("pty", &e))?;
    let slave_out = pty.slave.try_clone().map_err(|e| failed("pty", &e))?;
    let stdio = [
        Stdio::from(slave_in),
        Stdio::from(slave_out),
        Stdio::from(pty.slave),
    ];
    let (pid, exit_rx) = launch
        .spawn(state, &init.command, stdio, true)
        .map_err(|e| failed(&format!("cannot start {:?}", init.command[0]), &e))?;
    let master = pty.master;
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| failed("pty", &e))?;
    // SAFETY: `master` is an open OwnedFd moved into the AsyncFd, which owns it until it is
    // dropped; OwnedFd::as_raw_fd always returns that same descriptor.
    let master = unsafe { AsyncFd::register(master) }.map_err(|e| failed("pty", &e.to_string()))?;

    let mut exit_rx = Some(exit_rx);
    let mut exit: Option<Option<ChildExit>> = None;
    let mut drain_until = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let drain = drain_until
            .unwrap_or_else(|| roost_platform::deadline::from_now(Duration::from_secs(86_400)));
        tokio::select! {
            n = read_fd(&master, &mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        state.supervisor().kill_exec(pid);
                        return Err(SessionEnd::ClientGone);
                    }
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    let _ = write_fd(&master, &data).await;
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(r) = serde_json::from_str::<WsResize>(text.as_str()) {
                        set_winsize(master.get_ref(), r.cols, r.rows);
                    }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    state.supervisor().kill_exec(pid);
                    return Err(SessionEnd::ClientGone);
                }
            },
            e = exit_of(&mut exit_rx), if exit.is_none() => {
                exit = Some(e);
                exit_rx = None;
                drain_until = Some(roost_platform::deadline::from_now(DRAIN_AFTER_EXIT));
            }
            _ = tokio::time::sleep_until(drain), if drain_until.is_some() => break,
        }
    }
    // Output is drained; the exit may still be on its way.
    let exit = match exit {
        Some(e) => e,
        None => exit_of(&mut exit_rx).await,
    };
    Ok(exit)
}

async fn run_pipes(
    state: &ControlState,
    ws: &mut Ws,
    init: &WsInit,
    launch: super::exec::Launch,
) -> Result<Option<ChildExit>, SessionEnd> {
    let failed = |what: &str, e: &dyn std::fmt::Display| SessionEnd::Failed(format!("{what}: {e}"));
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC);
    let (out_r, out_w) = pipe().map_err(|e| failed("pipe", &e))?;
    // stdin: a pipe the client writes to, or /dev/null.
    let (stdin_child, stdin_ours) = if init.stdin {
        let (r, w) = pipe().map_err(|e| failed("pipe", &e))?;
        (Stdio::from(r), Some(w))
    } else {
        (Stdio::null(), None)
    };
    // stderr: its own pipe, or the stdout pipe (one stream, in the order written).
    let (stderr_child, err_r) = if init.separate_stderr {
        let (r, w) = pipe().map_err(|e| failed("pipe", &e))?;
        (Stdio::from(w), Some(r))
    } else {
        let w = out_w.try_clone().map_err(|e| failed("pipe", &e))?;
        (Stdio::from(w), None)
    };
    let stdio = [stdin_child, Stdio::from(out_w), stderr_child];
    let (pid, exit_rx) = launch
        .spawn(state, &init.command, stdio, false)
        .map_err(|e| failed(&format!("cannot start {:?}", init.command[0]), &e))?;
    use tokio::net::unix::pipe;
    let mut stdin = match stdin_ours {
        Some(w) => Some(pipe::Sender::from_owned_fd(w).map_err(|e| failed("pipe", &e))?),
        None => None,
    };
    let mut out = pipe::Receiver::from_owned_fd(out_r).map_err(|e| failed("pipe", &e))?;
    let mut err = match err_r {
        Some(r) => Some(pipe::Receiver::from_owned_fd(r).map_err(|e| failed("pipe", &e))?),
        None => None,
    };

    let mut exit_rx = Some(exit_rx);
    let mut exit: Option<Option<ChildExit>> = None;
    let (mut out_open, mut err_open) = (true, err.is_some());
    let mut drain_until = None;
    let mut buf_out = vec![0u8; 32 * 1024];
    let mut buf_err = vec![0u8; 32 * 1024];
    // Stdin the command has not read yet. It is written as the pipe takes it, never awaited
    // inside the loop, so the socket keeps being read and a client that leaves is noticed
    // however full the pipe is. Beyond MAX_STDIN_BACKLOG the socket is not read until the
    // command reads (backpressure, as TCP would).
    let mut pending: std::collections::VecDeque<bytes::Bytes> = Default::default();
    let mut pending_len = 0usize;
    let mut stdin_eof = false;
    while out_open || err_open {
        let drain = drain_until
            .unwrap_or_else(|| roost_platform::deadline::from_now(Duration::from_secs(86_400)));
        let sent = tokio::select! {
            n = out.read(&mut buf_out), if out_open => match n {
                Ok(0) | Err(_) => { out_open = false; true }
                Ok(n) => ws.send(Message::Binary(buf_out[..n].to_vec().into())).await.is_ok(),
            },
            n = read_opt(&mut err, &mut buf_err), if err_open => match n {
                Ok(0) | Err(_) => { err_open = false; true }
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf_err[..n]).into_owned();
                    send_json(ws, &WsServerMessage::Stderr(text)).await
                }
            },
            ready = writable(&stdin), if !pending.is_empty() => {
                if ready {
                    write_pending(&mut stdin, &mut pending, &mut pending_len);
                } else {
                    stdin = None;
                }
                if stdin.is_none() {
                    pending.clear();
                    pending_len = 0;
                }
                if pending.is_empty() && stdin_eof {
                    stdin = None; // EOF for the command, after what it was sent
                }
                true
            },
            msg = ws.next(), if pending_len < MAX_STDIN_BACKLOG => match msg {
                Some(Ok(Message::Binary(data))) => {
                    if data.is_empty() {
                        stdin_eof = true;
                        if pending.is_empty() {
                            stdin = None;
                        }
                    } else if stdin.is_some() && !stdin_eof {
                        pending_len += data.len();
                        pending.push_back(data);
                    }
                    true
                }
                Some(Ok(_)) => true,
                None | Some(Err(_)) => false,
            },
            e = exit_of(&mut exit_rx), if exit.is_none() => {
                exit = Some(e);
                exit_rx = None;
                drain_until = Some(roost_platform::deadline::from_now(DRAIN_AFTER_EXIT));
                true
            }
            _ = tokio::time::sleep_until(drain), if drain_until.is_some() => break,
        };
        if !sent {
            state.supervisor().kill_exec(pid);
            return Err(SessionEnd::ClientGone);
        }
    }
    drop(stdin);
    let exit = match exit {
        Some(e) => e,
        None => exit_of(&mut exit_rx).await,
    };
    Ok(exit)
}
