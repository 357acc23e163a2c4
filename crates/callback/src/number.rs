//! Number normalisation and the small wildcard matcher used by the `allow`
//! and `deny` guards.
//!
//! Numbers arrive from caller-ID, DTMF and web forms in every shape people
//! write them in. Guards and dedupe only work if one subscriber has one
//! spelling, so everything is reduced to digits with an optional leading
//! `+` before it is compared, stored or dialed. The country is not guessed:
//! `+15551234567` and `5551234567` stay different strings, which is why the
//! deny list carries both the E.164 and the national form of a range.

use crate::errors::Refusal;

/// Fewest digits a callable number may have. Shorter strings are service or
/// emergency codes (`911`, `112`, `999`), which must never be dialed back
/// automatically.
pub const MIN_DIGITS: usize = 7;

/// Most digits a number may have: the E.164 maximum.
pub const MAX_DIGITS: usize = 15;

/// Reduces a number to its canonical form: ASCII digits with an optional
/// leading `+`.
///
/// Spaces (and other ASCII whitespace), dashes, dots and parentheses are
/// removed. A `+` is kept only as the first character, and must be followed
/// by a country code (which never starts with 0). Anything else — letters,
/// `*`, `#`, a `+` in the middle — and fewer than [`MIN_DIGITS`] or more
/// than [`MAX_DIGITS`] digits is refused with [`Refusal::InvalidNumber`],
/// whose text says what is wrong.
pub fn normalize_number(s: &str) -> Result<String, Refusal> {
    let shown = s.trim();
    let mut out = String::with_capacity(shown.len());
    for c in shown.chars() {
        match c {
            '0'..='9' => out.push(c),
            '+' if out.is_empty() => out.push('+'),
            '+' => {
                return Err(Refusal::InvalidNumber(format!(
                    "\"{shown}\": `+` is only allowed at the start"
                )))
            }
            ' ' | '-' | '.' | '(' | ')' => {}
            c if c.is_ascii_whitespace() => {}
            c => {
                return Err(Refusal::InvalidNumber(format!(
                    "\"{shown}\" contains `{c}`: only digits, a leading +, spaces, dashes, dots and parentheses are accepted"
                )))
            }
        }
    }
    let digits = out.trim_start_matches('+');
    if digits.is_empty() {
        return Err(Refusal::InvalidNumber(format!(
            "\"{shown}\" contains no digits"
        )));
    }
    if out.starts_with('+') && digits.starts_with('0') {
        return Err(Refusal::InvalidNumber(format!(
            "\"{shown}\": a country code after `+` never starts with 0"
        )));
    }
    if digits.len() < MIN_DIGITS {
        return Err(Refusal::InvalidNumber(format!(
            "\"{shown}\" is too short: {} digits, at least {MIN_DIGITS} needed",
            digits.len()
        )));
    }
    if digits.len() > MAX_DIGITS {
        return Err(Refusal::InvalidNumber(format!(
            "\"{shown}\" is too long: {} digits, at most {MAX_DIGITS} (E.164)",
            digits.len()
        )));
    }
    Ok(out)
}

