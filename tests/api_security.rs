//! The API's secure defaults against a real server: a generated admin
//! token on first start (printed once, kept in a 0600 file, required),
//! `api.open`, the `Host` / `Origin` allow-list, token rotation on SIGHUP,
//! and secrets read from files and environment variables.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{scenario, Server, ServerOpts, Sipp};

/// One HTTP/1.1 request with extra headers (a `Host` among them replaces
/// the server's own address); returns (status, body).
fn request(
    srv: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(srv.api).expect("connect api");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let own = srv.api.to_string();
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or(own.as_str(), |(_, v)| v);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(
        s,
        "{head}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

fn get_with(srv: &Server, path: &str, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    request(srv, "GET", path, &[("Authorization", &auth)], "")
}

fn code(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["code"].as_str().unwrap_or_default().to_string()
}

/// A `key=value` word of the ready line.
fn ready_value<'a>(srv: &'a Server, key: &str) -> Option<&'a str> {
    srv.ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn a_fresh_server_generates_an_admin_token_prints_it_once_and_requires_it() {
    let srv = Server::start(ServerOpts {
        keep_api_defaults: true,
        ..ServerOpts::default()
    });
    let token = ready_value(&srv, "api_token")
        .unwrap_or_else(|| panic!("no api_token= in the ready line: {}", srv.ready))
        .to_string();
    let file = srv.dir.path().join("data/api-token");
    assert_eq!(
        ready_value(&srv, "api_token_file"),
        Some(file.to_str().unwrap()),
        "{}",
        srv.ready
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    let (status, body) = request(&srv, "GET", "/api/v1/agents", &[], "");
    assert_eq!(
        (status, code(&body).as_str()),
        (401, "unauthorized"),
        "{body}"
    );
    let (status, _) = get_with(&srv, "/api/v1/agents", "not-the-token");
    assert_eq!(status, 401);
    assert_eq!(get_with(&srv, "/api/v1/agents", &token).0, 200);
    let (status, body) = get_with(&srv, "/api/v1/me", &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"admin\""), "{body}");
    // The secret is on stdout once, never in the log.
    assert!(!srv.log().contains(&token), "token in the log");

    // A restart reads the same token and prints only where it is.
    let srv = srv.restart();
    assert_eq!(ready_value(&srv, "api_token"), None, "{}", srv.ready);
    assert_eq!(
        ready_value(&srv, "api_token_file"),
        Some(srv.dir.path().join("data/api-token").to_str().unwrap()),
        "{}",
        srv.ready
    );
    assert!(!srv.ready.contains(&token));
    assert_eq!(get_with(&srv, "/api/v1/agents", &token).0, 200);
    assert_eq!(request(&srv, "GET", "/api/v1/agents", &[], "").0, 401);
    assert!(!srv.log().contains(&token), "token in the log");
}

#[test]
fn an_open_api_needs_no_token_and_creates_none() {
    // The harness's default: `api.open = true`.
    let srv = Server::start_demo();
    assert_eq!(ready_value(&srv, "api_open"), Some("true"), "{}", srv.ready);
    assert_eq!(ready_value(&srv, "api_token"), None);
    let (status, body) = request(&srv, "GET", "/api/v1/me", &[], "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"admin\""), "{body}");
    assert!(!srv.dir.path().join("data/api-token").exists());
}

