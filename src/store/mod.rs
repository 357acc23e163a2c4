//! The store: an embedded SQLite file by default, PostgreSQL when several
//! nodes share state. Queries are written once with `$N` placeholders, which
//! both drivers accept.
//!
//! Call records are written by a background task ([`CdrWriter`]) that batches
//! rows into one transaction, so a burst of calls costs one fsync, not one
//! per call, and no call task ever waits on the disk.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::mpsc;

/// A connection pool to one of the supported databases.
#[derive(Clone, Debug)]
pub enum Store {
    /// Embedded SQLite file.
    Sqlite(SqlitePool),
    /// PostgreSQL server.
    Postgres(PgPool),
}

/// Runs one query on whichever pool the store holds. The SQL text is the
/// same for both drivers.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

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
}

/// A call record as read back for the API.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct CdrRow {
    /// SIP Call-ID.
    pub call_id: String,
    /// `inbound`, `agent`, `callback-agent`, `callback-customer`.
    pub leg: String,
    /// Caller.
    pub caller: String,
    /// Dialed number (or agent).
    pub dialed: String,
    /// Dialplan name.
    pub dialplan: Option<String>,
    /// Start.
    pub started_at: String,
    /// Answer.
    pub answered_at: Option<String>,
    /// End.
    pub ended_at: Option<String>,
    /// Menu path.
    pub path: String,
    /// Digits.
    pub digits: String,
    /// Disposition.
    pub disposition: String,
    /// Who hung up.
    pub hangup_by: Option<String>,
    /// Queue.
    pub queue: Option<String>,
}

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

