//! Fly multi-container machine configs (tests/corpus/fly, SOURCE.md there): three from Fly's
//! own docs, copied unchanged, and seven of the shapes public repositories use, written here
//! because those repositories have no licence that allows copying. Each is read by roost's
//! config parser twice:
//!
//! - as its author wrote it (`fly machine run --machine-config`, or the Machines API body):
//!   roost either takes it or refuses it naming what is missing, which is always what the
//!   host delivers (the image's config, a volume's disk, the machine's secrets, a local
//!   file's contents), never a silent drop;
//! - as a host driver delivers it to roost (its containers and volumes as the run config's
//!   `Containers` and `Volumes`, beside the host's part): it validates, with the services,
//!   their order and their dependencies as the file says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use roost::config::typed::Condition;
use serde_json::{json, Value};
use std::path::Path;

/// A refusal: the field it names and a phrase of its reason.
type Refusal = (&'static str, &'static str);
/// A service and what it waits for: each target and condition.
type Service = (&'static str, &'static [(&'static str, Condition)]);

/// Each file, what roost says of it as written (`None`: taken; else the field and a phrase
/// of the refusal), and its services with their dependencies as the file says.
const CORPUS: &[(&str, Option<Refusal>, &[Service])] = &[
    (
        "fly-docs/hermes-agent-machine-config.json",
        Some(("containers[0].cmd", "there is no image_config")),
        &[("hermes", &[])],
    ),
    (
        "fly-docs/multi-container-machines.json",
        Some(("containers[0]", "nothing to run")),
        &[
            ("my-app", &[]),
            ("log-shipper", &[("my-app", Condition::Healthy)]),
        ],
    ),
    (
        "fly-docs/rate-limiter-cli-config.json",
        Some(("containers[0]", "nothing to run")),
        &[("nginx", &[("echo", Condition::Healthy)]), ("echo", &[])],
    ),
    (
        "shapes/litestream-replica.json",
        Some(("containers[0].cmd", "there is no image_config")),
        &[
            ("app", &[]),
            ("litestream", &[("app", Condition::Healthy)]),
            ("bot", &[("app", Condition::Healthy)]),
        ],
    ),
    (
        "shapes/machines-api-containers.json",
        Some(("config.containers[0]", "nothing to run")),
        &[("web", &[]), ("worker", &[("web", Condition::Started)])],
    ),
    ("shapes/machines-api-single-image.json", None, &[]),
    (
        "shapes/migrate-then-serve.json",
        Some(("containers[0].cmd", "there is no image_config")),
        &[
            ("migrate", &[]),
            ("web", &[("migrate", Condition::ExitedSuccessfully)]),
            ("jobs", &[("migrate", Condition::ExitedSuccessfully)]),
        ],
    ),
    (
        "shapes/sidecar-with-shared-volume.json",
        Some(("volumes[0]", "a volume without temp_dir is a Fly volume")),
        &[("proxy", &[("app", Condition::Healthy)]), ("app", &[])],
    ),
    (
        "shapes/temp-dir-volume.json",
        Some(("containers[0]", "nothing to run")),
        &[
            ("renderer", &[]),
            ("uploader", &[("renderer", Condition::Started)]),
        ],
    ),
    (
        "shapes/token-proxy-sidecar.json",
        Some(("containers[0]", "nothing to run")),
        &[
            ("agent", &[("tokenproxy", Condition::Started)]),
            ("tokenproxy", &[]),
        ],
    ),
];

/// What a host driver adds before it hands the config to roost, as flyd and flyctl do: each
/// image's config (resolved from the registry), a local file's contents (flyctl reads it and
/// sends `raw_value`), a Fly volume's disk (attached as a block device and given as `Mounts`),
/// and the machine's secrets.
fn as_the_host_delivers(mut doc: Value) -> Value {
    let mut out = json!({});
    let root = match doc.get_mut("config") {
        Some(config) => config.take(),
        None => doc,
    };
    let mut disks = Vec::new();
    let mut volumes = root["volumes"].as_array().cloned().unwrap_or_default();
    volumes.retain(|v| {
        let is_disk = v.get("temp_dir").is_none();
        if is_disk {
            disks.push(v["name"].as_str().unwrap_or_default().to_string());
        }
        !is_disk
    });
    let mut secrets = serde_json::Map::new();
    let mut containers = root["containers"].as_array().cloned().unwrap_or_default();
    for c in &mut containers {
        if c.get("image").is_some() {
            c["image_config"] = json!({"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["serve"]});
        } else {
            // `fly deploy` puts the app's own image here; as a process, its command.
            c["exec"] = json!(["/app/bin/server"]);
        }
        for f in c["files"].as_array_mut().into_iter().flatten() {
            if let Some(file) = f.as_object_mut() {
                if file.remove("local_path").is_some() {
                    file.insert("raw_value".into(), "c2VydmVyIHt9Cg==".into());
                }
            }
        }
        if let Some(mounts) = c["mounts"].as_array_mut() {
            mounts.retain(|m| !disks.iter().any(|d| m["name"] == d.as_str()));
        }
        for s in c["secrets"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or_default().to_string();
            secrets.insert(name, "from-the-host".into());
        }
    }
    out["Containers"] = Value::Array(containers);
    out["Volumes"] = Value::Array(volumes);
    out["Secrets"] = Value::Object(secrets);
    out["Mounts"] = Value::Array(
        disks
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"DevicePath": format!("/dev/vd{}", (b'b' + i as u8) as char), "MountPath": format!("/mnt/{name}")}))
            .collect(),
    );
    out
}

#[test]
fn fly_configs_are_read_as_written_and_run_as_delivered() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/fly");
    let mut files = Vec::new();
    for dir in ["fly-docs", "shapes"] {
        for entry in std::fs::read_dir(corpus.join(dir)).expect("corpus") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(format!(
                    "{dir}/{}",
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    files.sort();
    let listed: Vec<&str> = CORPUS.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(files, listed);
    for (file, as_written, services) in CORPUS {
        let bytes = std::fs::read(corpus.join(file)).expect("read");
        match (roost::config::parse(&bytes), as_written) {
            (Ok(_), None) => {}
            (Err(e), Some((field, phrase))) => {
                let text = e.to_string();
                assert!(
                    text.contains(&format!("`{field}`")) && text.contains(phrase),
                    "{file}: {text}"
                );
            }
            (Ok(_), Some(_)) => panic!("{file} is taken as written now: update CORPUS"),
            (Err(e), None) => panic!("{file}: {e}"),
        }
        let doc: Value = serde_json::from_slice(&bytes).expect("json");
        let delivered = as_the_host_delivers(doc).to_string();
        let v = roost::config::parse(delivered.as_bytes())
            .unwrap_or_else(|e| panic!("{file}, as the host delivers it: {e}"));
        if services.is_empty() {
            continue;
        }
        let names: Vec<&str> = v.services.iter().map(|s| s.name.as_str()).collect();
        let want: Vec<&str> = services.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, want, "{file}");
        for (service, (name, deps)) in v.services.iter().zip(services.iter()) {
            let got: Vec<(&str, Condition)> = service
                .depends_on
                .iter()
                .map(|d| (v.services[d.on].name.as_str(), d.condition))
                .collect();
            assert_eq!(got, deps.to_vec(), "{file}: {name}");
        }
    }
}
