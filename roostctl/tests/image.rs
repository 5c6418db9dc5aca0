//! `roostctl image build`: real images built offline by Debian's umoci (an OCI layout, two
//! layers, whiteouts) and skopeo (the same as a docker-archive), into a directory and an
//! ext4 disk; and hostile layers written by hand: a `..` entry and hard link are refused,
//! links that point out of the root cannot carry a write out of it, a wrong digest is
//! refused, an opaque whiteout empties its directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOSTCTL: &str = env!("CARGO_BIN_EXE_roostctl");

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build(args: &[&str]) -> (i32, String) {
    let out = Command::new(ROOSTCTL)
        .args(["image", "build"])
        .args(args)
        .output()
        .expect("roostctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn need(tool: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {tool} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success()),
        "{tool} is needed: ./test.sh setup installs it"
    );
}

/// An OCI layout by umoci: a base layer (busybox, /etc files, a tree), then a layer that
/// deletes the tree and a file (whiteouts) and adds one, with a config.
fn umoci_layout(dir: &Path) -> PathBuf {
    need("umoci");
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let l = layout.to_str().unwrap();
    let b = bundle.to_str().unwrap();
    sh(Command::new("umoci").args(["init", "--layout", l]));
    sh(Command::new("umoci").args(["new", "--image", &format!("{l}:base")]));
    sh(Command::new("umoci").args(["unpack", "--image", &format!("{l}:base"), b]));
    let root = bundle.join("rootfs");
    for d in ["bin", "etc", "gone/sub", "srv"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("gone/sub/f"), "bye").unwrap();
    std::fs::write(root.join("etc/keep"), "keep").unwrap();
    std::fs::write(root.join("etc/old"), "old").unwrap();
    std::fs::write(root.join("srv/secret"), "mode 0600, uid 1000").unwrap();
    std::os::unix::fs::chown(root.join("srv/secret"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(
        root.join("srv/secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // A file capability (as Debian's ping has) and a modification time, both to be kept.
    sh(Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(root.join("bin/busybox")));
    sh(Command::new("touch")
        .args(["-h", "-d", "@978307200"])
        .arg(root.join("etc/keep")));
    sh(Command::new("umoci").args(["repack", "--image", &format!("{l}:base"), b]));
    sh(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{l}:base"),
        "--tag",
        "v1",
        "--config.entrypoint",
        "/bin/sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "echo hi",
        "--config.user",
        "1000:1000",
        "--config.env",
        "A=b",
        "--config.workingdir",
        "/srv",
    ]));
    std::fs::remove_dir_all(&bundle).unwrap();
    sh(Command::new("umoci").args(["unpack", "--image", &format!("{l}:v1"), b]));
    std::fs::remove_dir_all(root.join("gone")).unwrap();
    std::fs::remove_file(root.join("etc/old")).unwrap();
    std::fs::write(root.join("etc/new"), "new").unwrap();
    sh(Command::new("umoci").args(["repack", "--image", &format!("{l}:v1"), b]));
    layout
}

fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap().flatten() {
            let path = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path.display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn an_oci_layout_and_its_docker_archive_make_the_same_root_with_whiteouts_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_layout(tmp.path());
    let out = tmp.path().join("out");
    let config = tmp.path().join("config.json");
    let (code, err) = build(&[
        layout.to_str().unwrap(),
        "--ref",
        "v1",
        "--dir",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 layers"), "{err}");
    assert_eq!(
        listing(&out),
        [
            "bin",
            "bin/busybox",
            "bin/sh",
            "etc",
            "etc/keep",
            "etc/new",
            "srv",
            "srv/secret"
        ]
    );
    assert_eq!(
        std::fs::read_link(out.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    use std::os::unix::fs::MetadataExt;
    let secret = std::fs::metadata(out.join("srv/secret")).unwrap();
    assert_eq!(
        (secret.uid(), secret.gid(), secret.mode() & 0o7777),
        (1000, 1000, 0o600)
    );
    let busybox = std::fs::metadata(out.join("bin/busybox")).unwrap();
    assert_eq!(busybox.mode() & 0o111, 0o111);
    let caps = sh(Command::new("getcap").arg(out.join("bin/busybox")));
    assert!(caps.contains("cap_net_raw"), "{caps}");
    assert_eq!(
        std::fs::metadata(out.join("etc/keep")).unwrap().mtime(),
        978307200
    );
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(
        config,
        json!({"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "echo hi"], "Env": ["A=b"],
               "User": "1000:1000", "WorkingDir": "/srv"})
    );
    // Without --ref, two images in the layout: the error names them.
    let (code, err) = build(&[
        layout.to_str().unwrap(),
        "--dir",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--ref") && err.contains("\"v1\""), "{err}");

    // skopeo's docker-archive of the same image: the same root.
    need("skopeo");
    let archive = tmp.path().join("image.tar");
    sh(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker-archive:{}:roost/test:v1", archive.display()),
    ]));
    let out2 = tmp.path().join("out2");
    let (code, err) = build(&[archive.to_str().unwrap(), "--dir", out2.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(listing(&out2), listing(&out));
    assert_eq!(
        std::fs::read(out2.join("bin/busybox")).unwrap(),
        std::fs::read(out.join("bin/busybox")).unwrap()
    );

    // An ext4 disk of it, read back with debugfs (no mount).
    let disk = tmp.path().join("image.ext4");
    let (code, err) = build(&[
        layout.to_str().unwrap(),
        "--ref",
        "v1",
        "--ext4",
        disk.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let etc = sh(Command::new("debugfs")
        .args(["-R", "ls -l /etc"])
        .arg(&disk));
    assert!(
        etc.contains("keep") && etc.contains("new") && !etc.contains("old"),
        "{etc}"
    );
    let srv = sh(Command::new("debugfs")
        .args(["-R", "stat /srv/secret"])
        .arg(&disk));
    assert!(
        srv.contains("User:  1000") && srv.contains("Mode:  0600"),
        "{srv}"
    );
}

/// A hand-made OCI layout of `layers` (each a list of tar entries), so a test can write what
/// no honest tool would.
struct Layout {
    dir: PathBuf,
    layers: Vec<Value>,
}

enum Entry<'a> {
    File(&'a str, &'a str),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

impl Layout {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
            layers: Vec::new(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> Value {
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(self.dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        json!({"digest": format!("sha256:{hex}"), "size": bytes.len()})
    }

    fn layer(mut self, entries: &[Entry<'_>]) -> Self {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            let (path, data): (&str, &[u8]) = match entry {
                Entry::File(path, data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    (path, data.as_bytes())
                }
                Entry::Dir(path) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    (path, b"")
                }
                Entry::Symlink(path, target) | Entry::Hardlink(path, target) => {
                    header.set_entry_type(if matches!(entry, Entry::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    header.set_link_name_literal(target).unwrap();
                    (path, b"")
                }
            };
            header.set_size(data.len() as u64);
            // Written as is: `append_data` would refuse a `..` before roostctl could.
            let name = header.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let mut d = self.blob(&bytes);
        d["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
        self.layers.push(d);
        self
    }

    fn finish(self) -> PathBuf {
        let mut config =
            self.blob(br#"{"config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers"}}"#);
        config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let manifest = json!({"schemaVersion": 2, "config": config, "layers": self.layers});
        let mut m = self.blob(manifest.to_string().as_bytes());
        m["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        std::fs::write(
            self.dir.join("index.json"),
            json!({"schemaVersion": 2, "manifests": [m]}).to_string(),
        )
        .unwrap();
        self.dir
    }
}

#[test]
fn links_pointing_out_of_the_root_carry_no_write_out_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let escape = outside.to_str().unwrap();
    let layout = Layout::new(&tmp.path().join("layout"))
        .layer(&[
            // An absolute link and a climbing one, both aimed at a real directory outside.
            Entry::Symlink("abs", escape),
            Entry::Symlink("rel", "../../../../../../../../../../.."),
            Entry::Dir("keep"),
            Entry::File("keep/a", "a"),
            Entry::File("keep/b", "b"),
        ])
        .layer(&[
            Entry::File("abs/through-abs", "x"),
            Entry::File(&format!("rel{escape}/through-rel"), "x"),
            // An opaque whiteout: keep/ loses what lower layers put there, keeps its own.
            Entry::File("keep/.wh..wh..opq", ""),
            Entry::File("keep/c", "c"),
        ])
        .finish();
    let out = tmp.path().join("out");
    let (code, err) = build(&[layout.to_str().unwrap(), "--dir", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "a write escaped the root"
    );
    // The kernel resolved both links with the root as `/`: the files are inside it.
    assert!(out
        .join(escape.trim_start_matches('/'))
        .join("through-abs")
        .exists());
    assert!(out
        .join(escape.trim_start_matches('/'))
        .join("through-rel")
        .exists());
    let keep: Vec<String> = listing(&out.join("keep"));
    assert_eq!(keep, ["c"]);
}

#[test]
fn dot_dot_entries_and_links_and_a_wrong_digest_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, entries) in [
        vec![Entry::File("../escaped", "x")],
        vec![Entry::File("a/../../escaped", "x")],
        vec![
            Entry::File("f", "x"),
            Entry::Hardlink("h", "../../../../etc/passwd"),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let layout = Layout::new(&tmp.path().join(format!("layout{i}")))
            .layer(&entries)
            .finish();
        let out = tmp.path().join(format!("out{i}"));
        let (code, err) = build(&[layout.to_str().unwrap(), "--dir", out.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("escape the root"), "{err}");
        assert!(!tmp.path().join("escaped").exists());
    }
    // A blob whose content is not its digest.
    let layout = Layout::new(&tmp.path().join("tampered"))
        .layer(&[Entry::File("f", "x")])
        .finish();
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let manifest_hex = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&manifest_hex)).unwrap(),
    )
    .unwrap();
    let layer_hex = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let layer = layout.join("blobs/sha256").join(&layer_hex);
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[600] ^= 1;
    std::fs::write(&layer, bytes).unwrap();
    let (code, err) = build(&[
        layout.to_str().unwrap(),
        "--dir",
        tmp.path().join("t").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("digest"), "{err}");
}

/// A whiteout of `..` (`.wh...`), `.` or the empty name hides no entry of its directory: it
/// is refused, and nothing beside the output directory is touched. (Before, `.wh...` removed
/// `DIR/..`: every sibling of `--dir`.)
#[test]
fn a_whiteout_of_dot_dot_is_refused_and_the_output_directory_s_siblings_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    let other = images.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep"), "another image").unwrap();
    for (i, whiteout) in [".wh...", "sub/.wh...", ".wh..", ".wh."].iter().enumerate() {
        let layout = Layout::new(&tmp.path().join(format!("layout{i}")))
            .layer(&[Entry::Dir("sub"), Entry::File("sub/f", "x")])
            .layer(&[Entry::File(whiteout, "")])
            .finish();
        let out = images.join(format!("app{i}"));
        let (code, err) = build(&[layout.to_str().unwrap(), "--dir", out.to_str().unwrap()]);
        assert_eq!(code, 1, "{whiteout}: {err}");
        assert!(err.contains("names no entry"), "{whiteout}: {err}");
        assert_eq!(
            std::fs::read_to_string(other.join("keep")).unwrap(),
            "another image",
            "{whiteout} reached a sibling of --dir"
        );
        assert!(out.join("sub/f").exists(), "{whiteout}");
    }
}

/// A whiteout of a directory removes it by descriptor: a link inside it to a directory of
/// the host is removed as a link, and what it points at stays.
#[test]
fn a_directory_whiteout_removes_links_inside_it_not_what_they_point_at() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    std::fs::create_dir_all(host.join("deep")).unwrap();
    std::fs::write(host.join("deep/file"), "the host's").unwrap();
    let layout = Layout::new(&tmp.path().join("layout"))
        .layer(&[
            Entry::Dir("d"),
            Entry::Dir("d/a"),
            Entry::Dir("d/a/b"),
            Entry::File("d/a/b/f", "x"),
            Entry::Symlink("d/a/host", host.to_str().unwrap()),
            Entry::Dir("e"),
            Entry::Symlink("e/host", host.to_str().unwrap()),
            Entry::File("e/g", "x"),
            Entry::File("stays", "x"),
        ])
        .layer(&[Entry::File(".wh.d", ""), Entry::File("e/.wh..wh..opq", "")])
        .finish();
    let out = tmp.path().join("out");
    let (code, err) = build(&[layout.to_str().unwrap(), "--dir", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(listing(&out), ["e", "stays"]);
    assert_eq!(
        std::fs::read_to_string(host.join("deep/file")).unwrap(),
        "the host's"
    );
}

/// A docker-archive whose `layer.tar` or `Config` is a link (to a file of the host that would
/// then become the image) is refused, and nothing of the host's file reaches the output.
#[test]
fn a_docker_archive_whose_members_are_links_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // A file of the host that is a valid layer: what an attacker wants copied into the image.
    let host_layer = tmp.path().join("host-layer.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&host_layer).unwrap());
        add_file(&mut b, "host-secret", b"secret");
        b.finish().unwrap();
    }
    let host_config = tmp.path().join("host-config.json");
    std::fs::write(&host_config, r#"{"config": {"Cmd": ["host"]}}"#).unwrap();
    let mut honest_layer = tar::Builder::new(Vec::new());
    add_file(&mut honest_layer, "f", b"x");
    let honest_layer = honest_layer.into_inner().unwrap();
    let honest_config = br#"{"config": {"Cmd": ["/bin/sh"]}}"#;

    for (i, (layer_is_link, config_is_link)) in [(true, false), (false, true), (false, false)]
        .into_iter()
        .enumerate()
    {
        let archive = tmp.path().join(format!("archive{i}.tar"));
        let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        let manifest = br#"[{"Config": "config.json", "Layers": ["layer.tar"]}]"#;
        add_file(&mut b, "manifest.json", manifest);
        let mut members = vec![];
        if layer_is_link {
            members.push(("layer.tar", host_layer.clone()));
        } else {
            add_file(&mut b, "layer.tar", &honest_layer);
        }
        if config_is_link {
            members.push(("config.json", host_config.clone()));
        } else {
            add_file(&mut b, "config.json", honest_config);
        }
        for (name, target) in members {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_link(&mut h, name, &target).unwrap();
        }
        b.finish().unwrap();
        drop(b);
        let out = tmp.path().join(format!("out{i}"));
        let config = tmp.path().join(format!("config{i}.json"));
        let (code, err) = build(&[
            archive.to_str().unwrap(),
            "--dir",
            out.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ]);
        if layer_is_link || config_is_link {
            assert_eq!(code, 1, "{err}");
            assert!(err.contains("a link in the image source"), "{err}");
            assert!(!out.join("host-secret").exists());
            assert!(!config.exists());
        } else {
            // The same archive with real members builds: the refusal is of the links.
            assert_eq!(code, 0, "{err}");
            assert_eq!(listing(&out), ["f"]);
        }
    }
}

/// Appends a regular file (0644, root's, time 0) to a tar.
fn add_file<W: std::io::Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}
