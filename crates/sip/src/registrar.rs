//! The registrar (RFC 3261 §10.3) as a sans-IO state machine: agents' phones REGISTER with
//! digest authentication (RFC 3261 §22, RFC 7616, RFC 8760 algorithms), and the registrar
//! learns where to ring them.
//!
//! [`Registrar::handle`] takes one REGISTER with its source, transport and the current time on
//! both clocks (an [`Instant`] for bindings and throttling, Unix seconds for nonces) and
//! returns a [`Decision`]: the response to send, what was decided ([`Outcome`], for logs and
//! metrics) and whether the agent became reachable, moved or unreachable ([`Reachability`]).
//! [`Registrar::handle_timeout`] drops lapsed bindings and forgotten state at the instant
//! [`Registrar::poll_timeout`] names. Nothing here reads a clock, sends or logs: the shell does.
//!
//! Security choices:
//! - An unknown user and a wrong password get the same answer (a challenge, then 403), so
//!   probing does not reveal which agents exist.
//! - Nonces are stateless HMACs with an expiry (`stale=true` when old) and nonce-counts are
//!   checked against replay.
//! - Failed attempts are counted per source IP; past [`MAX_FAILURES`] the source is refused
//!   for the rest of the [`FAILURE_WINDOW`] without any digest work.
//!
//! One challenge per 401: every 401 carries a single `WWW-Authenticate`, for the first
//! algorithm of the list that applies (the agent's own list, else the global one). Several
//! challenges in one response (RFC 8760 §2.4) lock phones out: libre ≤ 1.x (Debian's baresip
//! 1.0) walks every `WWW-Authenticate` and aborts the whole REGISTER with `ENOSYS` ("Function
//! not implemented") at the first one that is not MD5, whatever its position. A phone that
//! comes back without credentials on the same registration (Call-ID) after a challenge it did
//! not answer is offered the next algorithm of the list, so a phone that cannot do the
//! preferred one still gets in (`[SHA-256, MD5]`: SHA-256 phones use SHA-256, an MD5-only
//! phone is offered MD5 when it retries). A registration that authenticated is offered the
//! algorithm it used again (refreshes and the un-REGISTER work at once); a new registration
//! starts at the first.
//!
//! Bindings: the address of record is the `To` user, which must be the authenticated user.
//! Each `Contact` is bound for its `expires` parameter, else the `Expires` header, else
//! [`MAX_EXPIRES`] (at most [`MAX_EXPIRES`]; below [`MIN_EXPIRES`] → 423 with `Min-Expires`);
//! `0` removes it and `Contact: *` with `Expires: 0` removes them all. A REGISTER with a
//! refused `Contact` changes nothing. The 200 lists every binding of the agent with the
//! seconds it has left.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rsip::{Request, Response};

use crate::auth::{
    Algorithm, AuthResult, Authorization, Credential, DigestServer, MemoryNonceCounter,
};
use crate::message::{self, make_header, make_response, new_tag, NameAddr};
use crate::transaction::TransportKind;

/// Shortest registration accepted (RFC 3261 §10.3 step 7: 423 below it).
pub const MIN_EXPIRES: u64 = 60;
/// Longest registration granted.
pub const MAX_EXPIRES: u64 = 3600;
/// Registrations (Call-IDs) whose last challenge is remembered, to offer the next algorithm or
/// the one that worked; the table is cleared when full.
pub const MAX_OFFERS: usize = 8_192;
/// How long an unanswered challenge is remembered.
pub const UNANSWERED_TTL: Duration = Duration::from_secs(900);
/// How long the algorithm a registration authenticated with is remembered.
pub const ANSWERED_TTL: Duration = Duration::from_secs(MAX_EXPIRES + 300);
/// Failed authentications per source IP per window before it is refused.
pub const MAX_FAILURES: u32 = 10;
/// Window for [`MAX_FAILURES`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a nonce stays fresh (older ones are answered with `stale=true`).
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Nonces whose last nonce-count is remembered (replay protection).
pub const NONCE_COUNTS: usize = 65_536;

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
    /// Where its REGISTER came from: requests are sent here, which is what works for phones
    /// behind NAT.
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

