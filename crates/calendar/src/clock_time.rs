//! Times of day as minutes since local midnight, and the `"HH:MM"` syntax.
//!
//! Minutes (a plain `u32`) rather than `NaiveTime` because a range end may
//! be `24:00`, which is not a time of day, and because opening hours never
//! need seconds.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use crate::CalendarError;

/// Minutes in a local day, which is also the value of `24:00`: the end of
/// a range that runs to midnight.
pub const MINUTES_PER_DAY: u32 = 24 * 60;

/// Parses `HH:MM` (24-hour clock, one- or two-digit hour, two-digit
/// minute) into minutes since midnight.
///
/// `24:00` is accepted only when `allow_24`, i.e. for the end of a range,
/// so that "until midnight" can be written without a start of `24:00`
/// meaning nothing. Signs, blanks and seconds are refused.
pub fn parse_hhmm(s: &str, allow_24: bool) -> Result<u32, CalendarError> {
    let err = || CalendarError::InvalidTime {
        text: s.to_owned(),
        allow_24,
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

/// The minute of the day of a local time, seconds dropped: ranges have
/// minute resolution, so 08:59:59 is still before an 09:00 opening.
pub fn minute_of_day(t: NaiveTime) -> u32 {
    t.hour() * 60 + t.minute()
}

/// The local wall time `minute` minutes after the midnight that starts
/// `date`; `24:00` (and anything past it) is the next midnight.
///
/// This is how range boundaries become candidate instants for
/// [`Calendar::next_change`](crate::Calendar::next_change).
pub fn at_minute(date: NaiveDate, minute: u32) -> NaiveDateTime {
    if minute >= MINUTES_PER_DAY {
        let next = date.succ_opt().unwrap_or(date);
        next.and_time(NaiveTime::MIN)
    } else {
        let t = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0).unwrap_or(NaiveTime::MIN);
        date.and_time(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_hhmm("08:00", false), Ok(480));
        assert_eq!(parse_hhmm("8:30", false), Ok(510));
        assert_eq!(parse_hhmm("00:00", false), Ok(0));
        assert_eq!(parse_hhmm("23:59", false), Ok(1439));
        assert_eq!(parse_hhmm("24:00", true), Ok(MINUTES_PER_DAY));
        for bad in [
            "24:00", "12:60", "1200", "12:5", "+1:00", "", ":00", "123:00", "9am",
        ] {
            assert!(parse_hhmm(bad, false).is_err(), "{bad}");
        }
        assert!(parse_hhmm("24:01", true).is_err());
        assert!(parse_hhmm("08:00:00", true).is_err());
        assert!(parse_hhmm(" 08:00", true).is_err());
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            parse_hhmm("9am", false).unwrap_err().to_string(),
            "invalid time \"9am\": expected \"HH:MM\" on a 24-hour clock (00:00-23:59)"
        );
        assert_eq!(
            parse_hhmm("25:00", true).unwrap_err().to_string(),
            "invalid time \"25:00\": expected \"HH:MM\" on a 24-hour clock (00:00-23:59, or 24:00)"
        );
    }

    #[test]
    fn minutes_and_wall_times() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 31).expect("date");
        assert_eq!(at_minute(d, 0).to_string(), "2026-12-31 00:00:00");
        assert_eq!(at_minute(d, 9 * 60 + 30).to_string(), "2026-12-31 09:30:00");
        assert_eq!(at_minute(d, 1440).to_string(), "2027-01-01 00:00:00");
        let t = NaiveTime::from_hms_opt(8, 59, 59).expect("time");
        assert_eq!(minute_of_day(t), 539);
    }
}
