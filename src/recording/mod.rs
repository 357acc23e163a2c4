//! Call recording: a bridged call whose queue or agent says `record = true`
//! is written to a stereo WAV (the caller or callback customer left, the
//! agent right, 8 kHz 16-bit), linked to its call by a `recordings` row.
//!
//! The media path only copies: each bridge relay gets a
//! [`Tap`](crate::media::tap::Tap) that `try_send`s every audio payload,
//! with its arrival time, to the recording's bounded queue. One writer task
//! per recording drains that queue every [`FLUSH_EVERY`], places the frames
//! on one timeline ([`writer::Timeline`]: gaps and pauses are silence) and
//! hands the samples to the blocking pool to be written; a full queue loses
//! frames (counted), never time on the media path. A write error (a full
//! disk, an unusable directory) ends the recording as `failed` with the
//! error, logs a warning and counts it; the call goes on untouched.
//!
//! [`Recorder`] is the service: it starts recordings, knows the ones in
//! progress (pause and resume from the API), finishes at start-up the rows
//! a killed process left in `recording` (their header repaired when
//! possible) and deletes recordings older than `[recording]
//! retention_days` at start-up and hourly.
//!
//! - [`writer`]: the timeline and the WAV session (no I/O of its own);
//! - [`files`]: paths, creating, repairing and deleting files.

pub mod files;
pub mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use crate::config::recording::RecordingConfig;
use crate::config::Config;
use crate::media::tap::{Frame, Side, Tap};
use crate::metrics;
use crate::store::recordings::RecordingEnd;
use crate::store::Store;
use writer::Session;

/// How often a recording's writer drains its queue and writes.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Frames a recording's queue holds (both legs, 20 ms each: about 5 s):
/// how long its writer may be held up by the disk before frames are lost.
pub const QUEUE_FRAMES: usize = 512;

/// How often old recordings are deleted (and once at start-up).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Whether a call taken by `agent` from `queue` is recorded: the queue or
/// the agent says `record = true`.
pub fn wanted(config: &Config, queue: Option<&str>, agent: &str) -> bool {
    queue
        .and_then(|q| config.queues.get(q))
        .is_some_and(|q| q.record)
        || config.agents.get(agent).is_some_and(|a| a.record)
}

/// A recording in progress as the API sees it: whose it is, and its pause.
#[derive(Debug)]
pub struct Control {
    call_id: String,
    agent: String,
    /// Read by the taps per packet: paused frames carry no audio.
    paused: Arc<AtomicBool>,
    clock: Mutex<PauseClock>,
    /// The `recordings` row, once stored.
    id: OnceLock<i64>,
}

/// Paused time: the pause under way, and the total of the ended ones.
#[derive(Debug, Default)]
struct PauseClock {
    since: Option<Instant>,
    total: Duration,
}

impl Control {
    /// The call recorded.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The agent on the call (who may pause it).
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The recording's id, once its row is stored.
    pub fn recording_id(&self) -> Option<i64> {
        self.id.get().copied()
    }

    /// Whether the recording is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Pause (silence is written from the next packet on); pausing a
    /// paused recording changes nothing.
    pub fn pause(&self) {
        let mut c = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        if c.since.is_none() {
            c.since = Some(Instant::now());
            self.paused.store(true, Ordering::Relaxed);
        }
    }

    /// Resume recording the audio.
    pub fn resume(&self) {
        let mut c = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = c.since.take() {
            c.total += since.elapsed();
            self.paused.store(false, Ordering::Relaxed);
        }
    }

    /// Paused time so far, a pause under way included.
    pub fn paused_ms(&self) -> u64 {
        let c = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let running = c.since.map_or(Duration::ZERO, |s| s.elapsed());
        (c.total + running).as_millis() as u64
    }
}

/// The call's handle on its recording: stopping it (or dropping it) ends
/// the recording at that moment; the writer finishes the file and the row.
pub struct Recording {
    control: Arc<Control>,
    stop: Option<oneshot::Sender<Instant>>,
    recorder: Arc<Recorder>,
}

impl Recording {
    /// End the recording now.
    pub fn stop(self) {}
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(Instant::now());
        }
        self.recorder.forget(&self.control);
    }
}

/// The recording service.
pub struct Recorder {
    dir: PathBuf,
    retention_days: u32,
    store: Store,
    node: String,
    /// Recordings in progress by call id.
    live: Mutex<HashMap<String, Arc<Control>>>,
}

/// A recording's facts, for its writer.
struct Meta {
    control: Arc<Control>,
    queue: Option<String>,
    start: Instant,
}

