//! `roostctl image build SOURCE (--dir DIR | --ext4 FILE) [--config FILE]`: the host's side
//! of a `kind: container` service's image. SOURCE is an OCI image layout (a directory with
//! `index.json`, as skopeo and umoci write it), or a tarball of one (`oci-archive`), or a
//! docker-archive (`docker save`, skopeo's `docker-archive:`). The result is what
//! `image_root` takes, a directory or an ext4 disk (`mke2fs -d`), and the image's config in
//! the shape of `image_config`.
//!
//! Layers are applied in order, each one's whiteouts first (they only ever hide what lower
//! layers made). Every path is resolved by the kernel inside the root being built
//! (`openat2` with `RESOLVE_IN_ROOT`), so neither an absolute link nor a link in a parent
//! directory can make an entry land outside it; an entry or a hard link whose name has a
//! `..` is refused outright. Blobs are checked against their sha256 digests.
//!
//! The source's own files (`index.json`, blobs, a docker-archive's `manifest.json`, config
//! and `layer.tar`s) are opened beneath the source directory with no link followed
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`): an archive's member that is a link to a file of
//! the host would otherwise make that file the image. Whiteouts that name no entry of their
//! directory (`.wh.`, `.wh..`, `.wh...`) are refused, and directories are removed by
//! descriptor (`openat` with `O_NOFOLLOW | O_DIRECTORY`, `unlinkat` below it), never by a
//! path the kernel walks again.

use flate2::read::GzDecoder;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Most layers an image may have (Docker's limit is 127).
mod unpack;
use unpack::{apply_tar, clean};
pub use unpack::{make_ext4, open_root, unpack};

const MAX_LAYERS: usize = 128;
/// Largest JSON document (index, manifest, config) read.
const MAX_JSON: u64 = 4 << 20;

pub type Result<T> = std::result::Result<T, String>;

/// An image as read from its source: its config and its layer files, bottom first.
#[derive(Debug)]
pub struct Image {
    pub config: Value,
    pub layers: Vec<Layer>,
}

/// One layer: the file as opened (and, for a blob, digest-checked) once, and its name in the
/// source for messages.
#[derive(Debug)]
pub struct Layer {
    pub name: PathBuf,
    pub file: std::fs::File,
}

/// What applying the layers did, for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub entries: u64,
    pub whiteouts: u64,
    /// Device nodes are not made: a container's `/dev` is its own.
    pub devices_skipped: u64,
}

/// Reads an OCI layout directory, or unpacks a tarball (OCI or docker-archive) into
/// `scratch` and reads that.
pub fn read_source(source: &Path, reference: Option<&str>, scratch: &Path) -> Result<Image> {
    let dir = if source.is_dir() {
        source.to_path_buf()
    } else {
        let dir = scratch.join("source");
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let root = open_root(&dir)?;
        let file = std::fs::File::open(source).map_err(|e| format!("{}: {e}", source.display()))?;
        apply_tar(&root, file, &mut Applied::default())
            .map_err(|e| format!("{}: {e}", source.display()))?;
        dir
    };
    if dir.join("index.json").is_file() {
        read_oci_layout(&dir, reference)
    } else if dir.join("manifest.json").is_file() {
        read_docker_archive(&dir)
    } else {
        Err(format!(
            "{}: neither an OCI image layout (index.json) nor a docker-archive (manifest.json)",
            source.display()
        ))
    }
}

/// Opens the regular file `relative` of the source directory `dir` for reading: beneath it,
/// with no link followed anywhere on the way (`RESOLVE_NO_SYMLINKS`), and never a FIFO or a
/// device (`O_NONBLOCK` so that opening one cannot block; it is then refused).
pub fn open_member(dir: &Path, relative: &Path) -> Result<std::fs::File> {
    let at = open_root(dir)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let name = relative.display();
    let fd = openat2(&at, relative, how).map_err(|e| match e {
        nix::Error::ELOOP => format!(
            "{name}: a link in the image source, which roostctl refuses (it could name any file of this host)"
        ),
        nix::Error::EXDEV => format!("{name}: a path that would escape the root"),
        e => format!("{name}: {e}"),
    })?;
    let stat = nix::sys::stat::fstat(&fd).map_err(|e| format!("{name}: {e}"))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(format!("{name}: not a regular file"));
    }
    Ok(std::fs::File::from(fd))
}

fn read_json(dir: &Path, relative: &Path) -> Result<Value> {
    Layer {
        name: relative.to_path_buf(),
        file: open_member(dir, relative)?,
    }
    .json()
}

impl Layer {
    /// The member read as a JSON document (index, manifest, config), at most [`MAX_JSON`].
    fn json(self) -> Result<Value> {
        let name = self.name.display();
        let mut text = Vec::new();
        self.file
            .take(MAX_JSON)
            .read_to_end(&mut text)
            .map_err(|e| format!("{name}: {e}"))?;
        serde_json::from_slice(&text).map_err(|e| format!("{name}: {e}"))
    }
}

/// `blobs/sha256/<hex>` of a descriptor, opened once, its digest checked on that open file.
fn blob(layout: &Path, descriptor: &Value) -> Result<Layer> {
    let digest = descriptor["digest"]
        .as_str()
        .ok_or("a descriptor has no digest")?;
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return Err(format!("{digest}: only sha256 digests are supported"));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{digest} is not a sha256 digest"));
    }
    let name = Path::new("blobs/sha256").join(hex);
    let mut file = open_member(layout, &name)?;
    let got = sha256_of(&mut file, &name)?;
    if got != hex.to_ascii_lowercase() {
        return Err(format!(
            "{}: its content's digest is sha256:{got}",
            name.display()
        ));
    }
    Ok(Layer { name, file })
}

/// The sha256 of what is left of `file`, which is then rewound.
fn sha256_of(file: &mut std::fs::File, name: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(file, &mut hasher).map_err(|e| format!("{}: {e}", name.display()))?;
    file.rewind()
        .map_err(|e| format!("{}: {e}", name.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn is_index(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The manifest of an index named `reference`, or its one manifest, or the one for this
/// machine's platform.
fn pick(index: &Value, reference: Option<&str>) -> Result<Value> {
    let manifests = index["manifests"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or("the index lists no manifest")?;
    if let Some(reference) = reference {
        return manifests
            .iter()
            .find(|m| m["annotations"][REF_NAME] == reference)
            .cloned()
            .ok_or_else(|| format!("no manifest named {reference:?} in the index"));
    }
    if manifests.len() == 1 {
        return Ok(manifests[0].clone());
    }
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    manifests
        .iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = manifests
                .iter()
                .filter_map(|m| m["annotations"][REF_NAME].as_str())
                .collect();
            format!(
                "the index has {} manifests and none for linux/{arch}; name one with --ref (it has {names:?})",
                manifests.len()
            )
        })
}

fn read_oci_layout(dir: &Path, reference: Option<&str>) -> Result<Image> {
    let mut descriptor = pick(&read_json(dir, Path::new("index.json"))?, reference)?;
    // An index may point at another index (a multi-platform image): at most a few levels.
    for _ in 0..4 {
        if !is_index(descriptor["mediaType"].as_str().unwrap_or_default()) {
            break;
        }
        descriptor = pick(&blob(dir, &descriptor)?.json()?, None)?;
    }
    let manifest = blob(dir, &descriptor)?.json()?;
    let config = blob(dir, &manifest["config"])?.json()?;
    let descriptors = manifest["layers"].as_array().cloned().unwrap_or_default();
    if descriptors.len() > MAX_LAYERS {
        return Err(format!(
            "{} layers: more than {MAX_LAYERS}",
            descriptors.len()
        ));
    }
    let layers = descriptors
        .iter()
        .map(|d| blob(dir, d))
        .collect::<Result<Vec<_>>>()?;
    Ok(Image { config, layers })
}

fn read_docker_archive(dir: &Path) -> Result<Image> {
    let manifest = read_json(dir, Path::new("manifest.json"))?;
    let entry = manifest
        .as_array()
        .and_then(|m| m.first())
        .ok_or("manifest.json lists no image")?;
    // Each member is opened beneath the archive with no link followed: a `layer.tar` or a
    // `Config` that is a link would make any file of this host the image.
    let inside = |name: &Value| -> Result<Layer> {
        let name = name
            .as_str()
            .ok_or("manifest.json names a file with no string")?;
        let name = clean(Path::new(name))?;
        let file = open_member(dir, &name)?;
        Ok(Layer { name, file })
    };
    let config = inside(&entry["Config"])?.json()?;
    let names = entry["Layers"].as_array().cloned().unwrap_or_default();
    if names.len() > MAX_LAYERS {
        return Err(format!("{} layers: more than {MAX_LAYERS}", names.len()));
    }
    let layers = names.iter().map(inside).collect::<Result<Vec<_>>>()?;
    Ok(Image { config, layers })
}

/// The `image_config` of a service: the OCI image config's `config` with the fields roost
/// reads.
pub fn image_config(config: &Value) -> Value {
    let inner = &config["config"];
    let mut out = serde_json::Map::new();
    for key in [
        "Entrypoint",
        "Cmd",
        "Env",
        "User",
        "WorkingDir",
        "StopSignal",
    ] {
        if let Some(value) = inner.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), value.clone());
        }
    }
    Value::Object(out)
}
