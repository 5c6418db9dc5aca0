//! Wires the OIDC broker (the `broker` crate): decides from the workload's env which identity
//! tokens it gets, waits (up to `Oidc.BootWaitSeconds`) for the first ones, and adds the SDK
//! variables to the workload's env before it starts.

use crate::config::Validated;
use crate::workload::WorkloadSpec;
use broker::{BrokerOptions, BrokerStatus, PlanInput};
use std::path::PathBuf;

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

/// Runs the broker's boot phase for `spec` and exports its variables into `spec.env`, with
/// the token (and the clouds' other files beside it) at `token_path`. Returns the live status
/// when a broker runs.
pub async fn prepare(
    config: &Validated,
    platform: Option<roost_platform::Platform>,
    spec: &mut WorkloadSpec,
    critical: &crate::supervise::CriticalTasks,
    token_path: &std::path::Path,
) -> Option<BrokerStatus> {
    let c = &config.config;
    let oidc = &config.oidc;
    let hostname = c.hostname.clone().or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned())
    });
    // The AWS shared files the workload's SDKs would read (as image files: no FIFO, capped).
    let wants_aws = spec
        .env
        .iter()
        .any(|(k, v)| k == "AWS_ROLE_ARN" && !v.is_empty());
    let aws_files: Vec<(PathBuf, String)> = broker::plan::aws_shared_files(&spec.env)
        .into_iter()
        .filter(|_| wants_aws)
        .filter_map(|path| match crate::workload::image_file::read(&path) {
            Ok(Some(bytes)) => Some((path, String::from_utf8_lossy(&bytes).into_owned())),
            _ => None,
        })
        .collect();
    let plan = broker::plan(
        &spec.env,
        &PlanInput {
            token_path,
            machine_id: c.machine_id.as_deref(),
            hostname: hostname.as_deref(),
            aws_files: &aws_files,
        },
    );
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    if plan.tokens.is_empty() {
        return None;
    }
    let clouds: Vec<&str> = plan.tokens.iter().map(|t| t.cloud.name()).collect();
    let Some(client) = platform else {
        // Exporting a token file that never comes would keep the SDK from its other
        // credential sources: export nothing.
        tracing::error!(
            "the workload asks for {clouds:?} identity tokens but Api is not configured: no tokens, no variables"
        );
        return None;
    };
    let boot_wait = oidc.boot_wait;
    let opts = BrokerOptions {
        boot_wait,
        uid: spec.identity.uid,
        gid: spec.identity.gid,
        group_readable: oidc.group_readable,
    };
    let spawn = |refresher| critical.spawn("broker", refresher);
    let (status, ready) = broker::start(client, &plan, &opts, &spawn).await;
    if ready {
        tracing::info!("OIDC tokens ready for {clouds:?}");
    } else {
        tracing::error!(
            "no OIDC token for {clouds:?} after {} s: STARTING THE WORKLOAD WITHOUT IT; the broker keeps trying",
            boot_wait.as_secs()
        );
    }
    for (key, value) in &plan.env {
        set_env(&mut spec.env, key, value);
    }
    Some(status)
}
