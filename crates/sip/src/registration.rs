//! Registering a trunk with its carrier (RFC 3261 §10.2) as a sans-IO state machine.
//!
//! One [`Registration`] keeps one binding alive: it builds the `REGISTER` requests (AOR in
//! `From`/`To`, our `Contact`, `Expires`), answers 401/407 with [`ClientAuth`], refreshes
//! before the binding expires, backs off after failures and unregisters (`Expires: 0`) on
//! shutdown. Like the rest of the crate it sends nothing and reads no clock: the shell feeds
//! [`Input`]s with the current [`Instant`] ([`Registration::handle`]), sends what
//! [`Registration::poll_output`] yields (each REGISTER in its own client transaction) and wakes
//! up at [`Registration::poll_timeout`] with [`Input::Tick`].
//!
//! Timing:
//! * The granted expiry is the `expires` parameter of the `Contact` in the 200 that is ours
//!   (the only one, if the registrar rewrote it), else the `Expires` header, else what we asked.
//! * The refresh is sent after `min(granted / 2, granted − 30 s)`, but not before
//!   `min(5 s, granted / 2)`: 1800 s for an hour, 30 s for a minute, 5 s for 10 s.
//! * `423 Interval Too Brief` is answered at once with the `Min-Expires` asked for (up to a day).
//! * Other failures (4xx–6xx, no answer at all, credentials rejected) are retried after a
//!   backoff of [`Backoff::initial`] doubling up to [`Backoff::max`], shortened by up to
//!   [`Backoff::jitter`] of itself so that many trunks do not retry in step, and never before a
//!   `Retry-After` the registrar gave. The randomness comes from [`RegistrationConfig::seed`],
//!   so tests are deterministic.
//! * A failed refresh while the binding is still valid keeps the state
//!   [`RegistrationState::Registered`] (the carrier still routes to us) with
//!   [`Registration::last_error`] set; when the binding lapses the state becomes
//!   [`RegistrationState::Failed`].
//! * After a failure the state stays `Failed` through the retries until one succeeds.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rsip::{Header, Method, Request, Response, StatusCode};

use crate::client_auth::{ClientAuth, ClientCredentials};
use crate::message::{
    self, call_id, cseq, header_value, list_values, make_header, new_branch, new_tag, NameAddr,
    ViaSpec,
};

/// Refreshes are never scheduled earlier than this after a success (unless the binding is
/// even shorter: then at half of it).
pub const MIN_REFRESH: Duration = Duration::from_secs(5);

/// Largest `Min-Expires` we follow after a 423 (one day).
pub const MAX_EXPIRES: u32 = 86_400;

/// Longest `Retry-After` we honour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// Retry delays after failures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of the doubling delay.
    pub max: Duration,
    /// Fraction (0–1) by which each delay is randomly shortened.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 5 s doubling to 5 min, up to 20 % shorter.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay after the `failures`-th failure in a row (1-based), before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// What a [`Registration`] needs to know.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// Request-URI of the REGISTERs: the registrar's domain (`sip:carrier.example`).
    pub registrar: rsip::Uri,
    /// Address of record, in `From` and `To` (`sip:username@domain`).
    pub aor: rsip::Uri,
    /// Our `Contact` (where the carrier sends calls).
    pub contact: rsip::Uri,
    /// Our `Via`.
    pub via: ViaSpec,
    /// `Call-ID`, the same for every REGISTER of this binding (RFC 3261 §10.2).
    pub call_id: String,
    /// Expiry asked for, in seconds.
    pub expires: u32,
    /// Credentials for 401/407; `None` fails on a challenge.
    pub credentials: Option<ClientCredentials>,
    /// `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// Retry delays after failures.
    pub backoff: Backoff,
    /// Seed of the backoff jitter (pass a random number; tests pass a constant).
    pub seed: u64,
}

/// Where a registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not started, or stopped (shutdown).
    Unregistered,
    /// A REGISTER is under way and there is no binding (yet, or any more).
    Registering,
    /// The registrar holds our binding until `until`.
    Registered {
        /// When the binding expires unless refreshed.
        until: Instant,
    },
    /// The last attempt failed and no binding is valid; retried at `retry_at`.
    Failed {
        /// Status code (408 when the registrar did not answer).
        code: u16,
        /// Why, for people.
        reason: String,
        /// When the next attempt goes out.
        retry_at: Instant,
    },
}

