//! The sync between nodes sharing one store: adopt the callbacks other
//! nodes created, forget the ones they finished, and take over what a
//! crashed node was dialing once its lease ran out.
//!
//! A round reads only what changed since the previous one began (less
//! [`OVERLAP`]) plus the leases that ran out; the full rows of only the
//! callbacks this node does not hold. A full round (every pending
//! callback, briefly) runs when the queues change owner. Reading all
//! 10,000 pending callbacks every round held up agent offers on
//! PostgreSQL by up to 50 ms (`bench/callback.sh`).

use std::collections::HashSet;

use chrono::Utc;
use ringback_callback::{Callback, CallbackState};

use super::{dialed_elsewhere, from_row, Service};
use crate::store::ts;

/// How far before the previous round's start a round reads: a change
/// stamped just before that moment may have committed just after it, and
/// node clocks may disagree a little (they must agree within this).
const OVERLAP: chrono::Duration = chrono::Duration::seconds(10);

impl Service {
    /// One sync round; `full` reads every pending callback instead of
    /// what changed.
    pub(super) async fn sync(&mut self, full: bool) {
        let started = Utc::now();
        let since = self.synced_at.filter(|_| !full);
        let briefs = match since {
            Some(t) => self.store.changed_briefs(t - OVERLAP, started).await,
            None => self.store.live_briefs().await,
        };
        let briefs = match briefs {
            Ok(b) => b,
            Err(e) => {
                // Nothing lost: the next round reads from the same point.
                tracing::warn!(error = %e, "callback sync: cannot read the store");
                return;
            }
        };
        let gone: Vec<String> = if since.is_some() {
            // What changed: those of ours that ended elsewhere.
            briefs
                .iter()
                .filter(|b| !is_live(&b.state) && self.scheduler.get(&b.id).is_some())
                .map(|b| b.id.clone())
                .collect()
        } else {
            // Everything pending: ours that are no longer among them.
            let live: HashSet<&str> = briefs.iter().map(|b| b.id.as_str()).collect();
            self.scheduler
                .live()
                .filter(|cb| !live.contains(cb.id.as_str()))
                .map(|cb| cb.id.clone())
                .collect()
        };
        for id in gone {
            tracing::info!(%id, "callback finished elsewhere");
            self.scheduler.forget(&id);
            self.stop_attempt(&id);
        }
        // Adopt what waits, and what a node that stopped renewing its lease
        // (crashed) left behind; never what another node is dialing now.
        let now_s = ts(started);
        let unknown: Vec<String> = briefs
            .iter()
            .filter(|b| self.adoptable(&b.id, &b.state, b.lease_until.as_deref(), &now_s))
            .map(|b| b.id.clone())
            .collect();
        if !unknown.is_empty() {
            let rows = match self.store.callbacks_by_id(&unknown).await {
                Ok(r) => r,
                Err(e) => {
                    // Not read: the next round reads the same changes again.
                    tracing::warn!(error = %e, "callback sync: cannot read callbacks to adopt");
                    return;
                }
            };
            // The rows are newer than the briefs: check them again.
            let now_s = ts(Utc::now());
            let adopt: Vec<Callback> = rows
                .iter()
                .filter(|r| self.adoptable(&r.id, &r.state, r.lease_until.as_deref(), &now_s))
                .filter_map(from_row)
                .collect();
            if !adopt.is_empty() {
                let t = self.scheduler.restore(adopt, Utc::now());
                self.persist(&t).await;
            }
        }
        self.synced_at = Some(started);
    }

    /// A callback this node should take into its scheduler: not finished,
    /// not held yet, and not being dialed elsewhere under a running lease.
    fn adoptable(&self, id: &str, state: &str, lease_until: Option<&str>, now: &str) -> bool {
        is_live(state)
            && self.scheduler.get(id).is_none()
            && !dialed_elsewhere(state, lease_until, now)
    }
}

/// Not finished, by the scheduler's own rule; a state this build does not
/// know counts as not finished, as the store's `NOT IN` list counts it.
fn is_live(state: &str) -> bool {
    CallbackState::parse(state).is_none_or(CallbackState::is_live)
}
