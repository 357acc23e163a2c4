use std::time::Duration;

use rsip::Method;

use super::*;
use crate::auth::{check_response, AuthResult, Credential, DigestServer, MemoryNonceCounter};
use crate::message::{
    call_id, cseq, from_tag, header_value, header_values, make_response, parse, request_to_bytes,
    top_via, ViaSpec,
};
use crate::transaction::TransportKind;
use crate::uac::{make_initial_request, InviteSpec};

const T: u64 = 1_700_000_000;
const REALM: &str = "carrier.example";

fn uri(s: &str) -> rsip::Uri {
    rsip::Uri::try_from(s).unwrap()
}

fn request(method: Method) -> Request {
    make_initial_request(
        method,
        InviteSpec {
            from_uri: uri("sip:trunk1@carrier.example"),
            from_display: None,
            to_uri: uri("sip:trunk1@carrier.example"),
            request_uri: uri("sip:carrier.example"),
            contact: uri("sip:trunk1@203.0.113.1:5060"),
            via: ViaSpec {
                host: "203.0.113.1".into(),
                port: Some(5060),
                transport: TransportKind::Udp,
            },
            call_id: "reg-1@203.0.113.1".into(),
            cseq: 1,
            body: None,
            extra_headers: Vec::new(),
        },
    )
}

fn creds() -> ClientCredentials {
    ClientCredentials {
        username: "trunk1".into(),
        auth_username: None,
        password: "s3cret".into(),
        realm: None,
    }
}

fn server(alg: Algorithm) -> DigestServer {
    DigestServer::new(REALM, alg, b"carrier-secret", Duration::from_secs(300))
}

/// A 401 (or 407) answering `req` with these challenge values.
fn challenged(req: &Request, code: u16, challenges: &[String]) -> Response {
    let mut resp = make_response(req, code, Some("srvtag"));
    let name = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    for c in challenges {
        resp.headers.push(make_header(name, c));
    }
    resp
}

fn authz(req: &Request) -> String {
    let v = header_values(req, "Authorization");
    assert_eq!(v.len(), 1, "exactly one Authorization: {v:?}");
    v.into_iter().next().unwrap()
}

#[test]
fn md5_and_sha256_answers_verify_with_our_server() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let s = server(alg);
        let reg = request(Method::Register);
        let resp = challenged(&reg, 401, &[s.challenge(T, false).header_value()]);
        let mut auth = ClientAuth::new(creds());
        let again = auth.retry(&reg, &resp).unwrap();
        let value = authz(&again);
        assert_eq!(
            s.verify(&value, "REGISTER", Credential::Password("s3cret"), T + 1),
            AuthResult::Ok("trunk1".into()),
            "{alg:?}: {value}"
        );
        assert_eq!(
            s.verify(&value, "REGISTER", Credential::Password("other"), T + 1),
            AuthResult::Invalid
        );
        let parsed = Authorization::parse(&value).unwrap();
        assert_eq!(parsed.algorithm, alg);
        assert_eq!(parsed.qop.as_deref(), Some("auth"));
        assert_eq!(parsed.nc.as_deref(), Some("00000001"));
        assert_eq!(parsed.uri, "sip:carrier.example");
        // The retry survives the wire.
        let text = request_to_bytes(&again);
        assert!(parse(&text).is_ok());
    }
}

#[test]
fn retry_is_a_new_transaction_of_the_same_call() {
    let s = server(Algorithm::Md5);
    let reg = request(Method::Register);
    let resp = challenged(&reg, 401, &[s.challenge(T, false).header_value()]);
    let mut auth = ClientAuth::new(creds());
    let again = auth.retry(&reg, &resp).unwrap();
    assert_eq!(cseq(&again), Some((2, Method::Register)));
    assert_eq!(call_id(&again), call_id(&reg));
    assert_eq!(from_tag(&again), from_tag(&reg));
    let (old, new) = (top_via(&reg).unwrap(), top_via(&again).unwrap());
    assert_ne!(old.branch, new.branch);
    assert!(new.branch.as_deref().unwrap().starts_with("z9hG4bK"));
    // The rest of the Via is kept.
    assert_eq!(
        header_value(&again, "Via").unwrap(),
        header_value(&reg, "Via").unwrap().replace(
            old.branch.as_deref().unwrap(),
            new.branch.as_deref().unwrap()
        )
    );
    assert_eq!(again.uri, reg.uri);
    assert_eq!(
        header_value(&again, "Contact"),
        header_value(&reg, "Contact")
    );
    // Authorization sits before Content-Length.
    let names: Vec<&str> = again.headers.iter().map(|h| header_parts(h).0).collect();
    let a = names.iter().position(|n| *n == "Authorization").unwrap();
    let l = names.iter().position(|n| *n == "Content-Length").unwrap();
    assert!(a < l, "{names:?}");
}

