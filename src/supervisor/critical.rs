//! The watched task set: the tasks roost cannot run without (the reaper, the control API's
//! accept loops, the `/.fly/api` proxy, the credential broker) are spawned here, and an end
//! of any of them (a panic inside it, or a return) before roost's own shutdown is logged and
//! becomes a graceful stop with exit code 70. A panic in a task of its own (one connection,
//! one exec) is contained by tokio and ends only that task; a fire-and-forget `tokio::spawn`
//! would let a dead reaper leave PID 1 waiting forever.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Handle to the set. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CriticalTasks {
    failed: Arc<watch::Sender<Option<String>>>,
    shutting_down: Arc<AtomicBool>,
}

impl Default for CriticalTasks {
    fn default() -> Self {
        Self::new()
    }
}

impl CriticalTasks {
    pub fn new() -> Self {
        CriticalTasks {
            failed: Arc::new(watch::Sender::new(None)),
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Spawns `task` as the critical task `name`.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        let set = self.clone();
        // The watcher only awaits and reports; it has nothing that could panic.
        tokio::spawn(async move {
            let why = match handle.await {
                Ok(()) => "returned".to_string(),
                Err(err) if err.is_panic() => format!("panicked: {}", panic_message(err)),
                Err(_) => "was cancelled".to_string(),
            };
            set.report(name, &why);
        });
    }

    fn report(&self, name: &str, why: &str) {
        if self.shutting_down.load(Ordering::SeqCst) {
            tracing::debug!("{name} ended during shutdown ({why})");
            return;
        }
        tracing::error!("critical task {name} {why}: stopping roost (exit 70)");
        let message = format!("{name} {why}");
        self.failed.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(message);
                true
            } else {
                false
            }
        });
    }

    /// From now on, tasks that end are part of the shutdown, not failures.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Resolves when a critical task has failed (at once if one already has).
    pub async fn failed(&self) -> String {
        let mut rx = self.failed.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`: cannot happen; wait forever rather than spin.
                std::future::pending::<()>().await;
            }
        }
    }
}

fn panic_message(err: tokio::task::JoinError) -> String {
    let payload = err.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_or_a_return_is_a_failure_until_shutdown() {
        let set = CriticalTasks::new();
        #[allow(clippy::panic)]
        set.spawn("boom", async { panic!("injected") });
        let why = tokio::time::timeout(std::time::Duration::from_secs(5), set.failed())
            .await
            .expect("reported");
        assert_eq!(why, "boom panicked: injected");

        let set = CriticalTasks::new();
        set.spawn("quitter", async {});
        let why = tokio::time::timeout(std::time::Duration::from_secs(5), set.failed())
            .await
            .expect("reported");
        assert_eq!(why, "quitter returned");

        let set = CriticalTasks::new();
        set.shutting_down();
        set.spawn("late", async {});
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(set.failure(), None);
    }
}
