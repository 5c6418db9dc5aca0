//! The one boot sequence of both modes, from the supervisor's start to the teardown:
//!
//! 1. supervision: subreaper (when not PID 1), non-dumpable, signal handlers, the reaper;
//! 2. the control API, so a host can follow the rest;
//! 3. the config (a stop or a critical failure while it is awaited ends the boot);
//! 4. the mode's own preparation (in a VM: root, mounts, rlimits, /etc, network);
//! 5. the services: the `/.fly/api` proxy, the broker's first tokens, the workload, supervised
//!    to its end;
//! 6. the report ([`crate::exit`]): control state, console line, push to the host;
//! 7. the linger (the control API stays up for the exit code), then the control API closes;
//! 8. the mode's teardown (in a VM: volumes unmounted, `/` read-only).
//!
//! Each mode ([`crate::vm`], [`crate::container_mode`]) supplies only what is its own, through
//! [`Mode`]. Every step that fails becomes a [`BootFailure`], logged once, reported with its
//! code; nothing ends roost without the report.

use crate::config::typed::Service;
use crate::config::Validated;
use crate::control::report::{self, ReportTarget};
use crate::control::{ControlServer, ControlState};
use crate::exit::{self, BootFailure, Report};
use crate::process::procs::InitMode;
use crate::supervisor::{CriticalTasks, Outcome, Supervisor};
use crate::workload::WorkloadSpec;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a mode supplies to the one sequence.
#[allow(async_fn_in_trait)] // Used with concrete types only, inside this crate.
pub trait Mode {
    /// `vm` or `container`: in `/v2/status` and the logs.
    const NAME: &'static str;

    /// Whether SIGINT is a graceful stop (a VM's Ctrl-Alt-Del) rather than a signal to forward.
    fn sigint_stops(&self) -> bool {
        false
    }

    /// The control API listeners that come up before the config (a mode whose host follows
    /// the boot records a `control_api` phase). A listener that cannot start is logged; the
    /// boot goes on without it.
    fn early_control(&self, state: &ControlState, critical: &CriticalTasks) -> Vec<ControlServer>;

    /// Finds, parses and validates the config.
    async fn load_config(&mut self, state: &ControlState) -> Result<Validated, BootFailure>;

    /// What the config asks of the control API (in a VM: `AllowCids`, another port).
    fn configure_control(
        &self,
        _config: &Validated,
        _state: &ControlState,
        _critical: &CriticalTasks,
        _servers: &mut Vec<ControlServer>,
    ) {
    }

    /// The mode's own preparation between the config and the services.
    async fn prepare(
        &mut self,
        config: &Validated,
        state: &ControlState,
    ) -> Result<(), BootFailure>;

    /// Just before the services start, with every service resolved, on both paths (the
    /// single workload and `Containers`): a VM mounts its volumes, owned by `owner`.
    fn before_services(
        &mut self,
        _config: &Validated,
        _owner: &crate::workload::Identity,
        _state: &ControlState,
    ) {
    }

    /// Where the exit report is pushed, if anywhere.
    fn report_target(&self, config: &Validated) -> Option<ReportTarget>;

    /// The mode's own teardown after the control API has closed.
    async fn teardown(self);
}

/// Runs the whole sequence on a current-thread runtime and returns roost's exit code. A panic
/// that ends the main path itself is an internal failure with its console line (70).
pub fn run_to_end<M: Mode>(mode: M, started: Instant) -> i32 {
    install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            exit::print_console(&exit::report_of_code(exit::INTERNAL));
            return exit::INTERNAL;
        }
    };
    main_path(|| runtime.block_on(sequence(mode, started))).unwrap_or(exit::INTERNAL)
}

async fn sequence<M: Mode>(mut mode: M, started: Instant) -> i32 {
    let (mut supervisor, state) = match start_supervision(started, M::NAME) {
        Ok(pair) => pair,
        Err(failure) => {
            failure.log();
            let report = exit::report_of_code(failure.code());
            exit::print_console(&report);
            mode.teardown().await;
            return report.code;
        }
    };
    if mode.sigint_stops() {
        supervisor.stop_on_sigint();
    }
    let mut control = mode.early_control(&state, supervisor.critical());

    let (outcome, config) =
        boot_and_supervise(&mut mode, &mut supervisor, &state, &mut control).await;
    let report = outcome.report();
    let target = config.as_ref().and_then(|c| mode.report_target(c));
    let machine_id = config.as_ref().and_then(|c| c.machine.id.as_deref());
    publish(&state, &report, target, machine_id).await;

    let linger = config
        .as_ref()
        .map_or(crate::config::typed::defaults::LINGER, |c| c.control.linger);
    close_control(control, linger, &mut supervisor).await;
    mode.teardown().await;
    report.code
}

