//! The `/.fly/api` proxy: a Unix-socket server through which privileged processes in the VM
//! call the platform's Machines API. roost attaches the VM's macaroon on the way out, so no
//! application ever holds it. The platform side (credentials, endpoints policy, the upstream
//! pool) is the `roost-platform` crate; this crate is the server:
//!
//! - [`headers`]: what is stripped, refused and added;
//! - [`redact`]: no answer carries the token, in its headers or its body;
//! - [`connections`]: caps on connections, in all and per caller;
//! - [`audit`]: one line per refusal, aggregated per caller;
//! - [`config`], [`error`], [`stats`]: what it is built from, why it cannot start, its counters;
//! - [`socket`]: the socket's directory, owner, mode and in-place bind;
//! - [`state`]: what every connection shares, and a connection's peer (SO_PEERCRED);
//! - [`server`]: the accept loop, connection caps, one connection;
//! - [`forward`]: one request, from the policy to the redacted answer;
//! - [`audited_body`]: the answer's body, which writes the request's audit line.

pub mod audit;
pub mod audited_body;
pub mod config;
pub mod connections;
pub mod error;
pub mod forward;
pub mod headers;
pub mod redact;
pub mod server;
pub mod socket;
pub mod state;
pub mod stats;

pub use config::ProxyConfig;
pub use error::ProxyError;
pub use server::ProxyServer;
pub use stats::ProxyStats;
