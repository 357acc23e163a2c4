//! `[cluster]`: how a node works behind a SIP proxy with other nodes
//! (`deploy/kamailio/`): where agents are reached when they registered
//! with the proxy rather than with this node, and how long a drain may
//! last before the calls still up are ended.

use std::net::{IpAddr, SocketAddr};

use ringback_sip::transaction::TransportKind;
use serde::{Deserialize, Deserializer};

/// Settings for running as one of several nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `sip:IP:PORT[;transport=udp|tcp]`: the proxy (Kamailio) agents
    /// register with. An agent with no registration on this node is rung
    /// as `sip:<agent>@IP:PORT` through it, and counts as reachable.
    #[serde(deserialize_with = "agent_proxy")]
    pub agent_proxy: Option<AgentProxy>,
    /// Longest drain (SIGUSR1, `POST /api/v1/node/drain`): calls still up
    /// after this many seconds are ended (BYE) and the process exits.
    pub drain_timeout_secs: u64,
    /// One queue across nodes: the queues' ACD runs on the node holding
    /// a lease in the shared store; callers reaching a queue on another
    /// node hop to it over SIP. Needs `[callbacks] node_id` and `secret`.
    pub shared_queues: bool,
    /// `IP:PORT` other nodes send hopping callers to (UDP); default: this
    /// node's SIP UDP listener.
    pub address: Option<SocketAddr>,
    /// `http://IP:PORT` of this node's API, shown as the owner's.
    pub api_url: Option<String>,
    /// Shared by the nodes: a hop must carry it
    /// (`X-Ringback-Cluster-Secret`), or it is refused with 403.
    pub secret: Option<String>,
    /// `secret` read from this file (one line).
    pub secret_file: Option<std::path::PathBuf>,
    /// `secret` read from this environment variable.
    pub secret_env: Option<String>,
    /// The lease runs this long without a renewal (renewed every second):
    /// the longest time the queues have no owner after one dies.
    pub lease_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            agent_proxy: None,
            drain_timeout_secs: 3600,
            shared_queues: false,
            address: None,
            api_url: None,
            secret: None,
            secret_file: None,
            secret_env: None,
            lease_secs: 5,
        }
    }
}

/// Where agents registered with the proxy are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentProxy {
    /// The proxy's address (an IP: no DNS lookups on the call path).
    pub addr: SocketAddr,
    /// UDP (default) or TCP.
    pub transport: TransportKind,
}

impl AgentProxy {
    /// Parse `sip:IP[:PORT][;transport=udp|tcp]` (the `sip:` is optional;
    /// the port defaults to 5060).
    pub fn parse(text: &str) -> Result<AgentProxy, String> {
        let rest = text.strip_prefix("sip:").unwrap_or(text);
        let mut parts = rest.split(';');
        let hostport = parts.next().unwrap_or_default();
        let mut transport = TransportKind::Udp;
        for param in parts {
            match param.to_ascii_lowercase().as_str() {
                "transport=udp" => transport = TransportKind::Udp,
                "transport=tcp" => transport = TransportKind::Tcp,
                other => {
                    return Err(format!(
                        "agent_proxy `{text}`: unsupported parameter `{other}` \
                         (only transport=udp or transport=tcp)"
                    ))
                }
            }
        }
        let addr = match hostport.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => match hostport.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, 5060),
                Err(_) => {
                    return Err(format!(
                        "agent_proxy `{text}`: write sip:IP:PORT with an IP address (no DNS names)"
                    ))
                }
            },
        };
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(format!(
                "agent_proxy `{text}`: needs a reachable address and a port"
            ));
        }
        Ok(AgentProxy { addr, transport })
    }

    /// The Request-URI that reaches `agent` through the proxy.
    pub fn uri_for(&self, agent: &str) -> String {
        match self.transport {
            TransportKind::Tcp => format!("sip:{agent}@{};transport=tcp", self.addr),
            _ => format!("sip:{agent}@{}", self.addr),
        }
    }
}

