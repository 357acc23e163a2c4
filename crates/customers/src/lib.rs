//! The customer directory's rules, without I/O: what a customer record may
//! hold ([`Customer`], checked field by field with errors that name the
//! field), the CSV format of `ringback customers import` and `export`
//! ([`csv_format`]), and the in-memory index every inbound call looks its
//! caller up in ([`Index`]).
//!
//! The shell stores records (`src/store/customers.rs`), reads and writes
//! the files (`src/customers_cli.rs`), serves the API
//! (`src/api/customers.rs`) and keeps the live index current
//! (`src/directory.rs`); the rules all of them apply are here, once.
//!
//! Numbers are normalised as callback numbers are
//! ([`ringback_callback::normalize_number`]): digits with an optional
//! leading `+`, separators (spaces, dashes, dots, parentheses) removed,
//! 7 to 15 digits. So one subscriber has one spelling, and a directory
//! number compares equal to a callback number.

pub mod csv_format;
mod index;

pub use index::{routing_key, Index, Known};

/// Most characters in a name.
pub const NAME_MAX: usize = 200;
/// Most characters in an account id.
pub const ACCOUNT_MAX: usize = 64;
/// Most characters in the notes.
pub const NOTES_MAX: usize = 2000;
/// Most characters in a language tag.
pub const LANGUAGE_MAX: usize = 35;
/// Most characters in one tag.
pub const TAG_MAX: usize = 64;
/// Most tags per customer.
pub const TAGS_MAX: usize = 20;
/// Most numbers per customer.
pub const NUMBERS_MAX: usize = 20;
/// Highest priority (a VIP's; 0 is an ordinary customer). The ACD's
/// priorities go up to the same value.
pub const PRIORITY_MAX: i32 = 1000;

/// One customer as stored, every field checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Customer {
    /// Shown to the agent (`X-Ringback-Caller-Name`): 1 to [`NAME_MAX`]
    /// characters, no control characters.
    pub name: String,
    /// Normalised numbers, at least one, each belonging to this customer
    /// only; the first is the main one.
    pub numbers: Vec<String>,
    /// A language tag such as `en` or `pt-BR`.
    pub language: Option<String>,
    /// 0 for an ordinary customer; above 0 a VIP, higher first.
    pub priority: i32,
    /// The customer's account id in another system (`X-Ringback-Account`).
    pub account: Option<String>,
    /// Free-form notes (line breaks and tabs allowed).
    pub notes: String,
    /// Labels (no `;`, no control characters, no space at either end).
    pub tags: Vec<String>,
}

/// A field that does not hold what it must: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct FieldError {
    /// The field (`name`, `numbers`, `language`, …).
    pub field: &'static str,
    /// What is wrong, with the offending value where that helps.
    pub reason: String,
}

fn field_error(field: &'static str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field,
        reason: reason.into(),
    }
}

/// A field's text may not be longer than `max` characters nor hold
/// characters `bad` refuses.
fn text(
    field: &'static str,
    value: &str,
    max: usize,
    bad: fn(char) -> bool,
) -> Result<(), FieldError> {
    let n = value.chars().count();
    if n > max {
        return Err(field_error(
            field,
            format!("longer than {max} characters ({n})"),
        ));
    }
    if let Some(c) = value.chars().find(|&c| bad(c)) {
        return Err(field_error(
            field,
            format!("contains the control character {:?}", c),
        ));
    }
    Ok(())
}

/// A control character as JSON Schema patterns (and the API document) see
/// them: U+0000 to U+001F and U+007F.
fn is_control(c: char) -> bool {
    c <= '\u{1F}' || c == '\u{7F}'
}

/// The same, but tabs and line breaks are allowed (notes).
fn is_control_in_notes(c: char) -> bool {
    is_control(c) && !matches!(c, '\t' | '\n' | '\r')
}

/// A name: 1 to [`NAME_MAX`] characters, no control characters.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(field_error("name", "must not be empty"));
    }
    text("name", name, NAME_MAX, is_control)
}

/// An account id: up to [`ACCOUNT_MAX`] characters, no control characters.
pub fn check_account(account: &str) -> Result<(), FieldError> {
    text("account", account, ACCOUNT_MAX, is_control)
}

/// Notes: up to [`NOTES_MAX`] characters; tabs and line breaks allowed.
pub fn check_notes(notes: &str) -> Result<(), FieldError> {
    text("notes", notes, NOTES_MAX, is_control_in_notes)
}

/// A language tag (BCP 47 shape): 2 to 8 letters, then `-` and 1 to 8
/// letters or digits, any number of times (`en`, `pt-BR`, `zh-Hant-TW`).
pub fn check_language(language: &str) -> Result<(), FieldError> {
    let bad = || {
        field_error(
            "language",
            format!("{language:?} is not a language tag such as `en` or `pt-BR`"),
        )
    };
    if language.chars().count() > LANGUAGE_MAX {
        return Err(field_error(
            "language",
            format!("longer than {LANGUAGE_MAX} characters"),
        ));
    }
    let mut parts = language.split('-');
    let first = parts.next().unwrap_or("");
    if !(2..=8).contains(&first.len()) || !first.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad());
    }
    for p in parts {
        if !(1..=8).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad());
        }
    }
    Ok(())
}

/// A tag: 1 to [`TAG_MAX`] characters, no `;` (it separates tags in the
/// CSV), no control characters, no space at either end.
pub fn check_tag(tag: &str) -> Result<(), FieldError> {
    if tag.is_empty() {
        return Err(field_error("tags", "a tag must not be empty"));
    }
    if tag.starts_with(' ') || tag.ends_with(' ') {
        return Err(field_error(
            "tags",
            format!("{tag:?} starts or ends with a space"),
        ));
    }
    if tag.contains(';') {
        return Err(field_error(
            "tags",
            format!("{tag:?} contains `;`, which separates tags"),
        ));
    }
    text("tags", tag, TAG_MAX, is_control)
}

