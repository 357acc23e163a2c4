//! The store: an embedded SQLite file by default, PostgreSQL when several
//! nodes share state. Queries are written once with `$N` placeholders, which
//! both drivers accept.
//!
//! Call records are written by a background task ([`CdrWriter`]) that batches
//! rows into one transaction, so a burst of calls costs one fsync, not one
//! per call, and no call task ever waits on the disk.
//!
//! One module per concept, all re-exported here:
//! - [`connect`]: opening the database and migrating its schema;
//! - [`cdrs`]: call records ([`Cdr`], [`CdrRow`]) and the queries on them;
//! - [`cdr_writer`]: the batching background writer of call records;
//! - [`logs`]: the agent state history and the queue log;
//! - [`dialplan_versions`]: which dialplan versions were loaded when;
//! - [`recovery`]: closing what a killed process left open, at start-up;
//! - [`callbacks`]: callback requests, their history and leases;
//! - [`customers`]: the customer directory and its version;
//! - [`surveys`]: post-call survey answers, for CSAT;
//! - [`recordings`]: call recordings (their files are under `[recording] dir`);
//! - [`today`]: one day's events, to rebuild today's live figures;
//! - [`acd_owner`]: the lease on the queues' ACD (one queue across nodes).

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

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

/// Formats timestamps the same way for both databases (RFC 3339, ms, `Z`).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads back a timestamp written by [`ts`].
fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

// Declared after `on_pool!`, which they use.
pub mod acd_owner;
pub mod batch;
pub mod callback_sync;
pub mod callbacks;
pub mod cdr_writer;
pub mod cdrs;
pub mod connect;
pub mod customers;
pub mod dialplan_versions;
pub mod logs;
pub mod recordings;
pub mod recovery;
pub mod surveys;
pub mod today;

pub use cdr_writer::CdrWriter;
pub use cdrs::Cdr;
// The type of `Store::recent_cdrs`' rows keeps its old path, even while no
// caller names it.
#[allow(unused_imports)]
pub use cdrs::CdrRow;
pub use logs::{AgentEvent, QueueLogRow};
pub use recovery::Recovery;
pub use today::DayRecord;

/// A fresh SQLite store in a temporary directory, for the store's tests
/// (keep the directory alive as long as the store).
#[cfg(test)]
pub(crate) async fn scratch_sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::connect(&url).await.expect("connect");
    (dir, store)
}
