//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616), both sides.
//!
//! Server side ([`DigestServer`]): nonces are stateless — `hex(timestamp) ‖ hex(random) ‖
//! hex(HMAC-SHA-256(secret, both)[..16])` — so any node holding the secret can verify them
//! without shared state, and an expired but otherwise valid nonce yields
//! [`AuthResult::Stale`] (re-challenge with `stale=true`, the phone retries without asking
//! its user). `qop=auth` is offered; replay protection through the nonce count is a hook
//! ([`NonceCounter`]) because where to keep that state is the caller's decision.
//!
//! Time is passed in as Unix seconds: the crate reads no clock.
//!
//! Client side ([`authorize`]): compute the `Authorization` / `Proxy-Authorization` value for
//! a 401/407 challenge, for outgoing legs through trunks that require credentials.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use md5::Digest as _;
use rand::Rng;

/// Hash algorithm of a digest challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` — what nearly every SIP phone supports (RFC 2617).
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760 for SIP).
    Sha256,
}

impl Algorithm {
    /// Token used in headers.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parse an `algorithm=` value (case-insensitive). `-sess` variants are not supported.
    pub fn parse(s: &str) -> Option<Algorithm> {
        let s = s.trim().trim_matches('"');
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => to_hex(md5::Md5::digest(data.as_bytes()).as_slice()),
            Algorithm::Sha256 => to_hex(sha2::Sha256::digest(data.as_bytes()).as_slice()),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Constant-time equality (length leaks, which is public anyway for hex digests).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parse `Scheme name=value, name="quoted", …` into the scheme and parameters (names lower-cased).
pub fn parse_auth_params(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let value = value.trim();
    let (scheme, mut rest) = match value.find(|c: char| c.is_whitespace()) {
        Some(i) => (value.get(..i)?, value.get(i..)?),
        None => (value, ""),
    };
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let name = rest.get(..eq)?.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',') {
            return None;
        }
        rest = rest.get(eq + 1..)?.trim_start();
        let mut val = String::new();
        if let Some(q) = rest.strip_prefix('"') {
            let mut escaped = false;
            let mut end = None;
            for (i, c) in q.char_indices() {
                if escaped {
                    val.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = Some(i);
                    break;
                } else {
                    val.push(c);
                }
            }
            rest = q.get(end? + 1..)?;
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            val = rest.get(..end)?.trim().to_string();
            rest = rest.get(end..)?;
        }
        params.push((name, val));
    }
    Some((scheme.to_string(), params))
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space, usually the SIP domain.
    pub realm: String,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo back.
    pub opaque: Option<String>,
    /// The previous nonce was valid but expired: retry without prompting the user.
    pub stale: bool,
    /// Whether `qop="auth"` is offered (always for challenges we make).
    pub qop_auth: bool,
}

impl Challenge {
    /// A challenge offering `qop="auth"`.
    pub fn new(realm: &str, algorithm: Algorithm, nonce: &str) -> Challenge {
        Challenge {
            realm: realm.to_string(),
            algorithm,
            nonce: nonce.to_string(),
            opaque: None,
            stale: false,
            qop_auth: true,
        }
    }

