//! The conventions every ringback core follows.
//!
//! A core is a plain state machine: the shell feeds it inputs and the
//! current time, then drains what it wants done and asks when it next needs
//! to be woken. It never reads a clock, never sleeps, never touches a socket
//! or a file, so a unit test can drive an hour of a call in microseconds and
//! `ringback simulate` runs the same code as a live call.
//!
//! Two things make the cores uniform:
//!
//! * [`Now`] — one time value carrying both clocks. Timers run on the
//!   monotonic clock (a wall-clock jump must not fire or starve a timer);
//!   what people see (opening hours, "called at 14:02", a callback's
//!   entry time) needs the wall clock. The shell reads both once per event
//!   and every core gets the same pair, so no core converts one into the
//!   other.
//! * [`Core`] — the one shape: `handle(input, now)`, `handle_timeout(now)`,
//!   `poll_output()`, `poll_timeout()`, the shape of quinn-proto's
//!   `Connection` and of `ringback_sip::transaction`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The current time on both clocks, read once by the shell per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: deadlines and timers.
    pub mono: Instant,
    /// Wall-clock time: what is shown, stored and compared with calendars.
    pub wall: DateTime<Utc>,
}

impl Now {
    /// A pair read by the caller (the shell, or a test's fake clock).
    pub fn new(mono: Instant, wall: DateTime<Utc>) -> Self {
        Now { mono, wall }
    }

    /// Read both system clocks. Only the shell calls this; cores are handed
    /// the result (clippy's `disallowed-methods` keeps clock reads out of
    /// the cores).
    #[allow(clippy::disallowed_methods)]
    pub fn system() -> Self {
        Now {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }

    /// The same moment `d` later on both clocks (tests' fake time).
    pub fn plus(self, d: Duration) -> Self {
        Now {
            mono: self.mono + d,
            wall: self.wall + chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX),
        }
    }

    /// The wall-clock time of a monotonic instant near now (a deadline
    /// shown to a person or stored). Saturates instead of panicking.
    pub fn wall_at(self, at: Instant) -> DateTime<Utc> {
        if at >= self.mono {
            let d = chrono::TimeDelta::from_std(at - self.mono).unwrap_or(chrono::TimeDelta::MAX);
            self.wall.checked_add_signed(d).unwrap_or(self.wall)
        } else {
            let d = chrono::TimeDelta::from_std(self.mono - at).unwrap_or(chrono::TimeDelta::MAX);
            self.wall.checked_sub_signed(d).unwrap_or(self.wall)
        }
    }

    /// The monotonic instant of a wall-clock time near now (a callback's
    /// stored entry time becoming a place in a queue). Clamped to what the
    /// monotonic clock can represent.
    pub fn mono_at(self, at: DateTime<Utc>) -> Instant {
        match (at - self.wall).to_std() {
            Ok(ahead) => self.mono + ahead,
            Err(_) => {
                let behind = (self.wall - at).to_std().unwrap_or_default();
                self.mono.checked_sub(behind).unwrap_or(self.mono)
            }
        }
    }
}

/// The shape of a sans-IO core.
///
/// The shell's loop is always the same: feed [`Core::handle`] what arrived,
/// call [`Core::handle_timeout`] when the instant from
/// [`Core::poll_timeout`] passes, and after either, drain
/// [`Core::poll_output`] and carry each output out.
pub trait Core {
    /// What the shell tells the core (a message, a key, an answer).
    type Input;
    /// What the core asks the shell to do.
    type Output;

    /// Take one input at `now`.
    fn handle(&mut self, input: Self::Input, now: Now);
    /// The instant from [`Core::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now: Now);
    /// The next thing to do, in order; `None` when drained.
    fn poll_output(&mut self) -> Option<Self::Output>;
    /// When [`Core::handle_timeout`] must next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clocks_move_together() {
        let t0 = Now::system();
        let t1 = t0.plus(Duration::from_secs(90));
        assert_eq!(t1.mono - t0.mono, Duration::from_secs(90));
        assert_eq!((t1.wall - t0.wall).num_seconds(), 90);
    }

    #[test]
    fn conversions_round_trip_near_now() {
        let now = Now::system();
        let later = now.mono + Duration::from_secs(30);
        assert_eq!(now.mono_at(now.wall_at(later)), later);
        let earlier_wall = now.wall - chrono::TimeDelta::seconds(45);
        let earlier = now.mono_at(earlier_wall);
        assert_eq!(now.mono - earlier, Duration::from_secs(45));
        assert_eq!(now.wall_at(earlier), earlier_wall);
    }
}
