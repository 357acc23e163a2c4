//! Schemathesis (property-based API testing, from PyPI) against a live
//! server: it reads the served OpenAPI 3.1 document (generated from the
//! handlers' types, `src/api/openapi.rs`) and sends generated
//! requests, valid and invalid, to every operation (phases examples,
//! coverage, fuzzing and stateful, the last following the document's links
//! from a new callback to its reads and changes), and runs every check it
//! has (`--checks all`): no 5xx, only documented statuses, content types
//! and headers, answers (and each server-sent event's JSON) valid against
//! their schemas, invalid requests refused, valid ones accepted, auth not
//! ignored, wrong methods refused with `405` and `Allow`, created resources
//! readable. The run must end with no failure.
//!
//! Settings beside the command line are in `tests/schemathesis/`:
//! `schemathesis.toml` (how many events to read from the endless event
//! stream; the one place a valid request may be refused with `422`, and
//! why) and `hooks.py` (the check that narrows that to the two codes
//! meant).
//!
//! `scripts/test` installs schemathesis with pip; when it is missing this
//! test installs it the same way, and is skipped (with a message saying
//! so) only if that install fails. `RINGBACK_SCHEMATHESIS_SEED` replays
//! another seed (the default is fixed, so runs are repeatable);
//! `RINGBACK_SCHEMATHESIS_EXAMPLES` raises the examples per operation.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo, Server, ServerOpts};

const ADMIN: &str = "schemathesis-admin-token-0123456789";
const SUPER: &str = "schemathesis-supervisor-token-0123456789";
const ALICE: &str = "schemathesis-alice-token-0123456789";

/// The whole run, all phases, must end by then (it takes about 30 s on
/// two cores); a stuck run is killed and fails the test.
const HARD_TIMEOUT: Duration = Duration::from_secs(150);

/// Whether `python3 -m schemathesis.cli` runs; installs it with pip (as
/// `scripts/test` does) when it does not. `Err` says why it cannot run.
fn schemathesis() -> Result<String, String> {
    let version = || {
        Command::new("python3")
            .args(["-m", "schemathesis.cli", "--version"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(v) = version() {
        return Ok(v);
    }
    eprintln!("installing schemathesis (pip)");
    let pip = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "schemathesis",
        ])
        .status();
    version().ok_or_else(|| format!("`python3 -m pip install schemathesis` did not work: {pip:?}"))
}

#[test]
fn schemathesis_finds_nothing() {
    let version = match schemathesis() {
        Ok(v) => v,
        Err(why) => {
            eprintln!(
                "SKIPPED schemathesis_finds_nothing: schemathesis cannot be installed ({why})"
            );
            return;
        }
    };
    eprintln!("{version}");
    let srv = Server::start(ServerOpts {
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
queues = ["operator", "billing"]
"#
        ),
        ..ServerOpts::default()
    });
    let seed = std::env::var("RINGBACK_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let examples = std::env::var("RINGBACK_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".into());
    let settings = repo().join("tests/schemathesis");
    let work = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(settings.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("http://{}/api/openapi.json", srv.api))
        .args(["-H", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        // Every check. `object_level_authorization` needs at least two
        // users listed as WFC `peers` and checks that one user cannot read
        // another's objects; this API has no per-user objects (roles see
        // all or, for agents, only their own agent), so it skips itself.
        .args(["--checks", "all"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--request-timeout", "5", "--workers", "2"])
        .args(["--generation-database", "none"])
        .env("SCHEMATHESIS_HOOKS", settings.join("hooks.py"))
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if started.elapsed() > HARD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let report = format!("{stdout}\n{stderr}");
    let Some(status) = status else {
        panic!("schemathesis did not finish within {HARD_TIMEOUT:?}:\n{report}");
    };
    assert!(
        status.success(),
        "schemathesis found failures ({status}); seed {seed}:\n{report}\nserver log:\n{}",
        srv.log()
    );
    // The summary: phases, operations and cases, for the test log.
    if let Some(summary) = stdout.find("SUMMARY") {
        eprintln!("{}", &stdout[summary..]);
    }
    let (_, doc) = srv.http_get("/api/openapi.json");
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("OpenAPI JSON");
    // Schemathesis leaves out the operation that serves the document it
    // reads (`GET /api/openapi.json`); every other one is tested.
    let operations: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.as_str() != "/api/openapi.json")
        .map(|(_, p)| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert!(
        stdout.contains(&format!("Tested: {operations}\n")),
        "all {operations} operations were tested:\n{stdout}"
    );
}
