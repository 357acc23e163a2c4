//! Shared harness for interop tests: start a real `ringback serve` on free
//! ports with its own data directory, drive it with real SIPp, read the
//! outcome from its SQLite store.
//!
//! Every test owns its server and files, so tests run in parallel and can
//! be repeated; everything is killed (by PID) and deleted on drop.

#![allow(dead_code)]

pub mod browser;
pub mod callback_checks;
pub mod certs;
pub mod peer;
pub mod pg;
pub mod scenario;
pub mod survey;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Repository root (where `prompts/` and `dialplans/` live).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `probe` every `every` until it returns `Some`, and returns that
/// value; once `timeout` (counted from this call) has passed, panics with
/// `describe()`.
///
/// Tests wait for a server, a phone or the store to reach a state, and
/// every such wait is the same loop: probe, stop on success, fail past the
/// deadline, sleep. Keeping it here keeps that order the same everywhere:
/// the probe runs once more after a sleep that crossed the deadline, so a
/// slow machine still sees the state it waited for before the test fails.
/// `describe` runs only then, so it may read the whole server log or the
/// current state again at no cost while polling.
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
    describe: impl FnOnce() -> String,
) -> T {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= until {
            panic!("{}", describe());
        }
        std::thread::sleep(every);
    }
}

/// A running server.
pub struct Server {
    child: Child,
    /// SIP address (UDP and TCP).
    pub sip: SocketAddr,
    /// SIP-over-TLS address, when the config set `sip.tls_listen`.
    pub tls: Option<SocketAddr>,
    /// HTTP address (metrics, health).
    pub api: SocketAddr,
    /// Its private directory (config, dialplans, database).
    pub dir: tempfile::TempDir,
    /// Everything it logged so far.
    pub log: Arc<Mutex<String>>,
    /// Its ready line (the first line on stdout).
    pub ready: String,
    /// Environment variables it was started with (kept for restarts).
    env: Vec<(String, String)>,
    /// Bearer token [`Server::http_get`] and [`Server::http_post`] send
    /// (see [`Server::with_bearer`]).
    bearer: Option<String>,
}

/// How to start a server.
#[derive(Default)]
pub struct ServerOpts {
    /// Extra TOML appended to the generated config (top-level keys first!).
    pub extra_config: String,
    /// Dialplans to write into the server's own `dialplans/` (name, text).
    /// Empty = copy the shipped demo dialplans.
    pub dialplans: Vec<(String, String)>,
    /// Answer after this many ms (180 first).
    pub answer_delay_ms: u64,
    /// RTP timeout.
    pub rtp_timeout_secs: u64,
    /// Extra lines inside `[sip]`.
    pub sip_extra: String,
    /// Store URL (default: a SQLite file in the server's directory).
    pub database_url: Option<String>,
    /// Keep the API's own defaults (a generated admin token, required).
    /// Otherwise the harness writes `api.open = true` unless
    /// `extra_config` has `[[api.tokens]]`, so tests can call the API
    /// without a token.
    pub keep_api_defaults: bool,
    /// Environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// Extra lines inside `[api]`.
    pub api_extra: String,
    /// The prompts directory (default: the shipped `prompts/`).
    pub prompts_dir: Option<PathBuf>,
}

/// Each server gets its own RTP range so parallel tests rarely collide
/// (collisions are still handled: busy ports are skipped).
static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

impl Server {
    /// Start with the shipped demo.
    pub fn start_demo() -> Server {
        Server::start(ServerOpts::default())
    }

