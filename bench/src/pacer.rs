//! A sender thread's 1 ms beat (`webrtc-load`, `phone-load`): sleep to
//! absolute deadlines, so a late wake-up does not shift every later one, and
//! remember how late each phase started.

use std::time::{Duration, Instant};

/// 1 ms phases from the moment it was made.
pub struct Pacer {
    start: Instant,
    tick: u64,
    late_us: Vec<u32>,
}

impl Pacer {
    /// Start now; remember the lateness of up to `keep` phases.
    pub fn new(keep: usize) -> Pacer {
        Pacer {
            start: Instant::now(),
            tick: 0,
            late_us: Vec::with_capacity(keep),
        }
    }

    /// Sleep until the next phase is due; its number (0, 1, 2, … one a
    /// millisecond). A late phase returns at once.
    pub fn wait(&mut self) -> u64 {
        let due = self.start + Duration::from_millis(self.tick);
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        }
        if self.late_us.len() < self.late_us.capacity() {
            let late = Instant::now().saturating_duration_since(due).as_micros();
            self.late_us.push(late.min(u128::from(u32::MAX)) as u32);
        }
        self.tick += 1;
        self.tick - 1
    }

    /// How late the phases started: (p99, max) in ms.
    pub fn lateness_ms(&mut self) -> (f64, f64) {
        let late = &mut self.late_us;
        late.sort_unstable();
        let p99 = ((late.len() as f64 * 0.99) as usize).min(late.len().saturating_sub(1));
        (
            late.get(p99).map_or(0.0, |&u| f64::from(u) / 1000.0),
            late.last().map_or(0.0, |&u| f64::from(u) / 1000.0),
        )
    }
}
