//! New INVITEs: agent feature codes, the DID that selects the dialplan,
//! admission control, and handing an admitted INVITE to whoever places
//! calls ([`CallStarter`], injected at start-up so the endpoint does not
//! depend on what a call is).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ringback_sip::message;
use ringback_sip::transaction::{TransactionKey, TransportKind};
use rsip::prelude::*;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::{did, Endpoint, EndpointHandle, SipInput};
use crate::acd_task::AcdCmd;
use crate::admission::{Load, Refusal};
use crate::snapshot::Snapshot;

/// An INVITE the endpoint admitted and wants answered by a call task.
pub struct NewCall {
    /// The INVITE (Request-URI user set to the selected DID).
    pub invite: rsip::Request,
    /// Its server transaction.
    pub key: TransactionKey,
    /// Its Call-ID.
    pub call_id: String,
    /// Where it came from.
    pub source: SocketAddr,
    /// Over which transport.
    pub transport: TransportKind,
    /// The confirmation prompt of an agent feature code already applied.
    pub feature: Option<&'static str>,
    /// To send SIP.
    pub endpoint: EndpointHandle,
}

/// Why a call could not be started (the endpoint answers the INVITE).
pub struct CallRefused {
    /// SIP status code.
    pub code: u16,
    /// Human-readable reason (sent in a Warning header and logged).
    pub reason: String,
    /// Metric label.
    pub metric: &'static str,
    /// The INVITE, given back to be answered.
    pub invite: rsip::Request,
}

/// Places calls: admits an INVITE (dialplan, SDP, RTP port) and runs its
/// task. The call module implements it; the server injects it.
pub trait CallStarter: Send + Sync {
    /// The dialplans new calls start with (DID selection reads their numbers).
    fn snapshot(&self) -> Arc<Snapshot>;
    /// Admit `call` and start its task reading `sip`, or say why not.
    fn start(
        &self,
        call: NewCall,
        sip: UnboundedReceiver<SipInput>,
    ) -> Result<(), Box<CallRefused>>;
}

/// The routing table's inbound calls (not legs, not other tasks).
#[derive(Default)]
pub(super) struct InboundCalls(HashSet<String>);

impl InboundCalls {
    pub(super) fn insert(&mut self, call_id: &str) {
        self.0.insert(call_id.to_string());
    }
    pub(super) fn remove(&mut self, call_id: &str) {
        self.0.remove(call_id);
    }
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

fn retry_after(secs: u32) -> rsip::Header {
    rsip::headers::RetryAfter::new(secs.to_string()).into()
}

impl Endpoint {
    /// `*11` login, `*12` logout, `*13` pause/unpause, dialed from an agent's
    /// own registered phone: apply it and return the confirmation prompt.
    /// The caller must be the agent (From user) *and* come from the address
    /// its REGISTER came from, so nobody else can change an agent's state.
    pub(super) fn feature_code(
        &self,
        req: &rsip::Request,
        source: SocketAddr,
    ) -> Option<&'static str> {
        use ringback_acd::{AgentId, Input};
        let dialed = req.uri.auth.as_ref().map(|a| a.user.as_str())?;
        if !matches!(dialed, "*11" | "*12" | "*13") {
            return None;
        }
        let agent = req
            .from_header()
            .ok()
            .and_then(|h| h.typed().ok())
            .and_then(|f| f.uri.auth.map(|a| a.user))?;
        let binding = self.registrar.binding(&agent, Instant::now())?;
        if binding.source != source {
            tracing::warn!(%agent, %source, "feature code from an address the agent did not register from");
            return None;
        }
        let id = AgentId::from(agent.as_str());
        tracing::info!(%agent, code = dialed, "agent feature code");
        Some(match dialed {
            "*11" => {
                self.deps.acd.input(Input::AgentLogin(id));
                "agent-logged-in"
            }
            "*12" => {
                self.deps.acd.input(Input::AgentLogout(id));
                "agent-logged-out"
            }
            _ => {
                self.deps.acd.send(AcdCmd::TogglePause { agent });
                "agent-paused-or-available"
            }
        })
    }

    /// Carrier DIDs (see [`did`]): when the number that selects the dialplan
    /// is not the Request-URI user (a trunk delivering `sip:trunkuser@…`
    /// with the DID in `To`, or `+1-555-0100` for a plan that answers
    /// `+15550100`), the INVITE's Request-URI user is set to that number
    /// before admission, so the dialplan lookup, the call's logs and the
    /// CDR's `dialed` column all carry the DID. With no plan answering
    /// either user the request is left alone (catch-all, or 404).
    pub(super) fn select_did(&self, req: &mut rsip::Request, call_id: &str) {
        let snapshot = self.deps.calls.snapshot();
        // Fast path, the usual case: a plan lists the Request-URI user.
        if let Some(user) = req.uri.auth.as_ref().map(|a| a.user.as_str()) {
            let listed = |p: &ringback_dialplan::Dialplan| p.numbers.iter().any(|n| n == user);
            if user != "*" && snapshot.plans.for_number(user).is_some_and(|p| listed(&p)) {
                return;
            }
        }
        let numbers: Vec<&str> = snapshot
            .plans
            .plans()
            .flat_map(|p| p.numbers.iter().map(String::as_str))
            .collect();
        let ruri_user = req.uri.auth.as_ref().map(|a| a.user.clone());
        let to_user = message::header_value(req, "To")
            .and_then(|v| message::NameAddr::parse(&v))
            .and_then(|n| n.user().map(str::to_string));
        let Some(chosen) = did::select(
            numbers.iter().copied(),
            ruri_user.as_deref(),
            to_user.as_deref(),
        ) else {
            return;
        };
        if ruri_user.as_deref() == Some(chosen.number.as_str()) {
            return;
        }
        tracing::info!(
            %call_id,
            request_uri_user = ruri_user.as_deref().unwrap_or(""),
            to_user = to_user.as_deref().unwrap_or(""),
            number = %chosen.number,
            source = ?chosen.source,
            exact = chosen.exact,
            "dialplan selected by DID"
        );
        match req.uri.auth.as_mut() {
            Some(auth) => auth.user = chosen.number,
            None => {
                req.uri.auth = Some(rsip::Auth {
                    user: chosen.number,
                    password: None,
                })
            }
        }
    }

