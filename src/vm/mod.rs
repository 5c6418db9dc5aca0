//! roost as PID 1 of a Firecracker VM.

pub mod mmds;
