//! Keeping trunks registered with their carriers: one task per trunk with
//! `register = true`, driving the sans-IO [`Registration`] of
//! `ringback-sip` with tokio timers and the endpoint.
//!
//! The task owns a Call-ID (the same for every REGISTER of the trunk, as
//! RFC 3261 §10.2 asks) and receives its responses through
//! [`EndpointCmd::Register`]. Each state change is published for
//! `GET /api/v1/trunks`, the dashboard and the `ringback_trunk_up` gauge
//! ([`snapshot`], [`crate::metrics::trunk_up`]). On shutdown the endpoint's
//! `HangupAll` reaches the task as [`SipInput::Shutdown`]: it unregisters
//! (`Expires: 0`) and waits briefly for the answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ringback_sip::message::{self, ViaSpec};
use ringback_sip::registration::{
    Backoff, Input, Output, Registration, RegistrationConfig, RegistrationState,
};
use ringback_sip::transaction::{TransactionKey, TransportKind};
use tokio::sync::mpsc;

use crate::config::{Config, TrunkConfig};
use crate::endpoint::{EndpointCmd, EndpointHandle, SipInput};
use crate::outbound::host_of;

/// How long an unregistration may take at shutdown.
const UNREGISTER_WAIT: Duration = Duration::from_secs(2);

/// A trunk as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrunkStatus {
    /// `default` for `[trunk]`, else the `[trunks.NAME]` name.
    pub name: String,
    /// The carrier's address.
    pub address: Option<String>,
    /// Whether ringback registers to it.
    pub register: bool,
    /// `not_registering`, `unregistered`, `registering`, `registered` or
    /// `failed`.
    pub state: String,
    /// When the carrier drops the binding unless it is refreshed (RFC 3339).
    pub registered_until: Option<String>,
    /// The latest failure since the last success (`403 Forbidden`, …).
    pub last_error: Option<String>,
    /// When a failed registration is tried again (RFC 3339).
    pub retry_at: Option<String>,
}

/// What the registration tasks last published, by trunk name.
static STATES: Mutex<BTreeMap<String, Published>> = Mutex::new(BTreeMap::new());

#[derive(Debug, Clone, Default)]
struct Published {
    state: &'static str,
    registered_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
    retry_at: Option<DateTime<Utc>>,
}

/// Every configured trunk, in the order calls try them, with its
/// registration state.
pub fn snapshot(cfg: &Config) -> Vec<TrunkStatus> {
    let states = STATES.lock().unwrap_or_else(|p| p.into_inner());
    cfg.all_trunks()
        .into_iter()
        .map(|(name, t)| {
            let p = states.get(name).cloned().unwrap_or(Published {
                state: if t.register {
                    "unregistered"
                } else {
                    "not_registering"
                },
                ..Published::default()
            });
            TrunkStatus {
                name: name.to_string(),
                address: t.address.map(|a| a.to_string()),
                register: t.register,
                state: p.state.to_string(),
                registered_until: p.registered_until.map(crate::store::ts),
                last_error: p.last_error,
                retry_at: p.retry_at.map(crate::store::ts),
            }
        })
        .collect()
}

/// Instant → wall clock, for people.
fn wall(at: Instant, now: Instant) -> DateTime<Utc> {
    let d = chrono::Duration::from_std(at.saturating_duration_since(now)).unwrap_or_default();
    Utc::now() + d
}

fn publish(name: &str, reg: &Registration, now: Instant) {
    let state = reg.state();
    let p = Published {
        state: state.name(),
        registered_until: match state {
            RegistrationState::Registered { until } => Some(wall(*until, now)),
            _ => None,
        },
        last_error: reg.last_error().map(|(c, r)| format!("{c} {r}")),
        retry_at: match state {
            RegistrationState::Failed { retry_at, .. } => Some(wall(*retry_at, now)),
            _ => None,
        },
    };
    crate::metrics::trunk_up(name, state.is_up());
    STATES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_string(), p);
}

/// Start one registration task per trunk with `register = true`.
pub fn spawn(config: &Config, endpoint: EndpointHandle) {
    for (name, trunk) in config.all_trunks() {
        if !trunk.register {
            continue;
        }
        let Some(cfg) = registration_config(config, trunk, &endpoint) else {
            tracing::warn!(
                trunk = name,
                "trunk cannot register: address or username missing"
            );
            continue;
        };
        let Some(dest) = trunk.address else {
            continue;
        };
        let transport = cfg.via.transport;
        crate::metrics::trunk_up(name, false);
        tokio::spawn(run(
            name.to_string(),
            Registration::new(cfg),
            dest,
            transport,
            endpoint.clone(),
        ));
    }
}

