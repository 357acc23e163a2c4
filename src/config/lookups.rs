//! `[lookups.<name>]`: the HTTP endpoints dialplan `lookup` nodes ask
//! (src/lookups.rs sends the requests). The URL and the method check
//! themselves while the file is read, so a mistake is a `file:line:col`
//! error.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One lookup endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// `http://host[:port]/path`; `{name}` is replaced by that variable
    /// (`{caller}`: the caller's number), percent-encoded.
    pub url: LookupUrl,
    /// `GET` (the caller and the variables also go in the query) or `POST`
    /// (they go in a JSON body `{"caller": …, "vars": {…}}`).
    #[serde(default)]
    pub method: LookupMethod,
    /// Extra request headers (an API key, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The whole request's time limit, 1–30,000 ms; then the node's
    /// `fallback`.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Failures in a row that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker sends every call to the fallback without a
    /// request, before one trial request.
    #[serde(default = "default_breaker_open_secs")]
    pub breaker_open_secs: u64,
}

fn default_timeout_ms() -> u64 {
    2000
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_open_secs() -> u64 {
    30
}

/// The request method of a lookup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LookupMethod {
    /// `GET` (the default).
    #[default]
    Get,
    /// `POST` with a JSON body.
    Post,
}

/// A lookup URL: `http://` with a host (HTTPS is not supported: put a TLS
/// proxy on the same host, as for the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupUrl(pub String);

impl<'de> Deserialize<'de> for LookupUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        check_url(&text).map_err(serde::de::Error::custom)?;
        Ok(LookupUrl(text))
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "lookup url `{url}` must start with http:// (https is not supported: use a local TLS proxy)"
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('{') || authority.contains('@') {
        return Err(format!(
            "lookup url `{url}` needs a host (http://host[:port]/path); placeholders go in the path"
        ));
    }
    Ok(())
}

/// Checks what needs more than one key; the error names the key.
pub(super) fn validate(lookups: &BTreeMap<String, LookupConfig>) -> Result<(), String> {
    for (name, l) in lookups {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "lookups.{name}: a lookup name uses letters, digits, `-` and `_`"
            ));
        }
        if !(1..=30_000).contains(&l.timeout_ms) {
            return Err(format!(
                "lookups.{name}.timeout_ms is {}: must be 1 to 30000",
                l.timeout_ms
            ));
        }
        if l.breaker_failures == 0 {
            return Err(format!(
                "lookups.{name}.breaker_failures must be at least 1"
            ));
        }
        for (k, v) in &l.headers {
            if axum::http::HeaderName::try_from(k.as_str()).is_err()
                || axum::http::HeaderValue::try_from(v.as_str()).is_err()
            {
                return Err(format!(
                    "lookups.{name}.headers: `{k}` is not a valid header name and value"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    #[test]
    fn a_lookup_reads_with_its_defaults() {
        let c = Config::parse(
            Path::new("r.toml"),
            "[lookups.orders]\nurl = \"http://127.0.0.1:8080/demo/orders/{order}\"\n",
        )
        .expect("valid");
        let l = &c.lookups["orders"];
        assert_eq!(l.method, LookupMethod::Get);
        assert_eq!(
            (l.timeout_ms, l.breaker_failures, l.breaker_open_secs),
            (2000, 5, 30)
        );
    }

    #[test]
    fn mistakes_are_reported_with_their_place() {
        for (text, expected) in [
            (
                "[lookups.a]\nurl = \"https://x/y\"\n",
                "r.toml:2:7: lookup url `https://x/y` must start with http://",
            ),
            (
                "[lookups.a]\nurl = \"http:///y\"\n",
                "r.toml:2:7: lookup url",
            ),
            (
                "[lookups.a]\nurl = \"http://x/\"\nmethod = \"PUT\"\n",
                "r.toml:3:10: unknown variant `PUT`",
            ),
            (
                "[lookups.a]\nurl = \"http://x/\"\ntimeout = 5\n",
                "r.toml:3:1: unknown field `timeout`",
            ),
            (
                "[lookups.a]\nurl = \"http://x/\"\ntimeout_ms = 0\n",
                "r.toml: lookups.a.timeout_ms is 0",
            ),
            (
                "[lookups.a]\nurl = \"http://x/\"\nheaders = { \"bad name\" = \"v\" }\n",
                "r.toml: lookups.a.headers: `bad name`",
            ),
            (
                "[lookups.\"a b\"]\nurl = \"http://x/\"\n",
                "r.toml: lookups.a b:",
            ),
        ] {
            let e = Config::parse(Path::new("r.toml"), text)
                .expect_err(text)
                .to_string();
            assert!(e.starts_with(expected), "{text}: {e}");
        }
    }
}
