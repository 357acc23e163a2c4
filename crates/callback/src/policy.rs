//! Per-queue callback policy: retries, expiry, dialing window, guards — as
//! the shell reads it from `ringback.toml` — and the dialing-window
//! arithmetic (is it open at `t`, when does it next open or close).
//!
//! Windows use the same syntax and semantics as the dialplan's `hours`
//! node (`days = "mon-fri"`, `from = "09:00"`, `to = "18:00"`, overnight
//! ranges, `24:00` as an end, holidays closing their whole local date) and
//! are compared on the local wall clock of the queue's `timezone`, so
//! "09:00" stays 09:00 across daylight-saving changes. Parsing and the
//! arithmetic ("open at `t`?", "when does it next open / close?", which the
//! scheduler needs to sleep until then) are `ringback-calendar`'s, shared
//! with the dialplan; this module adds the callback-specific parts (an
//! empty window means any time, error wording, the TOML shape).

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
// `Utc.with_ymd_and_hms` in the unit tests (which `use super::*`).
#[cfg(test)]
use chrono::TimeZone;
use chrono_tz::Tz;
use ringback_calendar::{parse_holiday, parse_timezone, Calendar, CalendarError, OpenRange};
use serde::Deserialize;

use crate::number::{pattern_matches, validate_pattern};

/// The built-in deny list (toll-fraud protection), applied in addition to
/// a queue's own `deny` unless `builtin_deny = false`.
///
/// Numbers are compared as normalised, without guessing the country, so
/// North American ranges appear in E.164 (`+1…`), 11-digit (`1…`) and
/// 10-digit national form:
///
/// | pattern | what |
/// |---|---|
/// | `00*` | anything dialed with the ITU international prefix |
/// | `011*` | anything dialed with the North American international prefix |
/// | `+1900*`, `1900*`, `900XXXXXXX` | NANP premium rate (900) |
/// | `+1976*`, `1976*`, `976XXXXXXX` | NANP premium rate (976) |
/// | `+979*` | international premium rate service (ITU) |
/// | `+870*`, `+881*`, `+882*`, `+883*` | satellite and international networks, classic IRSF targets |
///
/// Country-specific E.164 numbers (`+44…`, `+49…`) cannot be told apart
/// from "home" without knowing the home country: to block other countries,
/// set `allow` (e.g. `allow = ["+1*"]`).
pub const DEFAULT_DENY: &[&str] = &[
    "00*",
    "011*",
    "+1900*",
    "1900*",
    "900XXXXXXX",
    "+1976*",
    "1976*",
    "976XXXXXXX",
    "+979*",
    "+870*",
    "+881*",
    "+882*",
    "+883*",
];

/// A set of weekdays (bit 0 = Monday … bit 6 = Sunday); parses the same
/// day specifications as the dialplan (`"mon-fri"`, `"sat,sun"`,
/// `"daily"`, …).
pub use ringback_calendar::Days;

/// One range of the dialing window, on the queue's local clock: `from <
/// to` is that part of each listed day, `from > to` is overnight (the
/// shift belongs to the day it starts on). Built from its TOML strings
/// with `DialingWindow::parse("mon-fri", "09:00", "18:00")`.
pub use ringback_calendar::OpenRange as DialingWindow;

/// A policy that cannot be used; the text names the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("callback policy: {0}")]
pub struct PolicyError(pub String);

impl From<CalendarError> for PolicyError {
    /// The calendar's text, except that an empty range is called a
    /// dialing window, as operators know it from `ringback.toml`.
    fn from(e: CalendarError) -> Self {
        match e {
            CalendarError::EmptyRange { from, to } => PolicyError(format!(
                "dialing window {from}-{to} is empty: for a whole day use from = \"00:00\", to = \"24:00\""
            )),
            other => PolicyError(other.to_string()),
        }
    }
}