/// What a [`Registrar`] is built from.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Digest realm.
    pub realm: String,
    /// Agents (user name → secret).
    pub secrets: HashMap<String, Secret>,
    /// Algorithms challenged with, in order of preference; empty means `[MD5]`.
    pub algorithms: Vec<Algorithm>,
    /// Agents with their own list, replacing [`RegistrarConfig::algorithms`] for them; empty
    /// lists are ignored.
    pub agent_algorithms: HashMap<String, Vec<Algorithm>>,
    /// Key of the nonce HMAC (the shell passes random bytes; nodes sharing it accept each
    /// other's nonces).
    pub nonce_key: [u8; 32],
}

impl RegistrarConfig {
    /// A configuration for `realm` with these agents and algorithms, no per-agent lists.
    pub fn new(
        realm: &str,
        secrets: HashMap<String, Secret>,
        algorithms: Vec<Algorithm>,
        nonce_key: [u8; 32],
    ) -> RegistrarConfig {
        RegistrarConfig {
            realm: realm.to_string(),
            secrets,
            algorithms,
            agent_algorithms: HashMap::new(),
            nonce_key,
        }
    }
}

/// What the registrar decided about one REGISTER (the response says the same to the phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 403 without any digest work: too many failures from this source IP.
    Throttled,
    /// 401 with one challenge.
    Challenged {
        /// The algorithm of the challenge.
        algorithm: Algorithm,
        /// `stale=true`: the credentials were right but the nonce expired or was replayed.
        stale: bool,
    },
    /// 400: the `Authorization` header could not be parsed (counts as a failure).
    MalformedAuthorization,
    /// 403: wrong password or unknown user (counts as a failure).
    AuthFailed {
        /// The user name the phone claimed.
        user: String,
    },
    /// 403: authenticated, but for an address of record (`To`) that is not the user's.
    ForeignAddress {
        /// The authenticated user.
        user: String,
    },
    /// 400: a `Contact` could not be parsed, or `*` was used wrongly.
    BadContact,
    /// 423 with `Min-Expires`: a binding shorter than [`MIN_EXPIRES`] was asked for.
    IntervalTooBrief,
    /// 200: the bindings were updated (or only listed).
    Registered {
        /// The agent.
        agent: String,
    },
}

/// The answer to one REGISTER.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Send this back in the REGISTER's server transaction.
    pub response: Response,
    /// Why (for logs and metrics).
    pub outcome: Outcome,
    /// The agent's freshest binding changed (it became reachable, moved or unreachable).
    pub change: Option<Reachability>,
}

/// The `Contact`s of a REGISTER, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactUpdate {
    /// `Contact: *` (with `Expires: 0`): remove every binding.
    pub wildcard: bool,
    /// Contact URIs with the seconds asked for (`0` removes the binding; not yet capped at
    /// [`MAX_EXPIRES`]), in order.
    pub contacts: Vec<(String, u64)>,
}

/// Why the `Contact`s of a REGISTER were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactError {
    /// Unparsable `Contact`, `*` beside other contacts, or `*` without `Expires: 0` (400).
    Malformed,
    /// A binding shorter than [`MIN_EXPIRES`] (423).
    TooBrief,
}

/// Validate the `Contact`s and expiries of a REGISTER (RFC 3261 §10.3 steps 6–7), stopping at
/// the first refused one. No `Contact` at all is a query: an empty update.
pub fn parse_contacts(req: &Request) -> Result<ContactUpdate, ContactError> {
    let header_expires =
        message::header_value(req, "Expires").and_then(|v| v.trim().parse::<u64>().ok());
    let contacts = message::list_values(req, "Contact");
    let mut update = ContactUpdate::default();
    for c in &contacts {
        let c = c.trim();
        if c == "*" {
            if header_expires != Some(0) || contacts.len() != 1 {
                return Err(ContactError::Malformed);
            }
            update.wildcard = true;
            continue;
        }
        let na = NameAddr::parse(c).ok_or(ContactError::Malformed)?;
        let expires = na
            .param("expires")
            .flatten()
            .and_then(|v| v.parse::<u64>().ok())
            .or(header_expires)
            .unwrap_or(MAX_EXPIRES);
        if expires != 0 && expires < MIN_EXPIRES {
            return Err(ContactError::TooBrief);
        }
        update.contacts.push((na.uri.clone(), expires));
    }
    Ok(update)
}

/// User part of the `To` URI: the address of record.
pub fn to_user(req: &Request) -> Option<String> {
    use rsip::prelude::*;
    req.to_header()
        .ok()
        .and_then(|h| h.typed().ok())
        .and_then(|t| t.uri.auth.map(|a| a.user))
}

