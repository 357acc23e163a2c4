//! `ringback.toml`: the server's own settings (listen addresses, RTP range,
//! queues, store). Dialplans live in their own files; this file holds what is
//! shared by all of them.
//!
//! Every key has a default that works on a laptop, so an empty file is a valid
//! configuration. Unknown keys are errors: a misspelled `rtp_timout` that is
//! silently ignored is worse than a refusal to start.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// SIP listener settings.
    pub sip: SipConfig,
    /// RTP media settings.
    pub rtp: RtpConfig,
    /// Where dialplans are read from.
    pub dialplans: DialplansConfig,
    /// Where prompts are read from.
    pub prompts: PromptsConfig,
    /// The store (SQLite file by default).
    pub database: DatabaseConfig,
    /// Call admission limits.
    pub limits: LimitsConfig,
    /// HTTP surface (metrics, health).
    pub api: ApiConfig,
    /// The queue that `0` (zero-out) reaches when a dialplan names none.
    pub operator_queue: Option<String>,
    /// Queues by name.
    pub queues: BTreeMap<String, QueueConfig>,
    /// Agents by SIP user name.
    pub agents: BTreeMap<String, AgentConfig>,
    /// Where customer callbacks are dialed (the default trunk).
    pub trunk: TrunkConfig,
    /// Further trunks by name, tried in `priority` order.
    pub trunks: BTreeMap<String, TrunkConfig>,
    /// Callback service settings.
    pub callbacks: CallbacksConfig,
}

/// A carrier or gateway that reaches customers' phones. `[trunk]` is the
/// default; more come as `[trunks.NAME]` and are tried by `priority` (lowest
/// first) when one fails with 5xx, 408 or no answer at all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrunkConfig {
    /// Gateway address (IP:port; no DNS lookups on the call path).
    pub address: Option<SocketAddr>,
    /// Host part of the Request-URI, To and (when registering) the AOR
    /// (default: the address).
    pub domain: Option<String>,
    /// Caller ID presented to customers (From user, and
    /// `P-Asserted-Identity` when `asserted_identity` is on).
    pub caller_id: String,
    /// Display name presented to customers.
    pub caller_name: Option<String>,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Digest user name the carrier gave you (enables answering 401/407).
    pub username: Option<String>,
    /// Digest password.
    pub password: Option<String>,
    /// Authentication user when it differs from `username` (some carriers
    /// register `username` but authenticate an account id).
    pub auth_username: Option<String>,
    /// Only answer challenges from this realm (default: any realm).
    pub realm: Option<String>,
    /// REGISTER to the carrier and keep the registration fresh.
    pub register: bool,
    /// Expiry asked for in REGISTER, in seconds (the carrier may shorten it).
    pub register_expires_secs: u32,
    /// Order among trunks: the lowest is tried first.
    pub priority: u32,
    /// How customer numbers are written in the Request-URI: `e164`
    /// (`+15551234567`) or `national` (country code replaced by
    /// `national_prefix`).
    pub number_format: String,
    /// Country code (digits, no `+`) that `national` strips.
    pub country_code: Option<String>,
    /// Prefix that replaces the country code in `national` format.
    pub national_prefix: String,
    /// Send `P-Asserted-Identity` with the caller ID (carriers that trust
    /// this server use it instead of From).
    pub asserted_identity: bool,
    /// `auto` (RFC 4733 when offered, tones in the audio otherwise) or
    /// `inband` (always listen for tones: gateways that never send events).
    pub dtmf: String,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        TrunkConfig {
            address: None,
            domain: None,
            caller_id: "ringback".into(),
            caller_name: None,
            transport: "udp".into(),
            username: None,
            password: None,
            auth_username: None,
            realm: None,
            register: false,
            register_expires_secs: 600,
            priority: 0,
            number_format: "e164".into(),
            country_code: None,
            national_prefix: "0".into(),
            asserted_identity: false,
            dtmf: "auto".into(),
        }
    }
}

/// Name under which `[trunk]` appears next to `[trunks.NAME]`.
pub const DEFAULT_TRUNK: &str = "default";

