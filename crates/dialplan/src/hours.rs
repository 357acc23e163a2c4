//! Business-hours evaluation of `hours` nodes, and the `days` and `HH:MM`
//! parsers the loader uses for them.
//!
//! The syntax and the rules (overnight ranges, holidays, wall-clock time
//! across daylight-saving changes) live in `ringback-calendar`, shared with
//! callback dialing windows; this module only picks the node's zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use ringback_calendar::{Calendar, CalendarError, Days};

use crate::model::Hours;

/// The result of evaluating an [`Hours`] node, kept for traces and logs so
/// an operator can see *why* a call went to the closed branch.
pub use ringback_calendar::Verdict as HoursVerdict;

/// `HH:MM` into minutes since midnight; `24:00` only when `allow_24` (as
/// the end of a range).
pub(crate) use ringback_calendar::parse_hhmm;

impl Hours {
    /// This node's opening hours as a calendar, in its own zone or
    /// `default_tz` (the plan's), e.g. to find the next opening.
    pub fn calendar(&self, default_tz: Tz) -> Calendar<'_> {
        Calendar::new(
            self.timezone.unwrap_or(default_tz),
            &self.open,
            &self.holidays,
        )
    }

    /// Decides open/closed at `now` (UTC), in this node's zone or
    /// `default_tz`.
    ///
    /// A holiday closes its whole local date, including the tail of an
    /// overnight range that started the day before; an overnight range that
    /// starts on a holiday is closed too (the shift belongs to its first day).
    pub fn evaluate(&self, now: DateTime<Utc>, default_tz: Tz) -> HoursVerdict {
        self.calendar(default_tz).verdict(now)
    }
}

