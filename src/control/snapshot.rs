//! `POST /v2/snapshot/prepare` and `POST /v2/snapshot/restored` (docs/snapshots.md): the
//! steps in their order, each timed, around the decisions of [`crate::snapshot`]. A bad body
//! or a generation going backwards is refused before any step, so it changes nothing; the
//! host's entropy is credited and dropped (zeroed) and appears in no log and no answer.

use super::server::{error, json, Body};
use super::state::{ControlState, ServiceSpec};
use crate::config::typed::{Hook, HookAction};
use crate::snapshot::{self, kernel, request, Call, Refusal, Restore};
use crate::supervisor::handle::ServiceOp;
use http::StatusCode;
use hyper::Response;
use roost_control_protocol::{ExecRequest, HookOutcome, PrepareAnswer, RestoredAnswer, StepTime};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a host's `restored` waits for a restore roost noticed by itself to end (its
/// steps are bounded: the token refresh by [`snapshot::TOKEN_REFRESH_BOUND`], each hook by
/// its timeout); then the call is refused as busy, as a second host call is.
const WAIT_FOR_NOTICED: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Times one step into `steps`.
async fn timed<T>(
    steps: &mut Vec<StepTime>,
    name: &str,
    f: impl std::future::Future<Output = T>,
) -> T {
    let t = Instant::now();
    let out = f.await;
    steps.push(StepTime {
        step: name.to_string(),
        duration_ms: ms(t.elapsed()),
    });
    out
}

fn refused(e: Refusal) -> Response<Body> {
    match e {
        Refusal::Busy(_) => error(StatusCode::CONFLICT, e.to_string()),
        Refusal::Backwards { .. } => error(StatusCode::BAD_REQUEST, e.to_string()),
        Refusal::SameRestore => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// Ends the running call in the book whatever becomes of it (a panic included), so one bad
/// call cannot leave every later one refused as busy.
struct EndsTheCall<'a>(&'a ControlState);

impl Drop for EndsTheCall<'_> {
    fn drop(&mut self) {
        self.0.snapshot(|b| b.abandon());
    }
}

/// Runs `call` as a task of its own: a host that hangs up (or a connection a restore cuts)
/// does not cancel a call half done; its end is recorded, and a repeat gets its answer.
pub async fn detached<F>(call: F) -> Response<Body>
where
    F: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    match tokio::spawn(call).await {
        Ok(resp) => resp,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the snapshot call failed: {e}"),
        ),
    }
}