/// Callback service settings shared by all queues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// This node's name in leases and history (default: hostname-pid).
    pub node_id: Option<String>,
    /// How long a node holds a callback it is dialing before another node
    /// may take it over.
    pub lease_secs: u64,
    /// How often to look for callbacks created by other nodes.
    pub sync_secs: u64,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            node_id: None,
            lease_secs: 60,
            sync_secs: 5,
        }
    }
}

/// One agent: a SIP user who registers a phone and takes queue calls.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Digest password (works with MD5 and SHA-256 phones).
    pub password: Option<String>,
    /// MD5 HA1 (`md5(user:realm:password)`) instead of a plain password.
    pub ha1: Option<String>,
    /// Name shown to supervisors.
    pub display_name: Option<String>,
    /// Skill levels 1–10, for skills-based queues.
    pub skills: BTreeMap<String, u8>,
    /// Queues this agent serves.
    pub queues: Vec<String>,
    /// Wrap-up seconds after a call (overrides the queue's).
    pub wrapup_secs: Option<u64>,
    /// Log in automatically when the phone registers (default true).
    pub auto_login: Option<bool>,
    /// Digest algorithms offered to this agent's phone (overrides
    /// `sip.auth_algorithms`).
    pub auth_algorithms: Option<Vec<String>>,
}

/// SIP transport settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address for both UDP and TCP. Port 0 picks a free port (tests use it).
    pub listen: SocketAddr,
    /// Address advertised in Via/Contact/SDP when ringback sits behind NAT.
    pub external_ip: Option<IpAddr>,
    /// `User-Agent`/`Server` header value.
    pub user_agent: String,
    /// Ring for this long (180 Ringing) before answering. 0 answers at once.
    pub answer_delay_ms: u64,
    /// Digest realm agents authenticate in.
    pub realm: String,
    /// Digest algorithms offered to phones, in order (RFC 7616 / RFC 8760:
    /// a phone uses the first one it supports). MD5 comes first by default
    /// because many phones (and SIPp) only read the first challenge and only
    /// know MD5; put `"SHA-256"` first when all your phones support it.
    pub auth_algorithms: Vec<String>,
    /// Largest SIP message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Enable the TCP transport alongside UDP.
    pub tcp: bool,
    /// When not empty, only these networks (CIDR, e.g. `"203.0.113.0/24"`,
    /// or single addresses) may send INVITEs and REGISTERs; anyone else gets
    /// 403 before any other work (toll-fraud protection).
    pub allow_from: Vec<String>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            external_ip: None,
            user_agent: format!("ringback/{}", env!("CARGO_PKG_VERSION")),
            answer_delay_ms: 0,
            realm: "ringback".into(),
            auth_algorithms: vec!["MD5".into(), "SHA-256".into()],
            max_message_bytes: 65_535,
            tcp: true,
            allow_from: Vec::new(),
        }
    }
}

/// RTP settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// Local address RTP sockets bind to (never a wildcard in SDP: see `external_ip`).
    pub ip: IpAddr,
    /// First port of the RTP range (inclusive, even ports are used).
    pub port_min: u16,
    /// Last port of the RTP range (inclusive).
    pub port_max: u16,
    /// Hang up when no RTP arrives for this long (0 disables). Held calls
    /// (`a=sendonly`/`inactive`) are never timed out.
    pub timeout_secs: u64,
    /// Media clock threads; 0 = one per CPU core.
    pub threads: usize,
    /// `SCHED_FIFO` priority (1–99) of the media clock threads, so other
    /// work on a busy machine cannot hold a packet back by a scheduler time
    /// slice (the clocks sleep between 1 ms phases, so they never hog a
    /// core; admission control refuses new calls long before they could).
    /// Needs root or `CAP_SYS_NICE`; without it ringback tries nice -10,
    /// then runs at normal priority, and logs which it got. 0: normal priority.
    pub realtime_priority: u8,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 20_000,
            port_max: 39_999,
            timeout_secs: 60,
            threads: 0,
            realtime_priority: 10,
        }
    }
}

