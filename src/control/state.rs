//! What the control API knows about this roost: boot phases, the workload, the broker and
//! the proxy. The workload's part is a projection folded from the supervisor's events
//! ([`ControlState::fold`]); the rest is written by the boot sequence. Commands go the other
//! way, through the [`SupervisorHandle`] kept here.

use super::protocol::ExitCode;
use crate::supervisor::events::{Event, ServiceView};
use crate::supervisor::handle::SupervisorHandle;
use crate::workload::WorkloadSpec;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::watch;

/// A clone's identity as its mode read it and applied it to the machine.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub machine_id: Option<String>,
    pub hostname: Option<String>,
    /// The clone's own macaroon, for every platform request from now on.
    pub credentials: Option<roost_platform::Credentials>,
}

/// Reads and applies a clone's identity (VM mode: lift the MMDS block, read the clone's
/// document, set the host name and /etc/hosts, block MMDS again).
#[derive(Clone)]
pub struct Reidentify(pub Arc<dyn Fn() -> IdentityFuture + Send + Sync>);

/// What [`Reidentify`] returns.
pub type IdentityFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<NewIdentity, String>> + Send>>;

impl std::fmt::Debug for Reidentify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reidentify")
    }
}

/// A service as the boot resolved it.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub spec: WorkloadSpec,
    /// A `kind: container` service: an exec goes inside it or nowhere.
    pub container: bool,
    /// What runs before a snapshot and after a restore.
    pub snapshot: crate::config::typed::SnapshotHooks,
    /// The services it depends on (indices into the service list).
    pub depends_on: Vec<usize>,
}

/// Where the workload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadState {
    Starting,
    Running { pid: i32 },
    Exited(ExitCode),
}

/// One boot phase and when it ended, in ms since roost started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub at_ms: f64,
}

#[derive(Debug, Default)]
struct Inner {
    phases: Vec<Phase>,
    spec: Option<WorkloadSpec>,
    broker: Option<broker::BrokerStatus>,
    proxy: Option<Arc<api_proxy::ProxyStats>>,
    bootstrapped: bool,
    config_source: &'static str,
    dialect: roost_control_protocol::Dialect,
    /// The services' states (None until the supervisor publishes them).
    services: Option<Vec<ServiceView>>,
    service_specs: Vec<ServiceSpec>,
    /// Every broker's tokens (of every service), and the one "fetch them all now".
    tokens: Vec<broker::BrokerStatus>,
    token_refresh: Option<broker::RefreshAll>,
    /// Each service's snapshot hooks that have run: the last run of each.
    hook_runs: std::collections::BTreeMap<String, Vec<roost_control_protocol::HookRun>>,
    /// The platform (its one pool and its credentials, the proxy's and the brokers').
    platform: Option<roost_platform::Platform>,
    /// How a clone takes its own identity (VM mode: from MMDS).
    reidentify: Option<Reidentify>,
    /// Whether a restore noticed without the host's call takes it too (`Mmds.OnRestore`).
    reidentify_unannounced: bool,
    /// The exit report, once the exit code is decided.
    exit_report: Option<roost_control_protocol::ExitReport>,
}

/// Shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlState {
    started: Instant,
    mode: &'static str,
    pid1: bool,
    supervisor: SupervisorHandle,
    workload: watch::Sender<WorkloadState>,
    inner: Arc<Mutex<Inner>>,
    /// The snapshot cycle (its calls hold it only between their steps).
    snapshot: Arc<Mutex<crate::snapshot::Book>>,
    /// How many `READY=1`s each service has sent (as the supervisor's events count them):
    /// a `notify` hook waits for the next one.
    notifies: watch::Sender<std::collections::BTreeMap<Arc<str>, u64>>,
    /// The open vsock connections, followed for a reset of them all (a restore).
    vsock: Arc<Mutex<crate::snapshot::vsock_reset::Connections>>,
}