impl RegistrationState {
    /// Short name for APIs and logs: `unregistered`, `registering`, `registered`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            RegistrationState::Unregistered => "unregistered",
            RegistrationState::Registering => "registering",
            RegistrationState::Registered { .. } => "registered",
            RegistrationState::Failed { .. } => "failed",
        }
    }

    /// Whether calls can be expected to arrive (`Registered`).
    pub fn is_up(&self) -> bool {
        matches!(self, RegistrationState::Registered { .. })
    }
}

/// What happened, as fed to [`Registration::handle`].
#[derive(Debug, Clone)]
pub enum Input {
    /// Start registering (ignored when already started or shut down).
    Start,
    /// A response for this registration's `Call-ID`. Provisional responses and responses to
    /// an earlier REGISTER than the last one sent are ignored.
    Response(Box<Response>),
    /// The last REGISTER got no final response (transaction timeout or transport error).
    Timeout,
    /// The time returned by [`Registration::poll_timeout`] has come.
    Tick,
    /// Stop: unregister if a binding may exist, then [`Registration::is_done`].
    Shutdown,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this REGISTER in a new client transaction to the registrar.
    Send(Box<Request>),
    /// The state changed (for the API, metrics, logs).
    State(RegistrationState),
}

#[derive(Debug, Clone)]
struct InFlight {
    cseq: u32,
    request: Request,
    unregister: bool,
}

/// The REGISTER client of one trunk.
#[derive(Debug)]
pub struct Registration {
    cfg: RegistrationConfig,
    from_tag: String,
    cseq: u32,
    /// Expiry currently asked for (grows after a 423).
    expires: u32,
    auth: Option<ClientAuth>,
    state: RegistrationState,
    in_flight: Option<InFlight>,
    /// When the next refresh or retry goes out.
    next_send: Option<Instant>,
    /// Until when the registrar holds our binding.
    binding_until: Option<Instant>,
    failures: u32,
    last_error: Option<(u16, String)>,
    started: bool,
    shutting_down: bool,
    done: bool,
    out: VecDeque<Output>,
    rng: u64,
}

impl Registration {
    /// A registration that has not started (send [`Input::Start`]).
    pub fn new(cfg: RegistrationConfig) -> Registration {
        Registration {
            from_tag: new_tag(),
            cseq: 0,
            expires: cfg.expires,
            auth: cfg.credentials.clone().map(ClientAuth::new),
            state: RegistrationState::Unregistered,
            in_flight: None,
            next_send: None,
            binding_until: None,
            failures: 0,
            last_error: None,
            started: false,
            shutting_down: false,
            done: false,
            out: VecDeque::new(),
            rng: cfg.seed,
            cfg,
        }
    }

    /// The current state.
    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// The latest failure since the last success (status code and reason).
    pub fn last_error(&self) -> Option<(u16, &str)> {
        self.last_error.as_ref().map(|(c, r)| (*c, r.as_str()))
    }

    /// Until when the registrar holds our binding, if it does.
    pub fn registered_until(&self) -> Option<Instant> {
        self.binding_until
    }

