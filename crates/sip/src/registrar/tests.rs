// Test code drives the core with the real clock as its base time (issue 12).
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::auth::{authorize, ha1, Challenge};
use crate::message::{header_value, header_values};

const ME: &str = "127.0.0.1:5099";

/// A REGISTER under construction: `user` in `From`, `to` in `To`, its `Contact` lines, an
/// optional `Expires` header and `Authorization`.
#[derive(Clone)]
struct Reg {
    user: String,
    to: String,
    call_id: String,
    cseq: u32,
    contacts: Vec<String>,
    expires: Option<u32>,
    authz: Option<String>,
}

impl Reg {
    /// `user` registering `<sip:user@ME>` for 600 s on Call-ID `reg-user@test`.
    fn new(user: &str) -> Reg {
        Reg {
            user: user.into(),
            to: user.into(),
            call_id: format!("reg-{user}@test"),
            cseq: 1,
            contacts: vec![format!("<sip:{user}@{ME}>")],
            expires: Some(600),
            authz: None,
        }
    }

    fn to(mut self, to: &str) -> Reg {
        self.to = to.into();
        self
    }

    fn call_id(mut self, call_id: &str) -> Reg {
        self.call_id = call_id.into();
        self
    }

    fn cseq(mut self, cseq: u32) -> Reg {
        self.cseq = cseq;
        self
    }

    /// Each entry is one `Contact:` header line.
    fn contacts(mut self, contacts: &[&str]) -> Reg {
        self.contacts = contacts.iter().map(|c| c.to_string()).collect();
        self
    }

    fn expires(mut self, expires: Option<u32>) -> Reg {
        self.expires = expires;
        self
    }

    fn authz(mut self, authz: String) -> Reg {
        self.authz = Some(authz);
        self
    }

    fn build(&self) -> Request {
        let Reg {
            user,
            to,
            call_id,
            cseq,
            ..
        } = self;
        let mut extra = String::new();
        for c in &self.contacts {
            extra += &format!("Contact: {c}\r\n");
        }
        if let Some(e) = self.expires {
            extra += &format!("Expires: {e}\r\n");
        }
        if let Some(a) = &self.authz {
            extra += &format!("Authorization: {a}\r\n");
        }
        let raw = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {ME};branch=z9hG4bK-r{cseq}\r\nFrom: <sip:{user}@127.0.0.1>;tag=abc\r\nTo: <sip:{to}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        match message::parse(raw.as_bytes()).expect("valid REGISTER") {
            rsip::SipMessage::Request(r) => r,
            rsip::SipMessage::Response(_) => panic!("not a request"),
        }
    }
}

fn register(user: &str, authz: Option<&str>, expires: u32, cseq: u32) -> Request {
    register_as(user, authz, expires, cseq, &format!("reg-{user}@test"))
}

fn register_as(user: &str, authz: Option<&str>, expires: u32, cseq: u32, call_id: &str) -> Request {
    let mut r = Reg::new(user)
        .expires(Some(expires))
        .cseq(cseq)
        .call_id(call_id);
    r.authz = authz.map(str::to_string);
    r.build()
}

/// The `Authorization` value with which `user` answers `ch` for a REGISTER, knowing `pw`, at
/// nonce-count `nc`.
fn authz(ch: &Challenge, user: &str, pw: &str, nc: u32) -> String {
    authorize(ch, user, pw, "REGISTER", "sip:127.0.0.1", "c", nc)
}

fn config(algorithms: Vec<Algorithm>) -> RegistrarConfig {
    let mut s = HashMap::new();
    s.insert("alice".to_string(), Secret::Password("wonderland".into()));
    s.insert(
        "bob".to_string(),
        Secret::Md5Ha1(ha1(Algorithm::Md5, "bob", "ringback", "builder")),
    );
    RegistrarConfig::new("ringback", s, algorithms, [7; 32])
}

fn registrar() -> Registrar {
    Registrar::new(config(vec![Algorithm::Sha256, Algorithm::Md5]))
}

