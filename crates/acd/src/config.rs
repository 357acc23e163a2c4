//! Static configuration of queues and agents, as the shell maps it from
//! `ringback.toml`. Every default is a named constant so the TOML layer and
//! the documentation can quote it instead of repeating a number.

use std::collections::HashMap;
use std::time::Duration;

use crate::ids::{AgentId, QueueName};

/// How a queue chooses among the agents that could take a call.
///
/// Whatever the strategy, only *eligible* agents are considered (see the
/// crate docs), and among those only the lowest [`QueueMembership::penalty`]
/// tier. Ties are broken by the order agents are listed in the configuration,
/// so a decision never depends on hash order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The agent idle longest: since their last call ended, or since they
    /// logged in if they had no call since. The default: it spreads work
    /// evenly and rewards nobody for dodging calls (a missed offer does not
    /// reset idle time, but the miss is counted towards auto-pause).
    #[default]
    LongestIdle,
    /// The next agent after the one this queue offered a call to last, in
    /// configuration order, wrapping around.
    RoundRobin,
    /// The agent who answered the fewest calls since the last
    /// [`Input::ResetDailyCounters`](crate::Input::ResetDailyCounters)
    /// (the shell sends it at local midnight); ties go to the longest idle.
    FewestCalls,
    /// Every eligible agent at once; the first to answer gets the call and
    /// the others are cancelled.
    RingAll,
    /// A uniformly random eligible agent, from the engine's seeded RNG.
    Random,
    /// Only agents holding every listed skill at least at the given level
    /// (1–10); among them the highest total level over the required skills
    /// (queue's and call's) wins, ties to the longest idle.
    SkillsBased {
        /// `(skill, minimum level)` pairs.
        required: Vec<(String, u8)>,
    },
}

impl Strategy {
    /// Configuration name (`longest-idle`, `round-robin`, `fewest-calls`,
    /// `ring-all`, `random`, `skills-based`).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest-idle",
            Strategy::RoundRobin => "round-robin",
            Strategy::FewestCalls => "fewest-calls",
            Strategy::RingAll => "ring-all",
            Strategy::Random => "random",
            Strategy::SkillsBased { .. } => "skills-based",
        }
    }
}

/// The configuration names, for [`Strategy`]'s `Deserialize`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StrategyName {
    LongestIdle,
    RoundRobin,
    FewestCalls,
    RingAll,
    Random,
    SkillsBased,
}

/// From its configuration name (`strategy = "ring-all"`); anything else is
/// an error listing the accepted names. `skills-based` comes with no
/// required skills: the queue's own (`required_skills`) are a separate key
/// the shell adds.
impl<'de> serde::Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match StrategyName::deserialize(d)? {
            StrategyName::LongestIdle => Strategy::LongestIdle,
            StrategyName::RoundRobin => Strategy::RoundRobin,
            StrategyName::FewestCalls => Strategy::FewestCalls,
            StrategyName::RingAll => Strategy::RingAll,
            StrategyName::Random => Strategy::Random,
            StrategyName::SkillsBased => Strategy::SkillsBased {
                required: Vec::new(),
            },
        })
    }
}

/// Sticky-agent routing for repeat callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StickyConfig {
    /// A caller is "repeat" if an agent of this queue handled them (connect
    /// or call end, whichever is later) at most this long ago.
    pub window: Duration,
    /// If that agent is busy (ringing, on a call, or in a wrap-up that ends
    /// within this time), hold the call for them this long before falling
    /// back to the strategy. Other callers are not held up. Zero: only offer
    /// first when the agent is available right now.
    pub wait_for_agent: Duration,
}