    /// Start a server and wait for its ready line.
    pub fn start(opts: ServerOpts) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Server::start_in(dir, opts)
    }

    /// SIGKILL the server (no clean-up of any kind), as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a new server process on the same data directory (after a
    /// crash): same config, dialplans and database; new ports.
    pub fn restart(mut self) -> Server {
        self.kill9();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        Server::spawn_in(dir, std::mem::take(&mut self.env))
    }

    fn start_in(dir: tempfile::TempDir, opts: ServerOpts) -> Server {
        let plans = dir.path().join("dialplans");
        std::fs::create_dir_all(&plans).expect("mkdir dialplans");
        if opts.dialplans.is_empty() {
            for e in std::fs::read_dir(repo().join("dialplans")).expect("read dialplans") {
                let e = e.expect("entry");
                if e.path().extension().is_some_and(|x| x == "toml") {
                    std::fs::copy(e.path(), plans.join(e.file_name())).expect("copy dialplan");
                }
            }
        } else {
            for (name, text) in &opts.dialplans {
                std::fs::write(plans.join(name), text).expect("write dialplan");
            }
        }
        // RTP ranges stay below the kernel's ephemeral range (32768+), from
        // which `free_udp_port` picks SIPp's ports: no collisions between a
        // server's RTP and another test's phone.
        let slot = NEXT_RANGE.fetch_add(1, Ordering::Relaxed) % 20;
        let pid_part = (std::process::id() % 5) as u16;
        let port_min = 12_000 + ((slot + pid_part * 4) % 20) * 1_000;
        let cfg = format!(
            r#"operator_queue = "operator"
{extra_top}
[sip]
listen = "127.0.0.1:0"
answer_delay_ms = {delay}
{sip_extra}

[rtp]
ip = "127.0.0.1"
port_min = {port_min}
port_max = {port_max}
timeout_secs = {rtp_timeout}
threads = 1

[api]
listen = "127.0.0.1:0"
{api_open}
{api_extra}

[dialplans]
dir = "dialplans"
watch = true

[prompts]
dir = "{prompts}"

[database]
url = "{database_url}"

{default_queues}
{extra_tables}
"#,
            sip_extra = opts.sip_extra,
            api_extra = opts.api_extra,
            api_open = if opts.keep_api_defaults || opts.extra_config.contains("[[api.tokens]]") {
                ""
            } else {
                "open = true"
            },
            database_url = opts
                .database_url
                .clone()
                .unwrap_or_else(|| "sqlite://data/ringback.db".into()),
            default_queues = ["operator", "billing", "support"]
                .iter()
                .filter(|q| !opts.extra_config.contains(&format!("[queues.{q}]")))
                .map(|q| format!("[queues.{q}]\n"))
                .collect::<String>(),
            extra_top = top_level(&opts.extra_config),
            extra_tables = tables(&opts.extra_config),
            delay = opts.answer_delay_ms,
            port_max = port_min + 998,
            rtp_timeout = opts.rtp_timeout_secs,
            prompts = opts
                .prompts_dir
                .clone()
                .unwrap_or_else(|| repo().join("prompts"))
                .display(),
        );
        let cfg_path = dir.path().join("ringback.toml");
        std::fs::write(&cfg_path, cfg).expect("write config");
        Server::spawn_in(dir, opts.env)
    }

    fn spawn_in(dir: tempfile::TempDir, env: Vec<(String, String)>) -> Server {
        let cfg_path = dir.path().join("ringback.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringback"))
            .arg("--config")
            .arg(&cfg_path)
            .arg("serve")
            .env("RINGBACK_LOG", "info,ringback=debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringback");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let l2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("RINGBACK_TEST_VERBOSE").is_some() {
                    eprintln!("[ringback] {line}");
                }
                if let Ok(mut l) = l2.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let ready = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ringback did not become ready; log:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        let sip = ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("sip="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected ready line: {ready}"));
        let api = ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("api="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no api= in ready line: {ready}"));
        let tls = ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("tls="))
            .and_then(|a| a.parse().ok());
        Server {
            child,
            sip,
            tls,
            api,
            dir,
            log,
            ready,
            env,
            bearer: None,
        }
    }

    /// Send `token` with [`Server::http_get`] and [`Server::http_post`]
    /// (a server whose API has tokens, so is not open).
    pub fn with_bearer(mut self, token: &str) -> Server {
        self.bearer = Some(token.to_string());
        self
    }

    fn auth_header(&self) -> String {
        self.bearer
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default()
    }

    /// Path of the SQLite store.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data/ringback.db")
    }

    /// The server's dialplan directory.
    pub fn dialplans(&self) -> PathBuf {
        self.dir.path().join("dialplans")
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Wait until the log contains `needle` `n` times.
    pub fn wait_log(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.log().matches(needle).count() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// GET a path from the HTTP surface; returns (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.http_get_head(path, "");
        (status, body)
    }

    /// GET a path; returns (status, the value of response header `name`,
    /// body).
    pub fn http_get_head(&self, path: &str, name: &str) -> (u16, Option<String>, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.api).expect("connect api");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{}Connection: close\r\n\r\n",
            self.api,
            self.auth_header()
        )
        .expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let value = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        });
        (status, value, body.to_string())
    }

    /// POST a JSON body; returns (status, body).
    pub fn http_post(&self, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.api).expect("connect api");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.api,
            self.auth_header(),
            body.len()
        )
        .expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
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

    /// A Prometheus sample's value from `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http_get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in:\n{body}"))
    }

    /// Send a signal to the server.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Wait until a CDR row for `call_id` has a final disposition.
    pub fn wait_cdr(&self, call_id: &str, timeout: Duration) -> Cdr {
        poll_until(
            timeout,
            Duration::from_millis(50),
            || {
                self.cdrs().into_iter().find(|c| {
                    c.call_id == call_id && c.leg == "inbound" && c.disposition != "in_progress"
                })
            },
            || {
                format!(
                    "no final CDR for {call_id}; rows: {:?}\nlog:\n{}",
                    self.cdrs(),
                    self.log()
                )
            },
        )
    }

    /// All CDR rows.
    pub fn cdrs(&self) -> Vec<Cdr> {
        query_cdrs(&self.db())
    }

    /// All loaded dialplan versions (file, version).
    pub fn dialplan_versions(&self) -> Vec<(String, String)> {
        let rt = rt();
        rt.block_on(async {
            let Ok(pool) = open(&self.db()).await else {
                return Vec::new();
            };
            sqlx::query_as::<_, (String, String)>(
                "SELECT file, version FROM dialplan_versions ORDER BY id",
            )
            .fetch_all(&pool)
            .await
            .unwrap_or_default()
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already reaped (kill9, restart): its PID may belong to another
        // process by now, so it must not be signalled.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn top_level(extra: &str) -> String {
    extra.split("\n[").next().unwrap_or("").to_string()
}

fn tables(extra: &str) -> String {
    match extra.find("\n[") {
        Some(i) => extra[i..].to_string(),
        None if extra.trim_start().starts_with('[') => extra.to_string(),
        None => String::new(),
    }
}

/// One CDR row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Cdr {
    pub call_id: String,
    pub leg: String,
    pub caller: String,
    pub dialed: String,
    pub dialplan: Option<String>,
    pub dialplan_version: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub path: String,
    pub digits: String,
    pub vars: String,
    pub disposition: String,
    pub hangup_by: Option<String>,
    pub queue: Option<String>,
    pub sip_code: Option<i32>,
    pub node_id: Option<String>,
    pub parent_call_id: Option<String>,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open(db: &Path) -> Result<sqlx::SqlitePool, sqlx::Error> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
}

/// Read every CDR from a database file (empty if it does not exist yet).
pub fn query_cdrs(db: &Path) -> Vec<Cdr> {
    if !db.exists() {
        return Vec::new();
    }
    rt().block_on(async {
        let Ok(pool) = open(db).await else {
            return Vec::new();
        };
        let rows = sqlx::query_as::<_, Cdr>(
            "SELECT call_id, leg, caller, dialed, dialplan, dialplan_version, answered_at, ended_at, path, \
             digits, vars, disposition, hangup_by, queue, sip_code, node_id, parent_call_id \
             FROM calls ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        pool.close().await;
        rows
    })
}

/// A free UDP port on 127.0.0.1 (even, with the next three free too, for
/// RTP and SIPp's media ports).
///
/// Ports come from 32000–32767: below the kernel's ephemeral range (so no
/// process is handed one by the kernel between our check and SIPp's bind)
/// and above the test servers' RTP ranges. Test binaries run one at a time;
/// within one, the counter keeps threads apart.
pub fn free_udp_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 192) as u16;
    for _ in 0..192 {
        let slot = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 192;
        let p = 32_000 + slot * 4;
        let free = (0..4).all(|i| UdpSocket::bind(("127.0.0.1", p + i)).is_ok());
        if free {
            return p;
        }
    }
    panic!("no free UDP port in 32000-32767");
}