/// The only challenge of a 401 (there must be exactly one).
fn only_challenge(resp: &Response) -> Challenge {
    assert_eq!(resp.status_code.code(), 401);
    let all = header_values(resp, "WWW-Authenticate");
    assert_eq!(all.len(), 1, "one challenge per 401, got {all:?}");
    Challenge::parse(&all[0]).expect("challenge")
}

/// The `Contact` values of a 200.
fn contacts(resp: &Response) -> Vec<String> {
    header_values(resp, "Contact")
}

/// A registrar under test with its two clocks (`now` for bindings and throttling, `unix`
/// seconds for nonces); every REGISTER comes from `ME` over UDP.
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

    fn decide(&mut self, req: &Request) -> Decision {
        let src: SocketAddr = ME.parse().expect("addr");
        self.reg
            .handle(req, src, TransportKind::Udp, self.now, self.unix)
    }

    fn send(&mut self, req: &Request) -> (Response, Option<Reachability>) {
        let d = self.decide(req);
        (d.response, d.change)
    }

    /// Sends `req`, which must be answered by a 401: its only challenge.
    fn challenge(&mut self, req: &Request) -> Challenge {
        only_challenge(&self.send(req).0)
    }

    /// Sends `user`'s REGISTER (`expires`, `cseq`) answering `ch` with `pw` at nonce-count
    /// `nc`.
    fn answer(
        &mut self,
        ch: &Challenge,
        user: &str,
        pw: &str,
        nc: u32,
        expires: u32,
        cseq: u32,
    ) -> (Response, Option<Reachability>) {
        self.send(&register(
            user,
            Some(&authz(ch, user, pw, nc)),
            expires,
            cseq,
        ))
    }

    /// Send unauthenticated REGISTERs (as a phone that cannot answer what it is offered
    /// does) until a 401 offers `alg`; at most three.
    fn challenge_for(&mut self, user: &str, expires: u32, alg: Algorithm) -> Challenge {
        for i in 0..3 {
            let ch = self.challenge(&register(user, None, expires, 100 + i));
            if ch.algorithm == alg {
                return ch;
            }
        }
        panic!("{alg:?} never offered to {user}");
    }

    /// A whole registration of `user` knowing `pw` over `alg`: the challenge for it, then the
    /// answer (nonce-count 1, 600 s).
    fn login(&mut self, user: &str, pw: &str, alg: Algorithm) -> (u16, Option<Reachability>) {
        let ch = self.challenge_for(user, 600, alg);
        let (resp, change) = self.answer(&ch, user, pw, 1, 600, 2);
        (resp.status_code.code(), change)
    }
}

// --- moved from src/registrar.rs --------------------------------------------------------------

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
    let gone = b.reg.handle_timeout(later);
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
    let d = b.decide(&register("alice", None, 600, 1));
    assert_eq!(d.response.status_code.code(), 403);
    assert_eq!(d.outcome, Outcome::Throttled);
    // After the window it works again.
    b.now += FAILURE_WINDOW + Duration::from_secs(1);
    b.reg.handle_timeout(b.now);
    assert_eq!(b.login("alice", "wonderland", Algorithm::Md5).0, 200);
}

/// What libre ≤ 1.x (Debian's baresip 1.0) does with a 401: it walks every `WWW-Authenticate`
/// and gives up on the whole REGISTER (`ENOSYS`) at the first one that is not MD5, whatever
/// its position.
fn libre1_accepts(resp: &Response) -> bool {
    header_values(resp, "WWW-Authenticate")
        .iter()
        .filter_map(|v| Challenge::parse(v))
        .all(|c| c.algorithm == Algorithm::Md5)
}