/// Registrar state: bindings, challenges offered, failures, nonce-counts.
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

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("realm", &self.md5.realm())
            .field("agents", &self.secrets.len())
            .field("bound", &self.bindings.len())
            .field("offered", &self.offered)
            .finish_non_exhaustive()
    }
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
    fn ttl(&self) -> Duration {
        if self.answered {
            ANSWERED_TTL
        } else {
            UNANSWERED_TTL
        }
    }

    fn live(&self, now: Instant) -> bool {
        now.duration_since(self.at) < self.ttl()
    }
}

impl Registrar {
    /// A registrar with no bindings.
    pub fn new(cfg: RegistrarConfig) -> Registrar {
        let RegistrarConfig {
            realm,
            secrets,
            algorithms,
            agent_algorithms,
            nonce_key,
        } = cfg;
        let mut reg = Registrar {
            sha256: DigestServer::new(&realm, Algorithm::Sha256, &nonce_key, NONCE_LIFETIME),
            md5: DigestServer::new(&realm, Algorithm::Md5, &nonce_key, NONCE_LIFETIME),
            secrets,
            bindings: HashMap::new(),
            failures: HashMap::new(),
            nonce_counts: MemoryNonceCounter::new(NONCE_COUNTS),
            offered: if algorithms.is_empty() {
                vec![Algorithm::Md5]
            } else {
                algorithms
            },
            agent_offered: HashMap::new(),
            offers: HashMap::new(),
        };
        reg.set_agent_algorithms(agent_algorithms);
        reg
    }

    /// Replace the per-agent algorithm lists (see [`RegistrarConfig::agent_algorithms`]).
    pub fn set_agent_algorithms(&mut self, lists: HashMap<String, Vec<Algorithm>>) {
        self.agent_offered = lists.into_iter().filter(|(_, l)| !l.is_empty()).collect();
    }

    /// The algorithms `user`'s phone is challenged with, in order. Unknown users get the
    /// global list. An agent known only by an MD5 HA1 is only ever offered MD5 (nothing else
    /// could be checked).
    pub fn algorithms_for(&self, user: Option<&str>) -> Vec<Algorithm> {
        let list = user
            .and_then(|u| self.agent_offered.get(u))
            .unwrap_or(&self.offered);
        match user.and_then(|u| self.secrets.get(u)) {
            Some(Secret::Md5Ha1(_)) => vec![Algorithm::Md5],
            _ => list.clone(),
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

    /// Every binding of an agent in the order they were made, including any that lapsed since
    /// the last [`Registrar::handle_timeout`].
    pub fn bindings(&self, agent: &str) -> &[Binding] {
        self.bindings.get(agent).map_or(&[], Vec::as_slice)
    }

    /// Answer a REGISTER that came from `source` over `transport`, at `now` (`now_unix`:
    /// the same moment in seconds since the Unix epoch, for nonces).
    pub fn handle(
        &mut self,
        req: &Request,
        source: SocketAddr,
        transport: TransportKind,
        now: Instant,
        now_unix: u64,
    ) -> Decision {
        if self.throttled(source.ip(), now) {
            return refuse(req, 403, Outcome::Throttled);
        }
        let call_id = message::call_id(req).unwrap_or_default();
        let Some(authz) = message::header_value(req, "Authorization") else {
            let list = self.algorithms_for(to_user(req).as_deref());
            let alg = self.next_algorithm(&call_id, &list, now);
            return self.challenge(req, alg, now_unix, false);
        };
        let Some(parsed) = Authorization::parse(&authz) else {
            self.fail(source.ip(), now);
            return refuse(req, 400, Outcome::MalformedAuthorization);
        };
        let list = self.algorithms_for(Some(&parsed.username));
        if !list.contains(&parsed.algorithm) {
            // Answered with an algorithm this phone is not offered (e.g. MD5 for an agent
            // restricted to SHA-256): challenge again.
            let alg = self.next_algorithm(&call_id, &list, now);
            return self.challenge(req, alg, now_unix, false);
        }
        let server = match parsed.algorithm {
            Algorithm::Sha256 => &self.sha256,
            Algorithm::Md5 => &self.md5,
        };
        // Unknown users are checked against a secret nobody knows, so they take the same path
        // (and time) as a wrong password.
        let secret = self
            .secrets
            .get(&parsed.username)
            .cloned()
            .unwrap_or_else(|| Secret::Password(format!("{:032x}", rand::random::<u128>())));
        let credential = match (&secret, parsed.algorithm) {
            (Secret::Password(p), _) => Credential::Password(p),
            (Secret::Md5Ha1(h), Algorithm::Md5) => Credential::Ha1(h),
            (Secret::Md5Ha1(_), Algorithm::Sha256) => {
                // Only an MD5 HA1 is stored (not reached: such agents are only offered MD5):
                // ask again with MD5.
                return self.challenge(req, Algorithm::Md5, now_unix, false);
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
                    return refuse(req, 403, Outcome::ForeignAddress { user });
                }
                self.update_bindings(req, &user, source, transport, now)
            }
            // Same algorithm again: the phone already speaks it.
            AuthResult::Stale => self.challenge(req, parsed.algorithm, now_unix, true),
            AuthResult::Invalid => {
                // The phone could answer this algorithm (wrongly): no reason to offer it
                // another one.
                self.offers.remove(&call_id);
                self.fail(source.ip(), now);
                refuse(
                    req,
                    403,
                    Outcome::AuthFailed {
                        user: parsed.username,
                    },
                )
            }
        }
    }

    /// Drop lapsed bindings, old failure counts and forgotten challenges; returns the agents
    /// that became unreachable. Call it at [`Registrar::poll_timeout`] (or more often).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Reachability> {
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

    /// When [`Registrar::handle_timeout`] next has something to drop: the earliest binding
    /// expiry, end of a failure window or end of a remembered challenge.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let bindings = self.bindings.values().flatten().map(|b| b.expires_at);
        let failures = self
            .failures
            .values()
            .map(|(_, since)| *since + FAILURE_WINDOW);
        let offers = self.offers.values().map(|o| o.at + o.ttl());
        bindings.chain(failures).chain(offers).min()
    }