/// Steps 3 to 5. The config comes back with the outcome whenever it was loaded, for the report
/// and the linger.
async fn boot_and_supervise<M: Mode>(
    mode: &mut M,
    supervisor: &mut Supervisor,
    state: &ControlState,
    control: &mut Vec<ControlServer>,
) -> (Outcome, Option<Validated>) {
    let config = match supervisor.during_boot(mode.load_config(state)).await {
        Ok(Ok(config)) => config,
        Ok(Err(failure)) => return (ended_boot(supervisor, &failure), None),
        Err(interrupted) => return (ended_boot(supervisor, &interrupted.into()), None),
    };
    state.phase("config");
    state.set_dialect(config.control.dialect);
    mode.configure_control(&config, state, supervisor.critical(), control);
    if let Err(failure) = mode.prepare(&config, state).await {
        return (ended_boot(supervisor, &failure), Some(config));
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // One road: a config without `Containers` is a machine of one service (the single
    // workload), run by the same supervisor as several.
    let outcome = run_services(&config, mode, supervisor, state).await;
    (outcome, Some(config))
}

/// Step 1. Subreaper (when not PID 1), non-dumpable, signal handlers and the reaper, the state.
fn start_supervision(
    started: Instant,
    mode_name: &'static str,
) -> Result<(Supervisor, ControlState), BootFailure> {
    let mode = InitMode::detect();
    if mode == InitMode::Subreaper {
        if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("cannot become a child subreaper: {err}; orphans will not be reaped");
        }
    }
    // Keep secrets (the macaroon) out of core dumps and ptrace by same-uid processes.
    if let Err(err) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!("cannot mark roost non-dumpable: {err}");
    }
    let supervisor = Supervisor::start(mode)
        .map_err(|err| BootFailure::Internal(format!("cannot install signal handlers: {err}")))?;
    let mut supervisor = supervisor;
    let state = ControlState::new(
        started,
        mode_name,
        mode == InitMode::Pid1,
        supervisor.handle(),
    );
    // The control API's view of the workload is folded from the supervisor's events.
    let projection = state.clone();
    supervisor.listen(std::sync::Arc::new(move |event| projection.fold(event)));
    state.phase("signals");
    Ok((supervisor, state))
}

/// Resolves what `service` runs against the root at `root`.
fn resolve(service: &Service, root: &Path) -> Result<WorkloadSpec, BootFailure> {
    let spec = WorkloadSpec::resolve(service, root)
        .map_err(|err| BootFailure::Config(format!("cannot resolve the workload: {err}")))?;
    for warning in &spec.warnings {
        tracing::warn!("{warning}");
    }
    Ok(spec)
}