    /// Inbound calls: counted where they are routed, not derived from the
    /// other tables.
    pub(super) fn inbound_calls(&self) -> usize {
        self.inbound.len()
    }

    pub(super) fn publish_counts(&self) {
        crate::metrics::active_calls(
            self.inbound_calls(),
            self.calls.len().saturating_sub(self.aliases.len()),
        );
    }

    /// What admission control weighs: calls, transactions, media lateness,
    /// signalling backlog.
    pub(super) fn load(&mut self) -> Load {
        Load {
            calls: self.inbound_calls(),
            transactions: self.layer.len(),
            media_lag: self.deps.media.recent_lag(),
            media_load_pct: self.deps.media.recent_load_pct(),
            sip_delay: self.sip_delay.recent(Instant::now()),
            draining: crate::drain::is_draining(),
        }
    }

    /// Refuse a new call before parsing it when the server is overloaded
    /// (or shutting down): a scan finds an initial INVITE of a call we do
    /// not have, and a `503` with `Retry-After` is built from its raw
    /// headers. Under overload every parse, transaction and allocation
    /// saved is capacity for the calls in progress. True when answered.
    /// Sources outside `sip.allow_from` go the normal way (their `403`).
    pub(super) fn refused_unparsed(
        &mut self,
        bytes: &[u8],
        src: SocketAddr,
        transport: TransportKind,
    ) -> bool {
        let Some(call_id) = message::initial_invite_call_id(bytes) else {
            return false;
        };
        if self.calls.contains_key(call_id) || !self.allow.permits(src.ip()) {
            return false;
        }
        let refusal = if self.shutting_down {
            Refusal {
                code: 503,
                retry_after: 5,
                reason: "shutting_down",
            }
        } else {
            let load = self.load();
            match self.admission.overloaded(load) {
                Ok(()) => return false,
                Err(r) => r,
            }
        };
        let Some(resp) = message::overload_response(bytes, refusal.retry_after, refusal.reason)
        else {
            return false;
        };
        crate::metrics::refused_unparsed(refusal.reason);
        tracing::debug!(%src, reason = refusal.reason, "INVITE refused before parsing");
        self.send_raw(resp, src, transport);
        true
    }

    /// Answer an overload refusal: 503 with `Retry-After`, counted by reason.
    pub(super) fn refuse(&mut self, key: &TransactionKey, req: &rsip::Request, r: Refusal) {
        if req.method == rsip::Method::Invite {
            crate::metrics::rejected(r.reason);
        } else {
            crate::metrics::refused(r.reason);
        }
        tracing::debug!(
            reason = r.reason,
            code = r.code,
            "request refused by admission control"
        );
        self.reject(key, req, r.code, Some(retry_after(r.retry_after)));
    }

    pub(super) fn reject(
        &mut self,
        key: &TransactionKey,
        req: &rsip::Request,
        code: u16,
        extra: Option<rsip::Header>,
    ) {
        let mut resp = message::make_response(req, code, Some(&message::new_tag()));
        if let Some(h) = extra {
            resp.headers.push(h);
        }
        self.respond(key, resp);
    }

    pub(super) fn new_call(
        &mut self,
        key: TransactionKey,
        req: rsip::Request,
        call_id: String,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        if self.shutting_down {
            crate::metrics::rejected("shutting_down");
            self.reject(&key, &req, 503, Some(retry_after(5)));
            return;
        }
        let load = self.load();
        if let Err(r) = self.admission.admit_call(load, Instant::now()) {
            self.refuse(&key, &req, r);
            return;
        }
        let feature = self.feature_code(&req, source);
        let mut req = req;
        if feature.is_none() {
            self.select_did(&mut req, &call_id);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let call = NewCall {
            invite: req,
            key: key.clone(),
            call_id: call_id.clone(),
            source,
            transport,
            feature,
            endpoint: self.handle.clone(),
        };
        match self.deps.calls.start(call, rx) {
            Ok(()) => {
                self.calls.insert(call_id.clone(), tx);
                self.inbound.insert(&call_id);
                self.publish_counts();
            }
            Err(rej) => {
                crate::metrics::rejected(rej.metric);
                tracing::info!(%call_id, code = rej.code, reason = %rej.reason, "INVITE rejected");
                let warning = rsip::Header::Other(
                    "Warning".into(),
                    format!("399 ringback \"{}\"", rej.reason),
                );
                self.reject(&key, &rej.invite, rej.code, Some(warning));
            }
        }
    }
}
