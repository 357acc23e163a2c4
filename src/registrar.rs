//! The registrar: agents' phones REGISTER here with digest authentication
//! (RFC 3261 §10, RFC 7616), and ringback learns where to ring them.
//!
//! This is a plain state machine fed with requests and time (the endpoint
//! task owns it), so it needs no locks and is tested without sockets.
//!
//! Security choices:
//! - An unknown user and a wrong password get the same answer (a challenge,
//!   then 403), so probing does not reveal which agents exist.
//! - Nonces are stateless HMACs with an expiry (`stale=true` when old) and
//!   nonce-counts are checked against replay.
//! - Failed attempts are counted per source IP; past the limit the source is
//!   refused for the rest of the window without any digest work.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ringback_sip::auth::{
    Algorithm, AuthResult, Authorization, Credential, DigestServer, MemoryNonceCounter,
};
use ringback_sip::message;
use ringback_sip::transaction::TransportKind;

/// Shortest registration accepted (RFC 3261 §10.3 step 7: 423 below it).
pub const MIN_EXPIRES: u64 = 60;
/// Longest registration granted.
pub const MAX_EXPIRES: u64 = 3600;
/// Failed authentications per source IP per window before it is refused.
pub const MAX_FAILURES: u32 = 10;
/// Window for [`MAX_FAILURES`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// What an agent authenticates with.
#[derive(Debug, Clone)]
pub enum Secret {
    /// Plain password (works with MD5 and SHA-256).
    Password(String),
    /// MD5 HA1 = MD5(user:realm:password); only MD5 digests can be checked.
    Md5Ha1(String),
}

/// Where an agent's phone can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI the phone registered.
    pub contact: String,
    /// Where its REGISTER came from: requests are sent here, which is what
    /// works for phones behind NAT.
    pub source: SocketAddr,
    /// Transport it registered over.
    pub transport: TransportKind,
    /// When the binding lapses.
    pub expires_at: Instant,
}

/// A change in whether an agent can be rung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reachability {
    /// Agent user name.
    pub agent: String,
    /// The freshest binding, or `None` when the agent has none left.
    pub binding: Option<Binding>,
}

/// Registrar state.
pub struct Registrar {
    sha256: DigestServer,
    md5: DigestServer,
    secrets: HashMap<String, Secret>,
    bindings: HashMap<String, Vec<Binding>>,
    failures: HashMap<IpAddr, (u32, Instant)>,
    nonce_counts: MemoryNonceCounter,
    /// Algorithms challenged with, in order.
    offered: Vec<Algorithm>,
}

impl Registrar {
    /// A registrar for `realm` knowing these agents (user name → secret),
    /// challenging with `offered` algorithms in that order.
    pub fn new(
        realm: &str,
        secrets: HashMap<String, Secret>,
        offered: Vec<Algorithm>,
    ) -> Registrar {
        let key: [u8; 32] = rand::random();
        let lifetime = Duration::from_secs(300);
        Registrar {
            sha256: DigestServer::new(realm, Algorithm::Sha256, &key, lifetime),
            md5: DigestServer::new(realm, Algorithm::Md5, &key, lifetime),
            secrets,
            bindings: HashMap::new(),
            failures: HashMap::new(),
            nonce_counts: MemoryNonceCounter::new(65_536),
            offered,
        }
    }

    /// The freshest live binding of an agent.
    pub fn binding(&self, agent: &str, now: Instant) -> Option<&Binding> {
        self.bindings
            .get(agent)?
            .iter()
            .filter(|b| b.expires_at > now)
            .max_by_key(|b| b.expires_at)
    }