    /// The header value, e.g. `Digest realm="x", nonce="…", algorithm=MD5, qop="auth"`.
    pub fn header_value(&self) -> String {
        let mut s = format!(
            "Digest realm={}, nonce={}, algorithm={}",
            quote(&self.realm),
            quote(&self.nonce),
            self.algorithm.name()
        );
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if let Some(o) = &self.opaque {
            let _ = write!(s, ", opaque={}", quote(o));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// Parse a received challenge. `None` if not Digest, or the algorithm is unsupported.
    pub fn parse(value: &str) -> Option<Challenge> {
        let (scheme, params) = parse_auth_params(value)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        Some(Challenge {
            realm: get("realm")?.to_string(),
            nonce: get("nonce")?.to_string(),
            algorithm: match get("algorithm") {
                Some(a) => Algorithm::parse(a)?,
                None => Algorithm::Md5,
            },
            opaque: get("opaque").map(str::to_string),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            qop_auth: get("qop")
                .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth"))),
        })
    }
}

/// Parsed `Authorization` / `Proxy-Authorization` digest credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// User name (look the password up with it).
    pub username: String,
    /// Realm the client answers.
    pub realm: String,
    /// Nonce the client answers.
    pub nonce: String,
    /// `uri` the digest covers; compare it with the Request-URI if you want to be strict.
    pub uri: String,
    /// Hex response digest.
    pub response: String,
    /// Algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// Client nonce (with qop).
    pub cnonce: Option<String>,
    /// Nonce count as sent (8 hex digits).
    pub nc: Option<String>,
    /// `auth`, or `None` for RFC 2069 style.
    pub qop: Option<String>,
    /// Echoed opaque.
    pub opaque: Option<String>,
}

impl Authorization {
    /// Parse a header value. `None` when not Digest or a required field is missing.
    pub fn parse(value: &str) -> Option<Authorization> {
        let (scheme, params) = parse_auth_params(value)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let get = |n: &str| {
            params
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_string())
        };
        Some(Authorization {
            username: get("username")?,
            realm: get("realm")?,
            nonce: get("nonce")?,
            uri: get("uri")?,
            response: get("response")?.to_ascii_lowercase(),
            algorithm: match get("algorithm") {
                Some(a) => Algorithm::parse(&a)?,
                None => Algorithm::Md5,
            },
            cnonce: get("cnonce"),
            nc: get("nc"),
            qop: get("qop"),
            opaque: get("opaque"),
        })
    }

    /// Nonce count as a number.
    pub fn nc_value(&self) -> Option<u32> {
        u32::from_str_radix(self.nc.as_deref()?, 16).ok()
    }
}

/// What the server knows about a user: the plain password, or the stored
/// `H(username:realm:password)` hex (so passwords need not be kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Plain password.
    Password(&'a str),
    /// Precomputed HA1 in hex, for the server's realm and algorithm.
    Ha1(&'a str),
}

/// `HA1 = H(username:realm:password)`.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hex(&format!("{username}:{realm}:{password}"))
}

/// The `response` digest (RFC 2617 §3.2.2.1 / RFC 7616 §3.4.1). With `qop` = `Some("auth")`,
/// `nc` and `cnonce` are used; with `None`, the RFC 2069 form `H(HA1:nonce:HA2)`.
#[allow(clippy::too_many_arguments)]
pub fn response_digest(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: Option<&str>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hex(&format!("{method}:{uri}"));
    match qop {
        Some(q) => algorithm.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{q}:{ha2}")),
        None => algorithm.hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Check the digest in parsed credentials against what we know of the user; no nonce checks.
pub fn check_response(auth: &Authorization, method: &str, credential: Credential<'_>) -> bool {
    let ha1 = match credential {
        Credential::Password(p) => ha1(auth.algorithm, &auth.username, &auth.realm, p),
        Credential::Ha1(h) => h.to_ascii_lowercase(),
    };
    let expected = match auth.qop.as_deref() {
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            let (Some(nc), Some(cnonce)) = (auth.nc.as_deref(), auth.cnonce.as_deref()) else {
                return false;
            };
            response_digest(
                auth.algorithm,
                &ha1,
                &auth.nonce,
                nc,
                cnonce,
                Some("auth"),
                method,
                &auth.uri,
            )
        }
        Some(_) => return false, // auth-int is not offered
        None => response_digest(
            auth.algorithm,
            &ha1,
            &auth.nonce,
            "",
            "",
            None,
            method,
            &auth.uri,
        ),
    };
    ct_eq(expected.as_bytes(), auth.response.as_bytes())
}

/// Outcome of [`DigestServer::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// Authenticated as this user.
    Ok(String),
    /// Correct password but expired nonce (or nonce count replayed): challenge again with
    /// `stale=true`.
    Stale,
    /// Anything else: wrong password, forged nonce, other realm, unparseable header.
    Invalid,
}

/// Freshness of a nonce presented by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Ours and not expired.
    Valid,
    /// Ours but older than the lifetime.
    Stale,
    /// Not issued by us (or malformed).
    Invalid,
}

/// Hook for nonce-count replay protection (RFC 7616 §3.4.5). Return `false` to reject a count
/// already seen for that nonce.
pub trait NonceCounter {
    /// Record `nc` for `nonce`; `false` if it is not greater than the last one.
    fn check(&mut self, nonce: &str, nc: u32) -> bool;
}

