//! Digest authentication as a client: answering the 401 / 407 challenges of a carrier or
//! registrar (RFC 3261 §22.2–22.3, RFC 7616, RFC 8760).
//!
//! [`ClientAuth`] keeps, per realm, the nonce last answered and its nonce count, so that
//!
//! * [`ClientAuth::retry`] turns a challenged request into the request to send again:
//!   `Authorization` (401) or `Proxy-Authorization` (407) added — replacing an earlier one for
//!   that realm —, `CSeq` + 1 and a fresh `Via` branch (same `Call-ID` and `From` tag);
//! * [`ClientAuth::authorize_again`] adds credentials proactively to a further request of the
//!   same dialog or registration (`nc` + 1), saving a round trip per refresh.
//!
//! Choices worth knowing:
//! * Algorithms: `MD5` and `SHA-256` (no `-sess`). When one realm offers several challenges
//!   (RFC 8760 §2.4), the client SHOULD use the topmost one it supports "unless a local policy
//!   dictates otherwise"; our local policy is *SHA-256 over MD5, whatever the order*, and the
//!   topmost among equals. For an RFC 8760 server, which lists its preferred (strongest)
//!   challenge first, this is the same choice.
//! * `qop=auth` is used when offered, with a fresh `cnonce` per request and `nc` counting the
//!   requests answered with one nonce; without `qop` the RFC 2069 form is sent. A challenge
//!   that only offers `auth-int` is not supported.
//! * Several realms (forking proxies, RFC 3261 §22.3) are all answered in one retry.
//! * When is a retry pointless ([`ClientAuthError::Rejected`])? When the server challenges
//!   again, without `stale=true`, credentials we computed in answer to its own challenge — or
//!   credentials reusing a nonce it now challenges again. A `stale=true` challenge (the nonce
//!   expired, the password was right) is answered once per exchange: if the request that
//!   answered it is challenged as stale again, that is `Rejected` too (no endless loop with a
//!   server whose nonces are always stale). A new exchange — a request without credentials for
//!   that realm, or one prepared with [`ClientAuth::authorize_again`] — may again be answered
//!   after a stale challenge, and after a plain challenge with a *new* nonce (servers that
//!   forgot their nonces after a restart do that).
//! * `realm` in [`ClientCredentials`] restricts which realms we answer (the password is not
//!   given to anyone else who challenges); `None` answers any realm.

use std::fmt;

use rsip::{Header, Request, Response};

use crate::auth::{authorize, new_cnonce, parse_auth_params, Algorithm, Authorization, Challenge};
use crate::message::{self, header_parts, make_header, new_branch};

/// What a trunk was given by its carrier.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// User name (also the user part of the AOR when registering).
    pub username: String,
    /// Authentication user when it differs from `username` (the `username=` of the digest).
    pub auth_username: Option<String>,
    /// Password.
    pub password: String,
    /// Only answer challenges from this realm; `None` answers any realm.
    pub realm: Option<String>,
}

impl ClientCredentials {
    /// The name put in the digest's `username=`.
    pub fn digest_user(&self) -> &str {
        self.auth_username.as_deref().unwrap_or(&self.username)
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("username", &self.username)
            .field("auth_username", &self.auth_username)
            .field("password", &"<redacted>")
            .field("realm", &self.realm)
            .finish()
    }
}

/// Why a challenged request should not be sent again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientAuthError {
    /// Not a 401/407, or no `Digest` challenge in the header that goes with it.
    #[error("no digest challenge to answer")]
    NoChallenge,
    /// Only challenges with an algorithm we do not implement (e.g. `SHA-512-256`, `MD5-sess`).
    #[error("unsupported digest algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// Only challenges whose `qop` we do not implement (`auth-int`).
    #[error("unsupported digest qop {0}")]
    UnsupportedQop(String),
    /// Challenged for realms our credentials are not for.
    #[error("challenged for realm {offered:?}, but the credentials are for realm {expected:?}")]
    RealmMismatch {
        /// The configured realm.
        expected: String,
        /// The realms the server challenged for.
        offered: Vec<String>,
    },
    /// The server challenged again the credentials we just sent (not stale), or answered our
    /// stale retry with another stale challenge: the credentials are wrong.
    #[error("credentials rejected")]
    Rejected,
    /// The request lacks a header a retry must change (`CSeq`, `Via`).
    #[error("request has no usable {0} header")]
    MalformedRequest(&'static str),
}

/// What we know about one realm's challenge.
#[derive(Debug, Clone)]
struct RealmState {
    /// Answered with `Proxy-Authorization` (407) rather than `Authorization` (401).
    proxy: bool,
    challenge: Challenge,
    /// Requests answered with this nonce so far.
    nc: u32,
    /// Our latest credentials for this realm answered its challenge directly (from `retry`);
    /// a non-stale challenge of them means the password is wrong.
    answering: bool,
    /// A stale challenge was already honoured in the current exchange.
    stale_used: bool,
}

