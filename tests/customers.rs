//! The customer directory with real parts: `ringback customers import` and
//! `export` on SQLite and PostgreSQL (bad rows reported as `FILE:LINE:
//! reason` with nothing imported, a file that round-trips byte for byte),
//! `/api/v1/customers` over HTTP with its roles, and a real SIP call: the
//! caller is an imported customer, and the INVITE ringback sends the
//! agent's phone (SIPp) carries their name and account.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::scenario::{self, AgentPhone, Uac};
use common::{
    call_id_from_trace, free_udp_port, phone, poll_until, Server, ServerOpts, Sipp, QUEUE_PLAN,
};
use serde_json::Value;

const ADMIN: &str = "customers-admin-token-0123456789";
const SUPER: &str = "customers-supervisor-token-0123456789";
const ALICE: &str = "customers-alice-token-0123456789";

/// `ringback --config CFG customers ARGS…` → (exit code, stdout, stderr).
fn customers(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringback"))
        .arg("--config")
        .arg(cfg)
        .arg("customers")
        .args(args)
        .output()
        .expect("run ringback");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A configuration whose store is `url` (default: a SQLite file beside it).
fn config(dir: &Path, url: Option<&str>) -> std::path::PathBuf {
    let cfg = dir.join("ringback.toml");
    let text = match url {
        Some(u) => format!("[database]\nurl = \"{u}\"\n"),
        None => String::new(),
    };
    std::fs::write(&cfg, text).expect("write config");
    cfg
}

const GOOD: &str = "name,number,numbers,vip,language,account,tags,notes\n\
Zoë Müller,+1 (555) 010-0001,+15550100002; 555.010.0003,yes,de,ACC-1,gold;late payer,\"Prefers mornings.\n\
Says \"\"hi\"\", always.\"\n\
Bob Stone,+15550100004,,7,,,,\n\
Carla Díaz,+44 20 7946 0958,,,es-MX,ACC-3,,\n";

/// What `export` writes for [`GOOD`]: every column, numbers normalised.
const GOOD_EXPORTED: &str = "number,name,language,vip,account,notes,tags,numbers\n\
+15550100001,Zoë Müller,de,yes,ACC-1,\"Prefers mornings.\n\
Says \"\"hi\"\", always.\",gold;late payer,+15550100002;5550100003\n\
+15550100004,Bob Stone,,7,,,,\n\
+442079460958,Carla Díaz,es-MX,,ACC-3,,,\n";

#[test]
fn a_bad_file_is_reported_row_by_row_and_nothing_is_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), None);
    let file = dir.path().join("bad.csv");
    std::fs::write(
        &file,
        "number,name,vip,language\n\
         +15550100001,Good Row,,\n\
         +1 555 CALL,Letters,,\n\
         +15550100002,,,\n\
         +15550100003,Vip Maybe,maybe,\n\
         +15550100004,Bad Language,,english!\n\
         +15550100001,Same Number,,\n\
         +15550100005,Too Few\n",
    )
    .expect("write");
    let (code, out, err) = customers(&cfg, &["import", file.to_str().expect("utf8")]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let shown = file.display().to_string();
    let reported: Vec<&str> = err.lines().filter(|l| l.starts_with(&shown)).collect();
    let lines: Vec<String> = reported
        .iter()
        .map(|l| l[shown.len()..].split(':').nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(lines, ["3", "4", "5", "6", "7", "8"], "{err}");
    for (line, why) in [
        (3, "`number`:"),
        (4, "`name`: must not be empty"),
        (5, "`vip`:"),
        (6, "`language`:"),
        (7, "`number`: +15550100001 is also on line 2"),
        (8, "2 fields, but the header has 4"),
    ] {
        let prefix = format!("{shown}:{line}: {why}");
        assert!(
            err.lines().any(|l| l.starts_with(&prefix)),
            "no `{prefix}` in:\n{err}"
        );
    }
    assert!(err.contains("nothing was imported"), "{err}");
    // Not even the good row.
    let (code, out, err) = customers(&cfg, &["export"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "number,name,language,vip,account,notes,tags,numbers\n");

    // A valid file whose number another customer already has: also all or
    // nothing, reported at the row.
    let first = dir.path().join("first.csv");
    std::fs::write(&first, "number,name\n+15550100001,Jane\n").expect("write");
    let (code, _, err) = customers(&cfg, &["import", first.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    let second = dir.path().join("second.csv");
    std::fs::write(
        &second,
        "number,name\n+15550100009,New\n+1 555 010 0001,Clash\n",
    )
    .expect("write");
    let (code, _, err) = customers(&cfg, &["import", second.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{err}");
    let expected = format!(
        "{}:3: `number`: +15550100001 already belongs to customer 1 (Jane)",
        second.display()
    );
    assert!(err.lines().any(|l| l == expected), "{expected} in:\n{err}");
    let (_, out, _) = customers(&cfg, &["export"]);
    assert_eq!(out.lines().count(), 2, "only Jane:\n{out}");
    // Unreadable files and missing columns say so.
    let (code, _, err) = customers(&cfg, &["import", "/nonexistent/x.csv"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/x.csv: cannot read"), "{err}");
    let nameless = dir.path().join("nameless.csv");
    std::fs::write(&nameless, "number\n+15550100010\n").expect("write");
    let (code, _, err) = customers(&cfg, &["import", nameless.to_str().expect("utf8")]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "{}:1: the header has no `name`",
            nameless.display()
        )),
        "{err}"
    );
}

/// Import, export, import the export instead of everything: the same
/// text, on one store and on a fresh one.
fn round_trip(cfg: &Path, fresh: &Path, work: &Path) {
    let file = work.join("customers.csv");
    std::fs::write(&file, GOOD).expect("write");
    let (code, _, err) = customers(cfg, &["import", file.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("imported 3 customer(s) with 5 number(s)"),
        "{err}"
    );
    let (code, exported, err) = customers(cfg, &["export"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(exported, GOOD_EXPORTED);
    let again = work.join("exported.csv");
    std::fs::write(&again, &exported).expect("write");
    // Into the same store: its numbers are taken…
    let (code, _, err) = customers(cfg, &["import", again.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{err}");
    // …unless the file replaces the directory.
    let (code, _, err) = customers(cfg, &["import", "--replace", again.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("replacing the directory"), "{err}");
    assert_eq!(customers(cfg, &["export"]).1, exported);
    // Into another store.
    let (code, _, err) = customers(fresh, &["import", again.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(customers(fresh, &["export"]).1, exported);
}

#[test]
fn an_export_imports_back_to_the_same_file_on_sqlite() {
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    round_trip(&config(a.path(), None), &config(b.path(), None), a.path());
}

#[test]
fn an_export_imports_back_to_the_same_file_on_postgres() {
    let (pa, pb) = (common::pg::PgDb::create(), common::pg::PgDb::create());
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    round_trip(
        &config(a.path(), Some(&pa.url())),
        &config(b.path(), Some(&pb.url())),
        a.path(),
    );
}

/// One HTTP request; returns (status, body).
fn http(srv: &Server, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(srv.api).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        srv.api,
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

const TOKENS: &str = r#"
[[api.tokens]]
token = "customers-admin-token-0123456789"
role = "admin"

[[api.tokens]]
token = "customers-supervisor-token-0123456789"
role = "supervisor"

[[api.tokens]]
token = "customers-alice-token-0123456789"
role = "agent"
agent = "alice"

[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#;

fn crud(srv: &Server) {
    let jane = r#"{"name":"Jane Doe","numbers":["+1 (555) 010-0001","+15550100002"],
        "priority":5,"language":"en","account":"ACC-1","notes":"call after 5","tags":["gold"]}"#;
    // Roles: no token 401; an agent may neither write nor read customers.
    assert_eq!(http(srv, "POST", "/api/v1/customers", None, jane).0, 401);
    let (status, body) = http(srv, "POST", "/api/v1/customers", Some(ALICE), jane);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(
        http(srv, "GET", "/api/v1/customers", Some(ALICE), "").0,
        403
    );
    // Create (supervisor) and read it back (admin).
    let (status, body) = http(srv, "POST", "/api/v1/customers", Some(SUPER), jane);
    assert_eq!(status, 201, "{body}");
    let created = json(&body);
    let id = created["id"].as_i64().expect("id");
    assert_eq!(
        created["numbers"],
        serde_json::json!(["+15550100001", "+15550100002"])
    );
    assert_eq!(
        (created["vip"].as_bool(), created["priority"].as_i64()),
        (Some(true), Some(5))
    );
    let (status, body) = http(
        srv,
        "GET",
        &format!("/api/v1/customers/{id}"),
        Some(ADMIN),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body), created);
    // A number belongs to one customer.
    let bob = r#"{"name":"Bob","numbers":["+15550100003"]}"#;
    let eve = r#"{"name":"Eve","numbers":["5550100008"]}"#;
    let (status, body) = http(srv, "POST", "/api/v1/customers", Some(ADMIN), eve);
    assert_eq!(status, 201, "{body}");
    let eve = json(&body)["id"].as_i64().expect("id");
    let taken = r#"{"name":"Eve","numbers":["+1 555 010 0002"]}"#;
    let (status, body) = http(srv, "POST", "/api/v1/customers", Some(ADMIN), taken);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (409, Some("number_in_use")),
        "{body}"
    );
    // Invalid fields name the field.
    for (bad, field) in [
        (r#"{"numbers":["+15550100009"]}"#, "`name`"),
        (r#"{"name":"X","numbers":["911"]}"#, "`numbers`"),
        (
            r#"{"name":"X","numbers":["+15550100009"],"priority":1001}"#,
            "`priority`",
        ),
        (
            r#"{"name":"X","numbers":["+15550100009"],"tags":["a;b"]}"#,
            "`tags`",
        ),
    ] {
        let (status, body) = http(srv, "POST", "/api/v1/customers", Some(ADMIN), bad);
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(
            json(&body)["error"]
                .as_str()
                .is_some_and(|e| e.contains(field)),
            "{body}"
        );
    }
    let (status, body) = http(srv, "POST", "/api/v1/customers", Some(ADMIN), bob);
    assert_eq!(status, 201, "{body}");
    let bob_id = json(&body)["id"].as_i64().expect("id");
    // Lookup by number: any spelling of the number, with or without `+`.
    for q in ["%2B1%20555%20010%200001", "15550100001", "%2B15550100002"] {
        let (status, body) = http(
            srv,
            "GET",
            &format!("/api/v1/customers?number={q}"),
            Some(SUPER),
            "",
        );
        assert_eq!(status, 200, "{body}");
        let ids: Vec<i64> = json(&body)["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .filter_map(|c| c["id"].as_i64())
            .collect();
        assert_eq!(ids, vec![id], "{q}: {body}");
    }
    let (_, body) = http(
        srv,
        "GET",
        "/api/v1/customers?number=nobody",
        Some(SUPER),
        "",
    );
    assert_eq!(json(&body)["customers"], serde_json::json!([]));
    // Paging by id.
    let (_, body) = http(srv, "GET", "/api/v1/customers?limit=2", Some(SUPER), "");
    let page = json(&body);
    assert_eq!(
        page["customers"].as_array().map(Vec::len),
        Some(2),
        "{page}"
    );
    let next = page["next_after"].as_i64().expect("next page");
    let (_, body) = http(
        srv,
        "GET",
        &format!("/api/v1/customers?limit=2&after={next}"),
        Some(SUPER),
        "",
    );
    let last = json(&body);
    assert_eq!(last["customers"][0]["id"].as_i64(), Some(bob_id), "{last}");
    assert_eq!(last["next_after"], Value::Null);
    // Update replaces every field and the numbers.
    let moved = r#"{"name":"Jane Roe","numbers":["+15550100007"]}"#;
    let (status, body) = http(
        srv,
        "PUT",
        &format!("/api/v1/customers/{id}"),
        Some(SUPER),
        moved,
    );
    assert_eq!(status, 200, "{body}");
    let updated = json(&body);
    assert_eq!(updated["name"], "Jane Roe");
    assert_eq!(
        (updated["vip"].as_bool(), updated["account"].as_str()),
        (Some(false), None)
    );
    assert_eq!(updated["created_at"], created["created_at"]);
    let (_, body) = http(
        srv,
        "GET",
        "/api/v1/customers?number=%2B15550100001",
        Some(SUPER),
        "",
    );
    assert_eq!(
        json(&body)["customers"],
        serde_json::json!([]),
        "the old number is free"
    );
    assert_eq!(
        http(
            srv,
            "PUT",
            &format!("/api/v1/customers/{id}"),
            Some(ALICE),
            moved
        )
        .0,
        403
    );
    assert_eq!(
        http(srv, "PUT", "/api/v1/customers/999999", Some(SUPER), moved).0,
        404
    );
    // Delete.
    assert_eq!(
        http(
            srv,
            "DELETE",
            &format!("/api/v1/customers/{eve}"),
            Some(ALICE),
            ""
        )
        .0,
        403
    );
    assert_eq!(
        http(
            srv,
            "DELETE",
            &format!("/api/v1/customers/{eve}"),
            Some(SUPER),
            ""
        )
        .0,
        204
    );
    assert_eq!(
        http(
            srv,
            "DELETE",
            &format!("/api/v1/customers/{eve}"),
            Some(SUPER),
            ""
        )
        .0,
        404
    );
    let (status, body) = http(
        srv,
        "GET",
        &format!("/api/v1/customers/{eve}"),
        Some(ADMIN),
        "",
    );
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(
        http(srv, "GET", "/api/v1/customers/abc", Some(ADMIN), "").0,
        404
    );
}

#[test]
fn the_api_creates_reads_changes_and_deletes_customers_by_role() {
    let srv = Server::start(ServerOpts {
        extra_config: TOKENS.into(),
        ..ServerOpts::default()
    });
    crud(&srv);
}

#[test]
fn the_api_works_the_same_on_postgres() {
    let db = common::pg::PgDb::create();
    let srv = Server::start(ServerOpts {
        extra_config: TOKENS.into(),
        database_url: Some(db.url()),
        ..ServerOpts::default()
    });
    crud(&srv);
}

fn agent_context(srv: &Server) -> Value {
    let (_, body) = http(srv, "GET", "/api/v1/agents", Some(ADMIN), "");
    json(&body)["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "alice"))
        .map(|a| a["context"].clone())
        .unwrap_or(Value::Null)
}

/// A customer imported with the CLI while the server runs (seen on its
/// next refresh) calls; the agent's phone gets their name and account.
#[test]
fn an_imported_customers_name_reaches_the_agents_phone() {
    let srv = Server::start(ServerOpts {
        dialplans: vec![("cb.toml".into(), QUEUE_PLAN.into())],
        extra_config: format!(
            "{TOKENS}\n[customers]\nrefresh_secs = 1\n\n[queues.operator]\nannounce_every_secs = 0\nwrapup_secs = 1\n"
        ),
        ..ServerOpts::default()
    });
    // Loaded (empty) in the background after the start.
    assert!(
        srv.wait_log("customer directory loaded", 1, Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    let file = srv.dir.path().join("customers.csv");
    // The caller's number (`scenario::CALLER`) in another spelling.
    assert_eq!(scenario::CALLER, "+15550123");
    std::fs::write(
        &file,
        "number,name,account,vip\n+1 555-0123,Zoë Müller,ACC-42,yes\n+15550100004,Bob,,\n",
    )
    .expect("write");
    let (code, _, err) = customers(
        &srv.dir.path().join("ringback.toml"),
        &["import", file.to_str().expect("utf8")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        srv.wait_log("customer directory loaded", 2, Duration::from_secs(10)),
        "the running server did not reload the directory:\n{}",
        srv.log()
    );

    let alice_port = free_udp_port();
    Sipp::from_xml(&scenario::register("alice", "alice-secret", 300, 200))
        .arg("-p")
        .arg(alice_port)
        .run(srv.sip, "alice")
        .assert_ok("REGISTER");
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let alice = phone(
        alice_port,
        &AgentPhone::new(20_000)
            .ring()
            .answer(rtp_port)
            .expect_bye(20_000),
    )
    .spawn(srv.sip, "alice");
    let caller = Uac::new().invite().pause(4_000).bye();
    let caller = Sipp::from_xml(&caller.xml()).spawn(srv.sip, "100");
    // While they talk, the agent's context (what the agent page and the
    // dashboard show) has the name.
    let context = poll_until(
        Duration::from_secs(8),
        Duration::from_millis(100),
        || Some(agent_context(&srv)).filter(|c| c["caller_name"].is_string()),
        || {
            format!(
                "no caller name in the agent's context: {}",
                agent_context(&srv)
            )
        },
    );
    assert_eq!(context["caller_name"], "Zoë Müller", "{context}");
    assert_eq!(context["account"], "ACC-42", "{context}");
    let caller = caller.wait();
    caller.assert_ok("caller");
    let alice = alice.wait();
    alice.assert_ok("alice's phone");
    let invite = alice
        .messages
        .split("\n\n")
        .find(|m| m.contains("INVITE sip:"))
        .unwrap_or_else(|| panic!("no INVITE in:\n{}", alice.messages));
    for header in [
        "X-Ringback-Caller: +15550123",
        "X-Ringback-Caller-Name: Zoë Müller",
        "X-Ringback-Account: ACC-42",
        "From: \"Zoë Müller\" <sip:+15550123@",
    ] {
        assert!(
            invite.lines().any(|l| l.trim_end().starts_with(header)),
            "the INVITE to the agent lacks `{header}`:\n{invite}"
        );
    }
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&caller.messages).expect("Call-ID"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.disposition, "completed", "{cdr:?}");
}

fn queue_waiting(srv: &Server) -> Vec<Value> {
    let (_, body) = http(srv, "GET", "/api/v1/queues", Some(ADMIN), "");
    json(&body)["queues"]
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == "operator"))
        .and_then(|q| q["waiting"].as_array().cloned())
        .unwrap_or_default()
}

/// Two real callers wait while the only agent is paused: an ordinary one,
/// then a VIP from the directory. The VIP is first in line and the first
/// call offered to the agent's phone when she is back, though the other
/// caller waited longer.
#[test]
fn a_vip_who_calls_later_is_offered_before_a_caller_who_waited_longer() {
    const VIP: &str = "+15550777";
    let srv = Server::start(ServerOpts {
        dialplans: vec![("cb.toml".into(), QUEUE_PLAN.into())],
        extra_config: format!(
            "{TOKENS}\n[queues.operator]\nannounce_every_secs = 0\nwrapup_secs = 60\n"
        ),
        ..ServerOpts::default()
    });
    assert!(
        srv.wait_log("customer directory loaded", 1, Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    let (status, body) = http(
        &srv,
        "POST",
        "/api/v1/customers",
        Some(ADMIN),
        &format!(r#"{{"name":"Vera Important","numbers":["{VIP}"],"priority":1}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(
        &srv,
        "POST",
        "/api/v1/customers",
        Some(ADMIN),
        r#"{"name":"Otto Ordinary","numbers":["+15550123"]}"#,
    );
    assert_eq!(status, 201, "{body}");

    let alice_port = free_udp_port();
    Sipp::from_xml(&scenario::register("alice", "alice-secret", 300, 200))
        .arg("-p")
        .arg(alice_port)
        .run(srv.sip, "alice")
        .assert_ok("REGISTER");
    let (status, body) = http(
        &srv,
        "POST",
        "/api/v1/agents/alice/pause",
        Some(ADMIN),
        r#"{"reason":"coffee"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let alice = phone(
        alice_port,
        &AgentPhone::new(30_000)
            .ring()
            .answer(rtp_port)
            .expect_bye(20_000),
    )
    .spawn(srv.sip, "alice");

    // The ordinary caller first; the VIP two seconds later.
    let ordinary = Uac::new().invite().pause(14_000).bye();
    let ordinary = Sipp::from_xml(&ordinary.xml()).spawn(srv.sip, "100");
    let until = Instant::now() + Duration::from_secs(8);
    while queue_waiting(&srv).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let vip = Uac::new().calling_as(VIP).invite().pause(6_000).bye();
    let vip = Sipp::from_xml(&vip.xml()).spawn(srv.sip, "100");
    let waiting = poll_until(
        Duration::from_secs(8),
        Duration::from_millis(50),
        || Some(queue_waiting(&srv)).filter(|w| w.len() == 2),
        || format!("not two callers in line: {:?}", queue_waiting(&srv)),
    );
    // In line: the VIP first, though the other caller waited longer.
    let line: Vec<(Value, Value, Value)> = waiting
        .iter()
        .map(|w| {
            (
                w["caller"].clone(),
                w["priority"].clone(),
                w["position"].clone(),
            )
        })
        .collect();
    assert_eq!(
        line,
        [
            (VIP.into(), 1.into(), 1.into()),
            ("+15550123".into(), 0.into(), 2.into())
        ],
        "{waiting:?}"
    );
    assert!(
        waiting[1]["waited_secs"].as_u64() > waiting[0]["waited_secs"].as_u64(),
        "{waiting:?}"
    );

    let (status, body) = http(
        &srv,
        "POST",
        "/api/v1/agents/alice/unpause",
        Some(ADMIN),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let alice = alice.wait();
    alice.assert_ok("alice's phone");
    let invite = alice
        .messages
        .split("\n\n")
        .find(|m| m.contains("INVITE sip:"))
        .unwrap_or_else(|| panic!("no INVITE in:\n{}", alice.messages));
    for header in [
        "X-Ringback-Caller: +15550777",
        "X-Ringback-Caller-Name: Vera Important",
    ] {
        assert!(
            invite.lines().any(|l| l.trim_end().starts_with(header)),
            "the first INVITE to the agent lacks `{header}`:\n{invite}"
        );
    }
    let vip = vip.wait();
    vip.assert_ok("the VIP");
    let ordinary = ordinary.wait();
    ordinary.assert_ok("the ordinary caller");
    let vip_cdr = srv.wait_cdr(
        &call_id_from_trace(&vip.messages).expect("Call-ID"),
        Duration::from_secs(5),
    );
    assert_eq!(vip_cdr.disposition, "completed", "{vip_cdr:?}");
    let ordinary_cdr = srv.wait_cdr(
        &call_id_from_trace(&ordinary.messages).expect("Call-ID"),
        Duration::from_secs(5),
    );
    assert_eq!(ordinary_cdr.disposition, "abandoned", "{ordinary_cdr:?}");
}
