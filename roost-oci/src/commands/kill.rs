//! `kill ID [SIGNAL] [--all]`: a signal (name or number, default TERM) to the container's init,
//! or with `--all` to every process of it. An error unless it is created or running.

use anyhow::{bail, Context, Result};
use libcontainer::signal::Signal;
use std::path::Path;

pub fn run(root: &Path, id: &str, signal: &str, all: bool) -> Result<()> {
    let mut container = super::load(root, id)?;
    if !container.can_kill() {
        bail!("cannot kill {id:?}: it is {:?}", container.status());
    }
    let signal = Signal::try_from(signal).with_context(|| format!("signal {signal:?}"))?;
    container
        .kill(signal, all)
        .with_context(|| format!("signalling {id:?}"))
}
