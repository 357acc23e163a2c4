//! The append-only logs: agent state changes (`agent_events`) and the
//! Asterisk-style queue log (`queue_log`). Every row carries the node that
//! wrote it (`node_id`): each node runs its own ACD, and start-up recovery
//! on a shared PostgreSQL closes only its own node's rows.

use chrono::{DateTime, Utc};

use super::{ts, Store};

/// One agent state change.
#[derive(Debug, Clone)]
pub struct AgentEvent {
    /// Agent id.
    pub agent: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Previous state name.
    pub from_state: String,
    /// New state name.
    pub to_state: String,
    /// Why (login, API, auto-pause …).
    pub reason: String,
}

/// One queue log event.
#[derive(Debug, Clone)]
pub struct QueueLogRow {
    /// When.
    pub at: DateTime<Utc>,
    /// Queue.
    pub queue: Option<String>,
    /// Caller's Call-ID.
    pub call_id: Option<String>,
    /// Agent.
    pub agent: Option<String>,
    /// `ENTERQUEUE`, `CONNECT`, …
    pub event: String,
    /// Details.
    pub data: String,
}

impl Store {
    /// Append agent state changes and queue log events of `node`, each in
    /// the given order, in one transaction.
    pub async fn record_logs(
        &self,
        agent: &[AgentEvent],
        queue: &[QueueLogRow],
        node: &str,
    ) -> anyhow::Result<()> {
        let a = "INSERT INTO agent_events (agent, at, from_state, to_state, reason, node_id) \
                 VALUES ($1, $2, $3, $4, $5, $6)";
        let q = "INSERT INTO queue_log (at, queue, call_id, agent, event, data, node_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for e in agent {
                sqlx::query(a)
                    .bind(&e.agent)
                    .bind(ts(e.at))
                    .bind(&e.from_state)
                    .bind(&e.to_state)
                    .bind(&e.reason)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
            }
            for r in queue {
                sqlx::query(q)
                    .bind(ts(r.at))
                    .bind(&r.queue)
                    .bind(&r.call_id)
                    .bind(&r.agent)
                    .bind(&r.event)
                    .bind(&r.data)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
