//! One queue across nodes: the caller's queue wait on another node.
//!
//! With several nodes, every queue's ACD runs on one node at a time, the
//! owner (a lease in the shared store; the shell tells the core where it
//! is with [`Input::AcdAt`]). A call that reaches a queue on another node
//! does not wait in a line of its own: it **hops**. The node it landed on
//! (the origin) places one SIP leg to the owner carrying the queue, the
//! caller's original entry time and the context ([`HopIn`], in the
//! `X-Ringback-Hop` header beside the usual `X-Ringback-*` ones), and
//! bridges the caller to it. From then on the owner runs the wait: music,
//! announcements, callback offers, agents. The origin only relays media
//! and learns the outcome when the owner hangs up
//! ([`HopEvent::Ended`]): an overflow continues the origin's dialplan at
//! the queue node's `on_timeout`; anything else ends the call.
//!
//! When the hop leg cannot be placed, or the owner vanishes under it (the
//! lease moved to another node), the caller goes back to music here and
//! hops again, to the new owner or into this node's own ACD, with the
//! same entry time: a caller on a surviving node keeps their place.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use ringback_dialplan::CallbackOffer;
use ringback_sansio::Now;

use super::{InboundCall, LiveUpdate, Output, Phase};
use crate::ending::{Disposition, Ending, HangupBy};

/// How long a caller waits with music before a failed hop is tried again.
pub const HOP_RETRY: Duration = Duration::from_secs(1);

/// Where the queues' ACD runs, as the shell learns it from the lease.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AcdAt {
    /// On this node (always so for a single node).
    #[default]
    Here,
    /// On the node with this id.
    Node(String),
    /// Not known right now (the lease is being taken over): callers wait
    /// with music and hop when an owner is known.
    Unknown,
}

/// What happened to the hop leg (origin side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopEvent {
    /// The owner answered: the caller is bridged to its queue.
    Answered,
    /// The leg could not be placed or was refused.
    Failed,
    /// The owner hung up. `overflow`: its queue let the caller go (the
    /// plan continues here); otherwise the call ended there, as
    /// `disposition`.
    Ended {
        /// The queue let the caller go.
        overflow: bool,
        /// How the call ended on the owner.
        disposition: Disposition,
    },
    /// No media from the owner any more (its process died).
    Lost,
}

/// A waiting caller as it travels to the owner: the `X-Ringback-Hop`
/// header's value, `queue=…;entered=<unix ms>;priority=…;…`.
#[derive(Debug, Clone, PartialEq)]
pub struct HopIn {
    /// The queue to wait in.
    pub queue: String,
    /// When the caller first entered a queue (their place in line).
    pub entered_at: DateTime<Utc>,
    /// The queue node's priority (the owner adds the directory's).
    pub priority: i32,
    /// The queue node's `max_wait`.
    pub max_wait: Option<Duration>,
    /// The queue node's callback offer.
    pub callback: Option<CallbackOffer>,
    /// The caller pressed 0 to get here.
    pub zero_out: bool,
    /// The caller's menu path and keys at the origin.
    pub path: String,
    /// Keys pressed at the origin.
    pub digits: String,
}

impl HopIn {
    /// The header value (path and digits travel in their own headers).
    pub fn header_value(&self) -> String {
        let mut v = format!(
            "queue={};entered={};priority={}",
            self.queue,
            self.entered_at.timestamp_millis(),
            self.priority
        );
        if let Some(m) = self.max_wait {
            v.push_str(&format!(";max-wait={}", m.as_secs()));
        }
        if let Some(c) = &self.callback {
            v.push_str(&format!(
                ";offer-after={};offer-key={}",
                c.after.as_secs(),
                c.key
            ));
        }
        if self.zero_out {
            v.push_str(";zero-out=1");
        }
        v
    }

