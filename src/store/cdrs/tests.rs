//! Repeat callers on a real SQLite file: a directory customer is one
//! caller whichever of their numbers they call from.

use chrono::{Duration, Utc};

use crate::store::Cdr;

fn inbound(id: &str, caller: &str, customer: Option<&str>, ago_mins: i64) -> Cdr {
    Cdr {
        call_id: id.into(),
        leg: "inbound".into(),
        caller: caller.into(),
        started_at: Utc::now() - Duration::minutes(ago_mins),
        vars: "{}".into(),
        disposition: "completed".into(),
        customer_key: customer.map(str::to_string),
        ..Cdr::default()
    }
}

#[tokio::test]
async fn a_customers_calls_count_together_across_their_numbers() {
    let (_dir, store) = crate::store::scratch_sqlite().await;
    let calls = [
        // Before the number was in the directory: keyed by the number.
        inbound("a", "+15550001", None, 50),
        inbound("b", "+15550001", Some("customer:7"), 40),
        inbound("c", "+15550002", Some("customer:7"), 30),
        inbound("d", "+15550009", None, 20),
        inbound("e", "+15550009", None, 10),
        inbound("f", "+15550003", None, 5),
    ];
    store.write_cdrs(&calls, "n").await.expect("write");
    let since = Utc::now() - Duration::hours(1);
    let count = |caller: &'static str, key: Option<&'static str>| {
        let store = store.clone();
        async move {
            store
                .count_calls_since(caller, key, since)
                .await
                .expect("count")
        }
    };
    assert_eq!(
        count("+15550001", Some("customer:7")).await,
        3,
        "both numbers, and this number's calls from before it was known"
    );
    assert_eq!(count("+15550002", Some("customer:7")).await, 2);
    assert_eq!(count("+15550009", None).await, 2);
    assert_eq!(count("+15550004", None).await, 0);

    // Today: c repeats b (same customer, other number), e repeats d.
    let day_start = Utc::now() - Duration::hours(2);
    let rate = store
        .repeat_call_rate(day_start)
        .await
        .expect("rate")
        .expect("calls today");
    assert_eq!(rate, 33.3, "2 of 6 calls today came from a repeat caller");
}

#[tokio::test]
async fn a_batch_writes_every_row_once_at_its_latest_version() {
    let (_dir, store) = crate::store::scratch_sqlite().await;
    // More rows than one statement takes, and one call twice in the batch:
    // first in progress with its parent, then ended without it.
    let mut batch: Vec<Cdr> = (0..450)
        .map(|i| inbound(&format!("c{i}"), "+15550001", None, 5))
        .collect();
    let mut started = inbound("twice", "+15550002", None, 1);
    started.disposition = "in_progress".into();
    started.parent_call_id = Some("parent".into());
    let mut ended = started.clone();
    ended.disposition = "abandoned".into();
    ended.parent_call_id = None;
    batch.insert(10, started);
    batch.push(ended);
    store.write_cdrs(&batch, "n").await.expect("write");
    let rows = store.recent_cdrs(1000).await.expect("read");
    assert_eq!(rows.len(), 451);
    let twice = rows.iter().find(|r| r.call_id == "twice").expect("row");
    assert_eq!(twice.disposition, "abandoned");
    assert_eq!(twice.parent_call_id.as_deref(), Some("parent"));
    // A later batch still completes a row written earlier.
    let mut done = inbound("c3", "+15550001", None, 5);
    done.disposition = "transferred".into();
    store.write_cdrs(&[done], "n").await.expect("write");
    let rows = store.recent_cdrs(1000).await.expect("read");
    let c3 = rows.iter().find(|r| r.call_id == "c3").expect("row");
    assert_eq!(c3.disposition, "transferred");
    assert_eq!(rows.len(), 451);
}
