//! The workload's stdout and stderr, pumped to roost's stdout.
//!
//! One pipe carries both streams (so their order is kept). A plain thread drains it: a blocked
//! console write must never stall the reaper or signal handling. At shutdown roost first makes
//! sure no process can still hold the write end, then waits for end-of-file, so the last line
//! a workload printed before it exited is never lost.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::time::Duration;

/// The reading side; the write end goes to the workload.
#[derive(Debug)]
pub struct OutputPump {
    done: mpsc::Receiver<u64>,
}

impl OutputPump {
    /// Creates the pipe and starts the drain thread. Returns the write end for the child.
    pub fn start() -> std::io::Result<(Self, OwnedFd)> {
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("output-pump".into())
            .spawn(move || {
                let bytes = pump(std::fs::File::from(read_end), std::io::stdout());
                let _ = tx.send(bytes);
            })?;
        Ok((OutputPump { done }, write_end))
    }

    /// Waits up to `timeout` for every writer to close the pipe and all output to be written.
    /// Returns the number of bytes pumped, or None on timeout.
    pub fn finish(self, timeout: Duration) -> Option<u64> {
        self.done.recv_timeout(timeout).ok()
    }
}

/// Copies until end-of-file. Write errors (a closed console) do not stop the reading: the
/// workload must never block on a full pipe because roost's own output is gone.
pub fn pump(mut from: impl Read, mut to: impl Write) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut writable = true;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if writable && (to.write_all(&buf[..n]).is_err() || to.flush().is_err()) {
                    writable = false;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn copies_everything_including_an_unterminated_last_line() {
        let input = b"first\nsecond\nlast without newline".to_vec();
        let mut out = Vec::new();
        assert_eq!(pump(&input[..], &mut out), input.len() as u64);
        assert_eq!(out, input);
    }

    #[test]
    fn keeps_draining_when_the_console_is_gone() {
        let input = vec![b'x'; 300_000];
        assert_eq!(pump(&input[..], Broken), 300_000);
    }
}
