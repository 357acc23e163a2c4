// Test code drives the core with the real clock as its base time (issue 12).
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::auth::{Algorithm, AuthResult, Authorization, Credential, DigestServer};
use crate::message::{from_tag, header_values, make_response, parse, request_to_bytes, top_via};
use crate::transaction::TransportKind;

const REALM: &str = "carrier.example";
const UNIX: u64 = 1_700_000_000;

fn uri(s: &str) -> rsip::Uri {
    rsip::Uri::try_from(s).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn config() -> RegistrationConfig {
    RegistrationConfig {
        registrar: uri("sip:carrier.example"),
        aor: uri("sip:trunk1@carrier.example"),
        contact: uri("sip:trunk1@203.0.113.1:5060"),
        via: ViaSpec {
            host: "203.0.113.1".into(),
            port: Some(5060),
            transport: TransportKind::Udp,
        },
        call_id: "reg-abc@203.0.113.1".into(),
        expires: 600,
        credentials: Some(ClientCredentials {
            username: "trunk1".into(),
            auth_username: None,
            password: "s3cret".into(),
            realm: None,
        }),
        user_agent: Some("ringback/test".into()),
        backoff: Backoff {
            jitter: 0.0,
            ..Backoff::default()
        },
        seed: 7,
    }
}

/// A registration under test with its clock.
struct Sim {
    reg: Registration,
    now: Instant,
    sent: Vec<Request>,
    states: Vec<RegistrationState>,
}

impl Sim {
    fn new(cfg: RegistrationConfig) -> Sim {
        Sim {
            reg: Registration::new(cfg),
            now: Instant::now(),
            sent: Vec::new(),
            states: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(o) = self.reg.poll_output() {
            match o {
                Output::Send(r) => {
                    // Every request survives the wire.
                    assert!(parse(&request_to_bytes(&r)).is_ok());
                    self.sent.push(*r)
                }
                Output::State(s) => self.states.push(s),
            }
        }
    }

    fn input(&mut self, i: Input) {
        self.reg.handle(i, self.now);
        self.drain();
    }

    /// Advance to `poll_timeout` (asserting it is `expected` from now) and tick.
    fn tick_after(&mut self, expected: Duration) {
        let at = self.reg.poll_timeout().expect("a timer is armed");
        assert_eq!(at - self.now, expected, "timer");
        self.now = at;
        self.input(Input::Tick);
    }

    fn last(&self) -> &Request {
        self.sent.last().expect("a request was sent")
    }

    fn take_sent(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.sent)
    }

    fn respond(&mut self, code: u16, extra: &[(&str, &str)]) {
        let mut resp = make_response(self.last(), code, Some("regtag"));
        for (n, v) in extra {
            resp.headers.push(make_header(n, v));
        }
        self.input(Input::Response(Box::new(resp)));
    }

    fn ok(&mut self, contact_expires: u32) {
        let c = format!("<sip:trunk1@203.0.113.1:5060>;expires={contact_expires}");
        self.respond(200, &[("Contact", &c)]);
    }
}

fn server() -> DigestServer {
    DigestServer::new(REALM, Algorithm::Md5, b"k", secs(300))
}

fn auth_of(req: &Request) -> Option<Authorization> {
    header_value(req, "Authorization").and_then(|v| Authorization::parse(&v))
}

#[test]
fn first_register_is_complete() {
    let mut sim = Sim::new(config());
    assert_eq!(sim.reg.state(), &RegistrationState::Unregistered);
    assert_eq!(sim.reg.poll_timeout(), None);
    sim.input(Input::Start);
    assert_eq!(sim.states, [RegistrationState::Registering]);
    let r = sim.last().clone();
    let tag = from_tag(&r).unwrap();
    let branch = top_via(&r).unwrap().branch.unwrap();
    assert_eq!(
        String::from_utf8(request_to_bytes(&r)).unwrap(),
        format!(
            "REGISTER sip:carrier.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:trunk1@carrier.example>;tag={tag}\r\n\
To: <sip:trunk1@carrier.example>\r\n\
Call-ID: reg-abc@203.0.113.1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:trunk1@203.0.113.1:5060>\r\n\
Expires: 600\r\n\
User-Agent: ringback/test\r\n\
Content-Length: 0\r\n\r\n"
        )
    );
    // Waiting for the answer: no timer of ours (the transaction has Timer F).
    assert_eq!(sim.reg.poll_timeout(), None);
    // A second Start changes nothing.
    sim.input(Input::Start);
    assert_eq!(sim.sent.len(), 1);
}

#[test]
fn challenge_then_success_then_refresh_with_proactive_credentials() {
    let s = server();
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    let ch = s.challenge(UNIX, false);
    sim.respond(401, &[("WWW-Authenticate", &ch.header_value())]);
    assert_eq!(sim.sent.len(), 2);
    let retry = sim.last().clone();
    assert_eq!(cseq(&retry), Some((2, Method::Register)));
    assert_eq!(from_tag(&retry), from_tag(&sim.sent[0]));
    assert_eq!(call_id(&retry).as_deref(), Some("reg-abc@203.0.113.1"));
    assert_ne!(
        top_via(&retry).unwrap().branch,
        top_via(&sim.sent[0]).unwrap().branch
    );
    let a = header_value(&retry, "Authorization").unwrap();
    assert_eq!(
        s.verify(&a, "REGISTER", Credential::Password("s3cret"), UNIX),
        AuthResult::Ok("trunk1".into())
    );
    assert_eq!(sim.reg.state(), &RegistrationState::Registering);
    // The registrar grants 600 s.
    let t0 = sim.now;
    sim.ok(600);
    assert_eq!(
        sim.reg.state(),
        &RegistrationState::Registered {
            until: t0 + secs(600)
        }
    );
    assert_eq!(sim.reg.registered_until(), Some(t0 + secs(600)));
    assert!(sim.reg.state().is_up());
    assert_eq!(sim.reg.last_error(), None);
    // Nothing before the refresh time.
    sim.now += secs(299);
    sim.input(Input::Tick);
    assert_eq!(sim.sent.len(), 2);
    sim.now = t0;
    sim.tick_after(secs(300));
    let refresh = sim.last().clone();
    assert_eq!(sim.sent.len(), 3);
    assert_eq!(cseq(&refresh), Some((3, Method::Register)));
    assert_eq!(from_tag(&refresh), from_tag(&sim.sent[0]));
    assert_eq!(call_id(&refresh), call_id(&sim.sent[0]));
    let auth = auth_of(&refresh).expect("proactive credentials");
    assert_eq!(auth.nonce, ch.nonce);
    assert_eq!(auth.nc_value(), Some(2));
    assert_eq!(
        s.verify(
            &header_value(&refresh, "Authorization").unwrap(),
            "REGISTER",
            Credential::Password("s3cret"),
            UNIX + 300
        ),
        AuthResult::Ok("trunk1".into())
    );
    // Still registered while the refresh is under way; the next binding counts from its 200.
    assert!(sim.reg.state().is_up());
    let t1 = sim.now;
    sim.ok(600);
    assert_eq!(
        sim.reg.state(),
        &RegistrationState::Registered {
            until: t1 + secs(600)
        }
    );
    assert_eq!(sim.reg.poll_timeout(), Some(t1 + secs(300)));
}

#[test]
fn refresh_timing() {
    for (granted, refresh) in [
        (3600, 1800),
        (600, 300),
        (60, 30),
        (40, 10),
        (36, 6),
        (20, 5),
        (10, 5),
        (4, 2),
    ] {
        assert_eq!(
            refresh_after(secs(granted)),
            secs(refresh),
            "granted {granted}"
        );
    }
    assert_eq!(refresh_after(secs(1)), Duration::from_millis(500));
    // In the machine: a 10 s grant (as the interop test's registrar gives) refreshes at 5 s.
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.ok(10);
    sim.tick_after(secs(5));
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(header_value(sim.last(), "Expires").as_deref(), Some("600"));
}

#[test]
fn granted_expiry_sources() {
    let cases: [(&[(&str, &str)], u64); 6] = [
        // Our Contact among other bindings of the AOR.
        (
            &[
                ("Contact", "<sip:trunk1@198.51.100.9:5060>;expires=3000"),
                (
                    "Contact",
                    "<sip:trunk1@203.0.113.1>;expires=120, <sip:x@y>;expires=9",
                ),
            ],
            120,
        ),
        // Only one Contact, rewritten by a NATing registrar: its expiry.
        (
            &[("Contact", "<sip:trunk1@192.0.2.77:40000>;expires=90")],
            90,
        ),
        // Several, none ours: the Expires header.
        (
            &[
                ("Contact", "<sip:a@192.0.2.1>;expires=1"),
                ("Contact", "<sip:b@192.0.2.2>;expires=2"),
                ("Expires", "240"),
            ],
            240,
        ),
        // No Contact: the Expires header.
        (&[("Expires", "180")], 180),
        // Nothing: what we asked.
        (&[], 600),
        // Contact without expires parameter: the Expires header.
        (
            &[
                ("Contact", "<sip:trunk1@203.0.113.1:5060>"),
                ("Expires", "300"),
            ],
            300,
        ),
    ];
    for (headers, want) in cases {
        let mut sim = Sim::new(config());
        sim.input(Input::Start);
        let t0 = sim.now;
        sim.respond(200, headers);
        assert_eq!(
            sim.reg.state(),
            &RegistrationState::Registered {
                until: t0 + secs(want)
            },
            "{headers:?}"
        );
    }
    // A 200 keeping no binding is a failure.
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.respond(200, &[("Expires", "0")]);
    assert!(matches!(
        sim.reg.state(),
        RegistrationState::Failed { code: 200, .. }
    ));
}

#[test]
fn interval_too_brief_uses_min_expires() {
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.respond(423, &[("Min-Expires", "1800")]);
    assert_eq!(sim.sent.len(), 2, "sent again at once");
    assert_eq!(header_value(sim.last(), "Expires").as_deref(), Some("1800"));
    assert_eq!(cseq(sim.last()), Some((2, Method::Register)));
    assert_eq!(sim.reg.expires(), 1800);
    let t0 = sim.now;
    sim.ok(1800);
    assert_eq!(
        sim.reg.state(),
        &RegistrationState::Registered {
            until: t0 + secs(1800)
        }
    );
    // Refreshes keep asking for the larger value.
    sim.tick_after(secs(900));
    assert_eq!(header_value(sim.last(), "Expires").as_deref(), Some("1800"));
    // 423 without (or with a useless) Min-Expires: a failure.
    for extra in [
        &[][..],
        &[("Min-Expires", "60")][..],
        &[("Min-Expires", "999999")][..],
    ] {
        let mut sim = Sim::new(config());
        sim.input(Input::Start);
        sim.respond(423, extra);
        assert_eq!(sim.sent.len(), 1, "{extra:?}");
        assert!(
            matches!(sim.reg.state(), RegistrationState::Failed { code: 423, .. }),
            "{extra:?}"
        );
    }
}

#[test]
fn failures_back_off_doubling_to_five_minutes() {
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    let expected = [5, 10, 20, 40, 80, 160, 300, 300, 300];
    for (i, delay) in expected.into_iter().enumerate() {
        sim.respond(403, &[]);
        let retry_at = sim.now + secs(delay);
        assert_eq!(
            sim.reg.state(),
            &RegistrationState::Failed {
                code: 403,
                reason: "Forbidden".into(),
                retry_at
            },
            "failure {}",
            i + 1
        );
        assert_eq!(sim.reg.failures(), i as u32 + 1);
        let before = sim.sent.len();
        sim.tick_after(secs(delay));
        assert_eq!(sim.sent.len(), before + 1, "retried");
        // Still Failed while the retry is under way.
        assert!(matches!(sim.reg.state(), RegistrationState::Failed { .. }));
    }
    assert!(!sim.reg.state().is_up());
    // CSeq keeps counting within the one Call-ID.
    let seqs: Vec<u32> = sim.sent.iter().map(|r| cseq(r).unwrap().0).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    // Success resets the backoff.
    sim.ok(600);
    assert_eq!(sim.reg.failures(), 0);
    assert_eq!(sim.reg.last_error(), None);
    sim.tick_after(secs(300));
    sim.respond(500, &[]);
    assert_eq!(sim.reg.poll_timeout(), Some(sim.now + secs(5)));
}

#[test]
fn jitter_shortens_delays_within_bounds_and_is_seeded() {
    let run = |seed: u64| {
        let mut cfg = config();
        cfg.backoff.jitter = 0.2;
        cfg.seed = seed;
        let mut sim = Sim::new(cfg);
        sim.input(Input::Start);
        let mut delays = Vec::new();
        for _ in 0..12 {
            sim.input(Input::Timeout);
            let at = sim.reg.poll_timeout().unwrap();
            delays.push(at - sim.now);
            sim.now = at;
            sim.input(Input::Tick);
        }
        delays
    };
    let a = run(1);
    assert_eq!(a, run(1), "deterministic for a seed");
    assert_ne!(a, run(2), "different seeds differ");
    let backoff = Backoff::default();
    for (i, d) in a.iter().enumerate() {
        let base = backoff.delay(i as u32 + 1);
        assert!(
            *d <= base && *d >= base.mul_f64(0.8),
            "{i}: {d:?} vs {base:?}"
        );
    }
    assert_eq!(backoff.delay(1), secs(5));
    assert_eq!(backoff.delay(u32::MAX), secs(300));
}

#[test]
fn timeout_is_a_408_failure() {
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.input(Input::Timeout);
    match sim.reg.state() {
        RegistrationState::Failed {
            code,
            reason,
            retry_at,
        } => {
            assert_eq!(*code, 408);
            assert!(reason.contains("no response"), "{reason}");
            assert_eq!(*retry_at, sim.now + secs(5));
        }
        other => panic!("{other:?}"),
    }
    // A late response to the timed-out REGISTER is ignored.
    sim.respond(200, &[]);
    assert!(matches!(sim.reg.state(), RegistrationState::Failed { .. }));
    // A second Timeout with nothing in flight is ignored.
    sim.input(Input::Timeout);
    assert_eq!(sim.reg.failures(), 1);
}

#[test]
fn retry_after_is_honoured() {
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.respond(503, &[("Retry-After", "120 (maintenance);duration=60")]);
    assert_eq!(sim.reg.poll_timeout(), Some(sim.now + secs(120)));
    assert!(matches!(
        sim.reg.state(),
        RegistrationState::Failed { code: 503, .. }
    ));
    // Absurd values are capped at an hour.
    sim.tick_after(secs(120));
    sim.respond(503, &[("Retry-After", "999999")]);
    assert_eq!(sim.reg.poll_timeout(), Some(sim.now + secs(3600)));
    // Shorter than the backoff: the backoff wins.
    sim.tick_after(secs(3600));
    sim.respond(480, &[("Retry-After", "1")]);
    assert_eq!(sim.reg.poll_timeout(), Some(sim.now + secs(20)));
}

#[test]
fn failed_refresh_keeps_the_binding_until_it_lapses() {
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    let t0 = sim.now;
    sim.ok(60);
    sim.tick_after(secs(30)); // refresh
    sim.respond(500, &[]);
    // The carrier still holds the binding: registered, with the error noted.
    assert_eq!(
        sim.reg.state(),
        &RegistrationState::Registered {
            until: t0 + secs(60)
        }
    );
    assert_eq!(sim.reg.last_error(), Some((500, "Server Internal Error")));
    sim.tick_after(secs(5));
    sim.input(Input::Timeout);
    sim.tick_after(secs(10));
    sim.input(Input::Timeout); // t0 + 45, next retry at +20 = t0 + 65
    assert!(sim.reg.state().is_up());
    // The binding lapses at t0 + 60 first.
    sim.tick_after(secs(15));
    assert_eq!(
        sim.reg.state(),
        &RegistrationState::Failed {
            code: 408,
            reason: "no response from the registrar".into(),
            retry_at: t0 + secs(65)
        }
    );
    assert_eq!(sim.reg.registered_until(), None);
    sim.tick_after(secs(5));
    sim.ok(60);
    assert!(sim.reg.state().is_up());
}

#[test]
fn binding_lapsing_while_the_refresh_is_unanswered_is_registering() {
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.ok(10);
    sim.tick_after(secs(5)); // refresh sent, no answer yet
    sim.tick_after(secs(5)); // binding lapses
    assert_eq!(sim.reg.state(), &RegistrationState::Registering);
    assert_eq!(sim.reg.poll_timeout(), None);
    sim.input(Input::Timeout);
    assert!(matches!(
        sim.reg.state(),
        RegistrationState::Failed { code: 408, .. }
    ));
}

#[test]
fn wrong_password_or_no_credentials_fail() {
    let s = server();
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    let ch = s.challenge(UNIX, false).header_value();
    sim.respond(401, &[("WWW-Authenticate", &ch)]);
    assert_eq!(sim.sent.len(), 2);
    sim.respond(401, &[("WWW-Authenticate", &ch)]);
    assert_eq!(sim.sent.len(), 2, "not sent a third time");
    match sim.reg.state() {
        RegistrationState::Failed { code, reason, .. } => {
            assert_eq!(*code, 401);
            assert!(reason.contains("rejected"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The retry after the backoff starts over with proactive credentials, and a fresh
    // challenge (new nonce, the old one forgotten) is answered once more.
    sim.tick_after(secs(5));
    assert!(auth_of(sim.last()).is_some());
    let ch2 = s.challenge(UNIX + 5, false).header_value();
    sim.respond(401, &[("WWW-Authenticate", &ch2)]);
    assert_eq!(sim.sent.len(), 4);

    let mut cfg = config();
    cfg.credentials = None;
    let mut sim = Sim::new(cfg);
    sim.input(Input::Start);
    sim.respond(407, &[("Proxy-Authenticate", &ch)]);
    match sim.reg.state() {
        RegistrationState::Failed { code, reason, .. } => {
            assert_eq!(*code, 407);
            assert!(reason.contains("none are configured"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn proxy_challenge_and_stale_nonce_on_refresh() {
    let s = server();
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.respond(
        407,
        &[(
            "Proxy-Authenticate",
            &s.challenge(UNIX, false).header_value(),
        )],
    );
    assert_eq!(header_values(sim.last(), "Proxy-Authorization").len(), 1);
    sim.ok(600);
    sim.tick_after(secs(300));
    assert_eq!(header_values(sim.last(), "Proxy-Authorization").len(), 1);
    // The nonce expired meanwhile: stale → answered with the new nonce.
    let stale = s.challenge(UNIX + 300, true);
    sim.respond(407, &[("Proxy-Authenticate", &stale.header_value())]);
    let v = header_values(sim.last(), "Proxy-Authorization");
    assert_eq!(Authorization::parse(&v[0]).unwrap().nonce, stale.nonce);
    sim.ok(600);
    assert!(sim.reg.state().is_up());
}

#[test]
fn shutdown_unregisters_a_binding() {
    let s = server();
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.respond(
        401,
        &[("WWW-Authenticate", &s.challenge(UNIX, false).header_value())],
    );
    sim.ok(600);
    sim.take_sent();
    sim.input(Input::Shutdown);
    assert_eq!(sim.reg.state(), &RegistrationState::Unregistered);
    assert_eq!(sim.states.last(), Some(&RegistrationState::Unregistered));
    assert!(!sim.reg.is_done());
    assert_eq!(sim.reg.poll_timeout(), None);
    let unreg = sim.last().clone();
    assert_eq!(header_value(&unreg, "Expires").as_deref(), Some("0"));
    assert_eq!(
        header_value(&unreg, "Contact").as_deref(),
        Some("<sip:trunk1@203.0.113.1:5060>")
    );
    assert_eq!(cseq(&unreg), Some((3, Method::Register)));
    assert!(auth_of(&unreg).is_some(), "credentials sent proactively");
    // Challenged anyway (new nonce): answered, then done on the 200.
    sim.respond(
        401,
        &[(
            "WWW-Authenticate",
            &s.challenge(UNIX + 9, false).header_value(),
        )],
    );
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(header_value(sim.last(), "Expires").as_deref(), Some("0"));
    assert!(!sim.reg.is_done());
    sim.respond(200, &[]);
    assert!(sim.reg.is_done());
    assert_eq!(sim.reg.state(), &RegistrationState::Unregistered);
    // Nothing more happens.
    sim.input(Input::Start);
    sim.input(Input::Tick);
    assert_eq!(sim.sent.len(), 2);
    // A failing unregister also ends it.
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.ok(600);
    sim.input(Input::Shutdown);
    sim.input(Input::Timeout);
    assert!(sim.reg.is_done());
}

#[test]
fn shutdown_without_a_binding_sends_nothing() {
    let mut sim = Sim::new(config());
    sim.input(Input::Shutdown);
    assert!(sim.reg.is_done());
    assert!(sim.sent.is_empty());
    // Failed and lapsed: nothing to remove either.
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.respond(403, &[]);
    sim.take_sent();
    sim.input(Input::Shutdown);
    assert!(sim.reg.is_done());
    assert!(sim.sent.is_empty());
    // A REGISTER under way may have created one: unregister.
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.input(Input::Shutdown);
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(header_value(sim.last(), "Expires").as_deref(), Some("0"));
    sim.respond(200, &[]);
    assert!(sim.reg.is_done());
}

#[test]
fn provisional_and_foreign_responses_are_ignored() {
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    sim.respond(100, &[]);
    assert_eq!(sim.reg.state(), &RegistrationState::Registering);
    // Another Call-ID.
    let mut resp = make_response(sim.last(), 200, Some("t"));
    let mut headers: Vec<Header> = std::mem::take(&mut resp.headers).into();
    for h in headers.iter_mut() {
        if matches!(h, Header::CallId(_)) {
            *h = make_header("Call-ID", "other@x");
        }
    }
    resp.headers = headers.into();
    sim.input(Input::Response(Box::new(resp)));
    assert_eq!(sim.reg.state(), &RegistrationState::Registering);
    // A response to an earlier CSeq (after a 423 resend).
    let first = sim.last().clone();
    sim.respond(423, &[("Min-Expires", "900")]);
    let late = make_response(&first, 200, Some("t"));
    sim.input(Input::Response(Box::new(late)));
    assert_eq!(sim.reg.state(), &RegistrationState::Registering);
    sim.ok(900);
    assert!(sim.reg.state().is_up());
}

#[test]
fn state_changes_are_reported_once_each() {
    let mut sim = Sim::new(config());
    sim.input(Input::Start);
    let t0 = sim.now;
    sim.ok(60);
    sim.tick_after(secs(30));
    let t1 = sim.now;
    sim.ok(60);
    sim.input(Input::Shutdown);
    sim.respond(200, &[]);
    assert_eq!(
        sim.states,
        [
            RegistrationState::Registering,
            RegistrationState::Registered {
                until: t0 + secs(60)
            },
            RegistrationState::Registered {
                until: t1 + secs(60)
            },
            RegistrationState::Unregistered,
        ]
    );
    assert_eq!(RegistrationState::Registering.name(), "registering");
    assert_eq!(sim.reg.call_id(), "reg-abc@203.0.113.1");
}
