//! A calendar: weekly schedule + holidays + time zone, evaluated at
//! instants, and the search for the next opening or closing.

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::{at_minute, minute_of_day, resolve, Holidays, OpenRange};

/// How far [`Calendar::next_change`] looks ahead: 400 days, a year of
/// holidays and then some. A bound, so that a schedule that never opens
/// (or only on holidays) answers `None` instead of looping forever.
pub const MAX_SCAN_DAYS: usize = 400;

/// What a calendar says about one instant, with the local time it was
/// decided at — kept so traces and logs can show *why* something was
/// closed (a holiday, or simply outside the hours, on which clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The zone used.
    pub timezone: Tz,
    /// The local date and time the decision was made at.
    pub local: NaiveDateTime,
    /// Whether the local date is a holiday (which forces `open == false`).
    pub holiday: bool,
    /// Open or closed.
    pub open: bool,
}

/// Opening hours in one time zone: a weekly schedule of [`OpenRange`]s and
/// [`Holidays`], evaluated on the zone's local wall clock.
///
/// Rules, shared by dialplan `hours` nodes and callback dialing windows: an
/// instant is open when its local date is not a holiday and some range
/// covers its local minute; the after-midnight tail of an overnight range
/// is closed when the day it started on was a holiday. An empty schedule
/// is never open (use [`OpenRange::ALL_DAY`] for "any time").
///
/// The calendar *borrows* its ranges and holidays: its users keep them in
/// their own configuration types and evaluate per call, so a view costs
/// nothing to build. It is pure — every instant is passed in, nothing reads
/// a clock — so each rule is a unit test with fixed times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar<'a> {
    /// The zone whose wall clock the ranges and holidays are read on.
    pub timezone: Tz,
    /// The weekly schedule (any order; overlaps are fine).
    pub open: &'a [OpenRange],
    /// Local dates closed all day.
    pub holidays: &'a Holidays,
}

impl<'a> Calendar<'a> {
    /// A calendar over `open` and `holidays` in `timezone`.
    pub fn new(timezone: Tz, open: &'a [OpenRange], holidays: &'a Holidays) -> Self {
        Calendar {
            timezone,
            open,
            holidays,
        }
    }

    /// Decides open/closed at `at` and says on which local time and
    /// whether a holiday was the reason.
    pub fn verdict(&self, at: DateTime<Utc>) -> Verdict {
        let local = at.with_timezone(&self.timezone).naive_local();
        let date = local.date();
        let holiday = self.holidays.contains(&date);
        let tail_allowed = !date.pred_opt().is_some_and(|d| self.holidays.contains(&d));
        let minute = minute_of_day(local.time());
        let today = date.weekday();
        let open = !holiday
            && self
                .open
                .iter()
                .any(|r| r.covers(today, minute, tail_allowed));
        Verdict {
            timezone: self.timezone,
            local,
            holiday,
            open,
        }
    }