pub async fn prepare(state: &ControlState, body: &[u8]) -> Response<Body> {
    let started = Instant::now();
    let req = match request::prepare(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    let generation = match state.snapshot(|b| b.begin_prepare()) {
        Ok(g) => g,
        Err(e) => return refused(e),
    };
    let _ends = EndsTheCall(state);
    let deadline = started + req.timeout;
    let mut steps = Vec::new();
    let hooks = timed(
        &mut steps,
        "hooks",
        run_hooks(state, Call::Prepare, generation, Some(deadline)),
    )
    .await;
    if let Some(failed) = hooks.iter().find(|h| h.outcome != "ok") {
        state.snapshot(|b| b.end_prepare(false));
        let message = format!(
            "{}'s before-snapshot hook did not succeed ({}): the machine is not prepared",
            failed.service, failed.outcome
        );
        tracing::warn!(service = %failed.service, "snapshot prepare refused: {message}");
        return json(
            StatusCode::CONFLICT,
            &serde_json::json!({ "error": message, "message": message, "hooks": hooks }),
        );
    }
    // Connections saved open would be dead, or worse half-alive, in every restored copy.
    timed(&mut steps, "upstream_pools", async {
        state.drop_upstream_connections()
    })
    .await;
    // What the services wrote reaches the disks before the memory is saved.
    let left = deadline.saturating_duration_since(Instant::now());
    let synced = timed(
        &mut steps,
        "sync",
        tokio::time::timeout(left, tokio::task::spawn_blocking(nix::unistd::sync)),
    )
    .await;
    if synced.is_err() {
        state.snapshot(|b| b.end_prepare(false));
        return error(
            StatusCode::CONFLICT,
            "the file systems did not sync within the timeout: the machine is not prepared",
        );
    }
    state.snapshot(|b| b.end_prepare(true));
    let answer = PrepareAnswer {
        generation,
        hooks,
        steps,
        duration_ms: ms(started.elapsed()),
    };
    tracing::info!(
        generation,
        duration_ms = answer.duration_ms,
        "snapshot prepared: the machine may be snapshotted"
    );
    json(StatusCode::OK, &answer)
}

pub async fn restored(state: &ControlState, body: &[u8]) -> Response<Body> {
    let received = Instant::now();
    let req = match request::restored(body, kernel::boot_unix_ns(&kernel::KernelClock)) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    // A restore roost noticed by itself (the kernel's VMGenID line, a vsock reset) may be
    // running when the host's call comes: the call waits for it, then does all of its own.
    let waiting_since = Instant::now();
    let generation = loop {
        match state.snapshot(|b| (b.begin_restore(req.generation), b.noticed_running())) {
            (Ok(Restore::New(g)), _) => break g,
            (Ok(Restore::Replay(answer)), _) => return json(StatusCode::OK, &answer),
            (Err(Refusal::Busy(_)), true) if waiting_since.elapsed() < WAIT_FOR_NOTICED => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (Err(e), _) => return refused(e),
        }
    };
    let _ends = EndsTheCall(state);
    let mut steps = Vec::new();
    // Fresh randomness first: nothing after it may use the snapshot's CRNG state.
    let entropy = req.entropy;
    let reseeded = timed(
        &mut steps,
        "entropy",
        tokio::task::spawn_blocking(move || kernel::reseed(entropy.bytes())),
    )
    .await;
    let reseeded = match reseeded {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!("restore: the host's entropy was not credited: {e}");
            false
        }
        Err(_) => false,
    };
    let (clock_step_ms, clock) = timed(&mut steps, "clock", async {
        if !state.owns_the_kernel() {
            return (
                None,
                "not stepped: in container mode the clock is the host's own".to_string(),
            );
        }
        match kernel::step_clock(
            &mut kernel::KernelClock,
            req.time_unix_ns,
            received.elapsed(),
        ) {
            Ok(step) => (Some((step * 1e3).round() / 1e3), "stepped".to_string()),
            Err(e) => {
                tracing::error!("restore: the wall clock was not stepped: {e}");
                (None, format!("not stepped: {e}"))
            }
        }
    })
    .await;
    // Pooled connections from before the snapshot are dead (or another machine's).
    timed(&mut steps, "upstream_pools", async {
        state.drop_upstream_connections()
    })
    .await;
    // A clone is a new machine: its own id, host name and macaroon, before any token is
    // fetched with them.
    let identity_changed = if req.clone {
        timed(&mut steps, "identity", async {
            match state.take_new_identity().await {
                Some(Ok(_)) => true,
                Some(Err(e)) => {
                    tracing::error!("restore: the clone kept the original's identity: {e}");
                    false
                }
                None => false,
            }
        })
        .await
    } else {
        false
    };
    // Tokens may have expired while the VM was saved: every broker fetches every token now,
    // and the answer waits for them (the token upstream is all it waits on).
    let tokens_refreshed = timed(
        &mut steps,
        "tokens",
        state.refresh_all_tokens(snapshot::TOKEN_REFRESH_BOUND),
    )
    .await;
    let hooks = timed(
        &mut steps,
        "hooks",
        run_hooks(state, Call::Restored, generation, None),
    )
    .await;
    let answer = RestoredAnswer {
        generation,
        clock_step_ms,
        clock,
        reseeded,
        identity_changed,
        tokens_refreshed,
        hooks,
        steps,
        duration_ms: ms(received.elapsed()),
        replayed: false,
    };
    let now_ms = u64::try_from(kernel::KernelClock.now_unix_ns() / 1_000_000).unwrap_or(0);
    state.snapshot(|b| b.end_restore(answer.clone(), now_ms));
    tracing::info!(
        generation,
        clone = req.clone,
        reseeded,
        clock_step_ms = ?answer.clock_step_ms,
        duration_ms = answer.duration_ms,
        "snapshot restored"
    );
    json(StatusCode::OK, &answer)
}

