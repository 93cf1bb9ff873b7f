//! Progress for long model-store work (download, assembly, hashing). On a terminal: indicatif
//! bars. Without one (a log file, CI, `nohup`), a bar would never reach the log, so the same
//! bar is kept hidden and a watcher prints a plain line at intervals (`what: 340 MiB of 1.1 GiB
//! (31 %), 11 MiB/s`) until the bar is finished or dropped. Quiet when the caller asks.

use indicatif::{HumanBytes, ProgressBar, ProgressStyle, WeakProgressBar};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a log without a terminal gets a progress line.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How a count reads in a log line.
#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Steps,
}

fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A byte-counting bar (download, assembly, hashing).
pub fn bytes_bar(show: bool, len: u64, message: impl Into<String>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    if !on_terminal() {
        return logged(len, message.into(), Unit::Bytes);
    }
    let style = ProgressStyle::with_template(
        "{msg:40!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_message(message.into())
}

/// A bar counting steps (wheels downloaded, tensors re-quantized).
pub fn steps_bar(show: bool, len: u64, message: impl Into<String>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    if !on_terminal() {
        return logged(len, message.into(), Unit::Steps);
    }
    let style = ProgressStyle::with_template("{msg:50!} [{bar:30}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_message(message.into())
}

/// A hidden bar whose state a watcher thread prints every `LOG_INTERVAL`.
fn logged(len: u64, message: String, unit: Unit) -> ProgressBar {
    let bar = ProgressBar::hidden();
    bar.set_length(len);
    bar.set_message(message);
    let weak = bar.downgrade();
    std::thread::spawn(move || watch_bar(weak, unit, LOG_INTERVAL));
    bar
}

/// Sleeps `every` in short slices, returning false as soon as `stop()` says so.
fn wait(every: Duration, stop: impl Fn() -> bool) -> bool {
    let until = Instant::now() + every;
    while Instant::now() < until {
        if stop() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200).min(every));
    }
    !stop()
}

fn watch_bar(weak: WeakProgressBar, unit: Unit, every: Duration) {
    let gone = || weak.upgrade().is_none_or(|b| b.is_finished());
    while wait(every, gone) {
        let Some(bar) = weak.upgrade() else { return };
        eprintln!(
            "{}",
            bar_line(&bar.message(), bar.position(), bar.length(), bar.per_sec(), unit)
        );
    }
}

/// `assembling x.gguf: 340.0 MiB of 1.0 GiB (33 %), 11.3 MiB/s`
fn bar_line(message: &str, position: u64, length: Option<u64>, per_sec: f64, unit: Unit) -> String {
    match unit {
        Unit::Bytes => {
            let of = length
                .filter(|&l| l > 0)
                .map(|l| format!(" of {} ({} %)", HumanBytes(l), position * 100 / l))
                .unwrap_or_default();
            let rate = if per_sec.is_finite() && per_sec > 0.0 {
                format!(", {}/s", HumanBytes(per_sec as u64))
            } else {
                String::new()
            };
            format!("{message}: {}{of}{rate}", HumanBytes(position))
        }
        Unit::Steps => match length {
            Some(l) => format!("{message}: {position}/{l}"),
            None => format!("{message}: {position}"),
        },
    }
}

/// Prints the growth of the files under `dir` every `LOG_INTERVAL` while it lives, for work
/// whose own progress cannot be seen (another library's download). Nothing on a terminal,
/// where that library draws its own bar, or when `show` is false.
pub struct GrowthWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for GrowthWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn watch_growth(
    show: bool,
    dir: &Path,
    expected: u64,
    message: impl Into<String>,
) -> Option<GrowthWatch> {
    if !show || on_terminal() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, dir, message): (Arc<AtomicBool>, PathBuf, String) =
        (stop.clone(), dir.to_path_buf(), message.into());
    std::thread::spawn(move || {
        let started = Instant::now();
        let at_start = bytes_under(&dir);
        while wait(LOG_INTERVAL, || flag.load(Ordering::Relaxed)) {
            let now = bytes_under(&dir);
            let rate =
                now.saturating_sub(at_start) as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprintln!("{}", bar_line(&message, now, Some(expected), rate, Unit::Bytes));
        }
    });
    Some(GrowthWatch { stop })
}

/// Bytes of the regular files under `dir` (links not followed), 0 where it cannot be read.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_says_what_how_far_and_how_fast() {
        let line = bar_line(
            "assembling m.gguf",
            340 << 20,
            Some(1024 << 20),
            11.5 * (1 << 20) as f64,
            Unit::Bytes,
        );
        assert_eq!(line, "assembling m.gguf: 340.00 MiB of 1.00 GiB (33 %), 11.50 MiB/s");
        assert_eq!(bar_line("m: wheels", 3, Some(12), 0.0, Unit::Steps), "m: wheels: 3/12");
    }

    #[test]
    fn the_watcher_stops_when_its_bar_is_dropped() {
        let bar = ProgressBar::hidden();
        let weak = bar.downgrade();
        let watcher =
            std::thread::spawn(move || watch_bar(weak, Unit::Bytes, Duration::from_millis(50)));
        drop(bar);
        watcher.join().unwrap();
    }

    #[test]
    fn bytes_under_a_folder_are_counted_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("blobs/a.part"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("b"), vec![0u8; 24]).unwrap();
        assert_eq!(bytes_under(dir.path()), 1024);
    }
}