#[test]
fn default_order_challenges_with_md5_alone() {
    // The default `sip.auth_algorithms`: ["MD5", "SHA-256"].
    let mut b = Bench::new(Registrar::new(config(vec![
        Algorithm::Md5,
        Algorithm::Sha256,
    ])));
    let (r401, _) = b.send(&register("alice", None, 600, 1));
    assert!(libre1_accepts(&r401), "baresip 1.0 would fail with ENOSYS");
    let ch = only_challenge(&r401);
    assert_eq!(ch.algorithm, Algorithm::Md5);
    let (ok, _) = b.answer(&ch, "alice", "wonderland", 1, 600, 2);
    assert_eq!(ok.status_code.code(), 200);
    // A refresh without credentials (phones that do not keep them) on the same registration
    // starts again at MD5: an authenticated registration never moves on to the next algorithm.
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
    // An MD5-only phone cannot answer it and comes back without credentials: it is offered
    // MD5, then registers.
    let first = b.challenge(&register_as("alice", None, 600, 1, "md5-phone"));
    assert_eq!(first.algorithm, Algorithm::Sha256);
    b.advance(45);
    let ch = b.challenge(&register_as("alice", None, 600, 2, "md5-phone"));
    assert_eq!(ch.algorithm, Algorithm::Md5);
    let a = authz(&ch, "alice", "wonderland", 1);
    let (ok, _) = b.send(&register_as("alice", Some(&a), 600, 3, "md5-phone"));
    assert_eq!(ok.status_code.code(), 200);
    // Registered: this registration keeps being offered what worked (its refreshes and its
    // un-REGISTER), a new one starts at SHA-256.
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
    let mut cfg = RegistrarConfig::new(
        "ringback",
        s,
        vec![Algorithm::Md5, Algorithm::Sha256],
        [7; 32],
    );
    cfg.agent_algorithms
        .insert("carol".to_string(), vec![Algorithm::Sha256]);
    let mut b = Bench::new(Registrar::new(cfg));
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
    b.reg.handle_timeout(b.now + UNANSWERED_TTL);
    assert!(b.reg.offers.is_empty());
}

// --- expiry ---------------------------------------------------------------------------------

#[test]
fn a_binding_lapses_at_the_instant_poll_timeout_names() {
    let mut b = Bench::new(registrar());
    assert_eq!(b.reg.poll_timeout(), None, "nothing to expire yet");
    let ch = b.challenge_for("alice", 600, Algorithm::Sha256);
    // The unanswered challenge is remembered for UNANSWERED_TTL.
    assert_eq!(b.reg.poll_timeout(), Some(b.now + UNANSWERED_TTL));
    let (ok, change) = b.answer(&ch, "alice", "wonderland", 1, 600, 2);
    assert_eq!(ok.status_code.code(), 200);
    let bound = change.and_then(|c| c.binding).expect("reachable");
    let until = b.now + Duration::from_secs(600);
    assert_eq!(bound.expires_at, until);
    assert_eq!(
        b.reg.poll_timeout(),
        Some(until),
        "the binding lapses first"
    );
    // Just before: still there, nothing reported.
    let before = until - Duration::from_millis(1);
    assert!(b.reg.handle_timeout(before).is_empty());
    assert_eq!(b.reg.binding("alice", before), Some(&bound));
    // At the instant: gone, and reported once.
    assert_eq!(
        b.reg.handle_timeout(until),
        vec![Reachability {
            agent: "alice".into(),
            binding: None
        }]
    );
    assert!(b.reg.binding("alice", until).is_none());
    assert!(b.reg.bindings("alice").is_empty());
    assert!(b.reg.handle_timeout(until).is_empty(), "reported once");
    // What is left: the answered registration, remembered for ANSWERED_TTL.
    assert_eq!(b.reg.poll_timeout(), Some(b.now + ANSWERED_TTL));
}

#[test]
fn a_lapsed_binding_is_not_used_before_handle_timeout_runs() {
    let mut b = Bench::new(registrar());
    assert_eq!(b.login("alice", "wonderland", Algorithm::Sha256).0, 200);
    let later = b.now + Duration::from_secs(600);
    assert!(b.reg.binding("alice", later).is_none());
    assert_eq!(b.reg.bindings("alice").len(), 1, "still in the table");
}