    /// The algorithm for the next challenge of the registration `call_id`: the one it last
    /// authenticated with, else the one after the last offered when that challenge went
    /// unanswered, else the first.
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

    /// A 401 with a single challenge (see the module documentation for why never several).
    fn challenge(&self, req: &Request, alg: Algorithm, now_unix: u64, stale: bool) -> Decision {
        let mut response = make_response(req, 401, Some(&new_tag()));
        let server = match alg {
            Algorithm::Sha256 => &self.sha256,
            Algorithm::Md5 => &self.md5,
        };
        let c = server.challenge(now_unix, stale);
        response
            .headers
            .push(make_header("WWW-Authenticate", &c.header_value()));
        Decision {
            response,
            outcome: Outcome::Challenged {
                algorithm: alg,
                stale,
            },
            change: None,
        }
    }

    fn update_bindings(
        &mut self,
        req: &Request,
        agent: &str,
        source: SocketAddr,
        transport: TransportKind,
        now: Instant,
    ) -> Decision {
        // Validate every Contact first: a refused REGISTER changes nothing.
        let update = match parse_contacts(req) {
            Ok(u) => u,
            Err(ContactError::Malformed) => return refuse(req, 400, Outcome::BadContact),
            Err(ContactError::TooBrief) => {
                let mut d = refuse(req, 423, Outcome::IntervalTooBrief);
                d.response
                    .headers
                    .push(make_header("Min-Expires", &MIN_EXPIRES.to_string()));
                return d;
            }
        };
        let had = self.binding(agent, now).cloned();
        let list = self.bindings.entry(agent.to_string()).or_default();
        if update.wildcard {
            list.clear();
        }
        for (uri, expires) in update.contacts {
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
        let mut response = make_response(req, 200, Some(&new_tag()));
        for b in list.iter() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            response.headers.push(make_header(
                "Contact",
                &format!("<{}>;expires={left}", b.contact),
            ));
        }
        let now_has = self.binding(agent, now).cloned();
        let change = (had != now_has).then(|| Reachability {
            agent: agent.to_string(),
            binding: now_has,
        });
        Decision {
            response,
            outcome: Outcome::Registered {
                agent: agent.to_string(),
            },
            change,
        }
    }
}

/// A final response without a binding change.
fn refuse(req: &Request, code: u16, outcome: Outcome) -> Decision {
    Decision {
        response: make_response(req, code, Some(&new_tag())),
        outcome,
        change: None,
    }
}

#[cfg(test)]
mod tests;
