//! What roostctl prints, and the exit code a command's end maps to.

use crate::failure::EXIT_PROTOCOL;
use roost_control_protocol::ServiceList;

pub fn code_of(code: Option<i32>, signal: Option<i32>) -> i32 {
    // A signal first: the pigeon dialect says -1 as the code of a signal death.
    signal.map(|s| 128 + s).or(code).unwrap_or(EXIT_PROTOCOL)
}

/// `roostctl ps`: one line per service.
pub fn ps_table(list: &ServiceList) -> String {
    let mut out = format!(
        "{:<24} {:<11} {:<6} {:>8} {:>9} {:>8}\n",
        "NAME", "STATE", "READY", "RESTARTS", "LAST EXIT", "PID"
    );
    let opt = |v: Option<i32>| v.map_or("-".to_string(), |n| n.to_string());
    for s in &list.services {
        out.push_str(&format!(
            "{:<24} {:<11} {:<6} {:>8} {:>9} {:>8}\n",
            s.name,
            s.state,
            if s.ready { "yes" } else { "no" },
            s.restarts,
            opt(s.last_exit_code),
            opt(s.pid),
        ));
    }
    out
}
