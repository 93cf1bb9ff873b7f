//! Progress bars for long model-store work, or hidden ones when the caller wants quiet.

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-counting bar (download, assembly, hashing).
pub fn bytes_bar(show: bool, len: u64, message: impl Into<String>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
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
    let style = ProgressStyle::with_template("{msg:50!} [{bar:30}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_message(message.into())
}
