//! The customer directory: customers (`customers`), their numbers
//! (`customer_numbers`, a number belongs to one customer) and the
//! directory's version (`customer_directory`), which every change raises
//! in its own transaction. Raising it first also serialises changes (the
//! version row is locked until commit), so the check that a number is free
//! and the write that takes it cannot interleave with another writer's.

use std::collections::HashMap;

use chrono::Utc;
use ringback_customers::Customer;

use super::{ts, Store};

/// A stored customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    /// Its id.
    pub id: i64,
    /// Its fields.
    pub customer: Customer,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Its last change (RFC 3339).
    pub updated_at: String,
}

/// Why a change of the directory was refused.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A number of the record already belongs to another customer.
    #[error("number {number} already belongs to customer {owner}")]
    NumberInUse {
        /// The number.
        number: String,
        /// Its customer.
        owner: i64,
    },
    /// No customer has this id.
    #[error("no customer {0}")]
    NotFound(i64),
    /// The store failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for DirectoryError {
    fn from(e: sqlx::Error) -> DirectoryError {
        DirectoryError::Other(e.into())
    }
}

/// A number of the file that another customer already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberTaken {
    /// Which record of the import (0-based).
    pub row: usize,
    /// The number.
    pub number: String,
    /// The customer who has it.
    pub owner: i64,
    /// Their name.
    pub owner_name: String,
}

/// Why an import was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Numbers that belong to customers already in the directory.
    #[error("{} number(s) already in the directory", .0.len())]
    Taken(Vec<NumberTaken>),
    /// The store failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> ImportError {
        ImportError::Other(e.into())
    }
}

const BUMP: &str =
    "UPDATE customer_directory SET version = version + 1 WHERE id = 1 RETURNING version";
const VERSION: &str = "SELECT version FROM customer_directory WHERE id = 1";
const COLUMNS: &str = "id, name, language, priority, account, notes, tags, created_at, updated_at";
const INSERT: &str = "INSERT INTO customers (name, language, priority, account, notes, tags, \
    created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id";
const INSERT_NUMBER: &str =
    "INSERT INTO customer_numbers (number, customer_id, position) VALUES ($1, $2, $3)";
const OWNER: &str = "SELECT customer_id FROM customer_numbers WHERE number = $1";

/// One row of `customers`.
type Row = (
    i64,
    String,
    Option<String>,
    i32,
    Option<String>,
    String,
    String,
    String,
    String,
);

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

/// Rows and the numbers of their customers (`(customer, number)` in
/// order) as records.
fn records(rows: Vec<Row>, numbers: Vec<(i64, String)>) -> Vec<CustomerRecord> {
    let mut by_id: HashMap<i64, Vec<String>> = HashMap::new();
    for (id, n) in numbers {
        by_id.entry(id).or_default().push(n);
    }
    rows.into_iter()
        .map(
            |(id, name, language, priority, account, notes, tags, created_at, updated_at)| {
                CustomerRecord {
                    id,
                    customer: Customer {
                        name,
                        numbers: by_id.remove(&id).unwrap_or_default(),
                        language,
                        priority,
                        account,
                        notes,
                        // Written by `tags_json`; anything else reads as no tags.
                        tags: serde_json::from_str(&tags).unwrap_or_default(),
                    },
                    created_at,
                    updated_at,
                }
            },
        )
        .collect()
}

impl Store {
    /// The directory's version: it grows with every change.
    pub async fn directory_version(&self) -> anyhow::Result<i64> {
        let v: i64 = on_pool!(self, |p| sqlx::query_scalar(VERSION).fetch_one(p).await?);
        Ok(v)
    }

