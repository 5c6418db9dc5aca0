//! Wires the OIDC broker (the `broker` crate): decides from the workload's env which identity
//! tokens it gets, waits (up to `Oidc.BootWaitSeconds`) for the first ones, and adds the SDK
//! variables to the workload's env before it starts.

use crate::config::Validated;
use crate::workload::WorkloadSpec;
use broker::{BrokerOptions, BrokerStatus, PlanInput};
use std::path::PathBuf;

/// Runs the broker's boot phase for `spec` and exports its variables into `spec.env`, with
/// the token (and the clouds' other files beside it) at `token_path`. Returns the live status
/// when a broker runs.
pub async fn prepare(
    config: &Validated,
    platform: Option<roost_platform::Platform>,
    spec: &mut WorkloadSpec,
    critical: &crate::supervisor::CriticalTasks,
    token_path: &std::path::Path,
    refresh: &::broker::RefreshAll,
) -> Option<BrokerStatus> {
    let oidc = &config.oidc;
    let hostname = config.machine.hostname.clone().or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned())
    });
    // The AWS shared files the workload's SDKs would read (as image files: no FIFO, capped).
    let wants_aws = broker::plan::clouds_asked(&spec.env).contains(&broker::Cloud::Aws);
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
            machine_id: config.machine.id.as_deref(),
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
        refresh_now: refresh.subscribe(),
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
        spec.env.set(key, value);
    }
    Some(status)
}

/// Whether a service's env asks for a cloud role (a broker of its own): the broker's own
/// triggers, so a service counts as asking exactly when its broker would plan a token.
pub fn asks_for_cloud_role(env: &[(String, String)]) -> bool {
    !broker::plan::clouds_asked(env).is_empty()
}

/// What the token-isolation rule needs to know of one service.
#[derive(Debug, Clone, Copy)]
pub struct TokenHolder<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub container: bool,
    pub asks: bool,
}

/// Refuses a machine where one service could read another's cloud token.
///
/// A process service shares the VM's root and PID namespace, and a process of the same uid
/// reads what its peer can: the token file by its mode, and even a private mount through
/// `/proc/PID/root`, which the kernel opens for a same-uid caller. No mount or mode can keep
/// two services of one uid apart there, so a process service of a non-root uid that another
/// asking service also runs as is refused, by name, before anything starts. A container is
/// no reader (its own root and PID namespace), so two containers, or a process service and a
/// container that is not asking, may share a uid. Root process services are the VM's root
/// and can read everything; that is documented, not refused.
pub fn check_token_isolation(services: &[TokenHolder<'_>]) -> Result<(), String> {
    for asking in services.iter().filter(|s| s.asks && s.uid != 0) {
        let reader = services.iter().find(|other| {
            !std::ptr::eq(*other, asking) && !other.container && other.uid == asking.uid
        });
        if let Some(reader) = reader {
            return Err(format!(
                "services {:?} and {:?} both run as uid {}, and {:?} asks for a cloud token: \
                 a process service can read whatever a process of its uid can (files, /proc/PID/root), \
                 so {:?} would read {:?}'s token; give each its own user, or run one as a container",
                asking.name, reader.name, asking.uid, asking.name, reader.name, asking.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(name: &str, uid: u32, container: bool, asks: bool) -> TokenHolder<'_> {
        TokenHolder {
            name,
            uid,
            container,
            asks,
        }
    }

    #[test]
    fn a_process_service_of_an_asking_services_uid_is_refused() {
        for asking_container in [false, true] {
            let services = [
                holder("app", 1000, asking_container, true),
                holder("sidecar", 1000, false, false),
            ];
            let err = check_token_isolation(&services).err().unwrap_or_default();
            assert!(
                err.contains("\"app\"") && err.contains("\"sidecar\"") && err.contains("uid 1000"),
                "{err}"
            );
        }
        // Two asking process services of one uid: each would read the other's.
        let both = [holder("a", 7, false, true), holder("b", 7, false, true)];
        assert!(check_token_isolation(&both).is_err());
    }

    #[test]
    fn other_users_containers_and_root_are_allowed() {
        let allowed: [&[TokenHolder<'_>]; 4] = [
            // Another user.
            &[
                holder("app", 1000, false, true),
                holder("x", 1001, false, true),
            ],
            // A container of the same uid reads nothing of the VM's root.
            &[
                holder("app", 1000, false, true),
                holder("c", 1000, true, false),
            ],
            // Two containers of one uid: each its own root and PID namespace.
            &[
                holder("c1", 1000, true, true),
                holder("c2", 1000, true, true),
            ],
            // Root services are the VM's root (documented).
            &[holder("app", 0, false, true), holder("r", 0, false, false)],
        ];
        for services in allowed {
            assert_eq!(check_token_isolation(services), Ok(()), "{services:?}");
        }
        // Nobody asks: nothing to read.
        let none = [holder("a", 7, false, false), holder("b", 7, false, false)];
        assert_eq!(check_token_isolation(&none), Ok(()));
    }
}
