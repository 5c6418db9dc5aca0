//! `state ID`: the OCI state document (ociVersion, id, status, pid, bundle, annotations).

use anyhow::Result;
use libcontainer::container::ContainerStatus;
use std::path::Path;

pub fn run(root: &Path, id: &str) -> Result<()> {
    let container = super::load(root, id)?;
    let status = match container.status() {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    };
    let mut state = serde_json::json!({
        "ociVersion": container.state.oci_version,
        "id": container.id(),
        "status": status,
        "bundle": container.bundle(),
    });
    // The spec: pid is absent once the container is stopped.
    if let (Some(pid), false) = (container.pid(), status == "stopped") {
        state["pid"] = pid.as_raw().into();
    }
    if let Some(annotations) = &container.state.annotations {
        state["annotations"] = serde_json::to_value(annotations)?;
    }
    println!("{}", serde_json::to_string_pretty(&state)?);
    Ok(())
}
