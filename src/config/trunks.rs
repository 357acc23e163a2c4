//! Trunks: the carriers or gateways customers are dialed through.

use std::net::SocketAddr;

use serde::Deserialize;

use super::Config;

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
    /// `udp`, `tcp` or `tls` (SIP over TLS, RFC 3261 §26: the carrier's
    /// certificate is verified against the public roots, or `tls_ca_file`).
    pub transport: String,
    /// PEM file of the CA(s) that sign the carrier's certificate, instead of
    /// the bundled public roots (a private PKI, a lab).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Verify the carrier's certificate (default). `false` accepts any
    /// certificate: the link is encrypted but anyone in the path can read
    /// it; only for labs.
    pub tls_verify: bool,
    /// Name the certificate must carry (and SNI sends). Default: `domain`,
    /// else the address's IP.
    pub tls_server_name: Option<String>,
    /// SRTP towards the carrier: `off` (default), `optional` or
    /// `mandatory` (as for agents).
    #[serde(deserialize_with = "super::srtp_policy")]
    pub srtp: ringback_media::sdp::SrtpPolicy,
    /// Digest user name the carrier gave you (enables answering 401/407).
    pub username: Option<String>,
    /// Digest password (or `password_file` / `password_env`).
    pub password: Option<String>,
    /// Read the password from this file (see `secrets`).
    pub password_file: Option<std::path::PathBuf>,
    /// Read the password from this environment variable.
    pub password_env: Option<String>,
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
            tls_ca_file: None,
            tls_verify: true,
            tls_server_name: None,
            srtp: ringback_media::sdp::SrtpPolicy::Off,
            username: None,
            password: None,
            password_file: None,
            password_env: None,
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

/// Make every trunk's `tls_ca_file` relative to the configuration's folder.
pub(super) fn resolve_paths(cfg: &mut Config, base: &std::path::Path) {
    let every = std::iter::once(&mut cfg.trunk).chain(cfg.trunks.values_mut());
    for t in every {
        if let Some(p) = &mut t.tls_ca_file {
            *p = super::resolve(base, p);
        }
    }
}

/// Check `[trunk]` and every `[trunks.NAME]`; the error names the key.
pub(super) fn validate(cfg: &Config) -> Result<(), String> {
    if cfg.trunks.contains_key(DEFAULT_TRUNK) {
        return Err(format!(
            "[trunks.{DEFAULT_TRUNK}]: that name means [trunk]; choose another"
        ));
    }
    let every = std::iter::once((DEFAULT_TRUNK, &cfg.trunk))
        .chain(cfg.trunks.iter().map(|(n, t)| (n.as_str(), t)));
    for (name, t) in every {
        let key = if name == DEFAULT_TRUNK {
            "trunk".to_string()
        } else {
            format!("trunks.{name}")
        };
        if !matches!(
            t.transport.to_ascii_lowercase().as_str(),
            "udp" | "tcp" | "tls"
        ) {
            return Err(format!(
                "{key}.transport `{}` must be udp, tcp or tls",
                t.transport
            ));
        }
        if t.transport.eq_ignore_ascii_case("tls") && cfg.sip.tls_listen.is_none() {
            return Err(format!(
                "{key}.transport = \"tls\" needs sip.tls_listen: the carrier sends BYE and re-INVITEs to our TLS address"
            ));
        }
        if name != DEFAULT_TRUNK && t.address.is_none() {
            return Err(format!("{key} needs an `address`"));
        }
        if t.username.is_some() != t.password.is_some() {
            return Err(format!(
                "{key}: set both `username` and `password`, or neither"
            ));
        }
        if t.register && (t.username.is_none() || t.address.is_none()) {
            return Err(format!(
                "{key}.register needs `address`, `username` and `password`"
            ));
        }
        if t.register && t.register_expires_secs < 60 {
            return Err(format!("{key}.register_expires_secs must be at least 60"));
        }
        match t.number_format.as_str() {
            "e164" => {}
            "national" if t.country_code.is_some() => {}
            "national" => {
                return Err(format!(
                    "{key}.number_format = \"national\" needs `country_code`"
                ))
            }
            other => {
                return Err(format!(
                    "{key}.number_format `{other}` must be e164 or national"
                ))
            }
        }
        if !matches!(t.dtmf.as_str(), "auto" | "inband") {
            return Err(format!("{key}.dtmf `{}` must be auto or inband", t.dtmf));
        }
    }
    Ok(())
}

impl Config {
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
}
