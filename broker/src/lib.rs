//! The OIDC broker (issue #4): fetches the workload's identity token through the upstream,
//! keeps it fresh in a file, and exports the SDK variables. So far: the role session name.

pub mod session_name;

pub use session_name::session_name;
