//! Callback persistence: the current state of each request plus an
//! append-only event history, written in one transaction so the two never
//! disagree. A request is committed here before the caller hears a
//! confirmation.
//!
//! Several nodes can share one PostgreSQL database: a node *claims* a
//! callback with a lease before dialing (`FOR UPDATE SKIP LOCKED`, so two
//! nodes never block each other or both win), renews it while dialing, and a
//! crashed node's lease simply runs out.

use chrono::{DateTime, Utc};

use super::{ts, Store};

/// One row of `callbacks` (times as RFC 3339 text, as stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallbackRow {
    /// Callback id.
    pub id: String,
    /// Queue it keeps a place in.
    pub queue: String,
    /// Normalised number to call.
    pub number: String,
    /// Current state (`scheduled`, `dialing`, …).
    pub state: String,
    /// The customer's original queue-entry time: their place in line.
    pub entered_at: String,
    /// When it was requested.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Dial attempts so far.
    pub attempts: i64,
    /// Not before this time.
    pub next_attempt_at: Option<String>,
    /// Customer's preferred window start.
    pub preferred_start: Option<String>,
    /// Customer's preferred window end.
    pub preferred_end: Option<String>,
    /// Give up after this time.
    pub expires_at: String,
    /// Context shown to the agent.
    pub context: String,
    /// `ivr` or `web`.
    pub origin: String,
    /// Last attempt's result.
    pub last_result: Option<String>,
    /// Node holding the lease.
    pub claimed_by: Option<String>,
    /// Lease expiry.
    pub lease_until: Option<String>,
}

/// One row of `callback_events`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallbackEventRow {
    /// Callback id.
    pub callback_id: String,
    /// When.
    pub at: String,
    /// Previous state.
    pub from_state: String,
    /// New state.
    pub to_state: String,
    /// Why.
    pub reason: String,
    /// Attempt number at the time.
    pub attempt: i64,
    /// Node that made the change.
    pub node: String,
}

/// Why a callback could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// A live callback for this number and queue already exists.
    #[error("a callback for this number is already pending in this queue")]
    Duplicate,
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The states a callback never leaves, as an SQL list.
pub(super) const ENDED: &str = "('completed','failed','cancelled','expired')";

pub(super) const COLUMNS: &str = "id, queue, number, state, entered_at, created_at, updated_at, attempts, next_attempt_at, \
    preferred_start, preferred_end, expires_at, context, origin, last_result, claimed_by, lease_until";

macro_rules! bind_row {
    ($q:expr, $r:expr) => {
        $q.bind(&$r.id)
            .bind(&$r.queue)
            .bind(&$r.number)
            .bind(&$r.state)
            .bind(&$r.entered_at)
            .bind(&$r.created_at)
            .bind(&$r.updated_at)
            .bind($r.attempts)
            .bind(&$r.next_attempt_at)
            .bind(&$r.preferred_start)
            .bind(&$r.preferred_end)
            .bind(&$r.expires_at)
            .bind(&$r.context)
            .bind(&$r.origin)
            .bind(&$r.last_result)
            .bind(&$r.claimed_by)
            .bind(&$r.lease_until)
    };
}

macro_rules! bind_event {
    ($q:expr, $e:expr) => {
        $q.bind(&$e.callback_id)
            .bind(&$e.at)
            .bind(&$e.from_state)
            .bind(&$e.to_state)
            .bind(&$e.reason)
            .bind($e.attempt)
            .bind(&$e.node)
    };
}

const INSERT_EVENT: &str =
    "INSERT INTO callback_events (callback_id, at, from_state, to_state, reason, attempt, node) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

