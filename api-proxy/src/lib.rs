//! The `/.fly/api` proxy: a Unix-socket server through which privileged processes in the VM
//! call the platform's Machines API. roost attaches the VM's macaroon on the way out, so no
//! application ever holds it. The platform side (credentials, endpoints policy, the upstream
//! pool) is the `roost-platform` crate; this crate is the server:
//!
//! - [`headers`]: what is stripped, refused and added;
//! - [`redact`]: no answer carries the token, in its headers or its body;
//! - [`connections`]: caps on connections, in all and per caller;
//! - [`audit`]: one line per refusal, aggregated per caller;
//! - [`server`]: the socket, SO_PEERCRED authorisation, streaming, limits and audit log.

pub mod audit;
pub mod connections;
pub mod headers;
pub mod redact;
pub mod server;

pub use server::{ProxyConfig, ProxyError, ProxyServer};