impl Recorder {
    /// The service for `config`, storing rows in `store` as node `node`.
    pub fn new(config: &RecordingConfig, store: Store, node: String) -> Arc<Recorder> {
        Arc::new(Recorder {
            dir: config.dir(),
            retention_days: config.retention_days,
            store,
            node,
            live: Mutex::new(HashMap::new()),
        })
    }

    /// The recordings directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start recording call `call_id` taken by `agent` from `queue`: the
    /// taps go on the caller's and the agent's relays (see
    /// [`crate::media::Stream::record`]). Never waits: the row and the file
    /// are made by the writer task. Must be called inside the runtime.
    pub fn start(
        self: &Arc<Self>,
        call_id: &str,
        agent: &str,
        queue: Option<&str>,
    ) -> (Recording, Tap, Tap) {
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
        let (stop_tx, stop_rx) = oneshot::channel();
        let paused = Arc::new(AtomicBool::new(false));
        let control = Arc::new(Control {
            call_id: call_id.to_string(),
            agent: agent.to_string(),
            paused: Arc::clone(&paused),
            clock: Mutex::default(),
            id: OnceLock::new(),
        });
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(call_id.to_string(), Arc::clone(&control));
        metrics::RECORDINGS_STARTED_TOTAL.fetch_add(1, Ordering::Relaxed);
        let meta = Meta {
            control: Arc::clone(&control),
            queue: queue.map(str::to_string),
            start: Instant::now(),
        };
        tokio::spawn(Arc::clone(self).write(meta, rx, stop_rx));
        let caller = Tap::new(tx.clone(), Side::Caller, Arc::clone(&paused));
        let agent_tap = Tap::new(tx, Side::Agent, paused);
        let handle = Recording {
            control,
            stop: Some(stop_tx),
            recorder: Arc::clone(self),
        };
        (handle, caller, agent_tap)
    }

