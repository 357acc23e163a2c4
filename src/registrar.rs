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
//!
//! One challenge per 401: every 401 carries a single `WWW-Authenticate`,
//! for the first algorithm of the list that applies (the agent's
//! `auth_algorithms`, else `sip.auth_algorithms`). Several challenges in one
//! response (RFC 8760 §2.4) lock phones out: libre ≤ 1.x (Debian's baresip
//! 1.0) walks every `WWW-Authenticate` and aborts the whole REGISTER with
//! `ENOSYS` ("Function not implemented") at the first one that is not MD5,
//! whatever its position. A phone that comes back without credentials on the
//! same registration (Call-ID) after a challenge it did not answer is offered
//! the next algorithm of the list, so a phone that cannot do the preferred
//! one still gets in (`["SHA-256", "MD5"]`: SHA-256 phones use SHA-256, an
//! MD5-only phone is offered MD5 when it retries). A registration that
//! authenticated is offered the algorithm it used again (refreshes and the
//! un-REGISTER work at once); a new registration starts at the first.

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
/// Registrations (Call-IDs) whose last challenge is remembered, to offer
/// the next algorithm or the one that worked; the table is cleared when full.
pub const MAX_OFFERS: usize = 8_192;
/// How long an unanswered challenge is remembered.
pub const UNANSWERED_TTL: Duration = Duration::from_secs(900);
/// How long the algorithm a registration authenticated with is remembered.
pub const ANSWERED_TTL: Duration = Duration::from_secs(MAX_EXPIRES + 300);
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
    /// Algorithms challenged with, in order of preference.
    offered: Vec<Algorithm>,
    /// Agents with their own list (overrides `offered`).
    agent_offered: HashMap<String, Vec<Algorithm>>,
    /// The last challenge of each registration, by Call-ID.
    offers: HashMap<String, Offer>,
}

/// What a registration (Call-ID) was challenged with last.
#[derive(Debug, Clone, Copy)]
struct Offer {
    /// Position in the registration's algorithm list.
    index: usize,
    /// When it was offered, or answered.
    at: Instant,
    /// The phone authenticated with it.
    answered: bool,
}

