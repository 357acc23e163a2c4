//! The one error type of the calendar's parsers.

/// Why a piece of calendar configuration could not be parsed or used.
///
/// Typed (rather than a `String`) so that each user can either show the
/// text as is (`Display` is written for an operator reading a config
/// error: it quotes the input and says what is expected) or re-word one
/// case for its own context, as the callback policy does for empty ranges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// A day specification item that is neither a day, a day range nor a
    /// keyword.
    #[error(
        "invalid day `{item}` in \"{spec}\": expected days like \"mon-fri\", \"sat,sun\", \"daily\", \"weekdays\" or \"weekends\""
    )]
    InvalidDay {
        /// The offending comma-separated item, lower-cased and trimmed.
        item: String,
        /// The whole specification as written.
        spec: String,
    },
    /// A time that is not `HH:MM` on a 24-hour clock (or `24:00` where an
    /// end is expected).
    #[error(
        "invalid time \"{text}\": expected \"HH:MM\" on a 24-hour clock (00:00-23:59{})",
        if *.allow_24 { ", or 24:00" } else { "" }
    )]
    InvalidTime {
        /// The time as written.
        text: String,
        /// Whether `24:00` would have been accepted (the end of a range).
        allow_24: bool,
    },
    /// A range whose start equals its end: neither "nothing" nor "all
    /// day" is a safe reading, so it is refused.
    #[error("empty time range {from}-{to}: for a whole day use from = \"00:00\", to = \"24:00\"")]
    EmptyRange {
        /// The start as written.
        from: String,
        /// The end as written.
        to: String,
    },
    /// A holiday that is not a `YYYY-MM-DD` date.
    #[error("invalid holiday \"{text}\": expected a date \"YYYY-MM-DD\" (local to the timezone)")]
    InvalidHoliday {
        /// The date as written.
        text: String,
    },
    /// A time zone name that is not in the IANA database.
    #[error(
        "unknown timezone `{name}`: expected an IANA name such as \"America/New_York\", \"Europe/Berlin\" or \"UTC\""
    )]
    UnknownTimezone {
        /// The name as written.
        name: String,
    },
}