/// How one queue's callbacks are guarded, retried and timed.
///
/// Deserialises from the server's TOML (every key optional, unknown keys
/// refused):
///
/// ```toml
/// max_attempts = 3            # attempts before `failed`
/// retry_after_secs = 120      # first retry delay …
/// retry_factor = 2.0          # … multiplied by this after each attempt …
/// retry_max_secs = 1800       # … up to this
/// expire_after_hours = 24     # a request not completed by then expires
/// accept_timeout_secs = 15    # time the customer has to press 1
/// timezone = "UTC"            # IANA zone of the window and holidays
/// window = [{ days = "mon-fri", from = "09:00", to = "18:00" }]  # none: any time
/// holidays = ["2026-12-25"]   # local dates on which nobody is called
/// allow = []                  # if not empty, the number must match one
/// deny = []                   # added to the built-in list
/// builtin_deny = true         # false: only `deny` applies
/// max_per_number_per_day = 3  # accepted requests per number, rolling 24 h
/// max_per_hour = 1000         # accepted requests overall, rolling 60 min
/// max_pending = 500           # live callbacks in the queue; then no offer
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "PolicyToml")]
pub struct Policy {
    /// Attempts (customer legs dialed) before the callback `failed`; ≥ 1.
    pub max_attempts: u32,
    /// Delay before the first retry, in seconds.
    pub retry_after_secs: u64,
    /// Each further retry waits this many times longer (≥ 1.0).
    pub retry_factor: f64,
    /// Cap on the retry delay, in seconds.
    pub retry_max_secs: u64,
    /// A callback still live this long after the request expires.
    pub expire_after_hours: u32,
    /// How long the customer has to press 1 once they answer (used by the
    /// dialer, not by the scheduler).
    pub accept_timeout_secs: u32,
    /// Dialing window; empty means any time (holidays still apply).
    pub window: Vec<DialingWindow>,
    /// Zone of the window and the holidays.
    pub timezone: Tz,
    /// Local dates on which nobody is called (including the tail of an
    /// overnight range that started the day before).
    pub holidays: BTreeSet<NaiveDate>,
    /// If not empty, a number must match one of these patterns.
    pub allow: Vec<String>,
    /// A number matching one of these is refused (deny wins over allow).
    /// This is the effective list: the built-in [`DEFAULT_DENY`] followed
    /// by the configured patterns, unless `builtin_deny = false`.
    pub deny: Vec<String>,
    /// Accepted requests per number (over all queues) in a rolling 24 hours.
    pub max_per_number_per_day: u32,
    /// Accepted requests over all queues and numbers in a rolling hour.
    pub max_per_hour: u32,
    /// Live callbacks this queue may hold; at the limit the IVR does not
    /// offer a callback and requests are refused.
    pub max_pending: usize,
    /// A callback whose customer was already talking to an agent when
    /// ringback stopped (crash, kill): `false` (default) records it
    /// `completed` — the customer reached a person and is not called a
    /// second time; `true` calls them again (the attempt not counted).
    pub redial_interrupted: bool,
}

impl Policy {
    /// Default `max_attempts`: 3.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// Default `retry_after_secs`: 120.
    pub const DEFAULT_RETRY_AFTER_SECS: u64 = 120;
    /// Default `retry_factor`: 2.0.
    pub const DEFAULT_RETRY_FACTOR: f64 = 2.0;
    /// Default `retry_max_secs`: 1800.
    pub const DEFAULT_RETRY_MAX_SECS: u64 = 1800;
    /// Default `expire_after_hours`: 24.
    pub const DEFAULT_EXPIRE_AFTER_HOURS: u32 = 24;
    /// Default `accept_timeout_secs`: 15.
    pub const DEFAULT_ACCEPT_TIMEOUT_SECS: u32 = 15;
    /// Default `max_per_number_per_day`: 3.
    pub const DEFAULT_MAX_PER_NUMBER_PER_DAY: u32 = 3;
    /// Default `max_per_hour`: 1000.
    pub const DEFAULT_MAX_PER_HOUR: u32 = 1000;
    /// Default `max_pending`: 500.
    pub const DEFAULT_MAX_PENDING: usize = 500;