impl Store {
    /// Insert a new callback and its first events atomically. The database's
    /// unique index on live (number, queue) turns a race into `Duplicate`.
    pub async fn insert_callback(
        &self,
        row: &CallbackRow,
        events: &[CallbackEventRow],
    ) -> Result<(), InsertError> {
        let sql = format!(
            "INSERT INTO callbacks ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"
        );
        let result: Result<(), sqlx::Error> = on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            bind_row!(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), row)
                .execute(&mut *tx)
                .await?;
            for e in events {
                bind_event!(sqlx::query(INSERT_EVENT), e)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await);
        match result {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(InsertError::Duplicate),
            Err(e) => Err(InsertError::Other(e.into())),
        }
    }

    /// Write a callback's new current state and its transition events in one
    /// transaction.
    pub async fn update_callback(
        &self,
        row: &CallbackRow,
        events: &[CallbackEventRow],
    ) -> anyhow::Result<()> {
        // Leases are not touched here: only claim/release move them, so a
        // state change never drops another node's (or our own) lease.
        let sql = "UPDATE callbacks SET state = $2, updated_at = $3, attempts = $4, next_attempt_at = $5, \
                   preferred_start = $6, preferred_end = $7, expires_at = $8, last_result = $9, \
                   entered_at = $10 WHERE id = $1";
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(sql)
                .bind(&row.id)
                .bind(&row.state)
                .bind(&row.updated_at)
                .bind(row.attempts)
                .bind(&row.next_attempt_at)
                .bind(&row.preferred_start)
                .bind(&row.preferred_end)
                .bind(&row.expires_at)
                .bind(&row.last_result)
                .bind(&row.entered_at)
                .execute(&mut *tx)
                .await?;
            for e in events {
                bind_event!(sqlx::query(INSERT_EVENT), e)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Record a transition for a callback the scheduler no longer holds
    /// (it just ended): state, attempts, result and history.
    pub async fn end_callback(
        &self,
        id: &str,
        state: &str,
        at: DateTime<Utc>,
        attempts: i64,
        last_result: Option<String>,
        events: &[CallbackEventRow],
    ) -> anyhow::Result<()> {
        let sql = "UPDATE callbacks SET state = $2, updated_at = $3, attempts = $4, \
                   last_result = COALESCE($5, last_result), claimed_by = NULL, lease_until = NULL WHERE id = $1";
        let at = ts(at);
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(sql)
                .bind(id)
                .bind(state)
                .bind(&at)
                .bind(attempts)
                .bind(&last_result)
                .execute(&mut *tx)
                .await?;
            for e in events {
                bind_event!(sqlx::query(INSERT_EVENT), e)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every callback that is not finished (loaded at start-up and by the
    /// periodic sync between nodes).
    pub async fn live_callbacks(&self) -> anyhow::Result<Vec<CallbackRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM callbacks WHERE state NOT IN {ENDED} ORDER BY entered_at"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, CallbackRow>(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .fetch_all(p)
        .await?);
        Ok(rows)
    }

    /// One callback with its history.
    pub async fn callback(
        &self,
        id: &str,
    ) -> anyhow::Result<Option<(CallbackRow, Vec<CallbackEventRow>)>> {
        let sql = format!("SELECT {COLUMNS} FROM callbacks WHERE id = $1");
        let ev = "SELECT callback_id, at, from_state, to_state, reason, attempt, node FROM callback_events \
                  WHERE callback_id = $1 ORDER BY id";
        let found = on_pool!(self, |p| {
            let row = sqlx::query_as::<_, CallbackRow>(sqlx::AssertSqlSafe(sql.clone()))
                .bind(id)
                .fetch_optional(p)
                .await?;
            match row {
                Some(r) => {
                    let events = sqlx::query_as::<_, CallbackEventRow>(ev)
                        .bind(id)
                        .fetch_all(p)
                        .await?;
                    Some((r, events))
                }
                None => None,
            }
        });
        Ok(found)
    }

    /// Callbacks filtered by state, queue and number (newest first).
    pub async fn list_callbacks(
        &self,
        state: Option<&str>,
        queue: Option<&str>,
        number: Option<&str>,
        limit: i64,
    ) -> anyhow::Result<Vec<CallbackRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM callbacks WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR queue = $2) AND (CAST($3 AS TEXT) IS NULL OR number = $3) \
             ORDER BY created_at DESC LIMIT $4"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, CallbackRow>(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .bind(state)
        .bind(queue)
        .bind(number)
        .bind(limit)
        .fetch_all(p)
        .await?);
        Ok(rows)
    }

    /// Number of callbacks in each state (one query, nothing fetched but
    /// the counts: the dashboard and `/metrics` ask every second).
    pub async fn callback_counts(&self) -> anyhow::Result<std::collections::HashMap<String, i64>> {
        let sql = "SELECT state, COUNT(*) FROM callbacks GROUP BY state";
        let rows: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(sql).fetch_all(p).await?);
        Ok(rows.into_iter().collect())
    }

    /// Try to take the lease on a callback for `node` until `until`. True if
    /// this node now holds it (it was free, expired, or already ours).
    pub async fn claim_callback(
        &self,
        id: &str,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let (now, until) = (ts(now), ts(until));
        let claimed = match self {
            Store::Postgres(p) => {
                let sql = "UPDATE callbacks SET claimed_by = $2, lease_until = $3 WHERE id = \
                           (SELECT id FROM callbacks WHERE id = $1 \
                            AND state NOT IN ('completed','failed','cancelled','expired') \
                            AND (lease_until IS NULL OR lease_until < $4 OR claimed_by = $2) \
                            FOR UPDATE SKIP LOCKED) RETURNING id";
                sqlx::query_scalar::<_, String>(sql)
                    .bind(id)
                    .bind(node)
                    .bind(&until)
                    .bind(&now)
                    .fetch_optional(p)
                    .await?
                    .is_some()
            }
            // SQLite serialises writers, so a conditional UPDATE is atomic.
            Store::Sqlite(p) => {
                let sql = "UPDATE callbacks SET claimed_by = $2, lease_until = $3 WHERE id = $1 \
                           AND state NOT IN ('completed','failed','cancelled','expired') \
                           AND (lease_until IS NULL OR lease_until < $4 OR claimed_by = $2)";
                sqlx::query(sql)
                    .bind(id)
                    .bind(node)
                    .bind(&until)
                    .bind(&now)
                    .execute(p)
                    .await?
                    .rows_affected()
                    == 1
            }
        };
        Ok(claimed)
    }

    /// At start-up: hand back the leases nobody alive holds, so their
    /// callbacks can be restored and dialed at once. SQLite (one node owns
    /// the file): every lease, whoever's id is on it. PostgreSQL (other
    /// nodes may be dialing): only leases of this `node` (its previous
    /// process) and leases that ran out before `now`; another node's
    /// running lease is left alone.
    pub async fn release_stale_leases(
        &self,
        node: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let released = match self {
            Store::Sqlite(p) => sqlx::query(
                "UPDATE callbacks SET claimed_by = NULL, lease_until = NULL WHERE claimed_by IS NOT NULL",
            )
            .execute(p)
            .await?
            .rows_affected(),
            Store::Postgres(p) => sqlx::query(
                "UPDATE callbacks SET claimed_by = NULL, lease_until = NULL \
                 WHERE claimed_by IS NOT NULL \
                 AND (claimed_by = $1 OR lease_until IS NULL OR lease_until < $2)",
            )
            .bind(node)
            .bind(ts(now))
            .execute(p)
            .await?
            .rows_affected(),
        };
        Ok(released)
    }

    /// Give a lease back early (the attempt is over).
    pub async fn release_callback(&self, id: &str, node: &str) -> anyhow::Result<()> {
        let sql = "UPDATE callbacks SET claimed_by = NULL, lease_until = NULL WHERE id = $1 AND claimed_by = $2";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(node)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }
}

#[cfg(test)]
impl CallbackRow {
    /// A web callback for tests: queue `operator`, number `+1555<id>`,
    /// `attempts` 0, no lease, expiring a day after `updated`.
    pub(crate) fn for_tests(
        id: &str,
        state: &str,
        entered: DateTime<Utc>,
        updated: DateTime<Utc>,
    ) -> CallbackRow {
        CallbackRow {
            id: id.into(),
            queue: "operator".into(),
            number: format!("+1555{id}"),
            state: state.into(),
            entered_at: ts(entered),
            created_at: ts(entered),
            updated_at: ts(updated),
            attempts: 0,
            next_attempt_at: None,
            preferred_start: None,
            preferred_end: None,
            expires_at: ts(updated + chrono::Duration::days(1)),
            context: String::new(),
            origin: "web".into(),
            last_result: None,
            claimed_by: None,
            lease_until: None,
        }
    }
}
