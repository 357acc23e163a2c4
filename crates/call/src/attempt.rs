//! One callback attempt as a sans-IO core: wait in the queue (in the
//! caller's original place), claim the callback's lease when the ACD offers
//! an agent, ring the agent, whisper the context, dial the customer through
//! the trunks in order, ask them to press 1, bridge.
//!
//! The core decides every step, timer and result; the shell (the tokio task
//! in `src/callback_attempt.rs`) turns SIP, RTP, the ACD's notices, the
//! store's lease answers and the callback service's answers into
//! [`Input`]s, and carries out each [`Output`] with its plumbing. Time is
//! passed in ([`Now`]); the back-offs, the accept timeout and the lease
//! renewals are deadlines reported by [`Core::poll_timeout`], never sleeps.
//!
//! Every attempt ends with exactly one [`Output::Report`] (the callback
//! service persists it and decides what happens next) followed by
//! [`Output::Finished`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ringback_acd::{AgentId, CallId, EndedBy, OfferFailure, WaitingCall};
use ringback_callback::AttemptResult;
use ringback_sansio::{Core, Now};

use crate::ending::HangupBy;
use crate::inbound::offer_failure;

#[cfg(test)]
mod tests;

/// How long to wait before handing a callback back when another node holds
/// its lease (that node's lease runs out by itself if it died).
pub const CLAIM_LOST_BACKOFF: Duration = Duration::from_secs(1);

/// How long to wait before handing a callback back after it left the queue
/// without an agent (no agents, queue full, waited too long): do not spin.
pub const LEFT_QUEUE_BACKOFF: Duration = Duration::from_secs(30);

/// Prompt the agent hears before the number of minutes waited.
pub const WHISPER_PROMPT: &str = "callback-whisper";
/// Prompt the agent hears after the number of minutes waited.
pub const MINUTES_AGO_PROMPT: &str = "minutes-ago";
/// What the agent hears while the customer's phone rings.
pub const HOLD_MUSIC_PROMPT: &str = "hold-music";
/// What the customer hears on answering ("press 1 to talk, 2 to cancel").
pub const INTRO_PROMPT: &str = "callback-intro";

/// What the core needs to know about the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The attempt's own Call-ID: its id in the ACD.
    pub call: String,
    /// The queue whose agents call back.
    pub queue: String,
    /// The customer's number.
    pub number: String,
    /// When the caller first entered the queue (their place in line).
    pub entered_at: DateTime<Utc>,
    /// How long one claim or renewal of the callback's lease lasts; it is
    /// renewed every third of that.
    pub lease: Duration,
    /// How long the customer has to press 1 (the queue policy's
    /// `accept_timeout_secs`).
    pub accept_timeout: Duration,
    /// How many trunks may carry the customer's leg, tried in order.
    pub trunks: usize,
    /// The customer's priority in the directory (0: ordinary or unknown):
    /// a VIP's callback waits ahead of ordinary callers, as their call did.
    pub priority: i32,
    /// The customer's routing key in the directory (`customer:<id>`), so
    /// sticky routing knows them by any of their numbers; `None`: by number.
    pub customer_key: Option<String>,
    /// Skills the agent needs: the customer's language's (`[languages]`).
    pub required_skills: Vec<(String, u8)>,
}

/// One of the attempt's two legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The agent's phone.
    Agent,
    /// The customer, through a trunk.
    Customer,
}

/// What happened on a leg, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// The leg could not even be placed (no RTP port, bad URI, no such
    /// trunk): reported at once in answer to [`Output::RingAgent`] or
    /// [`Output::DialCustomer`].
    DialFailed,
    /// The far end sent early media (a 18x with SDP).
    EarlyMedia,
    /// The far end answered; media is ready.
    Answered,
    /// The far end answered after we cancelled; the shell hung it up.
    AnsweredTooLate,
    /// A final failure status to the INVITE.
    Failed(u16),
    /// The INVITE transaction timed out: no final answer at all.
    Timeout,
    /// The far end sent BYE (already answered with 200 by the shell).
    Bye,
    /// No RTP from the far end for the configured time.
    RtpTimeout,
    /// The playlist started with this token finished (or could not be
    /// played at all: no stream, no prompt).
    PlaybackDone {
        /// Token of [`Output::Play`].
        token: u64,
    },
}

