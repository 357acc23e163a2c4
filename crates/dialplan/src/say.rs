//! What a `say` node speaks: prompt names and variables read out in a
//! format (digits, numbers, amounts, dates, times) with the shipped number
//! prompts.
//!
//! An item of `say = [...]` is a prompt name (`"your-order"`) or a variable
//! in braces with its format (`"{order:digits}"`). [`speak`] turns a value
//! into prompt names; [`SayFormat::prompts`] lists every prompt a format may
//! use, so `check` can report a missing recording at the item that needs it.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike, Weekday};

/// How a variable is read out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SayFormat {
    /// One digit at a time: `4512` → "four five one two" (spaces, dashes
    /// and dots in the value are skipped).
    Digits,
    /// A whole number, −999,999,999..=999,999,999: `4512` → "four
    /// thousand five hundred twelve".
    Number,
    /// Dollars and cents: `12.5` or `12.50` → "twelve dollars and fifty
    /// cents" (at most two decimals).
    Amount,
    /// A date written `YYYY-MM-DD`: `2026-03-03` → "Tuesday the third of
    /// March".
    Date,
    /// A time written `HH:MM` (24-hour): `14:05` → "two oh five P M".
    Time,
}

impl SayFormat {
    /// Every format, in the order messages list them.
    pub const ALL: [SayFormat; 5] = [
        SayFormat::Digits,
        SayFormat::Number,
        SayFormat::Amount,
        SayFormat::Date,
        SayFormat::Time,
    ];

    /// The format's name in a dialplan (`{var:NAME}`).
    pub fn name(self) -> &'static str {
        match self {
            SayFormat::Digits => "digits",
            SayFormat::Number => "number",
            SayFormat::Amount => "amount",
            SayFormat::Date => "date",
            SayFormat::Time => "time",
        }
    }

    /// The format called `name`.
    pub fn from_name(name: &str) -> Option<SayFormat> {
        SayFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Every prompt this format may play (all must exist for `check`).
    pub fn prompts(self) -> Vec<String> {
        let digits = (0..10).map(|d| format!("digit-{d}"));
        match self {
            SayFormat::Digits => digits.collect(),
            SayFormat::Number => number_prompts().collect(),
            SayFormat::Amount => number_prompts()
                .chain(["dollar", "dollars", "cent", "cents", "and"].map(word))
                .collect(),
            SayFormat::Date => (1..=31)
                .map(|d| format!("ord-{d}"))
                .chain(WEEKDAYS.iter().map(|d| format!("day-{d}")))
                .chain(MONTHS.iter().map(|m| format!("month-{m}")))
                .chain(["the", "of"].map(word))
                .collect(),
            SayFormat::Time => (0..20)
                .map(|n| format!("num-{n}"))
                .chain((2..6).map(|t| format!("num-{}", t * 10)))
                .chain(["oh", "am", "pm"].map(word))
                .collect(),
        }
    }
}