#[test]
fn failure_windows_show_in_poll_timeout_and_end() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge_for("alice", 600, Algorithm::Sha256);
    let (resp, _) = b.answer(&ch, "alice", "wrong", 1, 600, 2);
    assert_eq!(resp.status_code.code(), 403);
    // The failed answer forgot the challenge; the failure count remains.
    assert_eq!(b.reg.poll_timeout(), Some(b.now + FAILURE_WINDOW));
    b.reg.handle_timeout(b.now + FAILURE_WINDOW);
    assert!(b.reg.failures.is_empty());
    assert_eq!(b.reg.poll_timeout(), None);
}

#[test]
fn expiry_is_taken_from_the_contact_then_the_header_and_capped() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge_for("alice", 600, Algorithm::Sha256);
    let req = Reg::new("alice")
        .cseq(2)
        .contacts(&[
            "<sip:alice@10.0.0.1:5060>;expires=120",
            "<sip:alice@10.0.0.2:5060>",
            "<sip:alice@10.0.0.3:5060>;expires=99999",
        ])
        .expires(Some(300))
        .authz(authz(&ch, "alice", "wonderland", 1));
    let (ok, change) = b.send(&req.build());
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(
        contacts(&ok),
        vec![
            "<sip:alice@10.0.0.1:5060>;expires=120",
            "<sip:alice@10.0.0.2:5060>;expires=300",
            "<sip:alice@10.0.0.3:5060>;expires=3600",
        ]
    );
    // The freshest binding is the one the agent is rung at.
    assert_eq!(
        change.and_then(|c| c.binding).map(|b| b.contact),
        Some("sip:alice@10.0.0.3:5060".to_string())
    );
    // Without any expiry the longest is granted.
    let req = Reg::new("alice")
        .cseq(3)
        .contacts(&["<sip:alice@10.0.0.4:5060>"])
        .expires(None)
        .authz(authz(&ch, "alice", "wonderland", 2));
    let (ok, _) = b.send(&req.build());
    assert_eq!(ok.status_code.code(), 200);
    assert!(contacts(&ok).contains(&"<sip:alice@10.0.0.4:5060>;expires=3600".to_string()));
}

#[test]
fn interval_too_brief_names_min_expires_and_changes_nothing() {
    let mut b = Bench::new(registrar());
    assert_eq!(b.login("alice", "wonderland", Algorithm::Sha256).0, 200);
    let before = b.reg.bindings("alice").to_vec();
    let ch = b.challenge(&register("alice", None, 600, 3));
    let req = Reg::new("alice")
        .cseq(4)
        .contacts(&[
            "<sip:alice@10.0.0.9:5060>;expires=600",
            "<sip:alice@10.0.0.8:5060>;expires=59",
        ])
        .authz(authz(&ch, "alice", "wonderland", 1));
    let d = b.decide(&req.build());
    assert_eq!(d.response.status_code.code(), 423);
    assert_eq!(d.outcome, Outcome::IntervalTooBrief);
    assert_eq!(
        header_value(&d.response, "Min-Expires").as_deref(),
        Some("60")
    );
    assert_eq!(b.reg.bindings("alice"), before.as_slice());
    assert!(d.change.is_none());
}

// --- refresh --------------------------------------------------------------------------------

#[test]
fn a_refresh_moves_the_expiry_of_the_same_binding() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge_for("alice", 600, Algorithm::Sha256);
    let (ok, _) = b.answer(&ch, "alice", "wonderland", 1, 600, 2);
    assert_eq!(ok.status_code.code(), 200);
    // Halfway, the phone refreshes with the nonce it has (next nonce-count). Nonces live
    // NONCE_LIFETIME (300 s): it is stale, and the phone is asked again in its algorithm.
    b.advance(301);
    let (stale, _) = b.answer(&ch, "alice", "wonderland", 2, 600, 3);
    let ch = only_challenge(&stale);
    assert!(ch.stale);
    assert_eq!(ch.algorithm, Algorithm::Sha256);
    let (ok, change) = b.answer(&ch, "alice", "wonderland", 1, 600, 4);
    assert_eq!(ok.status_code.code(), 200);
    // Still one binding, now 600 s from the refresh.
    assert_eq!(contacts(&ok), vec![format!("<sip:alice@{ME}>;expires=600")]);
    assert_eq!(b.reg.bindings("alice").len(), 1);
    let until = b.now + Duration::from_secs(600);
    assert_eq!(
        change.and_then(|c| c.binding).map(|b| b.expires_at),
        Some(until),
        "the fresher binding is reported"
    );
    // It outlives the first expiry.
    b.advance(300);
    assert!(b.reg.handle_timeout(b.now).is_empty());
    assert!(b.reg.binding("alice", b.now).is_some());
    assert_eq!(b.reg.poll_timeout(), Some(until));
}

