//! The ACD shell: one task that owns the pure `ringback_acd::Acd`, feeds it
//! inputs (from calls, the registrar and the API) and time, and carries its
//! outputs to call tasks and the store.
//!
//! Every routing decision is made in the sans-IO engine; this task only
//! knows where each call task and each agent's phone can be reached. It
//! drives the engine like every core ([`ringback_sansio::Core`]): both
//! clocks are read once per event ([`Now::system`]), the event goes to
//! `handle` (or `handle_timeout` when `poll_timeout` passes), and what the
//! engine queued is drained and carried out at once.

use std::collections::HashMap;
use std::time::Duration;

use ringback_acd::{
    Acd, AcdError, AgentConfig, AgentId, AgentSnapshot, CallId, Input, OfferFailure, Output,
    QueueConfig, QueueSnapshot, StickyConfig,
};
use ringback_sansio::{Core, Now};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::agent_devices::{DeviceBook, Devices};
use crate::config::Config;
use crate::registrar::Reachability;
use crate::store::{batch, AgentEvent, QueueLogRow, Store};

/// What the ACD tells a call.
#[derive(Debug, Clone)]
pub enum QueueNotice {
    /// Ring this agent's devices.
    Offer {
        /// Agent id (SIP user name).
        agent: String,
        /// Where its phone is, and whether its browser phone rings.
        devices: Devices,
    },
    /// Stop ringing this agent.
    CancelOffer {
        /// Agent id.
        agent: String,
    },
    /// Bridge the caller to this agent.
    Connected {
        /// Agent id.
        agent: String,
    },
    /// Leave the queue: no agents, full, or waited too long.
    Leave {
        /// Overflow target (another queue) if the queue has one.
        overflow: Option<String>,
        /// Why, for logs and CDRs (`no_agents`, `full`, `max_wait`).
        why: &'static str,
    },
}

