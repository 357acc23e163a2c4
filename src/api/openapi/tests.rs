use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::{list_values, router_and_document};

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src/api") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push((path.display().to_string(), text));
        }
    }
}

/// The router is made from [`super::routes`] alone: no file of the API adds
/// a route, a nested router or a service any other way, so a route cannot
/// exist without its operation in the document (and `utoipa-axum` routes
/// every operation the list documents).
#[test]
fn routes_are_added_only_through_the_list() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api"),
        &mut files,
    );
    assert!(files.len() > 10, "{} files", files.len());
    // Spelled in pieces so that this file does not match itself.
    let calls: Vec<String> = ["route", "route_service", "nest", "nest_service", "merge"]
        .iter()
        .map(|m| format!(".{m}("))
        .chain([format!("{}::new(", "Router")])
        .collect();
    for (file, text) in &files {
        for call in &calls {
            assert!(
                !text.contains(call.as_str()),
                "{file} calls `{call}`: add routes with `routes!` in `openapi::routes`, \
                 so that the OpenAPI document has them"
            );
        }
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((path.clone(), method.clone(), op));
        }
    }
    out
}

/// The statuses every handler of a kind can answer are documented: `401`
/// and `403` where a token is needed, `400` where a path, query string or
/// body is read, `413` and `422` where a body is; every error answer is the
/// `Error` object (or, for a refused reload, an object with its fields).
#[test]
fn every_operation_documents_the_statuses_its_extractors_answer() {
    let (_, doc) = router_and_document();
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert!(ops.len() >= 22, "{} operations", ops.len());
    let mut ids = BTreeSet::new();
    for (path, method, op) in &ops {
        let at = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: operationId"));
        assert!(ids.insert(id.to_string()), "{at}: operationId {id} twice");
        assert!(op["summary"].is_string(), "{at}: summary");
        let responses = op["responses"].as_object().expect("responses");
        let has = |s: &str| responses.contains_key(s);
        let open = op["security"] == serde_json::json!([{}]);
        if !open {
            assert!(has("401") && has("403"), "{at}: 401 and 403");
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        if !params.is_empty() {
            assert!(has("400"), "{at}: 400 for a malformed path or query string");
        }
        for p in &params {
            assert!(
                p["description"].is_string() || p["schema"]["description"].is_string(),
                "{at}: {p} is described"
            );
            if p["in"] == "path" {
                assert!(path.contains(&format!("{{{}}}", p["name"].as_str().unwrap_or(""))));
            }
        }
        if op.get("requestBody").is_some() {
            for s in ["400", "413", "422"] {
                assert!(has(s), "{at}: {s} for a body");
            }
        }
        for (status, r) in responses {
            assert!(r["description"].is_string(), "{at} {status}: description");
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &r["content"]["application/json"]["schema"];
                let name = schema["$ref"].as_str().unwrap_or("");
                let error = &doc["components"]["schemas"][name.rsplit('/').next().unwrap_or("")];
                let required: Vec<&str> = error["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                assert!(
                    required.contains(&"error") && required.contains(&"code"),
                    "{at} {status}: the answer is an error with a code: {schema}"
                );
            }
        }
    }
}

/// Every schema a document names is in it.
#[test]
fn every_reference_resolves() {
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let (_, doc) = router_and_document();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20);
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}: a component schema"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} is not in the document"
        );
    }
    let events = &doc["paths"]["/api/v1/events"]["get"]["responses"]["200"];
    assert_eq!(
        events["x-events"]["snapshot"]["$ref"],
        "#/components/schemas/Snapshot"
    );
}

#[test]
fn the_served_document_lists_queues_and_agents() {
    let (_, mut doc) = router_and_document();
    let (sales, alice) = ("sales".to_string(), "alice".to_string());
    list_values(&mut doc, &[&sales], &[&alice]);
    assert_eq!(
        doc["components"]["schemas"]["NewCallback"]["properties"]["queue"]["enum"],
        serde_json::json!(["sales"])
    );
    let params = &doc["paths"]["/api/v1/agents/{id}/{action}"]["post"]["parameters"];
    let id = params
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "id"))
        .expect("id");
    assert_eq!(id["schema"]["enum"], serde_json::json!(["alice"]));
}