/// A priority: 0 (ordinary) to [`PRIORITY_MAX`].
pub fn check_priority(priority: i64) -> Result<i32, FieldError> {
    i32::try_from(priority)
        .ok()
        .filter(|p| (0..=PRIORITY_MAX).contains(p))
        .ok_or_else(|| {
            field_error(
                "priority",
                format!("must be 0 to {PRIORITY_MAX}, not {priority}"),
            )
        })
}

/// Numbers as given: each normalised, duplicates (after normalisation)
/// dropped, the order kept; at least one, at most [`NUMBERS_MAX`].
pub fn normalize_numbers<'a>(
    field: &'static str,
    given: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, FieldError> {
    let mut out: Vec<String> = Vec::new();
    for n in given {
        let normal = normalize(n).map_err(|reason| field_error(field, reason))?;
        if !out.contains(&normal) {
            out.push(normal);
        }
    }
    if out.is_empty() {
        return Err(field_error(field, "at least one number is needed"));
    }
    if out.len() > NUMBERS_MAX {
        return Err(field_error(
            field,
            format!("at most {NUMBERS_MAX} numbers per customer ({})", out.len()),
        ));
    }
    Ok(out)
}

/// One number, normalised (digits with an optional leading `+`); `Err`
/// says what is wrong.
pub fn normalize(number: &str) -> Result<String, String> {
    ringback_callback::normalize_number(number).map_err(|r| match r {
        ringback_callback::Refusal::InvalidNumber(why) => why,
        other => other.to_string(),
    })
}

/// The spellings of `number` a directory entry may have: its normalised
/// form, then the same digits with the leading `+` added or taken away
/// (`15550100001` and `+15550100001`; not for a number starting with 0,
/// which no `+` may precede). Empty when `number` is not a number.
pub fn spellings(number: &str) -> Vec<String> {
    let Ok(normal) = normalize(number) else {
        return Vec::new();
    };
    let other = match normal.strip_prefix('+') {
        Some(digits) => Some(digits.to_string()),
        None if normal.starts_with('0') => None,
        None => Some(format!("+{normal}")),
    };
    std::iter::once(normal).chain(other).collect()
}

impl Customer {
    /// Check every field (numbers already normalised, as
    /// [`normalize_numbers`] leaves them).
    pub fn check(&self) -> Result<(), FieldError> {
        check_name(&self.name)?;
        if self.numbers.is_empty() {
            return Err(field_error("numbers", "at least one number is needed"));
        }
        if let Some(l) = &self.language {
            check_language(l)?;
        }
        check_priority(i64::from(self.priority))?;
        if let Some(a) = &self.account {
            check_account(a)?;
        }
        check_notes(&self.notes)?;
        if self.tags.len() > TAGS_MAX {
            return Err(field_error(
                "tags",
                format!("at most {TAGS_MAX} tags ({})", self.tags.len()),
            ));
        }
        self.tags.iter().try_for_each(|t| check_tag(t))
    }
}

/// A value fit for a SIP header (`X-Ringback-Caller-Name`): control
/// characters (CR and LF above all) become spaces, runs of white space one
/// space, no space at either end, at most `max` characters. Header
/// injection is impossible whatever the stored text holds.
pub fn header_value(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max * 4));
    let mut space = false;
    for c in value.chars() {
        if c.is_control() || c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if out.chars().count() >= max {
            break;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_with_their_names() {
        assert!(check_name("Jane Doe").is_ok());
        assert_eq!(check_name("").unwrap_err().field, "name");
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(NAME_MAX + 1)).is_err());
        assert!(check_notes("line 1\nline 2\tand a tab").is_ok());
        assert!(check_notes("bell \u{7}").is_err());
        for ok in ["en", "pt-BR", "zh-Hant-TW", "de"] {
            assert!(check_language(ok).is_ok(), "{ok}");
        }
        for bad in ["e", "english-", "en_US", "", "-en", "toolonglanguage"] {
            assert!(check_language(bad).is_err(), "{bad}");
        }
        assert!(check_tag("gold customer").is_ok());
        for bad in ["", " gold", "gold ", "a;b", "a\tb"] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_priority(0), Ok(0));
        assert_eq!(check_priority(1000), Ok(1000));
        assert!(check_priority(-1).is_err());
        assert!(check_priority(1001).is_err());
        assert!(check_priority(i64::MAX).is_err());
    }

    #[test]
    fn numbers_are_normalised_deduplicated_and_bounded() {
        let n = normalize_numbers(
            "numbers",
            ["+1 (555) 010-0001", "+15550100001", "555.010.0002"],
        )
        .expect("valid");
        assert_eq!(n, vec!["+15550100001", "5550100002"]);
        let e = normalize_numbers("number", ["+1 555 CALL"]).unwrap_err();
        assert_eq!(e.field, "number");
        assert!(e.reason.contains('C'), "{e}");
        assert!(normalize_numbers("numbers", []).is_err());
        let many: Vec<String> = (0..=NUMBERS_MAX)
            .map(|i| format!("+1555010{i:04}"))
            .collect();
        assert!(normalize_numbers("numbers", many.iter().map(String::as_str)).is_err());
    }

    #[test]
    fn header_values_cannot_inject_headers() {
        assert_eq!(header_value("Jane\r\nX-Evil: 1", 100), "Jane X-Evil: 1");
        assert_eq!(header_value("  Jane \t Doe  ", 100), "Jane Doe");
        assert_eq!(header_value("Zoë Ñandú", 3), "Zoë");
        assert_eq!(header_value("\n\r", 10), "");
    }
}
