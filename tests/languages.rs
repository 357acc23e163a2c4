//! Who the caller is, from the customer directory, with real SIP stacks
//! (PJSIP callers and agent phones, `tests/peers/pjsua_peer.py`):
//!
//! - a customer whose language is `es-MX` hears the `prompts/es/` version
//!   of a prompt (a 2000 Hz tone where the default one is 440 Hz: checked
//!   by what the caller's phone heard), and `[languages.es] skill` sends
//!   them to the Spanish-speaking agent though another agent has waited
//!   longer; an unknown caller hears the default prompt;
//! - a customer calling from their second number is a repeat caller
//!   (`X-Ringback-Repeat: 1`) and reaches the agent who helped them from
//!   the first number (sticky routing by customer, not by number), though
//!   the other agent has waited longer.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::peer::{json, sip_header, wait_agent_state, PyPeer, PJSUA};
use common::{Server, ServerOpts};

/// The default version of the probe prompt, and the Spanish one.
const DEFAULT_PROBE: f64 = 440.0;
const SPANISH_PROBE: f64 = 2000.0;
const CALLER_TONE: &str = "1000";

const PLAN: &str = r#"
[dialplan]
name = "languages"
numbers = ["100"]
start = "probe"
operator = "support"

[nodes.probe]
type = "play"
prompt = "probe"
next = "line"

[nodes.line]
type = "queue"
queue = "support"
"#;

/// A 3 s tone WAV (8 kHz, 16-bit mono) at `path`, by `tests/peers/audio.py`.
fn tone_wav(path: &Path, freq: f64) {
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sys; sys.path.insert(0, {dir:?}); import audio; \
             audio.write_tone({path:?}, {freq}, 3, rate=8000, amplitude=0.4)",
            dir = common::repo().join("tests/peers").display().to_string(),
            path = path.display().to_string(),
        ))
        .status()
        .expect("python3");
    assert!(status.success(), "could not write the tone WAV");
}

/// The shipped prompts (linked) plus `probe` in a default and a Spanish
/// version.
fn prompts(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("prompts");
    std::fs::create_dir_all(p.join("es")).expect("mkdir");
    for e in std::fs::read_dir(common::repo().join("prompts")).expect("read prompts") {
        let e = e.expect("entry");
        if e.path().extension().is_some_and(|x| x == "wav") {
            std::os::unix::fs::symlink(e.path(), p.join(e.file_name())).expect("link");
        }
    }
    tone_wav(&p.join("probe.wav"), DEFAULT_PROBE);
    tone_wav(&p.join("es/probe.wav"), SPANISH_PROBE);
    p
}

