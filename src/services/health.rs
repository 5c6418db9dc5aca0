//! Health checks: the thresholds (pure) and the probes.
