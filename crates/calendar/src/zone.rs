//! Time zones: naming them and turning local wall times into instants.
//!
//! Opening hours are compared on the local wall clock (chrono-tz), which is
//! what keeps them right across daylight-saving changes: "08:00" means
//! 08:00 on the office clock whether that is UTC-5 or UTC-4 that day.

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::CalendarError;

/// Parses an IANA time zone name (`"America/New_York"`, `"UTC"`).
///
/// Only the exact IANA spelling is accepted; suggestions for near misses
/// are left to callers that know where the name came from.
pub fn parse_timezone(name: &str) -> Result<Tz, CalendarError> {
    name.parse().map_err(|_| CalendarError::UnknownTimezone {
        name: name.to_owned(),
    })
}

/// The instant at which the wall clock of `tz` shows `local`.
///
/// Every local time must map to exactly one instant for "next opening" to
/// be well defined, so: a time that exists twice (fall-back overlap) maps
/// to its *earliest* occurrence, and a time that does not exist
/// (spring-forward gap) maps to the first valid minute after the gap —
/// a range starting at 02:30 on a day whose 02:00-03:00 is skipped opens
/// at 03:00.
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut t = local;
    // Gaps are at most a day long (Samoa skipped 2011-12-30).
    for _ in 0..=(26 * 60) {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc);
        }
        match t.checked_add_signed(TimeDelta::minutes(1)) {
            Some(next) => t = next,
            None => break,
        }
    }
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use chrono_tz::{America, Europe};

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, mi, 0))
            .expect("valid")
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.from_utc_datetime(&local(y, mo, d, h, mi))
    }

    #[test]
    fn names() {
        assert_eq!(parse_timezone("Europe/Berlin"), Ok(Europe::Berlin));
        assert_eq!(
            parse_timezone("Mars/Olympus").unwrap_err().to_string(),
            "unknown timezone `Mars/Olympus`: expected an IANA name such as \"America/New_York\", \"Europe/Berlin\" or \"UTC\""
        );
    }

    #[test]
    fn ordinary_times() {
        // Winter: CET = UTC+1; summer: CEST = UTC+2.
        assert_eq!(
            resolve(Europe::Berlin, local(2026, 1, 15, 9, 0)),
            utc(2026, 1, 15, 8, 0)
        );
        assert_eq!(
            resolve(Europe::Berlin, local(2026, 7, 15, 9, 0)),
            utc(2026, 7, 15, 7, 0)
        );
    }

    #[test]
    fn spring_forward_gap_maps_to_the_end_of_the_gap() {
        // Berlin skips 02:00-03:00 on Sun 2026-03-29 (01:00 UTC).
        assert_eq!(
            resolve(Europe::Berlin, local(2026, 3, 29, 2, 30)),
            utc(2026, 3, 29, 1, 0)
        );
        // New York skips 02:00-03:00 on Sun 2026-03-08 (07:00 UTC).
        assert_eq!(
            resolve(America::New_York, local(2026, 3, 8, 2, 0)),
            utc(2026, 3, 8, 7, 0)
        );
    }

    #[test]
    fn fall_back_overlap_maps_to_the_first_occurrence() {
        // Berlin repeats 02:00-03:00 on Sun 2026-10-25: first as CEST.
        assert_eq!(
            resolve(Europe::Berlin, local(2026, 10, 25, 2, 30)),
            utc(2026, 10, 25, 0, 30)
        );
        // New York repeats 01:00-02:00 on Sun 2026-11-01: first as EDT.
        assert_eq!(
            resolve(America::New_York, local(2026, 11, 1, 1, 30)),
            utc(2026, 11, 1, 5, 30)
        );
    }
}
