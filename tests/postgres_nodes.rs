//! Two ringback nodes sharing one callback queue in the machine's real
//! PostgreSQL (127.0.0.1:5432, trust auth): a callback is dialed by exactly
//! one node, and a killed node's callback is taken over when its lease runs
//! out. Each test creates (and drops) its own database.

mod common;

use std::time::{Duration, Instant};

use common::scenario::{self, AgentPhone};
use common::{free_udp_port, Server, ServerOpts, Sipp};
use serde_json::Value;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database, dropped at the end.
struct PgDb {
    name: String,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

impl PgDb {
    fn create() -> PgDb {
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

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
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

fn node(db: &PgDb, id: &str, customer_port: u16, ring_timeout: u64) -> Server {
    Server::start(ServerOpts {
        database_url: Some(db.url()),
        extra_config: format!(
            r#"
[trunk]
address = "127.0.0.1:{customer_port}"
caller_id = "+15550100"

[callbacks]
node_id = "{id}"
lease_secs = 4
sync_secs = 1

[queues.operator]
ring_timeout_secs = {ring_timeout}
announce_every_secs = 0
wrapup_secs = 1

[agents.alice]
password = "alice-secret"
queues = ["operator"]

[agents.bob]
password = "bob-secret"
queues = ["operator"]
"#
        ),
        ..ServerOpts::default()
    })
}

fn register(srv: &Server, user: &str, port: u16) {
    Sipp::from_xml(&scenario::register(
        user,
        &format!("{user}-secret"),
        300,
        200,
    ))
    .arg("-p")
    .arg(port)
    .run(srv.sip, user)
    .assert_ok("REGISTER");
}

fn callback(srv: &Server, id: &str) -> Value {
    let (status, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

fn wait_completed(srv: &Server, id: &str, timeout: Duration) -> Value {
    let until = Instant::now() + timeout;
    loop {
        let cb = callback(srv, id);
        if cb["state"] == "completed" {
            return cb;
        }
        assert!(
            Instant::now() < until,
            "callback not completed: {cb:#}\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dialing_nodes(cb: &Value) -> Vec<String> {
    cb["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|x| x["to"] == "dialing")
                .map(|x| x["node"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn customer() -> AgentPhone {
    AgentPhone::new(40_000)
        .ring()
        .answer_own_media()
        .pause(1_500)
        .press('1')
        .pause(1_000)
        .hang_up()
}

fn request(srv: &Server) -> String {
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        r#"{"number":"+15551230009","queue":"operator"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn two_nodes_never_dial_the_same_callback() {
    let db = PgDb::create();
    let customer_port = free_udp_port();
    let a = node(&db, "node-a", customer_port, 20);
    let b = node(&db, "node-b", customer_port, 20);
    let (alice_port, bob_port) = (free_udp_port(), free_udp_port());
    register(&a, "alice", alice_port);
    register(&b, "bob", bob_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let media = rtp.local_addr().expect("addr").port();
    // Both agents are ready; only one may be rung for the callback. (A
    // SIPp phone that is never rung waits for its global -timeout.)
    let alice = Sipp::from_xml(
        &AgentPhone::new(15_000)
            .ring()
            .answer(media)
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .arg("-timeout")
    .arg("20s")
    .spawn(a.sip, "alice");
    let bob = Sipp::from_xml(
        &AgentPhone::new(15_000)
            .ring()
            .answer(media)
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(bob_port)
    .arg("-timeout")
    .arg("20s")
    .spawn(b.sip, "bob");
    let cust = common::phone(customer_port, &customer()).spawn(a.sip, "x");
    let id = request(&a);
    cust.wait().assert_ok("customer called back once");
    let cb = wait_completed(&b, &id, Duration::from_secs(20));
    let nodes = dialing_nodes(&cb);
    assert_eq!(nodes.len(), 1, "exactly one dial attempt: {cb:#}");
    let (alice, bob) = (alice.wait(), bob.wait());
    let rung: Vec<&str> = [("node-a", &alice), ("node-b", &bob)]
        .iter()
        .filter(|(_, run)| run.messages.contains("INVITE sip:"))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        rung,
        vec![nodes[0].as_str()],
        "only the node that dialed rang its agent"
    );
}

#[test]
fn a_killed_nodes_callback_is_taken_over() {
    let db = PgDb::create();
    let customer_port = free_udp_port();
    let mut a = node(&db, "node-a", customer_port, 60);
    let b = node(&db, "node-b", customer_port, 20);
    let alice_port = free_udp_port();
    register(&a, "alice", alice_port);
    // Alice's phone rings and is never answered: node A holds the lease.
    let alice = common::phone(
        alice_port,
        &AgentPhone::new(20_000).ring().until_cancel(60_000),
    )
    .spawn(a.sip, "alice");
    let id = request(&a);
    let until = Instant::now() + Duration::from_secs(10);
    while !a.log().contains("ringing agent for a callback") {
        assert!(
            Instant::now() < until,
            "node A never rang alice:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.kill9();
    drop(alice);
    // Node B has an agent; it may only dial once A's lease has run out.
    let bob_port = free_udp_port();
    let killed_at = Instant::now();
    register(&b, "bob", bob_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let bob = Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(rtp.local_addr().expect("a").port())
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(bob_port)
    .spawn(b.sip, "bob");
    common::phone(customer_port, &customer())
        .run(b.sip, "x")
        .assert_ok("customer, called by node B");
    bob.wait().assert_ok("bob on node B");
    let cb = wait_completed(&b, &id, Duration::from_secs(20));
    assert_eq!(dialing_nodes(&cb), vec!["node-b".to_string()], "{cb:#}");
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "B waited for A's lease"
    );
}
