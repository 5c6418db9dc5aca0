//! The run config parser and validator, on any bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(config) = roost::config::parse(data) {
        // A config that passed validation resolves without panicking, against no /etc.
        let _ = roost::workload::WorkloadSpec::resolve(&config, std::path::Path::new("/nonexistent"));
        let _ = roost::net::plan(&config.config.ip_configs, config.config.mtu);
        let _ = roost::vm::etc::render_hosts("", config.config.hostname.as_deref(), &config.config);
        let _ = roost::vm::etc::render_resolv(&config.config);
    }
});
