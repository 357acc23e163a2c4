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
    let host = srv.api;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    let host = srv.api;
    write!(
        s,
        "GET /api/v1/events?token={SUPER} HTTP/1.1\r\nHost: {host}\r\n\r\n"
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

/// Read `n` server-sent events from `path` on a live server: the response
/// head (status, headers), then events as (name, data) with the chunked
/// transfer coding removed and `data:` lines joined as the SSE spec says.
fn sse_events(srv: &Server, path: &str, n: usize) -> (String, Vec<(String, String)>) {
    let mut s = std::net::TcpStream::connect(srv.api).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let host = srv.api;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let mut read_more = |raw: &mut Vec<u8>| {
        let k = s.read(&mut buf).expect("read");
        assert!(k > 0, "stream closed");
        raw.extend_from_slice(&buf[..k]);
    };
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(&mut raw);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut pos = head_end;
    let mut body = Vec::new();
    let mut events = Vec::new();
    while events.len() < n {
        // Move whatever arrived into `body`, decoding chunks.
        if chunked {
            while let Some(eol) = raw[pos..].windows(2).position(|w| w == b"\r\n") {
                let size_line = String::from_utf8_lossy(&raw[pos..pos + eol]).to_string();
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
                assert!(size > 0, "the event stream ended");
                let start = pos + eol + 2;
                if raw.len() < start + size + 2 {
                    break;
                }
                body.extend_from_slice(&raw[start..start + size]);
                pos = start + size + 2;
            }
        } else {
            body.extend_from_slice(&raw[pos..]);
            pos = raw.len();
        }
        // Take every complete event out of `body`.
        while let Some(i) = body.windows(2).position(|w| w == b"\n\n") {
            let block = String::from_utf8(body[..i].to_vec()).expect("UTF-8 event");
            body.drain(..i + 2);
            let mut name = "message".to_string();
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                let (field, val) = line.split_once(':').unwrap_or((line, ""));
                let val = val.strip_prefix(' ').unwrap_or(val);
                match field {
                    "event" => name = val.to_string(),
                    "data" => data.push(val),
                    _ => {} // comments (keep-alives), id, retry
                }
            }
            if !data.is_empty() {
                events.push((name, data.join("\n")));
            }
        }
        if events.len() < n {
            read_more(&mut raw);
        }
    }
    (head, events)
}

/// The event stream matches its schema: every event is documented under
/// the `/api/v1/events` 200 answer's `x-events`, and each `snapshot`'s data
/// (for a supervisor, and for an agent, who sees only itself) validates
/// against the `Snapshot` component, with an agent logged in and a callback
/// waiting so the lists are not empty.
#[test]
fn event_stream_matches_its_schema() {
    let srv = server();
    assert_eq!(
        http(&srv, "POST", "/api/v1/agents/alice/login", Some(SUPER), "").0,
        200
    );
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
    let (_, body) = http(&srv, "GET", "/api/openapi.json", None, "");
    let doc = json(&body);
    let ok = &doc["paths"]["/api/v1/events"]["get"]["responses"]["200"];
    assert!(
        ok["content"].get("text/event-stream").is_some(),
        "the stream's media type is documented: {ok}"
    );
    let events = ok["x-events"]
        .as_object()
        .unwrap_or_else(|| panic!("the events are documented in `x-events`: {ok}"));
    assert_eq!(
        resolve(&doc, &events["snapshot"])["type"],
        "object",
        "`snapshot` has a schema"
    );
    // The stream's own schema (each event as `{event, data}`, as OpenAPI 3.2
    // and Schemathesis read `text/event-stream`) says the same: the event
    // names, and each one's data is JSON valid against its x-events schema.
    let event_schema = resolve(&doc, &ok["content"]["text/event-stream"]["schema"]);
    let names = event_schema["properties"]["event"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("event names are listed: {event_schema}"));
    assert_eq!(names.len(), events.len(), "{names:?} vs {events:?}");
    for name in names {
        let name = name.as_str().expect("event name");
        let data = &event_schema["properties"]["data"];
        assert_eq!(data["contentMediaType"], "application/json");
        assert_eq!(data["contentSchema"], events[name], "`{name}`");
    }
    for token in [SUPER, ALICE] {
        let (head, got) = sse_events(&srv, &format!("/api/v1/events?token={token}"), 2);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("text/event-stream"), "{head}");
        for (name, data) in &got {
            let schema = events
                .get(name)
                .unwrap_or_else(|| panic!("event `{name}` is not in x-events"));
            let ev = serde_json::json!({ "event": name, "data": data });
            check(&doc, event_schema, &ev, "event");
            let v = json(data);
            check(&doc, schema, &v, &format!("{name} event"));
        }
        let v = json(&got[0].1);
        let agents = v["agents"].as_array().expect("agents");
        if token == ALICE {
            assert_eq!(agents.len(), 1, "an agent sees only itself: {v}");
        } else {
            assert!(agents.len() >= 2, "{v}");
        }
        let cb = &v["callbacks"];
        assert_eq!(
            ["pending", "dialing", "completed_today", "failed_today"]
                .iter()
                .filter_map(|k| cb[k].as_i64())
                .sum::<i64>(),
            1,
            "the callback is counted: {v}"
        );
    }
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