#[test]
fn qop_less_challenge_gets_an_rfc2069_answer() {
    let s = server(Algorithm::Md5);
    let mut ch = s.challenge(T, false);
    ch.qop_auth = false;
    let value = ch.header_value();
    assert!(!value.contains("qop"));
    let inv = request(Method::Invite);
    let mut auth = ClientAuth::new(creds());
    let again = auth.retry(&inv, &challenged(&inv, 401, &[value])).unwrap();
    let a = authz(&again);
    let parsed = Authorization::parse(&a).unwrap();
    assert_eq!(parsed.qop, None);
    assert_eq!(parsed.nc, None);
    assert_eq!(parsed.cnonce, None);
    assert!(check_response(
        &parsed,
        "INVITE",
        Credential::Password("s3cret")
    ));
    assert_eq!(
        s.verify(&a, "INVITE", Credential::Password("s3cret"), T),
        AuthResult::Ok("trunk1".into())
    );
}

#[test]
fn nonce_count_increments_with_authorize_again() {
    let s = server(Algorithm::Sha256);
    let mut counter = MemoryNonceCounter::new(10);
    let reg = request(Method::Register);
    let mut auth = ClientAuth::new(creds());
    let mut plain = request(Method::Register);
    assert!(!auth.authorize_again(&mut plain), "nothing answered yet");
    assert!(header_value(&plain, "Authorization").is_none());
    let resp = challenged(&reg, 401, &[s.challenge(T, false).header_value()]);
    let first = auth.retry(&reg, &resp).unwrap();
    let mut cnonces = Vec::new();
    for (i, req) in std::iter::once(first)
        .chain((0..3).map(|_| {
            let mut r = request(Method::Register);
            assert!(auth.authorize_again(&mut r));
            r
        }))
        .enumerate()
    {
        let a = authz(&req);
        let parsed = Authorization::parse(&a).unwrap();
        assert_eq!(parsed.nc_value(), Some(i as u32 + 1));
        cnonces.push(parsed.cnonce.clone().unwrap());
        assert_eq!(
            s.verify_with(
                &a,
                "REGISTER",
                Credential::Password("s3cret"),
                T,
                Some(&mut counter)
            ),
            AuthResult::Ok("trunk1".into())
        );
    }
    cnonces.dedup();
    assert_eq!(cnonces.len(), 4, "a fresh cnonce per request");
    // authorize_again on a request that already carries credentials replaces them.
    let mut r = request(Method::Register);
    assert!(auth.authorize_again(&mut r));
    assert!(auth.authorize_again(&mut r));
    assert_eq!(
        Authorization::parse(&authz(&r)).unwrap().nc_value(),
        Some(6)
    );
}

