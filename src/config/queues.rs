//! Queues, the agents who serve them, and the callback service shared by
//! all queues.

use std::collections::BTreeMap;

use ringback_acd::Strategy;
use serde::Deserialize;

use super::{valid_algorithm, Config};

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
    /// `random` or `skills-based` (any other name is an error at its line
    /// and column). A `skills-based` strategy carries `required_skills`.
    pub strategy: Strategy,
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
    /// `survey = { prompt = "…", keys = "1-5" }`: a post-call question.
    pub survey: Option<SurveyConfig>,
    /// Record this queue's calls with their agent (a stereo WAV: the caller
    /// left, the agent right).
    pub record: bool,
    /// A prompt played to the caller on entering this queue, before the
    /// entry prompt or the music (e.g. `recording-notice`).
    pub record_announcement: Option<String>,
}

/// A queue's post-call survey as written in `ringback.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyConfig {
    /// The question: one prompt name or a list.
    pub prompt: PromptNames,
    /// The score keys, `"1-5"` (lowest-highest, the highest is best).
    #[serde(default = "default_survey_keys")]
    pub keys: String,
}

/// One prompt name or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptNames {
    /// `prompt = "x"`.
    One(String),
    /// `prompt = ["x", "y"]`.
    Many(Vec<String>),
}

fn default_survey_keys() -> String {
    "1-5".into()
}

impl SurveyConfig {
    /// The call core's survey; the error says what is wrong.
    pub fn survey(&self) -> Result<ringback_call::inbound::Survey, String> {
        let prompt = match &self.prompt {
            PromptNames::One(p) => vec![p.clone()],
            PromptNames::Many(v) => v.clone(),
        };
        ringback_call::inbound::Survey::new(prompt, &self.keys)
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            display_name: None,
            music_on_hold: "hold-music".into(),
            entry_prompt: Some("please-hold".into()),
            max_wait_secs: None,
            strategy: Strategy::LongestIdle,
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
            survey: None,
            record: false,
            record_announcement: None,
        }
    }
}

/// One agent: a SIP user who registers a phone and takes queue calls.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Digest password (works with MD5 and SHA-256 phones); or
    /// `password_file` / `password_env`.
    pub password: Option<String>,
    /// Read the password from this file (see `secrets`).
    pub password_file: Option<std::path::PathBuf>,
    /// Read the password from this environment variable.
    pub password_env: Option<String>,
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
    /// SRTP towards this agent's phone: `off` (default: plain RTP, what
    /// every phone takes), `optional` (keys offered on an `RTP/AVP` line;
    /// used if the phone answers with one) or `mandatory` (`RTP/SAVP`; a
    /// phone that answers without keys is not connected).
    #[serde(deserialize_with = "super::srtp_policy")]
    pub srtp: ringback_media::sdp::SrtpPolicy,
    /// A phone in the agent page (WebRTC): the browser, logged in with the
    /// agent's token, registers as one of the agent's devices.
    pub webrtc: bool,
    /// Which of the agent's devices ring: `browser`, `phone` or `both`
    /// (default: `both` when `webrtc = true`; a phone alone otherwise).
    pub ring: Option<RingDevices>,
    /// Record every call this agent takes (whatever the queue says).
    pub record: bool,
}

/// Which devices ring for an agent who has both a SIP phone and the
/// browser phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RingDevices {
    /// Only the browser phone in the agent page.
    Browser,
    /// Only the registered SIP phone.
    Phone,
    /// Both at once; the first to answer takes the call.
    Both,
}

impl AgentConfig {
    /// The devices that ring for this agent.
    pub fn ring_devices(&self) -> RingDevices {
        match (self.webrtc, self.ring) {
            (false, _) => RingDevices::Phone,
            (true, Some(r)) => r,
            (true, None) => RingDevices::Both,
        }
    }
}

/// Callback service settings shared by all queues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// This node's identity (default: hostname-pid): on its call records,
    /// leases and callback history; start-up recovery closes only its own
    /// node's rows on PostgreSQL, so give each node a stable, unique name
    /// there (see `Config::node_id`).
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

impl QueueConfig {
    /// A `skills-based` strategy takes the queue's `required_skills`.
    fn complete_strategy(&mut self) {
        if let Strategy::SkillsBased { required } = &mut self.strategy {
            *required = self
                .required_skills
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
        }
    }
}

