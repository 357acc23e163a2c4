//! The rules of a `lookup` node's data dip, without the HTTP: how a JSON
//! answer becomes variables ([`map_answer`]), how the request's values are
//! put into a URL ([`fill_url`], [`query`]) and when a failing endpoint is
//! left alone for a while ([`Breaker`]). The shell sends the request and
//! feeds the answer back as [`crate::Event::LookupAnswered`] or
//! [`crate::Event::LookupFailed`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The biggest answer body read (longer answers are a failure).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The longest variable value a lookup sets (longer values are cut at a
/// character boundary): variables travel in SIP headers and call records.
pub const MAX_VALUE_CHARS: usize = 200;

/// Maps a JSON answer into variables: `fields` is variable → path in the
/// answer (`status`, `shipping.date`, `items.0.sku`). A string is taken as
/// is, a number or boolean as its JSON text; a missing field, `null`, an
/// object or an array is an error, as is a body that is not a JSON object.
pub fn map_answer(
    body: &str,
    fields: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, String> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(format!("answer over {MAX_ANSWER_BYTES} bytes"));
    }
    let doc: Value = serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))?;
    if !doc.is_object() {
        return Err("the answer is not a JSON object".into());
    }
    let mut out = Vec::with_capacity(fields.len());
    for (var, path) in fields {
        let mut at = &doc;
        for key in path.split('.') {
            let next = match at {
                Value::Object(m) => m.get(key),
                Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            at = next.ok_or_else(|| format!("no `{path}` in the answer"))?;
        }
        let text = match at {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => return Err(format!("`{path}` is null")),
            Value::Array(_) | Value::Object(_) => {
                return Err(format!("`{path}` is not a string, number or boolean"))
            }
        };
        let text: String = text
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_VALUE_CHARS)
            .collect();
        out.push((var.clone(), text));
    }
    Ok(out)
}

/// A valid JSON path of a lookup's `vars`: dot-separated keys, none empty.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty() && path.split('.').all(|k| !k.is_empty())
}

/// Percent-encodes `s` for a URL path segment or query value (RFC 3986
/// unreserved characters stay).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with every `{name}` replaced by that value of `values`
/// (percent-encoded; `{caller}` is the caller's number). An unknown name
/// becomes empty.
pub fn fill_url(url: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                if let Some(v) = values.get(&after[..close]) {
                    out.push_str(&encode(v));
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `url` with `values` appended as query parameters.
pub fn query(url: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = url.to_string();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in values {
        out.push(sep);
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
        sep = '&';
    }
    out
}

/// A circuit breaker for one lookup endpoint. After `threshold` failures in
/// a row it opens: calls fail at once, without a request, for `open_for`.
/// Then one trial request goes through (half-open); its success closes the
/// breaker, its failure opens it again.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    failures: u32,
    open_until: Option<Instant>,
    trial: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, open_for: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            open_for,
            failures: 0,
            open_until: None,
            trial: false,
        }
    }

    /// May a request be sent at `now`? A `false` is a failure for the
    /// caller (the node's fallback) that costs no request.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if self.trial => false,
            Some(_) => {
                self.trial = true;
                true
            }
        }
    }

    /// The result of a request sent after [`Breaker::allow`].
    pub fn record(&mut self, ok: bool, now: Instant) {
        if ok {
            self.failures = 0;
            self.open_until = None;
            self.trial = false;
            return;
        }
        self.failures = self.failures.saturating_add(1);
        if self.trial || self.failures >= self.threshold {
            self.open_until = Some(now + self.open_for);
            self.trial = false;
        }
    }

    /// Whether the breaker is open (requests are refused) at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        self.open_until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn answers_map_into_variables() {
        let body = r#"{"status":"shipped","shipping":{"date":"2026-03-03","days":2},
            "items":[{"sku":"A-1"}],"paid":true,"note":"a\nb"}"#;
        let got = map_answer(
            body,
            &fields(&[
                ("status", "status"),
                ("ship_date", "shipping.date"),
                ("days", "shipping.days"),
                ("sku", "items.0.sku"),
                ("paid", "paid"),
                ("note", "note"),
            ]),
        );
        assert_eq!(
            got,
            Ok(vec![
                ("days".into(), "2".into()),
                ("note".into(), "ab".into()),
                ("paid".into(), "true".into()),
                ("ship_date".into(), "2026-03-03".into()),
                ("sku".into(), "A-1".into()),
                ("status".into(), "shipped".into()),
            ])
        );
        assert_eq!(map_answer("{}", &fields(&[])), Ok(vec![]));
    }

    #[test]
    fn bad_answers_are_errors() {
        let f = fields(&[("status", "status")]);
        for (body, why) in [
            ("not json", "bad JSON"),
            ("[1,2]", "not a JSON object"),
            ("{\"other\":1}", "no `status`"),
            ("{\"status\":null}", "is null"),
            ("{\"status\":{\"a\":1}}", "not a string"),
            ("", "bad JSON"),
        ] {
            let e = map_answer(body, &f).expect_err(body);
            assert!(e.contains(why), "{body}: {e}");
        }
        let big = format!("{{\"status\":\"{}\"}}", "x".repeat(MAX_ANSWER_BYTES));
        assert!(map_answer(&big, &f).is_err());
        let long = format!("{{\"status\":\"{}\"}}", "é".repeat(500));
        let got = map_answer(&long, &f).expect("long value");
        assert_eq!(got[0].1.chars().count(), MAX_VALUE_CHARS);
    }

    #[test]
    fn urls_carry_the_values() {
        let v = fields(&[("caller", "+15550123"), ("order", "45 12/x")]);
        assert_eq!(
            fill_url("http://h:8080/orders/{order}?c={caller}&n={none}", &v),
            "http://h:8080/orders/45%2012%2Fx?c=%2B15550123&n="
        );
        assert_eq!(fill_url("http://h/{open", &v), "http://h/{open");
        assert_eq!(
            query("http://h/x", &v),
            "http://h/x?caller=%2B15550123&order=45%2012%2Fx"
        );
        assert_eq!(
            query("http://h/x?a=1", &fields(&[("b", "2")])),
            "http://h/x?a=1&b=2"
        );
        assert!(valid_path("a.b.0"));
        assert!(!valid_path("a..b"));
        assert!(!valid_path(""));
    }

    #[test]
    // The test is the shell here: it picks the start time.
    #[allow(clippy::disallowed_methods)]
    fn the_breaker_opens_after_failures_and_tries_again_later() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut b = Breaker::new(3, s(30));
        for i in 0..2 {
            assert!(b.allow(t + s(i)));
            b.record(false, t + s(i));
        }
        // A success in between resets the count.
        assert!(b.allow(t + s(2)));
        b.record(true, t + s(2));
        for i in 3..6 {
            assert!(b.allow(t + s(i)));
            b.record(false, t + s(i));
        }
        assert!(b.is_open(t + s(6)));
        assert!(!b.allow(t + s(6)));
        assert!(!b.allow(t + s(34)));
        // Half-open: one trial, others still refused while it runs.
        assert!(b.allow(t + s(35)));
        assert!(!b.allow(t + s(35)));
        b.record(false, t + s(36));
        assert!(!b.allow(t + s(37)), "a failed trial opens it again");
        assert!(b.allow(t + s(66)));
        b.record(true, t + s(66));
        assert!(!b.is_open(t + s(66)));
        assert!(b.allow(t + s(67)));
        assert!(b.allow(t + s(67)));
    }
}
