//! The sink against a real pipe that stops being read, then drains.

use super::*;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

/// A pipe whose write end is the sink's console, as stderr would be: the direct way through
/// a non-blocking description reopened from `/proc/self/fd`, the writer thread's through the
/// original one.
fn sink_on_pipe() -> (Sink, File) {
    let (read, write): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let direct = open_non_blocking(Path::new(&format!("/proc/self/fd/{}", write.as_raw_fd())))
        .expect("reopen the pipe");
    let sink = Sink::new(
        Some(Direct::NonBlocking(direct)),
        Blocking::File(Arc::new(File::from(write))),
    );
    (sink, File::from(read))
}

/// Line `i`, 100 bytes with its newline, so a full pipe refuses it whole (it is below
/// `PIPE_BUF`).
fn numbered(i: usize) -> Vec<u8> {
    format!("line {i:05} {}\n", "x".repeat(88)).into_bytes()
}

/// Everything the pipe carries until every write end is closed.
fn drain(mut read: File) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        read.read_to_string(&mut text).expect("read the pipe");
        text
    })
}

#[test]
fn a_console_that_keeps_up_is_written_without_a_thread() {
    let (mut sink, read) = sink_on_pipe();
    for i in 0..100 {
        sink.write_line(&numbered(i), false);
    }
    assert!(sink.writer.is_none(), "a writer thread was started");
    drop(sink);
    let text = drain(read).join().expect("reader");
    let want: String = (0..100)
        .map(|i| String::from_utf8(numbered(i)).expect("utf-8"))
        .collect();
    assert_eq!(text, want);
}

#[test]
fn a_stalled_console_never_blocks_and_loses_no_order_and_says_what_it_dropped() {
    let (mut sink, read) = sink_on_pipe();
    // Nobody reads: the pipe's 64 KiB take about 650 lines, the queue 1,024 more, and the
    // rest are dropped. None of these calls may wait.
    let total = 3_000;
    for i in 0..total {
        sink.write_line(&numbered(i), false);
    }
    assert!(
        sink.writer.is_some(),
        "the full console did not start the writer thread"
    );
    let dropped = sink.unreported;
    assert!(dropped > 0, "nothing was dropped");
    assert!(
        dropped <= (total - QUEUE_LINES) as u64,
        "{dropped} dropped: the queue did not take its lines"
    );
    // The console drains; a line that must be written waits for the queue to be written,
    // and later lines go straight to it again, after the count of the dropped ones.
    let reader = drain(read);
    let tx = sink.writer.as_ref().map(|w| w.tx.clone()).expect("writer");
    flush_through(&tx, Duration::from_secs(10));
    assert_eq!(
        sink.writer
            .as_ref()
            .map(|w| w.backlog.load(Ordering::Acquire)),
        Some(0)
    );
    sink.write_line(b"after the stall\n", false);
    assert_eq!(sink.unreported, 0);
    drop(tx);
    drop(sink);
    let text = reader.join().expect("reader");

    let lines: Vec<&str> = text.lines().collect();
    let numbers: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("line ")?.get(..5)?.parse().ok())
        .collect();
    // Every line kept is whole and in order, and they are the first ones: nothing later
    // overtook the queue.
    assert_eq!(numbers, (0..numbers.len()).collect::<Vec<_>>());
    assert_eq!(numbers.len() as u64 + dropped, total as u64);
    assert!(lines
        .iter()
        .all(|l| l.len() == 99 || !l.starts_with("line ")));
    assert_eq!(
        &lines[numbers.len()..],
        &[
            format!("roost: {dropped} log line(s) dropped: the console is slower than the log")
                .as_str(),
            "after the stall"
        ]
    );
}

#[test]
fn a_line_that_must_be_written_is_queued_over_the_bound() {
    let (mut sink, read) = sink_on_pipe();
    for i in 0..3_000 {
        sink.write_line(&numbered(i), false);
    }
    sink.write_line(b"roost: exit {\"code\":0}\n", true);
    let reader = drain(read);
    drop(sink);
    let text = reader.join().expect("reader");
    assert!(
        text.ends_with("the console is slower than the log\nroost: exit {\"code\":0}\n"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
}
