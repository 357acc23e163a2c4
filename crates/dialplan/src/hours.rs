//! Business-hours evaluation and the small parsers for `days` and `HH:MM`.
//!
//! Hours are compared on the local wall clock of the node's time zone
//! (converted with chrono-tz), which is what makes them correct across
//! daylight-saving changes: "08:00" means 08:00 on the office clock whether
//! that is UTC-5 or UTC-4 that day.

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::model::{Days, Hours};

/// The result of evaluating an [`Hours`] node, kept for traces and logs so
/// an operator can see *why* a call went to the closed branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoursVerdict {
    /// The zone used (node override or plan default).
    pub timezone: Tz,
    /// The local date and time the decision was made at.
    pub local: NaiveDateTime,
    /// Whether the local date is a holiday (which forces `open == false`).
    pub holiday: bool,
    /// Open or closed.
    pub open: bool,
}

impl Hours {
    /// Decides open/closed at `now` (UTC), in this node's zone or
    /// `default_tz`.
    ///
    /// A holiday closes its whole local date, including the tail of an
    /// overnight range that started the day before; an overnight range that
    /// starts on a holiday is closed too (the shift belongs to its first day).
    pub fn evaluate(&self, now: DateTime<Utc>, default_tz: Tz) -> HoursVerdict {
        let tz = self.timezone.unwrap_or(default_tz);
        let local = now.with_timezone(&tz).naive_local();
        let date = local.date();
        let mins = local.hour() * 60 + local.minute();
        let holiday = self.holidays.contains(&date);
        let yesterday = date.pred_opt();
        let yesterday_holiday = yesterday.is_some_and(|d| self.holidays.contains(&d));
        let today = date.weekday();
        let prev = today.pred();
        let open = !holiday
            && self.open.iter().any(|r| {
                if r.from < r.to {
                    r.days.contains(today) && mins >= r.from && mins < r.to
                } else {
                    (r.days.contains(today) && mins >= r.from)
                        || (r.days.contains(prev) && mins < r.to && !yesterday_holiday)
                }
            });
        HoursVerdict {
            timezone: tz,
            local,
            holiday,
            open,
        }
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// Parses a day specification: a comma-separated list of days (`mon`,
/// `monday`) and ranges (`mon-fri`, wrapping ranges like `fri-mon` allowed),
/// or one of `daily`, `weekdays`, `weekends`. Case-insensitive.
pub(crate) fn parse_days(spec: &str) -> Result<Days, String> {
    const ALLOWED: &str =
        "expected days like \"mon-fri\", \"sat,sun\", \"daily\", \"weekdays\" or \"weekends\"";
    let lower = spec.trim().to_ascii_lowercase();
    match lower.as_str() {
        "daily" | "everyday" | "all" => return Ok(Days::ALL),
        "weekdays" => return parse_days("mon-fri"),
        "weekends" => return parse_days("sat,sun"),
        _ => {}
    }
    let mut days = Days::default();
    for item in lower.split(',') {
        let item = item.trim();
        let bad = || format!("invalid day `{item}` in \"{spec}\": {ALLOWED}");
        match item.split_once('-') {
            Some((a, b)) => {
                let a = weekday(a.trim()).ok_or_else(bad)?;
                let b = weekday(b.trim()).ok_or_else(bad)?;
                let mut d = a;
                loop {
                    days.insert(d);
                    if d == b {
                        break;
                    }
                    d = d.succ();
                }
            }
            None => days.insert(weekday(item).ok_or_else(bad)?),
        }
    }
    Ok(days)
}

/// Parses `HH:MM` (24-hour clock) into minutes since midnight. `24:00` is
/// accepted only when `allow_24` (as the end of a range).
pub(crate) fn parse_hhmm(s: &str, allow_24: bool) -> Result<u32, String> {
    let err = || {
        format!(
            "invalid time \"{s}\": expected \"HH:MM\" on a 24-hour clock (00:00-23:59{})",
            if allow_24 { ", or 24:00" } else { "" }
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(err)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(err());
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let h: u32 = h.parse().map_err(|_| err())?;
    let m: u32 = m.parse().map_err(|_| err())?;
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
        return Err(err());
    }
    Ok(h * 60 + m)
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