/// What deserialisation cannot do alone: fill in each queue's strategy.
pub(super) fn complete(cfg: &mut Config) {
    for q in cfg.queues.values_mut() {
        q.complete_strategy();
    }
}

/// Check `[queues.NAME]`; the error names the key. (A strategy that is
/// not one of the accepted names never gets here: deserialisation refuses
/// it with its line and column.)
pub(super) fn validate_queues(cfg: &Config) -> Result<(), String> {
    for (name, q) in &cfg.queues {
        if q.ring_timeout_secs == 0 {
            return Err(format!(
                "queues.{name}.ring_timeout_secs must be at least 1"
            ));
        }
        if let Some(Err(e)) = q.survey.as_ref().map(SurveyConfig::survey) {
            return Err(format!("queues.{name}.survey: {e}"));
        }
        if let Some(o) = &q.overflow_queue {
            if !cfg.queues.contains_key(o) || o == name {
                return Err(format!(
                    "queues.{name}.overflow_queue `{o}` must name another defined queue"
                ));
            }
        }
    }
    Ok(())
}

/// Check `[agents.NAME]`; the error names the key.
pub(super) fn validate_agents(cfg: &Config) -> Result<(), String> {
    for (name, a) in &cfg.agents {
        if let Some(list) = &a.auth_algorithms {
            if list.is_empty() || list.iter().any(|x| !valid_algorithm(x)) {
                return Err(format!(
                    "agents.{name}.auth_algorithms {list:?}: list \"SHA-256\" and/or \"MD5\""
                ));
            }
        }
        if !a.webrtc && a.ring.is_some_and(|r| r != RingDevices::Phone) {
            return Err(format!(
                "agents.{name}.ring: the browser rings only with `webrtc = true`"
            ));
        }
        if a.password.is_none() && a.ha1.is_none() && cfg.cluster.agent_proxy.is_none() {
            return Err(format!(
                "agents.{name} needs `password` or `ha1` (or `[cluster] agent_proxy`)"
            ));
        }
        for q in &a.queues {
            if !cfg.queues.contains_key(q) {
                return Err(format!(
                    "agents.{name}.queues names `{q}`, which is not defined under [queues]"
                ));
            }
        }
        if let Some((skill, level)) = a.skills.iter().find(|(_, l)| !(1..=10).contains(*l)) {
            return Err(format!(
                "agents.{name}.skills.{skill} = {level}: levels are 1 to 10"
            ));
        }
    }
    Ok(())
}

impl super::Config {
    /// The callback policy of a queue (its own, or the defaults).
    pub fn callback_policy(&self, queue: &str) -> ringback_callback::Policy {
        self.queues
            .get(queue)
            .and_then(|q| q.callback.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_mistyped_strategy_is_an_error_at_its_line_and_column() {
        let e = Config::parse(
            Path::new("r.toml"),
            "[queues.sales]\nring_timeout_secs = 20\nstrategy = \"longest-idel\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("r.toml:3:12: unknown variant `longest-idel`, expected one of "),
            "{e}"
        );
        for name in [
            "longest-idle",
            "round-robin",
            "fewest-calls",
            "ring-all",
            "random",
            "skills-based",
        ] {
            assert!(e.contains(&format!("`{name}`")), "{name} not listed: {e}");
        }
    }

    #[test]
    fn every_strategy_name_is_accepted() {
        for (name, want) in [
            ("longest-idle", Strategy::LongestIdle),
            ("round-robin", Strategy::RoundRobin),
            ("fewest-calls", Strategy::FewestCalls),
            ("ring-all", Strategy::RingAll),
            ("random", Strategy::Random),
        ] {
            let c = Config::parse(
                Path::new("r.toml"),
                &format!("[queues.q]\nstrategy = \"{name}\"\n"),
            )
            .unwrap();
            assert_eq!(c.queues["q"].strategy, want);
        }
        let c = Config::parse(Path::new("r.toml"), "[queues.q]\n").unwrap();
        assert_eq!(c.queues["q"].strategy, Strategy::LongestIdle);
    }

    #[test]
    fn skills_based_takes_the_queues_required_skills() {
        let c = Config::parse(
            Path::new("r.toml"),
            "[queues.q]\nstrategy = \"skills-based\"\nrequired_skills = { spanish = 3, billing = 5 }\n",
        )
        .unwrap();
        assert_eq!(
            c.queues["q"].strategy,
            Strategy::SkillsBased {
                required: vec![("billing".into(), 5), ("spanish".into(), 3)],
            }
        );
    }
}