    /// The recording in progress on `call_id`, if any.
    pub fn control(&self, call_id: &str) -> Option<Arc<Control>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(call_id)
            .cloned()
    }

    /// `c` is no longer in progress (it may have been replaced already by
    /// a newer recording of the same call, which stays).
    fn forget(&self, c: &Control) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live
            .get(&c.call_id)
            .is_some_and(|l| std::ptr::eq(Arc::as_ptr(l), c))
        {
            live.remove(&c.call_id);
        }
    }

    /// One recording's writer: its row, its file, then drain and write
    /// every [`FLUSH_EVERY`] until the call stops it or a write fails.
    async fn write(
        self: Arc<Self>,
        meta: Meta,
        mut rx: mpsc::Receiver<Frame>,
        mut stop: oneshot::Receiver<Instant>,
    ) {
        let started_at = Utc::now();
        let c = &meta.control;
        let rel = files::relative_path(&c.call_id, started_at);
        let id = match self
            .store
            .insert_recording(
                &c.call_id,
                &c.agent,
                meta.queue.as_deref(),
                &rel,
                started_at,
                &self.node,
            )
            .await
        {
            Ok(id) => id,
            Err(e) => {
                metrics::RECORDINGS_FAILED_TOTAL.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(call_id = %c.call_id, error = %e, "cannot store a recording row; this call is not recorded");
                self.forget(c);
                return;
            }
        };
        let _ = c.id.set(id);
        let path = self.dir.join(&rel);
        let start = meta.start;
        let p = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            files::create(&p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))
                .and_then(|w| Session::new(w, start))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let mut session = match opened {
            Ok(s) => s,
            Err(e) => {
                rx.close();
                let end = RecordingEnd {
                    ended_at: Utc::now(),
                    duration_ms: 0,
                    bytes: 0,
                    paused_ms: c.paused_ms(),
                    error: Some(e),
                };
                return self.finished(id, c, end).await;
            }
        };
        tracing::info!(recording = id, call_id = %c.call_id, path = %rel, "recording");
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop_at = loop {
            let stopped = tokio::select! {
                _ = tick.tick() => None,
                at = &mut stop => Some(at.unwrap_or_else(|_| Instant::now())),
            };
            while let Ok(f) = rx.try_recv() {
                session.push(&f);
            }
            if let Some(at) = stopped {
                break at;
            }
            let now = Instant::now();
            let flushed = tokio::task::spawn_blocking(move || {
                session.flush(now);
                session
            })
            .await;
            session = match flushed {
                Ok(s) => s,
                Err(e) => {
                    rx.close();
                    let end = RecordingEnd {
                        ended_at: Utc::now(),
                        duration_ms: 0,
                        bytes: files::size(&path),
                        paused_ms: c.paused_ms(),
                        error: Some(format!("the writer stopped: {e}")),
                    };
                    return self.finished(id, c, end).await;
                }
            };
            if session.error().is_some() {
                break Instant::now();
            }
        };
        // Frames still in flight have nowhere to go.
        rx.close();
        let p = path.clone();
        let done =
            tokio::task::spawn_blocking(move || (session.finish(stop_at), files::size(&p))).await;
        let end = match done {
            Ok((out, bytes)) => {
                tracing::debug!(
                    recording = id,
                    paused_audio_ms = out.paused_audio_ms,
                    "recording written"
                );
                RecordingEnd {
                    ended_at: Utc::now(),
                    duration_ms: out.duration_ms(),
                    bytes,
                    paused_ms: c.paused_ms(),
                    error: out.error,
                }
            }
            Err(e) => RecordingEnd {
                ended_at: Utc::now(),
                duration_ms: 0,
                bytes: files::size(&path),
                paused_ms: c.paused_ms(),
                error: Some(format!("the writer stopped: {e}")),
            },
        };
        self.finished(id, c, end).await;
    }

    /// Store how recording `id` ended; a failure is logged and counted.
    async fn finished(&self, id: i64, c: &Control, end: RecordingEnd) {
        match &end.error {
            None => tracing::info!(
                recording = id,
                call_id = %c.call_id,
                duration_ms = end.duration_ms,
                paused_ms = end.paused_ms,
                "recording complete"
            ),
            Some(e) => {
                metrics::RECORDINGS_FAILED_TOTAL.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(recording = id, call_id = %c.call_id, error = %e, "recording failed; the call goes on");
                // Nothing left to pause: the agent page drops its button.
                self.forget(c);
            }
        }
        if let Err(e) = self.store.finish_recording(id, &end).await {
            tracing::warn!(recording = id, error = %e, "cannot store the end of a recording");
        }
    }

    /// At start-up, before anything records: this node's rows a killed
    /// process left in `recording` are finished: `complete` when the file's
    /// header could be repaired, `failed` otherwise. Returns (complete,
    /// failed).
    pub async fn recover(&self) -> anyhow::Result<(u64, u64)> {
        let rows = self.store.recordings_left_open(&self.node).await?;
        let (mut complete, mut failed) = (0, 0);
        for row in rows {
            let path = files::resolve(&self.dir, &row.path);
            let repaired = tokio::task::spawn_blocking(move || {
                let path = path.ok_or_else(|| "the path leaves the directory".to_string())?;
                let frames = files::repair(&path)?;
                Ok::<_, String>((frames, files::size(&path), files::modified(&path)))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let end = match repaired {
                Ok((frames, bytes, modified)) => {
                    complete += 1;
                    RecordingEnd {
                        ended_at: modified.unwrap_or_else(Utc::now),
                        duration_ms: frames * 1000 / u64::from(writer::RATE),
                        bytes,
                        paused_ms: 0,
                        error: None,
                    }
                }
                Err(e) => {
                    failed += 1;
                    RecordingEnd {
                        ended_at: Utc::now(),
                        duration_ms: 0,
                        bytes: 0,
                        paused_ms: 0,
                        error: Some(format!(
                            "the server stopped while recording and the file could not be finished: {e}"
                        )),
                    }
                }
            };
            self.store.finish_recording(row.id, &end).await?;
        }
        Ok((complete, failed))
    }

    /// Delete recordings older than `retention_days` now and every hour
    /// (nothing with `retention_days = 0`).
    pub fn spawn_retention(self: &Arc<Self>) {
        if self.retention_days == 0 {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match me.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        deleted = n,
                        days = me.retention_days,
                        "deleted old recordings"
                    ),
                    Err(e) => tracing::warn!(error = %e, "deleting old recordings failed"),
                }
            }
        });
    }

    /// Delete the files and rows of recordings that started more than
    /// `retention_days` ago; returns how many.
    pub async fn sweep(&self) -> anyhow::Result<u64> {
        const BATCH: i64 = 200;
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(self.retention_days));
        let mut deleted = 0;
        loop {
            let batch = self
                .store
                .recordings_before(cutoff, &self.node, BATCH)
                .await?;
            for (id, rel) in &batch {
                if let Some(path) = files::resolve(&self.dir, rel) {
                    tokio::task::spawn_blocking(move || files::remove(&path))
                        .await?
                        .map_err(|e| anyhow::anyhow!("cannot delete recording {id}: {e}"))?;
                }
                self.store.delete_recording(*id).await?;
                deleted += 1;
            }
            if (batch.len() as i64) < BATCH {
                return Ok(deleted);
            }
        }
    }
}
