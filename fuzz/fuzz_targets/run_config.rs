//! The run config parser and validator, on any bytes; then everything built from an accepted
//! config: the workload, the network plan, the /etc files, the platform client and the
//! proxy (credentials, policy, upstream pool, limits) and every deadline computed from a configured duration.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(config) = roost::config::parse(data) {
        // A config that passed validation resolves without panicking, against no /etc.
        for service in &config.services {
            let _ = roost::workload::WorkloadSpec::resolve(service, std::path::Path::new("/nonexistent"));
        }
        let _ = roost::net::plan(&config.network.addresses, config.network.mtu);
        let _ = roost::vm::etc::render_hosts("", config.machine.hostname.as_deref(), &config.network);
        let _ = roost::vm::etc::render_resolv(&config.network);
        for service in &config.services {
            let _ = roost_platform::deadline::after_std(std::time::Instant::now(), service.stop.timeout);
        }
        let _ = roost_platform::deadline::after_std(std::time::Instant::now(), config.control.linger);
        let _ = roost_platform::deadline::after_std(std::time::Instant::now(), config.oidc.boot_wait);
        if let Ok(Some(platform)) = roost::credentials::proxy::platform(&config) {
            if let Some(proxy) = roost::credentials::proxy::proxy_config(&config, &platform) {
                let _ = api_proxy::ProxyServer::check(&proxy);
                let _ = roost_platform::deadline::after_std(std::time::Instant::now(), proxy.request_timeout);
            }
        }
    }
});