/// Step 5: the images, the services resolved, the machine's volumes, the proxy, a broker per
/// service whose env asks for a cloud role, then the services to the machine's end.
async fn run_services<M: Mode>(
    config: &Validated,
    mode: &mut M,
    supervisor: &mut Supervisor,
    state: &ControlState,
) -> Outcome {
    // Images mounted before anything resolves: a container's user and groups come from
    // its image's own /etc/passwd and /etc/group.
    let containers = match crate::containers::ContainerHost::prepare(config) {
        Ok(host) => host,
        Err(err) => {
            let failure = BootFailure::Config(format!("containers: {err}"));
            return ended_boot(supervisor, &failure);
        }
    };
    let mut specs = Vec::with_capacity(config.services.len());
    for (i, service) in config.services.iter().enumerate() {
        let root = containers
            .as_ref()
            .and_then(|host| host.image_root(i))
            .unwrap_or(Path::new("/"));
        match resolve(service, root) {
            Ok(spec) => specs.push(spec),
            Err(failure) => {
                let failure = BootFailure::Config(format!("service {:?}: {failure}", service.name));
                return ended_boot(supervisor, &failure);
            }
        }
    }
    // No service may read another's cloud token: refused before anything starts.
    if let Err(refusal) = crate::credentials::check_isolation(config, &specs) {
        return ended_boot(supervisor, &BootFailure::Config(refusal));
    }
    // The machine's volumes, on this path as on the single workload's: owned by the first
    // service's user, as the single workload owns them (the others reach them by mode).
    let owner = specs
        .first()
        .map_or_else(crate::workload::Identity::root, |s| s.identity.clone());
    mode.before_services(config, &owner, state);
    let token_dirs = match crate::credentials::start(config, supervisor, state, &mut specs).await {
        Ok(dirs) => dirs,
        Err(interrupted) => return ended_boot(supervisor, &interrupted.into()),
    };
    state.phase("oidc");
    if let Some(first) = specs.first() {
        state.set_spec(first);
    }
    state.set_service_specs(
        config
            .services
            .iter()
            .zip(specs.iter().cloned())
            .map(|(s, spec)| crate::control::state::ServiceSpec {
                name: s.name.clone(),
                spec,
                container: s.container.is_some(),
                snapshot: s.snapshot.clone(),
                depends_on: s.depends_on.iter().map(|d| d.on).collect(),
            })
            .collect(),
    );
    state.phase("workload_start");
    let run = crate::supervisor::run_loop::ServicesRun {
        services: &config.services,
        specs,
        volumes: &config.volumes,
        // Container mode on a shared host can move it (ROOST_VOLUME_DIR).
        volume_dir: std::env::var_os("ROOST_VOLUME_DIR").map_or_else(
            || std::path::PathBuf::from("/run/roost/volumes"),
            Into::into,
        ),
        signal_target: config.signal_target,
        kill_timeout: config.machine.kill_timeout,
        containers: containers.as_ref(),
        api_socket: config.api.as_ref().map(|api| api.socket_path.clone()),
        token_dirs,
    };
    let outcome = supervisor.run_services(run).await;
    // The image devices are unmounted when `containers` goes, on every path out of here.
    let by = outcome.decided_by.as_ref().map_or_else(String::new, |d| {
        format!(" from {} ({})", d.service, d.reason)
    });
    tracing::info!(
        exit_code = outcome.code,
        oom_killed = outcome.oom_killed,
        "workload done: code {}{by} (oom_killed: {}, orphans reaped: {})",
        outcome.code,
        outcome.oom_killed,
        outcome.orphans_reaped
    );
    outcome
}

/// The outcome of a boot that ended before the workload started, logged once.
fn ended_boot(supervisor: &Supervisor, failure: &BootFailure) -> Outcome {
    failure.log();
    supervisor.outcome_without_workload(failure.code())
}

/// Step 6: the report goes to the control state, the console and the host, in that order
/// (the state first, so a host that reads the console line and then asks finds it).
async fn publish(
    state: &ControlState,
    report: &Report,
    target: Option<ReportTarget>,
    machine_id: Option<&str>,
) {
    state.record_exit(report.clone());
    tracing::info!(
        exit_code = report.code,
        oom_killed = report.oom_killed,
        "roost exits with {}",
        report.code
    );
    exit::print_console(report);
    if let Some(target) = target {
        report::push(&target, report, machine_id).await;
    }
}

/// Step 7: keeps the control API up for `linger` (a stop signal ends it early), then lets
/// answers in flight finish. From here on the end of a critical task is part of the shutdown.
async fn close_control(servers: Vec<ControlServer>, linger: Duration, supervisor: &mut Supervisor) {
    if !servers.is_empty() && !linger.is_zero() {
        tracing::info!(
            "the control API stays up {} s for the exit code",
            linger.as_secs()
        );
        supervisor.linger(linger).await;
    }
    supervisor.critical().shutting_down();
    for server in servers {
        server.shutdown(Duration::from_secs(2)).await;
    }
}

/// The panic policy of both modes: a panic is logged where it happens and nothing else. One
/// inside a task (a connection, an exec, a critical task) is contained by tokio and handled
/// as that task's end (see [`crate::supervisor::critical`]), so the workload runs on and its
/// real exit code is reported.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| tracing::error!("panic: {info}")));
}

/// Runs roost's main path; a panic that ends it is an internal failure with its console exit
/// line (70), never an end without one. `None` then.
fn main_path<T>(f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(out) => Some(out),
        Err(_) => {
            exit::print_console(&exit::report_of_code(exit::INTERNAL));
            None
        }
    }
}