    /// Read a header value written by [`HopIn::header_value`]; `path` and
    /// `digits` come from their own headers.
    pub fn parse(value: &str, path: &str, digits: &str) -> Result<HopIn, String> {
        let mut queue = None;
        let mut entered = None;
        let mut hop = HopIn {
            queue: String::new(),
            entered_at: DateTime::<Utc>::UNIX_EPOCH,
            priority: 0,
            max_wait: None,
            callback: None,
            zero_out: false,
            path: path.to_string(),
            digits: digits.to_string(),
        };
        let mut offer_after = None;
        let mut offer_key = '1';
        for part in value.split(';') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            let num = |v: &str| -> Result<i64, String> {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{k}: `{v}` is not a number"))
            };
            match k.trim() {
                "queue" if is_name(v) => queue = Some(v.to_string()),
                "queue" => return Err(format!("queue: `{v}` is not a queue name")),
                "entered" => entered = Some(num(v)?),
                "priority" => hop.priority = num(v)?.clamp(-1000, 1000) as i32,
                "max-wait" => hop.max_wait = Some(Duration::from_secs(num(v)?.max(0) as u64)),
                "offer-after" => offer_after = Some(Duration::from_secs(num(v)?.max(0) as u64)),
                "offer-key" => {
                    offer_key = v
                        .chars()
                        .next()
                        .filter(|c| c.is_ascii_digit() || *c == '*' || *c == '#')
                        .ok_or_else(|| format!("offer-key: `{v}` is not a key"))?;
                }
                "zero-out" => hop.zero_out = v == "1",
                _ => {} // newer nodes may say more
            }
        }
        hop.queue = queue.ok_or("no queue")?;
        let ms = entered.ok_or("no entered")?;
        hop.entered_at = Utc
            .timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| format!("entered: {ms} is not a time"))?;
        hop.callback = offer_after.map(|after| CallbackOffer {
            offer: true,
            after,
            key: offer_key,
        });
        Ok(hop)
    }
}

/// A queue name as the config allows it (no separators of the header).
fn is_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// A caller on their way to, or waiting at, the owner's queue.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hop {
    pub(super) queue: String,
    pub(super) max_wait: Option<Duration>,
    pub(super) priority: i32,
    /// The owner being hopped to (`None`: waiting to learn one).
    pub(super) node: Option<String>,
    /// When to try again after a failure or an unknown owner.
    pub(super) retry_at: Option<Instant>,
}

impl InboundCall {
    /// Is a hop needed for a queue entered now?
    pub(super) fn acd_elsewhere(&self) -> bool {
        self.acd_at != AcdAt::Here
    }

    /// Start (or restart) a hop: music here until the owner answers.
    pub(super) fn start_hop(
        &mut self,
        queue: String,
        max_wait: Option<Duration>,
        priority: i32,
        now: Now,
    ) {
        let music = self.queue_settings(&queue).music_on_hold;
        self.play(vec![music], true, true);
        self.phase = Phase::Hopping(Box::new(Hop {
            queue,
            max_wait,
            priority,
            node: None,
            retry_at: None,
        }));
        self.try_hop(now);
    }

    /// Place the hop leg to the owner, or come back to it later.
    fn try_hop(&mut self, now: Now) {
        let at = self.acd_at.clone();
        let Phase::Hopping(h) = &mut self.phase else {
            return;
        };
        match at {
            AcdAt::Node(node) => {
                h.node = Some(node.clone());
                h.retry_at = None;
                let entered_at = self.entered_queue.map_or(now.wall, |t| t.wall);
                let hop = HopIn {
                    queue: h.queue.clone(),
                    entered_at,
                    priority: h.priority,
                    max_wait: h.max_wait,
                    callback: self.callback_offer,
                    zero_out: self.zero_out,
                    path: self.path(),
                    digits: self.digits(),
                };
                tracing::info!(%node, queue = %hop.queue, "the queue's ACD is on another node: hopping");
                self.out.push_back(Output::Hop { node, hop });
            }
            AcdAt::Unknown => {
                h.node = None;
                h.retry_at = Some(now.mono + HOP_RETRY);
            }
            AcdAt::Here => {
                // This node took the queues over: the caller waits here,
                // with their original entry time.
                let (queue, max_wait, priority) = (h.queue.clone(), h.max_wait, h.priority);
                self.enter_queue(queue, max_wait, priority, now);
            }
        }
    }

    /// The shell learnt where the ACD runs now.
    pub(super) fn on_acd_at(&mut self, at: AcdAt, now: Now) {
        if self.acd_at == at {
            return;
        }
        tracing::info!(?at, "the queues' ACD moved");
        self.acd_at = at;
        let owner = match &self.acd_at {
            AcdAt::Node(n) => Some(n.clone()),
            _ => None,
        };
        match &self.phase {
            Phase::Hopping(h) if h.node.is_none() => self.try_hop(now),
            // Hopped (or hopping) to a node that no longer owns the queues:
            // its leg goes, the caller hops again with the same place.
            Phase::Hopping(h) | Phase::Hopped(h) if h.node != owner => {
                self.out.push_back(Output::DropHop);
                self.rehop(now);
            }
            _ => {}
        }
    }