use kernel::WallClock;

/// Runs every service's hook for `call`, in its order, each within its own bound and the
/// call's `deadline`. A failed before-hook ends the round (the machine is not prepared); a
/// failed after-hook is reported and the others still run.
async fn run_hooks(
    state: &ControlState,
    call: Call,
    generation: u64,
    deadline: Option<Instant>,
) -> Vec<HookOutcome> {
    let services = state.service_specs();
    let deps: Vec<Vec<usize>> = services.iter().map(|s| s.depends_on.clone()).collect();
    let mut outcomes = Vec::new();
    for i in snapshot::hook_order(&deps, call) {
        let Some(service) = services.get(i) else {
            continue;
        };
        let hook = match call {
            Call::Prepare => &service.snapshot.before,
            Call::Restored => &service.snapshot.after,
        };
        let Some(hook) = hook else { continue };
        let bound = match deadline {
            Some(d) => hook
                .timeout
                .min(d.saturating_duration_since(Instant::now())),
            None => hook.timeout,
        };
        let outcome = run_hook(state, service, hook, bound).await;
        tracing::info!(
            service = %service.name,
            hook = %outcome.hook,
            outcome = %outcome.outcome,
            duration_ms = outcome.duration_ms,
            "snapshot {} hook of {}: {}",
            match call { Call::Prepare => "before", Call::Restored => "after" },
            service.name,
            outcome.outcome
        );
        state.record_hook(
            &service.name,
            roost_control_protocol::HookRun {
                hook: match call {
                    Call::Prepare => "before",
                    Call::Restored => "after",
                }
                .to_string(),
                outcome: outcome.outcome.clone(),
                generation,
            },
        );
        let failed = outcome.outcome != "ok";
        outcomes.push(outcome);
        if failed && call == Call::Prepare {
            break;
        }
    }
    outcomes
}

async fn run_hook(
    state: &ControlState,
    service: &ServiceSpec,
    hook: &Hook,
    bound: Duration,
) -> HookOutcome {
    let started = Instant::now();
    let (kind, outcome) = if bound.is_zero() {
        ("", "not run: the call's timeout was spent".to_string())
    } else {
        match &hook.action {
            HookAction::Exec(argv) => ("exec", exec_hook(state, &service.name, argv, bound).await),
            HookAction::Signal(signal) => (
                "signal",
                match state
                    .supervisor()
                    .service(&service.name, ServiceOp::Signal(signal.number()))
                    .await
                {
                    Ok(()) => "ok".to_string(),
                    Err(e) => e.to_string(),
                },
            ),
            HookAction::Notify(signal) => (
                "notify",
                notify_hook(state, &service.name, signal.number(), bound).await,
            ),
            HookAction::Http { port, path } => (
                "http",
                match tokio::time::timeout(bound, http_hook(*port, path)).await {
                    Ok(outcome) => outcome,
                    Err(_) => format!("timed out after {} s", bound.as_secs_f64()),
                },
            ),
        }
    };
    HookOutcome {
        service: service.name.clone(),
        hook: kind.to_string(),
        outcome,
        duration_ms: ms(started.elapsed()),
    }
}

/// The hook's command as the service (its user, env, directory and cgroup; inside it for a
/// container), through the same path as `/v1/exec`.
async fn exec_hook(
    state: &ControlState,
    service: &str,
    argv: &[String],
    bound: Duration,
) -> String {
    let req = ExecRequest {
        cmd: argv.to_vec(),
        timeout: Some(bound.as_secs_f64().max(0.001)),
        workload_user: false,
        max_output: Some(4096),
        output: None,
        container: Some(service.to_string()),
    };
    match super::exec::run(state, req).await {
        Ok(r) if r.timed_out => format!("timed out after {} s", bound.as_secs_f64()),
        Ok(r) => match (r.exit_code, r.exit_signal) {
            (Some(0), _) => "ok".to_string(),
            (Some(code), _) if code >= 0 => format!("exited {code}"),
            (_, Some(sig)) => format!("killed by signal {sig}"),
            _ => "ended without a status".to_string(),
        },
        Err(e) => format!("not started: {e}"),
    }
}

