//! Sets of weekdays and the `days = "mon-fri"` syntax.

use std::str::FromStr;

use chrono::Weekday;

use crate::CalendarError;

/// A set of weekdays (bit 0 = Monday … bit 6 = Sunday), as written in
/// `days = "mon-fri"`.
///
/// A bit set because it is `Copy`, hashes and compares cheaply, and makes
/// "does this range apply on a Tuesday" one mask test; the bits are public
/// so that configurations can be built and inspected in code and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Days(pub u8);

impl Days {
    /// Every day of the week (`"daily"`, `"everyday"`, `"all"`).
    pub const ALL: Days = Days(0x7f);
    /// Monday to Friday (`"weekdays"`).
    pub const WEEKDAYS: Days = Days(0x1f);
    /// Saturday and Sunday (`"weekends"`).
    pub const WEEKENDS: Days = Days(0x60);

    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    /// Adds `day` to the set.
    pub fn insert(&mut self, day: Weekday) {
        self.0 |= 1 << day.num_days_from_monday();
    }

    /// Whether only the seven weekday bits are set: a check for sets built
    /// in code, since parsing never produces anything else.
    pub fn is_valid(self) -> bool {
        self.0 & !Self::ALL.0 == 0
    }

    /// Parses a day specification: a comma-separated list of days (`mon`,
    /// `monday`, also `tues`, `thur`, `thurs`) and ranges (`mon-fri`;
    /// wrapping ranges like `fri-mon` allowed), or one of `daily`
    /// (`everyday`, `all`), `weekdays`, `weekends`. Case-insensitive,
    /// blanks around items ignored.
    ///
    /// This is the syntax dialplans and callback windows have always
    /// accepted; the error names the first bad item and lists the forms.
    pub fn parse(spec: &str) -> Result<Days, CalendarError> {
        let lower = spec.trim().to_ascii_lowercase();
        match lower.as_str() {
            "daily" | "everyday" | "all" => return Ok(Days::ALL),
            "weekdays" => return Ok(Days::WEEKDAYS),
            "weekends" => return Ok(Days::WEEKENDS),
            _ => {}
        }
        let mut days = Days::default();
        for item in lower.split(',') {
            let item = item.trim();
            let bad = || CalendarError::InvalidDay {
                item: item.to_owned(),
                spec: spec.to_owned(),
            };
            match item.split_once('-') {
                Some((a, b)) => {
                    let a = parse_weekday(a.trim()).ok_or_else(bad)?;
                    let b = parse_weekday(b.trim()).ok_or_else(bad)?;
                    let mut d = a;
                    loop {
                        days.insert(d);
                        if d == b {
                            break;
                        }
                        d = d.succ();
                    }
                }
                None => days.insert(parse_weekday(item).ok_or_else(bad)?),
            }
        }
        Ok(days)
    }
}

impl FromStr for Days {
    type Err = CalendarError;

    /// Same as [`Days::parse`], so `"mon-fri".parse::<Days>()` works.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Days::parse(s)
    }
}

/// One lower-case day name (`mon`, `monday`, `tue`, `tues`, `tuesday`,
/// `wed`, `wednesday`, `thu`, `thur`, `thurs`, `thursday`, `fri`, `friday`,
/// `sat`, `saturday`, `sun`, `sunday`).
///
/// Exposed for callers that take a single day; deliberately stricter than
/// chrono's parser (no `"m"`, no other languages) so that configuration
/// stays unambiguous.
pub fn parse_weekday(name: &str) -> Option<Weekday> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(spec: &str) -> Result<u8, CalendarError> {
        Days::parse(spec).map(|d| d.0)
    }

    #[test]
    fn lists_ranges_and_keywords() {
        assert_eq!(bits("mon-fri"), Ok(0b0011111));
        assert_eq!(bits("sat,sun"), Ok(0b1100000));
        assert_eq!(bits("Daily"), Ok(0x7f));
        assert_eq!(bits("everyday"), Ok(0x7f));
        assert_eq!(bits("ALL"), Ok(0x7f));
        assert_eq!(bits(" weekdays "), Ok(0b0011111));
        assert_eq!(bits("weekends"), Ok(0b1100000));
        assert_eq!(bits("fri-mon"), Ok(0b1110001));
        assert_eq!(bits("mon, wed"), Ok(0b0000101));
        assert_eq!(bits("Tues - Thurs"), Ok(0b0001110));
        assert_eq!(bits("sunday"), Ok(0b1000000));
        assert_eq!(bits("wed-wed"), Ok(0b0000100));
        assert_eq!("sat".parse::<Days>(), Ok(Days(0b0100000)));
    }

    #[test]
    fn errors_name_the_item() {
        assert_eq!(
            Days::parse("mon-fry").unwrap_err().to_string(),
            "invalid day `mon-fry` in \"mon-fry\": expected days like \"mon-fri\", \"sat,sun\", \"daily\", \"weekdays\" or \"weekends\""
        );
        assert_eq!(
            Days::parse("Mon, Funday"),
            Err(CalendarError::InvalidDay {
                item: "funday".into(),
                spec: "Mon, Funday".into()
            })
        );
        assert!(Days::parse("").is_err());
        assert!(Days::parse("mon,").is_err());
        assert!(Days::parse("mon-").is_err());
        assert!(Days::parse("m").is_err());
    }

    #[test]
    fn membership() {
        let mut d = Days::default();
        assert!(!d.contains(Weekday::Sun));
        d.insert(Weekday::Sun);
        assert!(d.contains(Weekday::Sun) && !d.contains(Weekday::Mon));
        assert!(d.is_valid() && Days::ALL.is_valid());
        assert!(!Days(0x80).is_valid());
    }
}
