//! Log output: one line per event on stderr (the console in a VM), with the time since roost
//! started, so boot phases can be read off the log.

/// Installs the global subscriber. `ROOST_LOG` (`error`..`trace`) sets the level; default info.
pub fn init() {
    let level = std::env::var("ROOST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_max_level(level)
        .finish();
    // Fails only when a subscriber is already set (tests): keep that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
