//! How a roostctl command fails: the exit code (see the crate's documentation) and the
//! message.

pub const EXIT_REFUSED: i32 = 1;
pub const EXIT_UNAVAILABLE: i32 = 69;
pub const EXIT_PROTOCOL: i32 = 70;

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure(pub i32, pub String);