/// Install SIPp if it is missing (the README's test command does this too).
pub fn require_sipp() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if Command::new("sipp").arg("-v").output().is_err() {
            panic!("sipp is not installed: run `apt-get install -y sip-tester` (the README's test command does)");
        }
    });
}

/// Result of one SIPp run.
#[derive(Debug)]
pub struct SippRun {
    /// Exit code (0 = all calls successful).
    pub code: i32,
    /// SIPp's screen/stdout.
    pub stdout: String,
    /// Errors log (unexpected messages).
    pub errors: String,
    /// Message trace.
    pub messages: String,
}

impl SippRun {
    /// Panic with context unless SIPp reported success.
    pub fn assert_ok(&self, what: &str) {
        assert_eq!(
            self.code, 0,
            "SIPp scenario `{what}` failed (exit {}).\nerrors:\n{}\nmessages:\n{}",
            self.code, self.errors, self.messages
        );
    }
}

/// SIPp playing a phone that listens on `port` (where it registered from).
pub fn phone(port: u16, script: &scenario::AgentPhone) -> Sipp {
    Sipp::from_xml(&script.xml()).arg("-p").arg(port)
}

/// A prepared SIPp invocation.
pub struct Sipp {
    scenario: PathBuf,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl Sipp {
    /// SIPp with scenario `tests/scenarios/<name>.xml`.
    pub fn new(name: &str) -> Sipp {
        require_sipp();
        let dir = tempfile::tempdir().expect("tempdir");
        let scenario = repo().join("tests/scenarios").join(format!("{name}.xml"));
        assert!(scenario.exists(), "missing scenario {}", scenario.display());
        Sipp {
            scenario,
            args: Vec::new(),
            dir,
        }
    }

    /// SIPp running a generated scenario.
    pub fn from_xml(xml: &str) -> Sipp {
        require_sipp();
        let dir = tempfile::tempdir().expect("tempdir");
        let scenario = dir.path().join("scenario.xml");
        std::fs::write(&scenario, xml).expect("write scenario");
        if std::env::var_os("RINGBACK_KEEP_SCENARIOS").is_some() {
            let keep =
                std::env::temp_dir().join(format!("ringback-scenario-{}.xml", std::process::id()));
            let _ = std::fs::write(keep, xml);
        }
        Sipp {
            scenario,
            args: Vec::new(),
            dir,
        }
    }

    /// Set `[key]` in the scenario.
    pub fn key(mut self, k: &str, v: impl ToString) -> Sipp {
        self.args.push("-key".into());
        self.args.push(k.into());
        self.args.push(v.to_string());
        self
    }

    /// Any other SIPp argument.
    pub fn arg(mut self, a: impl ToString) -> Sipp {
        self.args.push(a.to_string());
        self
    }

    /// Start SIPp against `target` dialing `number`; returns a handle to wait on.
    pub fn spawn(self, target: SocketAddr, number: &str) -> SippProcess {
        let err = self.dir.path().join("errors.log");
        let msg = self.dir.path().join("messages.log");
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(&self.scenario)
            .args(["-i", "127.0.0.1", "-m", "1", "-l", "1", "-nostdin"])
            .args(["-timeout", "60s", "-timeout_error"])
            .args(["-trace_err", "-error_file"])
            .arg(&err)
            .args(["-trace_msg", "-message_file"])
            .arg(&msg)
            .args(["-s", number])
            .args(["-mp", &free_udp_port().to_string()])
            .args(&self.args)
            .arg(target.to_string())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn sipp");
        SippProcess {
            child,
            err,
            msg,
            _dir: self.dir,
        }
    }

    /// Run to completion.
    pub fn run(self, target: SocketAddr, number: &str) -> SippRun {
        self.spawn(target, number).wait()
    }
}

/// A SIPp process in flight.
pub struct SippProcess {
    child: Child,
    err: PathBuf,
    msg: PathBuf,
    _dir: tempfile::TempDir,
}

impl SippProcess {
    /// Wait (bounded by SIPp's own -timeout) and collect the logs.
    pub fn wait(mut self) -> SippRun {
        let mut stdout = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            use std::io::Read;
            let _ = o.read_to_string(&mut stdout);
        }
        let status = self.child.wait().expect("wait sipp");
        SippRun {
            code: status.code().unwrap_or(-1),
            stdout,
            errors: std::fs::read_to_string(&self.err).unwrap_or_default(),
            messages: std::fs::read_to_string(&self.msg).unwrap_or_default(),
        }
    }
}

