//! The broker at run time: one refresher task per token, started before the workload and
//! running for its whole life.

use crate::jwt::{token_from_answer, usable_claims, Claims};
use crate::plan::{Plan, TokenPlan};
use crate::schedule::{backoff, jitter, refresh_delay_for, window_kept};
use crate::token_file::TokenFile;
use roost_platform::Platform;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The platform's token endpoint.
pub const TOKEN_PATH: &str = "/v1/tokens/oidc";
/// Largest token answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// Who the files belong to, and how long the boot may wait for them.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    pub boot_wait: Duration,
    pub uid: u32,
    pub gid: u32,
    /// 0440 with the workload's gid instead of 0400.
    pub group_readable: bool,
    /// Each change is "fetch every token now" (after a VM restore); see [`RefreshAll`].
    pub refresh_now: tokio::sync::watch::Receiver<u64>,
}

/// "Fetch every token now", to every refresher of every broker at once: after a restore the
/// tokens on disk may have expired while the VM was saved.
#[derive(Debug, Clone)]
pub struct RefreshAll(Arc<tokio::sync::watch::Sender<u64>>);

impl Default for RefreshAll {
    fn default() -> Self {
        RefreshAll(Arc::new(tokio::sync::watch::Sender::new(0)))
    }
}

impl RefreshAll {
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }

    /// Tells every refresher to fetch now.
    pub fn now(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// How often a refresher that waits looks at the wall clock: a suspended VM's monotonic
/// clock stands still while it is saved, so a wait measured on it alone would sleep past the
/// token's expiry after a long suspend.
const WALL_CLOCK_CHECK: Duration = Duration::from_secs(15);

/// Waits `delay`: until the wall clock has moved on by it (checked at least every
/// [`WALL_CLOCK_CHECK`]: a suspend stops the monotonic clock, not the wall clock) or the
/// monotonic clock has (a wall clock stepped back cannot stretch the wait), whichever comes
/// first, or until a "fetch now" comes.
async fn wait_for(delay: Duration, refresh_now: &mut tokio::sync::watch::Receiver<u64>) {
    let until_ms =
        unix_now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    let started = tokio::time::Instant::now();
    loop {
        let now = unix_now_ms();
        if now >= until_ms || started.elapsed() >= delay {
            return;
        }
        let left = Duration::from_millis(until_ms - now)
            .min(delay.saturating_sub(started.elapsed()))
            .min(WALL_CLOCK_CHECK);
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            changed = refresh_now.changed() => {
                if changed.is_ok() {
                    return;
                }
                // Nobody can ask any more: the wall clock alone decides.
                tokio::time::sleep(left).await;
            }
        }
    }
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the control API reports about one token: the control protocol's own type, so the
/// status the broker keeps is the status `/v2/status` answers.
pub use roost_control_protocol::TokenStatus;

/// Shared, live status of every token.
#[derive(Debug, Clone, Default)]
pub struct BrokerStatus(Arc<Mutex<Vec<TokenStatus>>>);

impl BrokerStatus {
    pub fn snapshot(&self) -> Vec<TokenStatus> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut TokenStatus)) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = all.get_mut(index) {
            f(status);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why one token fetch failed (the refresher keeps the last token and retries).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Platform(#[from] roost_platform::ClientError),
    #[error("the platform answered {status}: {snippet}")]
    Refused { status: u16, snippet: String },
    #[error(transparent)]
    Token(#[from] crate::jwt::JwtError),
    #[error(transparent)]
    Write(#[from] crate::token_file::WriteError),
}

/// Fetches one token for `audience` and writes it. The file is only touched with a token
/// that parses as a JWT and is still valid.
async fn fetch_once(
    client: &Platform,
    audience: &str,
    file: &TokenFile,
) -> Result<Claims, FetchError> {
    let answer = client
        .post_json(
            TOKEN_PATH,
            &serde_json::json!({ "aud": audience }),
            MAX_ANSWER,
        )
        .await?;
    if answer.status != 200 {
        let snippet: String = String::from_utf8_lossy(&answer.body)
            .chars()
            .take(200)
            .collect();
        return Err(FetchError::Refused {
            status: answer.status,
            snippet,
        });
    }
    let token = token_from_answer(&answer.body)?;
    let claims = usable_claims(&token, unix_now())?;
    // Written on the event loop, not in tokio's blocking pool: a pool that needs a new
    // thread when a hostile workload holds every pid panics instead of failing. The write
    // is a few KiB and one fsync.
    file.write(token.as_bytes())?;
    Ok(claims)
}

/// Keeps one token fresh forever. `first` is told of the first token written.
async fn keep_fresh(
    client: Arc<Platform>,
    token: TokenPlan,
    file: TokenFile,
    status: BrokerStatus,
    index: usize,
    mut first: Option<oneshot::Sender<()>>,
    mut refresh_now: tokio::sync::watch::Receiver<u64>,
) {
    refresh_now.mark_unchanged();
    let cloud = token.cloud.name();
    let min_validity = token.cloud.min_validity();
    let mut failures: u32 = 0;
    let mut warned = false;
    loop {
        match fetch_once(&client, &token.audience, &file).await {
            Ok(claims) => {
                let now = unix_now();
                let remaining = Duration::from_secs(claims.exp.saturating_sub(now));
                let lifetime =
                    Duration::from_secs(claims.exp.saturating_sub(claims.iat.unwrap_or(now)));
                let warning = (!window_kept(lifetime.max(remaining), min_validity)).then(|| {
                    format!(
                        "the platform's {cloud} tokens live {} s, but {cloud} SDKs need the file valid {} s beyond any read: they may present an expired token",
                        lifetime.max(remaining).as_secs(),
                        min_validity.as_secs()
                    )
                });
                if let (Some(w), false) = (&warning, warned) {
                    tracing::warn!("{w}");
                    warned = true;
                }
                status.update(index, |s| {
                    s.expires_at = Some(claims.exp);
                    s.last_refresh = Some(now);
                    s.last_error = None;
                    s.refreshes += 1;
                    s.warning = warning;
                });
                if failures > 0 {
                    tracing::info!(
                        "{cloud} OIDC token refreshed after {failures} failed attempt(s); valid for {} s",
                        remaining.as_secs()
                    );
                } else {
                    tracing::info!(
                        "{cloud} OIDC token written to {}; valid for {} s",
                        file.path.display(),
                        remaining.as_secs()
                    );
                }
                failures = 0;
                if let Some(tx) = first.take() {
                    let _ = tx.send(());
                }
                let delay = refresh_delay_for(remaining, min_validity, jitter());
                wait_for(delay, &mut refresh_now).await;
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                status.update(index, |s| {
                    s.last_error = Some(err.to_string());
                    s.failures += 1;
                });
                // One warning per streak of failures, not one per retry.
                if failures == 1 {
                    tracing::warn!(
                        "{cloud} OIDC token refresh failed: {err}; keeping the last token and retrying with backoff"
                    );
                } else {
                    tracing::debug!("{cloud} OIDC token refresh failed again ({failures}): {err}");
                }
                wait_for(backoff(failures, jitter()), &mut refresh_now).await;
            }
        }
    }
}

/// Runs `make()`'s future, and starts it again (after a backoff) whenever it dies of a panic:
/// a refresher that dies for good would leave the workload with a token that expires.
/// `died` hears of each death. Returns only if the future returns.
pub async fn restarting<F, Fut>(name: &str, mut make: F, mut died: impl FnMut(String))
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut deaths: u32 = 0;
    loop {
        match tokio::spawn(make()).await {
            Ok(()) => return,
            Err(err) => {
                deaths = deaths.saturating_add(1);
                let why = if err.is_panic() {
                    "panicked"
                } else {
                    "was cancelled"
                };
                tracing::error!("the {name} refresher {why}; restarting it");
                died(format!("the refresher {why}"));
                tokio::time::sleep(backoff(deaths, jitter())).await;
            }
        }
    }
}

/// Writes the plan's fixed files, starts a refresher for each token (through `spawn`, which
/// the caller watches), and waits up to `boot_wait` for every first token. Returns the live
/// status and whether every token is in place; the refreshers go on either way.
pub async fn start(
    client: Platform,
    plan: &Plan,
    opts: &BrokerOptions,
    spawn: &dyn Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
) -> (BrokerStatus, bool) {
    let mode = if opts.group_readable { 0o440 } else { 0o400 };
    let file_for =
        |path: &std::path::Path| TokenFile::new(path.to_path_buf(), opts.uid, opts.gid, mode);
    for (path, content) in &plan.files {
        if let Err(err) = file_for(path).write(content.as_bytes()) {
            tracing::error!("cannot write {}: {err}", path.display());
        }
    }

    let status = BrokerStatus(Arc::new(Mutex::new(
        plan.tokens
            .iter()
            .map(|t| TokenStatus {
                cloud: t.cloud.name().to_string(),
                path: t.path.display().to_string(),
                audience: t.audience.clone(),
                ..TokenStatus::default()
            })
            .collect(),
    )));
    let client = Arc::new(client);
    let mut firsts = Vec::new();
    for (index, token) in plan.tokens.iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        firsts.push(rx);
        let mut first = Some(tx);
        let (client, token, file, status) = (
            client.clone(),
            token.clone(),
            file_for(&token.path),
            status.clone(),
        );
        let died_status = status.clone();
        let refresh_now = opts.refresh_now.clone();
        spawn(Box::pin(async move {
            let name = token.cloud.name();
            restarting(
                name,
                move || {
                    keep_fresh(
                        client.clone(),
                        token.clone(),
                        file.clone(),
                        status.clone(),
                        index,
                        first.take(),
                        refresh_now.clone(),
                    )
                },
                move |why| {
                    died_status.update(index, |s| {
                        s.last_error = Some(why);
                        s.restarts += 1;
                    })
                },
            )
            .await
        }));
    }
    let all_first = async {
        for rx in firsts {
            let _ = rx.await;
        }
    };
    let ready = tokio::time::timeout(opts.boot_wait, all_first)
        .await
        .is_ok();
    (status, ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_fetch_now_cuts_a_long_wait_short() {
        let refresh = RefreshAll::default();
        let mut rx = refresh.subscribe();
        let waiting =
            tokio::spawn(async move { wait_for(Duration::from_secs(3600), &mut rx).await });
        refresh.now();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the wait ended at the fetch-now")
            .expect("joined");
    }

    #[tokio::test]
    async fn a_wait_ends_when_its_time_has_passed() {
        let refresh = RefreshAll::default();
        let mut rx = refresh.subscribe();
        let t = std::time::Instant::now();
        wait_for(Duration::from_millis(50), &mut rx).await;
        assert!(t.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresher_that_panics_is_restarted_and_its_death_reported() {
        let runs = Arc::new(AtomicU32::new(0));
        let deaths = Arc::new(Mutex::new(Vec::new()));
        let (r, d) = (runs.clone(), deaths.clone());
        restarting(
            "test",
            move || {
                let n = r.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        #[allow(clippy::panic)]
                        {
                            panic!("injected");
                        }
                    }
                }
            },
            move |why| d.lock().unwrap_or_else(PoisonError::into_inner).push(why),
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let deaths = deaths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(deaths, ["the refresher panicked", "the refresher panicked"]);
    }
}
