//! Draining a node for a rolling upgrade: `SIGUSR1` or
//! `POST /api/v1/node/drain` turns it on, and it stays on until the process
//! exits.
//!
//! While draining, admission control refuses new calls (`503` with
//! `Retry-After`, [`crate::admission::Load::draining`]), out-of-dialog
//! OPTIONS are answered `503` so a dispatcher's keep-alive probe (Kamailio's
//! `ds_ping_interval`) takes the node out of its set, `/healthz` says
//! `draining`, and the callback service hands out no new attempts. Calls
//! in progress go on; the server ([`crate::server`]) exits once none is
//! left, or ends them when `cluster.drain_timeout_secs` runs out.
//!
//! One process-wide flag, read with one relaxed load where requests are
//! answered: draining is a property of the process, like its metrics.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

static DRAINING: AtomicBool = AtomicBool::new(false);
static STARTED: Notify = Notify::const_new();

/// True once the node drains.
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// Start draining (`why`: who asked, for the log). False when the node
/// was draining already.
pub fn start(why: &str) -> bool {
    let first = !DRAINING.swap(true, Ordering::SeqCst);
    if first {
        tracing::warn!(
            by = why,
            "draining: new calls are refused (503), OPTIONS answer 503; the process exits when its calls have ended"
        );
        // A stored permit if nobody waits yet: the server sees it anyway.
        STARTED.notify_one();
    }
    first
}

/// Wait until the node drains.
pub async fn started() {
    let notified = STARTED.notified();
    if is_draining() {
        return;
    }
    notified.await;
}

/// `SIGUSR1` starts the drain.
pub fn on_sigusr1() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            if !start("SIGUSR1") {
                tracing::info!("SIGUSR1: already draining");
            }
        }
    });
    Ok(())
}
