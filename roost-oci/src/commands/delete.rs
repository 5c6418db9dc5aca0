//! `delete [--force] ID`: undoes `create` (an error while the container runs, unless forced:
//! then it is killed first).

use anyhow::{bail, Context, Result};
use std::path::Path;

pub fn run(root: &Path, id: &str, force: bool) -> Result<()> {
    if force && !root.join(id).exists() {
        return Ok(());
    }
    let mut container = super::load(root, id)?;
    if !force && !container.can_delete() {
        bail!(
            "cannot delete {id:?}: it is {:?} (stop it first, or --force)",
            container.status()
        );
    }
    container
        .delete(force)
        .with_context(|| format!("deleting {id:?}"))
}