#[test]
fn a_query_lists_the_bindings_and_changes_nothing() {
    let mut b = Bench::new(registrar());
    assert_eq!(b.login("alice", "wonderland", Algorithm::Sha256).0, 200);
    b.advance(100);
    let ch = b.challenge(&register("alice", None, 600, 3));
    let req = Reg::new("alice")
        .cseq(4)
        .contacts(&[])
        .expires(None)
        .authz(authz(&ch, "alice", "wonderland", 1));
    let d = b.decide(&req.build());
    assert_eq!(d.response.status_code.code(), 200);
    assert_eq!(
        d.outcome,
        Outcome::Registered {
            agent: "alice".into()
        }
    );
    assert_eq!(
        contacts(&d.response),
        vec![format!("<sip:alice@{ME}>;expires=500")]
    );
    assert!(d.change.is_none());
}

// --- unregister -----------------------------------------------------------------------------

#[test]
fn expires_zero_on_one_contact_keeps_the_others() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge_for("alice", 600, Algorithm::Sha256);
    let two = Reg::new("alice")
        .cseq(2)
        .contacts(&["<sip:alice@10.0.0.1:5060>, <sip:alice@10.0.0.2:5060>;expires=900"])
        .authz(authz(&ch, "alice", "wonderland", 1));
    let (ok, change) = b.send(&two.build());
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(b.reg.bindings("alice").len(), 2);
    assert_eq!(
        change.and_then(|c| c.binding).map(|b| b.contact).as_deref(),
        Some("sip:alice@10.0.0.2:5060")
    );
    // Removing the freshest moves the agent to the other one.
    let one = Reg::new("alice")
        .cseq(3)
        .contacts(&["<sip:alice@10.0.0.2:5060>;expires=0"])
        .authz(authz(&ch, "alice", "wonderland", 2));
    let (ok, change) = b.send(&one.build());
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(contacts(&ok), vec!["<sip:alice@10.0.0.1:5060>;expires=600"]);
    assert_eq!(
        change.and_then(|c| c.binding).map(|b| b.contact).as_deref(),
        Some("sip:alice@10.0.0.1:5060")
    );
    // Removing one the agent does not have changes nothing.
    let none = Reg::new("alice")
        .cseq(4)
        .contacts(&["<sip:alice@10.9.9.9:5060>"])
        .expires(Some(0))
        .authz(authz(&ch, "alice", "wonderland", 3));
    let (ok, change) = b.send(&none.build());
    assert_eq!(ok.status_code.code(), 200);
    assert!(change.is_none());
    assert_eq!(b.reg.bindings("alice").len(), 1);
}

#[test]
fn wildcard_with_expires_zero_removes_every_binding() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge_for("alice", 600, Algorithm::Sha256);
    let two = Reg::new("alice")
        .cseq(2)
        .contacts(&["<sip:alice@10.0.0.1:5060>", "<sip:alice@10.0.0.2:5060>"])
        .authz(authz(&ch, "alice", "wonderland", 1));
    assert_eq!(b.send(&two.build()).0.status_code.code(), 200);
    assert_eq!(b.reg.bindings("alice").len(), 2);
    let all = Reg::new("alice")
        .cseq(3)
        .contacts(&["*"])
        .expires(Some(0))
        .authz(authz(&ch, "alice", "wonderland", 2));
    let (ok, change) = b.send(&all.build());
    assert_eq!(ok.status_code.code(), 200);
    assert!(contacts(&ok).is_empty(), "no binding left to list");
    assert_eq!(
        change,
        Some(Reachability {
            agent: "alice".into(),
            binding: None
        })
    );
    assert!(b.reg.bindings("alice").is_empty());
    assert!(b.reg.handle_timeout(b.now).is_empty(), "not reported again");
}

