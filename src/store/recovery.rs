//! Start-up recovery: closing the calls, queue entries, agent legs and
//! agent sessions that a killed process left open.
//!
//! Node-scoped: a SQLite file belongs to one process at a time, so every
//! open row there is the previous process's. A PostgreSQL database may be
//! shared with live nodes: there a node closes only the call records it
//! wrote itself (`calls.node_id` = its id) and, of the rows written before
//! node ids existed (`node_id IS NULL`), only those that started more than
//! [`LEGACY_ORPHAN_HOURS`] ago; and only its own queue-log entries, agent
//! sessions and agent states (`queue_log.node_id`, `agent_events.node_id`:
//! each node runs its own ACD, so an agent's state is one node's), never
//! those of rows without a node id.

use chrono::{DateTime, Utc};

use super::{parse_ts, ts, Store};

/// What [`Store::recover_after_restart`] closed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Callers left waiting or talking in the queue log (now `INTERRUPTED`).
    pub queue_calls: u64,
    /// Talking agent legs given a call record from the queue log.
    pub agent_legs: u64,
    /// Agent sessions logged off in the queue log.
    pub agent_sessions: u64,
    /// Agents whose stored state was moved to `logged-out`.
    pub agent_states: u64,
}

/// On PostgreSQL, an open call record without a node id (written before
/// node ids existed, possibly by a node still running an older version) is
/// closed at start-up only when it started this many hours ago: no call
/// lasts that long, so it was left by a process that is gone.
pub const LEGACY_ORPHAN_HOURS: i64 = 24;

/// Reason stored for states and legs closed at start-up.
const RESTART_REASON: &str = "restart: the previous process ended without closing it";

/// A queue-log call whose last event left it waiting or talking.
#[derive(Debug, sqlx::FromRow)]
struct DanglingCall {
    call_id: String,
    queue: Option<String>,
    agent: Option<String>,
    event: String,
    at: String,
    data: String,
    enter_data: Option<String>,
}

/// What a recovered agent leg copies from its caller's record.
#[derive(Debug, Default, sqlx::FromRow)]
struct InboundRow {
    caller: String,
    dialplan: Option<String>,
    dialplan_version: Option<String>,
    path: String,
    digits: String,
}

/// Whether an agent leg already has its record (the call wrote one): the
/// same query for both drivers but for the substring test of `vars`.
const LEG_EXISTS_SQLITE: &str = "SELECT COUNT(*) FROM calls WHERE leg = $1 AND dialed = $2 \
     AND answered_at IS NOT NULL AND instr(vars, $3) > 0";
const LEG_EXISTS_POSTGRES: &str = "SELECT COUNT(*) FROM calls WHERE leg = $1 AND dialed = $2 \
     AND answered_at IS NOT NULL AND strpos(vars, $3) > 0";

