//! The OIDC broker: keyless cloud credentials for unmodified SDKs. Before the workload starts
//! it fetches identity tokens from the platform (`POST /v1/tokens/oidc`), writes them where the
//! SDKs look, exports the SDKs' variables, and keeps the tokens fresh for the workload's life.
//!
//! - [`plan`]: which clouds, audiences, files and variables (pure);
//! - [`jwt`]: reading `exp` without the issuer's key, refusing non-JWTs and stale tokens;
//! - [`schedule`]: refresh at half the remaining lifetime with jitter; capped backoff;
//! - [`token_file`]: atomic replacement, owner and mode;
//! - [`session_name`]: `AWS_ROLE_SESSION_NAME` that STS accepts;
//! - [`run`]: the refreshers and their status.

pub mod jwt;
pub mod plan;
pub mod run;
pub mod schedule;
pub mod session_name;
pub mod token_file;

pub use plan::{plan, Cloud, Plan, PlanInput, TokenPlan, DEFAULT_TOKEN_PATH};
pub use run::{start, BrokerOptions, BrokerStatus, RefreshAll, TokenStatus};
pub use session_name::session_name;
