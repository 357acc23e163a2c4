//! The operations API over real HTTP against a running server: tokens and
//! roles, every endpoint, validation errors, the event stream, dialplan
//! reload, and the OpenAPI document checked against live answers.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Server, ServerOpts};
use serde_json::Value;

const ADMIN: &str = "admin-token-0123456789";
const SUPER: &str = "supervisor-token-0123456789";
const ALICE: &str = "alice-agent-token-0123456789";

fn server() -> Server {
    Server::start(ServerOpts {
        extra_config: format!(
            r#"
[[api.tokens]]
token = "{ADMIN}"
role = "admin"

[[api.tokens]]
token = "{SUPER}"
role = "supervisor"

[[api.tokens]]
token = "{ALICE}"
role = "agent"
agent = "alice"

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
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

#[test]
fn tokens_and_roles() {
    let srv = server();
    assert_eq!(
        http(&srv, "GET", "/api/v1/agents", None, "").0,
        401,
        "no token"
    );
    assert_eq!(
        http(
            &srv,
            "GET",
            "/api/v1/agents",
            Some("wrong-token-0000000000"),
            ""
        )
        .0,
        401
    );
    assert_eq!(http(&srv, "GET", "/api/v1/agents", Some(SUPER), "").0, 200);
    assert_eq!(
        http(&srv, "GET", "/api/v1/agents", Some(ALICE), "").0,
        403,
        "agents cannot list everybody"
    );
    for (token, role) in [(ADMIN, "admin"), (SUPER, "supervisor"), (ALICE, "agent")] {
        let (status, body) = http(&srv, "GET", "/api/v1/me", Some(token), "");
        assert_eq!(status, 200);
        assert_eq!(json(&body)["role"], role);
    }
    // An agent changes only its own state.
    assert_eq!(
        http(&srv, "POST", "/api/v1/agents/alice/login", Some(ALICE), "").0,
        200
    );
    assert_eq!(
        http(&srv, "POST", "/api/v1/agents/bob/login", Some(ALICE), "").0,
        403
    );
    assert_eq!(
        http(&srv, "POST", "/api/v1/agents/bob/login", Some(SUPER), "").0,
        200
    );
    // Reloads are for admins.
    assert_eq!(
        http(&srv, "POST", "/api/v1/dialplans/reload", Some(SUPER), "").0,
        403
    );
    let (status, body) = http(&srv, "POST", "/api/v1/dialplans/reload", Some(ADMIN), "");
    assert_eq!(status, 200, "{body}");
    // Metrics and health stay open for scrapers.
    assert_eq!(http(&srv, "GET", "/metrics", None, "").0, 200);
    assert_eq!(http(&srv, "GET", "/healthz", None, "").0, 200);
    // The pages are served; they ask for a token themselves.
    let (status, body) = http(&srv, "GET", "/", None, "");
    assert_eq!(status, 200);
    assert!(
        body.to_ascii_lowercase().contains("<html") || body.contains("<!doctype"),
        "{body}"
    );
    assert_eq!(http(&srv, "GET", "/agent", None, "").0, 200);
}

#[test]
fn validation_errors_name_the_field() {
    let srv = server();
    let (status, body) = http(
        &srv,
        "POST",
        "/api/v1/agents/alice/pause",
        Some(SUPER),
        r#"{"reason":42}"#,
    );
    assert_eq!(status, 422);
    assert!(
        json(&body)["error"]
            .as_str()
            .is_some_and(|e| e.contains("reason")),
        "{body}"
    );
    let (status, _) = http(
        &srv,
        "POST",
        "/api/v1/agents/alice/pause",
        Some(SUPER),
        "{not json",
    );
    assert_eq!(status, 400);
    let (status, _) = http(&srv, "POST", "/api/v1/agents/alice/dance", Some(SUPER), "");
    assert_eq!(status, 404);
    let (status, body) = http(
        &srv,
        "POST",
        "/api/v1/callbacks",
        Some(SUPER),
        r#"{"number":"+15551230001"}"#,
    );
    assert_eq!(status, 422);
    assert!(body.contains("`queue` is required"), "{body}");
    let (status, body) = http(
        &srv,
        "POST",
        "/api/v1/callbacks",
        Some(SUPER),
        r#"{"number":"+15551230001","queue":"operator","preferred_start":"tomorrow"}"#,
    );
    assert_eq!(status, 422);
    assert!(body.contains("preferred_start"), "{body}");
    let (status, body) = http(
        &srv,
        "GET",
        "/api/v1/callbacks?state=bogus",
        Some(SUPER),
        "",
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = http(&srv, "POST", "/api/v1/agents/alice/logout", Some(SUPER), "");
    assert_eq!(
        status, 409,
        "logging out a logged-out agent is refused: {body}"
    );
}

#[test]
fn event_stream_sends_snapshots() {
    let srv = server();
    let mut s = std::net::TcpStream::connect(srv.api).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET /api/v1/events?token={SUPER} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\n\n")
        || !String::from_utf8_lossy(&got).contains("data:")
    {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "stream closed");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(text.contains("event: snapshot"), "{text}");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("data:")))
        .expect("data line");
    let v = json(data);
    for key in ["queues", "agents", "callbacks", "stats", "at"] {
        assert!(v.get(key).is_some(), "snapshot lacks {key}: {v}");
    }
    assert!(v["queues"]
        .as_array()
        .is_some_and(|q| q.iter().any(|x| x["name"] == "operator")));
}

#[test]
fn dialplan_reload_over_the_api_reports_errors_and_keeps_serving() {
    let srv = server();
    let (status, body) = http(&srv, "GET", "/api/v1/dialplans", Some(SUPER), "");
    assert_eq!(status, 200);
    let before = json(&body)["generation"].clone();
    let plan = srv.dialplans().join("main.toml");
    let good = std::fs::read_to_string(&plan).expect("read");
    let broken = good.replacen("start = \"hours\"", "start = \"hourz\"", 1);
    assert_ne!(good, broken, "the demo plan starts at `hours`");
    std::fs::write(&plan, &broken).expect("write");
    let (status, body) = http(&srv, "POST", "/api/v1/dialplans/reload", Some(ADMIN), "");
    assert_eq!(status, 422, "{body}");
    let v = json(&body);
    assert!(
        v["errors"].as_array().is_some_and(|e| e.iter().any(|x| x
            .as_str()
            .is_some_and(|s| s.contains("main.toml:") && s.contains("hourz")))),
        "{body}"
    );
    std::fs::write(&plan, &good).expect("write");
    let (status, _) = http(&srv, "POST", "/api/v1/dialplans/reload", Some(ADMIN), "");
    assert_eq!(status, 200);
    let (_, body) = http(&srv, "GET", "/api/v1/dialplans", Some(SUPER), "");
    assert_ne!(json(&body)["generation"], before);
}

/// Resolve `$ref`s of the OpenAPI document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or("");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Check `value` against the schema's `required` fields and types, one level
/// into arrays of objects.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    match schema["type"].as_str() {
        Some("object") => {
            assert!(value.is_object(), "{at}: expected an object, got {value}");
            for req in schema["required"].as_array().into_iter().flatten() {
                let k = req.as_str().unwrap_or("");
                assert!(
                    value.get(k).is_some(),
                    "{at}: required `{k}` missing in {value}"
                );
            }
            if let Some(props) = schema["properties"].as_object() {
                for (k, sub) in props {
                    if let Some(v) = value.get(k) {
                        check(doc, sub, v, &format!("{at}.{k}"));
                    }
                }
            }
        }
        Some("array") => {
            let items = value
                .as_array()
                .unwrap_or_else(|| panic!("{at}: expected an array, got {value}"));
            for (i, it) in items.iter().enumerate() {
                check(doc, &schema["items"], it, &format!("{at}[{i}]"));
            }
        }
        Some("integer") => assert!(
            value.is_i64() || value.is_u64(),
            "{at}: expected an integer, got {value}"
        ),
        Some("number") => assert!(value.is_number(), "{at}: expected a number, got {value}"),
        Some("string") => assert!(value.is_string(), "{at}: expected a string, got {value}"),
        Some("boolean") => assert!(value.is_boolean(), "{at}: expected a boolean, got {value}"),
        _ => {}
    }
}

#[test]
fn openapi_document_matches_live_answers() {
    let srv = server();
    // Something to list: a callback, a logged-in agent.
    assert_eq!(
        http(
            &srv,
            "POST",
            "/api/v1/callbacks",
            Some(SUPER),
            r#"{"number":"+15551230001","queue":"operator"}"#
        )
        .0,
        201
    );
    assert_eq!(
        http(&srv, "POST", "/api/v1/agents/alice/login", Some(SUPER), "").0,
        200
    );
    let (status, body) = http(&srv, "GET", "/api/openapi.json", None, "");
    assert_eq!(status, 200);
    let doc = json(&body);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 12, "every endpoint is documented");
    let mut checked = 0;
    for (path, ops) in paths {
        let Some(get) = ops.get("get") else { continue };
        if path.contains('{') || path.ends_with("/events") {
            continue; // needs an id / is a stream (tested elsewhere)
        }
        let (status, body) = http(&srv, "GET", path, Some(ADMIN), "");
        assert_eq!(status, 200, "GET {path}: {body}");
        let schema = &get["responses"]["200"]["content"]["application/json"]["schema"];
        check(&doc, schema, &json(&body), path);
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} paths checked");
    // A path with an id, and a documented error shape.
    let (_, list) = http(&srv, "GET", "/api/v1/callbacks", Some(ADMIN), "");
    let id = json(&list)["callbacks"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, body) = http(
        &srv,
        "GET",
        &format!("/api/v1/callbacks/{id}"),
        Some(ADMIN),
        "",
    );
    assert_eq!(status, 200);
    check(
        &doc,
        &doc["components"]["schemas"]["Callback"],
        &json(&body),
        "callback",
    );
    let (status, body) = http(&srv, "GET", "/api/v1/callbacks/nope", Some(ADMIN), "");
    assert_eq!(status, 404);
    check(
        &doc,
        &doc["components"]["schemas"]["Error"],
        &json(&body),
        "error",
    );
}