    /// Whether the calendar is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.verdict(at).open
    }

    /// The first instant at or after `after` at which the calendar is open
    /// (`after` itself when it is open then), looking at most
    /// [`MAX_SCAN_DAYS`] ahead: "when can we call", "when do we open".
    pub fn next_opening(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_change(after, true, DateTime::<Utc>::MAX_UTC)
    }

    /// The first instant at or after `after` at which the calendar is
    /// closed: the end of the current opening when open at `after`,
    /// `after` itself when closed. `None` if always open for
    /// [`MAX_SCAN_DAYS`].
    pub fn next_closing(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_change(after, false, DateTime::<Utc>::MAX_UTC)
    }

    /// The earliest instant in `[from, until)` at which
    /// [`is_open`](Self::is_open) is `want_open`, or `None`.
    ///
    /// The answer can only change at a range's start or end, or at local
    /// midnight (holidays), so those instants are the candidates, visited
    /// in time order. A local time that does not exist (spring-forward
    /// gap) maps to the first instant after the gap; one that exists twice
    /// (fall-back) to its first occurrence (see [`resolve`]) — a range
    /// boundary *inside* the repeated hour is therefore seen once, at its
    /// first occurrence, by this search (the open/closed test itself
    /// follows the wall clock). Looks at most [`MAX_SCAN_DAYS`] ahead;
    /// `until` lets a caller with its own deadline stop earlier.
    pub fn next_change(
        &self,
        from: DateTime<Utc>,
        want_open: bool,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if from >= until {
            return None;
        }
        if self.is_open(from) == want_open {
            return Some(from);
        }
        let tz = self.timezone;
        let first = from.with_timezone(&tz).date_naive().pred_opt()?;
        let mut pending: Vec<DateTime<Utc>> = Vec::new();
        let mut date = first;
        for _ in 0..MAX_SCAN_DAYS {
            let next_date = date.succ_opt()?;
            pending.push(resolve(tz, date.and_time(NaiveTime::MIN)));
            for r in self.open {
                if !r.days.contains(date.weekday()) {
                    continue;
                }
                pending.push(resolve(tz, at_minute(date, r.from)));
                let end_day = if r.to <= r.from { next_date } else { date };
                pending.push(resolve(tz, at_minute(end_day, r.to)));
            }
            // Later dates only produce candidates from their own midnight on.
            let horizon = resolve(tz, next_date.and_time(NaiveTime::MIN));
            pending.sort_unstable();
            pending.dedup();
            let ready = pending.partition_point(|c| *c < horizon);
            for &c in &pending[..ready] {
                if c >= until {
                    return None;
                }
                if c > from && self.is_open(c) == want_open {
                    return Some(c);
                }
            }
            pending.drain(..ready);
            if horizon >= until {
                // Candidates past `horizon` are past `until` too.
                return None;
            }
            date = next_date;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_holiday;
    use chrono::TimeZone;
    use chrono_tz::{America, Europe};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid")
    }

    fn ranges(specs: &[(&str, &str, &str)]) -> Vec<OpenRange> {
        specs
            .iter()
            .map(|(d, f, t)| OpenRange::parse(d, f, t).expect("range"))
            .collect()
    }

    fn holidays(dates: &[&str]) -> Holidays {
        dates
            .iter()
            .map(|d| parse_holiday(d).expect("date"))
            .collect()
    }

    #[test]
    fn weekday_hours_with_exclusive_end() {
        let open = ranges(&[("mon-fri", "08:00", "18:00")]);
        let none = Holidays::new();
        let cal = Calendar::new(America::New_York, &open, &none);
        // Mon 2026-11-23 10:00 EST = 15:00 UTC.
        let v = cal.verdict(utc(2026, 11, 23, 15, 0));
        assert!(v.open && !v.holiday);
        assert_eq!(v.local.to_string(), "2026-11-23 10:00:00");
        assert_eq!(v.timezone, America::New_York);
        assert!(!cal.is_open(utc(2026, 11, 23, 12, 59)));
        assert!(cal.is_open(utc(2026, 11, 23, 13, 0)));
        assert!(!cal.is_open(utc(2026, 11, 23, 23, 0)));
        // Saturday.
        assert!(!cal.is_open(utc(2026, 11, 28, 15, 0)));
    }

    #[test]
    fn holiday_closes_its_local_date() {
        let open = [OpenRange::ALL_DAY];
        let hol = holidays(&["2026-12-25"]);
        let cal = Calendar::new(America::New_York, &open, &hol);
        let v = cal.verdict(utc(2026, 12, 25, 17, 0));
        assert!(v.holiday && !v.open);
        // 03:00 UTC on the 25th is still the 24th in New York.
        assert!(cal.is_open(utc(2026, 12, 25, 3, 0)));
        assert!(cal.is_open(utc(2026, 12, 26, 17, 0)));
    }

    #[test]
    fn overnight_range_and_holiday_tail() {
        let open = ranges(&[("fri", "22:00", "02:00")]);
        let none = Holidays::new();
        let cal = Calendar::new(Europe::London, &open, &none);
        // Fri 2026-11-27 23:00 GMT, Sat 01:30 (tail), Sat 02:00 closed.
        assert!(cal.is_open(utc(2026, 11, 27, 23, 0)));
        assert!(cal.is_open(utc(2026, 11, 28, 1, 30)));
        assert!(!cal.is_open(utc(2026, 11, 28, 2, 0)));
        // Fri 01:00 would be Thursday's tail: closed.
        assert!(!cal.is_open(utc(2026, 11, 27, 1, 0)));
        // End of the current window: Sat 02:00.
        assert_eq!(
            cal.next_closing(utc(2026, 11, 28, 1, 0)),
            Some(utc(2026, 11, 28, 2, 0))
        );

        let daily = ranges(&[("daily", "22:00", "02:00")]);
        let hol = holidays(&["2026-12-24", "2026-12-31"]);
        let cal = Calendar::new(Europe::London, &daily, &hol);
        // The shift of the 24th belongs to a holiday: closed on the 25th too.
        assert!(!cal.is_open(utc(2026, 12, 25, 1, 0)));
        assert!(cal.is_open(utc(2026, 12, 26, 1, 0)));
        // The 30th's shift is cut at midnight by the holiday on the 31st.
        assert_eq!(
            cal.next_closing(utc(2026, 12, 30, 23, 0)),
            Some(utc(2026, 12, 31, 0, 0))
        );
    }

    #[test]
    fn next_opening_across_a_weekend() {
        let open = ranges(&[("mon-fri", "09:00", "18:00")]);
        let none = Holidays::new();
        let cal = Calendar::new(America::New_York, &open, &none);
        // Fri 2026-11-27 19:00 EST → Mon 09:00 EST = 14:00 UTC.
        assert_eq!(
            cal.next_opening(utc(2026, 11, 28, 0, 0)),
            Some(utc(2026, 11, 30, 14, 0))
        );
        // Already open: now; and the window ends at 18:00 EST = 23:00 UTC.
        let monday = utc(2026, 11, 30, 15, 0);
        assert_eq!(cal.next_opening(monday), Some(monday));
        assert_eq!(cal.next_closing(monday), Some(utc(2026, 11, 30, 23, 0)));
    }

    #[test]
    fn next_opening_across_a_holiday() {
        let open = ranges(&[("mon-fri", "09:00", "18:00")]);
        let hol = holidays(&["2026-12-25"]);
        let cal = Calendar::new(America::New_York, &open, &hol);
        // Thu 2026-12-24 20:00 EST: Fri 25th is a holiday → Mon 28th.
        assert_eq!(
            cal.next_opening(utc(2026, 12, 25, 1, 0)),
            Some(utc(2026, 12, 28, 14, 0))
        );
        // `until` bounds the search (exclusive).
        assert_eq!(
            cal.next_change(utc(2026, 12, 25, 1, 0), true, utc(2026, 12, 28, 14, 0)),
            None
        );
        assert_eq!(
            cal.next_change(utc(2026, 12, 25, 1, 0), true, utc(2026, 12, 28, 14, 1)),
            Some(utc(2026, 12, 28, 14, 0))
        );
        // Empty interval.
        let t = utc(2026, 12, 28, 15, 0);
        assert_eq!(cal.next_change(t, true, t), None);
    }

    #[test]
    fn dst_spring_forward_in_berlin() {
        // Daily 09:00-17:00; Berlin springs forward Sun 2026-03-29.
        let open = ranges(&[("daily", "09:00", "17:00")]);
        let none = Holidays::new();
        let cal = Calendar::new(Europe::Berlin, &open, &none);
        // Sat 18:00 CET (17:00 UTC) → Sun 09:00 CEST = 07:00 UTC (not 08:00).
        assert_eq!(
            cal.next_opening(utc(2026, 3, 28, 17, 0)),
            Some(utc(2026, 3, 29, 7, 0))
        );
        let v = cal.verdict(utc(2026, 3, 29, 7, 30));
        assert!(v.open);
        assert_eq!(v.local.to_string(), "2026-03-29 09:30:00");
        assert_eq!(
            cal.next_closing(utc(2026, 3, 29, 7, 30)),
            Some(utc(2026, 3, 29, 15, 0))
        );
        // A range starting inside the gap (02:00-03:00 skipped) opens at
        // the end of the gap: 03:00 CEST = 01:00 UTC.
        let gap = ranges(&[("daily", "02:30", "04:00")]);
        let cal = Calendar::new(Europe::Berlin, &gap, &none);
        assert_eq!(
            cal.next_opening(utc(2026, 3, 29, 0, 0)),
            Some(utc(2026, 3, 29, 1, 0))
        );
    }

    #[test]
    fn dst_fall_back_in_berlin_and_new_york() {
        let open = ranges(&[("daily", "09:00", "17:00")]);
        let none = Holidays::new();
        // Berlin falls back Sun 2026-10-25: Sat 18:00 CEST (16:00 UTC) →
        // Sun 09:00 CET = 08:00 UTC.
        let cal = Calendar::new(Europe::Berlin, &open, &none);
        assert_eq!(
            cal.next_opening(utc(2026, 10, 24, 16, 0)),
            Some(utc(2026, 10, 25, 8, 0))
        );
        // New York falls back Sun 2026-11-01: → 09:00 EST = 14:00 UTC.
        let cal = Calendar::new(America::New_York, &open, &none);
        assert_eq!(
            cal.next_opening(utc(2026, 10, 31, 22, 0)),
            Some(utc(2026, 11, 1, 14, 0))
        );
        // A range starting inside the repeated hour opens at its first
        // occurrence (02:30 CEST = 00:30 UTC), and the wall clock decides
        // open/closed during the repeat.
        let repeat = ranges(&[("daily", "02:30", "04:00")]);
        let cal = Calendar::new(Europe::Berlin, &repeat, &none);
        assert_eq!(
            cal.next_opening(utc(2026, 10, 25, 0, 0)),
            Some(utc(2026, 10, 25, 0, 30))
        );
        assert!(!cal.is_open(utc(2026, 10, 25, 1, 15)), "02:15 CET");
        assert!(cal.is_open(utc(2026, 10, 25, 1, 30)), "02:30 CET");
    }

    #[test]
    fn never_open_answers_none() {
        let none = Holidays::new();
        let cal = Calendar::new(Tz::UTC, &[], &none);
        assert!(!cal.is_open(utc(2026, 1, 1, 12, 0)));
        assert_eq!(cal.next_opening(utc(2026, 1, 1, 12, 0)), None);
        let t = utc(2026, 1, 1, 12, 0);
        assert_eq!(cal.next_closing(t), Some(t));
        // Always open: no closing within the scan.
        let all = [OpenRange::ALL_DAY];
        let cal = Calendar::new(Tz::UTC, &all, &none);
        assert_eq!(cal.next_closing(t), None);
        // A Monday-only schedule searched with `until` at the next Monday's
        // opening: nothing in `[from, until)` → None; unbounded → Monday.
        let mon = ranges(&[("mon", "09:00", "10:00")]);
        let cal = Calendar::new(Tz::UTC, &mon, &none);
        assert_eq!(
            cal.next_change(utc(2026, 11, 24, 0, 0), true, utc(2026, 11, 30, 9, 0)),
            None
        );
        assert_eq!(
            cal.next_opening(utc(2026, 11, 24, 0, 0)),
            Some(utc(2026, 11, 30, 9, 0))
        );
    }
}
