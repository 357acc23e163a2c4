//! The background writer of call records: it batches rows into one
//! transaction, so a burst of calls costs one fsync, not one per call, and
//! no call task ever waits on the disk. Every row it writes carries its
//! node's id (`calls.node_id`), which start-up recovery goes by.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{batch, Cdr, Store};

/// Handle to the background CDR writer. Cloning is cheap; sending never
/// blocks a call.
#[derive(Clone)]
pub struct CdrWriter {
    tx: mpsc::UnboundedSender<WriterMsg>,
}

enum WriterMsg {
    Row(Box<Cdr>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl CdrWriter {
    /// Start the writer task. It ends (after flushing) when every
    /// `CdrWriter` clone has been dropped; await the handle to be sure the
    /// last rows are on disk. `node` is this node's id, stored on every
    /// row it inserts.
    pub fn spawn(store: Store, node: String) -> (CdrWriter, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<WriterMsg>();
        let handle = tokio::spawn(async move {
            let mut msgs = Vec::with_capacity(256);
            loop {
                if !batch::gather(&mut rx, &mut msgs, 4096).await {
                    break;
                }
                let mut rows = Vec::with_capacity(msgs.len());
                let mut waiters = Vec::new();
                for m in msgs.drain(..) {
                    match m {
                        WriterMsg::Row(c) => rows.push(*c),
                        WriterMsg::Flush(w) => waiters.push(w),
                    }
                }
                for attempt in 0..5u32 {
                    if rows.is_empty() {
                        break;
                    }
                    match store.write_cdrs(&rows, &node).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::error!(error = %e, rows = rows.len(), attempt, "writing CDRs failed");
                            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                        }
                    }
                }
                for w in waiters {
                    let _ = w.send(());
                }
            }
        });
        (CdrWriter { tx }, handle)
    }

    /// Queue a row (insert or update by Call-ID and leg).
    pub fn write(&self, cdr: Cdr) {
        if self.tx.send(WriterMsg::Row(Box::new(cdr))).is_err() {
            tracing::error!("CDR writer has stopped; a call record was lost");
        }
    }

    /// Wait until every row queued before this call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(WriterMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
