//! What the workload is: argv, environment, identity and working directory, resolved from the
//! run config and the target root's /etc files. The decisions are pure functions in the
//! submodules; [`WorkloadSpec::resolve`] only adds the file reads.

pub mod argv;
pub mod env;
pub mod files;
pub mod image_file;
pub mod user;

use crate::config::typed::Service;
use std::path::{Path, PathBuf};

pub use argv::ArgvError;
pub use user::{Identity, UserError};

/// Everything needed to start the workload.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub argv: Vec<String>,
    pub env: env::Env,
    pub identity: Identity,
    pub working_dir: PathBuf,
    /// Non-fatal problems found while resolving (skipped env entries), for the log.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Argv(#[from] ArgvError),
    #[error("{field}: {source}")]
    User {
        field: &'static str,
        #[source]
        source: UserError,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: image_file::ImageFileError,
    },
}

/// Reads an /etc file of the target root, every link resolved inside that root; a missing
/// file is empty (numeric ids still work). A FIFO, a device or a file over the size cap is
/// refused (see [`image_file`]).
fn read_etc(root: &Path, name: &str) -> Result<String, WorkloadError> {
    let relative = Path::new("etc").join(name);
    let path = root.join(&relative);
    match image_file::read_in_root(root, &relative) {
        Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(None) => Ok(String::new()),
        Err(source) => Err(WorkloadError::Read { path, source }),
    }
}

impl WorkloadSpec {
    /// Resolves what `service` runs, reading passwd and group under `root`.
    pub fn resolve(service: &Service, root: &Path) -> Result<Self, WorkloadError> {
        let c = &service.process;
        let argv = argv::resolve_argv(
            &c.image_config,
            c.exec_override.as_deref(),
            c.cmd_override.as_deref(),
        )?;
        let (field, user_spec) = match (&c.user_override, &c.image_config.user) {
            (Some(u), _) if !u.is_empty() => ("UserOverride", Some(u.as_str())),
            (_, Some(u)) => ("ImageConfig.User", Some(u.as_str())),
            _ => ("ImageConfig.User", None),
        };
        let (passwd_text, group_text) = (read_etc(root, "passwd")?, read_etc(root, "group")?);
        let passwd = user::parse_passwd(&passwd_text);
        let groups = user::parse_group(&group_text);
        let identity = user::resolve_user(user_spec, &passwd, &groups)
            .map_err(|source| WorkloadError::User { field, source })?;
        let mut extra_env = c.extra_env.clone();
        for (k, v) in &c.secret_env {
            extra_env.insert(k.clone(), v.expose().to_string());
        }
        let merged = env::merge_env(&c.image_config.env, &extra_env, &identity.home);
        // OCI: WorkingDir is absolute; a relative one is taken from `/`, an empty one is `/`.
        let working_dir = match c.image_config.working_dir.as_deref() {
            Some(dir) if !dir.is_empty() => Path::new("/").join(dir),
            _ => PathBuf::from("/"),
        };
        Ok(WorkloadSpec {
            argv,
            env: merged.vars,
            identity,
            working_dir,
            warnings: merged.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nsvc:x:300:300::/var/svc:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(dir.path().join("etc/group"), "svc:x:300:\nlog:x:301:svc\n").expect("group");
        dir
    }

    fn spec(doc: &str, root: &Path) -> Result<WorkloadSpec, WorkloadError> {
        let config = crate::config::parse(doc.as_bytes()).expect("valid config");
        WorkloadSpec::resolve(config.main_service().expect("main service"), root)
    }

    #[test]
    fn user_override_beats_image_user_and_sets_home() {
        let root = fixture_root();
        let s = spec(
            r#"{"ImageConfig": {"Cmd": ["x"], "User": "root", "WorkingDir": "srv"},
                "UserOverride": "svc"}"#,
            root.path(),
        )
        .expect("spec");
        assert_eq!((s.identity.uid, s.identity.gid), (300, 300));
        assert_eq!(s.identity.groups, [300, 301]);
        assert!(s.env.contains(&("HOME".into(), "/var/svc".into())));
        assert_eq!(s.working_dir, PathBuf::from("/srv"));
    }

    #[test]
    fn unknown_user_names_the_field() {
        let root = fixture_root();
        let err = spec(
            r#"{"ImageConfig": {"Cmd": ["x"], "User": "ghost"}}"#,
            root.path(),
        )
        .expect_err("unknown user");
        assert!(err.to_string().contains("ImageConfig.User"), "{err}");
    }

    #[test]
    fn missing_etc_files_still_allow_numeric_users() {
        let root = tempfile::tempdir().expect("tempdir");
        let s = spec(
            r#"{"ImageConfig": {"Cmd": ["x"]}, "UserOverride": "12:34"}"#,
            root.path(),
        )
        .expect("spec");
        assert_eq!((s.identity.uid, s.identity.gid), (12, 34));
        assert_eq!(s.working_dir, PathBuf::from("/"));
    }

    /// An image whose /etc/passwd is an absolute link to a file of the VM: the user is
    /// looked up in the image's own file at that path (here absent, so unknown), never in the
    /// VM's. Before, PID 1 followed the link out of the image.
    #[test]
    fn an_images_passwd_link_is_resolved_inside_the_image() {
        let vm = fixture_root();
        let image = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(image.path().join("etc")).expect("mkdir");
        std::os::unix::fs::symlink(
            vm.path().join("etc/passwd"),
            image.path().join("etc/passwd"),
        )
        .expect("link");
        let err = spec(
            r#"{"ImageConfig": {"Cmd": ["x"], "User": "svc"}}"#,
            image.path(),
        )
        .expect_err("svc is the VM's user, not the image's");
        assert!(err.to_string().contains("not found"), "{err}");
    }

    #[test]
    fn empty_command_is_a_clear_error() {
        let root = fixture_root();
        let err = spec("{}", root.path()).expect_err("no argv");
        assert!(matches!(err, WorkloadError::Argv(ArgvError::Empty)));
    }
}
