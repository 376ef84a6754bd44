//! Progress reports of a download: throttled, and never going backwards.

use super::request::DownloadProgress;
use std::time::{Duration, Instant};

/// The least time between two reports (at most 10 a second).
const INTERVAL: Duration = Duration::from_millis(100);

pub(super) struct Progress<'a> {
    sink: &'a mut dyn FnMut(&DownloadProgress),
    state: DownloadProgress,
    /// Bytes of the files finished before the current one.
    done_before: u64,
    last: Option<Instant>,
}

impl<'a> Progress<'a> {
    pub(super) fn new(sink: &'a mut dyn FnMut(&DownloadProgress), files_total: u32, bytes_total: u64) -> Self {
        let state = DownloadProgress { files_total, bytes_total, ..DownloadProgress::default() };
        Progress { sink, state, done_before: 0, last: None }
    }

    /// Starts the next file, of `size` bytes.
    pub(super) fn start_file(&mut self, name: &str, size: u64) {
        self.state.file = name.to_string();
        self.state.file_bytes_total = size;
        self.state.file_bytes_done = 0;
    }

    /// The current file now holds `bytes` (this may go down when a download starts over; the
    /// reported numbers do not).
    pub(super) fn file_bytes(&mut self, bytes: u64) {
        let bytes = bytes.min(self.state.file_bytes_total);
        if bytes > self.state.file_bytes_done {
            self.state.file_bytes_done = bytes;
            self.state.bytes_done = self.state.bytes_done.max(self.done_before + bytes);
        }
        self.emit();
    }

    /// The current file is complete (downloaded now, or found in place).
    pub(super) fn file_done(&mut self, size: u64) {
        self.state.file_bytes_done = self.state.file_bytes_total;
        self.done_before += size;
        self.state.bytes_done = self.state.bytes_done.max(self.done_before);
        self.state.files_done += 1;
        self.emit();
    }

    /// The last report, with everything done; waits out the interval so that the rate limit
    /// holds.
    pub(super) fn finish(&mut self) {
        self.state.bytes_done = self.state.bytes_total.max(self.state.bytes_done);
        self.state.files_done = self.state.files_total;
        if let Some(last) = self.last {
            std::thread::sleep(INTERVAL.saturating_sub(last.elapsed()));
        }
        self.last = Some(Instant::now());
        (self.sink)(&self.state);
    }

    fn emit(&mut self) {
        if self.last.is_some_and(|t| t.elapsed() < INTERVAL) {
            return;
        }
        self.last = Some(Instant::now());
        (self.sink)(&self.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_throttled_and_monotonic() {
        let mut seen = Vec::new();
        let mut sink = |p: &DownloadProgress| seen.push((Instant::now(), p.clone()));
        let mut p = Progress::new(&mut sink, 2, 300);
        p.start_file("a", 100);
        for b in 0..=100 {
            p.file_bytes(b);
        }
        p.file_bytes(10); // a restart from zero: numbers must not go back
        p.file_done(100);
        p.start_file("b", 200);
        std::thread::sleep(INTERVAL);
        p.file_bytes(50);
        p.finish();
        assert!(seen.len() >= 3, "{}", seen.len());
        for w in seen.windows(2) {
            assert!(w[1].0 - w[0].0 >= INTERVAL - Duration::from_millis(1), "too close");
            assert!(w[1].1.bytes_done >= w[0].1.bytes_done);
        }
        let last = &seen.last().unwrap().1;
        assert_eq!((last.bytes_done, last.bytes_total, last.files_done), (300, 300, 2));
    }
}