/// Requests to the ACD task.
pub enum AcdCmd {
    /// Feed an engine input; `notify` subscribes a call to its notices.
    Input {
        /// The input.
        input: Input,
        /// For `Enqueue`: where the call task listens.
        notify: Option<UnboundedSender<QueueNotice>>,
    },
    /// The registrar learned something about an agent's phone.
    Reachability(Reachability),
    /// An agent page's phone connected (`true`) or went away.
    BrowserPhone {
        /// Agent id.
        agent: String,
        /// Whether it is connected now.
        connected: bool,
    },
    /// Position (1-based) and estimated wait of a waiting call.
    Position {
        /// The call.
        call: String,
        /// Reply.
        reply: oneshot::Sender<Option<(usize, Duration)>>,
    },
    /// Agent and queue views for the API.
    Snapshot {
        /// Reply.
        reply: oneshot::Sender<(Vec<AgentSnapshot>, Vec<QueueSnapshot>)>,
    },
    /// Feature code `*13`: pause an available agent, unpause a paused one.
    TogglePause {
        /// Agent id.
        agent: String,
    },
    /// Apply an input and report whether the engine accepted it.
    Command {
        /// The input.
        input: Input,
        /// `Err(message)` when the transition is not allowed.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Handle for sending to the ACD task.
#[derive(Clone)]
pub struct AcdHandle {
    tx: UnboundedSender<AcdCmd>,
}

impl AcdHandle {
    /// Send a command (ignored after shutdown).
    pub fn send(&self, cmd: AcdCmd) {
        let _ = self.tx.send(cmd);
    }

    /// Feed an input without subscribing.
    pub fn input(&self, input: Input) {
        self.send(AcdCmd::Input {
            input,
            notify: None,
        });
    }

    /// Position and estimated wait of a waiting call.
    pub async fn position(&self, call: &str) -> Option<(usize, Duration)> {
        let (reply, rx) = oneshot::channel();
        self.send(AcdCmd::Position {
            call: call.to_string(),
            reply,
        });
        rx.await.ok().flatten()
    }

    /// Agents and queues as the engine sees them.
    pub async fn snapshot(&self) -> (Vec<AgentSnapshot>, Vec<QueueSnapshot>) {
        let (reply, rx) = oneshot::channel();
        self.send(AcdCmd::Snapshot { reply });
        rx.await.unwrap_or_default()
    }

    /// Apply an agent command (login, pause …) and report refusal.
    pub async fn command(&self, input: Input) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(AcdCmd::Command { input, reply });
        rx.await
            .unwrap_or_else(|_| Err("ACD is not running".into()))
    }
}

/// Build the engine's configuration from `ringback.toml`.
pub fn engine_config(cfg: &Config) -> (Vec<QueueConfig>, Vec<AgentConfig>) {
    let queues = cfg
        .queues
        .iter()
        .map(|(name, q)| {
            let mut qc = QueueConfig::new(name.as_str());
            qc.strategy = q.strategy.clone();
            qc.ring_timeout = Duration::from_secs(q.ring_timeout_secs);
            qc.max_wait = q.max_wait_secs.map(Duration::from_secs);
            qc.max_len = q.max_len;
            qc.wrapup = Duration::from_secs(q.wrapup_secs);
            qc.auto_pause_after_misses = (q.auto_pause_after > 0).then_some(q.auto_pause_after);
            qc.sticky = (q.sticky_hours > 0).then(|| StickyConfig {
                window: Duration::from_secs(q.sticky_hours * 3600),
                wait_for_agent: Duration::from_secs(q.sticky_wait_secs),
            });
            qc.overflow = q.overflow_queue.clone();
            // Without an overflow target, callers wait for an agent (with
            // music and announcements) rather than being sent away.
            qc.join_empty = q.overflow_queue.is_none() && q.overflow_prompt.is_none();
            qc
        })
        .collect();
    let agents = cfg
        .agents
        .iter()
        .map(|(id, a)| {
            let mut ac = AgentConfig::new(id.as_str());
            ac.name = a.display_name.clone().unwrap_or_else(|| id.clone());
            for q in &a.queues {
                ac = ac.member_of(q.as_str());
            }
            for (s, l) in &a.skills {
                ac = ac.skill(s.as_str(), *l);
            }
            ac.wrapup = a.wrapup_secs.map(Duration::from_secs);
            ac
        })
        .collect();
    (queues, agents)
}

/// Start the ACD task.
pub fn spawn(cfg: &Config, store: Store) -> anyhow::Result<AcdHandle> {
    let (queues, agents) = engine_config(cfg);
    let acd = Acd::new(queues, agents, rand::random())
        .map_err(|e| anyhow::anyhow!("queue/agent configuration: {e}"))?;
    let auto_login = cfg
        .agents
        .iter()
        .filter(|(_, a)| a.auto_login.unwrap_or(true))
        .map(|(id, _)| id.clone())
        .collect();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = AcdTask {
        log: spawn_log_writer(store, cfg.node_id()),
        acd,
        calls: HashMap::new(),
        devices: DeviceBook::new(cfg),
        auto_login,
        tz: cfg.stats.timezone,
    };
    tokio::spawn(task.run(rx));
    Ok(AcdHandle { tx })
}

/// A row for the agent history or the queue log.
enum LogRow {
    Agent(AgentEvent),
    Queue(QueueLogRow),
}

/// One writer for `agent_events` and `queue_log`, so rows are stored in
/// the order the engine produced them: start-up recovery (and any report)
/// reads an agent's or a call's *last* row as its current state, which a
/// task per row could reorder. Rows carry `node`'s id.
fn spawn_log_writer(store: Store, node: String) -> UnboundedSender<LogRow> {
    let (tx, mut rx) = mpsc::unbounded_channel::<LogRow>();
    tokio::spawn(async move {
        let mut rows = Vec::with_capacity(256);
        while batch::gather(&mut rx, &mut rows, 4096).await {
            let mut agents = Vec::new();
            let mut queue = Vec::new();
            for row in rows.drain(..) {
                match row {
                    LogRow::Agent(e) => agents.push(e),
                    LogRow::Queue(r) => queue.push(r),
                }
            }
            if let Err(e) = store.record_logs(&agents, &queue, &node).await {
                tracing::warn!(
                    error = %e,
                    agent_events = agents.len(),
                    queue_log = queue.len(),
                    "cannot record agent state changes and queue log"
                );
            }
        }
    });
    tx
}

struct AcdTask {
    /// Ordered writer for the agent history and the queue log.
    log: UnboundedSender<LogRow>,
    acd: Acd,
    calls: HashMap<String, UnboundedSender<QueueNotice>>,
    devices: DeviceBook,
    auto_login: std::collections::HashSet<String>,
    /// `stats.timezone`: where the day (and "calls today") ends.
    tz: chrono_tz::Tz,
}

impl AcdTask {
    async fn run(mut self, mut rx: UnboundedReceiver<AcdCmd>) {
        let mut midnight = next_midnight(Now::system(), self.tz);
        // Agents rung through `cluster.agent_proxy` need no registration
        // here: reachable (and logged in, with auto_login) from the start.
        for agent in self.devices.proxied() {
            self.reachability_changed(&agent, Now::system());
        }
        loop {
            let deadline = self.acd.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.on_cmd(cmd, Now::system()),
                    None => return,
                },
                _ = sleep => {
                    let now = Now::system();
                    self.acd.handle_timeout(now);
                    // Only an input can be refused.
                    let _ = self.drain(now);
                }
                // "Calls today" (fewest-calls routing) start again at
                // midnight in stats.timezone, like today's figures, and
                // sticky history past every window is dropped.
                _ = tokio::time::sleep_until(midnight) => {
                    let now = Now::system();
                    tracing::info!("midnight: daily ACD counters reset");
                    let _ = self.feed(Input::ResetDailyCounters, now);
                    midnight = next_midnight(now, self.tz);
                }
            }
        }
    }

    /// Hands one input to the engine at `now` and carries out what it
    /// queued. `Err` when the engine refused it ([`Output::Refused`]).
    fn feed(&mut self, input: Input, now: Now) -> Result<(), AcdError> {
        self.acd.handle(input, now);
        self.drain(now)
    }

    fn on_cmd(&mut self, cmd: AcdCmd, now: Now) {
        match cmd {
            AcdCmd::Input { input, notify } => {
                if let (Input::Enqueue(w), Some(tx)) = (&input, notify) {
                    self.calls.insert(w.id.as_str().to_string(), tx);
                }
                // A caller who hangs up while waiting gets no notice, so its
                // subscription ends here (else every abandoned call would
                // leave its channel behind: ~4 KiB per call, found by the soak).
                let abandoned = match &input {
                    Input::Abandon(call) => Some(call.as_str().to_string()),
                    _ => None,
                };
                let late_answer = match &input {
                    Input::OfferAnswered { call, agent } => Some((call.clone(), agent.clone())),
                    _ => None,
                };
                if let Err(e) = self.feed(input, now) {
                    tracing::debug!(error = %e, "ACD input refused");
                    // An answer for an offer the engine already withdrew:
                    // that agent leg must be hung up, never left open.
                    if let Some((call, agent)) = late_answer {
                        self.notify(
                            &call,
                            QueueNotice::CancelOffer {
                                agent: agent.as_str().to_string(),
                            },
                        );
                    }
                }
                if let Some(call) = abandoned {
                    self.calls.remove(&call);
                }
            }
            AcdCmd::Reachability(r) => {
                self.devices.set_phone(&r.agent, r.binding);
                self.reachability_changed(&r.agent, now);
            }
            AcdCmd::BrowserPhone { agent, connected } => {
                self.devices.set_browser(&agent, connected);
                self.reachability_changed(&agent, now);
            }
            AcdCmd::Position { call, reply } => {
                let pos = self.acd.position(&call);
                let ewt = self.acd.call_ewt(&call);
                let _ = reply.send(pos.map(|p| (p, ewt.unwrap_or_default())));
            }
            AcdCmd::Snapshot { reply } => {
                let agents = self
                    .acd
                    .agent_ids()
                    .iter()
                    .filter_map(|a| self.acd.agent_snapshot(a.as_str()))
                    .collect();
                let queues = self
                    .acd
                    .queue_names()
                    .iter()
                    .filter_map(|q| self.acd.queue_snapshot(q.as_str(), now))
                    .collect();
                let _ = reply.send((agents, queues));
            }
            AcdCmd::TogglePause { agent } => {
                let id = AgentId::from(agent.as_str());
                let paused = self
                    .acd
                    .agent_state(&agent)
                    .is_some_and(|s| s.name() == "paused");
                let input = if paused {
                    Input::AgentUnpause(id)
                } else {
                    Input::AgentPause {
                        agent: id,
                        reason: "feature code *13".into(),
                    }
                };
                if let Err(e) = self.feed(input, now) {
                    tracing::info!(%agent, error = %e, "*13 refused");
                }
            }
            AcdCmd::Command { input, reply } => {
                let r = self.feed(input, now).map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
        }
    }

    /// Tell the engine whether `agent` can be rung now; an agent with
    /// `auto_login` who became reachable is logged in.
    fn reachability_changed(&mut self, agent: &str, now: Now) {
        let reachable = self.devices.reachable(agent);
        let _ = self.feed(Input::AgentReachable(AgentId::from(agent), reachable), now);
        let logged_out = self
            .acd
            .agent_state(agent)
            .is_some_and(|s| s.name() == "logged-out");
        if reachable && logged_out && self.auto_login.contains(agent) {
            let _ = self.feed(Input::AgentLogin(AgentId::from(agent)), now);
        }
    }

    fn notify(&mut self, call: &CallId, notice: QueueNotice) {
        let done = matches!(
            notice,
            QueueNotice::Connected { .. } | QueueNotice::Leave { .. }
        );
        if let Some(tx) = self.calls.get(call.as_str()) {
            let _ = tx.send(notice);
        }
        if done {
            self.calls.remove(call.as_str());
        }
    }

    /// Carries out everything the engine queued, in order. Returns the
    /// refusal of the input just handled, if it was refused (then that is
    /// all it queued).
    fn drain(&mut self, now: Now) -> Result<(), AcdError> {
        let mut refused = Ok(());
        let mut follow_up = Vec::new();
        while let Some(out) = self.acd.poll_output() {
            match out {
                Output::Offer { call, agent, .. } => {
                    match Some(self.devices.devices(agent.as_str())).filter(|d| !d.is_empty()) {
                        Some(devices) => self.notify(
                            &call,
                            QueueNotice::Offer {
                                agent: agent.as_str().to_string(),
                                devices,
                            },
                        ),
                        None => follow_up.push(Input::OfferFailed {
                            call,
                            agent,
                            reason: OfferFailure::Error,
                        }),
                    }
                }
                Output::CancelOffer { call, agent } => self.notify(
                    &call,
                    QueueNotice::CancelOffer {
                        agent: agent.as_str().to_string(),
                    },
                ),
                Output::Connected { call, agent } => self.notify(
                    &call,
                    QueueNotice::Connected {
                        agent: agent.as_str().to_string(),
                    },
                ),
                Output::MaxWaitReached { call, overflow } => self.notify(
                    &call,
                    QueueNotice::Leave {
                        overflow,
                        why: "max_wait",
                    },
                ),
                Output::NoAgents { call, overflow } => self.notify(
                    &call,
                    QueueNotice::Leave {
                        overflow,
                        why: "no_agents",
                    },
                ),
                Output::Rejected { call, overflow, .. } => self.notify(
                    &call,
                    QueueNotice::Leave {
                        overflow,
                        why: "full",
                    },
                ),
                Output::StateChanged(sc) => {
                    tracing::info!(agent = %sc.agent, from = sc.from.name(), to = sc.to.name(), "agent state");
                    let row = AgentEvent {
                        agent: sc.agent.as_str().to_string(),
                        at: sc.at.wall,
                        from_state: sc.from.name().to_string(),
                        to_state: sc.to.name().to_string(),
                        reason: sc.reason.to_string(),
                    };
                    let _ = self.log.send(LogRow::Agent(row));
                }
                Output::QueueLog(ev) => {
                    let row = QueueLogRow {
                        at: ev.at.wall,
                        queue: ev.queue.map(|q| q.as_str().to_string()),
                        call_id: ev.call.map(|c| c.as_str().to_string()),
                        agent: ev.agent.map(|a| a.as_str().to_string()),
                        event: ev.kind.verb().to_string(),
                        data: ev.kind.data(),
                    };
                    let _ = self.log.send(LogRow::Queue(row));
                }
                Output::Refused(e) => refused = Err(e),
            }
        }
        for input in follow_up {
            let _ = self.feed(input, now);
        }
        refused
    }
}