/// The store's answer to a lease claim or renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// This node holds the lease until the requested time.
    Held,
    /// Another node holds it (or the callback ended meanwhile).
    HeldElsewhere,
    /// The store could not be asked.
    Error,
}

/// What the shell observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// ACD: ring this agent for the callback.
    Offer {
        /// Agent id.
        agent: String,
    },
    /// ACD: stop ringing this agent.
    CancelOffer {
        /// Agent id.
        agent: String,
    },
    /// ACD: the callback is connected to this agent.
    Connected {
        /// Agent id.
        agent: String,
    },
    /// ACD: the callback left the queue without an agent.
    Leave,
    /// The store's answer to [`Output::ClaimLease`].
    LeaseClaimed(LeaseAnswer),
    /// The store's answer to [`Output::RenewLease`].
    LeaseRenewed(LeaseAnswer),
    /// The callback service's answer to [`Output::AskToDial`]: false when
    /// the callback was cancelled or expired meanwhile.
    MayDial(bool),
    /// Something happened on the agent's leg.
    Agent(LegEvent),
    /// Something happened on the customer's leg.
    Customer(LegEvent),
    /// The customer pressed a key (RFC 4733, in-band or SIP INFO).
    CustomerDigit(char),
    /// The callback service withdrew the attempt (cancelled, rescheduled,
    /// dialing window closed).
    Stop,
    /// The server is shutting down.
    Shutdown,
}

impl Input {
    /// `event` on `leg`: [`Input::Agent`] or [`Input::Customer`].
    pub fn on(leg: Leg, event: LegEvent) -> Input {
        match leg {
            Leg::Agent => Input::Agent(event),
            Leg::Customer => Input::Customer(event),
        }
    }
}

/// How the attempt ends for the callback service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Report this result (`svc.finished`).
    Result(AttemptResult),
    /// Nothing was dialed (lease lost, left the queue): hand the callback
    /// back (`svc.lost`).
    HandBack,
    /// The service withdrew it or refused to dial: report nothing.
    Dropped,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Feed this to the ACD. [`ringback_acd::Input::Enqueue`] also
    /// subscribes the attempt to the queue's notices.
    Acd(ringback_acd::Input),
    /// Claim the callback's lease for this node (answer with
    /// [`Input::LeaseClaimed`]).
    ClaimLease {
        /// The current wall-clock time.
        at: DateTime<Utc>,
        /// Until when.
        until: DateTime<Utc>,
    },
    /// Extend the lease (answer with [`Input::LeaseRenewed`]).
    RenewLease {
        /// The current wall-clock time.
        at: DateTime<Utc>,
        /// Until when.
        until: DateTime<Utc>,
    },
    /// Ring the agent the ACD offered (the binding came with the offer).
    RingAgent {
        /// Agent id.
        agent: String,
        /// Seconds the customer has waited since entering the queue.
        waited_secs: i64,
    },
    /// Stop ringing the agent (CANCEL); the leg's final answer still comes
    /// as an [`Input::Agent`] event, and ends it.
    CancelAgent,
    /// Ask the callback service whether the customer may be dialed now
    /// (answer with [`Input::MayDial`]).
    AskToDial,
    /// Play these prompts on a leg. If the leg has no media or none of the
    /// prompts exists, report [`LegEvent::PlaybackDone`] at once.
    Play {
        /// Which leg hears them.
        leg: Leg,
        /// Prompt names, in order.
        prompts: Vec<String>,
        /// Loop until something else plays.
        looped: bool,
        /// Reported back in [`LegEvent::PlaybackDone`].
        token: u64,
    },
    /// Dial the customer through trunk number `trunk` (0-based, in the
    /// configuration's order). If it cannot be tried at all, report
    /// [`LegEvent::DialFailed`] at once.
    DialCustomer {
        /// Index of the trunk.
        trunk: usize,
    },
    /// Connect the agent's and the customer's audio.
    Bridge,
    /// Disconnect them again (whichever streams are up).
    Unbridge,
    /// The customer pressed 1 and talks to the agent now
    /// (`svc.connected`, the live view's answered count).
    Accepted {
        /// Seconds the customer waited in all.
        waited_secs: u64,
    },
    /// The leg is over from the far end (refused, timed out, hung up):
    /// write its call record and stop routing it; send nothing.
    EndLeg {
        /// Which leg.
        leg: Leg,
        /// Who ended it.
        by: HangupBy,
    },
    /// End the leg from our side (CANCEL while it rings, BYE once
    /// answered), write its call record and stop routing it.
    HangUp {
        /// Which leg.
        leg: Leg,
        /// Who ended it.
        by: HangupBy,
    },
    /// Tell the callback service how the attempt ended.
    Report(Outcome),
    /// The attempt is over: release what is left (the last output).
    Finished,
}

