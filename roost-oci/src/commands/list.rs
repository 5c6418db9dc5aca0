//! `list`: the containers under --root, one id per line.

use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path) -> Result<()> {
    let mut ids: Vec<String> = std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("state.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    for id in ids {
        println!("{id}");
    }
    Ok(())
}
