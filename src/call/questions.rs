//! The core's questions about the queue and callbacks, answered from the
//! ACD and the callback service.

use chrono::Utc;
use ringback_call::inbound::Input;

use super::Call;

impl Call {
    /// The estimated wait and the free agents of the caller's queue.
    pub(super) async fn queue_state(&self) -> Input {
        let ewt = self.ctx.acd.position(&self.call_id).await.map(|(_, e)| e);
        let (_, queues) = self.ctx.acd.snapshot().await;
        let free_agents = self
            .core
            .queue()
            .and_then(|q| queues.iter().find(|s| s.name.as_str() == q))
            .map_or(0, |s| s.available_agents);
        Input::QueueState { ewt, free_agents }
    }

    pub(super) async fn request_callback(
        &self,
        queue: String,
        number: String,
        entered_at: chrono::DateTime<Utc>,
    ) -> Input {
        let req = crate::callbacks::CallbackRequest {
            queue,
            number,
            entered_at,
            preferred: None,
            not_before: self.core.callback_not_before(),
            context: format!(
                "IVR path {} | digits {}",
                self.core.path(),
                self.core.digits()
            ),
            origin: ringback_callback::Origin::Ivr,
        };
        match self.ctx.callbacks.request(req).await {
            Ok((cb, ahead)) => {
                tracing::info!(id = %cb.id, ahead, "callback stored");
                Input::CallbackStored { ahead }
            }
            Err(r) => {
                tracing::info!(code = %r.code, reason = %r.message, "callback refused");
                Input::CallbackRefused
            }
        }
    }
}