/// Where the attempt is. Each phase carries what only it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// In the ACD, waiting for an agent.
    Waiting,
    /// The ACD offered `agent`; the lease is being claimed before ringing.
    /// `offer_live` turns false if the ACD cancelled the offer meanwhile.
    ClaimingLease {
        /// Agent offered.
        agent: String,
        /// The offer still stands.
        offer_live: bool,
    },
    /// The agent's phone rings.
    AgentRinging {
        /// Agent id.
        agent: String,
    },
    /// The agent answered; the ACD has not connected the callback yet.
    AgentAnswered {
        /// Agent id.
        agent: String,
    },
    /// Connected: waiting for the callback service to allow dialing.
    AskingToDial {
        /// Agent id.
        agent: String,
    },
    /// The agent hears who they are calling.
    Whisper {
        /// Agent id.
        agent: String,
        /// Token of the whisper's playback.
        token: u64,
    },
    /// The customer's phone rings through trunk number `trunk`; the agent
    /// hears music, or the carrier's early media when `early_bridged`.
    CustomerRinging {
        /// Agent id.
        agent: String,
        /// Index of the trunk carrying the customer's leg.
        trunk: usize,
        /// The customer's early media is bridged to the agent.
        early_bridged: bool,
        /// The result when no trunk is left to try.
        exhausted: AttemptResult,
    },
    /// The customer answered and hears "press 1".
    Accepting {
        /// Agent id.
        agent: String,
        /// When the customer is taken not to accept.
        deadline: Instant,
    },
    /// Agent and customer talk.
    Bridged {
        /// Agent id.
        agent: String,
    },
    /// Nothing to do but wait until `until`, then end with `then` (no
    /// input but shutdown changes that).
    Backoff {
        /// When the back-off ends.
        until: Instant,
        /// How the attempt ends then.
        then: Outcome,
    },
    /// Over; every later input is ignored.
    Finished,
}

/// The agent leg the shell holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentLeg {
    agent: String,
    /// We cancelled it: its final answer only ends it.
    cancelled: bool,
}

/// One callback attempt.
#[derive(Debug)]
pub struct CallbackAttempt {
    setup: Setup,
    phase: Phase,
    /// The agent leg the shell holds, if any.
    agent_leg: Option<AgentLeg>,
    /// The shell holds a customer leg.
    customer_leg: bool,
    /// The agent the ACD connected (it must hear `CallEnded`, not
    /// `Abandon`).
    connected: Option<String>,
    /// This node holds the lease: renew it at `renew_at`.
    renew_at: Option<Instant>,
    /// Last playback token handed out.
    token: u64,
    out: VecDeque<Output>,
}

impl CallbackAttempt {
    /// Start an attempt at `now`: it enters the queue in the caller's
    /// original place ([`Output::Acd`] with an `Enqueue`).
    pub fn new(setup: Setup, now: Now) -> CallbackAttempt {
        let age = (now.wall - setup.entered_at).to_std().unwrap_or_default();
        let entered = now.mono.checked_sub(age).unwrap_or(now.mono);
        let mut a = CallbackAttempt {
            phase: Phase::Waiting,
            agent_leg: None,
            customer_leg: false,
            connected: None,
            renew_at: None,
            token: 0,
            out: VecDeque::new(),
            setup,
        };
        let mut waiting = WaitingCall::new(
            a.setup.call.as_str(),
            a.setup.queue.as_str(),
            a.setup.number.as_str(),
            entered,
        )
        .lifted_by(a.setup.priority);
        waiting.customer = a.setup.customer_key.clone();
        waiting.required_skills = a.setup.required_skills.clone();
        a.out
            .push_back(Output::Acd(ringback_acd::Input::Enqueue(waiting)));
        a
    }

