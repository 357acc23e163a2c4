//! One day as the store recorded it, for rebuilding today's live figures
//! at start-up ([`Store::day_record`]): the queue log says when callers
//! entered a queue, were answered, abandoned or finished talking; the
//! callback history says when callbacks were answered and ended.
//!
//! The rows are read back one by one (a day is at most some 10^5 rows) and
//! the live view replays them, so a figure is computed by the same code
//! whether it was counted as it happened or rebuilt after a restart.
//!
//! Callback attempts wait in the queues under the call id
//! `cb-<callback id>-<suffix>` (see `callback_attempt`): their queue entries
//! count as calls, as they do live, but their answers, hang-ups and talk
//! time are the callback's (`connected`, `completed`, … in
//! `callback_events`), not the queue log's.

use chrono::{DateTime, Utc};

use super::{parse_ts, ts, Store};

/// Queue-log events by which a call (or callback attempt) enters a queue;
/// an enqueue the ACD refuses (`JOINEMPTY`, `FULL`) counts too.
const ENTRY_EVENTS: &str = "('ENTERQUEUE','JOINEMPTY','FULL')";

/// What happened in `[start, end)`, event by event (UTC times).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DayRecord {
    /// The first queue entry of each caller and of each callback attempt.
    pub queued: Vec<DateTime<Utc>>,
    /// Callers and callbacks bridged to an agent: when, and the seconds
    /// waited since first entering a queue.
    pub answered: Vec<(DateTime<Utc>, u64)>,
    /// Callers who hung up (or were cut off) while waiting.
    pub abandoned: Vec<DateTime<Utc>>,
    /// Agent calls that ended: when, and the seconds talked.
    pub handled: Vec<(DateTime<Utc>, u64)>,
    /// Callbacks that ended for good: when, and whether completed (`false`:
    /// failed or expired; cancelled ones are neither).
    pub callbacks_ended: Vec<(DateTime<Utc>, bool)>,
}

/// The `n`-th `|`-separated field of a queue-log `data`, in whole seconds.
fn field_secs(data: &str, n: usize) -> Option<u64> {
    data.split('|').nth(n).and_then(|s| s.trim().parse().ok())
}