/// `shared_queues` needs what a hop is made of: a stable node id (the
/// lease names it), a secret, a lease longer than its renewal.
pub(super) fn validate(cfg: &super::Config) -> Result<(), String> {
    let c = &cfg.cluster;
    if !c.shared_queues {
        return Ok(());
    }
    if cfg.callbacks.node_id.is_none() {
        return Err("cluster.shared_queues needs a stable, unique [callbacks] node_id".into());
    }
    if c.secret.as_deref().is_none_or(|s| s.len() < 8) {
        return Err(
            "cluster.shared_queues needs cluster.secret (8 characters or more, the same on every node)"
                .into(),
        );
    }
    if c.lease_secs < 3 {
        return Err(format!(
            "cluster.lease_secs = {}: at least 3 (the lease is renewed every second)",
            c.lease_secs
        ));
    }
    Ok(())
}

fn agent_proxy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AgentProxy>, D::Error> {
    let text = String::deserialize(d)?;
    AgentProxy::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    #[test]
    fn agent_proxy_forms() {
        let p = AgentProxy::parse("sip:127.0.0.1:5070").expect("plain");
        assert_eq!(p.addr, "127.0.0.1:5070".parse().expect("addr"));
        assert_eq!(p.transport, TransportKind::Udp);
        assert_eq!(p.uri_for("alice"), "sip:alice@127.0.0.1:5070");
        let p = AgentProxy::parse("10.0.0.5;transport=TCP").expect("no port");
        assert_eq!(p.addr.port(), 5060);
        assert_eq!(p.uri_for("bob"), "sip:bob@10.0.0.5:5060;transport=tcp");
        let p = AgentProxy::parse("sip:[::1]:5080").expect("v6");
        assert_eq!(p.uri_for("a"), "sip:a@[::1]:5080");
        for bad in [
            "sip:proxy.example.com:5060",
            "sip:0.0.0.0:5060",
            "sip:127.0.0.1:0",
            "sip:127.0.0.1;transport=tls",
        ] {
            assert!(AgentProxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cluster_section_defaults_and_errors_at_the_value() {
        let c = Config::parse(Path::new("r.toml"), "").expect("empty");
        assert_eq!(c.cluster.agent_proxy, None);
        assert_eq!(c.cluster.drain_timeout_secs, 3600);
        let c = Config::parse(
            Path::new("r.toml"),
            "[cluster]\nagent_proxy = \"sip:127.0.0.1:5070\"\ndrain_timeout_secs = 60\n",
        )
        .expect("cluster");
        assert!(c.cluster.agent_proxy.is_some());
        assert_eq!(c.cluster.drain_timeout_secs, 60);
        let e = Config::parse(
            Path::new("r.toml"),
            "[cluster]\nagent_proxy = \"sip:kamailio:5060\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("r.toml:2:15: agent_proxy"), "{e}");
    }

    #[test]
    fn shared_queues_need_a_node_id_a_secret_and_a_lease_of_three_seconds() {
        let parse = |t: &str| Config::parse(Path::new("r.toml"), t).map_err(|e| e.to_string());
        let ok = "[callbacks]\nnode_id = \"a\"\n[cluster]\nshared_queues = true\nsecret = \"0123456789\"\n";
        let c = parse(ok).expect("valid");
        assert!(c.cluster.shared_queues);
        assert_eq!(c.cluster.lease_secs, 5);
        let no_id = "[cluster]\nshared_queues = true\nsecret = \"0123456789\"\n";
        assert!(parse(no_id).unwrap_err().contains("node_id"));
        let short = ok.replace("0123456789", "short");
        assert!(parse(&short).unwrap_err().contains("cluster.secret"));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), "from-a-file-123\n").expect("write");
        let from_file = ok.replace("secret = \"0123456789\"", "secret_file = \"secret\"");
        let c = Config::parse(&dir.path().join("r.toml"), &from_file).expect("secret_file");
        assert_eq!(c.cluster.secret.as_deref(), Some("from-a-file-123"));
        let lease = format!("{ok}lease_secs = 2\n");
        assert!(parse(&lease).unwrap_err().contains("lease_secs = 2"));
    }
}