#[test]
fn foreign_origins_and_hosts_are_refused() {
    let srv = Server::start(ServerOpts {
        api_extra: "allowed_hosts = [\"ringback.example.com\"]\n\
                    allowed_origins = [\"https://ops.example.com\"]\n"
            .into(),
        extra_config: "\n[agents.alice]\npassword = \"alice-secret\"\nqueues = [\"operator\"]\n"
            .into(),
        ..ServerOpts::default()
    });
    let own_origin = format!("http://{}", srv.api);
    let login = "/api/v1/agents/alice/login";
    let reload = "/api/v1/dialplans/reload";
    let alice_before = alice_state(&srv);
    // CSRF: a page elsewhere posts to the API.
    let (status, body) = request(
        &srv,
        "POST",
        login,
        &[("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(
        (status, code(&body).as_str()),
        (403, "forbidden_origin"),
        "{body}"
    );
    assert!(body.contains("api.allowed_origins"), "{body}");
    let (status, body) = request(&srv, "POST", reload, &[("Origin", "null")], "");
    assert_eq!(
        (status, code(&body).as_str()),
        (403, "forbidden_origin"),
        "{body}"
    );
    // DNS rebinding: the browser thinks it talks to evil.example; reads are
    // refused too.
    for (method, path) in [
        ("POST", login),
        ("GET", "/api/v1/agents"),
        ("GET", "/api/v1/me"),
    ] {
        let (status, body) = request(&srv, method, path, &[("Host", "evil.example")], "");
        assert_eq!(
            (status, code(&body).as_str()),
            (403, "forbidden_origin"),
            "{method} {path}: {body}"
        );
    }
    let (status, _) = request(&srv, "GET", "/api/v1/me", &[("Host", "localhost:1")], "");
    assert_eq!(status, 403, "another port is another site");
    // Nothing above changed alice.
    assert_eq!(alice_state(&srv), alice_before);

    // Allowed: our own origin, localhost on our port, configured names.
    let localhost = format!("localhost:{}", srv.api.port());
    for headers in [
        vec![("Origin", own_origin.as_str())],
        vec![("Host", localhost.as_str())],
        vec![("Origin", "https://ops.example.com")],
        vec![
            ("Host", "ringback.example.com"),
            ("Origin", "https://ringback.example.com"),
        ],
    ] {
        let (status, body) = request(&srv, "POST", reload, &headers, "");
        assert_eq!(status, 200, "{headers:?}: {body}");
    }
    let (status, body) = request(&srv, "POST", login, &[("Origin", &own_origin)], "");
    assert_eq!(status, 200, "{body}");
    assert_ne!(alice_state(&srv), alice_before);
    let (status, _) = request(
        &srv,
        "GET",
        "/api/v1/agents",
        &[("Host", "ringback.example.com")],
        "",
    );
    assert_eq!(status, 200);
    // The pages and health check are not behind the allow-list.
    assert_eq!(
        request(&srv, "GET", "/healthz", &[("Host", "evil.example")], "").0,
        200
    );
}

fn alice_state(srv: &Server) -> String {
    let (_, body) = request(srv, "GET", "/api/v1/agents", &[], "");
    let v: serde_json::Value = serde_json::from_str(&body).expect("agents JSON");
    v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "alice"))
        .map(|a| a["state"].to_string())
        .unwrap_or_default()
}

/// Wait until the log says `needle` `n` times.
fn wait_log(srv: &Server, needle: &str, n: usize) {
    assert!(
        srv.wait_log(needle, n, Duration::from_secs(10)),
        "no {needle:?} ×{n} in the log:\n{}",
        srv.log()
    );
}