    /// Back to music and a new hop (or this node's queue).
    fn rehop(&mut self, now: Now) {
        let (Phase::Hopping(h) | Phase::Hopped(h)) =
            std::mem::replace(&mut self.phase, Phase::Ivr { overflow: None })
        else {
            return;
        };
        let Hop {
            queue,
            max_wait,
            priority,
            ..
        } = *h;
        if self.acd_elsewhere() {
            self.start_hop(queue, max_wait, priority, now);
        } else {
            self.enter_queue(queue, max_wait, priority, now);
        }
    }

    /// What the hop leg did.
    pub(super) fn on_hop(&mut self, event: HopEvent, now: Now) {
        match (event, &mut self.phase) {
            (HopEvent::Answered, Phase::Hopping(_)) => {
                let Phase::Hopping(h) =
                    std::mem::replace(&mut self.phase, Phase::Ivr { overflow: None })
                else {
                    return;
                };
                tracing::info!(node = ?h.node, "waiting in the owner's queue");
                self.next_token();
                self.out.push_back(Output::BridgeHop);
                self.phase = Phase::Hopped(h);
            }
            (HopEvent::Failed, Phase::Hopping(h)) => {
                tracing::warn!(node = ?h.node, "hop refused; trying again shortly");
                h.retry_at = Some(now.mono + HOP_RETRY);
            }
            (HopEvent::Lost | HopEvent::Failed, Phase::Hopped(_)) => {
                tracing::warn!("the owner's queue is gone; hopping again");
                self.out.push_back(Output::DropHop);
                self.rehop(now);
            }
            (HopEvent::Ended { overflow: true, .. }, Phase::Hopped(h) | Phase::Hopping(h)) => {
                // The owner played the queue's overflow prompt already.
                tracing::info!(queue = %h.queue, "the owner's queue let the caller go");
                self.phase = Phase::Ivr { overflow: None };
                self.queue_exited(now);
            }
            (HopEvent::Ended { disposition, .. }, Phase::Hopped(_) | Phase::Hopping(_)) => {
                self.end(
                    Ending {
                        disposition,
                        hangup_by: HangupBy::Ringback,
                        send_bye: true,
                    },
                    now,
                );
            }
            _ => {}
        }
    }

    /// A hop's retry time came.
    pub(super) fn on_hop_timeout(&mut self, now: Now) {
        if let Phase::Hopping(h) = &self.phase {
            if h.retry_at.is_some_and(|t| t <= now.mono) {
                self.try_hop(now);
            }
        }
    }

    /// The owner side: a caller who hopped here from another node joins
    /// the line with their original entry time and context.
    pub(super) fn join_from_hop(&mut self, hop: HopIn, now: Now) {
        self.hopped_in = true;
        self.earlier_path = hop.path;
        self.earlier_digits = hop.digits;
        let waited = (now.wall - hop.entered_at).to_std().unwrap_or_default();
        self.entered_queue = Some(Now {
            mono: now.mono.checked_sub(waited).unwrap_or(now.mono),
            wall: hop.entered_at,
        });
        self.out.push_back(Output::Live(LiveUpdate::Queued));
        self.zero_out = hop.zero_out;
        self.callback_offer = hop.callback;
        self.plan_waits = false;
        self.enter_queue(hop.queue, hop.max_wait, hop.priority, now);
        self.out.push_back(Output::CheckPendingCallback {
            queue: self.queue.clone().unwrap_or_default(),
        });
    }

    /// Owner side: the queue let a hopped-in caller go; the origin
    /// continues its plan, told so in the BYE.
    pub(super) fn release_hop(&mut self, now: Now) {
        self.hop_overflow = true;
        self.end(
            Ending {
                disposition: Disposition::Completed,
                hangup_by: HangupBy::Ringback,
                send_bye: true,
            },
            now,
        );
    }

    /// Owner side: this call came from another node's hop.
    pub fn is_hopped_in(&self) -> bool {
        self.hopped_in
    }

    /// Owner side: the call ended because its queue let the caller go
    /// (the BYE says so: the origin's plan continues).
    pub fn hop_overflowed(&self) -> bool {
        self.hop_overflow
    }

    /// The hop leg's deadline, if one is set.
    pub(super) fn hop_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Hopping(h) => h.retry_at,
            _ => None,
        }
    }
}