/// Check `value` against the schema and panic with what does not match.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Err(e) = validate(doc, schema, value, at) {
        panic!("{e}");
    }
}

/// Whether `value` matches the schema (OpenAPI 3.1, i.e. JSON Schema
/// 2020-12 as the document uses it): `required` fields, `type` (one or a
/// list, `"null"` among them for a nullable value), `oneOf` (exactly one
/// branch), `enum`, `format: date-time`, and no undocumented fields in an
/// object whose properties are listed (unless it allows
/// `additionalProperties`), all the way down.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let fail = |what: String| Err(format!("{at}: {what}"));
    if let Some(branches) = schema["oneOf"].as_array() {
        let matching = branches
            .iter()
            .filter(|b| validate(doc, b, value, at).is_ok())
            .count();
        if matching != 1 {
            return fail(format!("{value} matches {matching} of {branches:?}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return fail(format!("{value} is not one of {allowed:?}"));
        }
    }
    if schema["format"] == "date-time" && value.is_string() {
        let s = value.as_str().unwrap_or("");
        let rfc3339 = s.len() >= 20
            && s.as_bytes().get(10) == Some(&b'T')
            && s.get(..4).is_some_and(|y| y.parse::<u16>().is_ok());
        if !rfc3339 {
            return fail(format!("expected an RFC 3339 date-time, got {value}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let typed = types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !typed {
        return fail(format!("expected {types:?}, got {value}"));
    }
    match value {
        Value::Object(obj) => {
            for req in schema["required"].as_array().into_iter().flatten() {
                let k = req.as_str().unwrap_or("");
                if !obj.contains_key(k) {
                    return fail(format!("required `{k}` missing in {value}"));
                }
            }
            if let Some(props) = schema["properties"].as_object() {
                for (k, sub) in props {
                    if let Some(v) = obj.get(k) {
                        validate(doc, sub, v, &format!("{at}.{k}"))?;
                    }
                }
                if schema.get("additionalProperties").is_none() {
                    if let Some(k) = obj.keys().find(|k| !props.contains_key(*k)) {
                        return fail(format!("`{k}` is not documented (in {value})"));
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                validate(doc, &schema["items"], it, &format!("{at}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The validator reads the document's nullable fields as OpenAPI 3.1 writes
/// them, and refuses what does not match.
#[test]
fn the_validator_reads_openapi_3_1() {
    let doc = serde_json::json!({ "components": { "schemas": {
        "C": { "type": "object", "required": ["a"], "properties": { "a": { "type": "integer" } } },
        "T": { "type": "object", "required": ["s", "c"], "properties": {
            "s": { "type": ["string", "null"] },
            "c": { "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/C" }] },
            "e": { "type": "string", "enum": ["x"] }
        } }
    } } });
    let t = &doc["components"]["schemas"]["T"];
    let ok = |v: Value| validate(&doc, t, &v, "t").is_ok();
    assert!(ok(serde_json::json!({ "s": null, "c": null })));
    assert!(ok(
        serde_json::json!({ "s": "x", "c": { "a": 1 }, "e": "x" })
    ));
    assert!(
        !ok(serde_json::json!({ "s": 1, "c": null })),
        "a number is not a string"
    );
    assert!(!ok(serde_json::json!({ "s": null })), "`c` is required");
    assert!(!ok(serde_json::json!({ "s": null, "c": { "a": "1" } })));
    assert!(!ok(serde_json::json!({ "s": null, "c": null, "e": "y" })));
    assert!(
        !ok(serde_json::json!({ "s": null, "c": null, "z": 1 })),
        "undocumented"
    );
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
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 12, "every endpoint is documented");
    let mut checked = 0;
    for (path, ops) in paths {
        let Some(get) = ops.get("get") else { continue };
        if path.contains('{')
            || path.ends_with("/events")
            || path.ends_with("/phone")
            || path.ends_with("/webcall")
        {
            continue; // needs an id / is a stream or a WebSocket (tested elsewhere)
        }
        let (status, body) = http(&srv, "GET", path, Some(ADMIN), "");
        assert_eq!(status, 200, "GET {path}: {body}");
        let content = &get["responses"]["200"]["content"];
        let Some(media) = content.get("application/json") else {
            // The pages, the style sheet, /healthz and /metrics: text.
            assert!(!body.is_empty(), "GET {path}: empty");
            continue;
        };
        check(&doc, &media["schema"], &json(&body), path);
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} paths checked");
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

/// The router and the document are made from one list of routes; here
/// each documented operation is answered by its handler (not by the JSON
/// 404 of unrouted paths or the 405 of wrong methods), and a path the
/// document does not have is not served.
#[test]
fn every_documented_operation_is_routed_and_nothing_else_is() {
    let srv = server();
    let (_, body) = http(&srv, "GET", "/api/openapi.json", None, "");
    let doc = json(&body);
    let mut operations = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{id}", "alice").replace("{action}", "login");
        for (method, op) in ops.as_object().expect("path item") {
            // Without a token, so that nothing changes: the operations that
            // need one answer 401 from their handler.
            let (status, body) = http(&srv, &method.to_uppercase(), &concrete, None, "");
            let fallback = status == 405 || body.contains("\"no such path\"");
            assert!(!fallback, "{method} {path} is not routed: {status} {body}");
            let open = op["security"] == serde_json::json!([{}]);
            let expected = match (method.as_str(), path.as_str()) {
                // The public web call: a WebSocket (a plain GET is not an
                // upgrade), and a token that needs a number.
                ("get", "/api/v1/webcall") => 426,
                ("post", "/api/v1/webcall/tokens") => 422,
                _ if open => 200,
                _ => 401,
            };
            assert_eq!(status, expected, "{method} {path}: {body}");
            operations += 1;
        }
    }
    assert!(operations >= 22, "{operations} operations");
    for (method, path) in [("GET", "/api/v1/nothing"), ("PUT", "/api/v1/agents")] {
        let (status, _) = http(&srv, method, path, Some(ADMIN), "");
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
    }
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
    // White space is not an empty filter (Schemathesis sent a form feed).
    let (status, body) = http(&srv, "GET", "/api/v1/callbacks?state=%0C", Some(SUPER), "");
    assert_eq!(status, 422, "{body}");
}

/// One raw HTTP request; returns the whole response head and the body.
fn raw(srv: &Server, request: &[u8]) -> (String, String) {
    let mut s = std::net::TcpStream::connect(srv.api).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // The server may answer (and close) before a large body is sent.
    let _ = s.write_all(request);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.to_string(), body.to_string())
}

/// Extractor failures (axum's rejections were plain text) and requests no
/// handler takes get the documented JSON error too: a path that is not
/// UTF-8, a body over the size limit, an unknown path, a method a path
/// does not take (with `Allow`); and a `limit` outside 1-1000 is refused
/// instead of silently clamped.
#[test]
fn extractor_failures_and_unrouted_requests_are_json_errors() {
    let srv = server();
    let (_, body) = http(&srv, "GET", "/api/openapi.json", None, "");
    let doc = json(&body);
    let error_schema = &doc["components"]["schemas"]["Error"];
    let expect = |head: &str, body: &str, status: u16, code: &str| {
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "expected {status}: {head}\n{body}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let v = json(body);
        check(&doc, error_schema, &v, "error");
        assert_eq!(v["code"], code, "{body}");
    };
    let auth = format!("Authorization: Bearer {ADMIN}\r\n");
    let host = srv.api;
    let get = |path: &str| {
        raw(
            &srv,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    let (head, body) = get("/api/v1/callbacks/%FF");
    expect(&head, &body, 400, "bad_request");
    let (head, body) = get("/api/v1/agents/%C3/login");
    expect(&head, &body, 405, "method_not_allowed");
    let (head, body) = raw(
        &srv,
        format!("POST /api/v1/agents/%C3/login HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    expect(&head, &body, 400, "bad_request");
    let (head, body) = get("/api/v1/nothing-here");
    expect(&head, &body, 404, "not_found");
    let (head, body) = raw(
        &srv,
        format!("DELETE /api/v1/me HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    expect(&head, &body, 405, "method_not_allowed");
    assert!(
        head.to_ascii_lowercase().contains("allow: get"),
        "405 names the methods: {head}"
    );
    let big = format!(
        r#"{{"number":"+15551230001","queue":"operator","context":"{}"}}"#,
        "x".repeat(3 << 20)
    );
    let (head, body) = raw(
        &srv,
        format!(
            "POST /api/v1/callbacks HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
            big.len()
        )
        .as_bytes(),
    );
    expect(&head, &body, 413, "too_large");
    assert!(
        doc["paths"]["/api/v1/callbacks"]["post"]["responses"]
            .get("413")
            .is_some(),
        "413 is documented"
    );
    for path in [
        "/api/v1/callbacks?limit=0",
        "/api/v1/callbacks?limit=1001",
        "/api/v1/cdrs?limit=-5",
    ] {
        let (status, body) = http(&srv, "GET", path, Some(ADMIN), "");
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(json(&body)["code"], "invalid", "{path}: {body}");
    }
    assert_eq!(
        http(&srv, "GET", "/api/v1/cdrs?limit=1000", Some(ADMIN), "").0,
        200
    );
}
