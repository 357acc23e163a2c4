//! The callback service: one task that owns the pure
//! `ringback_callback::Scheduler`, persists every transition it returns
//! (before anything acts on it), and starts an attempt when a callback
//! becomes eligible.
//!
//! An eligible callback enters the ACD as an ordinary waiting call whose
//! `entered_at` is the customer's original queue-entry time, so it keeps its
//! place in line and is interleaved fairly with live callers by the same
//! routing engine. The service sleeps until the scheduler's next deadline;
//! a slow sync (every few seconds) only picks up callbacks that other nodes
//! sharing the database created.

mod refusal;
mod rows;
mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ringback_callback::{
    AttemptResult, Callback, CallbackState, NewCallback, Origin, Policy, Scheduler, Transition,
};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::acd_task::AcdHandle;
use crate::live::Live;
use crate::store::callbacks::InsertError;
use crate::store::{ts, Store};

pub use refusal::{CallbackRefusal, CallbackRefused};
pub use rows::parse_time;
use rows::{event_row, from_row, new_id, to_row};

/// A request for a callback (from the IVR or the API).
#[derive(Debug, Clone)]
pub struct CallbackRequest {
    /// Queue whose line it keeps a place in.
    pub queue: String,
    /// Number to call (normalised by the scheduler).
    pub number: String,
    /// The customer's original queue-entry time (now for web requests).
    pub entered_at: DateTime<Utc>,
    /// Customer's preferred window.
    pub preferred: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Not dialed before (an after-hours request: the next opening).
    pub not_before: Option<DateTime<Utc>>,
    /// Free text for the agent (menu path, digits, web note).
    pub context: String,
    /// IVR or web.
    pub origin: Origin,
}

enum Cmd {
    Request(
        CallbackRequest,
        oneshot::Sender<Result<(Callback, usize), CallbackRefused>>,
    ),
    Cancel(String, String, oneshot::Sender<Result<(), CallbackRefused>>),
    Reschedule(
        String,
        DateTime<Utc>,
        oneshot::Sender<Result<(), CallbackRefused>>,
    ),
    LiveFor(String, String, oneshot::Sender<Option<Callback>>),
    Pending(String, oneshot::Sender<(usize, usize)>),
    /// From an attempt: the agent picked up; the customer is about to be dialed.
    Dialing(String, oneshot::Sender<bool>),
    /// From an attempt: customer pressed 1.
    Connected(String),
    /// From an attempt: it is over.
    Finished(String, AttemptResult),
    /// From an attempt: another node holds the lease; hand it back.
    Lost(String),
    /// The node drains: no new attempts; how many are still running.
    Drain(oneshot::Sender<usize>),
}

/// Handle to the callback service.
#[derive(Clone)]
pub struct CallbackHandle {
    tx: UnboundedSender<Cmd>,
    /// This node's name in leases and event rows.
    pub node: String,
}