/// In-memory [`NonceCounter`] for one node. Bounded: when it holds `capacity` nonces it is
/// cleared (clients then get `stale` and re-authenticate transparently).
#[derive(Debug, Clone)]
pub struct MemoryNonceCounter {
    last: HashMap<String, u32>,
    capacity: usize,
}

impl MemoryNonceCounter {
    /// A counter remembering up to `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        MemoryNonceCounter {
            last: HashMap::new(),
            capacity: capacity.max(1),
        }
    }
}

impl NonceCounter for MemoryNonceCounter {
    fn check(&mut self, nonce: &str, nc: u32) -> bool {
        if let Some(last) = self.last.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        if self.last.len() >= self.capacity {
            self.last.clear();
        }
        self.last.insert(nonce.to_string(), nc);
        true
    }
}

/// Server side of digest authentication for one realm.
#[derive(Clone)]
pub struct DigestServer {
    realm: String,
    algorithm: Algorithm,
    secret: Vec<u8>,
    lifetime: Duration,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("algorithm", &self.algorithm)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

impl DigestServer {
    /// `secret` keys the nonce MAC (share it between nodes that must accept each other's
    /// nonces); `nonce_lifetime` is how long a nonce stays fresh (e.g. 5 minutes).
    pub fn new(realm: &str, algorithm: Algorithm, secret: &[u8], nonce_lifetime: Duration) -> Self {
        DigestServer {
            realm: realm.to_string(),
            algorithm,
            secret: secret.to_vec(),
            lifetime: nonce_lifetime,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, data: &str) -> String {
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(m) => m,
            // HMAC accepts keys of any length; keep a defined result anyway.
            Err(_) => return String::new(),
        };
        mac.update(data.as_bytes());
        let out = mac.finalize().into_bytes();
        to_hex(out.get(..16).unwrap_or_default())
    }

    /// A fresh nonce stamped with `now_unix` (seconds since the Unix epoch).
    pub fn nonce(&self, now_unix: u64) -> String {
        let r: u64 = rand::rng().random();
        let body = format!("{now_unix:016x}{r:016x}");
        let mac = self.mac(&body);
        format!("{body}{mac}")
    }

    /// A challenge with a fresh nonce; `stale` after [`AuthResult::Stale`].
    pub fn challenge(&self, now_unix: u64, stale: bool) -> Challenge {
        let mut c = Challenge::new(&self.realm, self.algorithm, &self.nonce(now_unix));
        c.stale = stale;
        c
    }

    /// Whether `nonce` was issued by us and is still fresh at `now_unix`.
    pub fn check_nonce(&self, nonce: &str, now_unix: u64) -> NonceStatus {
        if nonce.len() != 64 || !nonce.is_ascii() {
            return NonceStatus::Invalid;
        }
        let (Some(body), Some(mac), Some(ts)) = (nonce.get(..32), nonce.get(32..), nonce.get(..16))
        else {
            return NonceStatus::Invalid;
        };
        if !ct_eq(self.mac(body).as_bytes(), mac.as_bytes()) {
            return NonceStatus::Invalid;
        }
        let Ok(issued) = u64::from_str_radix(ts, 16) else {
            return NonceStatus::Invalid;
        };
        if now_unix.saturating_sub(issued) > self.lifetime.as_secs() {
            NonceStatus::Stale
        } else {
            NonceStatus::Valid
        }
    }

    /// Verify an `Authorization` header value for a request with `method`. Parse it first with
    /// [`Authorization::parse`] to learn the user name and look up the credential.
    pub fn verify(
        &self,
        authorization: &str,
        method: &str,
        credential: Credential<'_>,
        now_unix: u64,
    ) -> AuthResult {
        self.verify_with(authorization, method, credential, now_unix, None)
    }