/// Write the call record of an agent leg that was talking when the process
/// died (see [`Store::recover_after_restart`]), in the transaction `$tx`
/// (of either driver); `$exists` is the driver's `LEG_EXISTS_*`. Evaluates
/// to false if the leg already has one.
macro_rules! insert_recovered_leg {
    ($tx:expr, $exists:expr, $d:expr, $agent:expr, $node:expr, $now:expr) => {{
        let (tx, d, agent, node, now): (_, &DanglingCall, &str, &str, DateTime<Utc>) =
            ($tx, $d, $agent, $node, $now);
        // `cb-<callback id>-<suffix>` is a callback attempt; anything else is
        // a caller's SIP Call-ID.
        let callback_id = d
            .call_id
            .strip_prefix("cb-")
            .and_then(|rest| rest.rsplit_once('-'))
            .map(|(id, _)| id.to_string());
        let (leg, key, link) = match &callback_id {
            Some(id) => ("callback-agent", "callback_id", id.clone()),
            None => ("agent", "inbound_call_id", d.call_id.clone()),
        };
        let link_json = serde_json::to_string(&link)?;
        // A record written by the call itself (if it ever writes one while
        // talking) wins over this reconstruction.
        let exists: i64 = sqlx::query_scalar($exists)
            .bind(leg)
            .bind(agent)
            .bind(&link_json)
            .fetch_one(&mut **tx)
            .await?;
        if exists > 0 {
            false
        } else {
            let answered = parse_ts(&d.at).unwrap_or(now);
            // CONNECT data: holdtime||ringtime|waited.
            let ring_secs: i64 = d
                .data
                .split('|')
                .nth(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let started = answered - chrono::Duration::seconds(ring_secs);
            // ENTERQUEUE data: |caller|position.
            let entered_caller = d
                .enter_data
                .as_deref()
                .and_then(|e| e.split('|').nth(1))
                .unwrap_or_default()
                .to_string();
            // The caller's own record knows the dialplan; callback attempts
            // have none.
            let inbound: Option<InboundRow> = if callback_id.is_none() {
                sqlx::query_as(
                    "SELECT caller, dialplan, dialplan_version, path, digits FROM calls \
                     WHERE call_id = $1 AND leg = 'inbound'",
                )
                .bind(&d.call_id)
                .fetch_optional(&mut **tx)
                .await?
            } else {
                None
            };
            let InboundRow {
                caller,
                dialplan,
                dialplan_version: version,
                path,
                digits,
            } = inbound.unwrap_or(InboundRow {
                caller: entered_caller,
                ..InboundRow::default()
            });
            let vars = serde_json::json!({ key: link, "recovered_from": "queue_log" }).to_string();
            // The leg's own Call-ID died with the process: the record is
            // keyed by the queue log's call id, which is also what the leg
            // belongs to (the caller's Call-ID, or the callback attempt).
            let n = sqlx::query(
                "INSERT INTO calls (call_id, leg, caller, dialed, dialplan, dialplan_version, \
                 started_at, answered_at, ended_at, path, digits, vars, disposition, hangup_by, \
                 queue, parent_call_id, node_id) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,'interrupted','restart',$13,$1,$14) \
                 ON CONFLICT (call_id, leg) DO NOTHING",
            )
            .bind(&d.call_id)
            .bind(leg)
            .bind(&caller)
            .bind(agent)
            .bind(&dialplan)
            .bind(&version)
            .bind(ts(started))
            .bind(ts(answered))
            .bind(ts(now))
            .bind(&path)
            .bind(&digits)
            .bind(&vars)
            .bind(&d.queue)
            .bind(node)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            n == 1
        }
    }};
}

/// A query builder for `pool`'s driver.
fn builder<DB: sqlx::Database>(_pool: &sqlx::Pool<DB>, init: &str) -> sqlx::QueryBuilder<DB>
where
    DB::Arguments: Default,
{
    sqlx::QueryBuilder::new(init)
}

impl Store {
    /// Close calls that a previous process of this node left open (it
    /// crashed or was killed): they end now with disposition `interrupted`.
    ///
    /// SQLite: every open row (one process owns the file; the default node
    /// id changes with the pid). PostgreSQL: the rows of `node`, and rows
    /// without a node id that started more than [`LEGACY_ORPHAN_HOURS`]
    /// ago; another node's calls are left alone, whether it is alive or not.
    pub async fn close_orphaned_calls(&self, node: &str) -> anyhow::Result<u64> {
        let now = Utc::now();
        let n = match self {
            Store::Sqlite(p) => sqlx::query(
                "UPDATE calls SET ended_at = $1, disposition = 'interrupted', hangup_by = 'restart' \
                 WHERE disposition = 'in_progress'",
            )
            .bind(ts(now))
            .execute(p)
            .await?
            .rows_affected(),
            Store::Postgres(p) => sqlx::query(
                "UPDATE calls SET ended_at = $1, disposition = 'interrupted', hangup_by = 'restart' \
                 WHERE disposition = 'in_progress' \
                 AND (node_id = $2 OR (node_id IS NULL AND started_at < $3))",
            )
            .bind(ts(now))
            .bind(node)
            .bind(ts(now - chrono::Duration::hours(LEGACY_ORPHAN_HOURS)))
            .execute(p)
            .await?
            .rows_affected(),
        };
        Ok(n)
    }

    /// Start-up recovery of what a killed process left open in the queue
    /// log and the agent history, in one transaction (a crash during
    /// recovery simply repeats it at the next start):
    ///
    /// - a caller whose last queue event is `ENTERQUEUE` (waiting) or
    ///   `CONNECT` (talking) gets an `INTERRUPTED` event (data
    ///   `restart|waiting` or `restart|connected`);
    /// - a caller's call record closed by [`Store::close_orphaned_calls`]
    ///   gets the queue the caller was last in, also when they had left it
    ///   already (a callback taken, the confirmation playing);
    /// - an agent leg that was talking (`CONNECT` without `COMPLETE*`) has no
    ///   call record yet (legs are written when they end), so one is written
    ///   from the queue log: leg `agent` (or `callback-agent`), the queue
    ///   log's call id, answered at the `CONNECT`, disposition
    ///   `interrupted`, `hangup_by = 'restart'`, `vars.recovered_from =
    ///   "queue_log"`;
    /// - an agent session without `AGENTLOGOFF` is logged off;
    /// - an agent whose last `agent_events` state is not `logged-out` gets a
    ///   `… → logged-out` row (reason `restart`): agents start logged out
    ///   and log in again when their phones register with the new process;
    /// - finally a `QUEUESTART` marker (as Asterisk writes at start) bounds
    ///   the next recovery to what the new process logs.
    ///
    /// Every row written carries `node` as its node id; recovered legs also
    /// the queue log's call id as their `parent_call_id`.
    ///
    /// SQLite, which one process owns: every row after the last marker.
    /// PostgreSQL, which live nodes may share: only `node`'s rows (queue log
    /// after `node`'s last marker, `node`'s agent states, and of the calls
    /// only `node`'s records get their queue), so another node's waiting
    /// callers, agent sessions and agent states are never touched, nor rows
    /// without a node id.
    pub async fn recover_after_restart(&self, node: &str) -> anyhow::Result<Recovery> {
        let now = Utc::now();
        let now_s = ts(now);
        // Whose rows: `None` every row (SQLite), else this node's. Each query
        // reads it as `($2 IS NULL OR node_id = $2)`.
        let (scope, leg_exists) = match self {
            Store::Sqlite(_) => (None, LEG_EXISTS_SQLITE),
            Store::Postgres(_) => (Some(node), LEG_EXISTS_POSTGRES),
        };
        let marker = "INSERT INTO queue_log (at, queue, call_id, agent, event, data, node_id) \
                      VALUES ($1, NULL, NULL, NULL, 'QUEUESTART', '', $2)";
        let mut rec = Recovery::default();
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let since: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(id), 0) FROM queue_log WHERE event = 'QUEUESTART' \
                 AND ($1 IS NULL OR node_id = $1)",
            )
            .bind(scope)
            .fetch_one(&mut *tx)
            .await?;

            // Callers left waiting or talking.
            let dangling: Vec<DanglingCall> = sqlx::query_as(
                "SELECT q.call_id, q.queue, q.agent, q.event, q.at, q.data, \
                 (SELECT e.data FROM queue_log e WHERE e.call_id = q.call_id \
                  AND e.event = 'ENTERQUEUE' AND e.id > $1 AND ($2 IS NULL OR e.node_id = $2) \
                  ORDER BY e.id DESC LIMIT 1) AS enter_data \
                 FROM queue_log q WHERE q.id IN (SELECT MAX(id) FROM queue_log WHERE id > $1 \
                 AND ($2 IS NULL OR node_id = $2) AND call_id IS NOT NULL \
                 AND event IN ('ENTERQUEUE','CONNECT','ABANDON','EXITWITHTIMEOUT', \
                 'EXITEMPTY','EXITWITHKEY','COMPLETECALLER','COMPLETEAGENT','TRANSFER','INTERRUPTED') \
                 GROUP BY call_id) AND q.event IN ('ENTERQUEUE','CONNECT') ORDER BY q.id",
            )
            .bind(since)
            .bind(scope)
            .fetch_all(&mut *tx)
            .await?;
            // Set-based, not per caller: with 10,000 callbacks waiting in a
            // queue there are 10,000 dangling callers, and two statements
            // per caller took most of a second. SQLite allows 32,766 bound
            // parameters; 6 per row.
            for chunk in dangling.chunks(1000) {
                let mut q = builder(
                    p,
                    "INSERT INTO queue_log (at, queue, call_id, agent, event, data, node_id) ",
                );
                q.push_values(chunk, |mut b, d| {
                    b.push_bind(&now_s)
                        .push_bind(&d.queue)
                        .push_bind(&d.call_id)
                        .push_bind(&d.agent)
                        .push("'INTERRUPTED'")
                        .push_bind(if d.event == "CONNECT" {
                            "restart|connected"
                        } else {
                            "restart|waiting"
                        })
                        .push_bind(node);
                });
                q.build().execute(&mut *tx).await?;
            }
            rec.queue_calls = dangling.len() as u64;
            // The callers' records were written at answer, before any queue:
            // each one the killed process left open gets the queue it was
            // last in, whether it was still there (waiting, talking) or had
            // left it (e.g. for a callback, while hearing the confirmation).
            sqlx::query(
                "UPDATE calls SET queue = (SELECT q.queue FROM queue_log q \
                 WHERE q.call_id = calls.call_id AND q.queue IS NOT NULL AND q.id > $1 \
                 AND ($2 IS NULL OR q.node_id = $2) ORDER BY q.id DESC LIMIT 1) \
                 WHERE leg = 'inbound' AND queue IS NULL AND disposition = 'interrupted' \
                 AND hangup_by = 'restart' AND ($2 IS NULL OR node_id = $2) \
                 AND call_id IN (SELECT call_id FROM queue_log WHERE id > $1 \
                 AND queue IS NOT NULL AND ($2 IS NULL OR node_id = $2))",
            )
            .bind(since)
            .bind(scope)
            .execute(&mut *tx)
            .await?;
            for d in dangling.iter().filter(|d| d.event == "CONNECT") {
                if let Some(agent) = d.agent.as_deref() {
                    if insert_recovered_leg!(&mut tx, leg_exists, d, agent, node, now) {
                        rec.agent_legs += 1;
                    }
                }
            }

            // Agent sessions in the queue log.
            let sessions: Vec<(String, String)> = sqlx::query_as(
                "SELECT agent, at FROM queue_log WHERE id IN (SELECT MAX(id) FROM queue_log \
                 WHERE id > $1 AND ($2 IS NULL OR node_id = $2) AND agent IS NOT NULL \
                 AND event IN ('AGENTLOGIN','AGENTLOGOFF') GROUP BY agent) \
                 AND event = 'AGENTLOGIN' ORDER BY id",
            )
            .bind(since)
            .bind(scope)
            .fetch_all(&mut *tx)
            .await?;
            for (agent, at) in &sessions {
                let session = parse_ts(at).map_or(0, |t| (now - t).num_seconds().max(0));
                sqlx::query(
                    "INSERT INTO queue_log (at, queue, call_id, agent, event, data, node_id) \
                     VALUES ($1, NULL, NULL, $2, 'AGENTLOGOFF', $3, $4)",
                )
                .bind(&now_s)
                .bind(agent)
                .bind(format!("|{session}"))
                .bind(node)
                .execute(&mut *tx)
                .await?;
                rec.agent_sessions += 1;
            }

            // Agent state history: each agent's last state on this node.
            let states: Vec<(String, String)> = sqlx::query_as(
                "SELECT agent, to_state FROM agent_events WHERE id IN \
                 (SELECT MAX(id) FROM agent_events WHERE ($1 IS NULL OR node_id = $1) \
                 GROUP BY agent) AND to_state <> 'logged-out' ORDER BY id",
            )
            .bind(scope)
            .fetch_all(&mut *tx)
            .await?;
            for (agent, state) in &states {
                sqlx::query(
                    "INSERT INTO agent_events (agent, at, from_state, to_state, reason, node_id) \
                     VALUES ($1, $2, $3, 'logged-out', $4, $5)",
                )
                .bind(agent)
                .bind(&now_s)
                .bind(state)
                .bind(RESTART_REASON)
                .bind(node)
                .execute(&mut *tx)
                .await?;
                rec.agent_states += 1;
            }

            sqlx::query(marker)
                .bind(&now_s)
                .bind(node)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(rec)
    }
}

#[cfg(test)]
mod tests;
