//! `start ID`: the user's program runs (an error if the container is not `created`).

use anyhow::{bail, Context, Result};
use std::path::Path;

pub fn run(root: &Path, id: &str) -> Result<()> {
    let mut container = super::load(root, id)?;
    if !container.can_start() {
        bail!(
            "cannot start {id:?}: it is {:?}, not created",
            container.status()
        );
    }
    container
        .start()
        .with_context(|| format!("starting {id:?}"))
}
