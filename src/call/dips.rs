//! A call's data dips: the dialplan's `lookup` requests, sent beside the
//! call's loop so SIP and media keep flowing while one is under way.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use super::Call;

/// The answer of a lookup under way (the loop waits on it beside its other
/// inputs).
pub(super) type Pending = Option<oneshot::Receiver<Result<String, String>>>;

impl Call {
    /// Send lookup `name` in its own task; its answer comes back through
    /// [`answer`] (within the lookup's timeout).
    pub(super) fn start_lookup(
        &mut self,
        name: String,
        caller: String,
        vars: BTreeMap<String, String>,
    ) {
        let (tx, rx) = oneshot::channel();
        let lookups = std::sync::Arc::clone(&self.ctx.lookups);
        tokio::spawn(async move {
            let _ = tx.send(lookups.ask(&name, &caller, &vars).await);
        });
        self.lookup = Some(rx);
    }
}

/// The pending lookup's answer; never resolves when none is under way.
pub(super) async fn answer(pending: &mut Pending) -> Result<String, String> {
    match pending.as_mut() {
        Some(rx) => rx
            .await
            .unwrap_or_else(|_| Err("the lookup task ended without an answer".into())),
        None => std::future::pending().await,
    }
}
