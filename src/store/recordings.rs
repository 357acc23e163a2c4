//! Call recordings: one row per recorded conversation, linked to its call
//! by `call_id` (see `migrations/*/0011_recordings.sql`). The file itself
//! is under the recordings directory; `path` is relative to it.

use chrono::{DateTime, Utc};

use super::{ts, Store};

/// A recording as stored and as the API shows it (`Recording`).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Recording)]
pub struct RecordingRow {
    /// Recording id.
    pub id: i64,
    /// The call: an inbound call's SIP Call-ID (its call record's
    /// `call_id`), or a callback attempt's `cb-<callback id>-<suffix>`.
    pub call_id: String,
    /// The agent on the right channel.
    pub agent: String,
    /// The queue the call was taken from.
    #[schema(required = true)]
    pub queue: Option<String>,
    /// The WAV file, relative to the recordings directory.
    pub path: String,
    /// Start (RFC 3339).
    #[schema(format = DateTime)]
    pub started_at: String,
    /// End (RFC 3339); null while recording.
    #[schema(required = true, format = DateTime)]
    pub ended_at: Option<String>,
    /// Length of the audio in milliseconds (paused time included: it is
    /// silence in the file).
    pub duration_ms: i64,
    /// Size of the file in bytes.
    pub bytes: i64,
    /// `recording`, `complete` or `failed`.
    #[schema(inline)]
    #[sqlx(try_from = "String")]
    pub state: RecordingState,
    /// Time the recording was paused, in milliseconds.
    pub paused_ms: i64,
    /// Why it failed (`failed` only).
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A recording's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// Being written.
    Recording,
    /// Written to the end; the file is a valid WAV.
    Complete,
    /// Ended by an error (`error` says which); the call went on.
    Failed,
}

impl TryFrom<String> for RecordingState {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "recording" => Ok(RecordingState::Recording),
            "complete" => Ok(RecordingState::Complete),
            "failed" => Ok(RecordingState::Failed),
            _ => Err(format!("unknown recording state `{s}`")),
        }
    }
}

/// What a finished recording's row is updated with.
#[derive(Debug, Clone)]
pub struct RecordingEnd {
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Audio length.
    pub duration_ms: u64,
    /// File size.
    pub bytes: u64,
    /// Paused time.
    pub paused_ms: u64,
    /// `None`: complete; otherwise why it failed.
    pub error: Option<String>,
}

/// Filters of a listing (all optional, newest first).
#[derive(Debug, Default, Clone)]
pub struct RecordingFilter {
    /// Only this call's recordings.
    pub call_id: Option<String>,
    /// Only this agent's.
    pub agent: Option<String>,
    /// Only this queue's.
    pub queue: Option<String>,
}

/// The columns of a [`RecordingRow`], for `concat!`.
macro_rules! columns {
    () => {
        "SELECT id, call_id, agent, queue, path, started_at, ended_at, duration_ms, bytes, \
         state, paused_ms, error FROM recordings "
    };
}

const ONE: &str = concat!(columns!(), "WHERE id = $1");
const LIST: &str = concat!(
    columns!(),
    "WHERE ($1 IS NULL OR call_id = $1) AND ($2 IS NULL OR agent = $2) \
     AND ($3 IS NULL OR queue = $3) ORDER BY id DESC LIMIT $4"
);
/// On SQLite every open row is the previous process's (`$1` unused).
const OPEN_SQLITE: &str = concat!(columns!(), "WHERE state = 'recording' AND $1 = $1");
const OPEN_POSTGRES: &str = concat!(columns!(), "WHERE state = 'recording' AND node_id = $1");
const OLD_SQLITE: &str = "SELECT id, path FROM recordings WHERE started_at < $1 \
     AND state <> 'recording' AND $2 = $2 ORDER BY id LIMIT $3";
const OLD_POSTGRES: &str = "SELECT id, path FROM recordings WHERE started_at < $1 \
     AND state <> 'recording' AND node_id = $2 ORDER BY id LIMIT $3";

/// A count for the store: saturated rather than wrapped.
fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// A recording starts: its row in `recording` state; returns its id.
    pub async fn insert_recording(
        &self,
        call_id: &str,
        agent: &str,
        queue: Option<&str>,
        path: &str,
        started_at: DateTime<Utc>,
        node: &str,
    ) -> anyhow::Result<i64> {
        let sql =
            "INSERT INTO recordings (call_id, agent, queue, path, started_at, state, node_id) \
                   VALUES ($1, $2, $3, $4, $5, 'recording', $6) RETURNING id";
        let id: i64 = on_pool!(self, |p| sqlx::query_scalar(sql)
            .bind(call_id)
            .bind(agent)
            .bind(queue)
            .bind(path)
            .bind(ts(started_at))
            .bind(node)
            .fetch_one(p)
            .await?);
        Ok(id)
    }

    /// A recording ended: complete, or failed with its error.
    pub async fn finish_recording(&self, id: i64, end: &RecordingEnd) -> anyhow::Result<()> {
        let state = if end.error.is_some() {
            "failed"
        } else {
            "complete"
        };
        let sql = "UPDATE recordings SET ended_at = $2, duration_ms = $3, bytes = $4, \
                   paused_ms = $5, state = $6, error = $7 WHERE id = $1";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(ts(end.ended_at))
            .bind(big(end.duration_ms))
            .bind(big(end.bytes))
            .bind(big(end.paused_ms))
            .bind(state)
            .bind(end.error.as_deref())
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// One recording.
    pub async fn recording(&self, id: i64) -> anyhow::Result<Option<RecordingRow>> {
        let row = on_pool!(self, |p| sqlx::query_as(ONE)
            .bind(id)
            .fetch_optional(p)
            .await?);
        Ok(row)
    }

    /// Recordings matching `filter`, newest first, at most `limit`.
    pub async fn recordings(
        &self,
        filter: &RecordingFilter,
        limit: i64,
    ) -> anyhow::Result<Vec<RecordingRow>> {
        let rows = on_pool!(self, |p| sqlx::query_as(LIST)
            .bind(filter.call_id.as_deref())
            .bind(filter.agent.as_deref())
            .bind(filter.queue.as_deref())
            .bind(limit)
            .fetch_all(p)
            .await?);
        Ok(rows)
    }

    /// Rows left in `recording` by a previous process of this node (on
    /// SQLite every such row: the file belongs to one process at a time).
    pub async fn recordings_left_open(&self, node: &str) -> anyhow::Result<Vec<RecordingRow>> {
        let sql = match self {
            Store::Sqlite(_) => OPEN_SQLITE,
            Store::Postgres(_) => OPEN_POSTGRES,
        };
        let rows = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(node)
            .fetch_all(p)
            .await?);
        Ok(rows)
    }

    /// Up to `limit` finished recordings of this node (every node's on
    /// SQLite) that started before `cutoff`: (id, path).
    pub async fn recordings_before(
        &self,
        cutoff: DateTime<Utc>,
        node: &str,
        limit: i64,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        let sql = match self {
            Store::Sqlite(_) => OLD_SQLITE,
            Store::Postgres(_) => OLD_POSTGRES,
        };
        let rows = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(ts(cutoff))
            .bind(node)
            .bind(limit)
            .fetch_all(p)
            .await?);
        Ok(rows)
    }

    /// Forget a recording (its file is already deleted).
    pub async fn delete_recording(&self, id: i64) -> anyhow::Result<()> {
        on_pool!(self, |p| sqlx::query(
            "DELETE FROM recordings WHERE id = $1"
        )
        .bind(id)
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }
}