impl CallbackHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).ok()?;
        rx.await.ok()
    }

    /// Create a callback. `Ok` means it is committed to the store; the
    /// number is the count of callers and callbacks ahead of it.
    pub async fn request(
        &self,
        req: CallbackRequest,
    ) -> Result<(Callback, usize), CallbackRefused> {
        self.ask(|r| Cmd::Request(req, r))
            .await
            .unwrap_or_else(|| Err(CallbackRefusal::Unavailable.into()))
    }

    /// Cancel a live callback (committed when this returns `Ok`).
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<(), CallbackRefused> {
        self.ask(|r| Cmd::Cancel(id.into(), reason.into(), r))
            .await
            .unwrap_or_else(|| Err(CallbackRefusal::Unavailable.into()))
    }

    /// Move a callback's next attempt (committed when this returns `Ok`).
    pub async fn reschedule(&self, id: &str, at: DateTime<Utc>) -> Result<(), CallbackRefused> {
        self.ask(|r| Cmd::Reschedule(id.into(), at, r))
            .await
            .unwrap_or_else(|| Err(CallbackRefusal::Unavailable.into()))
    }

    /// The live callback of this number in this queue, if any.
    pub async fn live_for(&self, number: &str, queue: &str) -> Option<Callback> {
        self.ask(|r| Cmd::LiveFor(number.into(), queue.into(), r))
            .await
            .flatten()
    }

    /// (pending in the queue, the queue's maximum).
    pub async fn pending(&self, queue: &str) -> (usize, usize) {
        self.ask(|r| Cmd::Pending(queue.into(), r))
            .await
            .unwrap_or((usize::MAX, 0))
    }

    /// The node drains (`src/drain.rs`): start no attempt from now on and
    /// take back those still waiting in a queue for an agent (they stay
    /// scheduled in the store, for the other nodes); an attempt already
    /// dialing the customer finishes. Returns how many attempts still run.
    pub async fn drain(&self) -> usize {
        self.ask(Cmd::Drain).await.unwrap_or(0)
    }
}

/// Per-queue callback policies from the configuration.
pub fn policies(cfg: &crate::config::Config) -> HashMap<String, Policy> {
    cfg.queues
        .iter()
        .filter_map(|(name, q)| q.callback.clone().map(|p| (name.clone(), p)))
        .collect()
}

/// Starts the attempt for a callback the scheduler says may be dialed now.
/// Injected at start-up (the callback attempt module implements it), so
/// the service decides *when* without depending on *how* a call is placed.
pub trait AttemptStarter: Send + Sync {
    /// Start an attempt for `cb` under a lease of `lease`; it reports back
    /// through `svc` and leaves the queue when `stop` fires.
    fn start(
        &self,
        svc: CallbackHandle,
        cb: Callback,
        lease: Duration,
        stop: oneshot::Receiver<()>,
    );
}

/// What the callback service needs from the rest of the server.
pub struct CallbackDeps {
    /// Live callers ahead of a callback (its announced position).
    pub acd: AcdHandle,
    /// Today's callback counters.
    pub live: Arc<Live>,
    /// Places attempts.
    pub attempts: Arc<dyn AttemptStarter>,
    /// This node's id (`Config::node_id`): on leases and event rows.
    pub node: String,
    /// Who runs the queues' ACD: attempts wait in its lines, so only
    /// that node starts them (one queue across nodes).
    pub owner: crate::cluster::OwnerWatch,
}

/// Start the service: load and restore live callbacks, then run.
pub async fn spawn(
    deps: CallbackDeps,
    cfg: &crate::config::Config,
    store: Store,
) -> anyhow::Result<CallbackHandle> {
    let node = deps.node.clone();
    let mut scheduler = Scheduler::new(policies(cfg), Policy::default());
    let now = Utc::now();
    let released = store.release_stale_leases(&node, now).await?;
    if released > 0 {
        tracing::info!(
            callbacks = released,
            "released leases left by the previous process"
        );
    }
    let rows = store.live_callbacks().await?;
    let mut restored = Vec::new();
    // What another node is dialing under its running lease stays its own:
    // restoring it here would put it back in line (or end it) under that
    // node's feet. The periodic sync adopts it if that lease runs out.
    let now_s = ts(now);
    for r in rows
        .iter()
        .filter(|r| !dialed_elsewhere(&r.state, r.lease_until.as_deref(), &now_s))
    {
        match from_row(r) {
            Some(cb) => restored.push(cb),
            None => tracing::error!(id = %r.id, "unreadable callback row left untouched"),
        }
    }
    let count = restored.len();
    let transitions = scheduler.restore(restored, now);
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = CallbackHandle {
        tx,
        node: node.clone(),
    };
    let mut svc = Service {
        scheduler,
        store,
        node,
        handle: handle.clone(),
        deps,
        lease: Duration::from_secs(cfg.callbacks.lease_secs.max(5)),
        sync_every: Duration::from_secs(cfg.callbacks.sync_secs.max(1)),
        synced_at: Some(now),
        attempts: HashMap::new(),
        draining: false,
    };
    svc.persist(&transitions).await;
    if count > 0 {
        tracing::info!(callbacks = count, "callbacks restored from the store");
    }
    tokio::spawn(svc.run(rx));
    Ok(handle)
}

