//! `ringback.toml`: the server's own settings (listen addresses, RTP range,
//! queues, store). Dialplans live in their own files; this file holds what is
//! shared by all of them.
//!
//! Every key has a default that works on a laptop, so an empty file is a valid
//! configuration. Unknown keys are errors: a misspelled `rtp_timout` that is
//! silently ignored is worse than a refusal to start.
//!
//! One module per part of the file: `network` (`[sip]`, `[rtp]`,
//! `[limits]`), `files` (`[dialplans]`, `[prompts]`, `[database]`), `api`
//! (`[api]` and its tokens), `queues` (`[queues.*]`, `[agents.*]`,
//! `[callbacks]`), `trunks` (`[trunk]`, `[trunks.*]`), `stats`
//! (`[stats]`), `languages` (`[languages.*]`) and, in `files`,
//! `[customers]`. Each type deserialises
//! itself, so a wrong value is reported at its line and column; what
//! needs the whole file (cross-references, combinations) is checked by
//! `Config::parse` afterwards.

mod api;
mod cluster;
mod files;
mod languages;
mod lookups;
mod network;
mod queues;
pub mod recording;
mod secrets;
mod stats;
mod trunks;
mod webrtc;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::api::{split_authority, ApiConfig, ApiToken, HostPattern, OriginPattern, Role};
pub use self::cluster::{AgentProxy, ClusterConfig};
pub use self::files::{CustomersConfig, DatabaseConfig, DialplansConfig, PromptsConfig};
pub use self::languages::{language_skills, LanguageConfig};
pub use self::lookups::{LookupConfig, LookupMethod};
pub use self::network::{LimitsConfig, RtpConfig, SipConfig};
pub use self::queues::{AgentConfig, CallbacksConfig, QueueConfig, RingDevices};
pub use self::stats::StatsConfig;
pub use self::trunks::TrunkConfig;
pub use self::webrtc::{IceServer, WebRtcConfig};

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
    /// What "today" means for the live figures.
    pub stats: StatsConfig,
    /// The customer directory's refresh.
    pub customers: CustomersConfig,
    /// Browser calls: the agent page's phone and the public `/call` page.
    pub webrtc: WebRtcConfig,
    /// HTTP endpoints of dialplan `lookup` nodes, by name.
    pub lookups: BTreeMap<String, LookupConfig>,
    /// What callers' languages require (an agent skill), by tag.
    pub languages: BTreeMap<String, LanguageConfig>,
    /// Several nodes behind a SIP proxy: agents through it, drains.
    pub cluster: ClusterConfig,
    /// Call recordings: directory and retention.
    pub recording: recording::RecordingConfig,
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

    /// This node's identity (`[callbacks] node_id`, default
    /// `<hostname>-<pid>`): on its call records, callback leases and
    /// callback history, and what start-up recovery goes by. Computed once
    /// by the server at start-up (the default changes with every process).
    pub fn node_id(&self) -> String {
        self.callbacks.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "node".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// Parse configuration text; `path` is used in messages and to resolve
    /// relative directories.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError(format!("{}:{line}:{col}: {}", path.display(), e.message()))
        })?;
        queues::complete(&mut cfg);
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.dialplans.dir = resolve(base, &cfg.dialplans.dir);
        cfg.prompts.dir = resolve(base, &cfg.prompts.dir);
        cfg.sip.resolve_paths(base);
        trunks::resolve_paths(&mut cfg, base);
        if let Some(rest) = cfg.database.url.strip_prefix("sqlite://") {
            if !rest.starts_with('/') && !rest.starts_with(":memory:") {
                cfg.database.url = format!("sqlite://{}", resolve(base, Path::new(rest)).display());
            }
        }
        recording::resolve_paths(&mut cfg, base);
        // Secrets from `*_file` / `*_env` (config/secrets.rs), then what
        // `[api]` needs the whole file for.
        secrets::resolve_all(&mut cfg, base)
            .and_then(|()| api::complete(&mut cfg.api, base, &cfg.database.url))
            .map_err(|m| ConfigError(format!("{}: {m}", path.display())))?;
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
        if let Err(e) = self.sip.validate_tls() {
            return err(e);
        }
        // sip.allow_from: CIDRs or single addresses (src/allow.rs).
        if let Err(e) = crate::allow::AllowList::parse(&self.sip.allow_from) {
            return err(e);
        }
        if let Err(e) = queues::validate_queues(self)
            .and_then(|()| queues::validate_agents(self))
            .and_then(|()| webrtc::validate(&self.webrtc))
            .and_then(|()| trunks::validate(self))
            .and_then(|()| lookups::validate(&self.lookups))
            .and_then(|()| languages::validate(self))
            .and_then(|()| cluster::validate(self))
        {
            return err(e);
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

    /// The address put into SDP and Contact headers.
    pub fn advertised_ip(&self) -> IpAddr {
        self.sip.external_ip.unwrap_or(self.rtp.ip)
    }
}

/// A digest algorithm name ringback offers.
fn valid_algorithm(name: &str) -> bool {
    matches!(name.to_ascii_uppercase().as_str(), "MD5" | "SHA-256")
}

/// An SRTP policy from its configuration spelling (`off`, `optional`,
/// `mandatory`); anything else is a `file:line:col` error naming the three.
fn srtp_policy<'de, D>(d: D) -> Result<ringback_media::sdp::SrtpPolicy, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = <String as serde::Deserialize>::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
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