    /// Every customer (by id) and the version they are as of. The version
    /// is read first: a change made meanwhile raises it past the one
    /// returned, so whoever polls the version reloads again.
    pub async fn all_customers(&self) -> anyhow::Result<(i64, Vec<CustomerRecord>)> {
        let rows = format!("SELECT {COLUMNS} FROM customers ORDER BY id");
        let numbers =
            "SELECT customer_id, number FROM customer_numbers ORDER BY customer_id, position";
        let (version, rows, numbers) = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let version: i64 = sqlx::query_scalar(VERSION).fetch_one(&mut *tx).await?;
            let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(rows))
                .fetch_all(&mut *tx)
                .await?;
            let numbers: Vec<(i64, String)> = sqlx::query_as(numbers).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (version, rows, numbers)
        });
        Ok((version, records(rows, numbers)))
    }

    /// One customer.
    pub async fn customer(&self, id: i64) -> anyhow::Result<Option<CustomerRecord>> {
        Ok(self
            .list_customers(&[], id - 1, 1)
            .await?
            .into_iter()
            .find(|r| r.id == id))
    }

    /// Customers with an id above `after`, by id, at most `limit`; only
    /// those who have one of `numbers` (at most two) when it is not empty.
    pub async fn list_customers(
        &self,
        numbers: &[String],
        after: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<CustomerRecord>> {
        let filter = if numbers.is_empty() {
            ""
        } else {
            "AND id IN (SELECT customer_id FROM customer_numbers WHERE number = $3 OR number = $4)"
        };
        let sql =
            format!("SELECT {COLUMNS} FROM customers WHERE id > $1 {filter} ORDER BY id LIMIT $2");
        let first = numbers.first().cloned().unwrap_or_default();
        let second = numbers.get(1).cloned().unwrap_or_else(|| first.clone());
        let of = "SELECT customer_id, number FROM customer_numbers \
                  WHERE customer_id >= $1 AND customer_id <= $2 ORDER BY customer_id, position";
        let (rows, numbers) = on_pool!(self, |p| {
            let mut q = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(limit);
            if !numbers.is_empty() {
                q = q.bind(&first).bind(&second);
            }
            let rows = q.fetch_all(p).await?;
            let low = rows.first().map_or(0, |r| r.0);
            let high = rows.last().map_or(-1, |r| r.0);
            let numbers: Vec<(i64, String)> = if rows.is_empty() {
                Vec::new()
            } else {
                sqlx::query_as(of).bind(low).bind(high).fetch_all(p).await?
            };
            (rows, numbers)
        });
        Ok(records(rows, numbers))
    }

    /// Add a customer; returns it and the directory's new version.
    pub async fn create_customer(
        &self,
        c: &Customer,
    ) -> Result<(CustomerRecord, i64), DirectoryError> {
        let now = ts(Utc::now());
        let tags = tags_json(&c.tags);
        let (id, version) = on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            let version: i64 = sqlx::query_scalar(BUMP).fetch_one(&mut *tx).await?;
            for n in &c.numbers {
                let owner: Option<i64> = sqlx::query_scalar(OWNER)
                    .bind(n)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(owner) = owner {
                    let number = n.clone();
                    return Err(DirectoryError::NumberInUse { number, owner });
                }
            }
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind(&c.name)
                .bind(&c.language)
                .bind(c.priority)
                .bind(&c.account)
                .bind(&c.notes)
                .bind(&tags)
                .bind(&now)
                .fetch_one(&mut *tx)
                .await?;
            for (i, n) in c.numbers.iter().enumerate() {
                sqlx::query(INSERT_NUMBER)
                    .bind(n)
                    .bind(id)
                    .bind(i32::try_from(i).unwrap_or(i32::MAX))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok((id, version))
        }
        .await)?;
        let record = CustomerRecord {
            id,
            customer: c.clone(),
            created_at: now.clone(),
            updated_at: now,
        };
        Ok((record, version))
    }

    /// Replace a customer's fields and numbers; returns it and the
    /// directory's new version.
    pub async fn update_customer(
        &self,
        id: i64,
        c: &Customer,
    ) -> Result<(CustomerRecord, i64), DirectoryError> {
        let now = ts(Utc::now());
        let tags = tags_json(&c.tags);
        let sql = "UPDATE customers SET name = $2, language = $3, priority = $4, account = $5, \
                   notes = $6, tags = $7, updated_at = $8 WHERE id = $1 RETURNING created_at";
        let (created_at, version) = on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            let version: i64 = sqlx::query_scalar(BUMP).fetch_one(&mut *tx).await?;
            let created: Option<String> = sqlx::query_scalar(sql)
                .bind(id)
                .bind(&c.name)
                .bind(&c.language)
                .bind(c.priority)
                .bind(&c.account)
                .bind(&c.notes)
                .bind(&tags)
                .bind(&now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(created) = created else {
                return Err(DirectoryError::NotFound(id));
            };
            for n in &c.numbers {
                let owner: Option<i64> = sqlx::query_scalar(OWNER)
                    .bind(n)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(owner) = owner.filter(|o| *o != id) {
                    let number = n.clone();
                    return Err(DirectoryError::NumberInUse { number, owner });
                }
            }
            sqlx::query("DELETE FROM customer_numbers WHERE customer_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for (i, n) in c.numbers.iter().enumerate() {
                sqlx::query(INSERT_NUMBER)
                    .bind(n)
                    .bind(id)
                    .bind(i32::try_from(i).unwrap_or(i32::MAX))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok((created, version))
        }
        .await)?;
        let record = CustomerRecord {
            id,
            customer: c.clone(),
            created_at,
            updated_at: now,
        };
        Ok((record, version))
    }

    /// Remove a customer and their numbers; returns the directory's new
    /// version.
    pub async fn delete_customer(&self, id: i64) -> Result<i64, DirectoryError> {
        on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            let version: i64 = sqlx::query_scalar(BUMP).fetch_one(&mut *tx).await?;
            sqlx::query("DELETE FROM customer_numbers WHERE customer_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let gone = sqlx::query("DELETE FROM customers WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                return Err(DirectoryError::NotFound(id));
            }
            tx.commit().await?;
            Ok(version)
        }
        .await)
    }

    /// Add `customers` in one transaction, or, with `replace`, make them
    /// the whole directory. Nothing is written when a number already
    /// belongs to a customer who stays (every such number is returned).
    /// Returns the directory's new version.
    pub async fn import_customers(
        &self,
        customers: &[Customer],
        replace: bool,
    ) -> Result<i64, ImportError> {
        let now = ts(Utc::now());
        let taken = "SELECT n.number, c.id, c.name FROM customer_numbers n \
                     JOIN customers c ON c.id = n.customer_id";
        on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            let version: i64 = sqlx::query_scalar(BUMP).fetch_one(&mut *tx).await?;
            if replace {
                sqlx::query("DELETE FROM customer_numbers")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM customers")
                    .execute(&mut *tx)
                    .await?;
            } else {
                let owners: HashMap<String, (i64, String)> =
                    sqlx::query_as::<_, (String, i64, String)>(taken)
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map(|(n, id, name)| (n, (id, name)))
                        .collect();
                let clashes: Vec<NumberTaken> = customers
                    .iter()
                    .enumerate()
                    .flat_map(|(row, c)| c.numbers.iter().map(move |n| (row, n)))
                    .filter_map(|(row, n)| {
                        owners.get(n).map(|(owner, name)| NumberTaken {
                            row,
                            number: n.clone(),
                            owner: *owner,
                            owner_name: name.clone(),
                        })
                    })
                    .collect();
                if !clashes.is_empty() {
                    return Err(ImportError::Taken(clashes));
                }
            }
            for c in customers {
                let id: i64 = sqlx::query_scalar(INSERT)
                    .bind(&c.name)
                    .bind(&c.language)
                    .bind(c.priority)
                    .bind(&c.account)
                    .bind(&c.notes)
                    .bind(tags_json(&c.tags))
                    .bind(&now)
                    .fetch_one(&mut *tx)
                    .await?;
                for (i, n) in c.numbers.iter().enumerate() {
                    sqlx::query(INSERT_NUMBER)
                        .bind(n)
                        .bind(id)
                        .bind(i32::try_from(i).unwrap_or(i32::MAX))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(version)
        }
        .await)
    }
}

#[cfg(test)]
mod tests;