/// Whether `number` (normalised) matches `pattern`.
///
/// A pattern is matched against the whole number. `*` matches any run of
/// characters (including none), `X` (or `x`) exactly one digit, and every
/// other character itself — so `+1900*` matches `+19005550100`, and
/// `900XXXXXXX` matches exactly the ten-digit numbers starting with 900.
/// Runs in `O(len(pattern) × len(number))` at worst; no allocation.
pub fn pattern_matches(pattern: &str, number: &str) -> bool {
    let p = pattern.as_bytes();
    let n = number.as_bytes();
    let (mut pi, mut ni) = (0, 0);
    // Position after the last `*` seen, and the number position it was
    // tried against: on a mismatch, let that star swallow one more byte.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let single = pi < p.len()
            && match p[pi] {
                b'X' | b'x' => n[ni].is_ascii_digit(),
                b'*' => false,
                c => c == n[ni],
            };
        if single {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            pi += 1;
            star = Some((pi, ni));
        } else if let Some((sp, sn)) = star {
            pi = sp;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Checks that a pattern uses only the characters [`pattern_matches`]
/// understands (digits, `X`, `*`, and `+` first), so a typo such as
/// `+1 900*` or `+1900%` is caught when the configuration is loaded rather
/// than silently matching nothing.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("empty number pattern".into());
    }
    for (i, c) in pattern.char_indices() {
        let ok = matches!(c, '0'..='9' | 'X' | 'x' | '*') || (c == '+' && i == 0);
        if !ok {
            return Err(format!(
                "invalid number pattern \"{pattern}\": unexpected `{c}` (use digits, a leading +, X for one digit, * for any digits)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        let ok = |s: &str| normalize_number(s).expect(s);
        assert_eq!(ok("+1 (555) 123-4567"), "+15551234567");
        assert_eq!(ok("  555.123.4567 "), "5551234567");
        assert_eq!(ok("0049 30 1234567"), "0049301234567");
        assert_eq!(ok("+44\t20 7946 0958"), "+442079460958");
        assert_eq!(ok("1234567"), "1234567");
        assert_eq!(ok("+123456789012345"), "+123456789012345");

        let err = |s: &str| match normalize_number(s) {
            Err(Refusal::InvalidNumber(m)) => m,
            other => panic!("{s}: {other:?}"),
        };
        assert!(err("555-CALL-NOW").contains("contains `C`"));
        assert!(err("+1 555 123 4567 ext 2").contains("contains `e`"));
        assert!(err("1+5551234567").contains("only allowed at the start"));
        assert!(err("++15551234567").contains("only allowed at the start"));
        assert!(err("").contains("no digits"));
        assert!(err("+").contains("no digits"));
        assert!(err("( ) - .").contains("no digits"));
        assert!(err("911").contains("too short"));
        assert!(err("+1 12").contains("too short"));
        assert!(err("+1234567890123456").contains("too long"));
        assert!(err("+0123456789").contains("never starts with 0"));
        assert!(err("*69 5551234").contains("contains `*`"));
        assert!(err("5551234#").contains("contains `#`"));
    }

    #[test]
    fn wildcards() {
        assert!(pattern_matches("+1900*", "+19005550100"));
        assert!(!pattern_matches("+1900*", "+15559000000"));
        assert!(pattern_matches("*", "+15551234567"));
        assert!(pattern_matches("+1*", "+1"));
        assert!(pattern_matches("900XXXXXXX", "9005550100"));
        assert!(!pattern_matches("900XXXXXXX", "90055501001"));
        assert!(!pattern_matches("900XXXXXXX", "900555010"));
        assert!(pattern_matches("+1XXX976XXXX", "+12129761234"));
        assert!(!pattern_matches("X*", "+1"), "X is a digit, not +");
        assert!(pattern_matches("*1234", "+15551234"));
        assert!(pattern_matches("+1*55*4", "+15551234"));
        assert!(!pattern_matches("+1*55*5", "+15551234"));
        assert!(pattern_matches("0**", "0"));
        assert!(!pattern_matches("", "1"));
        assert!(pattern_matches("", ""));
        assert!(pattern_matches("00*", "0044207946"));
        assert!(!pattern_matches("00*", "0207946"));
    }

    #[test]
    fn pattern_validation() {
        assert!(validate_pattern("+1900*").is_ok());
        assert!(validate_pattern("900XXXXXXX").is_ok());
        assert!(validate_pattern("*").is_ok());
        assert!(validate_pattern("").is_err());
        assert!(validate_pattern("+1 900*")
            .unwrap_err()
            .contains("unexpected ` `"));
        assert!(validate_pattern("1+900").is_err());
        assert!(validate_pattern("+1900?").is_err());
    }
}
