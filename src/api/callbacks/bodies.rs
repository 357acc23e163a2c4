//! The request bodies of the callback operations: each a type whose schema
//! the document shows, parsed from the JSON with errors that name the
//! field.

use axum::body::Bytes;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use utoipa::ToSchema;

use super::super::errors::ApiError;
use super::super::request::{parse_body, str_field, time_field};

/// A callback request. `preferred_start` and `preferred_end` go together
/// (both or neither); the window must end in the future, after its start,
/// and start before the queue's `expire_after_hours` horizon, and it must
/// hold dialing time (else `422` with code `invalid_window` or
/// `no_dialing_time`). The served document lists this server's queues as
/// the `enum` of `queue`.
#[derive(Debug, ToSchema)]
pub(super) struct NewCallback {
    /// 7 to 15 digits, optionally after a `+` (a country code never starts
    /// with 0), with spaces, dashes, dots and parentheses anywhere; stored
    /// and dialed as digits with the `+`. Numbers matching the queue's
    /// `deny` (or missing its `allow`) are refused with `403`.
    // The syntax `number_syntax_ok` checks.
    #[schema(
        max_length = 32,
        pattern = r"^[-\t\n\f\r ().]*(\+[-\t\n\f\r ().]*[1-9]([-\t\n\f\r ().]*[0-9]){6,14}|[0-9]([-\t\n\f\r ().]*[0-9]){6,14})[-\t\n\f\r ().]*$"
    )]
    pub(super) number: String,
    /// A configured queue.
    pub(super) queue: String,
    /// Shown to the agent (null: none).
    #[schema(max_length = 1000)]
    pub(super) context: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime, max_length = 64)]
    pub(super) preferred_start: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime, max_length = 64)]
    pub(super) preferred_end: Option<DateTime<Utc>>,
}

impl NewCallback {
    /// The request, each field checked as the schema says, with errors that
    /// name the field.
    pub(super) fn parse(body: &Bytes) -> Result<NewCallback, ApiError> {
        let v = parse_body(body)?;
        let number = str_field(&v, "number", true, 32)?.unwrap_or_default();
        if !number_syntax_ok(&number) {
            return Err(ApiError::coded(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_number",
                format!(
                    "`number` must be 7 to 15 digits, optionally after a `+` (not followed by 0), \
                     with spaces, dashes, dots and parentheses allowed between: {number:?}"
                ),
            ));
        }
        let queue = str_field(&v, "queue", true, 64)?.unwrap_or_default();
        let context = str_field(&v, "context", false, 1000)?;
        let preferred_start = time_field(&v, "preferred_start")?;
        let preferred_end = time_field(&v, "preferred_end")?;
        if preferred_start.is_some() != preferred_end.is_some() {
            return Err(ApiError::coded(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_window",
                "`preferred_start` and `preferred_end` go together",
            ));
        }
        Ok(NewCallback {
            number,
            queue,
            context,
            preferred_start,
            preferred_end,
        })
    }
}

/// The body of a cancel: a JSON object, or nothing.
#[derive(Debug, ToSchema)]
pub(super) struct CancelCallback {
    /// Why (default: `cancelled by API`).
    #[schema(max_length = 200)]
    pub(super) reason: Option<String>,
}

impl CancelCallback {
    pub(super) fn parse(body: &Bytes) -> Result<CancelCallback, ApiError> {
        let v = parse_body(body)?;
        Ok(CancelCallback {
            reason: str_field(&v, "reason", false, 200)?,
        })
    }
}

/// The body of a reschedule.
#[derive(Debug, ToSchema)]
pub(super) struct RescheduleCallback {
    /// When to dial (a past time means now), within the queue's dialing
    /// hours.
    #[schema(value_type = String, format = DateTime, max_length = 64)]
    pub(super) at: DateTime<Utc>,
}

impl RescheduleCallback {
    pub(super) fn parse(body: &Bytes) -> Result<RescheduleCallback, ApiError> {
        let v = parse_body(body)?;
        match time_field(&v, "at")? {
            Some(at) => Ok(RescheduleCallback { at }),
            None => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "`at` is required",
            )),
        }
    }
}

/// The pattern of the `NewCallback` number (written out in its schema
/// attribute, which takes a literal) for other schemas of phone numbers:
/// what [`number_syntax_ok`] accepts.
pub(in crate::api) const NUMBER_PATTERN: &str = r"^[-\t\n\f\r ().]*(\+[-\t\n\f\r ().]*[1-9]([-\t\n\f\r ().]*[0-9]){6,14}|[0-9]([-\t\n\f\r ().]*[0-9]){6,14})[-\t\n\f\r ().]*$";

/// Whether `number` has the syntax the OpenAPI document's `NewCallback`
/// pattern states: 7 to 15 ASCII digits, optionally after one `+` that
/// comes before every digit and is not followed by `0`, with spaces, tabs,
/// line breaks, dashes, dots and parentheses anywhere. The callback service
/// normalises the same way (and also trims Unicode spaces, which the
/// document does not promise); checking here keeps the document exact.
pub(in crate::api) fn number_syntax_ok(number: &str) -> bool {
    let mut digits = 0;
    let mut plus = false;
    for c in number.chars() {
        match c {
            '-' | '\t' | '\n' | '\x0C' | '\r' | ' ' | '(' | ')' | '.' => {}
            '+' if digits == 0 && !plus => plus = true,
            '0' if plus && digits == 0 => return false,
            '0'..='9' => digits += 1,
            _ => return false,
        }
    }
    (ringback_callback::MIN_DIGITS..=ringback_callback::MAX_DIGITS).contains(&digits)
}

#[cfg(test)]
mod tests {
    use super::number_syntax_ok;
    use ringback_callback::normalize_number;

    /// The documented syntax and the callback service's normalisation
    /// agree on every string of these characters (they differ only on
    /// Unicode spaces at the ends, which the service trims and the document
    /// does not promise).
    #[test]
    fn number_syntax_is_what_the_service_accepts() {
        let alphabet = [
            '+', '0', '1', '5', '9', ' ', '-', '(', ')', '.', '\t', '\n', 'a', '*', '#', '\u{0B}',
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for _ in 0..50_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| {
                    // Mostly digits, so that many strings are numbers.
                    let r = next();
                    if r % 3 == 0 {
                        alphabet[(r / 3 % alphabet.len() as u64) as usize]
                    } else {
                        char::from(b'0' + (r / 3 % 10) as u8)
                    }
                })
                .collect();
            let ours = number_syntax_ok(&s);
            accepted += usize::from(ours);
            let service = normalize_number(&s).is_ok();
            if s.trim() == s.trim_matches(|c: char| c.is_ascii_whitespace()) {
                assert_eq!(ours, service, "{s:?}");
            } else {
                // A vertical tab at an end: the service trims it, we refuse.
                assert!(!ours, "{s:?}");
            }
        }
        assert!(
            accepted > 1_000,
            "only {accepted} numbers among the samples"
        );
        for ok in ["+1 (555) 123-0001", "555.123.0001", "0049 30 1234567"] {
            assert!(number_syntax_ok(ok), "{ok}");
        }
        for bad in [
            "+0123456789",
            "12+34567890",
            "911",
            "1234567890123456",
            "555-CALL-NOW",
        ] {
            assert!(!number_syntax_ok(bad), "{bad}");
        }
    }
}
