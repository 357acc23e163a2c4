//! Call detail records: one row per call leg, written through the
//! [`CdrWriter`](super::CdrWriter) and read back for the API and for
//! agents' context.

use chrono::{DateTime, Utc};

use super::{ts, Store};

/// A call detail record.
#[derive(Debug, Clone, Default)]
pub struct Cdr {
    /// SIP Call-ID of the leg.
    pub call_id: String,
    /// `inbound` for callers; later issues add agent/callback legs.
    pub leg: String,
    /// Caller's number (From user).
    pub caller: String,
    /// Dialed number (Request-URI user).
    pub dialed: String,
    /// Dialplan name that handled the call.
    pub dialplan: Option<String>,
    /// Content hash of that dialplan's file.
    pub dialplan_version: Option<String>,
    /// INVITE received.
    pub started_at: DateTime<Utc>,
    /// 200 OK sent.
    pub answered_at: Option<DateTime<Utc>>,
    /// Hang-up.
    pub ended_at: Option<DateTime<Utc>>,
    /// Nodes visited, joined with ` > `.
    pub path: String,
    /// Digits entered, in order.
    pub digits: String,
    /// Dialplan variables as JSON.
    pub vars: String,
    /// How the call ended (`completed`, `abandoned`, `queued`, `transferred`, `rejected`, …).
    pub disposition: String,
    /// `caller`, `ringback`, or the reason the call ended without either side hanging up.
    pub hangup_by: Option<String>,
    /// Queue the call was placed in, if any.
    pub queue: Option<String>,
    /// Final SIP status for calls that were never answered.
    pub sip_code: Option<i32>,
    /// The call this leg belongs to: an agent leg's caller (their SIP
    /// Call-ID), a callback leg's attempt (`cb-<callback id>-<suffix>`).
    /// `None` for an inbound call. The node id is not here: the
    /// [`CdrWriter`](super::CdrWriter) stamps its node's on every row.
    pub parent_call_id: Option<String>,
    /// The post-call survey asked on an inbound call (agent, score).
    pub survey: Option<ringback_call::inbound::SurveyResult>,
    /// The directory customer the caller is (`customer:<id>`), so repeat
    /// calls count a customer's numbers together; `None`: the number.
    pub customer_key: Option<String>,
}

/// A call record as read back for the API: every stored column (the API's
/// `Cdr`; its field comments are the document's descriptions).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Cdr)]
pub struct CdrRow {
    /// Row id (grows with insertion order).
    pub id: i64,
    /// SIP Call-ID of the leg.
    pub call_id: String,
    /// `inbound`, `agent`, `callback-agent` or `callback-customer`.
    pub leg: String,
    /// Caller's number.
    pub caller: String,
    /// Dialed number (or agent).
    pub dialed: String,
    /// Dialplan name.
    #[schema(required = true)]
    pub dialplan: Option<String>,
    /// Content hash of the dialplan version the call ran.
    #[schema(required = true)]
    pub dialplan_version: Option<String>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// Answer (RFC 3339).
    #[schema(required = true)]
    pub answered_at: Option<String>,
    /// End (RFC 3339).
    #[schema(required = true)]
    pub ended_at: Option<String>,
    /// Menu path.
    pub path: String,
    /// Digits entered.
    pub digits: String,
    /// How the call ended (`completed`, `abandoned`, `queued`,
    /// `transferred`, `rejected`, …).
    pub disposition: String,
    /// Who hung up.
    #[schema(required = true)]
    pub hangup_by: Option<String>,
    /// Queue the call was placed in.
    #[schema(required = true)]
    pub queue: Option<String>,
    /// Dialplan variables (and for legs `inbound_call_id` or `callback_id`,
    /// kept beside `parent_call_id`) as JSON object text.
    pub vars: String,
    /// Final SIP status of a call or leg that was never answered.
    #[schema(required = true)]
    pub sip_code: Option<i32>,
    /// The node (`[callbacks] node_id`) whose process wrote the record;
    /// null for records written before node ids existed.
    #[schema(required = true)]
    pub node_id: Option<String>,
    /// The call this leg belongs to: for an `agent` leg the caller's SIP
    /// Call-ID (the `inbound` record's `call_id`); for `callback-agent` and
    /// `callback-customer` legs their attempt, `cb-<callback id>-<suffix>`
    /// (the attempt's call id in the queue log). Null for `inbound` calls.
    #[schema(required = true)]
    pub parent_call_id: Option<String>,
    /// Post-call survey: the agent the caller was asked to rate (null: no
    /// survey was asked).
    #[schema(required = true)]
    pub survey_agent: Option<String>,
    /// Post-call survey: the key the caller pressed (null: no survey, or
    /// no answer).
    #[schema(required = true)]
    pub survey_score: Option<i32>,
    /// Post-call survey: the lowest score key of the queue's survey.
    #[schema(required = true)]
    pub survey_lowest: Option<i32>,
    /// Post-call survey: the highest (best) score key.
    #[schema(required = true)]
    pub survey_highest: Option<i32>,
    /// Who the caller was for repeat-call counting: `customer:<id>` when
    /// the number belonged to a directory customer at the time of the
    /// call, else the number (null on rows written before this column).
    #[schema(required = true)]
    pub caller_key: Option<String>,
}