/// The signal, then the service's next `READY=1` on its `NOTIFY_SOCKET` within `bound`
/// (systemd's `Type=notify-reload` exchange: a daemon that reloads on SIGHUP and says
/// `RELOADING=1` ... `READY=1` takes this hook as it is).
async fn notify_hook(state: &ControlState, service: &str, signal: i32, bound: Duration) -> String {
    let seen = state.notify_count(service);
    if let Err(e) = state
        .supervisor()
        .service(service, ServiceOp::Signal(signal))
        .await
    {
        return e.to_string();
    }
    if state.wait_notified_after(service, seen, bound).await {
        "ok".to_string()
    } else {
        format!(
            "no READY=1 within {} s of signal {signal}",
            bound.as_secs_f64()
        )
    }
}

/// `POST PATH` to the service on 127.0.0.1:PORT; ok on a 2xx status line.
async fn http_hook(port: u16, path: &str) -> String {
    let mut stream = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) => return format!("cannot connect to 127.0.0.1:{port}: {e}"),
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\nUser-Agent: roost\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return format!("cannot send the request: {e}");
    }
    // The status line is all that is read, and at most 1 KiB of it.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return format!("no answer: {e}"),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(code) if (200..300).contains(&code) => "ok".to_string(),
        Some(code) => format!("answered {code}"),
        None => "no HTTP answer".to_string(),
    }
}

/// What roost does for a restore the host did not announce (see
/// [`super::restore_watch`]).
pub(super) async fn restore_without_the_host(state: &ControlState, noticed: snapshot::Noticed) {
    let started = Instant::now();
    let generation = match state.snapshot(|b| b.begin_detected(started)) {
        Ok(g) => g,
        // A host call is running: it does all this, and steps the clock too.
        Err(Refusal::Busy(_)) => return,
        Err(why) => {
            tracing::info!("{noticed}: not acted on ({why})");
            return;
        }
    };
    let _ends = EndsTheCall(state);
    // The kernel refuses (ENODATA) while its CRNG is not initialised yet, early in a boot.
    let reseed = match tokio::task::spawn_blocking(kernel::reseed_from_the_kernel).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let reseeded = reseed.is_ok();
    let reseed = reseed.map_or_else(
        |e| format!("CRNG NOT reseeded ({e})"),
        |()| "CRNG reseeded".to_string(),
    );
    state.drop_upstream_connections();
    // `Mmds.OnRestore: "reread"`: this may be a clone, and MMDS says whose identity it has
    // (the same one again for a plain resume).
    let identity = if state.reidentifies_unannounced() {
        match state.take_new_identity().await {
            Some(Ok(_)) => "identity read again from MMDS",
            Some(Err(e)) => {
                tracing::error!("restore: the identity could not be read again: {e}");
                "identity NOT read again (see the error above)"
            }
            None => "identity kept",
        }
    } else {
        "identity kept"
    };
    let tokens = state
        .refresh_all_tokens(snapshot::TOKEN_REFRESH_BOUND)
        .await;
    let hooks = run_hooks(state, Call::Restored, generation, None).await;
    let now_ms = u64::try_from(kernel::KernelClock.now_unix_ns() / 1_000_000).unwrap_or(0);
    state.snapshot(|b| b.end_detected(now_ms));
    tracing::warn!(
        reseeded,
        tokens_refreshed = tokens,
        hooks = hooks.len(),
        duration_ms = ms(started.elapsed()),
        "a restore was noticed without the host's call ({noticed}): {reseed}, connections dropped, {identity}, tokens fetched anew, after-hooks run; the wall clock was NOT stepped and is behind by the time the VM spent saved until the host calls /v2/snapshot/restored"
    );
}
