//! `ringback serve`: start-up (who gets which handle), reload triggers and
//! shutdown. The top of the module graph: it wires every task and nothing
//! imports it but `main`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringback_media::prompt;

use crate::call::{CallDeps, CallPlacer};
use crate::callback_attempt::{AttemptDeps, AttemptPlacer};
use crate::callbacks::{CallbackDeps, CallbackHandle};
use crate::config::Config;
use crate::endpoint::{self, EndpointCmd, EndpointDeps};
use crate::media::MediaEngine;
use crate::metrics;
use crate::outbound::LegDeps;
use crate::snapshot::{load_snapshot_cached, Dialplans, ReloadCache};
use crate::store::{CdrWriter, Store};

/// Run the server until SIGINT/SIGTERM, or until a drain (SIGUSR1, the
/// API) has seen its calls end. `config_path` is re-read on SIGHUP for
/// the API's tokens.
pub async fn serve(config: Config, config_path: std::path::PathBuf) -> anyhow::Result<()> {
    let t0 = Instant::now();
    // SIGUSR1 drains (src/drain.rs); caught from the start, so one sent
    // while the node starts is a drain too, not the default exit.
    crate::drain::on_sigusr1()?;
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
    // This node's identity, once: on every call record, callback lease and
    // callback event it writes, and what recovery goes by.
    let node = config.node_id();
    if config.callbacks.node_id.is_none() && matches!(store, Store::Postgres(_)) {
        tracing::warn!(
            %node,
            "no [callbacks] node_id: this node's id changes with every process, so after a crash \
             its open call records are not recognised as its own (set a stable, unique node_id)"
        );
    }
    // Metrics say whose they are when the id is stable (configured).
    if config.callbacks.node_id.is_some() {
        metrics::set_node(&node);
    }
    // Start-up recovery, before anything writes: close what a killed
    // previous process of this node left open (call records, the queue log,
    // agent sessions and states). Agents start logged out; callbacks are
    // restored by the callback service below.
    let orphans = store.close_orphaned_calls(&node).await?;
    if orphans > 0 {
        tracing::warn!(
            calls = orphans,
            "closed call records left open by a previous run"
        );
    }
    let rec = store.recover_after_restart(&node).await?;
    if rec != crate::store::Recovery::default() {
        tracing::warn!(
            queue_calls = rec.queue_calls,
            agent_legs = rec.agent_legs,
            agent_sessions = rec.agent_sessions,
            agent_states = rec.agent_states,
            "closed queue log entries, agent legs and agent states left open by a previous run"
        );
    }
    // Call recordings: finish what a killed process left in `recording`,
    // then delete old ones now and hourly.
    let recorder = crate::recording::Recorder::new(&config.recording, store.clone(), node.clone());
    match recorder.recover().await {
        Ok((0, 0)) => {}
        Ok((complete, failed)) => tracing::warn!(
            complete,
            failed,
            "finished recordings left open by a previous run"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot finish recordings left open"),
    }
    recorder.spawn_retention();
    let (cdr, cdr_task) = CdrWriter::spawn(store.clone(), node.clone());
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
    let tls = bind_tls(&config).await?;
    let tls_addr = match &tls {
        Some((listener, _)) => Some(listener.local_addr()?),
        None => None,
    };
    let (ep, ep_inbox) = endpoint::channel(udp.local_addr()?, tls_addr.map(|a| a.port()));
    let config = Arc::new(config);
    let media = Arc::new(media);
    let acd = crate::acd_task::spawn(&config, store.clone())?;
    // The API's listener, bound early: with shared queues its address is
    // on the ACD lease (other nodes forward to the owner's API).
    let api_listener = if config.api.enabled {
        Some(
            tokio::net::TcpListener::bind(config.api.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind HTTP {}: {e}", config.api.listen))?,
        )
    } else {
        None
    };
    // One queue across nodes: who runs the queues' ACD (src/cluster.rs).
    let owner = if config.cluster.shared_queues {
        let mut sip_addr = config.cluster.address.unwrap_or(udp.local_addr()?);
        if sip_addr.ip().is_unspecified() {
            sip_addr.set_ip(config.advertised_ip());
        }
        let owner = crate::cluster::spawn(crate::cluster::LeaseSetup {
            store: store.clone(),
            node_id: node.clone(),
            sip_addr,
            api_url: config.cluster.api_url.clone().or_else(|| {
                // Default: the API's listener, as other nodes reach it.
                let mut api = api_listener.as_ref()?.local_addr().ok()?;
                if api.ip().is_unspecified() {
                    api.set_ip(config.advertised_ip());
                }
                Some(format!("http://{api}"))
            }),
            lease: Duration::from_secs(config.cluster.lease_secs),
            acd: acd.clone(),
        })
        .await;
        tracing::info!(holder = ?*owner.borrow(), hop_address = %sip_addr, "shared queues: the ACD lease");
        owner
    } else {
        metrics::set_acd_owner(true);
        crate::cluster::single_node()
    };
    // Today's figures from the store, before anything can count (the
    // callback service below may already end a callback).
    let live = Arc::new(crate::live::Live::new(config.stats.timezone));
    match live.rebuild(&store).await {
        Ok(s) => tracing::info!(
            timezone = %config.stats.timezone,
            calls = s.calls_today,
            callbacks_completed = s.callbacks_completed_today,
            callbacks_failed = s.callbacks_failed_today,
            "today's figures rebuilt from the store"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot rebuild today's figures; they start from zero")
        }
    }
    // The customer directory in memory: calls look their caller up here,
    // never in the store (src/directory.rs); loaded in the background.
    let directory = Arc::new(crate::directory::Directory::default());
    directory.spawn_refresh(
        store.clone(),
        Duration::from_secs(config.customers.refresh_secs),
    );
    let plans = snap.plans.len();
    let prompts = snap.prompts.names().count();
    let dialplans = Arc::new(Dialplans::new(
        Arc::clone(&config),
        snap,
        reload_cache,
        store.clone(),
    ));
    let phones = Arc::new(crate::browser::BrowserPhones::new(
        config.webrtc.clone(),
        acd.clone(),
    )?);
    let legs = LegDeps {
        config: Arc::clone(&config),
        media: Arc::clone(&media),
        phones: Arc::clone(&phones),
    };
    // Every task gets the handles it uses and nothing else; the endpoint's
    // handle exists before its task, so nothing waits for a second phase.
    let language_skills = Arc::new(crate::config::language_skills(&config));
    let attempts = AttemptPlacer::new(AttemptDeps {
        legs: legs.clone(),
        store: store.clone(),
        cdr: cdr.clone(),
        acd: acd.clone(),
        live: Arc::clone(&live),
        directory: Arc::clone(&directory),
        language_skills: Arc::clone(&language_skills),
        dialplans: Arc::clone(&dialplans),
        endpoint: ep.clone(),
        recorder: Arc::clone(&recorder),
    });
    let callbacks = crate::callbacks::spawn(
        CallbackDeps {
            acd: acd.clone(),
            live: Arc::clone(&live),
            attempts: Arc::new(attempts),
            node,
            owner: owner.clone(),
        },
        &config,
        store.clone(),
    )
    .await?;
    let drain_callbacks = callbacks.clone();
    let calls = CallPlacer::new(CallDeps {
        legs,
        store: store.clone(),
        directory: Arc::clone(&directory),
        cdr: cdr.clone(),
        acd: acd.clone(),
        callbacks: callbacks.clone(),
        live: Arc::clone(&live),
        dialplans: Arc::clone(&dialplans),
        queue_settings: Arc::new(crate::call::queue_settings(&config)),
        language_skills,
        fallback_hold_music: Arc::new(prompt::tone(440.0, 400, 0.1)),
        lookups: crate::lookups::Lookups::new(config.lookups.clone()),
        recorder: Arc::clone(&recorder),
        owner: owner.clone(),
    });
    // Calls from the public web page run like phone calls.
    let web_calls = crate::call::WebCalls::new(calls.deps(), ep.clone());
    let _ = phones.web_calls.set(Arc::new(web_calls));
    let _ep_task = endpoint::spawn(
        EndpointDeps {
            config: Arc::clone(&config),
            acd: acd.clone(),
            media: Arc::clone(&media),
            calls: Arc::new(calls),
        },
        endpoint::Listeners { udp, tcp, tls },
        ep.clone(),
        ep_inbox,
    )?;
    crate::trunk_registration::spawn(&config, ep.clone());
    tokio::spawn(crate::watchdog::run(acd.clone(), ep.clone()));
    let mut api_note = String::new();
    let api_addr = if let Some(listener) = api_listener {
        let addr = listener.local_addr()?;
        // API tokens: the generated admin token on first start, reloaded
        // on SIGHUP (src/api_access.rs).
        let (access, admin) = crate::api_access::ApiAccess::new(&config.api, addr)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let access = Arc::new(access);
        crate::api_access::spawn_reload(config_path, Arc::clone(&access))?;
        api_note = crate::api_access::ready_note(&admin, &config.api, addr);
        tokio::spawn(crate::api::serve(
            listener,
            Arc::new(crate::api::ApiState {
                config: Arc::clone(&config),
                access,
                store: store.clone(),
                directory,
                acd: acd.clone(),
                callbacks,
                live,
                dialplans: Arc::clone(&dialplans),
                media,
                phones,
                recorder,
                owner,
            }),
        ));
        addr.to_string()
    } else {
        "off".to_string()
    };
    spawn_reload_triggers(&config, Arc::clone(&dialplans))?;
    let transports = if config.sip.tcp { "udp+tcp" } else { "udp" };
    let tls_part = tls_addr.map(|a| format!(" tls={a}")).unwrap_or_default();
    // The first line on stdout is machine-readable for scripts and tests.
    println!(
        "ringback ready sip={} ({transports}){tls_part} api={api_addr} rtp={}:{}-{} dialplans={plans} prompts={prompts} startup_ms={:.1}{api_note}",
        ep.local,
        config.rtp.ip,
        config.rtp.port_min,
        config.rtp.port_max,
        t0.elapsed().as_secs_f64() * 1000.0
    );
    tracing::info!(sip = %ep.local, "ringback ready");

    let draining = tokio::select! {
        _ = shutdown_signal() => false,
        _ = crate::drain::started() => true,
    };
    if draining {
        let limit = Duration::from_secs(config.cluster.drain_timeout_secs);
        wait_for_calls_to_end(&drain_callbacks, limit).await;
    }
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
    for agent in config.agents.keys() {
        let _ = acd
            .command(ringback_acd::Input::AgentLogout(
                ringback_acd::AgentId::from(agent.as_str()),
            ))
            .await;
    }
    // Let the BYEs leave before the process exits.
    tokio::time::sleep(Duration::from_millis(100)).await;
    cdr.flush().await;
    dialplans.flush().await;
    drop(cdr_task);
    tracing::info!("shutdown complete");
    Ok(())
}

/// While the node drains: wait until no call and no callback attempt is
/// left (then the shutdown below has nothing to hang up), the drain time
/// is up, or SIGINT/SIGTERM asks for the end at once.
async fn wait_for_calls_to_end(callbacks: &CallbackHandle, limit: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    let started = Instant::now();
    let mut last_note = started;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => {
                tracing::warn!("drain cut short by a shutdown signal: ending the calls still up");
                return;
            }
            _ = tick.tick() => {}
        }
        let attempts = callbacks.drain().await;
        // Inbound and web calls and callback attempts: every task the
        // endpoint routes to, but the trunks' registrations.
        let busy = (metrics::SIP_TASKS_ACTIVE.load(Relaxed) as usize)
            .saturating_sub(metrics::trunk_registrations());
        if busy == 0 {
            tracing::info!(
                secs = started.elapsed().as_secs(),
                "drained: no call left, exiting"
            );
            return;
        }
        if started.elapsed() >= limit {
            tracing::warn!(
                calls = busy,
                limit_secs = limit.as_secs(),
                "drain time is up (cluster.drain_timeout_secs): ending the calls still up"
            );
            return;
        }
        if last_note.elapsed() >= Duration::from_secs(10) {
            last_note = Instant::now();
            tracing::info!(
                calls = metrics::CALLS_ACTIVE.load(Relaxed),
                callback_attempts = attempts,
                "draining: waiting for calls to end"
            );
        }
    }
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

/// The SIP-over-TLS listener and its certificate, when `sip.tls_listen` is
/// set; the certificate is re-read on SIGHUP.
async fn bind_tls(
    config: &Config,
) -> anyhow::Result<Option<(tokio::net::TcpListener, Arc<endpoint::TlsServer>)>> {
    let (Some(addr), Some(cert), Some(key)) = (
        config.sip.tls_listen,
        &config.sip.tls_cert,
        &config.sip.tls_key,
    ) else {
        return Ok(None);
    };
    let server = Arc::new(endpoint::TlsServer::load(cert, key)?);
    server.reload_on_hangup()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind SIP TLS {addr}: {e}"))?;
    Ok(Some((listener, server)))
}

/// SIGHUP and (if enabled) file changes in the dialplan and prompt
/// directories trigger a reload. File events are debounced: an editor's save
/// is several events, and a half-written file must not be loaded.
fn spawn_reload_triggers(config: &Config, dialplans: Arc<Dialplans>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let c = Arc::clone(&dialplans);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = c.reload("SIGHUP").await;
        }
    });
    if !config.dialplans.watch {
        return Ok(());
    }
    // One pending event is enough: a full channel means a reload is due
    // already, and the debounce below coalesces the rest.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() {
                let _ = tx.try_send(());
            }
        }
    })?;
    use notify::Watcher;
    watcher.watch(&config.dialplans.dir, notify::RecursiveMode::NonRecursive)?;
    if config.prompts.dir.is_dir() {
        watcher.watch(&config.prompts.dir, notify::RecursiveMode::NonRecursive)?;
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
            let _ = dialplans.reload("file change").await;
        }
    });
    Ok(())
}