    /// The current phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// True once [`Output::Finished`] has been queued.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    fn me(&self) -> CallId {
        CallId::from(self.setup.call.as_str())
    }

    fn push(&mut self, o: Output) {
        self.out.push_back(o);
    }

    fn acd(&mut self, input: ringback_acd::Input) {
        self.push(Output::Acd(input));
    }

    fn offer_failed(&mut self, agent: &str, reason: OfferFailure) {
        let call = self.me();
        self.acd(ringback_acd::Input::OfferFailed {
            call,
            agent: AgentId::from(agent),
            reason,
        });
    }

    fn next_token(&mut self) -> u64 {
        self.token += 1;
        self.token
    }

    fn waited_secs(&self, now: Now) -> i64 {
        (now.wall - self.setup.entered_at).num_seconds().max(0)
    }

    fn lease_until(&self, now: Now) -> DateTime<Utc> {
        now.wall + chrono::TimeDelta::from_std(self.setup.lease).unwrap_or_default()
    }

    fn renew_every(&self) -> Duration {
        self.setup.lease / 3
    }

    fn bridged(&self) -> bool {
        matches!(self.phase, Phase::Bridged { .. })
    }

    /// End the attempt: hang up what is still up, tell the ACD the call is
    /// over (or gone from the queue), report, finish.
    fn finish(&mut self, outcome: Outcome) {
        if std::mem::take(&mut self.customer_leg) {
            self.push(Output::HangUp {
                leg: Leg::Customer,
                by: HangupBy::Ringback,
            });
        }
        if self.agent_leg.take().is_some() {
            self.push(Output::HangUp {
                leg: Leg::Agent,
                by: HangupBy::Ringback,
            });
        }
        let call = self.me();
        let input = match self.connected.take() {
            Some(agent) => ringback_acd::Input::CallEnded {
                call,
                agent: AgentId::from(agent.as_str()),
                by: EndedBy::Caller,
            },
            None => ringback_acd::Input::Abandon(call),
        };
        self.acd(input);
        self.push(Output::Report(outcome));
        self.push(Output::Finished);
        self.phase = Phase::Finished;
        self.renew_at = None;
    }

    fn end_leg(&mut self, leg: Leg, by: HangupBy) {
        let up = match leg {
            Leg::Agent => self.agent_leg.take().is_some(),
            Leg::Customer => std::mem::take(&mut self.customer_leg),
        };
        if up {
            self.push(Output::EndLeg { leg, by });
        }
    }

    fn on_offer(&mut self, agent: String, now: Now) {
        match self.phase {
            Phase::Waiting => {
                let (at, until) = (now.wall, self.lease_until(now));
                self.phase = Phase::ClaimingLease {
                    agent,
                    offer_live: true,
                };
                self.push(Output::ClaimLease { at, until });
            }
            // Handing the callback back: the ACD forgets the offer with the
            // `Abandon` at the end.
            Phase::Backoff { .. } => {}
            // One agent at a time (a ring-all queue offers several).
            _ => self.offer_failed(&agent, OfferFailure::Error),
        }
    }

    fn on_cancel_offer(&mut self, cancelled: &str) {
        match &mut self.phase {
            Phase::ClaimingLease { agent, offer_live } if agent == cancelled => {
                *offer_live = false;
            }
            Phase::AgentRinging { agent } if agent == cancelled => {
                // CANCEL: the leg stays until its final answer.
                if let Some(l) = self.agent_leg.as_mut() {
                    l.cancelled = true;
                }
                self.phase = Phase::Waiting;
                self.push(Output::CancelAgent);
            }
            Phase::AgentAnswered { agent } if agent == cancelled => {
                self.phase = Phase::Waiting;
                if self.agent_leg.take().is_some() {
                    self.push(Output::HangUp {
                        leg: Leg::Agent,
                        by: HangupBy::Ringback,
                    });
                }
            }
            _ => {}
        }
    }

    fn on_claimed(&mut self, answer: LeaseAnswer, now: Now) {
        let Phase::ClaimingLease { agent, offer_live } = &self.phase else {
            return;
        };
        let (agent, offer_live) = (agent.clone(), *offer_live);
        match answer {
            LeaseAnswer::Held => {
                // Keep the lease while this attempt is alive: another node
                // takes the callback over only when we stop renewing (a
                // crash).
                if self.renew_at.is_none() {
                    self.renew_at = Some(now.mono + self.renew_every());
                }
                if !offer_live {
                    self.phase = Phase::Waiting;
                    return;
                }
                if let Some(old) = self.agent_leg.take() {
                    // A cancelled leg still waiting for its final answer:
                    // the shell holds one agent leg at a time.
                    debug_assert!(old.cancelled);
                    self.push(Output::HangUp {
                        leg: Leg::Agent,
                        by: HangupBy::Ringback,
                    });
                }
                self.agent_leg = Some(AgentLeg {
                    agent: agent.clone(),
                    cancelled: false,
                });
                self.phase = Phase::AgentRinging {
                    agent: agent.clone(),
                };
                let waited_secs = self.waited_secs(now);
                self.push(Output::RingAgent { agent, waited_secs });
            }
            LeaseAnswer::HeldElsewhere => {
                // Its lease runs out by itself if that node died; look again
                // in a moment, not in a tight loop.
                self.phase = Phase::Backoff {
                    until: now.mono + CLAIM_LOST_BACKOFF,
                    then: Outcome::HandBack,
                };
            }
            LeaseAnswer::Error => self.finish(Outcome::HandBack),
        }
    }

    fn on_renewed(&mut self, answer: LeaseAnswer) {
        // An error leaves the lease as it was: the next renewal tries again.
        if answer == LeaseAnswer::HeldElsewhere {
            self.finish(Outcome::HandBack);
        }
    }

    fn on_connected(&mut self, agent: String) {
        self.connected = Some(agent);
        match &self.phase {
            Phase::AgentAnswered { agent } => {
                self.phase = Phase::AskingToDial {
                    agent: agent.clone(),
                };
                self.push(Output::AskToDial);
            }
            // Connected to an agent whose leg is gone (a cancel raced the
            // answer): nobody would talk to the customer.
            _ => self.finish(Outcome::Result(AttemptResult::AgentLost)),
        }
    }

    fn on_may_dial(&mut self, allowed: bool, now: Now) {
        let Phase::AskingToDial { agent } = &self.phase else {
            return;
        };
        if !allowed {
            self.finish(Outcome::Dropped);
            return;
        }
        // Tell the agent who they are calling, then dial the customer.
        let agent = agent.clone();
        let minutes = (self.waited_secs(now) as u64).div_ceil(60);
        let mut prompts = vec![WHISPER_PROMPT.to_string()];
        prompts.extend(crate::number_prompts(minutes));
        prompts.push(MINUTES_AGO_PROMPT.into());
        let token = self.next_token();
        self.phase = Phase::Whisper { agent, token };
        self.push(Output::Play {
            leg: Leg::Agent,
            prompts,
            looped: false,
            token,
        });
    }

    /// The whisper is over: music for the agent, the customer's phone rings
    /// through the first trunk.
    fn dial_customer(&mut self, agent: String) {
        let token = self.next_token();
        self.push(Output::Play {
            leg: Leg::Agent,
            prompts: vec![HOLD_MUSIC_PROMPT.into()],
            looped: true,
            token,
        });
        self.phase = Phase::CustomerRinging {
            agent,
            trunk: 0,
            early_bridged: false,
            exhausted: AttemptResult::Failed("trunk unavailable".into()),
        };
        self.customer_leg = true;
        self.push(Output::DialCustomer { trunk: 0 });
    }

    /// The current trunk failed or could not be tried: dial through the
    /// next one, or end with `exhausted` when none is left.
    fn next_trunk(&mut self, exhausted: AttemptResult) {
        let Phase::CustomerRinging {
            trunk,
            exhausted: e,
            ..
        } = &mut self.phase
        else {
            return;
        };
        *trunk += 1;
        *e = exhausted.clone();
        if *trunk >= self.setup.trunks {
            self.finish(Outcome::Result(exhausted));
            return;
        }
        let trunk = *trunk;
        self.customer_leg = true;
        self.push(Output::DialCustomer { trunk });
    }

    fn on_agent(&mut self, event: LegEvent) {
        let cancelled = self.agent_leg.as_ref().is_some_and(|l| l.cancelled);
        match event {
            LegEvent::DialFailed => {
                if let Phase::AgentRinging { agent } = &self.phase {
                    let agent = agent.clone();
                    self.agent_leg = None;
                    self.phase = Phase::Waiting;
                    self.offer_failed(&agent, OfferFailure::Error);
                }
            }
            LegEvent::Answered => {
                if let Phase::AgentRinging { agent } = &self.phase {
                    let agent = agent.clone();
                    let call = self.me();
                    self.acd(ringback_acd::Input::OfferAnswered {
                        call,
                        agent: AgentId::from(agent.as_str()),
                    });
                    self.phase = Phase::AgentAnswered { agent };
                }
            }
            LegEvent::Failed(_) | LegEvent::Timeout if cancelled => {
                // The offer is gone already: only the leg's record is left.
                self.end_leg(Leg::Agent, HangupBy::Agent);
            }
            LegEvent::Failed(code) => {
                if let Phase::AgentRinging { agent } = &self.phase {
                    let agent = agent.clone();
                    self.end_leg(Leg::Agent, HangupBy::Agent);
                    self.phase = Phase::Waiting;
                    self.offer_failed(&agent, offer_failure(code));
                }
            }
            LegEvent::Timeout => {
                if let Phase::AgentRinging { agent } = &self.phase {
                    let agent = agent.clone();
                    self.end_leg(Leg::Agent, HangupBy::Agent);
                    self.phase = Phase::Waiting;
                    self.offer_failed(&agent, OfferFailure::NoAnswer);
                }
            }
            LegEvent::AnsweredTooLate => {
                if cancelled {
                    self.end_leg(Leg::Agent, HangupBy::Ringback);
                }
            }
            LegEvent::Bye | LegEvent::RtpTimeout => {
                if event == LegEvent::Bye {
                    // The leg is over: its record ends here (no BYE back).
                    self.end_leg(Leg::Agent, HangupBy::Agent);
                }
                // A BYE, or a phone that vanished (no RTP): the attempt
                // ends so nobody stays in a call no one hears; before the
                // customer answered, the callback goes back to the head of
                // the line.
                let r = if self.bridged() {
                    AttemptResult::Completed
                } else {
                    AttemptResult::AgentLost
                };
                self.finish(Outcome::Result(r));
            }
            LegEvent::PlaybackDone { token } => {
                if let Phase::Whisper { agent, token: t } = &self.phase {
                    if *t == token {
                        let agent = agent.clone();
                        self.dial_customer(agent);
                    }
                }
            }
            LegEvent::EarlyMedia => {}
        }
    }

    fn on_customer(&mut self, event: LegEvent, now: Now) {
        match event {
            LegEvent::DialFailed => {
                if let Phase::CustomerRinging { exhausted, .. } = &self.phase {
                    let exhausted = exhausted.clone();
                    self.customer_leg = false;
                    self.next_trunk(exhausted);
                }
            }
            LegEvent::EarlyMedia => {
                // The carrier's ringback tone or announcement: let the agent
                // hear it instead of the music.
                if let Phase::CustomerRinging { early_bridged, .. } = &mut self.phase {
                    *early_bridged = true;
                    self.push(Output::Bridge);
                }
            }
            LegEvent::Answered => {
                let Phase::CustomerRinging {
                    agent,
                    early_bridged,
                    ..
                } = &self.phase
                else {
                    return;
                };
                let (agent, early_bridged) = (agent.clone(), *early_bridged);
                if early_bridged {
                    self.push(Output::Unbridge);
                    let token = self.next_token();
                    self.push(Output::Play {
                        leg: Leg::Agent,
                        prompts: vec![HOLD_MUSIC_PROMPT.into()],
                        looped: true,
                        token,
                    });
                }
                let token = self.next_token();
                self.push(Output::Play {
                    leg: Leg::Customer,
                    prompts: vec![INTRO_PROMPT.into()],
                    looped: false,
                    token,
                });
                self.phase = Phase::Accepting {
                    agent,
                    deadline: now.mono + self.setup.accept_timeout,
                };
            }
            LegEvent::Failed(code) => {
                let Phase::CustomerRinging { early_bridged, .. } = &mut self.phase else {
                    return;
                };
                let was_bridged = std::mem::take(early_bridged);
                self.end_leg(Leg::Customer, HangupBy::Customer);
                if was_bridged {
                    self.push(Output::Unbridge);
                }
                let result = customer_result(code);
                // The carrier failed, not the customer: try the next trunk.
                if code == 408 || (500..600).contains(&code) {
                    self.next_trunk(result);
                } else {
                    self.finish(Outcome::Result(result));
                }
            }
            LegEvent::Timeout => {
                if matches!(self.phase, Phase::CustomerRinging { .. }) {
                    self.end_leg(Leg::Customer, HangupBy::Customer);
                    // No answer at all from the trunk: the next one may work.
                    self.next_trunk(AttemptResult::CustomerNoAnswer);
                }
            }
            LegEvent::Bye | LegEvent::RtpTimeout => {
                if event == LegEvent::Bye {
                    self.end_leg(Leg::Customer, HangupBy::Customer);
                }
                let r = if self.bridged() {
                    AttemptResult::Completed
                } else {
                    AttemptResult::CustomerNoAcceptance
                };
                self.finish(Outcome::Result(r));
            }
            LegEvent::AnsweredTooLate | LegEvent::PlaybackDone { .. } => {}
        }
    }

    fn on_digit(&mut self, d: char, now: Now) {
        let Phase::Accepting { agent, .. } = &self.phase else {
            return;
        };
        match d {
            '1' => {
                let agent = agent.clone();
                self.push(Output::Bridge);
                let waited_secs = self.waited_secs(now) as u64;
                self.push(Output::Accepted { waited_secs });
                self.phase = Phase::Bridged { agent };
            }
            '2' => self.finish(Outcome::Result(AttemptResult::CustomerDeclined)),
            _ => {}
        }
    }

    fn on_stop(&mut self) {
        // Withdrawn, cancelled or rescheduled: leave the queue, unless the
        // customer is about to be or already is dialed (its result
        // decides).
        if matches!(
            self.phase,
            Phase::Waiting
                | Phase::ClaimingLease { .. }
                | Phase::AgentRinging { .. }
                | Phase::AgentAnswered { .. }
        ) {
            self.finish(Outcome::Dropped);
        }
    }
}