impl fmt::Display for SayFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One item of a `say` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SayItem {
    /// A prompt played as it is.
    Prompt(String),
    /// A variable read out in a format.
    Var {
        /// The variable.
        var: String,
        /// How.
        format: SayFormat,
    },
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// A word prompt (`say-and`, `say-dollars`…).
fn word(w: &str) -> String {
    format!("say-{w}")
}

fn number_prompts() -> impl Iterator<Item = String> {
    (0..20)
        .map(|n| format!("num-{n}"))
        .chain((2..10).map(|t| format!("num-{}", t * 10)))
        .chain(["hundred", "thousand", "million", "minus"].map(word))
}

/// The prompts that speak `value` in `format`; `None` when the value cannot
/// be read that way (empty, not a number, not a date…).
pub fn speak(format: SayFormat, value: &str) -> Option<Vec<String>> {
    let value = value.trim();
    match format {
        SayFormat::Digits => {
            let mut out = Vec::new();
            for c in value.chars() {
                match c {
                    '0'..='9' => out.push(format!("digit-{c}")),
                    ' ' | '-' | '.' => {}
                    _ => return None,
                }
            }
            (!out.is_empty()).then_some(out)
        }
        SayFormat::Number => {
            let n: i64 = value.parse().ok()?;
            if n.unsigned_abs() > 999_999_999 {
                return None;
            }
            let mut out = Vec::new();
            if n < 0 {
                out.push(word("minus"));
            }
            number(n.unsigned_abs(), &mut out);
            Some(out)
        }
        SayFormat::Amount => amount(value),
        SayFormat::Date => {
            let d = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
            let weekday = match d.weekday() {
                Weekday::Mon => 0,
                Weekday::Tue => 1,
                Weekday::Wed => 2,
                Weekday::Thu => 3,
                Weekday::Fri => 4,
                Weekday::Sat => 5,
                Weekday::Sun => 6,
            };
            let month = MONTHS.get(d.month0() as usize)?;
            Some(vec![
                format!("day-{}", WEEKDAYS[weekday]),
                word("the"),
                format!("ord-{}", d.day()),
                word("of"),
                format!("month-{month}"),
            ])
        }
        SayFormat::Time => {
            let t = NaiveTime::parse_from_str(value, "%H:%M").ok()?;
            let (pm, hour) = t.hour12();
            let mut out = Vec::new();
            number(u64::from(hour), &mut out);
            match t.minute() {
                0 => {}
                m @ 1..=9 => {
                    out.push(word("oh"));
                    out.push(format!("num-{m}"));
                }
                m => number(u64::from(m), &mut out),
            }
            out.push(word(if pm { "pm" } else { "am" }));
            Some(out)
        }
    }
}

/// Dollars and cents; "one dollar", "one cent", no cents part when zero,
/// and "zero dollars" only for an amount of nothing.
fn amount(value: &str) -> Option<Vec<String>> {
    let (whole, frac) = match value.split_once('.') {
        Some((w, f)) => (w, f),
        None => (value, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let dollars: u64 = whole.parse().ok().filter(|d| *d <= 999_999_999)?;
    let cents: u64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<u64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    let mut out = Vec::new();
    if dollars > 0 || cents == 0 {
        number(dollars, &mut out);
        out.push(word(if dollars == 1 { "dollar" } else { "dollars" }));
    }
    if cents > 0 {
        if dollars > 0 {
            out.push(word("and"));
        }
        number(cents, &mut out);
        out.push(word(if cents == 1 { "cent" } else { "cents" }));
    }
    Some(out)
}

/// 0..=999,999,999 in words ("four thousand five hundred twelve").
fn number(n: u64, out: &mut Vec<String>) {
    if n == 0 {
        out.push("num-0".into());
        return;
    }
    for (scale, name) in [
        (1_000_000, Some("million")),
        (1_000, Some("thousand")),
        (1, None),
    ] {
        let part = n / scale % 1000;
        if part == 0 {
            continue;
        }
        below_thousand(part, out);
        if let Some(name) = name {
            out.push(word(name));
        }
    }
}

fn below_thousand(n: u64, out: &mut Vec<String>) {
    if n >= 100 {
        out.push(format!("num-{}", n / 100));
        out.push(word("hundred"));
    }
    let rest = n % 100;
    match rest {
        0 => {}
        1..=19 => out.push(format!("num-{rest}")),
        _ => {
            out.push(format!("num-{}", rest / 10 * 10));
            if rest % 10 > 0 {
                out.push(format!("num-{}", rest % 10));
            }
        }
    }
}

/// Reads a `say` list entry: `{var:format}` or a prompt name (checked by
/// the caller). `Err` says what is wrong with a braced entry.
pub fn parse_item(text: &str) -> Result<SayItem, String> {
    let Some(inner) = text.strip_prefix('{') else {
        return Ok(SayItem::Prompt(text.to_string()));
    };
    let Some(inner) = inner.strip_suffix('}') else {
        return Err(format!(
            "`{text}` opens `{{` without closing it: write {{variable:format}}"
        ));
    };
    let formats: Vec<&str> = SayFormat::ALL.iter().map(|f| f.name()).collect();
    let Some((var, format)) = inner.split_once(':') else {
        return Err(format!(
            "`{text}` has no format: write {{{inner}:FORMAT}} with FORMAT one of {}",
            formats.join(", ")
        ));
    };
    let format = SayFormat::from_name(format.trim()).ok_or_else(|| {
        let hint = crate::suggest::did_you_mean(format.trim(), formats.iter().copied());
        format!(
            "unknown say format `{}` in `{text}`{hint}; expected one of {}",
            format.trim(),
            formats.join(", ")
        )
    })?;
    Ok(SayItem::Var {
        var: var.trim().to_string(),
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(format: SayFormat, value: &str) -> Option<String> {
        speak(format, value).map(|p| p.join(" "))
    }

    #[test]
    fn digits_one_by_one() {
        assert_eq!(
            said(SayFormat::Digits, "4512").as_deref(),
            Some("digit-4 digit-5 digit-1 digit-2")
        );
        assert_eq!(
            said(SayFormat::Digits, " 45-1.2 ").as_deref(),
            Some("digit-4 digit-5 digit-1 digit-2")
        );
        assert_eq!(said(SayFormat::Digits, "45a"), None);
        assert_eq!(said(SayFormat::Digits, ""), None);
        assert_eq!(said(SayFormat::Digits, "--"), None);
    }

    #[test]
    fn numbers_in_words() {
        let n = |v: &str| said(SayFormat::Number, v);
        assert_eq!(n("0").as_deref(), Some("num-0"));
        assert_eq!(n("7").as_deref(), Some("num-7"));
        assert_eq!(n("13").as_deref(), Some("num-13"));
        assert_eq!(n("20").as_deref(), Some("num-20"));
        assert_eq!(n("42").as_deref(), Some("num-40 num-2"));
        assert_eq!(n("100").as_deref(), Some("num-1 say-hundred"));
        assert_eq!(
            n("4512").as_deref(),
            Some("num-4 say-thousand num-5 say-hundred num-12")
        );
        assert_eq!(n("1000001").as_deref(), Some("num-1 say-million num-1"));
        assert_eq!(
            n("-999999999").as_deref(),
            Some(
                "say-minus num-9 say-hundred num-90 num-9 say-million num-9 say-hundred num-90 num-9 say-thousand num-9 say-hundred num-90 num-9"
            )
        );
        assert_eq!(n("1000000000"), None);
        assert_eq!(n("1.5"), None);
        assert_eq!(n("twelve"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn amounts_in_dollars_and_cents() {
        let a = |v: &str| said(SayFormat::Amount, v);
        assert_eq!(
            a("12.50").as_deref(),
            Some("num-12 say-dollars say-and num-50 say-cents")
        );
        assert_eq!(
            a("12.5").as_deref(),
            Some("num-12 say-dollars say-and num-50 say-cents")
        );
        assert_eq!(a("1").as_deref(), Some("num-1 say-dollar"));
        assert_eq!(a("0.01").as_deref(), Some("num-1 say-cent"));
        assert_eq!(a("0").as_deref(), Some("num-0 say-dollars"));
        assert_eq!(a("1.234"), None);
        assert_eq!(a("-1"), None);
        assert_eq!(a(".5"), None);
        assert_eq!(a("1.x"), None);
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(
            said(SayFormat::Date, "2026-03-03").as_deref(),
            Some("day-tuesday say-the ord-3 say-of month-march")
        );
        assert_eq!(said(SayFormat::Date, "2026-02-30"), None);
        assert_eq!(said(SayFormat::Date, "03/03/2026"), None);
        let t = |v: &str| said(SayFormat::Time, v);
        assert_eq!(t("14:05").as_deref(), Some("num-2 say-oh num-5 say-pm"));
        assert_eq!(t("09:30").as_deref(), Some("num-9 num-30 say-am"));
        assert_eq!(t("00:00").as_deref(), Some("num-12 say-am"));
        assert_eq!(t("12:45").as_deref(), Some("num-12 num-40 num-5 say-pm"));
        assert_eq!(t("24:00"), None);
    }

    #[test]
    fn every_spoken_prompt_is_in_the_formats_list() {
        let cases = [
            (SayFormat::Digits, "0123456789"),
            (SayFormat::Number, "-123456789"),
            (SayFormat::Number, "987654321"),
            (SayFormat::Amount, "1001.99"),
            (SayFormat::Date, "2026-12-31"),
            (SayFormat::Time, "23:59"),
            (SayFormat::Time, "11:01"),
        ];
        for (format, value) in cases {
            let known = format.prompts();
            for p in speak(format, value).unwrap_or_default() {
                assert!(known.contains(&p), "{format} {value}: {p} not listed");
            }
        }
        for day in 1..=31 {
            let v = format!("2026-01-{day:02}");
            let known = SayFormat::Date.prompts();
            for p in speak(SayFormat::Date, &v).unwrap_or_default() {
                assert!(known.contains(&p), "{v}: {p}");
            }
        }
    }

    #[test]
    fn items() {
        assert_eq!(
            parse_item("your-order"),
            Ok(SayItem::Prompt("your-order".into()))
        );
        assert_eq!(
            parse_item("{order:digits}"),
            Ok(SayItem::Var {
                var: "order".into(),
                format: SayFormat::Digits
            })
        );
        assert!(parse_item("{order}").unwrap_err().contains("no format"));
        assert!(parse_item("{order:digts}")
            .unwrap_err()
            .contains("did you mean `digits`"));
        assert!(parse_item("{order:digits")
            .unwrap_err()
            .contains("without closing"));
    }
}