    /// Checks the invariants the TOML path enforces, for policies built in
    /// code. (The scheduler never panics on an invalid policy, but its
    /// behaviour is only documented for valid ones.)
    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |m: String| Err(PolicyError(m));
        if self.max_attempts == 0 {
            return err("max_attempts must be at least 1".into());
        }
        if self.retry_after_secs == 0 {
            return err("retry_after_secs must be at least 1".into());
        }
        if !self.retry_factor.is_finite() || self.retry_factor < 1.0 {
            return err(format!(
                "retry_factor must be a number ≥ 1.0, not {}",
                self.retry_factor
            ));
        }
        if self.retry_max_secs < self.retry_after_secs {
            return err(format!(
                "retry_max_secs ({}) must be at least retry_after_secs ({})",
                self.retry_max_secs, self.retry_after_secs
            ));
        }
        if self.expire_after_hours == 0 {
            return err("expire_after_hours must be at least 1".into());
        }
        if self.accept_timeout_secs == 0 {
            return err("accept_timeout_secs must be at least 1".into());
        }
        for w in &self.window {
            if !w.is_valid() {
                return err(format!("invalid dialing window {w:?}"));
            }
        }
        for p in self.allow.iter().chain(&self.deny) {
            validate_pattern(p).map_err(PolicyError)?;
        }
        Ok(())
    }

    /// Delay before the retry that follows `attempts` counted attempts
    /// (`attempts ≥ 1`): `retry_after_secs × retry_factor^(attempts-1)`,
    /// capped at `retry_max_secs`, in whole seconds. With the defaults:
    /// 120 s, 240 s, 480 s, 960 s, 1800 s, 1800 s …
    pub fn backoff(&self, attempts: u32) -> TimeDelta {
        let base = self.retry_after_secs.max(1) as f64;
        let factor = if self.retry_factor.is_finite() {
            self.retry_factor.max(1.0)
        } else {
            1.0
        };
        let cap = self.retry_max_secs.max(self.retry_after_secs).max(1) as f64;
        let exp = attempts.saturating_sub(1).min(1024) as i32;
        let secs = (base * factor.powi(exp)).min(cap).round();
        // The cap keeps this finite and small; clamp anyway for TimeDelta.
        TimeDelta::seconds(secs.clamp(1.0, 100.0 * 365.0 * 86_400.0) as i64)
    }

    /// The first deny pattern `number` (normalised) matches.
    pub fn denied_by(&self, number: &str) -> Option<&str> {
        self.deny
            .iter()
            .find(|p| pattern_matches(p, number))
            .map(String::as_str)
    }

    /// Whether `number` passes the `allow` list (always, when it is empty).
    pub fn allows(&self, number: &str) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|p| pattern_matches(p, number))
    }

    /// The dialing window and holidays as a calendar in the queue's zone
    /// (no window configured: any time, holidays still closed).
    pub fn calendar(&self) -> Calendar<'_> {
        const ANY_TIME: &[OpenRange] = &[OpenRange::ALL_DAY];
        let open = if self.window.is_empty() {
            ANY_TIME
        } else {
            &self.window
        };
        Calendar::new(self.timezone, open, &self.holidays)
    }

    /// Whether the dialing window is open at `t` (holidays closed).
    pub fn window_open(&self, t: DateTime<Utc>) -> bool {
        self.calendar().is_open(t)
    }

    /// The earliest instant in `[from, until)` at which
    /// [`window_open`](Self::window_open) is `want_open`, or `None`.
    ///
    /// See [`Calendar::next_change`] for how daylight-saving gaps and
    /// overlaps are handled. Looks at most
    /// [`MAX_SCAN_DAYS`](Self::MAX_SCAN_DAYS) ahead.
    pub fn next_window_change(
        &self,
        from: DateTime<Utc>,
        want_open: bool,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.calendar().next_change(from, want_open, until)
    }

    /// How far [`next_window_change`](Self::next_window_change) looks:
    /// 400 days (a year of holidays and then some).
    pub const MAX_SCAN_DAYS: usize = ringback_calendar::MAX_SCAN_DAYS;
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            retry_after_secs: Self::DEFAULT_RETRY_AFTER_SECS,
            retry_factor: Self::DEFAULT_RETRY_FACTOR,
            retry_max_secs: Self::DEFAULT_RETRY_MAX_SECS,
            expire_after_hours: Self::DEFAULT_EXPIRE_AFTER_HOURS,
            accept_timeout_secs: Self::DEFAULT_ACCEPT_TIMEOUT_SECS,
            window: Vec::new(),
            timezone: Tz::UTC,
            holidays: BTreeSet::new(),
            allow: Vec::new(),
            deny: DEFAULT_DENY.iter().map(|s| (*s).to_owned()).collect(),
            max_per_number_per_day: Self::DEFAULT_MAX_PER_NUMBER_PER_DAY,
            max_per_hour: Self::DEFAULT_MAX_PER_HOUR,
            max_pending: Self::DEFAULT_MAX_PENDING,
            redial_interrupted: false,
        }
    }
}