/// Client side of digest authentication for one dialog or registration.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    creds: ClientCredentials,
    realms: Vec<RealmState>,
}

fn names(proxy: bool) -> (&'static str, &'static str) {
    if proxy {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    }
}

impl ClientAuth {
    /// Credentials, no challenge answered yet.
    pub fn new(creds: ClientCredentials) -> ClientAuth {
        ClientAuth {
            creds,
            realms: Vec::new(),
        }
    }

    /// The credentials.
    pub fn credentials(&self) -> &ClientCredentials {
        &self.creds
    }

    /// Whether a challenge was answered (so [`ClientAuth::authorize_again`] adds credentials).
    pub fn has_challenge(&self) -> bool {
        !self.realms.is_empty()
    }

    /// `request` was answered by a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`)
    /// `response`. Returns the request to send again: the `Authorization` /
    /// `Proxy-Authorization` header added (replacing an earlier one for that realm), `CSeq`
    /// number + 1, and a fresh `Via` branch (same `Call-ID`, `From` tag). Errs when retrying
    /// would be pointless: no challenge we support, realm not ours, or the server challenged
    /// again the credentials we just sent (not stale).
    pub fn retry(
        &mut self,
        request: &Request,
        response: &Response,
    ) -> Result<Request, ClientAuthError> {
        let proxy = match response.status_code.code() {
            401 => false,
            407 => true,
            _ => return Err(ClientAuthError::NoChallenge),
        };
        let (challenge_name, auth_name) = names(proxy);
        let chosen = self.choose(&message::header_values(response, challenge_name))?;
        // Credentials the challenged request carried, by realm.
        let sent: Vec<Authorization> = message::header_values(request, auth_name)
            .iter()
            .filter_map(|v| Authorization::parse(v))
            .collect();
        // Decide for every realm first: nothing changes when one of them is rejected.
        let mut adopt: Vec<(Challenge, bool)> = Vec::new();
        for ch in chosen {
            let sent_nonce = sent
                .iter()
                .find(|a| a.realm == ch.realm)
                .map(|a| a.nonce.as_str());
            let state = self
                .realms
                .iter()
                .find(|s| s.proxy == proxy && s.challenge.realm == ch.realm);
            let stale_used = match sent_nonce {
                // A new exchange for this realm.
                None => false,
                Some(nonce) => {
                    let answering =
                        state.is_some_and(|s| s.answering && s.challenge.nonce == nonce);
                    let stale_already = answering && state.is_some_and(|s| s.stale_used);
                    if ch.nonce == nonce || (answering && !ch.stale) || stale_already {
                        return Err(ClientAuthError::Rejected);
                    }
                    ch.stale
                }
            };
            adopt.push((ch, stale_used));
        }
        let mut req = request.clone();
        bump_cseq_and_branch(&mut req)?;
        for (ch, stale_used) in adopt {
            let realm = ch.realm.clone();
            let idx = match self
                .realms
                .iter()
                .position(|s| s.proxy == proxy && s.challenge.realm == realm)
            {
                Some(i) => i,
                None => {
                    self.realms.push(RealmState {
                        proxy,
                        challenge: ch.clone(),
                        nc: 0,
                        answering: false,
                        stale_used: false,
                    });
                    self.realms.len() - 1
                }
            };
            if let Some(st) = self.realms.get_mut(idx) {
                st.challenge = ch;
                st.nc = 0;
                st.answering = true;
                st.stale_used = stale_used;
                let value = credentials_for(&self.creds, st, &req);
                set_auth_header(&mut req, auth_name, &realm, &value);
            }
        }
        Ok(req)
    }

    /// Add credentials proactively to a further request in the same dialog or registration
    /// (next `nc`) when a challenge was answered before (`false` if none). Starts a new
    /// exchange: a stale challenge of this request may be answered again.
    pub fn authorize_again(&mut self, request: &mut Request) -> bool {
        if self.realms.is_empty() {
            return false;
        }
        for i in 0..self.realms.len() {
            let Some(st) = self.realms.get_mut(i) else {
                continue;
            };
            st.answering = false;
            st.stale_used = false;
            let (_, auth_name) = names(st.proxy);
            let realm = st.challenge.realm.clone();
            let value = credentials_for(&self.creds, st, request);
            set_auth_header(request, auth_name, &realm, &value);
        }
        true
    }