/// Every error is the documented JSON with a `code`: refusals by role, a
/// malformed query string (axum's own rejection used to be plain text),
/// and an empty filter is no filter.
#[test]
fn errors_are_json_with_a_code_and_empty_filters_are_allowed() {
    let srv = server();
    let (status, body) = http(&srv, "GET", "/api/v1/agents", Some(ALICE), "");
    assert_eq!(status, 403);
    assert_eq!(json(&body)["code"], "forbidden", "{body}");
    let (status, body) = http(&srv, "GET", "/api/v1/agents", None, "");
    assert_eq!(status, 401);
    assert_eq!(json(&body)["code"], "unauthorized", "{body}");
    for path in [
        "/api/v1/callbacks?limit=lots",
        "/api/v1/cdrs?limit=%ZZ",
        "/api/v1/callbacks?limit=1&limit=2",
    ] {
        let (status, body) = http(&srv, "GET", path, Some(SUPER), "");
        assert_eq!(status, 400, "{path}: {body}");
        let v = json(&body);
        assert_eq!(v["code"], "bad_request", "{path}: {body}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("query string")),
            "{path}: {body}"
        );
    }
    let (status, body) = http(
        &srv,
        "GET",
        "/api/v1/callbacks?state=&queue=",
        Some(SUPER),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &srv,
        "GET",
        "/api/v1/callbacks?state=nonsense",
        Some(SUPER),
        "",
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(json(&body)["code"], "invalid", "{body}");
}