#[test]
fn wildcard_misuse_is_refused_and_changes_nothing() {
    let mut b = Bench::new(registrar());
    assert_eq!(b.login("alice", "wonderland", Algorithm::Sha256).0, 200);
    let before = b.reg.bindings("alice").to_vec();
    let ch = b.challenge(&register("alice", None, 600, 3));
    let mut nc = 0;
    let mut attempt = |contacts: &[&str], expires: Option<u32>| {
        nc += 1;
        let req = Reg::new("alice")
            .cseq(3 + nc)
            .contacts(contacts)
            .expires(expires)
            .authz(authz(&ch, "alice", "wonderland", nc));
        b.decide(&req.build())
    };
    for d in [
        attempt(&["*"], Some(600)),
        attempt(&["*"], None),
        attempt(&["*", "<sip:alice@10.0.0.1:5060>"], Some(0)),
        attempt(&["<sip:alice@10.0.0.1:5060>, *"], Some(0)),
        attempt(&["not a contact <"], Some(600)),
    ] {
        assert_eq!(d.response.status_code.code(), 400);
        assert_eq!(d.outcome, Outcome::BadContact);
        assert!(d.change.is_none());
    }
    assert_eq!(b.reg.bindings("alice"), before.as_slice());
}

// --- wrong password, foreign address, malformed credentials --------------------------------

#[test]
fn wrong_password_is_refused_counted_and_forgets_the_offer() {
    let mut b = Bench::new(registrar()); // ["SHA-256", "MD5"]
    let ch = b.challenge(&register("alice", None, 600, 1));
    assert_eq!(ch.algorithm, Algorithm::Sha256);
    let d = b.decide(&register(
        "alice",
        Some(&authz(&ch, "alice", "wonderland?", 1)),
        600,
        2,
    ));
    assert_eq!(d.response.status_code.code(), 403);
    assert_eq!(
        d.outcome,
        Outcome::AuthFailed {
            user: "alice".into()
        }
    );
    assert!(header_values(&d.response, "WWW-Authenticate").is_empty());
    assert_eq!(b.reg.failures.values().map(|f| f.0).sum::<u32>(), 1);
    // The phone can do SHA-256 (it answered wrongly): its next try starts at SHA-256 again
    // instead of moving on to MD5.
    let ch = b.challenge(&register("alice", None, 600, 3));
    assert_eq!(ch.algorithm, Algorithm::Sha256);
    assert!(b.reg.binding("alice", b.now).is_none());
}

#[test]
fn a_wrong_password_on_an_old_nonce_is_refused_not_stale() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge_for("alice", 600, Algorithm::Md5);
    b.unix += NONCE_LIFETIME.as_secs() + 1;
    let (resp, _) = b.answer(&ch, "alice", "nope", 1, 600, 2);
    assert_eq!(resp.status_code.code(), 403);
}

#[test]
fn credentials_for_another_address_of_record_are_refused() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge(&register("alice", None, 600, 1));
    // Alice's own credentials, registering Carol's address.
    let req = Reg::new("alice")
        .to("carol")
        .cseq(2)
        .authz(authz(&ch, "alice", "wonderland", 1));
    let d = b.decide(&req.build());
    assert_eq!(d.response.status_code.code(), 403);
    assert_eq!(
        d.outcome,
        Outcome::ForeignAddress {
            user: "alice".into()
        }
    );
    assert!(b.reg.bindings("carol").is_empty());
    assert!(b.reg.bindings("alice").is_empty());
    assert!(b.reg.failures.is_empty(), "not a failed authentication");
}

