//! Which of an agent's devices can ring: the registered SIP phone, the
//! browser phone in the agent page (WebRTC), or both, as the agent's
//! `ring` setting allows. The ACD task keeps one [`DeviceBook`]; an agent
//! is reachable while at least one allowed device is.
//!
//! With `[cluster] agent_proxy` (several nodes behind Kamailio), an agent
//! whose phone did not register with this node is rung through the proxy
//! (`sip:<agent>@<proxy>`), which knows where the phone registered: such
//! an agent always counts as reachable here, and the proxy's answer (a
//! `404`/`480` when the phone is not registered there either) counts as a
//! missed offer.

use std::collections::{HashMap, HashSet};

use std::time::{Duration, Instant};

use crate::config::{AgentProxy, Config, RingDevices};
use crate::registrar::Binding;

/// The devices to ring for one offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    /// The SIP phone's binding, when it is registered and may ring.
    pub phone: Option<Binding>,
    /// True when the agent page's phone is connected and may ring.
    pub browser: bool,
}

impl Devices {
    /// True when nothing can ring.
    pub fn is_empty(&self) -> bool {
        self.phone.is_none() && !self.browser
    }
}

/// Every agent's devices as last reported by the registrar and the agent
/// pages.
#[derive(Debug, Default)]
pub struct DeviceBook {
    phones: HashMap<String, Binding>,
    browsers: HashSet<String>,
    ring: HashMap<String, RingDevices>,
    /// `cluster.agent_proxy`, with a far expiry for its bindings.
    proxy: Option<(AgentProxy, Instant)>,
}

impl DeviceBook {
    /// An empty book with each agent's `ring` setting.
    pub fn new(cfg: &Config) -> DeviceBook {
        DeviceBook {
            ring: cfg
                .agents
                .iter()
                .map(|(name, a)| (name.clone(), a.ring_devices()))
                .collect(),
            // A binding through the proxy does not lapse (about 30 years).
            proxy: cfg
                .cluster
                .agent_proxy
                .map(|p| (p, Instant::now() + Duration::from_secs(1 << 30))),
            ..DeviceBook::default()
        }
    }

    /// The registrar's news about `agent`'s phone.
    pub fn set_phone(&mut self, agent: &str, binding: Option<Binding>) {
        match binding {
            Some(b) => {
                self.phones.insert(agent.to_string(), b);
            }
            None => {
                self.phones.remove(agent);
            }
        }
    }

    /// The agent page's phone connected (`true`) or went away.
    pub fn set_browser(&mut self, agent: &str, connected: bool) {
        if connected {
            self.browsers.insert(agent.to_string());
        } else {
            self.browsers.remove(agent);
        }
    }

    /// What would ring for `agent` now.
    pub fn devices(&self, agent: &str) -> Devices {
        let ring = self.ring.get(agent).copied().unwrap_or(RingDevices::Phone);
        let phone_ok = matches!(ring, RingDevices::Phone | RingDevices::Both);
        let browser_ok = matches!(ring, RingDevices::Browser | RingDevices::Both);
        let phone = self
            .phones
            .get(agent)
            .cloned()
            .or_else(|| self.through_proxy(agent));
        Devices {
            phone: phone.filter(|_| phone_ok),
            browser: browser_ok && self.browsers.contains(agent),
        }
    }

    /// The agent's phone as reached through `cluster.agent_proxy`.
    fn through_proxy(&self, agent: &str) -> Option<Binding> {
        let (proxy, expires_at) = self.proxy.as_ref()?;
        Some(Binding {
            contact: proxy.uri_for(agent),
            source: proxy.addr,
            transport: proxy.transport,
            expires_at: *expires_at,
        })
    }

    /// Agents reached through the proxy (all of them, when it is set):
    /// reachable from the start.
    pub fn proxied(&self) -> Vec<String> {
        match self.proxy {
            Some(_) => self.ring.keys().cloned().collect(),
            None => Vec::new(),
        }
    }

    /// Whether anything can ring for `agent`.
    pub fn reachable(&self, agent: &str) -> bool {
        !self.devices(agent).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringback_sip::transaction::TransportKind;

    fn book(agent_toml: &str) -> DeviceBook {
        let text = format!("[agents.alice]\npassword = \"x\"\n{agent_toml}");
        let cfg = Config::parse(std::path::Path::new("t.toml"), &text).expect("config");
        DeviceBook::new(&cfg)
    }

    fn binding() -> Binding {
        static AT: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        Binding {
            contact: "sip:alice@127.0.0.1:5070".into(),
            source: "127.0.0.1:5070".parse().expect("addr"),
            transport: TransportKind::Udp,
            expires_at: *AT.get_or_init(std::time::Instant::now),
        }
    }

    #[test]
    fn without_webrtc_only_the_phone_rings() {
        let mut b = book("");
        b.set_browser("alice", true);
        assert!(!b.reachable("alice"));
        b.set_phone("alice", Some(binding()));
        assert_eq!(
            b.devices("alice"),
            Devices {
                phone: Some(binding()),
                browser: false
            }
        );
    }

    #[test]
    fn webrtc_rings_both_by_default_and_each_alone_keeps_the_agent_reachable() {
        let mut b = book("webrtc = true\n");
        assert!(!b.reachable("alice"));
        b.set_browser("alice", true);
        assert_eq!(
            b.devices("alice"),
            Devices {
                phone: None,
                browser: true
            }
        );
        b.set_phone("alice", Some(binding()));
        assert!(b.devices("alice").phone.is_some() && b.devices("alice").browser);
        b.set_browser("alice", false);
        assert!(b.reachable("alice"));
        b.set_phone("alice", None);
        assert!(!b.reachable("alice"));
    }

    #[test]
    fn ring_browser_ignores_a_registered_phone() {
        let mut b = book("webrtc = true\nring = \"browser\"\n");
        b.set_phone("alice", Some(binding()));
        assert!(!b.reachable("alice"));
        b.set_browser("alice", true);
        assert_eq!(b.devices("alice").phone, None);
        assert!(b.reachable("alice"));
    }

    #[test]
    fn with_an_agent_proxy_an_agent_not_registered_here_is_rung_through_it() {
        let mut b = book("[cluster]\nagent_proxy = \"sip:127.0.0.1:5070\"\n");
        assert_eq!(b.proxied(), vec!["alice".to_string()]);
        assert!(b.reachable("alice"));
        let via = b.devices("alice").phone.expect("through the proxy");
        assert_eq!(via.contact, "sip:alice@127.0.0.1:5070");
        assert_eq!(via.source, "127.0.0.1:5070".parse().expect("addr"));
        // A phone registered with this node itself is rung directly, and
        // when it lapses the proxy takes over again.
        let mut local = binding();
        local.source = "127.0.0.1:5099".parse().expect("addr");
        b.set_phone("alice", Some(local.clone()));
        assert_eq!(b.devices("alice").phone, Some(local));
        b.set_phone("alice", None);
        assert_eq!(
            b.devices("alice").phone.map(|p| p.contact),
            Some("sip:alice@127.0.0.1:5070".into())
        );
        // `ring = "browser"` still keeps the phone out.
        let b = book(
            "webrtc = true\nring = \"browser\"\n[cluster]\nagent_proxy = \"127.0.0.1:5070\"\n",
        );
        assert!(!b.reachable("alice"));
    }

    #[test]
    fn ring_browser_needs_webrtc() {
        let text = "[agents.alice]\npassword = \"x\"\nring = \"browser\"\n";
        let e = Config::parse(std::path::Path::new("t.toml"), text).expect_err("refused");
        assert!(e.0.contains("agents.alice.ring"), "{e}");
    }
}
