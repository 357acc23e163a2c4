//! A fresh PostgreSQL database per test (the machine's server at
//! 127.0.0.1:5432, trust auth), dropped when the test ends, so tests that
//! need PostgreSQL run in parallel and twice.

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database, dropped at the end.
pub struct PgDb {
    name: String,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

impl PgDb {
    pub fn create() -> PgDb {
        let name = format!(
            "ringback_t{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        rt().block_on(async {
            let pool = sqlx::PgPool::connect(ADMIN_URL)
                .await
                .expect("PostgreSQL at 127.0.0.1:5432 (database `test`, trust auth)");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .expect("create database");
        });
        PgDb { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Run one statement; every column must be text or NULL (CAST the rest).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        let url = self.url();
        rt().block_on(async {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("query failed ({e}): {sql}"));
            let out = rows
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.try_get::<Option<String>, _>(i).expect("text column"))
                        .collect()
                })
                .collect();
            pool.close().await;
            out
        })
    }
}

impl PgDb {
    /// Run a script of several statements (simple query protocol), e.g.
    /// a schema file; panics naming the error.
    pub fn execute_script(&self, sql: &str) {
        let url = self.url();
        rt().block_on(async {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("script failed ({e})"));
            pool.close().await;
        });
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        rt().block_on(async move {
            if let Ok(pool) = sqlx::PgPool::connect(ADMIN_URL).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&pool)
                .await;
            }
        });
    }
}
