//! Rendering of build progress: BuildKit-style numbered lines (`--progress=plain`, CI, logs),
//! or a live terminal view (`--progress=tty`) with one line per running step, its elapsed
//! time and latest output, parallel stages side by side.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use whittle_solver::{Event, Progress};

/// Dockerfile text (step summaries, errors naming it) as a terminal may safely show it.
fn safe(s: &str) -> String {
    whittle_dockerfile::printable(s, 500)
}

/// `--progress=plain`: one line per event, prefixed with the step number.
pub struct Plain {
    out: Mutex<Box<dyn Write + Send>>,
    start: Instant,
    started: Mutex<HashMap<usize, Instant>>,
}

impl Plain {
    pub fn new(out: Box<dyn Write + Send>, start: Instant) -> Self {
        Plain {
            out: Mutex::new(out),
            start,
            started: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: String) {
        if let Ok(mut o) = self.out.lock() {
            let _ = writeln!(o, "{s}");
        }
    }
}

impl Progress for Plain {
    fn event(&self, e: Event) {
        match e {
            Event::StepStarted {
                id, label, summary, ..
            } => {
                if let Ok(mut m) = self.started.lock() {
                    m.insert(id, Instant::now());
                }
                self.line(format!("#{id} {label} {}", safe(&summary)));
            }
            Event::StepCached { id } => self.line(format!("#{id} CACHED")),
            Event::StepCachedFrom { id, from } => {
                self.line(format!("#{id} CACHED from {}", safe(&from)))
            }
            Event::StepMiss { id, reason } => self.line(format!("#{id} cache miss: {reason}")),
            Event::StepLog { id, line, .. } => {
                let t = self
                    .started
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&id).map(|s| s.elapsed().as_secs_f64()))
                    .unwrap_or(0.0);
                self.line(format!("#{id} {t:.3} {line}"));
            }
            Event::StepDone {
                id,
                elapsed,
                phases,
            } => {
                let phases: Vec<String> = phases
                    .iter()
                    .map(|(name, d)| format!("{name} {:.2}s", d.as_secs_f64()))
                    .collect();
                let phases = if phases.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", phases.join(", "))
                };
                self.line(format!("#{id} DONE {:.1}s{phases}", elapsed.as_secs_f64()))
            }
            Event::StepFailed { id, elapsed, error } => self.line(format!(
                "#{id} ERROR after {:.1}s: {}",
                elapsed.as_secs_f64(),
                safe(&error)
            )),
            Event::Note { message } => self.line(format!(
                "[{:>6.2}s] {message}",
                self.start.elapsed().as_secs_f64()
            )),
        }
    }
}

struct Running {
    bar: ProgressBar,
    title: String,
}

/// `--progress=tty`: a live view redrawn in place.
pub struct Tty {
    multi: MultiProgress,
    steps: Mutex<HashMap<usize, Running>>,
    /// Finished steps stay on screen while their bars live.
    done: Mutex<Vec<ProgressBar>>,
    running: ProgressStyle,
    finished: ProgressStyle,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Tty {
    pub fn new() -> Self {
        Tty {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            steps: Mutex::new(HashMap::new()),
            done: Mutex::new(Vec::new()),
            running: style("{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed:>4}")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
            finished: style("{prefix:.bold} {wide_msg}"),
        }
    }

    fn finish(&self, id: usize, mark: &str, tail: &str) {
        let Ok(mut steps) = self.steps.lock() else {
            return;
        };
        if let Some(r) = steps.remove(&id) {
            r.bar.set_style(self.finished.clone());
            r.bar.set_prefix(format!("{mark} #{id}"));
            r.bar.finish_with_message(format!("{} {tail}", r.title));
            if let Ok(mut d) = self.done.lock() {
                d.push(r.bar);
            }
        }
    }

    /// Stops drawing (before the summary or an error is printed).
    pub fn clear(&self) {
        if let Ok(mut steps) = self.steps.lock() {
            for (_, r) in steps.drain() {
                r.bar.abandon();
            }
        }
    }
}

impl Default for Tty {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Tty {
    fn suspend(&self, f: &mut dyn FnMut()) {
        self.multi.suspend(f)
    }

    fn event(&self, e: Event) {
        match e {
            Event::StepStarted {
                id, label, summary, ..
            } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(self.running.clone());
                bar.set_prefix(format!("#{id}"));
                let title = format!("{label} {}", safe(&summary));
                bar.set_message(title.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                if let Ok(mut s) = self.steps.lock() {
                    s.insert(id, Running { bar, title });
                }
            }
            Event::StepCached { id } => self.finish(id, "✓", "CACHED"),
            Event::StepCachedFrom { id, from } => {
                self.finish(id, "✓", &format!("CACHED from {}", safe(&from)))
            }
            Event::StepMiss { .. } => {}
            Event::StepLog { id, line, .. } => {
                if let Ok(s) = self.steps.lock() {
                    if let Some(r) = s.get(&id) {
                        let line: String = line.chars().filter(|c| !c.is_control()).collect();
                        r.bar.set_message(format!("{}  │ {}", r.title, line.trim()));
                    }
                }
            }
            Event::StepDone { id, elapsed, .. } => {
                self.finish(id, "✓", &format!("DONE {:.1}s", elapsed.as_secs_f64()))
            }
            Event::StepFailed { id, elapsed, .. } => self.finish(
                id,
                "✗",
                &format!("ERROR after {:.1}s", elapsed.as_secs_f64()),
            ),
            Event::Note { message } => {
                let _ = self.multi.println(format!("  {message}"));
            }
        }
    }
}

/// `--progress=rawjson`: one JSON object per event, for tools.
pub struct RawJson {
    out: Mutex<Box<dyn Write + Send>>,
}

impl RawJson {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        RawJson {
            out: Mutex::new(out),
        }
    }
}

impl Progress for RawJson {
    fn event(&self, e: Event) {
        let v = match e {
            Event::StepStarted {
                id,
                stage,
                label,
                summary,
                line,
            } => serde_json::json!({"event": "started", "step": id, "stage": stage,
                "label": label, "instruction": summary, "line": line}),
            Event::StepCached { id } => serde_json::json!({"event": "cached", "step": id}),
            Event::StepCachedFrom { id, from } => {
                serde_json::json!({"event": "cached", "step": id, "from": from})
            }
            Event::StepMiss { id, reason } => {
                serde_json::json!({"event": "miss", "step": id, "reason": reason})
            }
            Event::StepLog { id, stderr, line } => serde_json::json!({"event": "log", "step": id,
                "stream": if stderr { "stderr" } else { "stdout" }, "line": line}),
            Event::StepDone {
                id,
                elapsed,
                phases,
            } => {
                let phases: serde_json::Map<String, serde_json::Value> = phases
                    .iter()
                    .map(|(name, d)| (name.to_string(), serde_json::json!(d.as_secs_f64())))
                    .collect();
                serde_json::json!({"event": "done", "step": id,
                    "seconds": elapsed.as_secs_f64(), "phases": phases})
            }
            Event::StepFailed { id, elapsed, error } => serde_json::json!({"event": "failed",
                "step": id, "seconds": elapsed.as_secs_f64(), "error": error}),
            Event::Note { message } => serde_json::json!({"event": "note", "message": message}),
        };
        if let Ok(mut o) = self.out.lock() {
            let _ = writeln!(o, "{v}");
        }
    }
}
