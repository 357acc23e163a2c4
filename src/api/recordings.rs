//! Call recordings: the list and one recording's facts (supervisors), its
//! audio as a WAV file (supervisors), and pausing and resuming the one in
//! progress on a call (the agent on that call, or a supervisor).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::auth::{authorize, check_token, Need};
use super::errors::{error, json_response, ApiError, ErrorBody};
use super::list_query::{answer_list, nonempty};
use super::openapi::AuthErrors;
use super::request::{ApiPath, ApiQuery};
use super::ApiState;
use crate::recording::{files, Control};
use crate::store::recordings::{RecordingFilter, RecordingRow, RecordingState};

/// Query of `GET /api/v1/recordings` (an empty value is no filter).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecordingQuery {
    /// Only this call's recordings (an inbound call's SIP Call-ID, or a
    /// callback attempt's `cb-…` id)
    call_id: Option<String>,
    /// Only this agent's
    agent: Option<String>,
    /// Only this queue's
    queue: Option<String>,
    /// At most this many (newest first)
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// The answer of `GET /api/v1/recordings`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RecordingList {
    /// Newest first.
    recordings: Vec<RecordingRow>,
}

/// Recordings
#[utoipa::path(
    get,
    path = "/api/v1/recordings",
    operation_id = "listRecordings",
    tag = "recordings",
    params(RecordingQuery),
    responses(
        (status = 200, description = "Recordings, newest first", body = RecordingList),
        (status = 400, description = "Malformed query string (JSON error, code `bad_request`).", body = ErrorBody),
        AuthErrors,
        (status = 422, description = "`limit` outside 1-1000", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn list_recordings(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<RecordingQuery>,
) -> Response {
    let filter = RecordingFilter {
        call_id: nonempty(q.call_id),
        agent: nonempty(q.agent),
        queue: nonempty(q.queue),
    };
    answer_list(
        &ctx,
        &headers,
        Ok(()),
        q.limit,
        |limit| ctx.store.recordings(&filter, limit),
        |recordings| RecordingList { recordings },
    )
    .await
}

/// The recording id of a path, as the document states it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct RecordingId {
    /// Recording id
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    #[allow(dead_code)]
    id: i64,
}

/// The stored recording `id` (a path segment), or the error to answer.
async fn stored(ctx: &ApiState, id: &str) -> Result<RecordingRow, Response> {
    let Ok(id) = id.parse::<i64>() else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("path: `{id}` is not a recording id (an integer)"),
        ));
    };
    match ctx.store.recording(id).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, format!("no recording {id}"))),
        Err(e) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// One recording
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}",
    operation_id = "getRecording",
    tag = "recordings",
    params(RecordingId),
    responses(
        (status = 200, description = "The recording", body = RecordingRow),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn get_recording(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    match stored(&ctx, &id).await {
        Ok(r) => json_response(StatusCode::OK, r),
        Err(r) => r,
    }
}

/// A WAV file's bytes (the document's `WavFile`).
pub(super) struct WavFile;

impl PartialSchema for WavFile {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("audio/wav")
            .description(Some(
                "Stereo WAV, 8 kHz 16-bit PCM: the caller (or callback customer) on the left \
                 channel, the agent on the right",
            ))
            .into()
    }
}

impl ToSchema for WavFile {}

