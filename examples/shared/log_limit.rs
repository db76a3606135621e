//! Rate-limited logging for errors that come in bursts: an accept loop that runs out of
//! file descriptors sees one error per attempt, and a log line per error would drown the
//! log. Shared by the example servers (`#[path]`); small enough to copy.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Logs at most one line per second to stderr, with a count of the lines held back.
#[derive(Debug, Default)]
pub struct LogLimit {
    last: Option<Instant>,
    held_back: u64,
}

impl LogLimit {
    /// Logs `what` (prefixed with `context`) unless a line went out less than a second ago.
    pub fn log(&mut self, context: &str, what: impl Display) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.held_back += 1;
            return;
        }
        match std::mem::take(&mut self.held_back) {
            0 => eprintln!("{context}: {what}"),
            n => eprintln!("{context}: {what} ({n} more in the last second)"),
        }
        self.last = Some(now);
    }
}
