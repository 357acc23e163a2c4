//! Post-call survey answers, read back for CSAT (`GET /api/v1/surveys/csat`
//! and the dashboard). They are written with the call record (`cdrs`).

use chrono::{DateTime, Utc};
use ringback_call::csat::Answer;

use super::{parse_ts, ts, Store};

type Row = (String, Option<String>, String, Option<i32>, i32, i32);

impl Store {
    /// The surveys asked on inbound calls that started in `[from, to)`.
    pub async fn survey_answers(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Answer>> {
        let sql =
            "SELECT started_at, queue, survey_agent, survey_score, survey_lowest, survey_highest \
                   FROM calls WHERE leg = 'inbound' AND survey_agent IS NOT NULL \
                   AND survey_lowest IS NOT NULL AND survey_highest IS NOT NULL \
                   AND started_at >= $1 AND started_at < $2 ORDER BY started_at";
        let rows: Vec<Row> = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(ts(from))
            .bind(ts(to))
            .fetch_all(p)
            .await?);
        let small = |v: i32| u8::try_from(v).ok();
        Ok(rows
            .into_iter()
            .filter_map(|(at, queue, agent, score, lowest, highest)| {
                Some(Answer {
                    at: parse_ts(&at)?,
                    queue: queue.unwrap_or_default(),
                    agent,
                    score: score.and_then(small),
                    lowest: small(lowest)?,
                    highest: small(highest)?,
                })
            })
            .collect())
    }
}