#[cfg(test)]
mod tests;

/// When the timer for the next local midnight fires: the wall clock decides
/// the day (in the local time zone, which only the shell knows), and the
/// distance to its end is slept on the monotonic clock, both from the one
/// `now`.
/// When the next day of `tz` (`stats.timezone`) starts, on the tokio
/// clock: the same day boundary as today's figures (23 or 25 hours across a
/// daylight-saving change), at least one second away.
fn next_midnight(now: Now, tz: chrono_tz::Tz) -> tokio::time::Instant {
    let (_, _, next) = crate::live::local_day(tz, now.wall);
    let wait = (next - now.wall)
        .to_std()
        .unwrap_or(Duration::from_secs(86_400))
        .max(Duration::from_secs(1));
    tokio::time::Instant::from_std(now.mono) + wait
}

#[cfg(test)]
mod midnight_tests {
    use super::next_midnight;
    use ringback_sansio::Now;
    use std::time::{Duration, Instant};

    fn wait_at(wall: &str, tz: chrono_tz::Tz) -> Duration {
        let mono = Instant::now();
        let now = Now {
            mono,
            wall: wall.parse().expect("RFC 3339 time"),
        };
        next_midnight(now, tz).into_std() - mono
    }

    #[test]
    fn the_day_ends_at_midnight_in_the_stats_timezone() {
        // 23:00 UTC is already 00:00 in Berlin (winter): the next Berlin
        // midnight is a whole day away; UTC's is an hour away.
        assert_eq!(
            wait_at("2026-12-02T23:00:00Z", chrono_tz::UTC),
            Duration::from_secs(3_600)
        );
        assert_eq!(
            wait_at("2026-12-02T23:00:00Z", chrono_tz::Europe::Berlin),
            Duration::from_secs(86_400)
        );
        // New York, 2026-03-08 (clocks go forward): a 23-hour day.
        assert_eq!(
            wait_at("2026-03-08T05:00:00Z", chrono_tz::America::New_York),
            Duration::from_secs(23 * 3_600)
        );
        assert_eq!(
            wait_at("2026-12-31T23:59:59Z", chrono_tz::UTC),
            Duration::from_secs(1)
        );
    }
}
