//! [`Progress`]: a line on stderr once a second while a phase runs (rewritten in place on a
//! terminal, one line per second otherwise).

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::series::{Live, Recorder};

/// The ticker of one phase; stop it with [`Progress::stop`] (or drop it) before printing.
pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a thread printing `label elapsed/total s | rate unit/s | open | p99 | errors`
    /// from `recorder` every second to stderr. `total` is the phase's planned length, if any.
    pub fn start(label: &str, unit: &str, total: Option<Duration>, recorder: &Recorder) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let (label, unit, recorder) = (label.to_owned(), unit.to_owned(), recorder.clone());
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || tick(&label, &unit, total, &recorder, &stopped))
            .ok();
        Self {
            stop: Some(stop),
            thread,
        }
    }

    /// A ticker that prints nothing (`--no-progress`).
    pub fn disabled() -> Self {
        Self {
            stop: None,
            thread: None,
        }
    }

    /// Prints the last line and ends the ticker.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn tick(
    label: &str,
    unit: &str,
    total: Option<Duration>,
    recorder: &Recorder,
    stopped: &mpsc::Receiver<()>,
) {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let (mut last_at, mut last_ops, mut last_rate) = (started, recorder.live().ops, 0.0);
    let mut next = started + Duration::from_secs(1);
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let finished = !matches!(
            stopped.recv_timeout(wait),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let now = Instant::now();
        let live = recorder.live();
        let seconds = now.duration_since(last_at).as_secs_f64();
        // The last line, when stopped soon after a tick, keeps that tick's rate.
        let rate = if seconds >= 0.5 || (!finished && seconds > 0.05) {
            live.ops.saturating_sub(last_ops) as f64 / seconds
        } else {
            last_rate
        };
        let text = line(label, unit, now.duration_since(started), total, rate, &live);
        // (The macros, not a locked handle: tests capture them.)
        if terminal {
            // Back to the start of the line, erase it, write it; the last one ends the line.
            eprint!("\r\x1b[2K{text}{}", if finished { "\n" } else { "" });
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{text}");
        }
        if finished {
            return;
        }
        (last_at, last_ops, last_rate) = (now, live.ops, rate);
        while next <= now {
            next += Duration::from_secs(1);
        }
    }
}

/// One progress line, e.g.
/// `writes   7/20 s | 4312 posts/s | open 200 | p99 41 ms | errors 0`.
pub fn line(
    label: &str,
    unit: &str,
    elapsed: Duration,
    total: Option<Duration>,
    rate: f64,
    live: &Live,
) -> String {
    let elapsed = elapsed.as_secs();
    let mut text = match total {
        Some(total) => format!("{label} {elapsed:>3}/{} s", total.as_secs_f64().ceil()),
        None => format!("{label} {elapsed:>3} s"),
    };
    text.push_str(&format!(" | {rate:>6.0} {unit}/s"));
    if let Some(open) = live.open {
        text.push_str(&format!(" | open {open}"));
    }
    match live.p99_ms {
        Some(p99) => text.push_str(&format!(" | p99 {} ms", super::metrics::number(p99))),
        None => text.push_str(" | p99 -"),
    }
    text.push_str(&format!(" | errors {}", live.errors));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_time_rate_open_p99_and_errors() {
        let live = Live {
            ops: 100,
            errors: 3,
            open: Some(200),
            p50_ms: Some(10.0),
            p99_ms: Some(41.25),
        };
        assert_eq!(
            line(
                "writes",
                "posts",
                Duration::from_millis(7_400),
                Some(Duration::from_secs(20)),
                4312.4,
                &live
            ),
            "writes   7/20 s |   4312 posts/s | open 200 | p99 41.25 ms | errors 3"
        );
        let quiet = Live {
            open: None,
            p99_ms: None,
            ..live
        };
        assert_eq!(
            line("ai", "deltas", Duration::from_secs(12), None, 0.0, &quiet),
            "ai  12 s |      0 deltas/s | p99 - | errors 3"
        );
    }

    #[test]
    fn the_ticker_stops_when_asked() {
        let r = Recorder::new("x");
        let started = Instant::now();
        let p = Progress::start("test", "ops", None, &r);
        r.ok(1);
        p.stop();
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "stopping does not wait for a tick"
        );
        Progress::disabled().stop();
    }
}