/// Formats timestamps the same way for both databases (RFC 3339, ms, `Z`).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Store {
    /// Connect and run migrations. SQLite files (and their directory) are
    /// created on first run.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        anyhow::anyhow!("cannot create database directory {}: {e}", dir.display())
                    })?;
                }
            }
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open {url}: {e}"))?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            Ok(Store::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Ok(Store::Postgres(pool))
        }
    }

    /// Close calls that a previous process left open (it crashed or was
    /// killed): they end now with disposition `interrupted`.
    pub async fn close_orphaned_calls(&self) -> anyhow::Result<u64> {
        let now = ts(Utc::now());
        let sql =
            "UPDATE calls SET ended_at = $1, disposition = 'interrupted', hangup_by = 'restart' \
                   WHERE disposition = 'in_progress'";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(&now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(n)
    }

    /// Remember a loaded dialplan version (idempotent).
    pub async fn record_dialplan_version(
        &self,
        name: &str,
        file: &str,
        version: &str,
    ) -> anyhow::Result<()> {
        let sql = "INSERT INTO dialplan_versions (name, file, version, loaded_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (file, version) DO NOTHING";
        let now = ts(Utc::now());
        on_pool!(self, |p| sqlx::query(sql)
            .bind(name)
            .bind(file)
            .bind(version)
            .bind(&now)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Append an agent state change.
    pub async fn record_agent_event(&self, e: &AgentEvent) -> anyhow::Result<()> {
        let sql = "INSERT INTO agent_events (agent, at, from_state, to_state, reason) VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(&e.agent)
            .bind(ts(e.at))
            .bind(&e.from_state)
            .bind(&e.to_state)
            .bind(&e.reason)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Append a queue log event.
    pub async fn record_queue_log(&self, r: &QueueLogRow) -> anyhow::Result<()> {
        let sql = "INSERT INTO queue_log (at, queue, call_id, agent, event, data) VALUES ($1, $2, $3, $4, $5, $6)";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(ts(r.at))
            .bind(&r.queue)
            .bind(&r.call_id)
            .bind(&r.agent)
            .bind(&r.event)
            .bind(&r.data)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Calls from `caller` that started after `since` (repeat-caller context
    /// for agents).
    pub async fn count_calls_since(
        &self,
        caller: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let sql =
            "SELECT COUNT(*) FROM calls WHERE caller = $1 AND started_at >= $2 AND leg = 'inbound'";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(sql)
            .bind(caller)
            .bind(ts(since))
            .fetch_one(p)
            .await?);
        Ok(n)
    }

    /// The most recent call records (newest first).
    pub async fn recent_cdrs(&self, limit: i64) -> anyhow::Result<Vec<CdrRow>> {
        let sql = "SELECT call_id, leg, caller, dialed, dialplan, started_at, answered_at, ended_at, path, digits, \
                   disposition, hangup_by, queue FROM calls ORDER BY id DESC LIMIT $1";
        let rows = on_pool!(self, |p| sqlx::query_as::<_, CdrRow>(sql)
            .bind(limit)
            .fetch_all(p)
            .await?);
        Ok(rows)
    }

    /// Share of today's inbound calls whose caller also called in the
    /// previous 7 days (a dissatisfaction signal: they had to call again).
    pub async fn repeat_call_rate(&self, day_start: DateTime<Utc>) -> anyhow::Result<Option<f64>> {
        let week = ts(day_start - chrono::Duration::days(7));
        let day = ts(day_start);
        let total = "SELECT COUNT(*) FROM calls WHERE leg = 'inbound' AND started_at >= $1";
        let repeat = "SELECT COUNT(*) FROM calls c WHERE c.leg = 'inbound' AND c.started_at >= $1 AND EXISTS \
                      (SELECT 1 FROM calls p WHERE p.leg = 'inbound' AND p.caller = c.caller \
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

    /// Dialplan versions ever loaded (newest first).
    pub async fn dialplan_versions(&self) -> anyhow::Result<Vec<(String, String, String, String)>> {
        let sql = "SELECT name, file, version, loaded_at FROM dialplan_versions ORDER BY id DESC LIMIT 200";
        let rows = on_pool!(self, |p| sqlx::query_as::<
            _,
            (String, String, String, String),
        >(sql)
        .fetch_all(p)
        .await?);
        Ok(rows)
    }

    /// Insert or complete CDRs in one transaction.
    async fn write_cdrs(&self, batch: &[Cdr]) -> anyhow::Result<()> {
        let sql = "INSERT INTO calls (call_id, leg, caller, dialed, dialplan, dialplan_version, started_at, \
                   answered_at, ended_at, path, digits, vars, disposition, hangup_by, queue, sip_code) \
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) \
                   ON CONFLICT (call_id, leg) DO UPDATE SET dialplan = excluded.dialplan, \
                   dialplan_version = excluded.dialplan_version, answered_at = excluded.answered_at, \
                   ended_at = excluded.ended_at, path = excluded.path, digits = excluded.digits, \
                   vars = excluded.vars, disposition = excluded.disposition, hangup_by = excluded.hangup_by, \
                   queue = excluded.queue, sip_code = excluded.sip_code";
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for c in batch {
                sqlx::query(sql)
                    .bind(&c.call_id)
                    .bind(&c.leg)
                    .bind(&c.caller)
                    .bind(&c.dialed)
                    .bind(&c.dialplan)
                    .bind(&c.dialplan_version)
                    .bind(ts(c.started_at))
                    .bind(c.answered_at.map(ts))
                    .bind(c.ended_at.map(ts))
                    .bind(&c.path)
                    .bind(&c.digits)
                    .bind(&c.vars)
                    .bind(&c.disposition)
                    .bind(&c.hangup_by)
                    .bind(&c.queue)
                    .bind(c.sip_code)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// Handle to the background CDR writer. Cloning is cheap; sending never
/// blocks a call.
#[derive(Clone)]
pub struct CdrWriter {
    tx: mpsc::UnboundedSender<WriterMsg>,
}

enum WriterMsg {
    Row(Box<Cdr>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl CdrWriter {
    /// Start the writer task. It ends (after flushing) when every
    /// `CdrWriter` clone has been dropped; await the handle to be sure the
    /// last rows are on disk.
    pub fn spawn(store: Store) -> (CdrWriter, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<WriterMsg>();
        let handle = tokio::spawn(async move {
            let mut msgs = Vec::with_capacity(256);
            loop {
                if rx.recv_many(&mut msgs, 512).await == 0 {
                    break;
                }
                // Let a burst accumulate for a moment: one transaction for many rows.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while msgs.len() < 4096 {
                    match rx.try_recv() {
                        Ok(m) => msgs.push(m),
                        Err(_) => break,
                    }
                }
                let mut rows = Vec::with_capacity(msgs.len());
                let mut waiters = Vec::new();
                for m in msgs.drain(..) {
                    match m {
                        WriterMsg::Row(c) => rows.push(*c),
                        WriterMsg::Flush(w) => waiters.push(w),
                    }
                }
                for attempt in 0..5u32 {
                    if rows.is_empty() {
                        break;
                    }
                    match store.write_cdrs(&rows).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::error!(error = %e, rows = rows.len(), attempt, "writing CDRs failed");
                            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                        }
                    }
                }
                for w in waiters {
                    let _ = w.send(());
                }
            }
        });
        (CdrWriter { tx }, handle)
    }

    /// Queue a row (insert or update by Call-ID and leg).
    pub fn write(&self, cdr: Cdr) {
        if self.tx.send(WriterMsg::Row(Box::new(cdr))).is_err() {
            tracing::error!("CDR writer has stopped; a call record was lost");
        }
    }

    /// Wait until every row queued before this call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(WriterMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

pub mod callbacks;
