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
    let (_dir, store) = crate::store::scratch_sqlite().await;
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
            "host-1234",
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
    let (_dir, store) = crate::store::scratch_sqlite().await;
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
    store
        .record_logs(&[], &left("before"), "n")
        .await
        .expect("log");
    store
        .write_cdrs(&[open("before")], "n")
        .await
        .expect("write");
    store.close_orphaned_calls("n").await.expect("close");
    let marker = ql(t, "q", "-", None, "QUEUESTART", "");
    store
        .record_logs(&[], &[marker], "n")
        .await
        .expect("marker");
    // The killed run: `confirming` took a callback, `menu` never queued.
    store
        .record_logs(&[], &left("confirming"), "n")
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
    let (_dir, store) = crate::store::scratch_sqlite().await;
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
