//! Benchmarks of roost against tini, printed as a Markdown table (run by `bench/run.sh`).
//!
//! `roost-bench compare --roost PATH --tini PATH [--runs N] [--orphans N]`
//!   - startup: from the harness's fork+exec of the init to the workload's first instruction
//!     (the workload, `roost-bench stamp`, prints CLOCK_MONOTONIC), median and p90;
//!   - idle RSS of the init while it supervises a sleeping workload;
//!   - wall time for a workload that leaves N orphans behind, until the init has exited.
//!
//! Helpers used as workloads: `roost-bench stamp`, `roost-bench orphans N`.
//!
//! `roost-bench services --roost PATH [--services N] [--runs N]`: N services under roost,
//! supervisord and s6 (`services.rs`).
//!
//! One file per benchmark: `compare.rs`, `proxy.rs`, `control.rs`, `load.rs`, `services.rs`; `common.rs` is
//! what they share.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod compare;
mod control;
mod load;
mod oci;
mod proxy;
mod services;

pub(crate) use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stamp") => println!("{}", compare::monotonic_ns()),
        Some("orphans") => {
            compare::orphans(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100))
        }
        Some("proxy") => proxy::run(&args),
        Some("control") => control::run(&args),
        Some("load") => load::run(&args),
        Some("compare") => compare::run(&args),
        Some("services") => services::run(&args),
        Some("oci") => oci::run(&args),
        Some("mark") => services::mark(&args),
        _ => {
            eprintln!("usage: roost-bench compare --roost PATH [--tini PATH] [--runs N] [--orphans N] | proxy --roost PATH --devplatform PATH [--requests N] [--bytes N] | control --roost PATH [--requests N] [--bytes N] | stamp | orphans N");
            std::process::exit(64);
        }
    }
}