/// Being dialed (or talked to) under a lease that has not run out: after
/// the start-up release, only another live node holds such a lease.
fn dialed_elsewhere(state: &str, lease_until: Option<&str>, now: &str) -> bool {
    matches!(state, "dialing" | "connected") && lease_until.is_some_and(|l| l > now)
}

struct Service {
    scheduler: Scheduler,
    store: Store,
    node: String,
    handle: CallbackHandle,
    deps: CallbackDeps,
    lease: Duration,
    sync_every: Duration,
    /// When the last sync round (or the start-up load) began: the next
    /// round reads what changed since then (`sync.rs`).
    synced_at: Option<DateTime<Utc>>,
    /// Stop switches of running attempts (a withdrawn, cancelled or
    /// rescheduled callback leaves the queue at once).
    attempts: HashMap<String, oneshot::Sender<()>>,
    /// The node drains: no attempt is started any more.
    draining: bool,
}

impl Service {
    fn stop_attempt(&mut self, id: &str) {
        if let Some(stop) = self.attempts.remove(id) {
            let _ = stop.send(());
        }
    }

    async fn run(mut self, mut rx: UnboundedReceiver<Cmd>) {
        let mut sync = tokio::time::interval(self.sync_every);
        let mut owner = self.deps.owner.clone();
        loop {
            self.tick().await;
            let next = self.scheduler.poll_timeout(Utc::now());
            let sleep = async {
                match next {
                    Some(t) => {
                        let d = (t - Utc::now()).to_std().unwrap_or_default();
                        tokio::time::sleep(d).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(c) => self.on_cmd(c).await,
                    None => return,
                },
                _ = sleep => {}
                _ = sync.tick() => self.sync(false).await,
                // Took the queues over (or lost them): start or stop now.
                Ok(()) = owner.changed() => self.sync(true).await,
            }
        }
    }

    /// Expire what is too old; start attempts for what may be dialed now.
    async fn tick(&mut self) {
        let now = Utc::now();
        let expired = self.scheduler.expire(now);
        self.persist(&expired).await;
        // The dialing window closed on callbacks waiting in the queue.
        for id in self.scheduler.withdraw(now) {
            tracing::info!(%id, "dialing window closed; callback leaves the queue until it opens");
            self.stop_attempt(&id);
        }
        self.attempts.retain(|_, stop| !stop.is_closed());
        if !self.deps.owner.borrow().is_me() {
            // The queues run elsewhere: attempts waiting in our line
            // leave it (their callbacks stay queued in the store, where
            // the owner adopts them).
            let ids: Vec<String> = self.attempts.keys().cloned().collect();
            for id in ids {
                tracing::info!(%id, "the queues moved to another node; the attempt leaves our line");
                self.stop_attempt(&id);
            }
            return;
        }
        if self.draining {
            return;
        }
        for cb in self.scheduler.eligible(now) {
            tracing::info!(id = %cb.id, queue = %cb.queue, "callback enters the queue");
            let (stop, stopped) = oneshot::channel();
            self.attempts.insert(cb.id.clone(), stop);
            self.deps
                .attempts
                .start(self.handle.clone(), cb, self.lease, stopped);
        }
    }

    async fn on_cmd(&mut self, cmd: Cmd) {
        let now = Utc::now();
        match cmd {
            Cmd::Request(req, reply) => {
                let id = new_id();
                let result = self.scheduler.request(
                    NewCallback {
                        id: id.clone(),
                        queue: req.queue.clone(),
                        number: req.number,
                        entered_at: req.entered_at,
                        preferred: req.preferred,
                        not_before: req.not_before,
                        context: req.context,
                        origin: req.origin,
                    },
                    now,
                );
                let answer = match result {
                    Err(r) => Err(r.into()),
                    Ok((cb, transitions)) => {
                        // Committed before anybody hears "we will call you back".
                        let row = to_row(&cb);
                        let events: Vec<_> = transitions
                            .iter()
                            .map(|t| event_row(t, &self.node))
                            .collect();
                        match self.store.insert_callback(&row, &events).await {
                            Ok(()) => {
                                let ahead = self.position(&cb).await;
                                tracing::info!(id = %cb.id, queue = %cb.queue, number = %cb.number, ahead, "callback requested");
                                Ok((cb, ahead))
                            }
                            Err(InsertError::Duplicate) => {
                                self.scheduler.forget(&id);
                                Err(CallbackRefusal::StoredElsewhere.into())
                            }
                            Err(InsertError::Other(e)) => {
                                self.scheduler.forget(&id);
                                tracing::error!(error = %e, "cannot store a callback request");
                                Err(CallbackRefusal::Store.into())
                            }
                        }
                    }
                };
                let _ = reply.send(answer);
            }
            Cmd::Cancel(id, reason, reply) => {
                let r = match self.scheduler.cancel(&id, &reason, now) {
                    Ok(t) => {
                        self.persist(&[t]).await;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Cmd::Reschedule(id, at, reply) => {
                let r = match self.scheduler.reschedule(&id, at, now) {
                    Ok(t) => {
                        self.stop_attempt(&id);
                        self.persist(&[t]).await;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Cmd::LiveFor(number, queue, reply) => {
                let n = ringback_callback::normalize_number(&number).unwrap_or(number);
                let _ = reply.send(self.scheduler.live_for_number(&n, &queue).cloned());
            }
            Cmd::Pending(queue, reply) => {
                let max = self.scheduler.policy(&queue).max_pending;
                let _ = reply.send((self.scheduler.pending_in_queue(&queue), max));
            }
            Cmd::Dialing(id, reply) => {
                let ok = match self.scheduler.dialing(&id, now) {
                    Ok(t) => {
                        self.persist(&[t]).await;
                        true
                    }
                    Err(e) => {
                        tracing::warn!(%id, error = %e, "callback cannot be dialed now");
                        let withdrawn = self.scheduler.withdraw(now);
                        if !withdrawn.is_empty() {
                            tracing::debug!(?withdrawn, "withdrawn after a refused dial");
                        }
                        false
                    }
                };
                let _ = reply.send(ok);
            }
            Cmd::Connected(id) => match self.scheduler.connected(&id, now) {
                Ok(t) => self.persist(&[t]).await,
                Err(e) => tracing::warn!(%id, error = %e, "connected refused"),
            },
            Cmd::Finished(id, result) => {
                match self.scheduler.finished(&id, result, now) {
                    Ok(t) => self.persist(&t).await,
                    Err(e) => tracing::warn!(%id, error = %e, "attempt result refused"),
                }
                if let Err(e) = self.store.release_callback(&id, &self.node).await {
                    tracing::warn!(%id, error = %e, "cannot release the lease");
                }
            }
            Cmd::Drain(reply) => {
                if !self.draining {
                    self.draining = true;
                    // Waiting in a queue (not dialing, not talking): leave
                    // it. An attempt about to dial ignores the stop, and
                    // one dialing or talking runs to its end.
                    let waiting: Vec<String> = self
                        .attempts
                        .keys()
                        .filter(|id| {
                            self.scheduler
                                .get(id)
                                .is_some_and(|cb| cb.state.is_waiting())
                        })
                        .cloned()
                        .collect();
                    for id in waiting {
                        tracing::info!(%id, "draining: callback leaves this node's queue");
                        self.stop_attempt(&id);
                        let _ = self.scheduler.release(&id, now);
                    }
                }
                self.attempts.retain(|_, stop| !stop.is_closed());
                let _ = reply.send(self.attempts.len());
            }
            Cmd::Lost(id) => {
                // Finished by another node meanwhile? Then let go of it.
                let ended = matches!(
                    self.store.callback(&id).await,
                    Ok(Some((row, _))) if CallbackState::parse(&row.state).is_none_or(|s| s.is_terminal())
                );
                if ended {
                    self.scheduler.forget(&id);
                } else {
                    let _ = self.scheduler.release(&id, now);
                }
            }
        }
    }

    /// Callers and callbacks ahead of this one in its queue.
    async fn position(&self, cb: &Callback) -> usize {
        let ahead_callbacks = self.scheduler.callbacks_ahead(&cb.queue, cb.entered_at);
        let live_ahead = {
            let (_, queues) = self.deps.acd.snapshot().await;
            let age = (Utc::now() - cb.entered_at).to_std().unwrap_or_default();
            queues
                .iter()
                .filter(|q| q.name.as_str() == cb.queue)
                .flat_map(|q| q.waiting.iter())
                .filter(|w| !w.call.as_str().starts_with("cb-") && w.waited > age)
                .count()
        };
        ahead_callbacks + live_ahead
    }

    /// Write transitions: the new current state of each callback plus one
    /// event row per transition, in one transaction per callback.
    async fn persist(&mut self, transitions: &[Transition]) {
        let mut by_id: HashMap<&str, Vec<&Transition>> = HashMap::new();
        for t in transitions {
            by_id.entry(t.id.as_str()).or_default().push(t);
        }
        for (id, ts_) in by_id {
            let events: Vec<_> = ts_.iter().map(|t| event_row(t, &self.node)).collect();
            let written = match self.scheduler.get(id) {
                Some(cb) => self.store.update_callback(&to_row(cb), &events).await,
                None => {
                    // It just ended and the scheduler let go of it: the last
                    // transition carries the final state.
                    let Some(last) = ts_.last() else { continue };
                    self.store
                        .end_callback(
                            id,
                            last.to.as_str(),
                            last.at,
                            i64::from(last.attempt),
                            last.result.as_ref().map(ToString::to_string),
                            &events,
                        )
                        .await
                }
            };
            if let Err(e) = written {
                tracing::error!(%id, error = %e, "cannot persist a callback transition");
            }
            for t in &ts_ {
                tracing::info!(%id, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "callback");
                match t.to {
                    CallbackState::Completed => self.deps.live.callback_ended(true),
                    CallbackState::Failed | CallbackState::Expired => {
                        self.deps.live.callback_ended(false)
                    }
                    _ => {}
                }
            }
            if self
                .scheduler
                .get(id)
                .is_some_and(|cb| cb.state.is_terminal())
            {
                self.scheduler.forget(id);
            }
            if ts_.iter().any(|t| t.to.is_terminal()) {
                self.stop_attempt(id);
            }
        }
    }
}

impl CallbackHandle {
    /// An attempt reached the customer-dialing step. False: do not dial
    /// (cancelled or expired meanwhile).
    pub async fn dialing(&self, id: &str) -> bool {
        self.ask(|r| Cmd::Dialing(id.into(), r))
            .await
            .unwrap_or(false)
    }

    /// The customer accepted (pressed 1).
    pub fn connected(&self, id: &str) {
        let _ = self.tx.send(Cmd::Connected(id.into()));
    }

    /// The attempt ended.
    pub fn finished(&self, id: &str, result: AttemptResult) {
        let _ = self.tx.send(Cmd::Finished(id.into(), result));
    }

    /// Another node holds this callback's lease.
    pub fn lost(&self, id: &str) {
        let _ = self.tx.send(Cmd::Lost(id.into()));
    }
}
