//! The weekly schedule: open ranges on given weekdays.

use chrono::Weekday;

use crate::{parse_hhmm, CalendarError, Days, MINUTES_PER_DAY};

/// One range of a weekly schedule, on the calendar's local wall clock:
/// `days = "mon-fri", from = "09:00", to = "18:00"`.
///
/// `from < to`: that part of each listed day. `from > to`: overnight, from
/// `from` on a listed day to `to` the next morning; the shift belongs to
/// the day it *starts* on (Fri 22:00-02:00 covers Saturday 01:00, and a
/// holiday on Friday closes all of it). `to` may be 24:00 (1440). Times are
/// minutes since local midnight (see [`parse_hhmm`]) so that a schedule is
/// plain `Copy` data that compares, hashes and logs cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpenRange {
    /// Days the range starts on.
    pub days: Days,
    /// Start, minutes after local midnight (0-1439).
    pub from: u32,
    /// End (exclusive), minutes after local midnight (1-1440).
    pub to: u32,
}

impl OpenRange {
    /// Open all day, every day: for schedules where "no ranges configured"
    /// means "any time" (callback windows) rather than "never" (dialplan
    /// `hours` nodes), so that the caller can say which it means.
    pub const ALL_DAY: OpenRange = OpenRange {
        days: Days::ALL,
        from: 0,
        to: MINUTES_PER_DAY,
    };

    /// Builds a range from its configuration strings, e.g. `("mon-fri",
    /// "09:00", "18:00")`.
    ///
    /// `to` may be `24:00`; `from == to` is refused
    /// ([`CalendarError::EmptyRange`]) because it reads as both "never"
    /// and "all day".
    pub fn parse(days: &str, from: &str, to: &str) -> Result<Self, CalendarError> {
        let r = OpenRange {
            days: Days::parse(days)?,
            from: parse_hhmm(from, false)?,
            to: parse_hhmm(to, true)?,
        };
        if r.from == r.to {
            return Err(CalendarError::EmptyRange {
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
        Ok(r)
    }

    /// Whether the fields are in range and the range is not empty: a check
    /// for ranges built in code (parsing never produces invalid ones).
    pub fn is_valid(&self) -> bool {
        self.from < MINUTES_PER_DAY
            && self.to >= 1
            && self.to <= MINUTES_PER_DAY
            && self.from != self.to
            && self.days.is_valid()
    }

    /// Whether the range runs past midnight into the next day.
    pub fn is_overnight(&self) -> bool {
        self.from >= self.to
    }

    /// Whether the range covers `minute` of a local day that is a `day`.
    ///
    /// `tail_allowed` says whether the after-midnight tail of an overnight
    /// range that started the previous day counts: `false` when that day
    /// was a holiday, since the shift belongs to the day it starts on.
    pub fn covers(&self, day: Weekday, minute: u32, tail_allowed: bool) -> bool {
        if self.from < self.to {
            self.days.contains(day) && minute >= self.from && minute < self.to
        } else {
            (self.days.contains(day) && minute >= self.from)
                || (tail_allowed && self.days.contains(day.pred()) && minute < self.to)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ranges() {
        assert_eq!(
            OpenRange::parse("mon-fri", "09:00", "18:00"),
            Ok(OpenRange {
                days: Days::WEEKDAYS,
                from: 540,
                to: 1080
            })
        );
        let r = OpenRange::parse("daily", "00:00", "24:00").expect("all day");
        assert_eq!(r, OpenRange::ALL_DAY);
        assert!(!r.is_overnight());
        let night = OpenRange::parse("fri", "22:00", "02:00").expect("overnight");
        assert!(night.is_overnight() && night.is_valid());
        assert_eq!(
            OpenRange::parse("mon", "09:00", "09:00"),
            Err(CalendarError::EmptyRange {
                from: "09:00".into(),
                to: "09:00".into()
            })
        );
        assert!(matches!(
            OpenRange::parse("mon", "24:00", "09:00"),
            Err(CalendarError::InvalidTime {
                allow_24: false,
                ..
            })
        ));
        assert!(matches!(
            OpenRange::parse("mon-fry", "08:00", "09:00"),
            Err(CalendarError::InvalidDay { .. })
        ));
    }

    #[test]
    fn validity_of_hand_built_ranges() {
        let ok = OpenRange::ALL_DAY;
        assert!(ok.is_valid());
        assert!(!OpenRange { from: 1440, ..ok }.is_valid());
        assert!(!OpenRange { to: 0, ..ok }.is_valid());
        assert!(!OpenRange { to: 1441, ..ok }.is_valid());
        assert!(!OpenRange {
            from: 60,
            to: 60,
            ..ok
        }
        .is_valid());
        assert!(!OpenRange {
            days: Days(0xff),
            ..ok
        }
        .is_valid());
    }

    #[test]
    fn overnight_coverage_belongs_to_the_start_day() {
        let r = OpenRange::parse("fri", "22:00", "02:00").expect("range");
        assert!(r.covers(Weekday::Fri, 22 * 60, true));
        assert!(r.covers(Weekday::Sat, 90, true));
        assert!(!r.covers(Weekday::Sat, 90, false), "Friday was a holiday");
        assert!(!r.covers(Weekday::Sat, 120, true), "end is exclusive");
        assert!(!r.covers(Weekday::Fri, 60, true), "Thursday's tail");
        assert!(!r.covers(Weekday::Sat, 23 * 60, true));
        let day = OpenRange::parse("mon", "09:00", "17:00").expect("range");
        assert!(day.covers(Weekday::Mon, 9 * 60, false));
        assert!(!day.covers(Weekday::Mon, 17 * 60, true));
        assert!(!day.covers(Weekday::Tue, 10 * 60, true));
    }
}
