//! `ringback serve`: start-up, the shared server context, hot reload and
//! shutdown.
//!
//! Dialplans and prompts are loaded together into an immutable
//! [`Snapshot`]. A new call takes the current snapshot and keeps it until it
//! ends; a reload builds a complete new snapshot off the async threads,
//! validates it, and swaps it in only if it is clean. So an invalid edit
//! never reaches a caller, and a valid one never changes a call in progress.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ringback_dialplan::{load_dir_cached, CheckContext, DialplanSet, LoadCache};
use ringback_media::codec::Codec;
use ringback_media::prompt::{self, Prompt, PromptCache};

use crate::config::Config;
use crate::endpoint::{self, EndpointCmd};
use crate::media::MediaEngine;
use crate::metrics;
use crate::store::{CdrWriter, Store};

/// Everything a call needs that outlives it: dialplans with their prompts.
pub struct Snapshot {
    /// Dialplans by dialed number.
    pub plans: DialplanSet,
    /// Decoded, pre-encoded prompts.
    pub prompts: PromptCache,
    /// Increases with every successful reload.
    pub generation: u64,
}

/// Shared, read-mostly server state.
pub struct ServerCtx {
    /// Configuration (fixed for the process lifetime).
    pub config: Config,
    /// RTP ports and media clocks.
    pub media: MediaEngine,
    /// The store.
    pub store: Store,
    /// Background CDR writer.
    pub cdr: CdrWriter,
    /// The ACD (agents and queues).
    pub acd: crate::acd_task::AcdHandle,
    /// The callback service.
    pub callbacks: crate::callbacks::CallbackHandle,
    /// Live call contexts and today's counters.
    pub live: crate::live::Live,
    /// The SIP endpoint (set once it runs; tasks that place calls need it).
    pub endpoint: std::sync::OnceLock<crate::endpoint::EndpointHandle>,
    /// Codecs offered/accepted, in our order of preference.
    pub codecs: Vec<Codec>,
    /// Played when a queue's music-on-hold prompt is missing.
    pub fallback_hold_music: Arc<Prompt>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Held by a reload from start to swap, so reloads never overlap; holds
    /// what the next reload may reuse.
    reload_lock: tokio::sync::Mutex<ReloadCache>,
    /// Writes loaded dialplan versions in the background.
    versions: VersionLog,
}

/// What one load keeps for the next: decoded prompts by file stamp, and
/// parsed and checked dialplans by file text. A reload of unchanged files
/// then only stats the prompts and reads and compares the dialplan files.
#[derive(Default)]
pub struct ReloadCache {
    prompts: PromptCache,
    plans: LoadCache,
}

impl ServerCtx {
    /// The callback policy of a queue (its own, or the defaults).
    pub fn callback_policy(&self, queue: &str) -> ringback_callback::Policy {
        self.config
            .queues
            .get(queue)
            .and_then(|q| q.callback.clone())
            .unwrap_or_default()
    }

