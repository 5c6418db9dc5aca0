//! `kill ID [SIGNAL] [--all]`: a signal (name or number, default TERM) to the container's init,
//! or with `--all` to every process of it. An error unless it is created or running.

use anyhow::{bail, Context, Result};
use libcontainer::signal::Signal;
use std::path::Path;

pub fn run(root: &Path, args: liboci_cli::Kill) -> Result<()> {
    let mut container = super::load(root, &args.container_id)?;
    if !container.can_kill() {
        bail!(
            "cannot kill {:?}: it is {:?}",
            args.container_id,
            container.status()
        );
    }
    let signal = Signal::try_from(args.signal.as_str())
        .with_context(|| format!("signal {:?}", args.signal))?;
    container
        .kill(signal, args.all)
        .with_context(|| format!("signalling {:?}", args.container_id))
}
