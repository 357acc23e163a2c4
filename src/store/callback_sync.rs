//! What the callback service's sync between nodes reads: first a brief
//! look (id, state, lease) at the callbacks that changed since its last
//! round, then the full rows of only those it does not hold yet.
//!
//! Reading every pending callback each round cost PostgreSQL tens of
//! milliseconds of decoding with 10,000 pending, and held up agent offers
//! by as much (issue 16); a round now reads what changed, through the
//! `updated_at` and `lease_until` indexes (migration 0013).

use chrono::{DateTime, Utc};

use super::callbacks::{CallbackRow, COLUMNS, ENDED};
use super::{ts, Store};

/// A callback as the sync first sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallbackBrief {
    /// Callback id.
    pub id: String,
    /// Current state (`scheduled`, `dialing`, …, `completed`).
    pub state: String,
    /// When the lease of the node dialing it runs out.
    pub lease_until: Option<String>,
}

/// Ids per `IN (…)` list, well under either database's parameter limit.
const IDS_PER_STATEMENT: usize = 500;

impl Store {
    /// Every callback that is not finished, briefly (a full round: at
    /// start of a node's line, or when the queues changed owner).
    pub async fn live_briefs(&self) -> anyhow::Result<Vec<CallbackBrief>> {
        let sql =
            format!("SELECT id, state, lease_until FROM callbacks WHERE state NOT IN {ENDED}");
        let rows = on_pool!(self, |p| sqlx::query_as::<_, CallbackBrief>(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .fetch_all(p)
        .await?);
        Ok(rows)
    }

    /// Callbacks changed at or after `since` (finished ones included: a
    /// node forgets what another node ended), and those being dialed
    /// whose lease ran out before `now` (a crashed node's, which changed
    /// no row when it died).
    pub async fn changed_briefs(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<CallbackBrief>> {
        let sql = "SELECT id, state, lease_until FROM callbacks WHERE updated_at >= $1 \
                   UNION SELECT id, state, lease_until FROM callbacks \
                   WHERE lease_until < $2 AND state IN ('dialing','connected')";
        let (since, now) = (ts(since), ts(now));
        let rows = on_pool!(self, |p| sqlx::query_as::<_, CallbackBrief>(sql)
            .bind(&since)
            .bind(&now)
            .fetch_all(p)
            .await?);
        Ok(rows)
    }

    /// The full rows of these callbacks, in line order (original entry
    /// time). Ids that do not exist are left out.
    pub async fn callbacks_by_id(&self, ids: &[String]) -> anyhow::Result<Vec<CallbackRow>> {
        let mut rows: Vec<CallbackRow> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let select = format!("SELECT {COLUMNS} FROM callbacks WHERE id IN (");
            let part = on_pool!(self, |p| {
                let mut q = sqlx::QueryBuilder::new(select.as_str());
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id);
                }
                q.push(")");
                q.build_query_as::<CallbackRow>().fetch_all(p).await?
            });
            rows.extend(part);
        }
        rows.sort_by(|a, b| a.entered_at.cmp(&b.entered_at));
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_round_reads_what_changed_and_the_leases_that_ran_out() {
        let (_dir, store) = crate::store::scratch_sqlite().await;
        let now = Utc::now();
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        // old: pending, untouched for an hour. new: created a moment ago.
        // ended: finished a moment ago. crashed: being dialed by a node
        // whose lease ran out a minute ago (no change since). held: being
        // dialed under a running lease, untouched.
        for r in [
            CallbackRow::for_tests("old", "scheduled", ago(3600), ago(3600)),
            CallbackRow::for_tests("new", "scheduled", ago(7200), ago(2)),
            CallbackRow::for_tests("ended", "completed", ago(3000), ago(1)),
            CallbackRow::for_tests("crashed", "dialing", ago(600), ago(600)),
            CallbackRow::for_tests("held", "dialing", ago(500), ago(500)),
        ] {
            store.insert_callback(&r, &[]).await.expect("insert");
        }
        let lease = |id: &str, until: DateTime<Utc>| {
            let store = store.clone();
            let id = id.to_string();
            async move {
                assert!(store
                    .claim_callback(
                        &id,
                        "other-node",
                        until - chrono::Duration::seconds(60),
                        until
                    )
                    .await
                    .expect("claim"));
            }
        };
        lease("crashed", ago(60)).await;
        lease("held", now + chrono::Duration::seconds(60)).await;

        let mut changed = store.changed_briefs(ago(10), now).await.expect("changed");
        changed.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<(&str, &str)> = changed
            .iter()
            .map(|b| (b.id.as_str(), b.state.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("crashed", "dialing"),
                ("ended", "completed"),
                ("new", "scheduled")
            ]
        );

        let mut live: Vec<String> = store
            .live_briefs()
            .await
            .expect("live")
            .into_iter()
            .map(|b| b.id)
            .collect();
        live.sort();
        assert_eq!(live, ["crashed", "held", "new", "old"]);

        // Full rows in line order, missing ids left out, across several
        // statements.
        let mut ids: Vec<String> = (0..IDS_PER_STATEMENT * 2)
            .map(|i| format!("none-{i}"))
            .collect();
        ids.extend(["old", "new", "crashed"].map(String::from));
        let rows = store.callbacks_by_id(&ids).await.expect("by id");
        let order: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(order, ["new", "old", "crashed"]);
    }
}