#[test]
fn stale_is_retried_once_per_exchange() {
    let s = server(Algorithm::Md5);
    let mut auth = ClientAuth::new(creds());
    let reg = request(Method::Register);
    let n1 = s.challenge(T, false);
    let r1 = auth
        .retry(&reg, &challenged(&reg, 401, &[n1.header_value()]))
        .unwrap();
    // The carrier found the nonce expired: stale=true with a new nonce → retried.
    let n2 = s.challenge(T + 400, true);
    let r2 = auth
        .retry(&r1, &challenged(&r1, 401, &[n2.header_value()]))
        .unwrap();
    let a2 = Authorization::parse(&authz(&r2)).unwrap();
    assert_eq!(a2.nonce, n2.nonce);
    assert_eq!(a2.nc_value(), Some(1), "a new nonce starts at nc=1");
    assert_eq!(cseq(&r2), Some((3, Method::Register)));
    assert_eq!(
        s.verify(
            &authz(&r2),
            "REGISTER",
            Credential::Password("s3cret"),
            T + 401
        ),
        AuthResult::Ok("trunk1".into())
    );
    // Stale again for the stale retry itself: the server loops; give up.
    let n3 = s.challenge(T + 401, true);
    assert_eq!(
        auth.retry(&r2, &challenged(&r2, 401, &[n3.header_value()])),
        Err(ClientAuthError::Rejected)
    );
    // A later request of the registration (refresh) reuses n2; when that expires, the stale
    // challenge works once more with its new nonce.
    let mut refresh = request(Method::Register);
    assert!(auth.authorize_again(&mut refresh));
    assert_eq!(
        Authorization::parse(&authz(&refresh)).unwrap().nonce,
        n2.nonce
    );
    let n4 = s.challenge(T + 800, true);
    let r4 = auth
        .retry(&refresh, &challenged(&refresh, 401, &[n4.header_value()]))
        .unwrap();
    assert_eq!(Authorization::parse(&authz(&r4)).unwrap().nonce, n4.nonce);
    assert_eq!(
        s.verify(
            &authz(&r4),
            "REGISTER",
            Credential::Password("s3cret"),
            T + 801
        ),
        AuthResult::Ok("trunk1".into())
    );
    // But not twice.
    let n5 = s.challenge(T + 801, true);
    assert_eq!(
        auth.retry(&r4, &challenged(&r4, 401, &[n5.header_value()])),
        Err(ClientAuthError::Rejected)
    );
}

#[test]
fn a_non_stale_rechallenge_of_our_answer_is_rejected() {
    let s = server(Algorithm::Md5);
    let reg = request(Method::Register);
    let n1 = s.challenge(T, false);
    // Same nonce challenged again: wrong password.
    let mut auth = ClientAuth::new(ClientCredentials {
        password: "wrong".into(),
        ..creds()
    });
    let r1 = auth
        .retry(&reg, &challenged(&reg, 401, &[n1.header_value()]))
        .unwrap();
    assert_eq!(
        auth.retry(&r1, &challenged(&r1, 401, &[n1.header_value()])),
        Err(ClientAuthError::Rejected)
    );
    // A new nonce without stale for the credentials we just computed: wrong password too.
    let n2 = s.challenge(T, false);
    assert_eq!(
        auth.retry(&r1, &challenged(&r1, 401, &[n2.header_value()])),
        Err(ClientAuthError::Rejected)
    );
    // Proactive credentials (refresh) whose nonce the server challenges again, not stale.
    let mut refresh = request(Method::Register);
    assert!(auth.authorize_again(&mut refresh));
    assert_eq!(
        auth.retry(&refresh, &challenged(&refresh, 401, &[n1.header_value()])),
        Err(ClientAuthError::Rejected)
    );
    // …but a new nonce for proactive credentials (a server that forgot its nonces) is
    // answered once.
    let n3 = s.challenge(T + 10, false);
    let r3 = auth
        .retry(&refresh, &challenged(&refresh, 401, &[n3.header_value()]))
        .unwrap();
    assert_eq!(Authorization::parse(&authz(&r3)).unwrap().nonce, n3.nonce);
    let n4 = s.challenge(T + 10, false);
    assert_eq!(
        auth.retry(&r3, &challenged(&r3, 401, &[n4.header_value()])),
        Err(ClientAuthError::Rejected)
    );
    // Stale with the very nonce we sent is a loop too.
    let mut again = request(Method::Register);
    auth.authorize_again(&mut again);
    let mut same = n3.clone();
    same.stale = true;
    assert_eq!(
        auth.retry(&again, &challenged(&again, 401, &[same.header_value()])),
        Err(ClientAuthError::Rejected)
    );
}

