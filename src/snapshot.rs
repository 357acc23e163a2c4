//! Dialplans and prompts as one immutable [`Snapshot`], and hot reload.
//!
//! A new call takes the current snapshot and keeps it until it ends; a
//! reload builds a complete new snapshot off the async threads, validates
//! it, and swaps it in only if it is clean. So an invalid edit never
//! reaches a caller, and a valid one never changes a call in progress.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ringback_dialplan::{CheckContext, DialplanSet, LoadCache};

use crate::config::Config;
use crate::metrics;
use crate::plan_loader::load_dir_cached;
use crate::prompt_loader::PromptCache;
use crate::store::Store;

/// Everything a call needs that outlives it: dialplans with their prompts.
pub struct Snapshot {
    /// Dialplans by dialed number.
    pub plans: DialplanSet,
    /// Decoded, pre-encoded prompts.
    pub prompts: PromptCache,
    /// Increases with every successful reload.
    pub generation: u64,
}

/// What one load keeps for the next: decoded prompts by file stamp, and
/// parsed and checked dialplans by file text. A reload of unchanged files
/// then only stats the prompts and reads and compares the dialplan files.
#[derive(Default)]
pub struct ReloadCache {
    prompts: PromptCache,
    plans: LoadCache,
}

/// The snapshot in force and how to replace it: shared by the endpoint
/// (DID selection), calls (their start), the API (reload) and the file
/// watcher.
pub struct Dialplans {
    config: Arc<Config>,
    current: RwLock<Arc<Snapshot>>,
    /// Held by a reload from start to swap, so reloads never overlap; holds
    /// what the next reload may reuse.
    reload_lock: tokio::sync::Mutex<ReloadCache>,
    /// Writes loaded dialplan versions in the background.
    versions: VersionLog,
}

impl Dialplans {
    /// Serve `first` (loaded at start-up with `cache`), recording versions
    /// in `store`.
    pub fn new(config: Arc<Config>, first: Snapshot, cache: ReloadCache, store: Store) -> Self {
        let d = Dialplans {
            config,
            current: RwLock::new(Arc::new(first)),
            reload_lock: tokio::sync::Mutex::new(cache),
            versions: VersionLog::spawn(store),
        };
        d.record_versions(&d.current().plans);
        d
    }

    /// Wait until every recorded version is written (shutdown).
    pub async fn flush(&self) {
        self.versions.flush().await;
    }

    /// The snapshot new calls start with.
    pub fn current(&self) -> Arc<Snapshot> {
        match self.current.read() {
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
        let cfg = Config::clone(&self.config);
        let generation = self.current().generation + 1;
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
                    languages: snap.prompts.languages().len(),
                    warnings: warnings.len(),
                    took: started.elapsed(),
                };
                self.record_versions(&snap.plans);
                match self.current.write() {
                    Ok(mut s) => *s = Arc::new(snap),
                    Err(p) => *p.into_inner() = Arc::new(snap),
                }
                metrics::DIALPLAN_RELOADS_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    trigger = why,
                    dialplans = report.dialplans,
                    prompts = report.prompts,
                    languages = report.languages,
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
    pub(crate) fn record_versions(&self, plans: &DialplanSet) {
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
    /// Prompts (the default set).
    pub prompts: usize,
    /// Language prompt sets (`prompts/<tag>/`).
    pub languages: usize,
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
        lookups: Some(cfg.lookups.keys().cloned().collect()),
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
