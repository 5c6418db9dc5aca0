//! The `/.fly/api` proxy: a Unix-socket server through which privileged processes in the VM
//! call the platform's Machines API. roost attaches the VM's macaroon on the way out, so no
//! application ever holds it.
//!
//! - [`policy`]: which method and path pairs are forwarded (self-scoped to this machine);
//! - [`headers`]: what is stripped, refused and added;
//! - [`attenuate`]: per-request macaroon caveats (beyond Fly);
//! - [`redact`]: no answer carries the token, in its headers or its body;
//! - [`client`]: the upstream client, shared with the broker;
//! - [`platform`]: roost's own calls to the platform (the broker's), same token rules;
//! - [`server`]: the socket, SO_PEERCRED authorisation, streaming, limits and audit log.

pub mod attenuate;
pub mod audit;
pub mod client;
pub mod connections;
pub mod deadline;
pub mod headers;
pub mod platform;
pub mod policy;
pub mod redact;
pub mod resolve;
pub mod server;
pub mod upstream;

pub use client::{ClientError, UpstreamClient};
pub use platform::{PlatformClient, PlatformResponse};
pub use server::{ProxyConfig, ProxyError, ProxyServer, Token};
pub use upstream::{Upstream, UpstreamError};