/// The TOML shape of [`Policy`], before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PolicyToml {
    max_attempts: u32,
    retry_after_secs: u64,
    retry_factor: f64,
    retry_max_secs: u64,
    expire_after_hours: u32,
    accept_timeout_secs: u32,
    window: Vec<WindowToml>,
    timezone: String,
    holidays: Vec<String>,
    allow: Vec<String>,
    deny: Vec<String>,
    builtin_deny: bool,
    max_per_number_per_day: u32,
    max_per_hour: u32,
    max_pending: usize,
    redial_interrupted: bool,
}

impl Default for PolicyToml {
    fn default() -> Self {
        PolicyToml {
            max_attempts: Policy::DEFAULT_MAX_ATTEMPTS,
            retry_after_secs: Policy::DEFAULT_RETRY_AFTER_SECS,
            retry_factor: Policy::DEFAULT_RETRY_FACTOR,
            retry_max_secs: Policy::DEFAULT_RETRY_MAX_SECS,
            expire_after_hours: Policy::DEFAULT_EXPIRE_AFTER_HOURS,
            accept_timeout_secs: Policy::DEFAULT_ACCEPT_TIMEOUT_SECS,
            window: Vec::new(),
            timezone: "UTC".into(),
            holidays: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            builtin_deny: true,
            max_per_number_per_day: Policy::DEFAULT_MAX_PER_NUMBER_PER_DAY,
            max_per_hour: Policy::DEFAULT_MAX_PER_HOUR,
            max_pending: Policy::DEFAULT_MAX_PENDING,
            redial_interrupted: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowToml {
    #[serde(default = "daily")]
    days: String,
    from: String,
    to: String,
}

fn daily() -> String {
    "daily".into()
}

impl TryFrom<PolicyToml> for Policy {
    type Error = PolicyError;

    fn try_from(t: PolicyToml) -> Result<Self, Self::Error> {
        let timezone = parse_timezone(&t.timezone)?;
        let window = t
            .window
            .iter()
            .map(|w| DialingWindow::parse(&w.days, &w.from, &w.to))
            .collect::<Result<Vec<_>, _>>()?;
        let holidays = t
            .holidays
            .iter()
            .map(|d| parse_holiday(d))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let mut deny: Vec<String> = if t.builtin_deny {
            DEFAULT_DENY.iter().map(|s| (*s).to_owned()).collect()
        } else {
            Vec::new()
        };
        for p in t.deny {
            if !deny.contains(&p) {
                deny.push(p);
            }
        }
        let p = Policy {
            max_attempts: t.max_attempts,
            retry_after_secs: t.retry_after_secs,
            retry_factor: t.retry_factor,
            retry_max_secs: t.retry_max_secs,
            expire_after_hours: t.expire_after_hours,
            accept_timeout_secs: t.accept_timeout_secs,
            window,
            timezone,
            holidays,
            allow: t.allow,
            deny,
            max_per_number_per_day: t.max_per_number_per_day,
            max_per_hour: t.max_per_hour,
            max_pending: t.max_pending,
            redial_interrupted: t.redial_interrupted,
        };
        p.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid")
    }

    fn ny_weekdays() -> Policy {
        toml::from_str(
            r#"
            timezone = "America/New_York"
            window = [{ days = "mon-fri", from = "09:00", to = "18:00" }]
            holidays = ["2026-12-25"]
            "#,
        )
        .expect("policy")
    }

    #[test]
    fn toml_defaults() {
        let p: Policy = toml::from_str("").expect("empty policy");
        assert_eq!(p, Policy::default());
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.retry_after_secs, 120);
        assert_eq!(p.retry_factor, 2.0);
        assert_eq!(p.retry_max_secs, 1800);
        assert_eq!(p.expire_after_hours, 24);
        assert_eq!(p.accept_timeout_secs, 15);
        assert_eq!(p.max_per_number_per_day, 3);
        assert_eq!(p.max_per_hour, 1000);
        assert_eq!(p.max_pending, 500);
        assert!(p.window.is_empty() && p.allow.is_empty());
        assert_eq!(p.deny.len(), DEFAULT_DENY.len());
    }

    #[test]
    fn toml_full_and_deny_lists() {
        let p: Policy = toml::from_str(
            r#"
            max_attempts = 5
            retry_after_secs = 60
            retry_factor = 1.5
            retry_max_secs = 600
            expire_after_hours = 48
            accept_timeout_secs = 20
            timezone = "Europe/Berlin"
            window = [{ days = "mon-fri", from = "08:00", to = "20:00" }, { days = "sat", from = "10:00", to = "14:00" }]
            holidays = ["2026-12-25", "2026-12-26"]
            allow = ["+49*", "0*"]
            deny = ["+49900*", "00*"]
            max_per_number_per_day = 2
            max_per_hour = 100
            max_pending = 50
            "#,
        )
        .expect("policy");
        assert_eq!(p.max_attempts, 5);
        assert_eq!(p.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(p.window.len(), 2);
        assert_eq!(p.window[1].from, 600);
        assert_eq!(p.holidays.len(), 2);
        // Built-in list kept, own patterns appended, no duplicates.
        assert_eq!(p.deny.len(), DEFAULT_DENY.len() + 1);
        assert_eq!(p.deny.last().map(String::as_str), Some("+49900*"));
        assert_eq!(p.denied_by("+499001234567"), Some("+49900*"));
        assert!(p.allows("+4930123456") && !p.allows("+15551234567"));

        let own_only: Policy =
            toml::from_str("builtin_deny = false\ndeny = [\"+44*\"]").expect("policy");
        assert_eq!(own_only.deny, ["+44*"]);
        assert_eq!(own_only.denied_by("+19005550100"), None);
    }

    #[test]
    fn toml_errors_are_explained() {
        let err = |s: &str| toml::from_str::<Policy>(s).unwrap_err().to_string();
        assert!(err("max_atempts = 3").contains("unknown field `max_atempts`"));
        assert!(err("timezone = \"Mars/Olympus\"").contains("unknown timezone `Mars/Olympus`"));
        assert!(
            err("window = [{ days = \"mon-fry\", from = \"09:00\", to = \"17:00\" }]")
                .contains("invalid day `mon-fry`")
        );
        assert!(
            err("window = [{ days = \"mon\", from = \"9\", to = \"17:00\" }]")
                .contains("invalid time \"9\"")
        );
        assert!(err("window = [{ from = \"09:00\", to = \"09:00\" }]").contains("is empty"));
        assert!(
            err("window = [{ from = \"09:00\", to = \"17:00\", tz = \"x\" }]")
                .contains("unknown field `tz`")
        );
        assert!(err("holidays = [\"25.12.2026\"]").contains("invalid holiday \"25.12.2026\""));
        assert!(err("deny = [\"+1 900*\"]").contains("invalid number pattern"));
        assert!(err("allow = [\"+1-*\"]").contains("invalid number pattern"));
        assert!(err("max_attempts = 0").contains("max_attempts must be at least 1"));
        assert!(err("retry_factor = 0.5").contains("retry_factor"));
        assert!(err("retry_after_secs = 600\nretry_max_secs = 60").contains("retry_max_secs"));
        assert!(err("expire_after_hours = 0").contains("expire_after_hours"));
        // Omitted days mean every day.
        let p: Policy =
            toml::from_str("window = [{ from = \"22:00\", to = \"06:00\" }]").expect("overnight");
        assert_eq!(p.window[0].days, Days::ALL);
    }

    #[test]
    fn backoff_schedule() {
        let p = Policy::default();
        let secs: Vec<i64> = (1..=7).map(|n| p.backoff(n).num_seconds()).collect();
        assert_eq!(secs, [120, 240, 480, 960, 1800, 1800, 1800]);
        let flat = Policy {
            retry_factor: 1.0,
            ..Policy::default()
        };
        assert_eq!(flat.backoff(5).num_seconds(), 120);
        // Absurd values never panic.
        let silly = Policy {
            retry_factor: f64::NAN,
            retry_after_secs: 0,
            retry_max_secs: 0,
            ..Policy::default()
        };
        assert_eq!(silly.backoff(u32::MAX).num_seconds(), 1);
        let huge = Policy {
            retry_factor: 1e300,
            retry_max_secs: u64::MAX,
            ..Policy::default()
        };
        assert!(huge.backoff(u32::MAX).num_seconds() > 0);
    }

    #[test]
    fn window_open_and_next_changes() {
        let p = ny_weekdays();
        let far = utc(2030, 1, 1, 0, 0);
        // Mon 2026-11-23 10:00 EST = 15:00 UTC: open; closes 18:00 EST = 23:00 UTC.
        assert!(p.window_open(utc(2026, 11, 23, 15, 0)));
        assert_eq!(
            p.next_window_change(utc(2026, 11, 23, 15, 0), false, far),
            Some(utc(2026, 11, 23, 23, 0))
        );
        // Fri 2026-11-27 19:00 EST: next opening is Mon 09:00 EST = 14:00 UTC.
        assert_eq!(
            p.next_window_change(utc(2026, 11, 28, 0, 0), true, far),
            Some(utc(2026, 11, 30, 14, 0))
        );
        // Thu 2026-12-24 20:00 EST: Fri 25th is a holiday → Mon 28th.
        assert_eq!(
            p.next_window_change(utc(2026, 12, 25, 1, 0), true, far),
            Some(utc(2026, 12, 28, 14, 0))
        );
        // `until` bounds the search.
        assert_eq!(
            p.next_window_change(utc(2026, 12, 25, 1, 0), true, utc(2026, 12, 28, 14, 0)),
            None
        );
    }

    #[test]
    fn next_opening_across_dst() {
        // Daily 09:00-17:00 New York; US DST starts Sun 2026-03-08.
        let p: Policy = toml::from_str(
            "timezone = \"America/New_York\"\nwindow = [{ from = \"09:00\", to = \"17:00\" }]",
        )
        .expect("policy");
        let far = utc(2027, 1, 1, 0, 0);
        // Sat 18:00 EST (23:00 UTC) → Sun 09:00 EDT = 13:00 UTC (not 14:00).
        assert_eq!(
            p.next_window_change(utc(2026, 3, 7, 23, 0), true, far),
            Some(utc(2026, 3, 8, 13, 0))
        );
        // Fall back Sun 2026-11-01: Sat 18:00 EDT (22:00 UTC) → Sun 09:00 EST = 14:00 UTC.
        assert_eq!(
            p.next_window_change(utc(2026, 10, 31, 22, 0), true, far),
            Some(utc(2026, 11, 1, 14, 0))
        );
        // A range starting inside the spring-forward gap opens right after it.
        let gap: Policy = toml::from_str(
            "timezone = \"America/New_York\"\nwindow = [{ from = \"02:30\", to = \"04:00\" }]",
        )
        .expect("policy");
        // Sun 2026-03-08 01:00 EST = 06:00 UTC; 02:00 EST → 03:00 EDT = 07:00 UTC.
        assert_eq!(
            gap.next_window_change(utc(2026, 3, 8, 6, 0), true, far),
            Some(utc(2026, 3, 8, 7, 0))
        );
    }

    #[test]
    fn overnight_ranges_and_holidays() {
        let p: Policy = toml::from_str(
            r#"
            timezone = "Europe/London"
            window = [{ days = "fri", from = "22:00", to = "02:00" }]
            holidays = ["2026-12-25"]
            "#,
        )
        .expect("policy");
        let far = utc(2028, 1, 1, 0, 0);
        // Sat 2026-11-28 01:00 GMT: tail of Friday's range; closes 02:00.
        assert!(p.window_open(utc(2026, 11, 28, 1, 0)));
        assert_eq!(
            p.next_window_change(utc(2026, 11, 28, 1, 0), false, far),
            Some(utc(2026, 11, 28, 2, 0))
        );
        // Fri 2026-12-25 is a holiday: next opening Fri 2027-01-01 22:00.
        assert_eq!(
            p.next_window_change(utc(2026, 12, 20, 0, 0), true, far),
            Some(utc(2027, 1, 1, 22, 0))
        );
        // Holiday on the tail day closes at midnight.
        let q: Policy = toml::from_str(
            "window = [{ from = \"22:00\", to = \"02:00\" }]\nholidays = [\"2026-12-25\"]",
        )
        .expect("policy");
        assert_eq!(
            q.next_window_change(utc(2026, 12, 24, 23, 0), false, far),
            Some(utc(2026, 12, 25, 0, 0))
        );
        // Empty window: always open, but holidays still close.
        let any: Policy = toml::from_str("holidays = [\"2026-12-25\"]").expect("policy");
        assert!(any.window_open(utc(2026, 12, 24, 23, 59)));
        assert!(!any.window_open(utc(2026, 12, 25, 12, 0)));
        assert_eq!(
            any.next_window_change(utc(2026, 12, 25, 12, 0), true, far),
            Some(utc(2026, 12, 26, 0, 0))
        );
        // A window that never opens: None, without looping forever.
        let never: Policy = toml::from_str(
            "window = [{ days = \"mon\", from = \"09:00\", to = \"10:00\" }]\nholidays = []",
        )
        .expect("policy");
        assert!(never
            .next_window_change(utc(2026, 11, 24, 0, 0), true, utc(2026, 11, 30, 9, 0))
            .is_none());
    }
}