    /// The snapshot new calls start with.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => Arc::clone(&s),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Reload dialplans and prompts. On success new calls use the new
    /// snapshot; on failure the old one keeps serving and the diagnostics are
    /// returned (and logged).
    pub async fn reload(&self, why: &str) -> Result<ReloadReport, Vec<String>> {
        let mut cache_slot = self.reload_lock.lock().await;
        let started = Instant::now();
        let cfg = self.config.clone();
        let generation = self.snapshot().generation + 1;
        let mut cache = std::mem::take(&mut *cache_slot);
        let (result, cache) = tokio::task::spawn_blocking(move || {
            let r = load_snapshot_cached(&cfg, generation, &mut cache);
            (r, cache)
        })
        .await
        .map_err(|e| vec![format!("reload task failed: {e}")])?;
        *cache_slot = cache;
        match result {
            Ok((snap, warnings)) => {
                for w in &warnings {
                    tracing::warn!("{w}");
                }
                let report = ReloadReport {
                    dialplans: snap.plans.len(),
                    prompts: snap.prompts.names().count(),
                    warnings: warnings.len(),
                    took: started.elapsed(),
                };
                self.record_versions(&snap.plans);
                match self.snapshot.write() {
                    Ok(mut s) => *s = Arc::new(snap),
                    Err(p) => *p.into_inner() = Arc::new(snap),
                }
                metrics::DIALPLAN_RELOADS_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    trigger = why,
                    dialplans = report.dialplans,
                    prompts = report.prompts,
                    warnings = report.warnings,
                    took_ms = report.took.as_secs_f64() * 1000.0,
                    "dialplans reloaded"
                );
                Ok(report)
            }
            Err(errors) => {
                metrics::DIALPLAN_RELOAD_FAILURES_TOTAL
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(
                    trigger = why,
                    errors = errors.len(),
                    "dialplan reload rejected; the previous version keeps serving"
                );
                for e in &errors {
                    tracing::error!("{e}");
                }
                Err(errors)
            }
        }
    }

    /// Queue the versions of `plans` for `dialplan_versions` (written in
    /// order, in the background: the reload's answer does not wait for it).
    fn record_versions(&self, plans: &DialplanSet) {
        self.versions.record(
            plans
                .plans()
                .map(|p| {
                    (
                        p.name.clone(),
                        p.file.display().to_string(),
                        p.version.clone(),
                    )
                })
                .collect(),
        );
    }
}

