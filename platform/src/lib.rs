//! The platform side of roost, shared by the `/.fly/api` proxy, the broker and the config:
//!
//! - [`credentials`]: the VM's token (roost's one secret type) and the one place an
//!   `Authorization` header is built, attenuated per request when asked ([`attenuate`]);
//! - [`policy`]: the Machines API endpoints a caller may reach (self-scoped to this machine);
//! - [`upstream`]: the upstream URL, parsed once; [`pool`]: the one connection pool to it
//!   (TCP with rustls, Unix, vsock), names resolved ahead of time ([`resolve`]);
//! - [`client`]: [`Platform`], the credentials and the pool together, built once per boot;
//! - [`deadline`]: checked deadline arithmetic for every timeout taken from a config.

pub mod attenuate;
pub mod client;
pub mod credentials;
pub mod deadline;
pub mod policy;
pub mod pool;
pub mod resolve;
pub mod upstream;

pub use client::{Endpoint, Platform, PlatformError, PlatformResponse};
pub use credentials::{Credentials, Token};
pub use pool::{ClientError, UpstreamClient};
pub use upstream::{Upstream, UpstreamError};
