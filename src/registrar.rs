//! The registrar's shell: agents' phones REGISTER here with digest
//! authentication, and ringback learns where to ring them.
//!
//! Every decision (digest challenges and checks, the algorithm offered, the
//! bindings, their expiry, throttling, the response) is made by the sans-IO
//! core [`ringback_sip::registrar`]; its documentation explains the security
//! choices and why a 401 never carries more than one challenge. This file
//! only builds the core from the configuration (with a random nonce key),
//! passes the endpoint's requests and clock readings in, and logs what was
//! decided. The endpoint task owns the registrar and forwards each
//! [`Reachability`] to the ACD.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use ringback_sip::auth::Algorithm;
use ringback_sip::registrar::{self as core, Outcome, RegistrarConfig};
use ringback_sip::transaction::TransportKind;

pub use ringback_sip::registrar::{Binding, Reachability, Secret};

/// The registrar of the endpoint: the core with logging.
pub struct Registrar {
    core: core::Registrar,
}

impl Registrar {
    /// A registrar for `realm` knowing these agents (user name → secret),
    /// challenging with `offered` algorithms in that order (empty: MD5).
    pub fn new(
        realm: &str,
        secrets: HashMap<String, Secret>,
        offered: Vec<Algorithm>,
    ) -> Registrar {
        let key: [u8; 32] = rand::random();
        Registrar {
            core: core::Registrar::new(RegistrarConfig::new(realm, secrets, offered, key)),
        }
    }

    /// Per-agent algorithm lists (`[agents.NAME] auth_algorithms`), each
    /// replacing the global list for that agent's phone. Empty lists are
    /// ignored.
    pub fn with_agent_algorithms(mut self, lists: HashMap<String, Vec<Algorithm>>) -> Registrar {
        self.core.set_agent_algorithms(lists);
        self
    }

    /// The freshest live binding of an agent.
    pub fn binding(&self, agent: &str, now: Instant) -> Option<&Binding> {
        self.core.binding(agent, now)
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
        let d = self.core.handle(req, source, transport, now, now_unix);
        match &d.outcome {
            Outcome::Throttled => {
                tracing::warn!(%source, "REGISTER refused: too many failed authentications");
            }
            Outcome::AuthFailed { user } => {
                tracing::info!(%source, %user, "REGISTER authentication failed");
            }
            _ => {}
        }
        if let Some(c) = &d.change {
            tracing::info!(agent = c.agent.as_str(), reachable = c.binding.is_some(), %source, "registration changed");
        }
        (d.response, d.change)
    }

    /// Drop lapsed bindings; returns agents that became unreachable.
    pub fn expire(&mut self, now: Instant) -> Vec<Reachability> {
        self.core.handle_timeout(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringback_sip::auth::{authorize, Challenge};
    use ringback_sip::message;

    fn register(authz: Option<&str>, expires: u32) -> rsip::Request {
        let auth = authz
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let raw = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-r1\r\nFrom: <sip:alice@127.0.0.1>;tag=abc\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: reg-alice@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:5099>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        );
        match message::parse(raw.as_bytes()).expect("valid REGISTER") {
            rsip::SipMessage::Request(r) => r,
            rsip::SipMessage::Response(_) => panic!("not a request"),
        }
    }

    /// The glue as the endpoint drives it: configuration in, a REGISTER
    /// and its answer, the binding, its expiry.
    #[test]
    fn the_endpoint_registers_and_expires_an_agent() {
        let mut secrets = HashMap::new();
        secrets.insert("alice".to_string(), Secret::Password("wonderland".into()));
        let mut per_agent = HashMap::new();
        per_agent.insert("alice".to_string(), vec![Algorithm::Sha256]);
        let mut reg = Registrar::new("ringback", secrets, vec![Algorithm::Md5])
            .with_agent_algorithms(per_agent);
        let src: SocketAddr = "127.0.0.1:5099".parse().expect("addr");
        let now = Instant::now();
        let (r401, change) = reg.handle(&register(None, 600), src, TransportKind::Udp, now, 1_000);
        assert!(change.is_none());
        let values = message::header_values(&r401, "WWW-Authenticate");
        assert_eq!(values.len(), 1);
        let ch = Challenge::parse(&values[0]).expect("challenge");
        assert_eq!(ch.algorithm, Algorithm::Sha256, "the agent's own list");
        let a = authorize(
            &ch,
            "alice",
            "wonderland",
            "REGISTER",
            "sip:127.0.0.1",
            "c",
            1,
        );
        let (ok, change) = reg.handle(
            &register(Some(&a), 600),
            src,
            TransportKind::Udp,
            now,
            1_000,
        );
        assert_eq!(ok.status_code.code(), 200);
        let binding = change.and_then(|c| c.binding).expect("reachable");
        assert_eq!(binding.source, src);
        assert_eq!(reg.binding("alice", now), Some(&binding));
        let gone = reg.expire(binding.expires_at);
        assert_eq!(gone.len(), 1);
        assert!(reg.binding("alice", binding.expires_at).is_none());
    }
}
