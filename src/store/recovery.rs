//! Start-up recovery: closing the calls, queue entries, agent legs and
//! agent sessions that a killed process left open.
//!
//! Node-scoped: a SQLite file belongs to one process at a time, so every
//! open row there is the previous process's. A PostgreSQL database may be
//! shared with live nodes: there a node closes only the call records it
//! wrote itself (`calls.node_id` = its id) and, of the rows written before
//! node ids existed (`node_id IS NULL`), only those that started more than
//! [`LEGACY_ORPHAN_HOURS`] ago.

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

/// Write the call record of an agent leg that was talking when the process
/// died (see [`Store::recover_after_restart`]). False if it already has one.
async fn insert_recovered_leg(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    d: &DanglingCall,
    agent: &str,
    node: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    // `cb-<callback id>-<suffix>` is a callback attempt; anything else is a
    // caller's SIP Call-ID.
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
    let exists: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM calls WHERE leg = $1 AND dialed = $2 AND answered_at IS NOT NULL \
         AND instr(vars, $3) > 0",
    )
    .bind(leg)
    .bind(agent)
    .bind(&link_json)
    .fetch_one(&mut **tx)
    .await?;
    if exists > 0 {
        return Ok(false);
    }
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
    // The caller's own record knows the dialplan; callback attempts have none.
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
    // The leg's own Call-ID died with the process: the record is keyed by
    // the queue log's call id, which is also what the leg belongs to (the
    // caller's Call-ID, or the callback attempt).
    let n = sqlx::query(
        "INSERT INTO calls (call_id, leg, caller, dialed, dialplan, dialplan_version, started_at, \
         answered_at, ended_at, path, digits, vars, disposition, hangup_by, queue, parent_call_id, \
         node_id) \
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
    Ok(n == 1)
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
    /// Recovered legs carry `node` as their node id and the queue log's
    /// call id as their `parent_call_id`.
    ///
    /// Only for SQLite, which one node owns. PostgreSQL may be shared by
    /// live nodes whose queue entries and agents must not be touched (queue
    /// log and agent rows carry no node id); there only the marker is
    /// written.
    pub async fn recover_after_restart(&self, node: &str) -> anyhow::Result<Recovery> {
        let now = Utc::now();
        let now_s = ts(now);
        let marker = "INSERT INTO queue_log (at, queue, call_id, agent, event, data) \
                      VALUES ($1, NULL, NULL, NULL, 'QUEUESTART', '')";
        let p = match self {
            Store::Sqlite(p) => p,
            Store::Postgres(p) => {
                sqlx::query(marker).bind(&now_s).execute(p).await?;
                return Ok(Recovery::default());
            }
        };
        let mut rec = Recovery::default();
        let mut tx = p.begin().await?;
        let since: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(id), 0) FROM queue_log WHERE event = 'QUEUESTART'",
        )
        .fetch_one(&mut *tx)
        .await?;

        // Callers left waiting or talking.
        let dangling: Vec<DanglingCall> = sqlx::query_as(
            "SELECT q.call_id, q.queue, q.agent, q.event, q.at, q.data, \
             (SELECT e.data FROM queue_log e WHERE e.call_id = q.call_id AND e.event = 'ENTERQUEUE' \
              AND e.id > $1 ORDER BY e.id DESC LIMIT 1) AS enter_data \
             FROM queue_log q WHERE q.id IN (SELECT MAX(id) FROM queue_log WHERE id > $1 \
             AND call_id IS NOT NULL AND event IN ('ENTERQUEUE','CONNECT','ABANDON','EXITWITHTIMEOUT', \
             'EXITEMPTY','EXITWITHKEY','COMPLETECALLER','COMPLETEAGENT','TRANSFER','INTERRUPTED') \
             GROUP BY call_id) AND q.event IN ('ENTERQUEUE','CONNECT') ORDER BY q.id",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        // Set-based, not per caller: with 10,000 callbacks waiting in a
        // queue there are 10,000 dangling callers, and two statements per
        // caller took most of a second.
        // SQLite allows 32,766 bound parameters; 5 per row.
        for chunk in dangling.chunks(1000) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO queue_log (at, queue, call_id, agent, event, data) ",
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
                    });
            });
            q.build().execute(&mut *tx).await?;
        }
        rec.queue_calls = dangling.len() as u64;
        // The callers' records were written at answer, before any queue:
        // each one the killed process left open gets the queue it was last
        // in, whether it was still there (waiting, talking) or had left it
        // (e.g. for a callback, while hearing the confirmation).
        sqlx::query(
            "UPDATE calls SET queue = (SELECT q.queue FROM queue_log q WHERE q.call_id = calls.call_id \
             AND q.queue IS NOT NULL AND q.id > $1 ORDER BY q.id DESC LIMIT 1) \
             WHERE leg = 'inbound' AND queue IS NULL AND disposition = 'interrupted' \
             AND hangup_by = 'restart' \
             AND call_id IN (SELECT call_id FROM queue_log WHERE id > $1 AND queue IS NOT NULL)",
        )
        .bind(since)
        .execute(&mut *tx)
        .await?;
        for d in dangling.iter().filter(|d| d.event == "CONNECT") {
            if let Some(agent) = d.agent.as_deref() {
                if insert_recovered_leg(&mut tx, d, agent, node, now).await? {
                    rec.agent_legs += 1;
                }
            }
        }

        // Agent sessions in the queue log.
        let sessions: Vec<(String, String)> = sqlx::query_as(
            "SELECT agent, at FROM queue_log WHERE id IN (SELECT MAX(id) FROM queue_log \
             WHERE id > $1 AND agent IS NOT NULL AND event IN ('AGENTLOGIN','AGENTLOGOFF') \
             GROUP BY agent) AND event = 'AGENTLOGIN' ORDER BY id",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        for (agent, at) in &sessions {
            let session = parse_ts(at).map_or(0, |t| (now - t).num_seconds().max(0));
            sqlx::query(
                "INSERT INTO queue_log (at, queue, call_id, agent, event, data) \
                 VALUES ($1, NULL, NULL, $2, 'AGENTLOGOFF', $3)",
            )
            .bind(&now_s)
            .bind(agent)
            .bind(format!("|{session}"))
            .execute(&mut *tx)
            .await?;
            rec.agent_sessions += 1;
        }

        // Agent state history.
        let states: Vec<(String, String)> = sqlx::query_as(
            "SELECT agent, to_state FROM agent_events WHERE id IN \
             (SELECT MAX(id) FROM agent_events GROUP BY agent) AND to_state <> 'logged-out' ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (agent, state) in &states {
            sqlx::query(
                "INSERT INTO agent_events (agent, at, from_state, to_state, reason) \
                 VALUES ($1, $2, $3, 'logged-out', $4)",
            )
            .bind(agent)
            .bind(&now_s)
            .bind(state)
            .bind(RESTART_REASON)
            .execute(&mut *tx)
            .await?;
            rec.agent_states += 1;
        }

        sqlx::query(marker).bind(&now_s).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AgentEvent, QueueLogRow};

    async fn rows(s: &Store, sql: &str) -> Vec<(String, String)> {
        let Store::Sqlite(p) = s else { unreachable!() };
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(p)
            .await
            .expect("query")
    }

    fn ql(
        at: DateTime<Utc>,
        queue: &str,
        call: &str,
        agent: Option<&str>,
        ev: &str,
        data: &str,
    ) -> QueueLogRow {
        QueueLogRow {
            at,
            queue: Some(queue.into()),
            call_id: Some(call.into()),
            agent: agent.map(Into::into),
            event: ev.into(),
            data: data.into(),
        }
    }

    #[tokio::test]
    async fn restart_recovery_closes_what_a_killed_process_left_open_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = Store::connect(&url).await.expect("connect");
        let t = Utc::now() - chrono::Duration::seconds(60);
        let agent = |who: &str, from: &str, to: &str| AgentEvent {
            agent: who.into(),
            at: t,
            from_state: from.into(),
            to_state: to.into(),
            reason: String::new(),
        };
        let login = |who: &str| QueueLogRow {
            at: t,
            queue: None,
            call_id: None,
            agent: Some(who.into()),
            event: "AGENTLOGIN".into(),
            data: String::new(),
        };
        store
            .record_logs(
                &[
                    agent("alice", "logged-out", "available"),
                    agent("alice", "available", "on-call"),
                    agent("bob", "logged-out", "available"),
                    agent("bob", "available", "logged-out"),
                ],
                &[
                    login("alice"),
                    ql(t, "q", "done", None, "ENTERQUEUE", "|+1555|1"),
                    ql(t, "q", "done", Some("alice"), "CONNECT", "1||2|1"),
                    ql(t, "q", "done", Some("alice"), "COMPLETECALLER", "1|9"),
                    ql(t, "q", "talking", None, "ENTERQUEUE", "|+1666|1"),
                    ql(
                        t,
                        "q",
                        "talking",
                        Some("alice"),
                        "RINGNOANSWER",
                        "3|no_answer",
                    ),
                    ql(t, "q", "talking", Some("alice"), "CONNECT", "4||2|4"),
                    ql(t, "q", "cb-cbX1-0a0b", None, "ENTERQUEUE", "|+1777|2"),
                ],
            )
            .await
            .expect("log");
        let rec = store
            .recover_after_restart("node-1")
            .await
            .expect("recover");
        assert_eq!(
            rec,
            Recovery {
                queue_calls: 2,
                agent_legs: 1,
                agent_sessions: 1,
                agent_states: 1,
            }
        );
        let legs = rows(
            &store,
            "SELECT call_id, disposition FROM calls WHERE leg = 'agent'",
        )
        .await;
        assert_eq!(
            legs,
            vec![("talking".to_string(), "interrupted".to_string())]
        );
        // The recovered leg belongs to its caller and to this node.
        let links = rows(
            &store,
            "SELECT parent_call_id, node_id FROM calls WHERE leg = 'agent'",
        )
        .await;
        assert_eq!(links, vec![("talking".to_string(), "node-1".to_string())]);
        let closed = rows(
            &store,
            "SELECT call_id, data FROM queue_log WHERE event = 'INTERRUPTED' ORDER BY id",
        )
        .await;
        assert_eq!(
            closed,
            vec![
                ("talking".into(), "restart|connected".into()),
                ("cb-cbX1-0a0b".into(), "restart|waiting".into())
            ]
        );
        let last = rows(
            &store,
            "SELECT agent, to_state FROM agent_events WHERE id IN \
             (SELECT MAX(id) FROM agent_events GROUP BY agent) ORDER BY agent",
        )
        .await;
        assert_eq!(
            last,
            vec![
                ("alice".into(), "logged-out".into()),
                ("bob".into(), "logged-out".into())
            ]
        );
        // A second start finds nothing left to close.
        assert_eq!(
            store.recover_after_restart("node-1").await.expect("again"),
            Recovery::default()
        );
    }

    /// Killed while a caller hears the callback confirmation: they had left
    /// the queue (nothing to interrupt), and their record, written at
    /// answer before any queue, still gets it. Earlier runs' rows are not
    /// touched.
    #[tokio::test]
    async fn a_caller_who_had_left_the_queue_keeps_its_queue_on_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = Store::connect(&url).await.expect("connect");
        let t = Utc::now() - chrono::Duration::seconds(60);
        let open = |id: &str| crate::store::Cdr {
            call_id: id.into(),
            leg: "inbound".into(),
            started_at: t,
            vars: "{}".into(),
            disposition: "in_progress".into(),
            ..Default::default()
        };
        let left = |call: &str| {
            [
                ql(t, "q", call, None, "ENTERQUEUE", "|+1|1"),
                ql(t, "q", call, None, "ABANDON", "1|1|4"),
            ]
        };
        // An earlier run, ended by a restart (its marker) that left it so.
        store.record_logs(&[], &left("before")).await.expect("log");
        store
            .write_cdrs(&[open("before")], "n")
            .await
            .expect("write");
        store.close_orphaned_calls("n").await.expect("close");
        let marker = ql(t, "q", "-", None, "QUEUESTART", "");
        store.record_logs(&[], &[marker]).await.expect("marker");
        // The killed run: `confirming` took a callback, `menu` never queued.
        store
            .record_logs(&[], &left("confirming"))
            .await
            .expect("log");
        let calls = [open("confirming"), open("menu")];
        store.write_cdrs(&calls, "n").await.expect("write");
        store.close_orphaned_calls("n").await.expect("close");
        let rec = store.recover_after_restart("n").await.expect("recover");
        assert_eq!(rec.queue_calls, 0, "nobody was left in a queue");
        let sql = "SELECT call_id, COALESCE(queue, '-') FROM calls ORDER BY call_id";
        let queues = rows(&store, sql).await;
        let want = [("before", "-"), ("confirming", "q"), ("menu", "-")];
        assert_eq!(queues, want.map(|(c, q)| (c.to_string(), q.to_string())));
    }

    /// A SQLite file belongs to one process at a time: every open record is
    /// the previous process's, whatever node id it was written under (the
    /// default id changes with the pid) and also without one.
    #[tokio::test]
    async fn sqlite_closes_every_open_record_whatever_its_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = Store::connect(&url).await.expect("connect");
        let open = |id: &str| crate::store::Cdr {
            call_id: id.into(),
            leg: "inbound".into(),
            started_at: Utc::now(),
            vars: "{}".into(),
            disposition: "in_progress".into(),
            ..Default::default()
        };
        store
            .write_cdrs(&[open("old-pid")], "host-1234")
            .await
            .expect("write");
        store
            .write_cdrs(&[open("same-node")], "node-1")
            .await
            .expect("write");
        let Store::Sqlite(p) = &store else {
            unreachable!()
        };
        sqlx::query(
            "INSERT INTO calls (call_id, leg, caller, dialed, started_at) \
             VALUES ('legacy', 'inbound', '', '', '2020-01-01T00:00:00.000Z')",
        )
        .execute(p)
        .await
        .expect("legacy row");
        assert_eq!(
            store.close_orphaned_calls("node-1").await.expect("close"),
            3
        );
        let left = rows(
            &store,
            "SELECT call_id, disposition FROM calls WHERE disposition <> 'interrupted'",
        )
        .await;
        assert!(left.is_empty(), "{left:?}");
    }
}
