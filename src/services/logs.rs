//! Service logs.
