//! Finding and signalling every process roost is responsible for.
//!
//! As PID 1 of a namespace that is `kill(-1, sig)`: every process in the namespace but roost.
//! As a subreaper on a shared host, `kill(-1)` would hit the whole machine, so roost signals
//! its descendants instead, found by walking parent pids in /proc.

use nix::errno::Errno;

/// How roost runs: the scope of "every remaining process".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    /// PID 1 of a PID namespace or VM.
    Pid1,
    /// A child subreaper (`tini -s`): only its own descendants.
    Subreaper,
}

impl InitMode {
    pub fn detect() -> Self {
        if std::process::id() == 1 {
            InitMode::Pid1
        } else {
            InitMode::Subreaper
        }
    }
}

/// Reads (pid, ppid) from the text of /proc/PID/stat. The command name is in parentheses and
/// may itself contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat_ppid(stat: &str) -> Option<(i32, i32)> {
    let pid = stat.split_whitespace().next()?.parse().ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((pid, ppid))
}

/// All descendants of `root` from a list of (pid, ppid) pairs.
pub fn descendants_in(pairs: &[(i32, i32)], root: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in pairs {
            if ppid == parent && pid != root && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn process_table() -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| parse_stat_ppid(&stat))
        .collect()
}

/// kill(2) with a raw signal number (real-time signals have no `nix::Signal`).
fn send(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    Errno::result(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Sends `sig` to the process group `pgid`. A group that is already gone is not an error.
pub fn signal_group(pgid: i32, sig: i32) {
    match send(-pgid, sig) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => tracing::warn!("cannot send signal {sig} to process group {pgid}: {err}"),
    }
}

/// Sends `sig` to every process roost is responsible for, except roost itself.
pub fn signal_everyone(mode: InitMode, sig: i32) {
    match mode {
        // From a namespace's init, kill(-1) reaches every process of the namespace but init.
        InitMode::Pid1 => match send(-1, sig) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => tracing::warn!("cannot send signal {sig} to all processes: {err}"),
        },
        InitMode::Subreaper => {
            let me = std::process::id() as i32;
            for pid in descendants_in(&process_table(), me) {
                let _ = send(pid, sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        assert_eq!(
            parse_stat_ppid("42 (sh) S 7 42 42 0 -1 4194560"),
            Some((42, 7))
        );
        assert_eq!(parse_stat_ppid("43 (a) b (c)) R 1 43 43 0"), Some((43, 1)));
        assert_eq!(parse_stat_ppid("garbage"), None);
        assert_eq!(parse_stat_ppid(""), None);
    }

    #[test]
    fn descendants_follow_the_tree_only() {
        let pairs = [(10, 1), (11, 10), (12, 11), (13, 1), (14, 99), (10, 10)];
        let mut d = descendants_in(&pairs, 10);
        d.sort();
        assert_eq!(d, [11, 12]);
        assert!(descendants_in(&pairs, 12).is_empty());
    }

    #[test]
    fn own_process_is_in_the_table() {
        let me = std::process::id() as i32;
        assert!(process_table().iter().any(|&(pid, _)| pid == me));
    }
}