    /// Answer a REGISTER. Returns the response and any reachability change.
    pub fn handle(
        &mut self,
        req: &rsip::Request,
        source: SocketAddr,
        transport: TransportKind,
        now: Instant,
        now_unix: u64,
    ) -> (rsip::Response, Option<Reachability>) {
        if self.throttled(source.ip(), now) {
            tracing::warn!(%source, "REGISTER refused: too many failed authentications");
            return (
                message::make_response(req, 403, Some(&message::new_tag())),
                None,
            );
        }
        let Some(authz) = message::header_value(req, "Authorization") else {
            return (self.challenge(req, now_unix, false), None);
        };
        let Some(parsed) = Authorization::parse(&authz) else {
            self.fail(source.ip(), now);
            return (
                message::make_response(req, 400, Some(&message::new_tag())),
                None,
            );
        };
        if !self.offered.contains(&parsed.algorithm) {
            return (self.challenge(req, now_unix, false), None);
        }
        let server = match parsed.algorithm {
            Algorithm::Sha256 => &self.sha256,
            Algorithm::Md5 => &self.md5,
        };
        // Unknown users are checked against a secret nobody knows, so they
        // take the same path (and time) as a wrong password.
        let secret = self
            .secrets
            .get(&parsed.username)
            .cloned()
            .unwrap_or_else(|| Secret::Password(format!("{:032x}", rand::random::<u128>())));
        let credential = match (&secret, parsed.algorithm) {
            (Secret::Password(p), _) => Credential::Password(p),
            (Secret::Md5Ha1(h), Algorithm::Md5) => Credential::Ha1(h),
            (Secret::Md5Ha1(_), Algorithm::Sha256) => {
                // Only an MD5 HA1 is stored: ask again with MD5 only.
                return (self.challenge_md5_only(req, now_unix), None);
            }
        };
        match server.verify_with(
            &authz,
            "REGISTER",
            credential,
            now_unix,
            Some(&mut self.nonce_counts),
        ) {
            AuthResult::Ok(user) => {
                // The address of record is the To URI (RFC 3261 §10.3).
                if to_user(req).as_deref() != Some(user.as_str()) {
                    // Authenticated, but for somebody else's address.
                    return (
                        message::make_response(req, 403, Some(&message::new_tag())),
                        None,
                    );
                }
                self.update_bindings(req, &user, source, transport, now)
            }
            AuthResult::Stale => (self.challenge(req, now_unix, true), None),
            AuthResult::Invalid => {
                self.fail(source.ip(), now);
                tracing::info!(%source, user = %parsed.username, "REGISTER authentication failed");
                (
                    message::make_response(req, 403, Some(&message::new_tag())),
                    None,
                )
            }
        }
    }

    /// Drop lapsed bindings; returns agents that became unreachable.
    pub fn expire(&mut self, now: Instant) -> Vec<Reachability> {
        let mut changes = Vec::new();
        for (agent, list) in self.bindings.iter_mut() {
            let before = list.len();
            list.retain(|b| b.expires_at > now);
            if before > 0 && list.is_empty() {
                changes.push(Reachability {
                    agent: agent.clone(),
                    binding: None,
                });
            }
        }
        self.bindings.retain(|_, l| !l.is_empty());
        self.failures
            .retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        changes
    }

    fn throttled(&self, ip: IpAddr, now: Instant) -> bool {
        self.failures.get(&ip).is_some_and(|(n, since)| {
            *n >= MAX_FAILURES && now.duration_since(*since) < FAILURE_WINDOW
        })
    }

    fn fail(&mut self, ip: IpAddr, now: Instant) {
        let e = self.failures.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= FAILURE_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    fn challenge(&self, req: &rsip::Request, now_unix: u64, stale: bool) -> rsip::Response {
        let mut resp = message::make_response(req, 401, Some(&message::new_tag()));
        // In configured order: strongest first (RFC 7616 §3.7).
        for alg in &self.offered {
            let server = match alg {
                Algorithm::Sha256 => &self.sha256,
                Algorithm::Md5 => &self.md5,
            };
            let c = server.challenge(now_unix, stale);
            resp.headers
                .push(message::make_header("WWW-Authenticate", &c.header_value()));
        }
        resp
    }

    fn challenge_md5_only(&self, req: &rsip::Request, now_unix: u64) -> rsip::Response {
        let mut resp = message::make_response(req, 401, Some(&message::new_tag()));
        let c = self.md5.challenge(now_unix, false);
        resp.headers
            .push(message::make_header("WWW-Authenticate", &c.header_value()));
        resp
    }

    fn update_bindings(
        &mut self,
        req: &rsip::Request,
        agent: &str,
        source: SocketAddr,
        transport: TransportKind,
        now: Instant,
    ) -> (rsip::Response, Option<Reachability>) {
        let header_expires =
            message::header_value(req, "Expires").and_then(|v| v.trim().parse::<u64>().ok());
        let contacts = message::list_values(req, "Contact");
        // Validate every Contact first: a refused REGISTER changes nothing.
        let mut wildcard = false;
        let mut updates: Vec<(String, u64)> = Vec::new();
        for c in &contacts {
            let c = c.trim();
            if c == "*" {
                if header_expires != Some(0) || contacts.len() != 1 {
                    return (
                        message::make_response(req, 400, Some(&message::new_tag())),
                        None,
                    );
                }
                wildcard = true;
                continue;
            }
            let Some(na) = message::NameAddr::parse(c) else {
                return (
                    message::make_response(req, 400, Some(&message::new_tag())),
                    None,
                );
            };
            let expires = na
                .param("expires")
                .flatten()
                .and_then(|v| v.parse::<u64>().ok())
                .or(header_expires)
                .unwrap_or(MAX_EXPIRES);
            if expires != 0 && expires < MIN_EXPIRES {
                let mut resp = message::make_response(req, 423, Some(&message::new_tag()));
                resp.headers.push(message::make_header(
                    "Min-Expires",
                    &MIN_EXPIRES.to_string(),
                ));
                return (resp, None);
            }
            updates.push((na.uri.clone(), expires));
        }
        let had = self.binding(agent, now).cloned();
        let list = self.bindings.entry(agent.to_string()).or_default();
        if wildcard {
            list.clear();
        }
        for (uri, expires) in updates {
            list.retain(|b| b.contact != uri);
            if expires > 0 {
                list.push(Binding {
                    contact: uri,
                    source,
                    transport,
                    expires_at: now + Duration::from_secs(expires.min(MAX_EXPIRES)),
                });
            }
        }
        let mut resp = message::make_response(req, 200, Some(&message::new_tag()));
        for b in list.iter() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            resp.headers.push(message::make_header(
                "Contact",
                &format!("<{}>;expires={left}", b.contact),
            ));
        }
        let now_has = self.binding(agent, now).cloned();
        let change = (had != now_has).then(|| Reachability {
            agent: agent.to_string(),
            binding: now_has,
        });
        if let Some(c) = &change {
            tracing::info!(agent, reachable = c.binding.is_some(), %source, "registration changed");
        }
        (resp, change)
    }
}

