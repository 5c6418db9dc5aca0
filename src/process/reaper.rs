//! The one reaper: the only code in roost that calls `waitpid(-1)`.
//!
//! Children that roost starts are registered under the same lock that the reaper holds while
//! it reaps, so a child that exits before `spawn` returns is still delivered to its waiter (the
//! race that loses Fly's exec statuses). Everything else (orphans re-parented to PID 1 or to the
//! subreaper) is reaped and counted.

use nix::errno::Errno;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{oneshot, Notify};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit {
    pub pid: i32,
    /// Exit code when the child exited.
    pub code: Option<i32>,
    /// Signal number when the child was killed by a signal.
    pub signal: Option<i32>,
}

impl ChildExit {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(sig)) => crate::exit::of_signal(sig),
            (None, None) => 1,
        }
    }
}

/// What one `waitpid(-1, WNOHANG)` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    Exit(ChildExit),
    StillAlive,
    /// A stop or continue report (never asked for).
    Other,
}

/// Decodes a raw wait status. Done here rather than by nix, whose `Signal` enum has no
/// real-time signals: `waitpid` through nix consumes the zombie and then fails with `EINVAL`
/// for a death by signal 34..=64, and the exit would be lost.
fn decode_status(pid: i32, status: libc::c_int) -> Waited {
    if libc::WIFEXITED(status) {
        Waited::Exit(ChildExit {
            pid,
            code: Some(libc::WEXITSTATUS(status)),
            signal: None,
        })
    } else if libc::WIFSIGNALED(status) {
        Waited::Exit(ChildExit {
            pid,
            code: None,
            signal: Some(libc::WTERMSIG(status)),
        })
    } else {
        Waited::Other
    }
}

/// One non-blocking `waitpid(-1)`.
fn wait_any() -> Result<Waited, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid(2) writes one int through a pointer to a live local.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        -1 => Err(Errno::last()),
        0 => Ok(Waited::StillAlive),
        pid => Ok(decode_status(pid, status)),
    }
}

/// Whether any child is left after a reap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapState {
    ChildrenLeft,
    NoChildren,
}

#[derive(Debug, Default)]
struct Registry {
    waiters: HashMap<i32, oneshot::Sender<ChildExit>>,
    orphans_reaped: u64,
}

/// Owns `waitpid(-1)`. Cheap to clone; all clones share one registry.
#[derive(Debug, Clone, Default)]
pub struct Reaper {
    registry: Arc<Mutex<Registry>>,
    /// Woken whenever a reap collected something.
    changed: Arc<Notify>,
}

impl Reaper {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A poisoned lock only means another thread panicked mid-update of a HashMap insert or
        // remove; the map is still usable, and PID 1 must keep reaping.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a child with `start` (which returns its pid) and registers it before the reaper
    /// can see it exit. The receiver yields the child's exit exactly once.
    pub fn spawn<F>(&self, start: F) -> std::io::Result<(i32, oneshot::Receiver<ChildExit>)>
    where
        F: FnOnce() -> std::io::Result<i32>,
    {
        let mut registry = self.lock();
        let pid = start()?;
        let (tx, rx) = oneshot::channel();
        registry.waiters.insert(pid, tx);
        Ok((pid, rx))
    }

    /// Registers `pid`, a process that became roost's child without roost starting it (a
    /// container's init, re-parented to roost when the OCI runtime's `create` exits). Checked
    /// under the registry's lock, which every reap holds, so an exit cannot slip between the
    /// check and the registration: the process must still be roost's child (a zombie counts).
    pub fn adopt(&self, pid: i32) -> std::io::Result<oneshot::Receiver<ChildExit>> {
        let mut registry = self.lock();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let ours = super::procs::parse_stat_ppid(&stat)
            .is_some_and(|(_, ppid)| ppid == std::process::id() as i32);
        if !ours {
            return Err(std::io::Error::other(format!(
                "pid {pid} is not a child of roost"
            )));
        }
        let (tx, rx) = oneshot::channel();
        registry.waiters.insert(pid, tx);
        Ok(rx)
    }