#[test]
fn proxy_challenge_gets_proxy_authorization() {
    let s = server(Algorithm::Md5);
    let inv = request(Method::Invite);
    let mut ch = s.challenge(T, false);
    ch.opaque = Some("op4que".into());
    let mut auth = ClientAuth::new(creds());
    let again = auth
        .retry(&inv, &challenged(&inv, 407, &[ch.header_value()]))
        .unwrap();
    assert!(header_value(&again, "Authorization").is_none());
    let v = header_values(&again, "Proxy-Authorization");
    assert_eq!(v.len(), 1);
    assert!(matches!(
        again
            .headers
            .iter()
            .find(|h| header_parts(h).0 == "Proxy-Authorization"),
        Some(Header::ProxyAuthorization(_))
    ));
    let parsed = Authorization::parse(&v[0]).unwrap();
    assert_eq!(parsed.opaque.as_deref(), Some("op4que"));
    assert_eq!(
        s.verify(&v[0], "INVITE", Credential::Password("s3cret"), T),
        AuthResult::Ok("trunk1".into())
    );
    // A WWW-Authenticate in a 407 is not what a proxy asks for.
    let wrong = {
        let mut r = make_response(&inv, 407, None);
        r.headers
            .push(make_header("WWW-Authenticate", &ch.header_value()));
        r
    };
    assert_eq!(
        ClientAuth::new(creds()).retry(&inv, &wrong),
        Err(ClientAuthError::NoChallenge)
    );
    // authorize_again keeps using Proxy-Authorization (e.g. for the ACK or BYE).
    let mut bye = request(Method::Bye);
    assert!(auth.authorize_again(&mut bye));
    let v = header_values(&bye, "Proxy-Authorization");
    assert_eq!(Authorization::parse(&v[0]).unwrap().nc_value(), Some(2));
    assert_eq!(
        s.verify(&v[0], "BYE", Credential::Password("s3cret"), T),
        AuthResult::Ok("trunk1".into())
    );
}

#[test]
fn realm_filter() {
    let ours = server(Algorithm::Md5);
    let other = DigestServer::new(
        "evil.example",
        Algorithm::Md5,
        b"x",
        Duration::from_secs(300),
    );
    let inv = request(Method::Invite);
    let filtered = ClientCredentials {
        realm: Some(REALM.into()),
        ..creds()
    };
    // Only another realm: not ours, the password stays with us.
    let resp = challenged(&inv, 401, &[other.challenge(T, false).header_value()]);
    assert_eq!(
        ClientAuth::new(filtered.clone()).retry(&inv, &resp),
        Err(ClientAuthError::RealmMismatch {
            expected: REALM.into(),
            offered: vec!["evil.example".into()],
        })
    );
    // Without a filter any realm is answered.
    assert!(ClientAuth::new(creds()).retry(&inv, &resp).is_ok());
    // Both: only ours is answered.
    let resp = challenged(
        &inv,
        401,
        &[
            other.challenge(T, false).header_value(),
            ours.challenge(T, false).header_value(),
        ],
    );
    let again = ClientAuth::new(filtered).retry(&inv, &resp).unwrap();
    let a = authz(&again);
    assert_eq!(Authorization::parse(&a).unwrap().realm, REALM);
    assert_eq!(
        ours.verify(&a, "INVITE", Credential::Password("s3cret"), T),
        AuthResult::Ok("trunk1".into())
    );
    // Unfiltered, both realms get their own header (RFC 3261 §22.3).
    let again = ClientAuth::new(creds()).retry(&inv, &resp).unwrap();
    let all = header_values(&again, "Authorization");
    assert_eq!(all.len(), 2);
    let realms: Vec<String> = all
        .iter()
        .map(|v| Authorization::parse(v).unwrap().realm)
        .collect();
    assert_eq!(realms, ["evil.example", REALM]);
}

#[test]
fn sha256_is_preferred_over_md5_in_either_order() {
    let md5 = server(Algorithm::Md5);
    let sha = server(Algorithm::Sha256);
    let inv = request(Method::Invite);
    for order in [[&md5, &sha], [&sha, &md5]] {
        let values: Vec<String> = order
            .iter()
            .map(|s| s.challenge(T, false).header_value())
            .collect();
        let again = ClientAuth::new(creds())
            .retry(&inv, &challenged(&inv, 401, &values))
            .unwrap();
        let a = authz(&again);
        assert_eq!(
            Authorization::parse(&a).unwrap().algorithm,
            Algorithm::Sha256
        );
        assert_eq!(
            sha.verify(&a, "INVITE", Credential::Password("s3cret"), T),
            AuthResult::Ok("trunk1".into())
        );
    }
    // Between equals, the topmost.
    let first = md5.challenge(T, false);
    let second = md5.challenge(T, false);
    let again = ClientAuth::new(creds())
        .retry(
            &inv,
            &challenged(&inv, 401, &[first.header_value(), second.header_value()]),
        )
        .unwrap();
    assert_eq!(
        Authorization::parse(&authz(&again)).unwrap().nonce,
        first.nonce
    );
}