/// User part of the To URI.
fn to_user(req: &rsip::Request) -> Option<String> {
    use rsip::prelude::*;
    req.to_header()
        .ok()
        .and_then(|h| h.typed().ok())
        .and_then(|t| t.uri.auth.map(|a| a.user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringback_sip::auth::{authorize, Challenge};

    const ME: &str = "127.0.0.1:5099";

    fn register(user: &str, authz: Option<&str>, expires: u32, cseq: u32) -> rsip::Request {
        let auth = authz
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let raw = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {ME};branch=z9hG4bK-r{cseq}\r\nFrom: <sip:{user}@127.0.0.1>;tag=abc\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{ME}>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        );
        match message::parse(raw.as_bytes()).expect("valid REGISTER") {
            rsip::SipMessage::Request(r) => r,
            rsip::SipMessage::Response(_) => panic!("not a request"),
        }
    }

    fn registrar() -> Registrar {
        let mut s = HashMap::new();
        s.insert("alice".to_string(), Secret::Password("wonderland".into()));
        s.insert(
            "bob".to_string(),
            Secret::Md5Ha1(ringback_sip::auth::ha1(
                Algorithm::Md5,
                "bob",
                "ringback",
                "builder",
            )),
        );
        Registrar::new("ringback", s, vec![Algorithm::Sha256, Algorithm::Md5])
    }

    fn challenge_of(resp: &rsip::Response, alg: &str) -> Challenge {
        message::header_values(resp, "WWW-Authenticate")
            .into_iter()
            .filter_map(|v| Challenge::parse(&v))
            .find(|c| c.algorithm.name().eq_ignore_ascii_case(alg))
            .expect("challenge")
    }

    fn answer(
        user: &str,
        pw: &str,
        alg: &str,
        reg: &mut Registrar,
        now: Instant,
        t: u64,
        nc: u32,
    ) -> (u16, Option<Reachability>) {
        let src: SocketAddr = ME.parse().expect("addr");
        let (r401, _) = reg.handle(
            &register(user, None, 600, 1),
            src,
            TransportKind::Udp,
            now,
            t,
        );
        assert_eq!(r401.status_code.code(), 401);
        let ch = challenge_of(&r401, alg);
        let authz = authorize(&ch, user, pw, "REGISTER", "sip:127.0.0.1", "cnonce1", nc);
        let (resp, change) = reg.handle(
            &register(user, Some(&authz), 600, 2),
            src,
            TransportKind::Udp,
            now,
            t,
        );
        (resp.status_code.code(), change)
    }

    #[test]
    fn sha256_and_md5_registration() {
        let mut reg = registrar();
        let now = Instant::now();
        let (code, change) = answer("alice", "wonderland", "SHA-256", &mut reg, now, 1_000, 1);
        assert_eq!(code, 200);
        assert_eq!(
            change.and_then(|c| c.binding).map(|b| b.contact),
            Some(format!("sip:alice@{ME}"))
        );
        let (code, _) = answer("bob", "builder", "MD5", &mut reg, now, 1_000, 1);
        assert_eq!(code, 200, "HA1-configured agent over MD5");
        assert!(reg.binding("bob", now).is_some());
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let mut reg = registrar();
        let now = Instant::now();
        assert_eq!(
            answer("alice", "nope", "MD5", &mut reg, now, 1_000, 1).0,
            403
        );
        assert_eq!(
            answer("mallory", "x", "MD5", &mut reg, now, 1_000, 1).0,
            403
        );
        assert!(reg.binding("alice", now).is_none());
    }

    #[test]
    fn expired_nonce_is_stale_and_replay_is_refused() {
        let mut reg = registrar();
        let now = Instant::now();
        let src: SocketAddr = ME.parse().expect("addr");
        let (r401, _) = reg.handle(
            &register("alice", None, 600, 1),
            src,
            TransportKind::Udp,
            now,
            1_000,
        );
        let ch = challenge_of(&r401, "MD5");
        let authz = authorize(
            &ch,
            "alice",
            "wonderland",
            "REGISTER",
            "sip:127.0.0.1",
            "c",
            1,
        );
        let (ok, _) = reg.handle(
            &register("alice", Some(&authz), 600, 2),
            src,
            TransportKind::Udp,
            now,
            1_000,
        );
        assert_eq!(ok.status_code.code(), 200);
        // The same nonce-count again: a replay.
        let (replay, _) = reg.handle(
            &register("alice", Some(&authz), 600, 3),
            src,
            TransportKind::Udp,
            now,
            1_000,
        );
        assert_eq!(replay.status_code.code(), 401);
        assert!(message::header_values(&replay, "WWW-Authenticate")
            .iter()
            .all(|v| v.contains("stale=true")));
        // Much later: the nonce has expired.
        let authz2 = authorize(
            &ch,
            "alice",
            "wonderland",
            "REGISTER",
            "sip:127.0.0.1",
            "c",
            2,
        );
        let (stale, _) = reg.handle(
            &register("alice", Some(&authz2), 600, 4),
            src,
            TransportKind::Udp,
            now,
            1_000 + 3_600,
        );
        assert_eq!(stale.status_code.code(), 401);
        assert!(message::header_values(&stale, "WWW-Authenticate")
            .iter()
            .any(|v| v.contains("stale=true")));
    }

    #[test]
    fn unregister_expiry_and_min_expires() {
        let mut reg = registrar();
        let now = Instant::now();
        let src: SocketAddr = ME.parse().expect("addr");
        assert_eq!(
            answer("alice", "wonderland", "MD5", &mut reg, now, 1_000, 1).0,
            200
        );
        // Too short an interval → 423.
        let (r401, _) = reg.handle(
            &register("alice", None, 10, 5),
            src,
            TransportKind::Udp,
            now,
            1_000,
        );
        let ch = challenge_of(&r401, "MD5");
        let a = authorize(
            &ch,
            "alice",
            "wonderland",
            "REGISTER",
            "sip:127.0.0.1",
            "c",
            1,
        );
        let (resp, _) = reg.handle(
            &register("alice", Some(&a), 10, 6),
            src,
            TransportKind::Udp,
            now,
            1_000,
        );
        assert_eq!(resp.status_code.code(), 423);
        // Expires: 0 removes the binding.
        let a = authorize(
            &ch,
            "alice",
            "wonderland",
            "REGISTER",
            "sip:127.0.0.1",
            "c",
            2,
        );
        let (resp, change) = reg.handle(
            &register("alice", Some(&a), 0, 7),
            src,
            TransportKind::Udp,
            now,
            1_000,
        );
        assert_eq!(resp.status_code.code(), 200);
        assert_eq!(change.map(|c| c.binding), Some(None));
        // A binding lapses on its own.
        assert_eq!(
            answer("alice", "wonderland", "MD5", &mut reg, now, 1_000, 1).0,
            200
        );
        let gone = reg.expire(now + Duration::from_secs(601));
        assert_eq!(gone.len(), 1);
        assert!(reg
            .binding("alice", now + Duration::from_secs(601))
            .is_none());
    }

    #[test]
    fn brute_force_is_throttled_per_source() {
        let mut reg = registrar();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                answer("alice", "guess", "MD5", &mut reg, now, 1_000, 1).0,
                403
            );
        }
        // Now even the challenge is refused, and so is the right password.
        let src: SocketAddr = ME.parse().expect("addr");
        let (resp, _) = reg.handle(
            &register("alice", None, 600, 1),
            src,
            TransportKind::Udp,
            now,
            1_000,
        );
        assert_eq!(resp.status_code.code(), 403);
        // After the window it works again.
        let later = now + FAILURE_WINDOW + Duration::from_secs(1);
        reg.expire(later);
        assert_eq!(
            answer("alice", "wonderland", "MD5", &mut reg, later, 1_000, 1).0,
            200
        );
    }
}
