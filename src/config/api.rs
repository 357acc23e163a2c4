//! The HTTP listener, its bearer tokens and who may reach it (`[api]`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// HTTP listener for `/metrics`, `/healthz`, the pages and the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on; keep it on loopback unless a proxy guards it.
    pub listen: SocketAddr,
    /// Serve HTTP at all.
    pub enabled: bool,
    /// Bearer tokens and their roles. None configured (and not `open`): an
    /// admin token is generated into `admin_token_file` and required.
    pub tokens: Vec<ApiToken>,
    /// Serve `/api/*` without any token, everyone an admin. Dangerous:
    /// anything that can reach the listener can change agents, callbacks
    /// and dialplans. Cannot be combined with `tokens`.
    pub open: bool,
    /// More `Host` names the API answers to (`name` or `name:port`; a name
    /// without a port matches any port), besides its own listen address,
    /// `localhost`, `127.0.0.1` and `[::1]` on its port.
    pub allowed_hosts: Vec<HostPattern>,
    /// More page origins (`https://ops.example.com`) that may call the API
    /// from a browser, besides `http(s)://` any allowed host.
    pub allowed_origins: Vec<OriginPattern>,
    /// Where the generated admin token is kept (default: `api-token` next
    /// to the SQLite database, or `data/api-token` beside this file).
    pub admin_token_file: Option<PathBuf>,
}

/// One API bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// The secret (compared in constant time); or `token_file` /
    /// `token_env`, resolved into this field when the file is read.
    #[serde(default)]
    pub token: String,
    /// Read the secret from this file (trailing newline dropped).
    pub token_file: Option<PathBuf>,
    /// Read the secret from this environment variable.
    pub token_env: Option<String>,
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
            open: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            admin_token_file: None,
        }
    }
}

/// An allowed `Host`: a name or address (lower case), and a port unless
/// any port will do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPattern {
    /// Lower-case name, IPv4 address or bracketed IPv6 address.
    pub host: String,
    /// `None`: any port.
    pub port: Option<u16>,
}

impl HostPattern {
    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        if s.contains("://") || s.contains('/') {
            return Err(format!(
                "{s:?}: write a host name or host:port, without a scheme or path"
            ));
        }
        let (host, port) =
            split_authority(s).ok_or_else(|| format!("{s:?}: not a host name or host:port"))?;
        Ok(HostPattern { host, port })
    }

    /// For the default list: exactly this address and port.
    pub fn exact(host: &str, port: u16) -> HostPattern {
        HostPattern {
            host: host.to_ascii_lowercase(),
            port: Some(port),
        }
    }

    /// Whether a request's (host, port) is this one; `port` is the
    /// effective port (80 for a `Host` without one).
    pub fn matches(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        HostPattern::parse(&s)
    }
}

/// An allowed browser origin: `http` or `https`, a host and its port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OriginPattern {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

impl OriginPattern {
    /// `http(s)://host[:port]` (no path; a trailing `/` is tolerated).
    pub fn parse(s: &str) -> Result<OriginPattern, String> {
        let bad = || format!("{s:?}: write an origin such as \"https://ops.example.com\"");
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad()),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad());
        }
        let (host, port) = split_authority(rest).ok_or_else(bad)?;
        Ok(OriginPattern {
            scheme,
            host,
            port: port.unwrap_or(default_port),
        })
    }
}

impl TryFrom<String> for OriginPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        OriginPattern::parse(&s)
    }
}