    /// Reaps every child that has exited, delivering registered ones to their waiters.
    /// Call on every SIGCHLD (signals coalesce, so one SIGCHLD may stand for many exits) and
    /// once at start.
    pub fn reap(&self) -> ReapState {
        let mut registry = self.lock();
        let mut reaped = false;
        let state = loop {
            let exit = match wait_any() {
                Ok(Waited::Exit(exit)) => exit,
                Ok(Waited::StillAlive) => break ReapState::ChildrenLeft,
                // Stops and continues are not asked for (no WUNTRACED); skip anything else.
                Ok(Waited::Other) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => break ReapState::NoChildren,
                Err(err) => {
                    tracing::error!("waitpid failed: {err}");
                    break ReapState::ChildrenLeft;
                }
            };
            reaped = true;
            match registry.waiters.remove(&exit.pid) {
                // The waiter may have gone away (a cancelled exec); the status is still consumed.
                Some(tx) => drop(tx.send(exit)),
                None => registry.orphans_reaped += 1,
            }
        };
        drop(registry);
        if reaped {
            self.changed.notify_waiters();
        }
        state
    }

    /// Reaps on every SIGCHLD for as long as roost runs, in a task of its own, so execs and
    /// orphans are reaped in every phase (boot, run, shutdown), not only while the workload
    /// is waited for. Spawned as a watched task: its end is a critical failure.
    pub async fn reap_forever(self, mut sigchld: tokio::signal::unix::Signal) {
        while sigchld.recv().await.is_some() {
            self.reap();
            crate::fault::point("reaper");
        }
    }

    /// Reaps until no child is left or `deadline` passes. Returns whether none is left.
    pub async fn until_empty(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the reap, so a reap by the task in between is not missed.
            notified.as_mut().enable();
            if self.reap() == ReapState::NoChildren {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return self.reap() == ReapState::NoChildren;
                }
            }
        }
    }

    /// How many unregistered processes (orphans) have been reaped so far.
    pub fn orphans_reaped(&self) -> u64 {
        self.lock().orphans_reaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str) -> std::io::Result<i32> {
        let child = Command::new("/bin/sh").args(["-c", script]).spawn()?;
        Ok(child.id() as i32)
    }

    fn wait_for(reaper: &Reaper, mut rx: oneshot::Receiver<ChildExit>) -> ChildExit {
        for _ in 0..500 {
            reaper.reap();
            if let Ok(exit) = rx.try_recv() {
                return exit;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("child did not exit");
    }

    // One test, not several: waitpid(-1) in parallel tests of one process would steal each
    // other's children.
    #[test]
    fn raw_statuses_decode_for_every_signal() {
        for sig in 1..=64 {
            // The kernel's encoding of a death by signal: the number in the low 7 bits.
            assert_eq!(
                decode_status(9, sig),
                Waited::Exit(ChildExit {
                    pid: 9,
                    code: None,
                    signal: Some(sig)
                })
            );
        }
        assert_eq!(
            decode_status(9, 3 << 8),
            Waited::Exit(ChildExit {
                pid: 9,
                code: Some(3),
                signal: None
            })
        );
        // Stopped by SIGSTOP (0x7f in the low byte).
        assert_eq!(decode_status(9, (19 << 8) | 0x7f), Waited::Other);
    }

    #[test]
    fn delivers_codes_and_signals_even_for_instant_exits() {
        let reaper = Reaper::new();
        let (pid, rx) = reaper.spawn(|| sh("exit 7")).expect("spawn");
        // Let the child exit before anyone reaps: the status must still arrive.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let exit = wait_for(&reaper, rx);
        assert_eq!(exit.pid, pid);
        assert_eq!((exit.code, exit.exit_code()), (Some(7), 7));

        let (_, rx) = reaper.spawn(|| sh("kill -TERM $$")).expect("spawn");
        let exit = wait_for(&reaper, rx);
        assert_eq!((exit.signal, exit.exit_code()), (Some(libc::SIGTERM), 143));

        // Real-time signals, which nix cannot decode: every one is delivered as 128 + N.
        for sig in [libc::SIGRTMIN(), 40, libc::SIGRTMAX()] {
            let (_, rx) = reaper
                .spawn(|| sh(&format!("kill -{sig} $$")))
                .expect("spawn");
            let exit = wait_for(&reaper, rx);
            assert_eq!((exit.signal, exit.exit_code()), (Some(sig), 128 + sig));
        }

        // An unregistered child counts as an orphan.
        sh("true").expect("spawn");
        for _ in 0..200 {
            if reaper.reap() == ReapState::NoChildren {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(reaper.orphans_reaped(), 1);
        assert_eq!(reaper.reap(), ReapState::NoChildren);
    }
}
