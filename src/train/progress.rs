//! What a run shows while it works. On a terminal: an indicatif bar. Anywhere else (a log file,
//! CI, `nohup`, a service manager), where a bar is one line redrawn in place and never reaches
//! the log: one plain line per step — step, best score, solved seeds, seconds — so a person
//! reading the log can tell at every moment what the run is doing.

use super::format;
use super::seeds::SeedRun;
use super::trainer::Trainer;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// The state of a run after a step, as progress shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StepStatus {
    /// Steps finished (1 after the first step).
    pub done: usize,
    pub steps: usize,
    /// The best score of any seed so far (None before any finite score).
    pub best: Option<f64>,
    pub solved: usize,
    pub seeds: usize,
    /// Seconds this step took (forward passes, the LLM batch, the checkpoint).
    pub step_s: f64,
    pub elapsed_s: f64,
}

impl StepStatus {
    fn of(seeds: &[SeedRun], done: usize, steps: usize, step_s: f64, elapsed_s: f64) -> Self {
        let best =
            seeds.iter().filter_map(|s| s.best_score).filter(|b| !b.is_nan()).reduce(f64::max);
        let solved = seeds.iter().filter(|s| s.solved_at.is_some()).count();
        StepStatus { done, steps, best, solved, seeds: seeds.len(), step_s, elapsed_s }
    }

    /// `step 3/10 · best score -1.250 · solved 1/4 · 7.2 s (total 21.6 s)`
    pub fn line(&self) -> String {
        let best = self.best.map(|b| format::score(b, 3)).unwrap_or_else(|| "none yet".into());
        format!(
            "step {}/{} · best score {best} · solved {}/{} · {} (total {})",
            self.done,
            self.steps,
            self.solved,
            self.seeds,
            format::duration(self.step_s),
            format::duration(self.elapsed_s)
        )
    }
}

enum Display {
    Bar(indicatif::ProgressBar),
    Lines(Box<dyn Write + Send>),
    Quiet,
}

/// Progress of one `Trainer::drive`: `start`, then `step` after every step, then `finish`.
pub struct StepProgress {
    display: Display,
    prefix: String,
    steps: usize,
    started: Instant,
    last: Instant,
    last_line: Option<String>,
    /// Runs solved as of the last step line.
    last_solved: Option<usize>,
}

impl StepProgress {
    /// Progress on stderr when the trainer asks for it: a bar on a terminal, lines elsewhere.
    pub fn start(trainer: &Trainer, first_step: usize) -> StepProgress {
        let display = match (trainer.progress, std::io::stderr().is_terminal()) {
            (false, _) => Display::Quiet,
            (true, true) => {
                Display::Bar(bar(&trainer.task.name(), trainer.config.steps, first_step))
            }
            (true, false) => Display::Lines(Box::new(std::io::stderr())),
        };
        Self::with_display(display, trainer, first_step)
    }

    fn with_display(display: Display, trainer: &Trainer, first_step: usize) -> StepProgress {
        let now = Instant::now();
        let mut p = StepProgress {
            display,
            prefix: trainer.task.name(),
            steps: trainer.config.steps,
            started: now,
            last: now,
            last_line: None,
            last_solved: None,
        };
        let (steps, seeds) = (trainer.config.steps, trainer.config.seeds);
        let what = if first_step == 0 {
            format!("{steps} steps")
        } else {
            format!("resuming at step {}/{steps}", first_step + 1)
        };
        let seeds =
            if seeds == 1 { "1 seed".to_string() } else { format!("{seeds} seeds in one batch") };
        p.say(&format!("{what}, {seeds}; run folder {}", trainer.out_dir.display()));
        p
    }

    fn say(&mut self, text: &str) {
        let line = format!("{}: {text}", self.prefix);
        match &mut self.display {
            Display::Bar(bar) => bar.println(line),
            Display::Lines(out) => {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Display::Quiet => {}
        }
    }

    /// After step `step` (0-based) finished.
    pub fn step(&mut self, step: usize, seeds: &[SeedRun]) {
        let now = Instant::now();
        let status = StepStatus::of(
            seeds,
            step + 1,
            self.steps,
            (now - self.last).as_secs_f64(),
            (now - self.started).as_secs_f64(),
        );
        self.last = now;
        let line = status.line();
        match &mut self.display {
            Display::Bar(bar) => {
                let best =
                    status.best.map(|b| format::score(b, 3)).unwrap_or_else(|| "none yet".into());
                bar.set_message(format!(
                    "best {best} · solved {}/{} · {}/step",
                    status.solved,
                    status.seeds,
                    format::duration(status.step_s)
                ));
                bar.set_position(status.done as u64);
            }
            Display::Lines(_) => self.say(&line),
            Display::Quiet => {}
        }
        self.last_line = Some(line);
        self.last_solved = Some(status.solved);
    }

    /// Ends the progress: the bar is cleared and its last state left as a plain line, so what
    /// follows (the final table) starts on a line of its own. `seeds` are the runs after the
    /// final evaluation: the values the last step proposed are scored only then, so when they
    /// solved more runs a line says so (the last step line would undercount).
    pub fn finish(mut self, seeds: &[SeedRun]) {
        let last = self.last_line.take();
        if let Display::Bar(bar) = &self.display {
            bar.finish_and_clear();
            self.display = Display::Lines(Box::new(std::io::stderr()));
            if let Some(line) = last {
                self.say(&line);
            }
        }
        let solved = seeds.iter().filter(|s| s.solved_at.is_some()).count();
        if self.last_solved.is_some_and(|before| solved > before) {
            self.say(&format!("the last step's values scored: solved {solved}/{}", seeds.len()));
        }
    }
}

fn bar(task: &str, steps: usize, first_step: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps as u64);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] step {pos}/{len} {msg} ({elapsed})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(task.to_string());
    bar.set_position(first_step as u64);
    // Redraw each second, so the elapsed time moves while the LLM works on a step.
    bar.enable_steady_tick(std::time::Duration::from_secs(1));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_line_names_step_best_solved_and_seconds() {
        let s = StepStatus {
            done: 3,
            steps: 10,
            best: Some(-0.00001),
            solved: 1,
            seeds: 4,
            step_s: 7.24,
            elapsed_s: 21.6,
        };
        assert_eq!(s.line(), "step 3/10 · best score 0.000 · solved 1/4 · 7.2 s (total 21.6 s)");
        let none = StepStatus { best: None, ..s };
        assert!(none.line().contains("best score none yet"), "{}", none.line());
    }
}
