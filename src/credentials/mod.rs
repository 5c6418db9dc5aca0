//! Where the VM's macaroon is used on the services' behalf, started in one place: the
//! platform client, the `/.fly/api` proxy ([`proxy`]), and one OIDC broker per service whose
//! env asks for a cloud role ([`broker`]), each service's token files where no other service
//! reads them.

pub mod broker;
pub mod proxy;

use crate::config::Validated;
use crate::control::state::ControlState;
use crate::supervisor::{BootInterrupted, Supervisor};
use crate::workload::WorkloadSpec;
use std::path::{Path, PathBuf};

/// Refuses a machine where one service could read another's cloud token (see
/// [`broker::check_token_isolation`]).
pub fn check_isolation(config: &Validated, specs: &[WorkloadSpec]) -> Result<(), String> {
    let holders: Vec<broker::TokenHolder<'_>> = config
        .services
        .iter()
        .zip(specs)
        .map(|(service, spec)| broker::TokenHolder {
            name: &service.name,
            uid: spec.identity.uid,
            container: service.container.is_some(),
            asks: broker::asks_for_cloud_role(&spec.env),
        })
        .collect();
    broker::check_token_isolation(&holders)
}

/// Starts the proxy (when configured) and a broker per asking service, waiting (within each
/// broker's boot bound) for their first tokens and exporting their variables into each
/// service's env. Returns each service's token directory (None: it asks for no role).
pub async fn start(
    config: &Validated,
    supervisor: &mut Supervisor,
    state: &ControlState,
    specs: &mut [WorkloadSpec],
) -> Result<Vec<Option<PathBuf>>, BootInterrupted> {
    let critical = supervisor.critical().clone();
    let platform = proxy::platform_or_log(config);
    state.set_platform(platform.clone());
    state.set_proxy(proxy::start(config, platform.as_ref(), &critical));
    state.phase("api_proxy");
    // One broker per service that asks for a cloud role, with token files as its user: the
    // first process service at Oidc.TokenPath, every other one, and every container, in a
    // directory of its own beside it (`/.fly/<service>/oidc_token`), so no service reads
    // another's token (process services by their users, which `check_token_isolation` made
    // sure differ, containers because they see only their own directory).
    // One "fetch every token now" for every broker, which a restore sends.
    let refresh = ::broker::RefreshAll::default();
    state.set_token_refresh(refresh.clone());
    let asking: Vec<usize> = (0..specs.len())
        .filter(|&i| broker::asks_for_cloud_role(&specs[i].env))
        .collect();
    let at_token_path = asking
        .iter()
        .copied()
        .find(|&i| config.services[i].container.is_none());
    // Where each asking service's token files are: a container gets that directory, which is
    // no other service's ancestor, bind-mounted (read-only) at the same path, so its SDK
    // finds what the env names and nothing else.
    let mut token_dirs: Vec<Option<std::path::PathBuf>> = vec![None; specs.len()];
    for (n, &i) in asking.iter().enumerate() {
        let token_path = if Some(i) == at_token_path {
            config.oidc.token_path.clone()
        } else {
            per_service_token_path(&config.oidc.token_path, &config.services[i].name)
        };
        token_dirs[i] = token_path.parent().map(Path::to_path_buf);
        let broker = supervisor
            .during_boot(broker::prepare(
                config,
                platform.clone(),
                &mut specs[i],
                &critical,
                &token_path,
                &refresh,
            ))
            .await;
        match broker {
            Ok(status) => {
                if let Some(status) = &status {
                    state.add_tokens(status.clone());
                }
                if n == 0 {
                    state.set_broker(status);
                }
            }
            Err(interrupted) => return Err(interrupted),
        }
    }
    Ok(token_dirs)
}

/// `<dir>/<service>/<file>` for a `TokenPath` of `<dir>/<file>`.
fn per_service_token_path(token_path: &Path, service: &str) -> std::path::PathBuf {
    let file = token_path.file_name().map_or_else(
        || std::ffi::OsString::from("oidc_token"),
        |f| f.to_os_string(),
    );
    token_path
        .parent()
        .unwrap_or(Path::new("/"))
        .join(service)
        .join(file)
}