/// A recording's audio
///
/// The WAV file (the caller or callback customer left, the agent right),
/// streamed. Files are kept on the node that recorded them.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}/audio",
    operation_id = "getRecordingAudio",
    tag = "recordings",
    params(RecordingId),
    responses(
        (status = 200, description = "The WAV file", content_type = "audio/wav", body = WavFile),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "Unknown, or its file is gone (deleted, failed before any audio, or on another node)", body = ErrorBody),
        (status = 409, description = "Still recording", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn get_recording_audio(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let row = match stored(&ctx, &id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if row.state == RecordingState::Recording {
        return error(
            StatusCode::CONFLICT,
            format!("recording {} is still being written", row.id),
        );
    }
    let gone = || {
        error(
            StatusCode::NOT_FOUND,
            format!("recording {} has no audio on this node", row.id),
        )
    };
    let Some(path) = files::resolve(ctx.recorder.dir(), &row.path) else {
        return gone();
    };
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return gone();
    };
    let len = match file.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        _ => return gone(),
    };
    let body = Body::from_stream(chunks(file));
    (
        [
            (header::CONTENT_TYPE, "audio/wav".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"recording-{}.wav\"", row.id),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

/// A file as a stream of 64 KB chunks.
fn chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// The recording in progress on a call, after a pause or a resume.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RecordingControl {
    /// The call.
    call_id: String,
    /// The recording (null until its row is stored, a moment after the
    /// bridge).
    #[schema(required = true)]
    recording_id: Option<i64>,
    /// The agent recorded.
    agent: String,
    /// Whether it is paused now.
    paused: bool,
    /// Paused time so far, in milliseconds.
    paused_ms: u64,
}

impl RecordingControl {
    fn of(c: &Control) -> RecordingControl {
        RecordingControl {
            call_id: c.call_id().to_string(),
            recording_id: c.recording_id(),
            agent: c.agent().to_string(),
            paused: c.is_paused(),
            paused_ms: c.paused_ms(),
        }
    }
}

/// The recording on `call_id`, if the token may pause it: the agent on
/// the call, or an admin or supervisor (`Need::Agent` of that agent). A
/// missing or wrong token is `401` before anything is looked up.
fn control(ctx: &ApiState, headers: &HeaderMap, call_id: &str) -> Result<Arc<Control>, ApiError> {
    authorize(ctx, headers, None, Need::Any)?;
    let Some(c) = ctx.recorder.control(call_id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no recording in progress on call `{call_id}`"),
        ));
    };
    authorize(ctx, headers, None, Need::Agent(c.agent()))?;
    Ok(c)
}

/// Pause a call's recording
///
/// From now on silence is written (the timeline is kept) and the paused
/// time counted, until resumed. Pausing a paused recording changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/calls/{id}/recording/pause",
    operation_id = "pauseRecording",
    tag = "recordings",
    params(("id" = String, Path, description = "The call: an inbound call's SIP Call-ID, or a callback attempt's `cb-…` id (an agent's `call_id`)")),
    responses(
        (status = 200, description = "Paused", body = RecordingControl),
        (status = 400, description = "Path is not UTF-8 after percent-decoding", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "Neither the agent on the call nor a supervisor", body = ErrorBody),
        (status = 404, description = "No recording in progress on that call", body = ErrorBody),
    )
)]
pub(super) async fn pause_recording(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(call_id): ApiPath<String>,
) -> Response {
    set_paused(&ctx, &headers, &call_id, true)
}

/// Resume a call's recording
#[utoipa::path(
    post,
    path = "/api/v1/calls/{id}/recording/resume",
    operation_id = "resumeRecording",
    tag = "recordings",
    params(("id" = String, Path, description = "The call: an inbound call's SIP Call-ID, or a callback attempt's `cb-…` id (an agent's `call_id`)")),
    responses(
        (status = 200, description = "Recording again", body = RecordingControl),
        (status = 400, description = "Path is not UTF-8 after percent-decoding", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "Neither the agent on the call nor a supervisor", body = ErrorBody),
        (status = 404, description = "No recording in progress on that call", body = ErrorBody),
    )
)]
pub(super) async fn resume_recording(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(call_id): ApiPath<String>,
) -> Response {
    set_paused(&ctx, &headers, &call_id, false)
}

/// Pause or resume the recording of `call_id` for whoever may control it.
fn set_paused(ctx: &ApiState, headers: &HeaderMap, call_id: &str, paused: bool) -> Response {
    match control(ctx, headers, call_id) {
        Ok(c) => {
            if paused {
                c.pause();
            } else {
                c.resume();
            }
            tracing::info!(%call_id, agent = c.agent(), paused, "recording pause changed");
            json_response(StatusCode::OK, RecordingControl::of(&c))
        }
        Err(e) => e.into_response(),
    }
}
