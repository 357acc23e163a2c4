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
    ///
    /// One multi-row `INSERT` per table (per [`ROWS_PER_STATEMENT`] rows),
    /// not one per row: every call in a queue adds at least two queue-log
    /// rows, and with SQLite each statement is a round trip to its worker
    /// thread (two thread wake-ups). Row ids follow the `VALUES` order, so
    /// "the last row" still means the latest event.
    pub async fn record_logs(
        &self,
        agent: &[AgentEvent],
        queue: &[QueueLogRow],
        node: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for chunk in agent.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO agent_events (agent, at, from_state, to_state, reason, node_id) ",
                );
                q.push_values(chunk, |mut b, e| {
                    b.push_bind(&e.agent)
                        .push_bind(ts(e.at))
                        .push_bind(&e.from_state)
                        .push_bind(&e.to_state)
                        .push_bind(&e.reason)
                        .push_bind(node);
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in queue.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO queue_log (at, queue, call_id, agent, event, data, node_id) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(ts(r.at))
                        .push_bind(&r.queue)
                        .push_bind(&r.call_id)
                        .push_bind(&r.agent)
                        .push_bind(&r.event)
                        .push_bind(&r.data)
                        .push_bind(node);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// Rows per `INSERT`: at most 7 parameters each, well under SQLite's
/// 32,766 and PostgreSQL's 65,535 bound parameters per statement.
const ROWS_PER_STATEMENT: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    /// More rows than one statement takes, in one batch: every row is
    /// stored, in the given order, with the node's id.
    #[tokio::test]
    async fn a_batch_over_several_statements_keeps_every_row_in_order() {
        let (_dir, store) = crate::store::scratch_sqlite().await;
        let at = Utc::now();
        let n = ROWS_PER_STATEMENT * 2 + 1;
        let agents: Vec<AgentEvent> = (0..n)
            .map(|i| AgentEvent {
                agent: format!("a{i}"),
                at,
                from_state: "available".into(),
                to_state: "paused".into(),
                reason: i.to_string(),
            })
            .collect();
        let queue: Vec<QueueLogRow> = (0..n)
            .map(|i| QueueLogRow {
                at,
                queue: Some("sales".into()),
                call_id: Some(format!("c{i}")),
                agent: None,
                event: "ENTERQUEUE".into(),
                data: i.to_string(),
            })
            .collect();
        store
            .record_logs(&agents, &queue, "node-7")
            .await
            .expect("record");
        let Store::Sqlite(p) = &store else {
            unreachable!()
        };
        let a: Vec<(String, String)> =
            sqlx::query_as("SELECT reason, node_id FROM agent_events ORDER BY id")
                .fetch_all(p)
                .await
                .expect("agent_events");
        let q: Vec<(String, String)> =
            sqlx::query_as("SELECT data, node_id FROM queue_log ORDER BY id")
                .fetch_all(p)
                .await
                .expect("queue_log");
        let want: Vec<(String, String)> =
            (0..n).map(|i| (i.to_string(), "node-7".into())).collect();
        assert_eq!(a, want);
        assert_eq!(q, want);
    }
}