impl SippProcess {
    /// True while SIPp has not exited: its scenario neither ended nor
    /// failed (an unexpected request ends it at once).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The Call-ID SIPp used, read from its message trace.
pub fn call_id_from_trace(messages: &str) -> Option<String> {
    messages.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("Call-ID:")
            .or_else(|| l.strip_prefix("Call-Id:"))
            .or_else(|| l.strip_prefix("i:"))
            .map(|v| v.trim().to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// Additions for the malformed-input tests (tests/malformed_sip.rs).
// ---------------------------------------------------------------------------------------------

impl Server {
    /// True while the server process has not exited (no crash, no panic exit).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait up to `timeout` for the process to exit by itself (e.g. after
    /// a drain); its exit status, `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Start a server like [`Server::start`], then restart it on the same
    /// directory with its generated `ringback.toml` rewritten by `edit`
    /// (e.g. to change a `[sip]` key the harness does not expose).
    pub fn start_edited(opts: ServerOpts, edit: impl FnOnce(&str) -> String) -> Server {
        let mut first = Server::start(opts);
        let cfg_path = first.dir.path().join("ringback.toml");
        let cfg = std::fs::read_to_string(&cfg_path).expect("read config");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(first.child.id().to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && first.alive() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if first.alive() {
            let _ = first.child.kill();
        }
        let _ = first.child.wait();
        std::fs::write(&cfg_path, edit(&cfg)).expect("write edited config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringback"))
            .arg("--config")
            .arg(&cfg_path)
            .arg("serve")
            .env("RINGBACK_LOG", "info,ringback=debug")
            .envs(first.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringback");
        let log = Arc::clone(&first.log);
        if let Ok(mut l) = log.lock() {
            l.clear();
        }
        let stderr = child.stderr.take().expect("stderr");
        let l2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = l2.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let Ok(ready) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "edited ringback did not become ready; log:\n{}",
                first.log()
            );
        };
        let addr = |key: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in ready line: {ready}"))
        };
        first.sip = addr("sip=");
        first.api = addr("api=");
        first.ready = ready;
        // The old child has been reaped; dropping `first` now stops the new one.
        first.child = child;
        first
    }
}

// ---------------------------------------------------------------------------------------------
// Additions for the crash/restart test (tests/crash_restart.rs).
// ---------------------------------------------------------------------------------------------

impl Server {
    /// Run a read-only query on the server's SQLite file; every column must
    /// be text or NULL (CAST numbers in the SQL). Empty if there is no file.
    pub fn query_text(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        query_text(&self.db(), sql)
    }
}

/// Run a read-only query on a SQLite file (see [`Server::query_text`]).
pub fn query_text(db: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    use sqlx::Row;
    if !db.exists() {
        return Vec::new();
    }
    rt().block_on(async {
        let pool = open(db).await.expect("open the store read-only");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("query failed ({e}): {sql}"));
        let out = rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<Option<String>, _>(i)
                            .unwrap_or_else(|e| panic!("column {i} of `{sql}` is not text: {e}"))
                    })
                    .collect()
            })
            .collect();
        pool.close().await;
        out
    })
}