/// One queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Name, as dialplans refer to it.
    pub name: QueueName,
    /// Routing strategy (default [`Strategy::LongestIdle`]).
    pub strategy: Strategy,
    /// How long an agent's phone rings before the offer counts as a
    /// no-answer (default [`QueueConfig::DEFAULT_RING_TIMEOUT`]); must be > 0.
    pub ring_timeout: Duration,
    /// Longest time a call stays in this queue, counted from *this* enqueue
    /// (not from the original entry time, or a call re-entering after a
    /// callback would time out at once). A call's own
    /// [`WaitingCall::max_wait`](crate::WaitingCall::max_wait) overrides it.
    /// `None`: no limit.
    pub max_wait: Option<Duration>,
    /// Most calls waiting at once; further enqueues are
    /// [`Rejected`](crate::Output::Rejected). `None`: no limit.
    pub max_len: Option<usize>,
    /// Wrap-up time after each call (default [`QueueConfig::DEFAULT_WRAPUP`]);
    /// an agent's own [`AgentConfig::wrapup`] overrides it. Zero: none.
    pub wrapup: Duration,
    /// After this many consecutive missed offers (no answer, busy, rejected,
    /// error) the agent is paused with the reason `missed N calls`
    /// (default `Some(3)`). `None`: never.
    pub auto_pause_after_misses: Option<u32>,
    /// Sticky-agent routing; `None` (default): off.
    pub sticky: Option<StickyConfig>,
    /// Opaque overflow target handed back with
    /// [`MaxWaitReached`](crate::Output::MaxWaitReached),
    /// [`NoAgents`](crate::Output::NoAgents) and
    /// [`Rejected`](crate::Output::Rejected): another queue, a callback offer,
    /// a closing prompt — the shell decides; the ACD never plays dead air.
    pub overflow: Option<String>,
    /// An agent that missed an offer of a call becomes eligible for *that*
    /// call again after this long if nothing else has cleared the skip
    /// (default `Some(30 s)`); `None`: only a state change clears it.
    /// Bounded by [`QueueConfig::max_offers_per_agent`].
    pub reoffer_after: Option<Duration>,
    /// Most offers of one call to one agent between two of that agent's
    /// state changes (default 2, minimum 1). This is the guard against the
    /// "rejecting agent rung forever" loop.
    pub max_offers_per_agent: u32,
    /// When the last present member (logged in and reachable) leaves, send
    /// every waiting call to the overflow ([`NoAgents`](crate::Output::NoAgents),
    /// `EXITEMPTY`). Default `false`: waiting calls stay until `max_wait`
    /// (a registration that lapses for a second must not empty a queue).
    pub leave_when_empty: bool,
    /// Let callers join (and wait) while no member is logged in, instead of
    /// answering [`crate::Output::NoAgents`] at once. Asterisk's `joinempty`:
    /// right for a queue without an overflow target, where the caller should
    /// hear music until somebody logs in (or `max_wait` passes).
    pub join_empty: bool,
    /// Handle time (talk + wrap-up) assumed before any call was measured,
    /// the starting point of the moving average behind the estimated wait
    /// (default [`QueueConfig::DEFAULT_HANDLE_TIME`]).
    pub seed_handle_time: Duration,
}

impl QueueConfig {
    /// Default ring timeout: 15 s.
    pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(15);
    /// Default wrap-up: 10 s.
    pub const DEFAULT_WRAPUP: Duration = Duration::from_secs(10);
    /// Default consecutive misses before auto-pause: 3.
    pub const DEFAULT_AUTO_PAUSE: u32 = 3;
    /// Default delay before a skipped agent may be offered the same call
    /// again: 30 s.
    pub const DEFAULT_REOFFER_AFTER: Duration = Duration::from_secs(30);
    /// Default offers of one call to one agent: 2.
    pub const DEFAULT_MAX_OFFERS_PER_AGENT: u32 = 2;
    /// Default seed handle time: 180 s.
    pub const DEFAULT_HANDLE_TIME: Duration = Duration::from_secs(180);

    /// A queue with every default.
    pub fn new(name: impl Into<QueueName>) -> Self {
        QueueConfig {
            name: name.into(),
            strategy: Strategy::default(),
            ring_timeout: Self::DEFAULT_RING_TIMEOUT,
            max_wait: None,
            max_len: None,
            wrapup: Self::DEFAULT_WRAPUP,
            auto_pause_after_misses: Some(Self::DEFAULT_AUTO_PAUSE),
            sticky: None,
            overflow: None,
            reoffer_after: Some(Self::DEFAULT_REOFFER_AFTER),
            max_offers_per_agent: Self::DEFAULT_MAX_OFFERS_PER_AGENT,
            leave_when_empty: false,
            join_empty: false,
            seed_handle_time: Self::DEFAULT_HANDLE_TIME,
        }
    }
}