impl Store {
    /// Inbound calls that started after `since` from `caller`, or from the
    /// directory customer `customer_key` on any of their numbers
    /// (repeat-caller context for agents).
    pub async fn count_calls_since(
        &self,
        caller: &str,
        customer_key: Option<&str>,
        since: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let sql = "SELECT COUNT(*) FROM calls WHERE (caller_key = $1 OR caller = $2) \
                   AND started_at >= $3 AND leg = 'inbound'";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(sql)
            .bind(customer_key.unwrap_or(caller))
            .bind(caller)
            .bind(ts(since))
            .fetch_one(p)
            .await?);
        Ok(n)
    }

    /// The most recent call records (newest first).
    pub async fn recent_cdrs(&self, limit: i64) -> anyhow::Result<Vec<CdrRow>> {
        let sql = "SELECT id, call_id, leg, caller, dialed, dialplan, dialplan_version, started_at, \
                   answered_at, ended_at, path, digits, disposition, hangup_by, queue, vars, sip_code, \
                   node_id, parent_call_id, survey_agent, survey_score, survey_lowest, survey_highest, \
                   caller_key \
                   FROM calls ORDER BY id DESC LIMIT $1";
        let rows = on_pool!(self, |p| sqlx::query_as::<_, CdrRow>(sql)
            .bind(limit)
            .fetch_all(p)
            .await?);
        Ok(rows)
    }

    /// Share of today's inbound calls whose caller also called in the
    /// previous 7 days (a dissatisfaction signal: they had to call again).
    /// A directory customer is one caller whichever number they use.
    pub async fn repeat_call_rate(&self, day_start: DateTime<Utc>) -> anyhow::Result<Option<f64>> {
        let week = ts(day_start - chrono::Duration::days(7));
        let day = ts(day_start);
        let total = "SELECT COUNT(*) FROM calls WHERE leg = 'inbound' AND started_at >= $1";
        let repeat = "SELECT COUNT(*) FROM calls c WHERE c.leg = 'inbound' AND c.started_at >= $1 AND EXISTS \
                      (SELECT 1 FROM calls p WHERE p.leg = 'inbound' AND p.caller_key = c.caller_key \
                       AND p.started_at < c.started_at AND p.started_at >= $2)";
        let (t, r): (i64, i64) = on_pool!(self, |p| (
            sqlx::query_scalar(total).bind(&day).fetch_one(p).await?,
            sqlx::query_scalar(repeat)
                .bind(&day)
                .bind(&week)
                .fetch_one(p)
                .await?
        ));
        Ok((t > 0).then(|| (r as f64 * 1000.0 / t as f64).round() / 10.0))
    }

    /// Insert or complete CDRs in one transaction, as written by `node`
    /// (kept from the insert: the node that answered a call owns its row).
    ///
    /// One multi-row statement per [`ROWS_PER_STATEMENT`] rows, not one per
    /// row: with SQLite each statement is a round trip to its worker
    /// thread (two thread wake-ups), which at 1,000 calls/s was a visible
    /// share of the server's CPU. A row written twice in one batch (a call
    /// that started and ended within it) is written once, as its latest
    /// version: one statement may not update the same row twice.
    pub(super) async fn write_cdrs(&self, batch: &[Cdr], node: &str) -> anyhow::Result<()> {
        let rows = latest_versions(batch);
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO calls (call_id, leg, caller, dialed, dialplan, dialplan_version, \
                     started_at, answered_at, ended_at, path, digits, vars, disposition, hangup_by, \
                     queue, sip_code, parent_call_id, node_id, survey_agent, survey_score, \
                     survey_lowest, survey_highest, caller_key) ",
                );
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(&c.call_id)
                        .push_bind(&c.leg)
                        .push_bind(&c.caller)
                        .push_bind(&c.dialed)
                        .push_bind(&c.dialplan)
                        .push_bind(&c.dialplan_version)
                        .push_bind(ts(c.started_at))
                        .push_bind(c.answered_at.map(ts))
                        .push_bind(c.ended_at.map(ts))
                        .push_bind(&c.path)
                        .push_bind(&c.digits)
                        .push_bind(&c.vars)
                        .push_bind(&c.disposition)
                        .push_bind(&c.hangup_by)
                        .push_bind(&c.queue)
                        .push_bind(c.sip_code)
                        .push_bind(&c.parent_call_id)
                        .push_bind(node)
                        .push_bind(c.survey.as_ref().map(|s| s.agent.clone()))
                        .push_bind(c.survey.as_ref().and_then(|s| s.score).map(i32::from))
                        .push_bind(c.survey.as_ref().map(|s| i32::from(s.lowest)))
                        .push_bind(c.survey.as_ref().map(|s| i32::from(s.highest)))
                        .push_bind(c.customer_key.clone().unwrap_or_else(|| c.caller.clone()));
                });
                q.push(
                    " ON CONFLICT (call_id, leg) DO UPDATE SET dialplan = excluded.dialplan, \
                     dialplan_version = excluded.dialplan_version, answered_at = excluded.answered_at, \
                     ended_at = excluded.ended_at, path = excluded.path, digits = excluded.digits, \
                     vars = excluded.vars, disposition = excluded.disposition, \
                     hangup_by = excluded.hangup_by, queue = excluded.queue, \
                     sip_code = excluded.sip_code, \
                     parent_call_id = COALESCE(excluded.parent_call_id, calls.parent_call_id), \
                     survey_agent = excluded.survey_agent, survey_score = excluded.survey_score, \
                     survey_lowest = excluded.survey_lowest, \
                     survey_highest = excluded.survey_highest, caller_key = excluded.caller_key",
                );
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// Rows per `INSERT`: 23 parameters each, well under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters per statement.
const ROWS_PER_STATEMENT: usize = 200;

/// The batch with each `(call_id, leg)` once, at its latest version (in
/// the order rows were first written). A later version lacking the parent
/// call keeps the earlier one's, as the upsert's `COALESCE` would have.
fn latest_versions(batch: &[Cdr]) -> Vec<Cdr> {
    let mut at: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    let mut rows: Vec<Cdr> = Vec::with_capacity(batch.len());
    for c in batch {
        match at.get(&(c.call_id.as_str(), c.leg.as_str())) {
            Some(&i) => {
                let parent = rows[i].parent_call_id.take();
                rows[i] = c.clone();
                if rows[i].parent_call_id.is_none() {
                    rows[i].parent_call_id = parent;
                }
            }
            None => {
                at.insert((c.call_id.as_str(), c.leg.as_str()), rows.len());
                rows.push(c.clone());
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests;
