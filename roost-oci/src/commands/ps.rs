//! `ps ID [--format table|json]`: the processes of a container: every process in its PID
//! namespace, seen from here.

use anyhow::{bail, Result};
use std::path::Path;

pub fn run(root: &Path, args: liboci_cli::Ps) -> Result<()> {
    let container = super::load(root, &args.container_id)?;
    let Some(init) = container.pid() else {
        bail!("{:?} has no process", args.container_id);
    };
    let ns = std::fs::read_link(format!("/proc/{}/ns/pid", init.as_raw()))?;
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .as_ref()
            == Some(&ns)
        {
            pids.push(pid);
        }
    }
    pids.sort();
    if args.format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
    } else {
        println!("PID CMD");
        for pid in pids {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd: Vec<String> = cmd
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            println!("{pid} {}", cmd.join(" "));
        }
    }
    Ok(())
}
