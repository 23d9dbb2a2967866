//! What an import shows while it runs: a progress bar with counts, bytes and an estimate when standard
//! error is a terminal, a plain line every few seconds otherwise (logs, scripts, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The counts of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub folders: u64,
    pub added: u64,
    pub added_bytes: u64,
    pub skipped: u64,
    pub refused: u64,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    total_bytes: u64,
    done_bytes: u64,
    started: Instant,
    last_line: Instant,
}

const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// `total_bytes`: the sources' sizes on disk, which is what the estimate measures.
    pub fn new(total_bytes: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let now = Instant::now();
        Progress { bar, total_bytes, done_bytes: 0, started: now, last_line: now }
    }

    /// Source bytes read, and the counts so far.
    pub fn advance(&mut self, bytes: u64, counts: &Counts) {
        self.done_bytes += bytes;
        let text = format!("{} added, {} skipped, {} refused", counts.added, counts.skipped, counts.refused);
        if let Some(bar) = &self.bar {
            bar.set_position(self.done_bytes);
            bar.set_message(text);
            return;
        }
        if self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            eprintln!("{} of {} bytes, {text}{}", self.done_bytes, self.total_bytes, self.estimate());
        }
    }

    fn estimate(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.done_bytes == 0 || elapsed < 1.0 {
            return String::new();
        }
        let left = self.total_bytes.saturating_sub(self.done_bytes) as f64 * elapsed / self.done_bytes as f64;
        format!(", about {}s left", left.ceil() as u64)
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
