//! `roostctl shell`: an interactive session over the control API's WebSocket, the local
//! terminal in raw mode (restored on every way out) and its size sent on each change.

use crate::cli::Cli;
use crate::print::code_of;
use crate::transport::{connect, Failure, EXIT_PROTOCOL, EXIT_REFUSED, EXIT_UNAVAILABLE};
use futures_util::{SinkExt, StreamExt};
use roost_control_protocol::{WsInit, WsResize, WsServerMessage};
use std::io::Write;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

/// Restores the terminal's mode when dropped.
pub struct RawTerminal(Option<nix::sys::termios::Termios>);

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

pub fn terminal_size() -> Option<(u16, u16)> {
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

pub async fn shell(
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