    /// The challenges to answer: supported ones, for our realm, one per realm (SHA-256 over
    /// MD5, else the topmost), in the order realms first appear.
    fn choose(&self, values: &[String]) -> Result<Vec<Challenge>, ClientAuthError> {
        let mut supported: Vec<Challenge> = Vec::new();
        let mut unsupported_alg: Option<String> = None;
        let mut unsupported_qop: Option<String> = None;
        for v in values {
            let Some((scheme, params)) = parse_auth_params(v) else {
                continue;
            };
            if !scheme.eq_ignore_ascii_case("Digest") {
                continue;
            }
            let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
            if let Some(a) = get("algorithm") {
                if Algorithm::parse(a).is_none() {
                    unsupported_alg.get_or_insert_with(|| a.to_string());
                    continue;
                }
            }
            if let Some(q) = get("qop") {
                if !q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) {
                    unsupported_qop.get_or_insert_with(|| q.to_string());
                    continue;
                }
            }
            if let Some(c) = Challenge::parse(v) {
                supported.push(c);
            }
        }
        if supported.is_empty() {
            return Err(match (unsupported_alg, unsupported_qop) {
                (Some(a), _) => ClientAuthError::UnsupportedAlgorithm(a),
                (None, Some(q)) => ClientAuthError::UnsupportedQop(q),
                (None, None) => ClientAuthError::NoChallenge,
            });
        }
        if let Some(want) = &self.creds.realm {
            let offered: Vec<String> = supported.iter().map(|c| c.realm.clone()).collect();
            supported.retain(|c| c.realm.eq_ignore_ascii_case(want));
            if supported.is_empty() {
                return Err(ClientAuthError::RealmMismatch {
                    expected: want.clone(),
                    offered,
                });
            }
        }
        let mut chosen: Vec<Challenge> = Vec::new();
        for c in supported {
            match chosen.iter_mut().find(|x| x.realm == c.realm) {
                Some(x) => {
                    if x.algorithm != Algorithm::Sha256 && c.algorithm == Algorithm::Sha256 {
                        *x = c;
                    }
                }
                None => chosen.push(c),
            }
        }
        Ok(chosen)
    }
}

/// The header value for the next request answered with `st`'s nonce (counts it).
fn credentials_for(creds: &ClientCredentials, st: &mut RealmState, req: &Request) -> String {
    st.nc = st.nc.wrapping_add(1).max(1);
    authorize(
        &st.challenge,
        creds.digest_user(),
        &creds.password,
        &req.method.to_string(),
        &req.uri.to_string(),
        &new_cnonce(),
        st.nc,
    )
}

/// Replace the `name` header whose realm is `realm` (or add one before `Content-Length`).
fn set_auth_header(req: &mut Request, name: &str, realm: &str, value: &str) {
    let mut headers: Vec<Header> = std::mem::take(&mut req.headers).into();
    let new = make_header(name, value);
    let same_realm = |h: &Header| {
        let (n, v) = header_parts(h);
        n.eq_ignore_ascii_case(name) && Authorization::parse(v).is_some_and(|a| a.realm == realm)
    };
    if let Some(pos) = headers.iter().position(same_realm) {
        if let Some(slot) = headers.get_mut(pos) {
            *slot = new;
        }
        // Drop any further duplicates for the realm.
        let mut seen = false;
        headers.retain(|h| {
            if same_realm(h) {
                let keep = !seen;
                seen = true;
                keep
            } else {
                true
            }
        });
    } else {
        let at = headers
            .iter()
            .position(|h| matches!(h, Header::ContentLength(_)))
            .unwrap_or(headers.len());
        headers.insert(at, new);
    }
    req.headers = headers.into();
}

/// `CSeq` + 1 and a new branch in the top `Via` (a retry is a new transaction).
fn bump_cseq_and_branch(req: &mut Request) -> Result<(), ClientAuthError> {
    let (seq, _) = message::cseq(req).ok_or(ClientAuthError::MalformedRequest("CSeq"))?;
    let mut headers: Vec<Header> = std::mem::take(&mut req.headers).into();
    let cseq = format!("{} {}", seq.wrapping_add(1), req.method);
    let mut via_done = false;
    for h in headers.iter_mut() {
        match h {
            Header::CSeq(_) => *h = make_header("CSeq", &cseq),
            Header::Via(_) if !via_done => {
                let (_, v) = header_parts(h);
                let mut list = message::split_header_list(v);
                if let Some(top) = list.first_mut() {
                    *top = with_branch(top, &new_branch());
                }
                *h = make_header("Via", &list.join(", "));
                via_done = true;
            }
            _ => {}
        }
    }
    req.headers = headers.into();
    if via_done {
        Ok(())
    } else {
        Err(ClientAuthError::MalformedRequest("Via"))
    }
}

/// A single `Via` value with its `branch` parameter set to `branch`.
fn with_branch(via: &str, branch: &str) -> String {
    let mut parts: Vec<String> = via.split(';').map(str::to_string).collect();
    let mut found = false;
    for p in parts.iter_mut().skip(1) {
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("branch") {
            *p = format!("branch={branch}");
            found = true;
        }
    }
    if !found {
        parts.push(format!("branch={branch}"));
    }
    parts.join(";")
}

#[cfg(test)]
mod tests;