#[test]
fn unsupported_or_missing_challenges() {
    let inv = request(Method::Invite);
    let mut auth = ClientAuth::new(creds());
    let only = |v: &str| challenged(&inv, 401, &[v.to_string()]);
    assert_eq!(
        auth.retry(
            &inv,
            &only("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256")
        ),
        Err(ClientAuthError::UnsupportedAlgorithm("SHA-512-256".into()))
    );
    assert_eq!(
        auth.retry(
            &inv,
            &only("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess")
        ),
        Err(ClientAuthError::UnsupportedAlgorithm("MD5-sess".into()))
    );
    assert_eq!(
        auth.retry(
            &inv,
            &only("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"")
        ),
        Err(ClientAuthError::UnsupportedQop("auth-int".into()))
    );
    assert_eq!(
        auth.retry(&inv, &only("Basic realm=\"r\"")),
        Err(ClientAuthError::NoChallenge)
    );
    assert_eq!(
        auth.retry(&inv, &challenged(&inv, 401, &[])),
        Err(ClientAuthError::NoChallenge)
    );
    assert_eq!(
        auth.retry(&inv, &make_response(&inv, 403, None)),
        Err(ClientAuthError::NoChallenge)
    );
    // An unsupported one next to a supported one is skipped.
    let again = auth
        .retry(
            &inv,
            &challenged(
                &inv,
                401,
                &[
                    "Digest realm=\"r\", nonce=\"n1\", algorithm=SHA-512-256".into(),
                    "Digest realm=\"r\", nonce=\"n2\", qop=\"auth,auth-int\"".into(),
                ],
            ),
        )
        .unwrap();
    assert_eq!(Authorization::parse(&authz(&again)).unwrap().nonce, "n2");
    assert!(auth.has_challenge());
    assert_eq!(auth.credentials().username, "trunk1");
}

#[test]
fn auth_username_is_the_digest_user() {
    let s = server(Algorithm::Md5);
    let reg = request(Method::Register);
    let c = ClientCredentials {
        auth_username: Some("acct-991".into()),
        ..creds()
    };
    let again = ClientAuth::new(c)
        .retry(
            &reg,
            &challenged(&reg, 401, &[s.challenge(T, false).header_value()]),
        )
        .unwrap();
    let a = authz(&again);
    assert_eq!(Authorization::parse(&a).unwrap().username, "acct-991");
    assert_eq!(
        s.verify(&a, "REGISTER", Credential::Password("s3cret"), T),
        AuthResult::Ok("acct-991".into())
    );
    // The AOR is untouched.
    assert!(header_value(&again, "From")
        .unwrap()
        .contains("sip:trunk1@"));
}

#[test]
fn earlier_credentials_for_the_realm_are_replaced() {
    let s = server(Algorithm::Md5);
    let mut auth = ClientAuth::new(creds());
    let mut reg = request(Method::Register);
    // A stray header for another realm stays; ours is replaced on every retry.
    reg.headers.push(make_header(
        "Authorization",
        "Digest username=\"x\", realm=\"elsewhere\", nonce=\"n\", uri=\"sip:x\", response=\"0\"",
    ));
    let r1 = auth
        .retry(
            &reg,
            &challenged(&reg, 401, &[s.challenge(T, false).header_value()]),
        )
        .unwrap();
    let mut refresh = r1.clone();
    assert!(auth.authorize_again(&mut refresh));
    let r2 = auth
        .retry(
            &refresh,
            &challenged(&refresh, 401, &[s.challenge(T + 500, true).header_value()]),
        )
        .unwrap();
    let all = header_values(&r2, "Authorization");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        all.iter()
            .filter(|v| Authorization::parse(v).unwrap().realm == REALM)
            .count(),
        1
    );
    assert_eq!(cseq(&r2), Some((3, Method::Register)));
}

#[test]
fn debug_does_not_print_the_password() {
    let text = format!("{:?}", ClientAuth::new(creds()));
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(creds().digest_user(), "trunk1");
}

#[test]
fn with_branch_edits_only_the_branch() {
    assert_eq!(
        with_branch(
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKold;rport",
            "z9hG4bKnew"
        ),
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew;rport"
    );
    assert_eq!(
        with_branch("SIP/2.0/TCP [2001:db8::1]:5060", "z9hG4bKnew"),
        "SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKnew"
    );
}