    /// The expiry currently asked for (the configured one, or a registrar's `Min-Expires`).
    pub fn expires(&self) -> u32 {
        self.expires
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The `Call-ID` of every REGISTER.
    pub fn call_id(&self) -> &str {
        &self.cfg.call_id
    }

    /// After [`Input::Shutdown`]: the unregistration is finished (or was not needed).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to feed [`Input::Tick`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shutting_down {
            return None;
        }
        let binding = match self.state {
            RegistrationState::Registered { .. } => self.binding_until,
            _ => None,
        };
        match (self.next_send, binding) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Feed an input.
    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Start => {
                if self.started || self.shutting_down {
                    return;
                }
                self.started = true;
                self.set_state(RegistrationState::Registering);
                self.send(false);
            }
            Input::Response(resp) => self.on_response(&resp, now),
            Input::Timeout => {
                let Some(flight) = self.in_flight.take() else {
                    return;
                };
                if flight.unregister {
                    self.done = true;
                } else {
                    self.fail(408, "no response from the registrar".into(), None, now);
                }
            }
            Input::Tick => self.on_tick(now),
            Input::Shutdown => self.shutdown(now),
        }
    }

    fn set_state(&mut self, state: RegistrationState) {
        if self.state != state {
            self.state = state.clone();
            self.out.push_back(Output::State(state));
        }
    }

    fn binding_valid(&self, now: Instant) -> bool {
        self.binding_until.is_some_and(|u| u > now)
    }

    fn on_tick(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        if self.binding_until.is_some_and(|u| u <= now) {
            self.binding_until = None;
            let state = match (&self.last_error, self.next_send) {
                (Some((code, reason)), Some(retry_at)) if self.in_flight.is_none() => {
                    RegistrationState::Failed {
                        code: *code,
                        reason: reason.clone(),
                        retry_at,
                    }
                }
                _ => RegistrationState::Registering,
            };
            self.set_state(state);
        }
        if self.in_flight.is_none() && self.next_send.is_some_and(|t| t <= now) {
            self.send(false);
        }
    }

    fn shutdown(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.next_send = None;
        // An unanswered REGISTER may have created a binding too.
        let may_be_bound = self.binding_valid(now) || self.in_flight.is_some();
        self.binding_until = None;
        self.in_flight = None;
        self.set_state(RegistrationState::Unregistered);
        if may_be_bound {
            self.send(true);
        } else {
            self.done = true;
        }
    }

    /// Build and queue the next REGISTER (`Expires: 0` to unregister).
    fn send(&mut self, unregister: bool) {
        self.next_send = None;
        self.cseq = self.cseq.wrapping_add(1);
        let mut req = self.build(if unregister { 0 } else { self.expires });
        if let Some(auth) = &mut self.auth {
            auth.authorize_again(&mut req);
        }
        self.dispatch(req, unregister);
    }

    fn dispatch(&mut self, req: Request, unregister: bool) {
        let seq = cseq(&req).map(|(n, _)| n).unwrap_or(self.cseq);
        self.cseq = seq;
        self.in_flight = Some(InFlight {
            cseq: seq,
            request: req.clone(),
            unregister,
        });
        self.out.push_back(Output::Send(Box::new(req)));
    }

    fn build(&self, expires: u32) -> Request {
        let aor = format!("<{}>", self.cfg.aor);
        let mut headers: Vec<Header> = vec![
            make_header("Via", &self.cfg.via.value(&new_branch())),
            make_header("Max-Forwards", "70"),
            make_header("From", &format!("{aor};tag={}", self.from_tag)),
            make_header("To", &aor),
            make_header("Call-ID", &self.cfg.call_id),
            make_header("CSeq", &format!("{} REGISTER", self.cseq)),
            make_header("Contact", &format!("<{}>", self.cfg.contact)),
            make_header("Expires", &expires.to_string()),
        ];
        if let Some(ua) = &self.cfg.user_agent {
            headers.push(make_header("User-Agent", ua));
        }
        headers.push(make_header("Content-Length", "0"));
        Request {
            method: Method::Register,
            uri: self.cfg.registrar.clone(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }

    fn on_response(&mut self, resp: &Response, now: Instant) {
        let code = resp.status_code.code();
        let ours = match (&self.in_flight, cseq(resp)) {
            (Some(f), Some((n, Method::Register))) => {
                n == f.cseq && call_id(resp).as_deref() == Some(self.cfg.call_id.as_str())
            }
            _ => false,
        };
        if !ours || code < 200 {
            return;
        }
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        if flight.unregister {
            if matches!(code, 401 | 407) {
                if let Some(Ok(again)) = self.auth.as_mut().map(|a| a.retry(&flight.request, resp))
                {
                    self.dispatch(again, true);
                    return;
                }
            }
            self.done = true;
            return;
        }
        match code {
            200..=299 => self.on_success(resp, now),
            401 | 407 => {
                let Some(auth) = self.auth.as_mut() else {
                    self.fail(
                        code,
                        "the registrar asks for credentials, none are configured".into(),
                        None,
                        now,
                    );
                    return;
                };
                match auth.retry(&flight.request, resp) {
                    Ok(again) => self.dispatch(again, false),
                    Err(e) => self.fail(code, format!("authentication failed: {e}"), None, now),
                }
            }
            423 => {
                let min = header_value(resp, "Min-Expires").and_then(|v| v.trim().parse().ok());
                match min {
                    Some(m) if m > self.expires && m <= MAX_EXPIRES => {
                        self.expires = m;
                        self.send(false);
                    }
                    _ => self.fail(
                        code,
                        "Interval Too Brief without a usable Min-Expires".into(),
                        retry_after(resp),
                        now,
                    ),
                }
            }
            _ => self.fail(code, reason(resp), retry_after(resp), now),
        }
    }

    fn on_success(&mut self, resp: &Response, now: Instant) {
        let granted = self.granted(resp);
        if granted == 0 {
            self.fail(
                resp.status_code.code(),
                "the registrar kept no binding (expires 0)".into(),
                None,
                now,
            );
            return;
        }
        let g = Duration::from_secs(granted.into());
        let until = now + g;
        self.binding_until = Some(until);
        self.failures = 0;
        self.last_error = None;
        self.next_send = Some(now + refresh_after(g));
        self.set_state(RegistrationState::Registered { until });
    }

    /// The expiry the registrar granted (see the module docs).
    fn granted(&self, resp: &Response) -> u32 {
        let contacts: Vec<NameAddr> = list_values(resp, "Contact")
            .iter()
            .filter_map(|v| NameAddr::parse(v))
            .collect();
        let expires_of = |c: &NameAddr| c.param("expires").flatten()?.trim().parse::<u32>().ok();
        let mine = contacts.iter().find(|c| {
            c.rsip_uri()
                .is_some_and(|u| same_contact(&u, &self.cfg.contact))
        });
        let from_contact = match mine {
            Some(c) => expires_of(c),
            None if contacts.len() == 1 => contacts.first().and_then(expires_of),
            None => None,
        };
        from_contact
            .or_else(|| header_value(resp, "Expires").and_then(|v| v.trim().parse().ok()))
            .unwrap_or(self.expires)
    }

    fn fail(&mut self, code: u16, reason: String, retry_after: Option<Duration>, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let base = self.cfg.backoff.delay(self.failures);
        let jitter = self.cfg.backoff.jitter.clamp(0.0, 1.0) * self.next_unit();
        let mut delay = base.mul_f64(1.0 - jitter);
        if let Some(ra) = retry_after {
            delay = delay.max(ra.min(MAX_RETRY_AFTER));
        }
        let retry_at = now + delay;
        self.next_send = Some(retry_at);
        self.last_error = Some((code, reason.clone()));
        if !self.binding_valid(now) {
            self.binding_until = None;
            self.set_state(RegistrationState::Failed {
                code,
                reason,
                retry_at,
            });
        }
    }

    /// Uniform in [0, 1) from the seed (splitmix64).
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// When to refresh a binding granted for `granted`: `min(granted / 2, granted − 30 s)`, not
/// before `min(MIN_REFRESH, granted / 2)`.
pub fn refresh_after(granted: Duration) -> Duration {
    let half = granted / 2;
    let early = half.min(granted.saturating_sub(Duration::from_secs(30)));
    early.max(MIN_REFRESH.min(half))
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let v = header_value(resp, "Retry-After")?;
    let secs: u64 = v.split([';', '(']).next()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

fn reason(resp: &Response) -> String {
    match &resp.status_code {
        StatusCode::Other(_, r) if !r.is_empty() && r != "Other" => r.clone(),
        s => message::reason_phrase(s.code()).to_string(),
    }
}

/// Same user, host (case-insensitive) and port (5060 when absent).
fn same_contact(a: &rsip::Uri, b: &rsip::Uri) -> bool {
    let port = |u: &rsip::Uri| u.host_with_port.port.map(u16::from).unwrap_or(5060);
    a.user() == b.user()
        && a.host_with_port
            .host
            .to_string()
            .eq_ignore_ascii_case(&b.host_with_port.host.to_string())
        && port(a) == port(b)
}

#[cfg(test)]
mod tests;