/// Dialplan directory and reload settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialplansConfig {
    /// Directory of `*.toml` dialplans.
    pub dir: PathBuf,
    /// Reload automatically when a file in `dir` or the prompts directory changes.
    pub watch: bool,
}

impl Default for DialplansConfig {
    fn default() -> Self {
        DialplansConfig {
            dir: PathBuf::from("dialplans"),
            watch: true,
        }
    }
}

/// Prompt directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    /// Directory of `<name>.wav` prompts (any rate and channel count).
    pub dir: PathBuf,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            dir: PathBuf::from("prompts"),
        }
    }
}

/// The store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created on first run) or `postgres://…`.
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/ringback.db".into(),
        }
    }
}

/// HTTP listener for `/metrics` and `/healthz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on; keep it on loopback unless a proxy guards it.
    pub listen: SocketAddr,
    /// Serve HTTP at all.
    pub enabled: bool,
    /// Bearer tokens and their roles. None configured = no token needed
    /// (keep the listener on loopback then).
    pub tokens: Vec<ApiToken>,
}

/// One API bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// The secret (compared in constant time).
    pub token: String,
    /// `admin` (everything), `supervisor` (read + agent and callback
    /// actions) or `agent` (its own state and context only).
    pub role: Role,
    /// For `agent` tokens: which agent.
    pub agent: Option<String>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including dialplan reloads.
    Admin,
    /// Read everything; change agents and callbacks.
    Supervisor,
    /// Its own agent only.
    Agent,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            enabled: true,
            tokens: Vec::new(),
        }
    }
}

/// Admission control and resource limits (see `admission.rs`). Every
/// refusal of a new call is a 503 with `Retry-After`; calls in progress are
/// never touched. 0 disables a limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Above this many concurrent calls new INVITEs get 503 + Retry-After.
    pub max_calls: usize,
    /// New calls admitted per second (token bucket, a quarter second of
    /// burst). Above it: 503 + Retry-After: 1.
    pub max_call_rate: f64,
    /// SIP transactions alive at once; above it new calls and REGISTERs get 503.
    pub max_transactions: usize,
    /// When a media clock ran this many ms late within the last second, new
    /// calls get 503 so the calls in progress keep their audio. 100 ms is
    /// five packets: a clock that far behind is overloaded. (With 20 ms, a
    /// soak at half load on a 2-core VM refused 18 % of new calls because of
    /// short scheduling stalls; the busy-share limit covers real overload.)
    pub max_media_lag_ms: u64,
    /// When a media clock thread was busy for more than this percentage of
    /// the last second, new calls get 503: the calls in progress keep the
    /// headroom their audio needs.
    pub max_media_load_pct: u8,
    /// When a SIP datagram waited this many ms in the receive queue within
    /// the last second (signalling is falling behind), new calls and
    /// REGISTERs get 503; in-dialog requests (ACK, BYE) still go through so
    /// calls in progress end cleanly. Well under T1 (500 ms), where phones
    /// start retransmitting.
    pub max_sip_delay_ms: u64,
    /// REGISTERs per second from one source IP (twice that as a burst);
    /// above it: 503 + Retry-After (a registration flood never reaches the
    /// digest check).
    pub max_registers_per_source: f64,
    /// Open SIP TCP connections in total; further connections are closed at once.
    pub max_tcp_connections: usize,
    /// Open SIP TCP connections from one source IP.
    pub max_tcp_connections_per_source: usize,
    /// Close a TCP connection after this many seconds without a byte
    /// (phones send CRLF keep-alives well within it, RFC 5626).
    pub tcp_idle_secs: u64,
    /// Close a TCP connection whose started message has not completed
    /// within this many seconds (slow-loris).
    pub tcp_message_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_calls: 10_000,
            max_call_rate: 0.0,
            max_transactions: 100_000,
            max_media_lag_ms: 100,
            max_media_load_pct: 80,
            max_sip_delay_ms: 200,
            max_registers_per_source: 20.0,
            max_tcp_connections: 4_096,
            max_tcp_connections_per_source: 64,
            tcp_idle_secs: 600,
            tcp_message_secs: 10,
        }
    }
}