#[test]
fn tokens_rotate_on_sighup_without_a_restart() {
    const OLD: &str = "old-admin-token-0123456789";
    const NEW: &str = "new-admin-token-0123456789";
    const NEWER: &str = "newer-admin-token-0123456789";
    let srv = Server::start(ServerOpts {
        extra_config: format!("\n[[api.tokens]]\ntoken = \"{OLD}\"\nrole = \"admin\"\n"),
        ..ServerOpts::default()
    });
    assert_eq!(get_with(&srv, "/api/v1/agents", OLD).0, 200);
    assert_eq!(request(&srv, "GET", "/api/v1/agents", &[], "").0, 401);
    let before = srv.ready.clone();

    // The config now reads the token from a file.
    let cfg_path = srv.dir.path().join("ringback.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let cfg = cfg.replace(
        &format!("token = \"{OLD}\""),
        "token_file = \"secrets/admin-token\"",
    );
    std::fs::create_dir_all(srv.dir.path().join("secrets")).unwrap();
    std::fs::write(
        srv.dir.path().join("secrets/admin-token"),
        format!("{NEW}\n"),
    )
    .unwrap();
    std::fs::write(&cfg_path, cfg).unwrap();
    srv.signal("HUP");
    wait_log(&srv, "API tokens reloaded", 1);
    assert_eq!(get_with(&srv, "/api/v1/agents", OLD).0, 401);
    assert_eq!(get_with(&srv, "/api/v1/agents", NEW).0, 200);

    // Rotating the file's content is enough.
    std::fs::write(srv.dir.path().join("secrets/admin-token"), NEWER).unwrap();
    srv.signal("HUP");
    wait_log(&srv, "API tokens reloaded", 2);
    assert_eq!(get_with(&srv, "/api/v1/agents", NEW).0, 401);
    assert_eq!(get_with(&srv, "/api/v1/agents", NEWER).0, 200);

    // A broken file keeps the tokens in force.
    std::fs::remove_file(srv.dir.path().join("secrets/admin-token")).unwrap();
    srv.signal("HUP");
    wait_log(&srv, "API tokens not reloaded", 1);
    assert!(
        srv.log().contains("No such file or directory"),
        "{}",
        srv.log()
    );
    assert_eq!(get_with(&srv, "/api/v1/agents", NEWER).0, 200);
    // Same process throughout.
    assert_eq!(srv.ready, before);
}

#[test]
fn secrets_come_from_files_and_environment_variables() {
    common::require_sipp();
    const TOKEN: &str = "env-supervisor-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("alice-password");
    std::fs::write(&pw, "alice-from-file\n").unwrap();
    let srv = Server::start(ServerOpts {
        extra_config: format!(
            "\n[[api.tokens]]\ntoken_env = \"RINGBACK_TEST_SUPERVISOR_TOKEN\"\nrole = \"supervisor\"\n\n\
             [agents.alice]\npassword_file = \"{}\"\nqueues = [\"operator\"]\n\n\
             [trunks.carrier]\naddress = \"127.0.0.1:9\"\nusername = \"acct\"\n\
             password_env = \"RINGBACK_TEST_TRUNK_PASSWORD\"\n",
            pw.display()
        ),
        env: vec![
            ("RINGBACK_TEST_SUPERVISOR_TOKEN".into(), TOKEN.into()),
            ("RINGBACK_TEST_TRUNK_PASSWORD".into(), "trunk-pw".into()),
        ],
        ..ServerOpts::default()
    });
    let (status, body) = get_with(&srv, "/api/v1/me", TOKEN);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"supervisor\""), "{body}");
    // alice's phone registers with the password from the file, and not
    // with another.
    Sipp::from_xml(&scenario::register("alice", "wrong", 300, 403))
        .run(srv.sip, "alice")
        .assert_ok("REGISTER with a wrong password");
    Sipp::from_xml(&scenario::register("alice", "alice-from-file", 300, 200))
        .run(srv.sip, "alice")
        .assert_ok("REGISTER with the file's password");
    // The generated token is not made when tokens are configured.
    assert!(!srv.dir.path().join("data/api-token").exists());
}

/// `ringback serve` with this config: (exit code, stderr); it must not start.
fn serve_fails(dir: &Path, config: &str) -> (Option<i32>, String) {
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringback"))
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .env_remove("RINGBACK_TEST_UNSET_SECRET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ringback");
    let until = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringback started despite a missing secret");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

#[test]
fn a_missing_secret_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope/pw");
    let (code, err) = serve_fails(
        dir.path(),
        &format!(
            "[trunks.x]\naddress = \"127.0.0.1:9\"\nusername = \"u\"\npassword_file = \"{}\"\n",
            missing.display()
        ),
    );
    let want = format!(
        "{}: trunk \"x\": password_file {}: No such file or directory",
        dir.path().join("config.toml").display(),
        missing.display()
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&want), "want {want:?} in:\n{err}");

    let (code, err) = serve_fails(
        dir.path(),
        "[[api.tokens]]\ntoken_env = \"RINGBACK_TEST_UNSET_SECRET\"\nrole = \"admin\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("api.tokens[0]: token_env RINGBACK_TEST_UNSET_SECRET: not set"),
        "{err}"
    );
}
