//! The customer directory as calls see it: an in-memory
//! [`ringback_customers::Index`] (number → name, account, language,
//! priority), so looking a caller up costs a hash-map probe under a read
//! lock and never a store round trip.
//!
//! It is kept current three ways:
//! - at start-up it is loaded whole from the store, in the background (the
//!   server answers calls meanwhile, without names);
//! - a change through the API is applied to it at once, by the handler
//!   that made it ([`Directory::write`] serialises those changes, so they
//!   are applied in the order they were stored);
//! - every `customers.refresh_secs` (10 s by default) a background task
//!   reads the store's directory version, one small query off the call
//!   path, and reloads everything when it is not the version this copy is
//!   at: an import by `ringback customers import` while the server runs,
//!   or a change made through another node sharing a PostgreSQL store.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ringback_customers::{Customer, Index, Known};

use crate::store::Store;

/// The live directory.
#[derive(Default)]
pub struct Directory {
    /// The index and the store version it is at.
    current: RwLock<(Index, i64)>,
    /// Held by an API change from its store write until it is applied here.
    changes: tokio::sync::Mutex<()>,
}

/// A change made through the API, to apply to the live copy.
pub enum Change<'a> {
    /// A customer was created or updated.
    Put(i64, &'a Customer),
    /// A customer was deleted.
    Remove(i64),
}

impl Directory {
    /// The directory as the store has it now.
    #[cfg(test)]
    pub async fn load(store: &Store) -> anyhow::Result<Directory> {
        let d = Directory::default();
        d.reload(store).await?;
        Ok(d)
    }

    /// The customer a call from `caller` (its From user) is from.
    pub fn lookup(&self, caller: &str) -> Option<Arc<Known>> {
        self.read().0.lookup(caller)
    }

    /// Customers and numbers held.
    #[cfg(test)]
    pub fn size(&self) -> (usize, usize) {
        let r = self.read();
        (r.0.customers(), r.0.numbers())
    }

    /// Taken by an API handler before it changes the store, and held until
    /// the change is [`applied`](Directory::applied).
    pub async fn write(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    /// A change the store made as of `version`. When this copy was at the
    /// version just before, it is now at `version`; otherwise another
    /// change came in between, and the next refresh reloads everything.
    pub fn applied(&self, version: i64, change: Change<'_>) {
        let mut w = self.current.write().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Put(id, c) => w.0.put(Known::of(id, c), &c.numbers),
            Change::Remove(id) => w.0.remove(id),
        }
        if w.1 + 1 == version {
            w.1 = version;
        }
    }

    /// Reload when the store's version is not this copy's. Returns whether
    /// it reloaded.
    pub async fn refresh(&self, store: &Store) -> anyhow::Result<bool> {
        let version = store.directory_version().await?;
        if version == self.read().1 {
            return Ok(false);
        }
        self.reload(store).await?;
        Ok(true)
    }

    async fn reload(&self, store: &Store) -> anyhow::Result<()> {
        // No API change is stored while the copy is read and swapped, so
        // none is lost between the two.
        let _changes = self.changes.lock().await;
        let t0 = Instant::now();
        let (version, records) = store.all_customers().await?;
        let index = Index::of(records.iter().map(|r| (r.id, &r.customer)));
        drop(records);
        let (customers, numbers) = (index.customers(), index.numbers());
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (index, version);
        tracing::info!(
            customers,
            numbers,
            version,
            took_ms = t0.elapsed().as_secs_f64() * 1e3,
            "customer directory loaded"
        );
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (Index, i64)> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Load the directory in the background, then poll the store's version
    /// every `every` (never when zero). Until the first load is done, calls
    /// find no names: a big directory (a second for 100,000 customers)
    /// does not hold up the start.
    pub fn spawn_refresh(self: &Arc<Self>, store: Store, every: Duration) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = me.reload(&store).await {
                tracing::warn!(error = %e, "cannot load the customer directory");
            }
            if every.is_zero() {
                return;
            }
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = me.refresh(&store).await {
                    tracing::warn!(error = %e, "cannot refresh the customer directory");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(name: &str, number: &str) -> Customer {
        Customer {
            name: name.into(),
            numbers: vec![number.into()],
            ..Customer::default()
        }
    }

    #[tokio::test]
    async fn api_changes_apply_at_once_and_other_writers_on_refresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("d.db").display());
        let store = Store::connect(&url).await.expect("connect");
        let d = Directory::load(&store).await.expect("load");
        assert_eq!(d.size(), (0, 0));
        // Through the API: applied by the handler, no reload needed.
        let jane = customer("Jane", "+15550100001");
        let (rec, v) = store.create_customer(&jane).await.expect("create");
        d.applied(v, Change::Put(rec.id, &jane));
        assert_eq!(
            d.lookup("+15550100001").map(|k| k.name.clone()),
            Some("Jane".into())
        );
        assert!(
            !d.refresh(&store).await.expect("refresh"),
            "already current"
        );
        // Another writer (the CLI, another node): seen on the next refresh.
        store
            .import_customers(&[customer("Bob", "+15550100002")], false)
            .await
            .expect("import");
        assert_eq!(d.lookup("+15550100002"), None);
        assert!(d.refresh(&store).await.expect("refresh"));
        assert_eq!(
            d.lookup("+15550100002").map(|k| k.name.clone()),
            Some("Bob".into())
        );
        let v = store.delete_customer(rec.id).await.expect("delete");
        d.applied(v, Change::Remove(rec.id));
        assert_eq!(d.lookup("+15550100001"), None);
        assert_eq!(d.size(), (1, 1));
    }
}