fn server(prompts_dir: &Path, extra: &str) -> Server {
    let srv = Server::start(ServerOpts {
        dialplans: vec![("languages.toml".into(), PLAN.into())],
        prompts_dir: Some(prompts_dir.to_path_buf()),
        extra_config: format!(
            r#"
[queues.support]
ring_timeout_secs = 10
announce_every_secs = 0
wrapup_secs = 1
{extra}

[agents.bob]
password = "bob-secret"
queues = ["support"]

[agents.ana]
password = "ana-secret"
queues = ["support"]
skills = {{ spanish = 5 }}
"#
        ),
        ..ServerOpts::default()
    });
    assert!(
        srv.wait_log("customer directory loaded", 1, Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    srv
}

fn add_customer(srv: &Server, body: &str) {
    let (status, answer) = srv.http_post("/api/v1/customers", body);
    assert_eq!(status, 201, "{answer}");
}

/// An agent phone that answers `calls` calls, playing a tone.
fn agent(srv: &Server, user: &str, calls: &str) -> PyPeer {
    let agent = PJSUA.agent(
        srv,
        "udp",
        user,
        &format!("{user}-secret"),
        &[
            "--calls",
            calls,
            "--play",
            "1500",
            "--detect",
            CALLER_TONE,
            "--timeout",
            "60",
        ],
    );
    agent.expect("registered", Duration::from_secs(10), srv);
    wait_agent_state(srv, user, "available");
    agent
}

/// A PJSIP caller from `from` who listens for both probe versions and
/// hangs up after `secs` seconds.
fn caller(srv: &Server, from: &str, secs: &str) -> PyPeer {
    PJSUA.caller(
        srv,
        "udp",
        "100",
        &[
            "--user",
            from,
            "--play",
            CALLER_TONE,
            "--detect",
            &DEFAULT_PROBE.to_string(),
            "--detect",
            &SPANISH_PROBE.to_string(),
            "--hangup-after",
            secs,
            "--timeout",
            "40",
        ],
    )
}

fn heard(peer: &PyPeer, freq: f64, srv: &Server) -> bool {
    peer.tone_report(freq, srv)["detected"] == true
}

/// No `incoming` event reached `peer` so far.
fn assert_not_rung(peer: &PyPeer, srv: &Server, why: &str) {
    let rung = peer.events().iter().any(|e| e["event"] == "incoming");
    assert!(!rung, "{why}\n{}\n{}", peer.diagnostics(), srv.log());
}

#[test]
fn a_spanish_customer_hears_the_spanish_prompts_and_reaches_the_spanish_speaking_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts_dir = prompts(dir.path());
    let srv = server(
        &prompts_dir,
        "\n[languages.es]\nskill = \"spanish\"\nlevel = 3\n",
    );
    add_customer(
        &srv,
        r#"{"name":"Carla Díaz","numbers":["+15550100077"],"language":"es-MX"}"#,
    );
    // bob registers first: with longest-idle routing he is next in line.
    let mut bob = agent(&srv, "bob", "1");
    std::thread::sleep(Duration::from_millis(1500));
    let mut ana = agent(&srv, "ana", "1");

    let mut carla = caller(&srv, "+15550100077", "9");
    let inv = ana.expect("incoming", Duration::from_secs(15), &srv);
    assert_eq!(sip_header(&inv, "X-Ringback-Caller-Name"), "Carla Díaz");
    assert_eq!(
        sip_header(&inv, "X-Ringback-Var-language"),
        "es-MX",
        "the agent is told the caller's language"
    );
    carla.finish(&srv);
    ana.finish(&srv);
    assert_not_rung(&bob, &srv, "bob has no Spanish but was rung");
    assert!(
        heard(&carla, SPANISH_PROBE, &srv),
        "the caller did not hear prompts/es/probe.wav\n{}",
        carla.diagnostics()
    );
    assert!(
        !heard(&carla, DEFAULT_PROBE, &srv),
        "the caller heard the default probe too\n{}",
        carla.diagnostics()
    );
    ana.assert_heard(1000.0, &srv);

    // An unknown caller: the default prompt, and bob (longest idle) answers.
    let mut other = caller(&srv, "+15550100099", "8");
    bob.expect("incoming", Duration::from_secs(15), &srv);
    other.finish(&srv);
    bob.finish(&srv);
    assert!(
        heard(&other, DEFAULT_PROBE, &srv),
        "{}",
        other.diagnostics()
    );
    assert!(
        !heard(&other, SPANISH_PROBE, &srv),
        "{}",
        other.diagnostics()
    );
}

/// The number of calls `agent` took today, from `GET /api/v1/agents`.
fn calls_taken(srv: &Server, agent: &str) -> u64 {
    let (_, body) = srv.http_get("/api/v1/agents");
    json(&body)["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == agent))
        .and_then(|a| a["calls_today"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_customer_calling_from_another_number_reaches_the_agent_who_helped_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts_dir = prompts(dir.path());
    let srv = server(&prompts_dir, "sticky_hours = 1\nsticky_wait_secs = 10");
    add_customer(
        &srv,
        r#"{"name":"Pat Lee","numbers":["+15550100081","+15550100082"]}"#,
    );
    let mut bob = agent(&srv, "bob", "2");
    let ana = agent(&srv, "ana", "1");
    // ana is away for the first call, so bob helps Pat.
    let (status, body) = srv.http_post("/api/v1/agents/ana/pause", r#"{"reason":"lunch"}"#);
    assert_eq!(status, 200, "{body}");

    let mut first = caller(&srv, "+15550100081", "6");
    let inv = bob.expect("incoming", Duration::from_secs(15), &srv);
    assert_eq!(sip_header(&inv, "X-Ringback-Repeat"), "0");
    first.finish(&srv);
    let until = Instant::now() + Duration::from_secs(10);
    while calls_taken(&srv, "bob") < 1 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_agent_state(&srv, "bob", "available");
    // ana is back and has now waited longer than bob.
    let (status, body) = srv.http_post("/api/v1/agents/ana/unpause", "");
    assert_eq!(status, 200, "{body}");
    wait_agent_state(&srv, "ana", "available");

    // Pat again, from the other number.
    let mut second = caller(&srv, "+15550100082", "6");
    let inv = bob
        .wait_for(
            |e| {
                e["event"] == "incoming"
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("+15550100082"))
            },
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| {
            panic!(
                "bob was not rung for Pat's second call\n{}\n{}",
                bob.diagnostics(),
                srv.log()
            )
        });
    assert_eq!(
        sip_header(&inv, "X-Ringback-Repeat"),
        "1",
        "the call from the first number counts"
    );
    assert_eq!(sip_header(&inv, "X-Ringback-Caller-Name"), "Pat Lee");
    second.finish(&srv);
    bob.finish(&srv);
    assert_not_rung(&ana, &srv, "ana was rung though bob helped Pat before");
}
