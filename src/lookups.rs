//! Dialplan `lookup` nodes' HTTP requests: one request per lookup (HTTP/1.1
//! over hyper's client, a new connection each time), the whole of it within
//! the lookup's `timeout_ms`, and a circuit breaker per lookup
//! (`ringback_dialplan::lookup::Breaker`, the rules; here only the clock and
//! the lock). The call task asks and feeds the answer to its core; what the
//! answer means is the dialplan interpreter's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use ringback_dialplan::lookup::{fill_url, query, Breaker, MAX_ANSWER_BYTES};

use crate::config::{LookupConfig, LookupMethod};
use crate::metrics;

/// The configured lookups and their breakers.
pub struct Lookups {
    defs: BTreeMap<String, LookupConfig>,
    breakers: Mutex<HashMap<String, Breaker>>,
}

impl Lookups {
    /// The lookups of the configuration (`[lookups.<name>]`).
    pub fn new(defs: BTreeMap<String, LookupConfig>) -> Arc<Lookups> {
        let breakers = defs
            .iter()
            .map(|(name, d)| {
                let b = Breaker::new(d.breaker_failures, Duration::from_secs(d.breaker_open_secs));
                (name.clone(), b)
            })
            .collect();
        Arc::new(Lookups {
            defs,
            breakers: Mutex::new(breakers),
        })
    }

    /// Ask lookup `name` for `caller` with `vars`: the answer's body (2xx),
    /// or why there is none. Always returns within the lookup's timeout.
    pub async fn ask(
        &self,
        name: &str,
        caller: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let Some(def) = self.defs.get(name) else {
            return Err(format!("no [lookups.{name}] in the configuration"));
        };
        if !self.breaker(name, |b| b.allow(Instant::now())) {
            metrics::count_lookup(name, "breaker_open");
            return Err("circuit breaker open".into());
        }
        let started = Instant::now();
        let limit = Duration::from_millis(def.timeout_ms);
        let result = match tokio::time::timeout(limit, request(def, caller, vars)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", def.timeout_ms)),
        };
        self.breaker(name, |b| b.record(result.is_ok(), Instant::now()));
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        metrics::count_lookup(name, outcome);
        tracing::info!(
            lookup = %name,
            outcome,
            took_ms = started.elapsed().as_millis() as u64,
            error = result.as_ref().err().map(String::as_str),
            "lookup"
        );
        result
    }

    fn breaker<T>(&self, name: &str, f: impl FnOnce(&mut Breaker) -> T) -> T {
        let mut map = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let b = map
            .entry(name.to_string())
            .or_insert_with(|| Breaker::new(1, Duration::ZERO));
        f(b)
    }
}

/// One request: GET with the values in the query, or POST with them in a
/// JSON body.
async fn request(
    def: &LookupConfig,
    caller: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut values = vars.clone();
    values.insert("caller".into(), caller.to_string());
    let url = fill_url(&def.url.0, &values);
    let (method, url, body) = match def.method {
        LookupMethod::Get => (Method::GET, query(&url, &values), String::new()),
        LookupMethod::Post => {
            let body = serde_json::json!({ "caller": caller, "vars": vars }).to_string();
            (Method::POST, url, body)
        }
    };
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let host = uri.host().ok_or("the URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| host.clone());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {authority}: {e}"))?;
    // The connection is driven beside the request; it ends with the request
    // (or with the timeout that drops both).
    let conn = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, authority.as_str())
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("ringback/", env!("CARGO_PKG_VERSION")),
        );
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in &def.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request to {authority} failed: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("{authority} answered {status}"));
        }
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| "the answer is not UTF-8".to_string())
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn lookups(text: &str) -> Arc<Lookups> {
        let cfg = Config::parse(std::path::Path::new("r.toml"), text).expect("config");
        Lookups::new(cfg.lookups)
    }

    /// A one-shot HTTP server: answers `answers` connections with `reply`,
    /// returns the requests it read.
    async fn serve(
        reply: &'static str,
        answers: usize,
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..answers {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                // Read the head and whatever body Content-Length announces.
                loop {
                    let n = s.read(&mut buf).await.expect("read");
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if rest.len() >= len {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                seen.push(String::from_utf8_lossy(&got).to_string());
                s.write_all(reply.as_bytes()).await.expect("write");
            }
            seen
        });
        (port, task)
    }

    #[tokio::test]
    async fn get_carries_caller_and_variables_and_returns_the_body() {
        let (port, server) = serve(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 19\r\n\r\n{\"status\":\"ready\"}\n",
            1,
        )
        .await;
        let l = lookups(&format!(
            "[lookups.orders]\nurl = \"http://127.0.0.1:{port}/orders/{{order}}\"\nheaders = {{ x-api-key = \"k1\" }}\n"
        ));
        let vars = BTreeMap::from([("order".to_string(), "45 12".to_string())]);
        let body = l.ask("orders", "+15550123", &vars).await;
        assert_eq!(body.as_deref(), Ok("{\"status\":\"ready\"}\n"));
        let seen = server.await.expect("server");
        let head = seen[0].lines().next().unwrap_or_default().to_string();
        assert_eq!(
            head,
            "GET /orders/45%2012?caller=%2B15550123&order=45%2012 HTTP/1.1"
        );
        assert!(seen[0].contains("x-api-key: k1"), "{}", seen[0]);
    }

    #[tokio::test]
    async fn post_sends_json_and_an_error_status_is_a_failure() {
        let (port, server) = serve("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", 1).await;
        let l = lookups(&format!(
            "[lookups.o]\nurl = \"http://127.0.0.1:{port}/o\"\nmethod = \"POST\"\n"
        ));
        let vars = BTreeMap::from([("order".to_string(), "7".to_string())]);
        let e = l.ask("o", "+1555", &vars).await.expect_err("404");
        assert!(e.contains("404"), "{e}");
        let seen = server.await.expect("server");
        assert!(seen[0].starts_with("POST /o HTTP/1.1"), "{}", seen[0]);
        assert!(
            seen[0].ends_with(r#"{"caller":"+1555","vars":{"order":"7"}}"#),
            "{}",
            seen[0]
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_failures_open_the_breaker() {
        // Accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hold = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                kept.push(s);
            }
        });
        let l = lookups(&format!(
            "[lookups.slow]\nurl = \"http://127.0.0.1:{port}/\"\ntimeout_ms = 300\nbreaker_failures = 2\nbreaker_open_secs = 60\n"
        ));
        let vars = BTreeMap::new();
        for _ in 0..2 {
            let t = Instant::now();
            let e = l.ask("slow", "1", &vars).await.expect_err("timeout");
            assert!(e.contains("within 300 ms"), "{e}");
            assert!(
                t.elapsed() < Duration::from_millis(1000),
                "{:?}",
                t.elapsed()
            );
        }
        let t = Instant::now();
        let e = l.ask("slow", "1", &vars).await.expect_err("open");
        assert_eq!(e, "circuit breaker open");
        assert!(t.elapsed() < Duration::from_millis(50));
        let e = l.ask("nope", "1", &vars).await.expect_err("unknown");
        assert!(e.contains("[lookups.nope]"), "{e}");
        hold.abort();
    }
}
