//! Holidays: local dates on which a calendar is closed all day.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use crate::CalendarError;

/// Local dates (in the calendar's time zone) that are closed all day.
///
/// A plain sorted set, not a rule engine ("first Monday of May"): both
/// users configure explicit dates, and a set is trivially checked and
/// shown back to an operator. A holiday also closes the after-midnight
/// tail of an overnight range that started the day before (see
/// [`Calendar`](crate::Calendar)).
pub type Holidays = BTreeSet<NaiveDate>;

/// Parses one holiday written as `YYYY-MM-DD`.
///
/// Shared so that every configuration accepts exactly the same date
/// syntax; the error says the date is local to the calendar's zone, which
/// is the usual surprise.
pub fn parse_holiday(text: &str) -> Result<NaiveDate, CalendarError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| CalendarError::InvalidHoliday {
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            parse_holiday("2026-12-25"),
            Ok(NaiveDate::from_ymd_opt(2026, 12, 25).expect("date"))
        );
        assert!(parse_holiday("2026-12-32").is_err());
        assert_eq!(
            parse_holiday("25.12.2026").unwrap_err().to_string(),
            "invalid holiday \"25.12.2026\": expected a date \"YYYY-MM-DD\" (local to the timezone)"
        );
    }
}