/// The REGISTER parameters of a trunk: AOR `sip:username@domain`, Contact
/// `sip:username@our-address`, the configured expiry and credentials.
fn registration_config(
    cfg: &Config,
    trunk: &TrunkConfig,
    endpoint: &EndpointHandle,
) -> Option<RegistrationConfig> {
    let dest = trunk.address?;
    let user = trunk.username.clone()?;
    let transport = crate::trunk::transport(trunk);
    let domain = crate::trunk::domain(trunk, dest);
    let ip = cfg.advertised_ip();
    let host = host_of(ip);
    let port = endpoint.port_for(transport);
    let transport_param = match transport {
        TransportKind::Tcp => ";transport=tcp",
        TransportKind::Tls => ";transport=tls",
        TransportKind::Udp => "",
    };
    let parse = |s: String| rsip::Uri::try_from(s.as_str()).ok();
    Some(RegistrationConfig {
        registrar: parse(format!("sip:{domain}"))?,
        aor: parse(format!("sip:{user}@{domain}"))?,
        contact: parse(format!("sip:{user}@{host}:{port}{transport_param}"))?,
        via: ViaSpec {
            host: ip.to_string(),
            port: Some(port),
            transport,
        },
        call_id: message::new_call_id(&host),
        expires: trunk.register_expires_secs,
        credentials: crate::trunk::credentials(trunk),
        user_agent: Some(cfg.sip.user_agent.clone()),
        backoff: Backoff::default(),
        seed: rand::random(),
    })
}

async fn run(
    name: String,
    mut reg: Registration,
    dest: SocketAddr,
    transport: TransportKind,
    endpoint: EndpointHandle,
) {
    let call_id = reg.call_id().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    endpoint.send(EndpointCmd::Register {
        call_id: call_id.clone(),
        tx,
    });
    tracing::info!(trunk = %name, %dest, "registering trunk");
    reg.handle(Input::Start, Instant::now());
    // The client transaction of the REGISTER under way.
    let mut current: Option<TransactionKey> = None;
    let mut give_up_at: Option<Instant> = None;
    let mut logged_error: Option<String> = None;
    loop {
        let now = Instant::now();
        while let Some(out) = reg.poll_output() {
            match out {
                Output::Send(req) => {
                    current = TransactionKey::for_client_request(&req);
                    endpoint.send(EndpointCmd::Request {
                        request: *req,
                        dest,
                        transport,
                        owner: call_id.clone(),
                    });
                }
                Output::State(state) => log_state(&name, &state, &reg, now),
            }
        }
        let error = reg.last_error().map(|(c, r)| format!("{c} {r}"));
        if error != logged_error {
            if let (Some(e), true) = (&error, reg.state().is_up()) {
                tracing::warn!(trunk = %name, error = %e, "trunk refresh failed; the binding is still valid");
            }
            logged_error = error;
        }
        publish(&name, &reg, now);
        if reg.is_done() || give_up_at.is_some_and(|t| t <= now) {
            break;
        }
        let deadline = match (reg.poll_timeout(), give_up_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rx.recv() => {
                let now = Instant::now();
                match msg {
                    Some(SipInput::Response { response, .. }) => {
                        reg.handle(Input::Response(response), now)
                    }
                    Some(SipInput::Timeout { key }) => {
                        if current.as_ref() == Some(&key) {
                            current = None;
                            reg.handle(Input::Timeout, now);
                        }
                    }
                    Some(SipInput::Request { key, request }) => {
                        // Nothing is addressed to a registration's Call-ID.
                        let resp = message::make_response(&request, 481, Some(&message::new_tag()));
                        endpoint.send(EndpointCmd::Respond { key, response: resp });
                    }
                    Some(SipInput::Shutdown) | None => {
                        if give_up_at.is_none() {
                            tracing::info!(trunk = %name, "unregistering trunk");
                            give_up_at = Some(now + UNREGISTER_WAIT);
                            reg.handle(Input::Shutdown, now);
                        }
                        if msg.is_none() {
                            break;
                        }
                    }
                    Some(_) => {}
                }
            }
            _ = sleep => reg.handle(Input::Tick, Instant::now()),
        }
    }
    endpoint.send(EndpointCmd::CallEnded { call_id });
}

fn log_state(name: &str, state: &RegistrationState, reg: &Registration, now: Instant) {
    match state {
        RegistrationState::Registered { until } => tracing::info!(
            trunk = name,
            expires_in_secs = until.saturating_duration_since(now).as_secs(),
            "trunk registered"
        ),
        RegistrationState::Failed {
            code,
            reason,
            retry_at,
        } => tracing::warn!(
            trunk = name,
            code,
            %reason,
            failures = reg.failures(),
            retry_in_secs = retry_at.saturating_duration_since(now).as_secs(),
            "trunk registration failed"
        ),
        RegistrationState::Registering => {
            tracing::info!(trunk = name, "trunk registering (no binding)")
        }
        RegistrationState::Unregistered => tracing::info!(trunk = name, "trunk unregistered"),
    }
}