/// One queue. Routing to agents arrives with the ACD; until then a queued
/// caller hears `music_on_hold` with periodic `announce` prompts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Name shown to supervisors.
    pub display_name: Option<String>,
    /// Prompt looped while waiting.
    pub music_on_hold: String,
    /// Prompt played once when the caller enters the queue.
    pub entry_prompt: Option<String>,
    /// Seconds a caller may wait before the dialplan's `on_timeout` runs.
    pub max_wait_secs: Option<u64>,
    /// `longest-idle` (default), `round-robin`, `fewest-calls`, `ring-all`,
    /// `random` or `skills-based`.
    pub strategy: String,
    /// Skills an agent needs (minimum levels) for `skills-based`.
    pub required_skills: BTreeMap<String, u8>,
    /// Seconds an agent's phone rings before the next agent is tried.
    pub ring_timeout_secs: u64,
    /// Most callers waiting at once; more are sent to the overflow.
    pub max_len: Option<usize>,
    /// Seconds of wrap-up after each call.
    pub wrapup_secs: u64,
    /// Announce position and estimated wait this often (0 = never).
    pub announce_every_secs: u64,
    /// Consecutive unanswered offers before an agent is paused.
    pub auto_pause_after: u32,
    /// Route a repeat caller to the agent who last helped them within this
    /// many hours (0 = off).
    pub sticky_hours: u64,
    /// How long a repeat caller may wait for that agent to become free.
    pub sticky_wait_secs: u64,
    /// When nobody is logged in, the queue is full or the wait is over:
    /// another queue to try.
    pub overflow_queue: Option<String>,
    /// … or a prompt to play before the dialplan continues.
    pub overflow_prompt: Option<String>,
    /// Callback policy (attempts, backoff, dialing window, guards).
    pub callback: Option<ringback_callback::Policy>,
    /// Offer a callback at once when the caller's estimated wait is above
    /// this many seconds (even if the dialplan's queue node offers none).
    pub callback_offer_ewt_above_secs: Option<u64>,
    /// Offer a callback at once to a caller who zeroed out while no agent
    /// of this queue is free.
    pub callback_offer_on_zero_out: bool,
}

/// Strategy names accepted in `queues.<name>.strategy`.
pub const STRATEGIES: &[&str] = &[
    "longest-idle",
    "round-robin",
    "fewest-calls",
    "ring-all",
    "random",
    "skills-based",
];

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            display_name: None,
            music_on_hold: "hold-music".into(),
            entry_prompt: Some("please-hold".into()),
            max_wait_secs: None,
            strategy: "longest-idle".into(),
            required_skills: BTreeMap::new(),
            ring_timeout_secs: 15,
            max_len: None,
            wrapup_secs: 5,
            announce_every_secs: 30,
            auto_pause_after: 3,
            sticky_hours: 0,
            sticky_wait_secs: 10,
            overflow_queue: None,
            overflow_prompt: None,
            callback: None,
            callback_offer_ewt_above_secs: None,
            callback_offer_on_zero_out: false,
        }
    }
}