    /// [`DigestServer::verify`] with nonce-count replay protection.
    pub fn verify_with(
        &self,
        authorization: &str,
        method: &str,
        credential: Credential<'_>,
        now_unix: u64,
        counter: Option<&mut dyn NonceCounter>,
    ) -> AuthResult {
        let Some(auth) = Authorization::parse(authorization) else {
            return AuthResult::Invalid;
        };
        if auth.realm != self.realm || auth.algorithm != self.algorithm {
            return AuthResult::Invalid;
        }
        let status = self.check_nonce(&auth.nonce, now_unix);
        if status == NonceStatus::Invalid || !check_response(&auth, method, credential) {
            return AuthResult::Invalid;
        }
        if status == NonceStatus::Stale {
            return AuthResult::Stale;
        }
        if let (Some(counter), Some(nc)) = (counter, auth.nc_value()) {
            if !counter.check(&auth.nonce, nc) {
                return AuthResult::Stale;
            }
        }
        AuthResult::Ok(auth.username)
    }
}

/// A random client nonce.
pub fn new_cnonce() -> String {
    let r: u128 = rand::rng().random();
    format!("{r:032x}")
}

/// Client side: the `Authorization` (401) or `Proxy-Authorization` (407) value answering
/// `challenge` for a request `method uri`. With `qop=auth` offered, uses `cnonce` and `nc`
/// (increment `nc` for each request reusing the same nonce).
pub fn authorize(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let h1 = ha1(challenge.algorithm, username, &challenge.realm, password);
    let nc_s = format!("{nc:08x}");
    let qop = challenge.qop_auth.then_some("auth");
    let response = response_digest(
        challenge.algorithm,
        &h1,
        &challenge.nonce,
        &nc_s,
        cnonce,
        qop,
        method,
        uri,
    );
    let mut s = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
        quote(username),
        quote(&challenge.realm),
        quote(&challenge.nonce),
        quote(uri),
        quote(&response),
        challenge.algorithm.name()
    );
    if qop.is_some() {
        let _ = write!(s, ", cnonce={}, qop=auth, nc={nc_s}", quote(cnonce));
    }
    if let Some(o) = &challenge.opaque {
        let _ = write!(s, ", opaque={}", quote(o));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_section_3_5_known_answer() {
        assert_eq!(
            ha1(
                Algorithm::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life"
            ),
            "939e7578ed9e3c518a452acee763bce9"
        );
        let header = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
            nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, \
            nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", \
            opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let auth = Authorization::parse(header).unwrap();
        assert_eq!(auth.username, "Mufasa");
        assert_eq!(auth.nc_value(), Some(1));
        assert!(check_response(
            &auth,
            "GET",
            Credential::Password("Circle Of Life")
        ));
        assert!(check_response(
            &auth,
            "GET",
            Credential::Ha1("939e7578ed9e3c518a452acee763bce9")
        ));
        assert!(!check_response(
            &auth,
            "GET",
            Credential::Password("circle of life")
        ));
        assert!(!check_response(
            &auth,
            "POST",
            Credential::Password("Circle Of Life")
        ));
        // Client side produces the same digest.
        let mut ch = Challenge::new(
            "testrealm@host.com",
            Algorithm::Md5,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        );
        ch.opaque = Some("5ccc069c403ebaf9f0171e9517f40e41".into());
        let value = authorize(
            &ch,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert_eq!(
            value,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, \
nc=00000001, opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
    }

    #[test]
    fn rfc7616_section_3_9_1_known_answers() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let realm = "http-auth@example.org";
        for (alg, expected) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let h1 = ha1(alg, "Mufasa", realm, "Circle of Life");
            let r = response_digest(
                alg,
                &h1,
                nonce,
                "00000001",
                cnonce,
                Some("auth"),
                "GET",
                "/dir/index.html",
            );
            assert_eq!(r, expected, "{alg:?}");
            let ch = Challenge::new(realm, alg, nonce);
            let v = authorize(
                &ch,
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                cnonce,
                1,
            );
            assert!(v.contains(&format!("response=\"{expected}\"")));
        }
    }

    #[test]
    fn challenge_round_trip() {
        let mut c = Challenge::new("ivr.example.com", Algorithm::Sha256, "abc");
        c.stale = true;
        c.opaque = Some("o".into());
        let v = c.header_value();
        assert_eq!(
            v,
            "Digest realm=\"ivr.example.com\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\", opaque=\"o\", stale=true"
        );
        assert_eq!(Challenge::parse(&v), Some(c));
        assert_eq!(Challenge::parse("Basic realm=\"x\""), None);
        assert_eq!(
            Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=MD5-sess"),
            None
        );
        // Sloppy but common formatting.
        let p =
            Challenge::parse("Digest  realm = \"a\\\"b\" ,nonce=n1,qop=\"auth,auth-int\"").unwrap();
        assert_eq!(
            (p.realm.as_str(), p.nonce.as_str(), p.qop_auth),
            ("a\"b", "n1", true)
        );
        assert_eq!(p.algorithm, Algorithm::Md5);
    }

    fn server() -> DigestServer {
        DigestServer::new(
            "ivr.example.com",
            Algorithm::Md5,
            b"secret-1",
            Duration::from_secs(300),
        )
    }

    #[test]
    fn server_verifies_its_own_nonces() {
        let s = server();
        let t = 1_700_000_000;
        let ch = s.challenge(t, false);
        assert_eq!(ch.nonce.len(), 64);
        assert_eq!(s.check_nonce(&ch.nonce, t + 10), NonceStatus::Valid);
        let uri = "sip:ivr.example.com";
        let authz = authorize(&ch, "agent7", "pw7", "REGISTER", uri, "cn", 1);
        assert_eq!(
            s.verify(&authz, "REGISTER", Credential::Password("pw7"), t + 10),
            AuthResult::Ok("agent7".into())
        );
        let stored = ha1(Algorithm::Md5, "agent7", "ivr.example.com", "pw7");
        assert_eq!(
            s.verify(&authz, "REGISTER", Credential::Ha1(&stored), t + 10),
            AuthResult::Ok("agent7".into())
        );
        assert_eq!(
            s.verify(&authz, "REGISTER", Credential::Password("wrong"), t + 10),
            AuthResult::Invalid
        );
        // Expired nonce with the right password → stale; with the wrong one → invalid.
        assert_eq!(
            s.verify(&authz, "REGISTER", Credential::Password("pw7"), t + 301),
            AuthResult::Stale
        );
        assert_eq!(
            s.verify(&authz, "REGISTER", Credential::Password("wrong"), t + 301),
            AuthResult::Invalid
        );
        // Nonce from another secret, or tampered, is invalid.
        let other = DigestServer::new(
            "ivr.example.com",
            Algorithm::Md5,
            b"secret-2",
            Duration::from_secs(300),
        );
        assert_eq!(other.check_nonce(&ch.nonce, t), NonceStatus::Invalid);
        let mut forged = ch.nonce.clone();
        forged.replace_range(0..1, if forged.starts_with('0') { "1" } else { "0" });
        assert_eq!(s.check_nonce(&forged, t), NonceStatus::Invalid);
        assert_eq!(s.check_nonce("short", t), NonceStatus::Invalid);
        assert_eq!(s.check_nonce(&"é".repeat(32), t), NonceStatus::Invalid);
        // Wrong realm / garbage.
        let bad_realm = authz.replace("realm=\"ivr.example.com\"", "realm=\"x\"");
        assert_eq!(
            s.verify(&bad_realm, "REGISTER", Credential::Password("pw7"), t),
            AuthResult::Invalid
        );
        assert_eq!(
            s.verify("Digest", "REGISTER", Credential::Password("pw7"), t),
            AuthResult::Invalid
        );
        assert_eq!(
            s.verify("", "REGISTER", Credential::Password("pw7"), t),
            AuthResult::Invalid
        );
    }

    #[test]
    fn nonce_count_replay_is_rejected_through_the_hook() {
        let s = server();
        let t = 1_700_000_000;
        let ch = s.challenge(t, false);
        let mut counter = MemoryNonceCounter::new(100);
        let a1 = authorize(&ch, "u", "p", "INVITE", "sip:100@ivr", "c", 1);
        let a2 = authorize(&ch, "u", "p", "INVITE", "sip:100@ivr", "c", 2);
        let ok = AuthResult::Ok("u".into());
        assert_eq!(
            s.verify_with(
                &a1,
                "INVITE",
                Credential::Password("p"),
                t,
                Some(&mut counter)
            ),
            ok
        );
        assert_eq!(
            s.verify_with(
                &a1,
                "INVITE",
                Credential::Password("p"),
                t,
                Some(&mut counter)
            ),
            AuthResult::Stale
        );
        assert_eq!(
            s.verify_with(
                &a2,
                "INVITE",
                Credential::Password("p"),
                t,
                Some(&mut counter)
            ),
            ok
        );
    }
}
