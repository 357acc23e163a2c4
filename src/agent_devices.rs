//! Which of an agent's devices can ring: the registered SIP phone, the
//! browser phone in the agent page (WebRTC), or both, as the agent's
//! `ring` setting allows. The ACD task keeps one [`DeviceBook`]; an agent
//! is reachable while at least one allowed device is.

use std::collections::{HashMap, HashSet};

use crate::config::{Config, RingDevices};
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
        Devices {
            phone: self.phones.get(agent).filter(|_| phone_ok).cloned(),
            browser: browser_ok && self.browsers.contains(agent),
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
    fn ring_browser_needs_webrtc() {
        let text = "[agents.alice]\npassword = \"x\"\nring = \"browser\"\n";
        let e = Config::parse(std::path::Path::new("t.toml"), text).expect_err("refused");
        assert!(e.0.contains("agents.alice.ring"), "{e}");
    }
}
