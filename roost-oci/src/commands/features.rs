//! `features`: what this runtime supports, as the OCI runtime spec's features document.

use anyhow::Result;

pub fn run() -> Result<()> {
    let features = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "relatime", "strictatime", "private", "rprivate", "shared", "rshared", "slave", "rslave"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"org.roost.oci.refuses": "linux.seccomp, process.apparmorProfile, process.selinuxLabel, linux.mountLabel"}
    });
    println!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}