/// Parses a day specification (`"mon-fri"`, `"sat,sun"`, `"daily"`, …); see
/// [`Days::parse`].
pub(crate) fn parse_days(spec: &str) -> Result<Days, CalendarError> {
    Days::parse(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OpenRange;
    use chrono::{NaiveDate, TimeZone};
    use std::collections::BTreeSet;

    fn hours(open: Vec<OpenRange>, holidays: &[&str]) -> Hours {
        Hours {
            timezone: Some(chrono_tz::America::New_York),
            open,
            holidays: holidays
                .iter()
                .map(|d| d.parse::<NaiveDate>().expect("test date"))
                .collect::<BTreeSet<_>>(),
            open_next: "open".into(),
            closed_next: "closed".into(),
        }
    }

    fn range(days: &str, from: &str, to: &str) -> OpenRange {
        OpenRange {
            days: parse_days(days).expect("days"),
            from: parse_hhmm(from, false).expect("from"),
            to: parse_hhmm(to, true).expect("to"),
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn day_specs() {
        assert_eq!(parse_days("mon-fri").map(|d| d.0), Ok(0b0011111));
        assert_eq!(parse_days("sat,sun").map(|d| d.0), Ok(0b1100000));
        assert_eq!(parse_days("Daily").map(|d| d.0), Ok(0x7f));
        assert_eq!(parse_days("fri-mon").map(|d| d.0), Ok(0b1110001));
        assert_eq!(parse_days("mon, wed").map(|d| d.0), Ok(0b0000101));
        assert_eq!(parse_days("weekends").map(|d| d.0), Ok(0b1100000));
        assert!(parse_days("mon-fry").is_err());
        assert!(parse_days("").is_err());
        assert!(parse_days("mon,").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_hhmm("08:00", false), Ok(480));
        assert_eq!(parse_hhmm("8:30", false), Ok(510));
        assert_eq!(parse_hhmm("23:59", false), Ok(1439));
        assert_eq!(parse_hhmm("24:00", true), Ok(1440));
        assert!(parse_hhmm("24:00", false).is_err());
        assert!(parse_hhmm("24:01", true).is_err());
        assert!(parse_hhmm("12:60", false).is_err());
        assert!(parse_hhmm("1200", false).is_err());
        assert!(parse_hhmm("12:5", false).is_err());
        assert!(parse_hhmm("+1:00", false).is_err());
    }

    #[test]
    fn inside_and_outside_weekday_hours() {
        let h = hours(vec![range("mon-fri", "08:00", "18:00")], &[]);
        // Mon 2026-11-23 10:00 EST = 15:00 UTC
        let v = h.evaluate(utc(2026, 11, 23, 15, 0), Tz::UTC);
        assert!(v.open);
        assert_eq!(v.local.to_string(), "2026-11-23 10:00:00");
        // 07:59 local: closed; 08:00: open; 18:00: closed (end exclusive)
        assert!(!h.evaluate(utc(2026, 11, 23, 12, 59), Tz::UTC).open);
        assert!(h.evaluate(utc(2026, 11, 23, 13, 0), Tz::UTC).open);
        assert!(!h.evaluate(utc(2026, 11, 23, 23, 0), Tz::UTC).open);
        // Saturday: closed
        assert!(!h.evaluate(utc(2026, 11, 28, 15, 0), Tz::UTC).open);
    }

    #[test]
    fn holiday_closes_the_whole_day() {
        let h = hours(vec![range("daily", "00:00", "24:00")], &["2026-12-25"]);
        let v = h.evaluate(utc(2026, 12, 25, 17, 0), Tz::UTC);
        assert!(v.holiday && !v.open);
        // 2026-12-25 03:00 UTC is still Dec 24 in New York: open
        assert!(h.evaluate(utc(2026, 12, 25, 3, 0), Tz::UTC).open);
        assert!(h.evaluate(utc(2026, 12, 26, 17, 0), Tz::UTC).open);
    }

    #[test]
    fn overnight_range_belongs_to_its_start_day() {
        let h = hours(vec![range("fri", "22:00", "02:00")], &[]);
        // Fri 2026-11-27 23:00 EST = Sat 04:00 UTC
        assert!(h.evaluate(utc(2026, 11, 28, 4, 0), Tz::UTC).open);
        // Sat 01:30 local = 06:30 UTC: tail of Friday's range
        assert!(h.evaluate(utc(2026, 11, 28, 6, 30), Tz::UTC).open);
        // Sat 02:00 local: closed
        assert!(!h.evaluate(utc(2026, 11, 28, 7, 0), Tz::UTC).open);
        // Fri 01:00 local (tail of Thursday, not in the set): closed
        assert!(!h.evaluate(utc(2026, 11, 27, 6, 0), Tz::UTC).open);
        // Sat 23:00 local: closed
        assert!(!h.evaluate(utc(2026, 11, 29, 4, 0), Tz::UTC).open);
    }

    #[test]
    fn overnight_tail_after_a_holiday_is_closed() {
        let h = hours(vec![range("daily", "22:00", "02:00")], &["2026-12-24"]);
        // Dec 25 01:00 local (06:00 UTC): the shift started on a holiday
        assert!(!h.evaluate(utc(2026, 12, 25, 6, 0), Tz::UTC).open);
        // Dec 26 01:00 local: normal
        assert!(h.evaluate(utc(2026, 12, 26, 6, 0), Tz::UTC).open);
    }

    #[test]
    fn dst_change_keeps_wall_clock_hours() {
        // Opens 09:00 local. US DST starts Sun 2026-03-08.
        let h = hours(vec![range("daily", "09:00", "17:00")], &[]);
        // Sat 2026-03-07 13:30 UTC = 08:30 EST: closed
        assert!(!h.evaluate(utc(2026, 3, 7, 13, 30), Tz::UTC).open);
        // Sun 2026-03-08 13:30 UTC = 09:30 EDT: open (a fixed offset would say 08:30)
        let v = h.evaluate(utc(2026, 3, 8, 13, 30), Tz::UTC);
        assert!(v.open);
        assert_eq!(v.local.to_string(), "2026-03-08 09:30:00");
        // Sun 21:30 UTC = 17:30 EDT: closed
        assert!(!h.evaluate(utc(2026, 3, 8, 21, 30), Tz::UTC).open);
    }

    #[test]
    fn node_zone_overrides_plan_zone() {
        let mut h = hours(vec![range("daily", "09:00", "17:00")], &[]);
        h.timezone = None;
        // 15:00 UTC is open in UTC but 07:00 in Los Angeles
        assert!(h.evaluate(utc(2026, 11, 23, 15, 0), Tz::UTC).open);
        assert!(
            !h.evaluate(utc(2026, 11, 23, 15, 0), chrono_tz::America::Los_Angeles)
                .open
        );
    }
}