impl Store {
    /// Everything [`DayRecord`] holds between `start` (inclusive) and `end`
    /// (exclusive): the bounds of a local day, converted to UTC by the
    /// caller.
    pub async fn day_record(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> anyhow::Result<DayRecord> {
        let (from, to) = (ts(start), ts(end));
        // The day is found by `queue_log(at)`. Without statistics SQLite's
        // planner would rather take `queue_log(event)`, i.e. every such
        // event ever logged; `(event || '')` (the same text, no index) keeps
        // it on the day's rows in both databases.
        //
        // A caller's first queue entry only: overflow into another queue is
        // the same call (earlier entries by `queue_log(call_id, event)`).
        let queued = format!(
            "SELECT q.at FROM queue_log q WHERE q.at >= $1 AND q.at < $2 AND q.call_id IS NOT NULL \
             AND (q.event || '') IN {ENTRY_EVENTS} AND NOT EXISTS (SELECT 1 FROM queue_log e \
             WHERE e.call_id = q.call_id AND e.event IN {ENTRY_EVENTS} AND e.id < q.id)"
        );
        // Callers bridged to an agent; `data` is `holdtime||ringtime|waited`.
        let answered = "SELECT at, data FROM queue_log WHERE at >= $1 AND at < $2 \
                        AND (event || '') = 'CONNECT' AND substr(call_id, 1, 3) <> 'cb-'";
        // Callers who left a queue by hanging up. A caller who took a
        // callback leaves the queue the same way (`ABANDON`) but did not
        // abandon: their call record says `callback`.
        let abandoned = "SELECT q.at FROM queue_log q LEFT JOIN calls c \
                         ON c.call_id = q.call_id AND c.leg = 'inbound' \
                         WHERE q.at >= $1 AND q.at < $2 AND (q.event || '') = 'ABANDON' \
                         AND substr(q.call_id, 1, 3) <> 'cb-' \
                         AND (c.disposition IS NULL OR c.disposition <> 'callback')";
        // Ended agent calls; `data` is `holdtime|talktime`.
        let handled = "SELECT at, data FROM queue_log WHERE at >= $1 AND at < $2 \
                       AND (event || '') IN ('COMPLETECALLER','COMPLETEAGENT') \
                       AND substr(call_id, 1, 3) <> 'cb-'";
        // Callbacks answered by the customer and callbacks ended. Every
        // write of a callback's events sets its `updated_at` to that time
        // or later, so a callback with an event today was updated today:
        // the filter on `callbacks` (one row per callback), read first
        // (`CROSS JOIN` keeps SQLite's join order), spares a scan of the
        // whole history (`callback_events` has no index on `at`).
        let callbacks = "SELECT e.at, e.to_state, c.entered_at FROM callbacks c \
                         CROSS JOIN callback_events e WHERE e.callback_id = c.id \
                         AND c.updated_at >= $1 AND e.at >= $1 AND e.at < $2 \
                         AND e.to_state IN ('connected','completed','failed','expired')";
        // Every query takes the day's bounds as `$1` and `$2`.
        macro_rules! rows {
            ($sql:expr) => {
                on_pool!(self, |p| sqlx::query_as($sql)
                    .bind(&from)
                    .bind(&to)
                    .fetch_all(p)
                    .await?)
            };
        }
        let queued: Vec<(String,)> = rows!(sqlx::AssertSqlSafe(queued.clone()));
        let answered: Vec<(String, String)> = rows!(answered);
        let abandoned: Vec<(String,)> = rows!(abandoned);
        let handled: Vec<(String, String)> = rows!(handled);
        let callbacks: Vec<(String, String, String)> = rows!(callbacks);
        let mut day = DayRecord {
            queued: queued.iter().filter_map(|(at,)| parse_ts(at)).collect(),
            abandoned: abandoned.iter().filter_map(|(at,)| parse_ts(at)).collect(),
            answered: answered
                .iter()
                .filter_map(|(at, data)| {
                    let waited = field_secs(data, 3).or_else(|| field_secs(data, 0))?;
                    Some((parse_ts(at)?, waited))
                })
                .collect(),
            handled: handled
                .iter()
                .filter_map(|(at, data)| Some((parse_ts(at)?, field_secs(data, 1)?)))
                .collect(),
            callbacks_ended: Vec::new(),
        };
        for (at, state, entered) in &callbacks {
            let Some(at) = parse_ts(at) else { continue };
            match state.as_str() {
                // The attempt counts the wait from the customer's original
                // place in line, as a caller's wait counts from the first
                // queue.
                "connected" => {
                    let waited = parse_ts(entered)
                        .map_or(0, |e| (at - e).num_seconds().max(0).unsigned_abs());
                    day.answered.push((at, waited));
                }
                "completed" => day.callbacks_ended.push((at, true)),
                _ => day.callbacks_ended.push((at, false)),
            }
        }
        Ok(day)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::callbacks::{CallbackEventRow, CallbackRow};
    use crate::store::QueueLogRow;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 14, h, m, 0)
            .single()
            .expect("time")
    }

    fn ql(t: DateTime<Utc>, call: &str, event: &str, data: &str) -> QueueLogRow {
        QueueLogRow {
            at: t,
            queue: Some("operator".into()),
            call_id: Some(call.into()),
            agent: None,
            event: event.into(),
            data: data.into(),
        }
    }

    fn callback(id: &str, entered: DateTime<Utc>, updated: DateTime<Utc>) -> CallbackRow {
        CallbackRow {
            attempts: 1,
            ..CallbackRow::for_tests(id, "completed", entered, updated)
        }
    }

    fn event(id: &str, t: DateTime<Utc>, to: &str) -> CallbackEventRow {
        CallbackEventRow {
            callback_id: id.into(),
            at: ts(t),
            from_state: "dialing".into(),
            to_state: to.into(),
            reason: String::new(),
            attempt: 1,
            node: "n1".into(),
        }
    }