impl Core for CallbackAttempt {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, input: Input, now: Now) {
        match &self.phase {
            Phase::Finished => return,
            Phase::Backoff { then, .. } => {
                // Handing back anyway; the server going down only makes it
                // sooner.
                if input == Input::Shutdown {
                    let then = then.clone();
                    self.finish(then);
                }
                return;
            }
            _ => {}
        }
        match input {
            Input::Offer { agent } => self.on_offer(agent, now),
            Input::CancelOffer { agent } => self.on_cancel_offer(&agent),
            Input::Connected { agent } => self.on_connected(agent),
            Input::Leave => {
                self.phase = Phase::Backoff {
                    until: now.mono + LEFT_QUEUE_BACKOFF,
                    then: Outcome::HandBack,
                };
            }
            Input::LeaseClaimed(answer) => self.on_claimed(answer, now),
            Input::LeaseRenewed(answer) => self.on_renewed(answer),
            Input::MayDial(allowed) => self.on_may_dial(allowed, now),
            Input::Agent(event) => self.on_agent(event),
            Input::Customer(event) => self.on_customer(event, now),
            Input::CustomerDigit(d) => self.on_digit(d, now),
            Input::Stop => self.on_stop(),
            Input::Shutdown => self.finish(Outcome::Result(AttemptResult::Failed(
                "server shutting down".into(),
            ))),
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        match &self.phase {
            Phase::Finished => return,
            Phase::Backoff { until, then } => {
                if now.mono >= *until {
                    let then = then.clone();
                    self.finish(then);
                }
                return;
            }
            Phase::Accepting { deadline, .. } if now.mono >= *deadline => {
                self.finish(Outcome::Result(AttemptResult::CustomerNoAcceptance));
                return;
            }
            _ => {}
        }
        if self.renew_at.is_some_and(|t| now.mono >= t) {
            self.renew_at = Some(now.mono + self.renew_every());
            let (at, until) = (now.wall, self.lease_until(now));
            self.push(Output::RenewLease { at, until });
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Finished => return None,
            // Nothing else happens during a back-off, renewals included.
            Phase::Backoff { until, .. } => return Some(*until),
            Phase::Accepting { deadline, .. } => Some(*deadline),
            _ => None,
        };
        match (phase, self.renew_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a final status on the customer's leg means for the attempt (when
/// no other trunk is tried).
pub fn customer_result(code: u16) -> AttemptResult {
    match code {
        486 | 600 => AttemptResult::CustomerBusy,
        603 => AttemptResult::CustomerDeclined,
        408 | 480 | 487 => AttemptResult::CustomerNoAnswer,
        c => AttemptResult::Failed(format!("trunk answered {c}")),
    }
}