/// An agent's membership of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMembership {
    /// The queue.
    pub queue: QueueName,
    /// Lower is offered first: an agent with penalty `n` is considered only
    /// when no eligible member has a lower one (Asterisk semantics).
    pub penalty: u32,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// SIP username.
    pub id: AgentId,
    /// Display name for dashboards.
    pub name: String,
    /// Skills with levels 1–10.
    pub skills: HashMap<String, u8>,
    /// Queues this agent serves.
    pub queues: Vec<QueueMembership>,
    /// Concurrent calls; only 1 is supported for now.
    pub max_calls: u32,
    /// Wrap-up time overriding the queue's.
    pub wrapup: Option<Duration>,
}

impl AgentConfig {
    /// An agent named after its id, in no queue, without skills.
    pub fn new(id: impl Into<AgentId>) -> Self {
        let id = id.into();
        AgentConfig {
            name: id.as_str().to_owned(),
            id,
            skills: HashMap::new(),
            queues: Vec::new(),
            max_calls: 1,
            wrapup: None,
        }
    }

    /// Adds a membership with penalty 0.
    pub fn member_of(self, queue: impl Into<QueueName>) -> Self {
        self.member_with_penalty(queue, 0)
    }

    /// Adds a membership with a penalty.
    pub fn member_with_penalty(mut self, queue: impl Into<QueueName>, penalty: u32) -> Self {
        self.queues.push(QueueMembership {
            queue: queue.into(),
            penalty,
        });
        self
    }

    /// Adds (or replaces) a skill.
    pub fn skill(mut self, name: impl Into<String>, level: u8) -> Self {
        self.skills.insert(name.into(), level);
        self
    }
}

/// Why a configuration was refused by [`Acd::new`](crate::Acd::new).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Two queues with one name.
    #[error("queue `{0}` is defined twice")]
    DuplicateQueue(QueueName),
    /// Two agents with one id.
    #[error("agent `{0}` is defined twice")]
    DuplicateAgent(AgentId),
    /// Membership of a queue that does not exist.
    #[error("agent `{agent}` is a member of unknown queue `{queue}`")]
    UnknownQueue {
        /// The agent.
        agent: AgentId,
        /// The missing queue.
        queue: QueueName,
    },
    /// The same queue listed twice for one agent.
    #[error("agent `{agent}` lists queue `{queue}` twice")]
    DuplicateMembership {
        /// The agent.
        agent: AgentId,
        /// The queue.
        queue: QueueName,
    },
    /// A skill level outside 1–10.
    #[error("{owner}: skill `{skill}` level {level} is outside 1..=10")]
    SkillLevel {
        /// `agent X` or `queue Y`.
        owner: String,
        /// The skill.
        skill: String,
        /// The bad level.
        level: u8,
    },
    /// `max_calls` other than 1.
    #[error("agent `{agent}`: max_calls = {max_calls}, only 1 is supported")]
    MaxCalls {
        /// The agent.
        agent: AgentId,
        /// The configured value.
        max_calls: u32,
    },
    /// A queue setting out of range.
    #[error("queue `{queue}`: {problem}")]
    Queue {
        /// The queue.
        queue: QueueName,
        /// What is wrong.
        problem: &'static str,
    },
}

#[cfg(test)]
mod strategy_tests {
    use serde::de::value::{Error, StrDeserializer};
    use serde::de::IntoDeserializer;
    use serde::Deserialize;

    use super::Strategy;

    fn parse(name: &str) -> Result<Strategy, Error> {
        let d: StrDeserializer<'_, Error> = name.into_deserializer();
        Strategy::deserialize(d)
    }

    #[test]
    fn every_strategy_deserializes_from_its_name() {
        let all = [
            Strategy::LongestIdle,
            Strategy::RoundRobin,
            Strategy::FewestCalls,
            Strategy::RingAll,
            Strategy::Random,
            Strategy::SkillsBased {
                required: Vec::new(),
            },
        ];
        for s in all {
            assert_eq!(parse(s.name()).unwrap(), s);
        }
    }

    #[test]
    fn a_typo_names_the_accepted_strategies() {
        let e = parse("longest-idel").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown variant `longest-idel`, expected one of `longest-idle`, `round-robin`, \
             `fewest-calls`, `ring-all`, `random`, `skills-based`"
        );
    }
}