/// A configuration error, already formatted as `file:line:col: message`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Read and validate `path`. A missing file is an error (the caller
    /// decides whether defaults are acceptable).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(path, &text)
    }

    /// Parse configuration text; `path` is used in messages and to resolve
    /// relative directories.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError(format!("{}:{line}:{col}: {}", path.display(), e.message()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.dialplans.dir = resolve(base, &cfg.dialplans.dir);
        cfg.prompts.dir = resolve(base, &cfg.prompts.dir);
        if let Some(rest) = cfg.database.url.strip_prefix("sqlite://") {
            if !rest.starts_with('/') && !rest.starts_with(":memory:") {
                cfg.database.url = format!("sqlite://{}", resolve(base, Path::new(rest)).display());
            }
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(format!("{}: {m}", path.display())));
        if self.rtp.port_min > self.rtp.port_max || self.rtp.port_max - self.rtp.port_min < 2 {
            return err(format!(
                "rtp.port_min ({}) must be below rtp.port_max ({}) with room for at least one call",
                self.rtp.port_min, self.rtp.port_max
            ));
        }
        if self.rtp.ip.is_unspecified() && self.sip.external_ip.is_none() {
            return err(
                "rtp.ip is a wildcard address; set sip.external_ip so SDP advertises a reachable address"
                    .into(),
            );
        }
        if let Some(op) = &self.operator_queue {
            if !self.queues.contains_key(op) {
                return err(format!(
                    "operator_queue `{op}` is not defined under [queues.{op}]"
                ));
            }
        }
        if self.sip.auth_algorithms.is_empty()
            || self.sip.auth_algorithms.iter().any(|a| !valid_algorithm(a))
        {
            return err(format!(
                "sip.auth_algorithms {:?}: list \"SHA-256\" and/or \"MD5\"",
                self.sip.auth_algorithms
            ));
        }
        // sip.allow_from: CIDRs or single addresses (src/allow.rs).
        if let Err(e) = crate::allow::AllowList::parse(&self.sip.allow_from) {
            return err(e);
        }
        for (name, q) in &self.queues {
            if !STRATEGIES.contains(&q.strategy.as_str()) {
                return err(format!(
                    "queues.{name}.strategy `{}` is not one of {}",
                    q.strategy,
                    STRATEGIES.join(", ")
                ));
            }
            if q.ring_timeout_secs == 0 {
                return err(format!(
                    "queues.{name}.ring_timeout_secs must be at least 1"
                ));
            }
            if let Some(o) = &q.overflow_queue {
                if !self.queues.contains_key(o) || o == name {
                    return err(format!(
                        "queues.{name}.overflow_queue `{o}` must name another defined queue"
                    ));
                }
            }
        }
        for (name, a) in &self.agents {
            if let Some(list) = &a.auth_algorithms {
                if list.is_empty() || list.iter().any(|x| !valid_algorithm(x)) {
                    return err(format!(
                        "agents.{name}.auth_algorithms {list:?}: list \"SHA-256\" and/or \"MD5\""
                    ));
                }
            }
            if a.password.is_none() && a.ha1.is_none() {
                return err(format!("agents.{name} needs `password` or `ha1`"));
            }
            for q in &a.queues {
                if !self.queues.contains_key(q) {
                    return err(format!(
                        "agents.{name}.queues names `{q}`, which is not defined under [queues]"
                    ));
                }
            }
            if let Some((skill, level)) = a.skills.iter().find(|(_, l)| !(1..=10).contains(*l)) {
                return err(format!(
                    "agents.{name}.skills.{skill} = {level}: levels are 1 to 10"
                ));
            }
        }
        if self.trunks.contains_key(DEFAULT_TRUNK) {
            return err(format!(
                "[trunks.{DEFAULT_TRUNK}]: that name means [trunk]; choose another"
            ));
        }
        let every = std::iter::once((DEFAULT_TRUNK, &self.trunk))
            .chain(self.trunks.iter().map(|(n, t)| (n.as_str(), t)));
        for (name, t) in every {
            let key = if name == DEFAULT_TRUNK {
                "trunk".to_string()
            } else {
                format!("trunks.{name}")
            };
            if !matches!(t.transport.to_ascii_lowercase().as_str(), "udp" | "tcp") {
                return err(format!(
                    "{key}.transport `{}` must be udp or tcp",
                    t.transport
                ));
            }
            if name != DEFAULT_TRUNK && t.address.is_none() {
                return err(format!("{key} needs an `address`"));
            }
            if t.username.is_some() != t.password.is_some() {
                return err(format!(
                    "{key}: set both `username` and `password`, or neither"
                ));
            }
            if t.register && (t.username.is_none() || t.address.is_none()) {
                return err(format!(
                    "{key}.register needs `address`, `username` and `password`"
                ));
            }
            if t.register && t.register_expires_secs < 60 {
                return err(format!("{key}.register_expires_secs must be at least 60"));
            }
            match t.number_format.as_str() {
                "e164" => {}
                "national" if t.country_code.is_some() => {}
                "national" => {
                    return err(format!(
                        "{key}.number_format = \"national\" needs `country_code`"
                    ))
                }
                other => {
                    return err(format!(
                        "{key}.number_format `{other}` must be e164 or national"
                    ))
                }
            }
            if !matches!(t.dtmf.as_str(), "auto" | "inband") {
                return err(format!("{key}.dtmf `{}` must be auto or inband", t.dtmf));
            }
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            return err(format!(
                "database.url `{}` must start with sqlite:// or postgres://",
                self.database.url
            ));
        }
        Ok(())
    }

    /// Every usable trunk, `[trunk]` (as `default`, when it has an
    /// address) and `[trunks.NAME]`, in the order calls try them: by
    /// `priority`, then by name.
    pub fn all_trunks(&self) -> Vec<(&str, &TrunkConfig)> {
        let mut v: Vec<(&str, &TrunkConfig)> =
            self.trunks.iter().map(|(n, t)| (n.as_str(), t)).collect();
        if self.trunk.address.is_some() {
            v.push((DEFAULT_TRUNK, &self.trunk));
        }
        v.sort_by(|a, b| a.1.priority.cmp(&b.1.priority).then(a.0.cmp(b.0)));
        v
    }

    /// The address put into SDP and Contact headers.
    pub fn advertised_ip(&self) -> IpAddr {
        self.sip.external_ip.unwrap_or(self.rtp.ip)
    }
}