/// A dialplan (`cb.toml`) whose number 100 puts the caller straight into
/// the operator queue: what callback tests need from the IVR.
pub const QUEUE_PLAN: &str = r#"
[dialplan]
name = "callbacks"
numbers = ["100"]
start = "q"
operator = "operator"

[nodes.q]
type = "queue"
queue = "operator"
"#;

/// A server for callback tests: `trunks` (TOML: `[trunk]` and
/// `[trunks.NAME]` tables), the operator queue with `callback_policy` (keys
/// of `[queues.operator.callback]`), and agent `alice` (password
/// `alice-secret`) serving it.
pub fn callback_server(trunks: &str, callback_policy: &str) -> Server {
    callback_server_with_rtp_timeout(trunks, callback_policy, 0)
}

/// [`callback_server`] with `rtp.timeout_secs` (0: off).
pub fn callback_server_with_rtp_timeout(
    trunks: &str,
    callback_policy: &str,
    rtp_timeout_secs: u64,
) -> Server {
    Server::start(ServerOpts {
        rtp_timeout_secs,
        ..callback_opts(trunks, callback_policy)
    })
}

/// The options of [`callback_server`], to start one with more settings.
pub fn callback_opts(trunks: &str, callback_policy: &str) -> ServerOpts {
    ServerOpts {
        dialplans: vec![("cb.toml".into(), QUEUE_PLAN.into())],
        extra_config: format!(
            r#"
{trunks}

[queues.operator]
ring_timeout_secs = 15
announce_every_secs = 0
wrapup_secs = 1

[queues.operator.callback]
{callback_policy}

[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#
        ),
        ..ServerOpts::default()
    }
}