    #[tokio::test]
    async fn a_day_is_read_back_event_by_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.expect("connect");
        store
            .record_logs(
                &[],
                &[
                    // Yesterday: a caller entered at 09:00 on the 13th and
                    // overflowed into another queue today: not a call of today.
                    ql(
                        at(9, 0) - chrono::Duration::days(1),
                        "old",
                        "ENTERQUEUE",
                        "|+1|1",
                    ),
                    ql(at(9, 1), "old", "ENTERQUEUE", "|+1|1"),
                    // Answered after 12 s, talked 95 s.
                    ql(at(10, 0), "a", "ENTERQUEUE", "|+2|1"),
                    ql(at(10, 0), "a", "CONNECT", "12||3|12"),
                    ql(at(10, 2), "a", "COMPLETEAGENT", "12|95"),
                    // Abandoned.
                    ql(at(11, 0), "b", "ENTERQUEUE", "|+3|1"),
                    ql(at(11, 1), "b", "ABANDON", "1|1|60"),
                    // Took a callback: leaves the queue as ABANDON, is not one.
                    ql(at(12, 0), "c", "ENTERQUEUE", "|+4|1"),
                    ql(at(12, 1), "c", "ABANDON", "1|1|30"),
                    // Joined an empty queue: still a queued call.
                    ql(at(13, 0), "d", "JOINEMPTY", ""),
                    // A callback attempt: its queue entry counts; its
                    // CONNECT, COMPLETE and ABANDON are the callback's.
                    ql(at(14, 0), "cb-cb1-0a0b0c0d", "ENTERQUEUE", "|+5|1"),
                    ql(at(14, 1), "cb-cb1-0a0b0c0d", "CONNECT", "60||2|60"),
                    ql(at(14, 5), "cb-cb1-0a0b0c0d", "COMPLETECALLER", "60|240"),
                    ql(at(15, 0), "cb-cb2-0a0b0c0d", "ENTERQUEUE", "|+6|1"),
                    ql(at(15, 1), "cb-cb2-0a0b0c0d", "ABANDON", "1|1|60"),
                    // Tomorrow.
                    ql(
                        at(0, 0) + chrono::Duration::days(1),
                        "e",
                        "ENTERQUEUE",
                        "|+7|1",
                    ),
                ],
                "node-1",
            )
            .await
            .expect("queue log");
        // The callers' records (only what the query reads).
        let Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        for (call, disposition) in [("b", "abandoned"), ("c", "callback")] {
            sqlx::query(
                "INSERT INTO calls (call_id, leg, caller, dialed, started_at, disposition) \
                 VALUES ($1, 'inbound', '+1', '100', $2, $3)",
            )
            .bind(call)
            .bind(ts(at(11, 0)))
            .bind(disposition)
            .execute(pool)
            .await
            .expect("call record");
        }
        // cb1: entered at 13:00, customer accepted at 14:02, completed
        // 14:05. cb2 failed today; cb3 completed yesterday.
        store
            .insert_callback(
                &callback("cb1", at(13, 0), at(14, 5)),
                &[
                    event("cb1", at(14, 2), "connected"),
                    event("cb1", at(14, 5), "completed"),
                ],
            )
            .await
            .expect("cb1");
        store
            .insert_callback(
                &callback("cb2", at(14, 0), at(15, 1)),
                &[event("cb2", at(15, 1), "failed")],
            )
            .await
            .expect("cb2");
        let yesterday = at(16, 0) - chrono::Duration::days(1);
        store
            .insert_callback(
                &callback("cb3", yesterday, yesterday),
                &[event("cb3", yesterday, "completed")],
            )
            .await
            .expect("cb3");

        let day = store
            .day_record(at(0, 0), at(0, 0) + chrono::Duration::days(1))
            .await
            .expect("day");
        let mut queued = day.queued.clone();
        queued.sort();
        assert_eq!(
            queued,
            vec![
                at(10, 0),
                at(11, 0),
                at(12, 0),
                at(13, 0),
                at(14, 0),
                at(15, 0)
            ]
        );
        let mut answered = day.answered.clone();
        answered.sort();
        assert_eq!(answered, vec![(at(10, 0), 12), (at(14, 2), 62 * 60)]);
        assert_eq!(day.abandoned, vec![at(11, 1)]);
        assert_eq!(day.handled, vec![(at(10, 2), 95)]);
        let mut ended = day.callbacks_ended.clone();
        ended.sort();
        assert_eq!(ended, vec![(at(14, 5), true), (at(15, 1), false)]);
    }
}