/// Split `host[:port]` (IPv6 in brackets) into a lower-case host and an
/// optional port; `None` when it is not one.
pub fn split_authority(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{v6}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let valid = !host.is_empty()
        && (host.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    valid.then(|| (host.to_ascii_lowercase(), port))
}

/// What deserialisation cannot do alone: the generated token's default
/// place and the checks that need the whole `[api]` table. Runs after the
/// secrets are read.
pub(super) fn complete(api: &mut ApiConfig, base: &Path, database_url: &str) -> Result<(), String> {
    let file = match api.admin_token_file.take() {
        Some(f) => super::resolve(base, &f),
        None => default_admin_token_file(base, database_url),
    };
    api.admin_token_file = Some(file);
    if api.open && !api.tokens.is_empty() {
        return Err("api.open = true and [[api.tokens]] contradict each other: remove one".into());
    }
    for (i, t) in api.tokens.iter().enumerate() {
        if t.token.trim().is_empty() {
            return Err(format!(
                "api.tokens[{i}]: the token is empty (set `token`, `token_file` or `token_env`)"
            ));
        }
    }
    Ok(())
}

/// `api-token` next to the SQLite file; `data/api-token` beside the
/// configuration file for PostgreSQL or an in-memory database.
fn default_admin_token_file(base: &Path, database_url: &str) -> PathBuf {
    let sqlite = database_url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.starts_with(":memory:"));
    match sqlite.and_then(|p| Path::new(p).parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => super::resolve(base, dir).join("api-token"),
        _ => base.join("data").join("api-token"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn hosts_and_origins_parse() {
        let h = HostPattern::parse("Ops.Example.com").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("ops.example.com", None));
        assert!(h.matches("ops.example.com", 8443));
        let h = HostPattern::parse("[::1]:8080").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("[::1]", Some(8080)));
        assert!(!h.matches("[::1]", 80));
        assert!(HostPattern::parse("http://x").is_err());
        assert!(HostPattern::parse("x:99999").is_err());
        assert!(HostPattern::parse("").is_err());
        let o = OriginPattern::parse("HTTPS://ops.example.com/").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.host.as_str(), o.port),
            ("https", "ops.example.com", 443)
        );
        assert!(OriginPattern::parse("ops.example.com").is_err());
        assert!(OriginPattern::parse("ftp://x").is_err());
        assert!(OriginPattern::parse("http://x/path").is_err());
    }

    #[test]
    fn a_bad_allowed_host_is_an_error_at_its_line() {
        let e = Config::parse(
            Path::new("r.toml"),
            "[api]\nopen = true\nallowed_hosts = [\"https://x\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("r.toml:3:"), "{e}");
        assert!(e.contains("without a scheme"), "{e}");
    }

    #[test]
    fn open_and_tokens_contradict() {
        let e = Config::parse(
            Path::new("r.toml"),
            "[api]\nopen = true\n[[api.tokens]]\ntoken = \"t0123456789\"\nrole = \"admin\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("contradict"), "{e}");
    }

    #[test]
    fn an_empty_token_is_refused() {
        let e = Config::parse(
            Path::new("r.toml"),
            "[[api.tokens]]\ntoken = \"\"\nrole = \"admin\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("api.tokens[0]: the token is empty"), "{e}");
    }

    #[test]
    fn the_admin_token_lives_beside_the_database() {
        let c = Config::parse(Path::new("/etc/rb/ringback.toml"), "").unwrap();
        assert_eq!(
            c.api.admin_token_file.as_deref(),
            Some(Path::new("/etc/rb/data/api-token"))
        );
        let c = Config::parse(
            Path::new("/etc/rb/ringback.toml"),
            "[database]\nurl = \"postgres://db/rb\"\n",
        )
        .unwrap();
        assert_eq!(
            c.api.admin_token_file.as_deref(),
            Some(Path::new("/etc/rb/data/api-token"))
        );
        let c = Config::parse(
            Path::new("/etc/rb/ringback.toml"),
            "[database]\nurl = \"sqlite:///var/lib/rb/x.db\"\n[api]\n",
        )
        .unwrap();
        assert_eq!(
            c.api.admin_token_file.as_deref(),
            Some(Path::new("/var/lib/rb/api-token"))
        );
        let c = Config::parse(
            Path::new("/etc/rb/ringback.toml"),
            "[api]\nadmin_token_file = \"secrets/admin\"\n",
        )
        .unwrap();
        assert_eq!(
            c.api.admin_token_file.as_deref(),
            Some(Path::new("/etc/rb/secrets/admin"))
        );
    }
}
