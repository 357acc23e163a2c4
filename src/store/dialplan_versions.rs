//! Dialplan versions: the content hash of every dialplan file loaded, so a
//! call record's `dialplan_version` can be traced to the file it ran.

use chrono::Utc;

use super::{ts, Store};

impl Store {
    /// Remember loaded dialplan versions `(name, file, version)`, in the
    /// given order, in one transaction (idempotent per file and version).
    pub async fn record_dialplan_versions(
        &self,
        versions: &[(String, String, String)],
    ) -> anyhow::Result<()> {
        if versions.is_empty() {
            return Ok(());
        }
        let sql = "INSERT INTO dialplan_versions (name, file, version, loaded_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (file, version) DO NOTHING";
        let now = ts(Utc::now());
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for (name, file, version) in versions {
                sqlx::query(sql)
                    .bind(name)
                    .bind(file)
                    .bind(version)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Dialplan versions ever loaded (newest first).
    pub async fn dialplan_versions(&self) -> anyhow::Result<Vec<(String, String, String, String)>> {
        let sql = "SELECT name, file, version, loaded_at FROM dialplan_versions ORDER BY id DESC LIMIT 200";
        let rows = on_pool!(self, |p| sqlx::query_as::<
            _,
            (String, String, String, String),
        >(sql)
        .fetch_all(p)
        .await?);
        Ok(rows)
    }
}
