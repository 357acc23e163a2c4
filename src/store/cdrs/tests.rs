//! Repeat callers on a real SQLite file: a directory customer is one
//! caller whichever of their numbers they call from.

use chrono::{Duration, Utc};

use crate::store::{Cdr, Store};

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
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = Store::connect(&url).await.expect("connect");
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
