//! Gathering a background writer's rows into one transaction.
//!
//! Every commit writes each page it touched to the WAL (SQLite) or the
//! journal (PostgreSQL), so its cost hardly depends on how many rows it
//! holds: at 1,000 calls/s, a commit per row was a large share of the
//! server's CPU. A writer waits a moment after the first row so a burst
//! shares one commit; nobody waits for these rows (call tasks and the ACD
//! send and go on), so the moment costs no caller anything.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

/// How long a writer lets rows gather after the first one arrived.
pub const LINGER: Duration = Duration::from_millis(20);

/// Waits for at least one message, then [`LINGER`]s and takes whatever
/// else arrived, up to `max` in `buf`. `false` when every sender is gone
/// and nothing is left: the writer's loop ends.
pub async fn gather<T>(rx: &mut UnboundedReceiver<T>, buf: &mut Vec<T>, max: usize) -> bool {
    if rx.recv_many(buf, max).await == 0 {
        return false;
    }
    tokio::time::sleep(LINGER).await;
    while buf.len() < max {
        match rx.try_recv() {
            Ok(m) => buf.push(m),
            Err(_) => break,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_is_gathered_up_to_the_bound_and_the_end_is_seen() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut buf = Vec::new();
        tx.send(0).expect("send");
        // Rows sent while the writer lingers join the same batch.
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LINGER / 4).await;
            for i in 1..10 {
                late.send(i).expect("send");
            }
        });
        assert!(gather(&mut rx, &mut buf, 6).await);
        assert_eq!(buf, vec![0, 1, 2, 3, 4, 5]);
        buf.clear();
        drop(tx);
        assert!(gather(&mut rx, &mut buf, 6).await);
        assert_eq!(buf, vec![6, 7, 8, 9]);
        buf.clear();
        assert!(!gather(&mut rx, &mut buf, 6).await);
    }
}
