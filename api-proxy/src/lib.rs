//! The `/.fly/api` proxy (issue #3): a Unix-socket server that forwards allow-listed Machines API
//! calls upstream with the VM's macaroon attached. So far: the upstream address it will talk to.

pub mod upstream;

pub use upstream::{Upstream, UpstreamError};
