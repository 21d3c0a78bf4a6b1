//! A rate limit for error lines in server.log, shared by the parts that log per
//! request or per file (the reactors, the workers, the file cache). It sits beside
//! `clock`, the only module it imports, so any part may use it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock;

/// Lets through at most `per_second` lines a second and counts the rest, so a flood
/// of bad requests cannot turn server.log into the bottleneck (or fill the disk).
#[derive(Debug)]
pub struct Throttle {
    per_second: u64,
    /// The current one-second window, as seconds on the shared clock.
    window: AtomicU64,
    passed: AtomicU64,
    dropped: AtomicU64,
}

impl Throttle {
    /// A throttle passing `per_second` lines a second.
    pub const fn new(per_second: u64) -> Throttle {
        Throttle {
            per_second,
            window: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now. On the first line of a new window, the
    /// count of lines dropped in earlier windows is returned with it (and reset).
    pub fn allow(&self) -> Option<u64> {
        let now = clock::now_ms() / 1000 + 1;
        let window = self.window.load(Ordering::Relaxed);
        if window != now
            && self
                .window
                .compare_exchange(window, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.passed.store(0, Ordering::Relaxed);
        }
        if self.passed.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Some(self.dropped.swap(0, Ordering::Relaxed))
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The throttle's window (seconds on the shared clock) at this moment.
    fn window() -> u64 {
        clock::now_ms() / 1000
    }

    /// Calls `allow` `n` times on a fresh throttle, again until all the calls fall
    /// in one window (so a window boundary cannot change the outcome); returns the
    /// throttle, that window and the answers.
    fn in_one_window(per_second: u64, n: usize) -> (Throttle, u64, Vec<Option<u64>>) {
        loop {
            let t = Throttle::new(per_second);
            let start = window();
            let seen = (0..n).map(|_| t.allow()).collect();
            if window() == start {
                return (t, start, seen);
            }
        }
    }

    #[test]
    fn passes_per_second_lines_then_drops() {
        let (_, _, seen) = in_one_window(3, 5);
        assert_eq!(seen, [Some(0), Some(0), Some(0), None, None]);
    }

    #[test]
    fn zero_per_second_drops_everything() {
        let (_, _, seen) = in_one_window(0, 3);
        assert_eq!(seen, [None, None, None]);
    }

    #[test]
    fn next_window_reports_the_dropped_count_once() {
        let (t, start, seen) = in_one_window(1, 3);
        assert_eq!(seen, [Some(0), None, None]);
        while window() == start {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            t.allow(),
            Some(2),
            "the first line of a window carries the count"
        );
        assert_eq!(t.allow(), None, "the window's one line is spent");
    }
}