impl Offer {
    fn live(&self, now: Instant) -> bool {
        let ttl = if self.answered {
            ANSWERED_TTL
        } else {
            UNANSWERED_TTL
        };
        now.duration_since(self.at) < ttl
    }
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
            offered: if offered.is_empty() {
                vec![Algorithm::Md5]
            } else {
                offered
            },
            agent_offered: HashMap::new(),
            offers: HashMap::new(),
        }
    }

    /// Per-agent algorithm lists (`[agents.NAME] auth_algorithms`), each
    /// replacing the global list for that agent's phone. Empty lists are
    /// ignored.
    pub fn with_agent_algorithms(mut self, lists: HashMap<String, Vec<Algorithm>>) -> Registrar {
        self.agent_offered = lists.into_iter().filter(|(_, l)| !l.is_empty()).collect();
        self
    }

    /// The algorithms `user`'s phone is challenged with, in order. Unknown
    /// users get the global list. An agent known only by an MD5 HA1 is only
    /// ever offered MD5 (nothing else could be checked).
    fn offered_for(&self, user: Option<&str>) -> Vec<Algorithm> {
        let list = user
            .and_then(|u| self.agent_offered.get(u))
            .unwrap_or(&self.offered);
        match user.and_then(|u| self.secrets.get(u)) {
            Some(Secret::Md5Ha1(_)) => vec![Algorithm::Md5],
            _ => list.clone(),
        }
    }

    /// The algorithm for the next challenge of the registration `call_id`:
    /// the one it last authenticated with, else the one after the last
    /// offered when that challenge went unanswered, else the first.
    fn next_algorithm(&mut self, call_id: &str, list: &[Algorithm], now: Instant) -> Algorithm {
        let index = match self.offers.get(call_id) {
            Some(o) if o.live(now) && o.answered => o.index % list.len(),
            Some(o) if o.live(now) => (o.index + 1) % list.len(),
            _ => 0,
        };
        self.remember(
            call_id,
            Offer {
                index,
                at: now,
                answered: false,
            },
        );
        list[index]
    }

    fn remember(&mut self, call_id: &str, offer: Offer) {
        if self.offers.len() >= MAX_OFFERS && !self.offers.contains_key(call_id) {
            self.offers.clear();
        }
        self.offers.insert(call_id.to_string(), offer);
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
        let call_id = message::call_id(req).unwrap_or_default();
        let Some(authz) = message::header_value(req, "Authorization") else {
            let list = self.offered_for(to_user(req).as_deref());
            let alg = self.next_algorithm(&call_id, &list, now);
            return (self.challenge(req, alg, now_unix, false), None);
        };
        let Some(parsed) = Authorization::parse(&authz) else {
            self.fail(source.ip(), now);
            return (
                message::make_response(req, 400, Some(&message::new_tag())),
                None,
            );
        };
        let list = self.offered_for(Some(&parsed.username));
        if !list.contains(&parsed.algorithm) {
            // Answered with an algorithm this phone is not offered (e.g. MD5
            // for an agent restricted to SHA-256): challenge again.
            let alg = self.next_algorithm(&call_id, &list, now);
            return (self.challenge(req, alg, now_unix, false), None);
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
                // Only an MD5 HA1 is stored (not reached: such agents are
                // only offered MD5): ask again with MD5.
                return (self.challenge(req, Algorithm::Md5, now_unix, false), None);
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
                if let Some(index) = list.iter().position(|a| *a == parsed.algorithm) {
                    self.remember(
                        &call_id,
                        Offer {
                            index,
                            at: now,
                            answered: true,
                        },
                    );
                }
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
            // Same algorithm again: the phone already speaks it.
            AuthResult::Stale => (self.challenge(req, parsed.algorithm, now_unix, true), None),
            AuthResult::Invalid => {
                // The phone could answer this algorithm (wrongly): no reason
                // to offer it another one.
                self.offers.remove(&call_id);
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
        self.offers.retain(|_, o| o.live(now));
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

    /// A 401 with a single challenge (see the module documentation for why
    /// never several).
    fn challenge(
        &self,
        req: &rsip::Request,
        alg: Algorithm,
        now_unix: u64,
        stale: bool,
    ) -> rsip::Response {
        let mut resp = message::make_response(req, 401, Some(&message::new_tag()));
        let server = match alg {
            Algorithm::Sha256 => &self.sha256,
            Algorithm::Md5 => &self.md5,
        };
        let c = server.challenge(now_unix, stale);
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
        register_as(user, authz, expires, cseq, &format!("reg-{user}@test"))
    }

    fn register_as(
        user: &str,
        authz: Option<&str>,
        expires: u32,
        cseq: u32,
        call_id: &str,
    ) -> rsip::Request {
        let auth = authz
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let raw = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {ME};branch=z9hG4bK-r{cseq}\r\nFrom: <sip:{user}@127.0.0.1>;tag=abc\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{ME}>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        );
        match message::parse(raw.as_bytes()).expect("valid REGISTER") {
            rsip::SipMessage::Request(r) => r,
            rsip::SipMessage::Response(_) => panic!("not a request"),
        }
    }

    /// The `Authorization` value with which `user` answers `ch` for a
    /// REGISTER, knowing `pw`, at nonce-count `nc`.
    fn authz(ch: &Challenge, user: &str, pw: &str, nc: u32) -> String {
        authorize(ch, user, pw, "REGISTER", "sip:127.0.0.1", "c", nc)
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

    /// The only challenge of a 401 (there must be exactly one).
    fn only_challenge(resp: &rsip::Response) -> Challenge {
        assert_eq!(resp.status_code.code(), 401);
        let all = message::header_values(resp, "WWW-Authenticate");
        assert_eq!(all.len(), 1, "one challenge per 401, got {all:?}");
        Challenge::parse(&all[0]).expect("challenge")
    }

    /// A registrar under test with its two clocks (`now` for bindings and
    /// throttling, `unix` seconds for nonces); every REGISTER comes from
    /// `ME` over UDP.
    struct Bench {
        reg: Registrar,
        now: Instant,
        unix: u64,
    }

    impl Bench {
        fn new(reg: Registrar) -> Bench {
            Bench {
                reg,
                now: Instant::now(),
                unix: 1_000,
            }
        }

        /// Moves both clocks `secs` seconds on.
        fn advance(&mut self, secs: u64) {
            self.now += Duration::from_secs(secs);
            self.unix += secs;
        }

        fn send(&mut self, req: &rsip::Request) -> (rsip::Response, Option<Reachability>) {
            let src: SocketAddr = ME.parse().expect("addr");
            self.reg
                .handle(req, src, TransportKind::Udp, self.now, self.unix)
        }

        /// Sends `req`, which must be answered by a 401: its only challenge.
        fn challenge(&mut self, req: &rsip::Request) -> Challenge {
            only_challenge(&self.send(req).0)
        }

        /// Sends `user`'s REGISTER (`expires`, `cseq`) answering `ch` with
        /// `pw` at nonce-count `nc`.
        fn answer(
            &mut self,
            ch: &Challenge,
            user: &str,
            pw: &str,
            nc: u32,
            expires: u32,
            cseq: u32,
        ) -> (rsip::Response, Option<Reachability>) {
            self.send(&register(
                user,
                Some(&authz(ch, user, pw, nc)),
                expires,
                cseq,
            ))
        }

        /// Send unauthenticated REGISTERs (as a phone that cannot answer
        /// what it is offered does) until a 401 offers `alg`; at most three.
        fn challenge_for(&mut self, user: &str, expires: u32, alg: Algorithm) -> Challenge {
            for i in 0..3 {
                let ch = self.challenge(&register(user, None, expires, 100 + i));
                if ch.algorithm == alg {
                    return ch;
                }
            }
            panic!("{alg:?} never offered to {user}");
        }

        /// A whole registration of `user` knowing `pw` over `alg`: the
        /// challenge for it, then the answer (nonce-count 1, 600 s).
        fn login(&mut self, user: &str, pw: &str, alg: Algorithm) -> (u16, Option<Reachability>) {
            let ch = self.challenge_for(user, 600, alg);
            let (resp, change) = self.answer(&ch, user, pw, 1, 600, 2);
            (resp.status_code.code(), change)
        }
    }

    #[test]
    fn sha256_and_md5_registration() {
        let mut b = Bench::new(registrar());
        let (code, change) = b.login("alice", "wonderland", Algorithm::Sha256);
        assert_eq!(code, 200);
        assert_eq!(
            change
                .and_then(|c| c.binding)
                .map(|binding| binding.contact),
            Some(format!("sip:alice@{ME}"))
        );
        let (code, _) = b.login("bob", "builder", Algorithm::Md5);
        assert_eq!(code, 200, "HA1-configured agent over MD5");
        assert!(b.reg.binding("bob", b.now).is_some());
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let mut b = Bench::new(registrar());
        assert_eq!(b.login("alice", "nope", Algorithm::Md5).0, 403);
        assert_eq!(b.login("mallory", "x", Algorithm::Md5).0, 403);
        assert!(b.reg.binding("alice", b.now).is_none());
    }

    #[test]
    fn expired_nonce_is_stale_and_replay_is_refused() {
        let mut b = Bench::new(registrar());
        let ch = b.challenge_for("alice", 600, Algorithm::Md5);
        let (ok, _) = b.answer(&ch, "alice", "wonderland", 1, 600, 2);
        assert_eq!(ok.status_code.code(), 200);
        // The same nonce-count again: a replay.
        let (replay, _) = b.answer(&ch, "alice", "wonderland", 1, 600, 3);
        let again = only_challenge(&replay);
        assert!(again.stale, "a replay is answered with stale=true");
        assert_eq!(again.algorithm, Algorithm::Md5, "in the phone's algorithm");
        // Much later: the nonce has expired.
        b.unix += 3_600;
        let (stale, _) = b.answer(&ch, "alice", "wonderland", 2, 600, 4);
        let again = only_challenge(&stale);
        assert!(again.stale);
        assert_eq!(again.algorithm, Algorithm::Md5);
    }

    #[test]
    fn unregister_expiry_and_min_expires() {
        let mut b = Bench::new(registrar());
        assert_eq!(b.login("alice", "wonderland", Algorithm::Md5).0, 200);
        // Too short an interval → 423.
        let ch = b.challenge_for("alice", 10, Algorithm::Md5);
        let (resp, _) = b.answer(&ch, "alice", "wonderland", 1, 10, 6);
        assert_eq!(resp.status_code.code(), 423);
        // Expires: 0 removes the binding.
        let (resp, change) = b.answer(&ch, "alice", "wonderland", 2, 0, 7);
        assert_eq!(resp.status_code.code(), 200);
        assert_eq!(change.map(|c| c.binding), Some(None));
        // A binding lapses on its own.
        assert_eq!(b.login("alice", "wonderland", Algorithm::Md5).0, 200);
        let later = b.now + Duration::from_secs(601);
        let gone = b.reg.expire(later);
        assert_eq!(gone.len(), 1);
        assert!(b.reg.binding("alice", later).is_none());
    }

    #[test]
    fn brute_force_is_throttled_per_source() {
        let mut b = Bench::new(registrar());
        for _ in 0..MAX_FAILURES {
            assert_eq!(b.login("alice", "guess", Algorithm::Md5).0, 403);
        }
        // Now even the challenge is refused, and so is the right password.
        let (resp, _) = b.send(&register("alice", None, 600, 1));
        assert_eq!(resp.status_code.code(), 403);
        // After the window it works again.
        b.now += FAILURE_WINDOW + Duration::from_secs(1);
        b.reg.expire(b.now);
        assert_eq!(b.login("alice", "wonderland", Algorithm::Md5).0, 200);
    }

    /// What libre ≤ 1.x (Debian's baresip 1.0) does with a 401: it walks
    /// every `WWW-Authenticate` and gives up on the whole REGISTER
    /// (`ENOSYS`) at the first one that is not MD5, whatever its position.
    fn libre1_accepts(resp: &rsip::Response) -> bool {
        message::header_values(resp, "WWW-Authenticate")
            .iter()
            .filter_map(|v| Challenge::parse(v))
            .all(|c| c.algorithm == Algorithm::Md5)
    }

    #[test]
    fn default_order_challenges_with_md5_alone() {
        // The default `sip.auth_algorithms`: ["MD5", "SHA-256"].
        let mut s = HashMap::new();
        s.insert("alice".to_string(), Secret::Password("wonderland".into()));
        let mut b = Bench::new(Registrar::new(
            "ringback",
            s,
            vec![Algorithm::Md5, Algorithm::Sha256],
        ));
        let (r401, _) = b.send(&register("alice", None, 600, 1));
        assert!(libre1_accepts(&r401), "baresip 1.0 would fail with ENOSYS");
        let ch = only_challenge(&r401);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let (ok, _) = b.answer(&ch, "alice", "wonderland", 1, 600, 2);
        assert_eq!(ok.status_code.code(), 200);
        // A refresh without credentials (phones that do not keep them) on
        // the same registration starts again at MD5: an authenticated
        // registration never moves on to the next algorithm.
        for cseq in 3..6 {
            let ch = b.challenge(&register("alice", None, 600, cseq));
            assert_eq!(ch.algorithm, Algorithm::Md5);
            let (ok, _) = b.answer(&ch, "alice", "wonderland", 1, 600, cseq);
            assert_eq!(ok.status_code.code(), 200);
        }
    }

    #[test]
    fn sha256_first_still_lets_md5_only_phones_in() {
        let mut b = Bench::new(registrar()); // ["SHA-256", "MD5"]
                                             // A SHA-256 phone answers the first challenge.
        let ch = b.challenge(&register_as("alice", None, 600, 1, "sha-phone"));
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        let a = authz(&ch, "alice", "wonderland", 1);
        let (ok, _) = b.send(&register_as("alice", Some(&a), 600, 2, "sha-phone"));
        assert_eq!(ok.status_code.code(), 200, "SHA-256 when configured");
        // An MD5-only phone cannot answer it and comes back without
        // credentials: it is offered MD5, then registers.
        let first = b.challenge(&register_as("alice", None, 600, 1, "md5-phone"));
        assert_eq!(first.algorithm, Algorithm::Sha256);
        b.advance(45);
        let ch = b.challenge(&register_as("alice", None, 600, 2, "md5-phone"));
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let a = authz(&ch, "alice", "wonderland", 1);
        let (ok, _) = b.send(&register_as("alice", Some(&a), 600, 3, "md5-phone"));
        assert_eq!(ok.status_code.code(), 200);
        // Registered: this registration keeps being offered what worked
        // (its refreshes and its un-REGISTER), a new one starts at SHA-256.
        b.advance(15);
        let ch = b.challenge(&register_as("alice", None, 0, 4, "md5-phone"));
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let ch = b.challenge(&register_as("alice", None, 600, 1, "md5-phone-restarted"));
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        // Long-forgotten challenges do not count.
        b.advance(ANSWERED_TTL.as_secs());
        let ch = b.challenge(&register_as("alice", None, 600, 5, "md5-phone"));
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        let ch = b.challenge(&register_as("alice", None, 600, 2, "md5-phone-restarted"));
        assert_eq!(ch.algorithm, Algorithm::Sha256);
    }

    #[test]
    fn per_agent_algorithms_override_the_global_list() {
        let mut s = HashMap::new();
        s.insert("alice".to_string(), Secret::Password("wonderland".into()));
        s.insert("carol".to_string(), Secret::Password("sweet".into()));
        let mut per_agent = HashMap::new();
        per_agent.insert("carol".to_string(), vec![Algorithm::Sha256]);
        let mut b = Bench::new(
            Registrar::new("ringback", s, vec![Algorithm::Md5, Algorithm::Sha256])
                .with_agent_algorithms(per_agent),
        );
        // Carol is only ever offered SHA-256, even when she retries.
        let mut carol = Vec::new();
        for cseq in 1..4 {
            carol.push(b.challenge(&register("carol", None, 600, cseq)));
        }
        assert!(carol.iter().all(|c| c.algorithm == Algorithm::Sha256));
        // An MD5 answer (to a challenge from elsewhere) does not get her in.
        let md5 = b.challenge(&register("alice", None, 600, 1));
        assert_eq!(
            md5.algorithm,
            Algorithm::Md5,
            "the others keep the global list"
        );
        let (resp, _) = b.answer(&md5, "carol", "sweet", 1, 600, 5);
        assert_eq!(resp.status_code.code(), 401);
        assert_eq!(only_challenge(&resp).algorithm, Algorithm::Sha256);
        assert!(b.reg.binding("carol", b.now).is_none());
        let (resp, _) = b.answer(&carol[0], "carol", "sweet", 1, 600, 6);
        assert_eq!(resp.status_code.code(), 200);
        // Unknown users get the global list, like any agent without one.
        let ch = b.challenge(&register("mallory", None, 600, 1));
        assert_eq!(ch.algorithm, Algorithm::Md5);
    }

    #[test]
    fn ha1_agents_are_only_offered_md5() {
        let mut b = Bench::new(registrar()); // ["SHA-256", "MD5"]; bob has an MD5 HA1
        for cseq in 1..4 {
            let ch = b.challenge(&register("bob", None, 600, cseq));
            assert_eq!(ch.algorithm, Algorithm::Md5);
        }
        assert_eq!(b.login("bob", "builder", Algorithm::Md5).0, 200);
    }

    #[test]
    fn unanswered_challenges_are_bounded_and_expire() {
        let mut b = Bench::new(registrar());
        for i in 0..(MAX_OFFERS + 10) {
            let (r401, _) = b.send(&register_as("alice", None, 600, 1, &format!("flood-{i}")));
            assert_eq!(r401.status_code.code(), 401);
            assert!(b.reg.offers.len() <= MAX_OFFERS);
        }
        b.reg.expire(b.now + UNANSWERED_TTL);
        assert!(b.reg.offers.is_empty());
    }
}