#[test]
fn an_unparsable_authorization_is_a_400_and_a_failure() {
    let mut b = Bench::new(registrar());
    let req = Reg::new("alice").authz("Digest".into());
    let d = b.decide(&req.build());
    assert_eq!(d.response.status_code.code(), 400);
    assert_eq!(d.outcome, Outcome::MalformedAuthorization);
    assert_eq!(b.reg.failures.values().map(|f| f.0).sum::<u32>(), 1);
}

// --- stale nonce ----------------------------------------------------------------------------

#[test]
fn a_stale_nonce_is_challenged_again_and_the_new_one_works() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge_for("alice", 600, Algorithm::Sha256);
    b.unix += NONCE_LIFETIME.as_secs() + 1;
    let d = b.decide(&register(
        "alice",
        Some(&authz(&ch, "alice", "wonderland", 1)),
        600,
        2,
    ));
    assert_eq!(
        d.outcome,
        Outcome::Challenged {
            algorithm: Algorithm::Sha256,
            stale: true
        }
    );
    let fresh = only_challenge(&d.response);
    assert!(fresh.stale);
    assert_ne!(fresh.nonce, ch.nonce);
    assert!(b.reg.failures.is_empty(), "a stale nonce is not a failure");
    let (ok, change) = b.answer(&fresh, "alice", "wonderland", 1, 600, 3);
    assert_eq!(ok.status_code.code(), 200);
    assert!(change.is_some());
}

#[test]
fn a_nonce_is_fresh_for_its_whole_lifetime() {
    let mut b = Bench::new(registrar());
    let ch = b.challenge_for("alice", 600, Algorithm::Md5);
    b.unix += NONCE_LIFETIME.as_secs();
    let (ok, _) = b.answer(&ch, "alice", "wonderland", 1, 600, 2);
    assert_eq!(ok.status_code.code(), 200);
}

#[test]
fn nonces_of_another_key_are_refused() {
    let mut other = Bench::new(Registrar::new(RegistrarConfig {
        nonce_key: [8; 32],
        ..config(vec![Algorithm::Md5])
    }));
    let foreign = other.challenge(&register("alice", None, 600, 1));
    let mut b = Bench::new(Registrar::new(config(vec![Algorithm::Md5])));
    let (resp, _) = b.answer(&foreign, "alice", "wonderland", 1, 600, 2);
    assert_eq!(resp.status_code.code(), 403);
    // The same key (another node sharing it) accepts them.
    let mut twin = Bench::new(Registrar::new(config(vec![Algorithm::Md5])));
    let ch = twin.challenge(&register("alice", None, 600, 1));
    let (ok, _) = b.answer(&ch, "alice", "wonderland", 1, 600, 3);
    assert_eq!(ok.status_code.code(), 200);
}

// --- algorithm choice -----------------------------------------------------------------------

#[test]
fn an_empty_list_means_md5() {
    let mut b = Bench::new(Registrar::new(config(Vec::new())));
    assert_eq!(b.reg.algorithms_for(Some("alice")), vec![Algorithm::Md5]);
    let d = b.decide(&register("alice", None, 600, 1));
    assert_eq!(
        d.outcome,
        Outcome::Challenged {
            algorithm: Algorithm::Md5,
            stale: false
        }
    );
}

#[test]
fn unanswered_challenges_walk_the_list_and_wrap_around() {
    let mut b = Bench::new(registrar()); // ["SHA-256", "MD5"]
    let offered: Vec<Algorithm> = (1..6)
        .map(|cseq| b.challenge(&register("alice", None, 600, cseq)).algorithm)
        .collect();
    use Algorithm::{Md5, Sha256};
    assert_eq!(offered, vec![Sha256, Md5, Sha256, Md5, Sha256]);
    // Each registration (Call-ID) walks on its own.
    let other = b.challenge(&register_as("alice", None, 600, 1, "another-phone"));
    assert_eq!(other.algorithm, Sha256);
    // After UNANSWERED_TTL the walk starts over.
    b.advance(UNANSWERED_TTL.as_secs());
    assert_eq!(
        b.challenge(&register("alice", None, 600, 6)).algorithm,
        Sha256
    );
}