impl ControlState {
    pub fn new(
        started: Instant,
        mode: &'static str,
        pid1: bool,
        supervisor: SupervisorHandle,
    ) -> Self {
        ControlState {
            started,
            mode,
            pid1,
            supervisor,
            workload: watch::Sender::new(WorkloadState::Starting),
            inner: Arc::new(Mutex::new(Inner::default())),
            snapshot: Arc::default(),
            notifies: watch::Sender::new(std::collections::BTreeMap::new()),
            vsock: Arc::default(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records the end of a boot phase, and logs it with its duration (`phase=`, `at_ms=`,
    /// `duration_ms=`).
    pub fn phase(&self, name: &'static str) {
        let at_ms = self.started.elapsed().as_secs_f64() * 1e3;
        let since = self.with(|i| {
            let previous = i.phases.last().map_or(0.0, |p| p.at_ms);
            i.phases.push(Phase { name, at_ms });
            previous
        });
        let round = |ms: f64| (ms * 10.0).round() / 10.0;
        tracing::info!(
            phase = name,
            at_ms = round(at_ms),
            duration_ms = round(at_ms - since),
            "boot phase {name} done"
        );
    }

    pub fn set_spec(&self, spec: &WorkloadSpec) {
        self.with(|i| i.spec = Some(spec.clone()));
    }

    pub fn spec(&self) -> Option<WorkloadSpec> {
        self.with(|i| i.spec.clone())
    }

    pub fn set_broker(&self, status: Option<broker::BrokerStatus>) {
        self.with(|i| i.broker = status);
    }

    /// One more broker's tokens, refreshed with the others after a restore.
    pub fn add_tokens(&self, status: broker::BrokerStatus) {
        self.with(|i| i.tokens.push(status));
    }

    pub fn set_platform(&self, platform: Option<roost_platform::Platform>) {
        self.with(|i| i.platform = platform);
    }

    /// Drops every pooled platform connection; whether there was a pool.
    pub fn drop_upstream_connections(&self) -> bool {
        let platform = self.with(|i| i.platform.clone());
        platform.map(|p| p.upstream().drop_connections()).is_some()
    }

    /// How a clone takes its identity; `unannounced`: also on a restore noticed without the
    /// host's call.
    pub fn set_reidentify(&self, reidentify: Reidentify, unannounced: bool) {
        self.with(|i| {
            i.reidentify = Some(reidentify);
            i.reidentify_unannounced = unannounced;
        });
    }

    /// Whether a restore noticed without the host's call re-reads the identity.
    pub fn reidentifies_unannounced(&self) -> bool {
        self.with(|i| i.reidentify.is_some() && i.reidentify_unannounced)
    }

    /// A clone's new identity, read and applied by the mode (None: this mode has none to
    /// read); the platform's credentials are replaced with the new ones.
    pub async fn take_new_identity(&self) -> Option<Result<NewIdentity, String>> {
        let (reidentify, platform) = self.with(|i| (i.reidentify.clone(), i.platform.clone()));
        let result = (reidentify?.0)().await;
        if let (Ok(identity), Some(platform)) = (&result, platform) {
            if let Some(credentials) = &identity.credentials {
                platform.replace_credentials(credentials.clone());
            }
        }
        Some(result)
    }

    pub fn set_token_refresh(&self, refresh: broker::RefreshAll) {
        self.with(|i| i.token_refresh = Some(refresh));
    }

    /// Tells every broker to fetch every token now, and waits (at most `bound`) until each
    /// has a token newer than the call: how many were refreshed.
    pub async fn refresh_all_tokens(&self, bound: std::time::Duration) -> u32 {
        let (tokens, refresh) = self.with(|i| (i.tokens.clone(), i.token_refresh.clone()));
        let Some(refresh) = refresh else { return 0 };
        let before: Vec<Vec<u64>> = tokens
            .iter()
            .map(|t| t.snapshot().iter().map(|s| s.refreshes).collect())
            .collect();
        refresh.now();
        let fresh = || -> u32 {
            let mut n = 0;
            for (status, was) in tokens.iter().zip(&before) {
                for (token, was) in status.snapshot().iter().zip(was) {
                    if token.refreshes > *was {
                        n += 1;
                    }
                }
            }
            n
        };
        let all: usize = before.iter().map(Vec::len).sum();
        let deadline = tokio::time::Instant::now() + bound;
        while (fresh() as usize) < all && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        fresh()
    }

    pub fn set_proxy(&self, stats: Option<Arc<api_proxy::ProxyStats>>) {
        self.with(|i| i.proxy = stats);
    }

    pub fn set_config_source(&self, source: &'static str, bootstrapped: bool) {
        self.with(|i| {
            i.config_source = source;
            i.bootstrapped = bootstrapped;
        });
    }

    /// The host driver's dialect, once the config is known (pigeon's until then).
    pub fn set_dialect(&self, dialect: roost_control_protocol::Dialect) {
        self.with(|i| i.dialect = dialect);
    }

    pub fn dialect(&self) -> roost_control_protocol::Dialect {
        self.with(|i| i.dialect)
    }

    /// Where the control API's commands go.
    pub fn supervisor(&self) -> &SupervisorHandle {
        &self.supervisor
    }

    /// Folds one of the supervisor's events into the projection. The workload is the
    /// machine: running from its first service's start, exited once its exit code is
    /// decided (a service's own exit is in that service's view).
    pub fn fold(&self, event: &Event) {
        match event {
            Event::Started { pid, .. } => {
                if self.workload() == WorkloadState::Starting {
                    self.workload
                        .send_replace(WorkloadState::Running { pid: *pid });
                }
            }
            Event::ServiceChanged(view) => self.with(|i| {
                let services = i.services.get_or_insert_with(Vec::new);
                match services.iter_mut().find(|s| s.name == view.name) {
                    Some(known) => *known = view.clone(),
                    None => services.push(view.clone()),
                }
            }),
            Event::Decided {
                code,
                oom_killed,
                service,
                reason,
            } => {
                self.record_exit(roost_control_protocol::ExitReport {
                    code: *code,
                    oom_killed: *oom_killed,
                    decided_by: service
                        .as_ref()
                        .map(|service| roost_control_protocol::DecidedBy {
                            service: service.to_string(),
                            reason: reason.to_string(),
                        }),
                });
            }
            Event::Notified { service } => self.notifies.send_modify(|counts| {
                let n = counts.entry(service.clone()).or_insert(0);
                *n = n.saturating_add(1);
            }),
            // The API shows a stopping service as running until it exits.
            Event::Stopping { .. } | Event::Exited { .. } => {}
        }
    }

    /// Records roost's final exit report (which may differ from the workload's own exit: a
    /// critical failure is 70, a boot that never started the workload has no exit).
    /// The exit report: `/v1/exit_code` answers its code part from now on, `/v2/status` all
    /// of it.
    pub fn record_exit(&self, report: roost_control_protocol::ExitReport) {
        let code = report.exit_code();
        self.with(|i| i.exit_report = Some(report));
        self.workload.send_replace(WorkloadState::Exited(code));
    }

    pub fn workload(&self) -> WorkloadState {
        *self.workload.borrow()
    }

    /// How many `READY=1`s `service` has sent so far.
    pub fn notify_count(&self, service: &str) -> u64 {
        self.notifies.borrow().get(service).copied().unwrap_or(0)
    }

    /// Waits until `service` has sent more `READY=1`s than `seen`; false when `bound` passed
    /// first.
    pub async fn wait_notified_after(
        &self,
        service: &str,
        seen: u64,
        bound: std::time::Duration,
    ) -> bool {
        let mut counts = self.notifies.subscribe();
        let passed = tokio::time::timeout(
            bound,
            counts.wait_for(|c| c.get(service).copied().unwrap_or(0) > seen),
        )
        .await;
        matches!(passed, Ok(Ok(_)))
    }

    pub fn watch_workload(&self) -> watch::Receiver<WorkloadState> {
        self.workload.subscribe()
    }

    /// Each service's state (`None` before the supervisor publishes them).
    pub fn services(&self) -> Option<Vec<ServiceView>> {
        self.with(|i| i.services.clone())
    }

    /// What each service runs as the boot resolved it, for execs while the supervisor does
    /// not run the services (during the boot, after the machine's end).
    pub fn set_service_specs(&self, specs: Vec<ServiceSpec>) {
        self.with(|i| i.service_specs = specs);
    }

    pub fn service_spec(&self, name: &str) -> Option<ServiceSpec> {
        self.with(|i| i.service_specs.iter().find(|s| s.name == name).cloned())
    }

    /// The first service's name (whose user is the workload's).
    pub fn first_service_name(&self) -> Option<String> {
        self.with(|i| i.service_specs.first().map(|s| s.name.clone()))
    }

    /// Whether the first service (whose user is the workload's) is a container.
    pub fn first_is_container(&self) -> bool {
        self.with(|i| i.service_specs.first().is_some_and(|s| s.container))
    }

    /// `GET /v2/status`: `{"ok": true}` and roost's additions.
    pub fn status(&self) -> roost_control_protocol::Status {
        use roost_control_protocol as protocol;
        let workload = match self.workload() {
            WorkloadState::Starting => protocol::WorkloadStatus {
                state: "starting".into(),
                pid: None,
                exit: None,
            },
            WorkloadState::Running { pid } => protocol::WorkloadStatus {
                state: "running".into(),
                pid: Some(pid),
                exit: None,
            },
            WorkloadState::Exited(exit) => protocol::WorkloadStatus {
                state: "exited".into(),
                pid: None,
                exit: Some(
                    self.with(|i| i.exit_report.clone())
                        .unwrap_or(protocol::ExitReport {
                            code: exit.code,
                            oom_killed: exit.oom_killed,
                            decided_by: None,
                        }),
                ),
            },
        };
        self.with(|i| protocol::Status {
            ok: true,
            version: env!("CARGO_PKG_VERSION").into(),
            mode: self.mode.into(),
            pid1: self.pid1,
            uptime_ms: (self.started.elapsed().as_secs_f64() * 1e3).round(),
            config_source: i.config_source.into(),
            bootstrapped: i.bootstrapped,
            phases: i
                .phases
                .iter()
                .map(|p| protocol::Phase {
                    name: p.name.into(),
                    at_ms: p.at_ms,
                })
                .collect(),
            workload,
            broker: i.broker.as_ref().map(|b| b.snapshot()),
            proxy: i.proxy.as_ref().map(|p| {
                use std::sync::atomic::Ordering::Relaxed;
                protocol::ProxyCounters {
                    requests: p.requests.load(Relaxed),
                    forwarded: p.forwarded.load(Relaxed),
                    refused: p.refused.load(Relaxed),
                    upstream_errors: p.upstream_errors.load(Relaxed),
                    connections_dropped: p.connections_dropped.load(Relaxed),
                }
            }),
            log_lines_dropped: crate::logging::dropped_lines(),
            services: i.services.as_deref().map(|views| {
                views
                    .iter()
                    .map(|v| with_hooks(v.status(), &i.hook_runs))
                    .collect()
            }),
            snapshot: self.snapshot(|book| book.status()),
        })
    }

    /// Every service's status, with the snapshot hooks it ran.
    pub fn service_statuses(&self) -> Option<Vec<roost_control_protocol::ServiceStatus>> {
        self.with(|i| {
            i.services.as_deref().map(|views| {
                views
                    .iter()
                    .map(|v| with_hooks(v.status(), &i.hook_runs))
                    .collect()
            })
        })
    }

    /// Records the run of `service`'s `hook` (`before` or `after`).
    pub fn record_hook(&self, service: &str, run: roost_control_protocol::HookRun) {
        self.with(|i| {
            let runs = i.hook_runs.entry(service.to_string()).or_default();
            runs.retain(|r| r.hook != run.hook);
            runs.push(run);
        });
    }

    /// The snapshot cycle's book, for one step of a call.
    pub fn snapshot<R>(&self, f: impl FnOnce(&mut crate::snapshot::Book) -> R) -> R {
        f(&mut self.snapshot.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn vsock_connections<R>(
        &self,
        f: impl FnOnce(&mut crate::snapshot::vsock_reset::Connections) -> R,
    ) -> R {
        f(&mut self.vsock.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every service as the boot resolved it, in the config's order.
    pub fn service_specs(&self) -> Vec<ServiceSpec> {
        self.with(|i| i.service_specs.clone())
    }

    /// `VM` or container mode: whether roost owns the kernel (and may step its clock).
    pub fn owns_the_kernel(&self) -> bool {
        self.mode == "vm"
    }
}

fn with_hooks(
    mut status: roost_control_protocol::ServiceStatus,
    runs: &std::collections::BTreeMap<String, Vec<roost_control_protocol::HookRun>>,
) -> roost_control_protocol::ServiceStatus {
    if let Some(runs) = runs.get(&status.name) {
        status.snapshot_hooks = runs.clone();
    }
    status
}
