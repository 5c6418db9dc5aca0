//! Why the proxy cannot start.

use roost_platform::pool::ClientError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing socket directory {path}: {why}")]
    UnsafeDir { path: PathBuf, why: &'static str },
}
