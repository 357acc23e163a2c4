//! Which dialed number selects the dialplan of an inbound INVITE.
//!
//! Phones and most carriers put the dialed number in the Request-URI. A
//! carrier delivering to a *registered* trunk often does not: the
//! Request-URI carries the registration's user (or the Contact user) and the
//! number the customer dialed (the DID) is only in `To`. So the number is,
//! in this order:
//!
//! 1. the Request-URI user, if a dialplan answers it;
//! 2. else the `To` user, if a dialplan answers it;
//! 3. else nothing is selected and the Request-URI user goes on to the
//!    catch-all (`numbers = ["*"]`) plan, or 404 without one, as before.
//!
//! "Answers" means: a dialplan lists exactly that string; failing that, a
//! *loose* match on telephone numbers: `%`-escapes decoded, `;` parameters
//! (`;phone-context=…`) dropped, the RFC 3966 visual separators `-` `.` `(`
//! `)` and spaces removed and a leading `+` ignored, so `+1-555-0100`,
//! `15550100` and `+15550100` are one number. Loose matching only applies
//! when what remains is all digits (never to names like `support`), and it
//! does not add or strip country codes or trunk prefixes (`0`, `1`). When
//! several plans match loosely, the first in file-name order wins. The
//! catch-all `*` never counts as answering.

/// Where the selected number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The Request-URI user.
    RequestUri,
    /// The `To` URI user (a carrier's DID).
    To,
}

/// The number that selects the dialplan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Did {
    /// The number as the dialplan writes it (an exact key of the set).
    pub number: String,
    /// Which header it came from.
    pub source: Source,
    /// False when it matched only loosely.
    pub exact: bool,
}

/// Pick the dialplan number for an INVITE from the numbers the dialplans
/// answer (`*` ignored), the Request-URI user and the `To` user. `None`:
/// no dialplan answers either; use the catch-all.
pub fn select<'a, I>(
    numbers: I,
    request_uri_user: Option<&str>,
    to_user: Option<&str>,
) -> Option<Did>
where
    I: IntoIterator<Item = &'a str>,
    I::IntoIter: Clone,
{
    let numbers = numbers.into_iter().filter(|n| *n != "*");
    for (source, user) in [
        (Source::RequestUri, request_uri_user),
        (Source::To, to_user),
    ] {
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            continue;
        };
        if let Some(n) = numbers.clone().find(|n| *n == user) {
            return Some(Did {
                number: n.to_string(),
                source,
                exact: true,
            });
        }
        let Some(key) = loose(user) else {
            continue;
        };
        if let Some(n) = numbers.clone().find(|n| loose(n).is_some_and(|k| k == key)) {
            return Some(Did {
                number: n.to_string(),
                source,
                exact: false,
            });
        }
    }
    None
}

/// The comparable form of a telephone number (see the module docs), or
/// `None` when it is not one.
pub fn loose(number: &str) -> Option<String> {
    let decoded = percent_decode(number);
    let number = decoded.split(';').next().unwrap_or_default();
    let digits: String = number
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    let digits = digits.strip_prefix('+').unwrap_or(&digits);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.to_string())
}

/// `%HH` escapes decoded (invalid ones kept as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped demo: main (1000, +15550100), support-direct (2000),
    /// default (*).
    const DEMO: &[&str] = &["*", "1000", "+15550100", "2000"];

    fn pick(ruri: Option<&str>, to: Option<&str>) -> Option<(String, Source, bool)> {
        select(DEMO.iter().copied(), ruri, to).map(|d| (d.number, d.source, d.exact))
    }

    #[test]
    fn request_uri_wins_when_a_plan_answers_it() {
        assert_eq!(
            pick(Some("1000"), Some("2000")),
            Some(("1000".into(), Source::RequestUri, true))
        );
        assert_eq!(
            pick(Some("2000"), None),
            Some(("2000".into(), Source::RequestUri, true))
        );
    }

    #[test]
    fn carrier_did_in_to_when_the_request_uri_is_the_trunk_user() {
        assert_eq!(
            pick(Some("trunkuser"), Some("2000")),
            Some(("2000".into(), Source::To, true))
        );
        // No user in the Request-URI at all (`sip:gw.example.com`).
        assert_eq!(
            pick(None, Some("2000")),
            Some(("2000".into(), Source::To, true))
        );
        assert_eq!(
            pick(Some(""), Some("+15550100")),
            Some(("+15550100".into(), Source::To, true))
        );
    }

    #[test]
    fn catch_all_when_neither_is_answered() {
        assert_eq!(pick(Some("trunkuser"), Some("9999")), None);
        assert_eq!(pick(Some("trunkuser"), None), None);
        assert_eq!(pick(None, None), None);
        // `*` is not a number anyone dials into.
        assert_eq!(pick(Some("*"), Some("*")), None);
        assert_eq!(select(["*"], Some("2000"), Some("2000")), None);
    }

    #[test]
    fn exact_first_then_loose_telephone_numbers() {
        for written in [
            "15550100",
            "+1-555-0100",
            "1 (555) 010-0",
            "+1.555.0100",
            "%2B15550100",
            "+15550100;phone-context=+1",
        ] {
            assert_eq!(
                pick(Some(written), None),
                Some(("+15550100".into(), Source::RequestUri, false)),
                "{written}"
            );
            assert_eq!(
                pick(Some("trunkuser"), Some(written)),
                Some(("+15550100".into(), Source::To, false)),
                "{written}"
            );
        }
        // A plan written without `+` answers the E.164 form too.
        assert_eq!(
            select(["15550100"], Some("+15550100"), None).map(|d| d.number),
            Some("15550100".into())
        );
        // An exact match beats a loose one on the same header.
        let both = ["15550100", "+15550100"];
        assert_eq!(
            select(both, Some("+15550100"), None),
            Some(Did {
                number: "+15550100".into(),
                source: Source::RequestUri,
                exact: true
            })
        );
        // The Request-URI answered loosely still beats an exact To.
        assert_eq!(
            pick(Some("1-000"), Some("2000")),
            Some(("1000".into(), Source::RequestUri, false))
        );
    }

    #[test]
    fn loose_matching_is_for_digits_only_and_adds_no_prefixes() {
        assert_eq!(loose("support"), None);
        assert_eq!(loose("sup-port"), None);
        assert_eq!(loose("*11"), None);
        assert_eq!(loose("+"), None);
        assert_eq!(loose("--"), None);
        assert_eq!(loose("%zz12"), None);
        assert_eq!(loose("+1 (555) 0100").as_deref(), Some("15550100"));
        assert_eq!(select(["support"], Some("sup-port"), None), None);
        // National vs international forms are different numbers.
        assert_eq!(select(["+15550100"], Some("5550100"), None), None);
        assert_eq!(select(["+445550100"], Some("05550100"), None), None);
    }
}