#[test]
fn an_md5_answer_from_a_sha256_only_agent_or_a_sha256_answer_from_an_ha1_agent_is_challenged() {
    let mut b = Bench::new(registrar()); // bob has an MD5 HA1
    let sha = b.challenge(&register("alice", None, 600, 1));
    assert_eq!(sha.algorithm, Algorithm::Sha256);
    // Bob cannot be checked over SHA-256 (only his MD5 HA1 is known): challenged with MD5.
    let d = b.decide(&register(
        "bob",
        Some(&authz(&sha, "bob", "builder", 1)),
        600,
        2,
    ));
    assert_eq!(
        d.outcome,
        Outcome::Challenged {
            algorithm: Algorithm::Md5,
            stale: false
        }
    );
    assert!(b.reg.failures.is_empty());
    assert_eq!(
        b.reg.algorithms_for(Some("bob")),
        vec![Algorithm::Md5],
        "whatever the global list"
    );
}

#[test]
fn set_agent_algorithms_replaces_the_lists_and_ignores_empty_ones() {
    let mut reg = registrar();
    let mut lists = HashMap::new();
    lists.insert("alice".to_string(), vec![Algorithm::Md5]);
    lists.insert("mallory".to_string(), Vec::new());
    reg.set_agent_algorithms(lists);
    assert_eq!(reg.algorithms_for(Some("alice")), vec![Algorithm::Md5]);
    assert_eq!(
        reg.algorithms_for(Some("mallory")),
        vec![Algorithm::Sha256, Algorithm::Md5]
    );
    assert_eq!(
        reg.algorithms_for(None),
        vec![Algorithm::Sha256, Algorithm::Md5]
    );
    reg.set_agent_algorithms(HashMap::new());
    assert_eq!(
        reg.algorithms_for(Some("alice")),
        vec![Algorithm::Sha256, Algorithm::Md5]
    );
}

// --- parse_contacts, to_user ----------------------------------------------------------------

#[test]
fn parse_contacts_validates_in_order() {
    let parse = |contacts: &[&str], expires: Option<u32>| {
        parse_contacts(&Reg::new("a").contacts(contacts).expires(expires).build())
    };
    assert_eq!(parse(&[], Some(600)), Ok(ContactUpdate::default()));
    assert_eq!(
        parse(&["<sip:a@h>;expires=0", "<sip:b@h>"], None),
        Ok(ContactUpdate {
            wildcard: false,
            contacts: vec![("sip:a@h".into(), 0), ("sip:b@h".into(), MAX_EXPIRES)],
        })
    );
    assert_eq!(
        parse(&["<sip:a@h>;expires=7200"], Some(60)),
        Ok(ContactUpdate {
            wildcard: false,
            contacts: vec![("sip:a@h".into(), 7200)],
        }),
        "capped when bound, not here"
    );
    assert_eq!(
        parse(&["*"], Some(0)),
        Ok(ContactUpdate {
            wildcard: true,
            contacts: Vec::new(),
        })
    );
    assert_eq!(parse(&["*"], Some(1)), Err(ContactError::Malformed));
    assert_eq!(
        parse(&["<sip:a@h>"], Some(MIN_EXPIRES as u32 - 1)),
        Err(ContactError::TooBrief)
    );
    assert_eq!(
        parse(&["<sip:a@h>;expires=1", "<<<"], None),
        Err(ContactError::TooBrief),
        "the first refusal wins"
    );
    assert_eq!(
        parse(&["<<<", "<sip:a@h>;expires=1"], None),
        Err(ContactError::Malformed)
    );
}

#[test]
fn to_user_is_the_address_of_record() {
    let req = Reg::new("alice").to("carol").build();
    assert_eq!(to_user(&req).as_deref(), Some("carol"));
}