enum VersionMsg {
    Record(Vec<(String, String, String)>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The writer of `dialplan_versions`: one task, so batches are written in
/// the order the loads happened; each batch in one transaction. A version
/// already written by this process is not written again (the table keeps
/// the first load of each file and version anyway); one that failed is
/// tried again with the next batch that contains it.
struct VersionLog {
    tx: tokio::sync::mpsc::UnboundedSender<VersionMsg>,
}

impl VersionLog {
    fn spawn(store: Store) -> VersionLog {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut written: std::collections::HashSet<(String, String)> =
                std::collections::HashSet::new();
            while let Some(msg) = rx.recv().await {
                match msg {
                    VersionMsg::Record(batch) => {
                        let new: Vec<(String, String, String)> = batch
                            .into_iter()
                            .filter(|(_, file, version)| {
                                !written.contains(&(file.clone(), version.clone()))
                            })
                            .collect();
                        if new.is_empty() {
                            continue;
                        }
                        match store.record_dialplan_versions(&new).await {
                            Ok(()) => written.extend(new.into_iter().map(|(_, f, v)| (f, v))),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot record dialplan versions")
                            }
                        }
                    }
                    VersionMsg::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        VersionLog { tx }
    }

    fn record(&self, batch: Vec<(String, String, String)>) {
        let _ = self.tx.send(VersionMsg::Record(batch));
    }

    /// Wait until everything queued before is written.
    async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(VersionMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// What a successful reload loaded.
#[derive(Debug)]
pub struct ReloadReport {
    /// Dialplan files.
    pub dialplans: usize,
    /// Prompts.
    pub prompts: usize,
    /// Warnings (unreachable nodes, unreadable WAVs …); logged as they come.
    pub warnings: usize,
    /// Time taken.
    pub took: Duration,
}

/// What `check` and the server validate against: prompts on disk, queues
/// in the config, the global operator queue.
pub fn check_context(cfg: &Config, prompts: &PromptCache) -> CheckContext {
    CheckContext {
        prompts: Some(prompts.names().map(str::to_string).collect()),
        queues: Some(cfg.queues.keys().cloned().collect()),
        global_operator: cfg.operator_queue.clone(),
    }
}

/// Load prompts and dialplans. Errors and warnings come formatted as
/// `file:line:col: message`.
/// `cache` holds what the previous load decoded and checked; unchanged
/// prompt files and dialplan files are reused from it, and it is updated
/// with this load (also when the load fails).
pub fn load_snapshot_cached(
    cfg: &Config,
    generation: u64,
    cache: &mut ReloadCache,
) -> Result<(Snapshot, Vec<String>), Vec<String>> {
    let (prompts, prompt_errors) = PromptCache::reload_dir(&cfg.prompts.dir, &cache.prompts)
        .map(|(cache, errs)| (cache, errs.iter().map(|e| e.to_string()).collect()))
        .map_err(|e| vec![e.to_string()])?;
    cache.prompts = prompts.clone();
    let mut warnings: Vec<String> = prompt_errors;
    let ctx = check_context(cfg, &prompts);
    let (plans, diags) = load_dir_cached(&cfg.dialplans.dir, &ctx, &mut cache.plans)
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    warnings.extend(diags.iter().map(ToString::to_string));
    if plans.is_empty() {
        return Err(vec![format!(
            "{}: no dialplans (*.toml) found",
            cfg.dialplans.dir.display()
        )]);
    }
    Ok((
        Snapshot {
            plans,
            prompts,
            generation,
        },
        warnings,
    ))
}

/// Load every WAV in `dir`; unreadable files are reported, not fatal (a
/// dialplan that uses one fails its check instead).
pub fn load_prompts(dir: &Path) -> Result<(PromptCache, Vec<String>), Vec<String>> {
    PromptCache::load_dir(dir)
        .map(|(cache, errs)| (cache, errs.iter().map(|e| e.to_string()).collect()))
        .map_err(|e| vec![e.to_string()])
}

/// Run the server until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let t0 = Instant::now();
    // Prompts and dialplans load on blocking threads (decoding in parallel)
    // while the store connects and migrates; the store is not written to
    // before the dialplans are known to be valid.
    let cfg = config.clone();
    let loading = tokio::task::spawn_blocking(move || {
        let mut cache = ReloadCache::default();
        load_snapshot_cached(&cfg, 1, &mut cache).map(|(snap, w)| (snap, w, cache))
    });
    let store = Store::connect(&config.database.url).await;
    let (snap, warnings, reload_cache) = loading
        .await
        .map_err(|e| anyhow::anyhow!("loading dialplans failed: {e}"))?
        .map_err(|errs| {
            anyhow::anyhow!("dialplans are invalid, not starting:\n{}", errs.join("\n"))
        })?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let store = store?;
    // Start-up recovery, before anything writes: close what a killed
    // previous process left open (call records, the queue log, agent
    // sessions and states). Agents start logged out; callbacks are
    // restored by the callback service below.
    let orphans = store.close_orphaned_calls().await?;
    if orphans > 0 {
        tracing::warn!(
            calls = orphans,
            "closed call records left open by a previous run"
        );
    }
    let rec = store.recover_after_restart().await?;
    if rec != crate::store::Recovery::default() {
        tracing::warn!(
            queue_calls = rec.queue_calls,
            agent_legs = rec.agent_legs,
            agent_sessions = rec.agent_sessions,
            agent_states = rec.agent_states,
            "closed queue log entries, agent legs and agent states left open by a previous run"
        );
    }
    let (cdr, cdr_task) = CdrWriter::spawn(store.clone());
    let timeout =
        (config.rtp.timeout_secs > 0).then(|| Duration::from_secs(config.rtp.timeout_secs));
    let media = MediaEngine::start(
        config.rtp.ip,
        config.rtp.port_min,
        config.rtp.port_max,
        config.rtp.threads,
        config.rtp.realtime_priority,
        timeout,
    )?;
    let (udp, tcp) = endpoint::bind(config.sip.listen, config.sip.tcp).await?;
    let acd = crate::acd_task::spawn(&config, store.clone())?;
    let ctx_cell = Arc::new(tokio::sync::OnceCell::new());
    let callbacks = crate::callbacks::spawn(Arc::clone(&ctx_cell), &config, store.clone()).await?;
    let plans = snap.plans.len();
    let prompts = snap.prompts.names().count();
    let ctx = Arc::new(ServerCtx {
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        fallback_hold_music: Arc::new(prompt::tone(440.0, 400, 0.1)),
        snapshot: RwLock::new(Arc::new(snap)),
        reload_lock: tokio::sync::Mutex::new(reload_cache),
        versions: VersionLog::spawn(store.clone()),
        config,
        media,
        store,
        cdr,
        acd,
        callbacks,
        live: crate::live::Live::default(),
        endpoint: std::sync::OnceLock::new(),
    });
    ctx.record_versions(&ctx.snapshot().plans);
    let (ep, _ep_task) = endpoint::spawn(Arc::clone(&ctx), udp, tcp)?;
    let _ = ctx.endpoint.set(ep.clone());
    let _ = ctx_cell.set(Arc::clone(&ctx));
    crate::trunk_registration::spawn(Arc::clone(&ctx), ep.clone());
    let api_addr = if ctx.config.api.enabled {
        let listener = tokio::net::TcpListener::bind(ctx.config.api.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind HTTP {}: {e}", ctx.config.api.listen))?;
        let addr = listener.local_addr()?;
        tokio::spawn(crate::api::serve(listener, Arc::clone(&ctx)));
        addr.to_string()
    } else {
        "off".to_string()
    };
    spawn_reload_triggers(Arc::clone(&ctx))?;
    let transports = if ctx.config.sip.tcp { "udp+tcp" } else { "udp" };
    // The first line on stdout is machine-readable for scripts and tests.
    println!(
        "ringback ready sip={} ({transports}) api={api_addr} rtp={}:{}-{} dialplans={plans} prompts={prompts} startup_ms={:.1}",
        ep.local,
        ctx.config.rtp.ip,
        ctx.config.rtp.port_min,
        ctx.config.rtp.port_max,
        t0.elapsed().as_secs_f64() * 1000.0
    );
    tracing::info!(sip = %ep.local, "ringback ready");

    shutdown_signal().await;
    tracing::info!("shutting down: hanging up calls");
    ep.send(EndpointCmd::HangupAll);
    // Every task (call, callback attempt, trunk unregistering) reports its
    // end to the endpoint; idle, this is at once.
    let until = Instant::now() + Duration::from_secs(3);
    while metrics::SIP_TASKS_ACTIVE.load(std::sync::atomic::Ordering::Relaxed) > 0
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Log agents out as a person would, so the queue log and agent
    // history are closed and the next start has nothing to repair.
    for agent in ctx.config.agents.keys() {
        let _ = ctx
            .acd
            .command(ringback_acd::Input::AgentLogout(
                ringback_acd::AgentId::from(agent.as_str()),
            ))
            .await;
    }
    // Let the BYEs leave before the process exits.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ctx.cdr.flush().await;
    ctx.versions.flush().await;
    drop(cdr_task);
    tracing::info!("shutdown complete");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// SIGHUP and (if enabled) file changes in the dialplan and prompt
/// directories trigger a reload. File events are debounced: an editor's save
/// is several events, and a half-written file must not be loaded.
fn spawn_reload_triggers(ctx: Arc<ServerCtx>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let c = Arc::clone(&ctx);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = c.reload("SIGHUP").await;
        }
    });
    if !ctx.config.dialplans.watch {
        return Ok(());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })?;
    use notify::Watcher;
    watcher.watch(
        &ctx.config.dialplans.dir,
        notify::RecursiveMode::NonRecursive,
    )?;
    if ctx.config.prompts.dir.is_dir() {
        watcher.watch(&ctx.config.prompts.dir, notify::RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        let _watcher = watcher; // keep it alive as long as this task
        while rx.recv().await.is_some() {
            // Debounce: wait for 250 ms of quiet.
            loop {
                match tokio::time::timeout(Duration::from_millis(250), rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let _ = ctx.reload("file change").await;
        }
    });
    Ok(())
}