/// A digest algorithm name ringback offers.
fn valid_algorithm(name: &str) -> bool {
    matches!(name.to_ascii_uppercase().as_str(), "MD5" | "SHA-256")
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let upto = &text[..offset.min(text.len())];
    let line = upto.matches('\n').count() + 1;
    let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_valid() {
        let c = Config::parse(Path::new("/etc/ringback/ringback.toml"), "").unwrap();
        assert_eq!(c.sip.listen.port(), 5060);
        assert_eq!(c.dialplans.dir, PathBuf::from("/etc/ringback/dialplans"));
        assert_eq!(c.database.url, "sqlite:///etc/ringback/data/ringback.db");
    }

    #[test]
    fn unknown_key_has_location() {
        let e = Config::parse(Path::new("r.toml"), "[rtp]\nport_min = 10\nport_mx = 20\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.toml:3:1: unknown field `port_mx`"), "{e}");
    }

    #[test]
    fn operator_queue_must_exist() {
        let e = Config::parse(Path::new("r.toml"), "operator_queue = \"ops\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("operator_queue `ops` is not defined"), "{e}");
    }

    #[test]
    fn agent_algorithms_are_checked() {
        let e = Config::parse(
            Path::new("r.toml"),
            "[agents.bob]\npassword = \"x\"\nauth_algorithms = [\"SHA-512\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("agents.bob.auth_algorithms"), "{e}");
        let ok = Config::parse(
            Path::new("r.toml"),
            "[agents.bob]\npassword = \"x\"\nauth_algorithms = [\"SHA-256\", \"MD5\"]\n",
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn bad_rtp_range() {
        let e = Config::parse(
            Path::new("r.toml"),
            "[rtp]\nport_min = 30000\nport_max = 20000\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rtp.port_min"), "{e}");
    }

    #[test]
    fn allow_from_entries_are_checked() {
        let ok = Config::parse(
            Path::new("r.toml"),
            "[sip]\nallow_from = [\"203.0.113.0/24\", \"198.51.100.7\", \"2001:db8::/32\"]\n",
        )
        .unwrap();
        assert_eq!(ok.sip.allow_from.len(), 3);
        let e = Config::parse(
            Path::new("r.toml"),
            "[sip]\nallow_from = [\"127.0.0.1\", \"::1\", \"10.0.0.300/8\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("r.toml: sip.allow_from[2] \"10.0.0.300/8\": "),
            "{e}"
        );
        let e = Config::parse(
            Path::new("r.toml"),
            "[sip]\nallow_from = [\"10.0.0.1/8\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("the network is 10.0.0.0/8"), "{e}");
    }
}
