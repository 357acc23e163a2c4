//! Call recording with real SIP peers (PJSIP, `tests/peers/pjsua_peer.py`):
//! a caller reaches the demo's `support` queue (2000, press 1), which has
//! `record = true` and a recording announcement; agent `alice` answers on
//! a PJSIP phone. The caller plays one tone, the agent another; the WAV is
//! downloaded through the API after the call and analysed per channel
//! (Goertzel): the caller's tone on the left, the agent's on the right.
//! Also: a pause through the API mid-call (a third tone played during the
//! pause is not in the file, the paused time is counted), a recordings
//! directory that cannot be used (the call goes on, audio flows, the
//! recording is `failed`), a server killed mid-recording (the next start
//! repairs the file's header and completes the row), and the pages in
//! headless Chromium (`tests/browser/recording.test.mjs`): the agent pauses
//! and resumes in the agent page, the dashboard plays the recording; and
//! recordings past `retention_days` are deleted at start-up. A callback
//! taken by an agent with `record = true` is recorded too (the customer on
//! the left).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::peer::{
    args, finish_queued_call, json, request_callback, Bye, PyPeer, AGENT_TONE, CALLER_TONE, PJSUA,
};
use common::{poll_until, Server, ServerOpts};
use ringback_media::goertzel::{mean_power, tone_power};
use serde_json::Value;

const ADMIN: &str = "recording-admin-token-0123456789";
const SUPER: &str = "recording-supervisor-token-0123456789";
const ALICE: &str = "recording-alice-token-0123456789";
const BOB: &str = "recording-bob-token-0123456789";

/// The tone the agent plays while the recording is paused.
const PAUSED_TONE: f64 = 2500.0;

/// A server whose `support` queue records, with tokens for an admin, a
/// supervisor and the agents `alice` (who answers) and `bob`; `extra` is
/// more configuration (tables).
fn server(extra: &str) -> Server {
    server_on(extra, None)
}

/// [`server`] on this store (`None`: its own SQLite file).
fn server_on(extra: &str, database_url: Option<String>) -> Server {
    Server::start(ServerOpts {
        database_url,
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

[[api.tokens]]
token = "{BOB}"
role = "agent"
agent = "bob"

[queues.support]
ring_timeout_secs = 15
announce_every_secs = 0
wrapup_secs = 1
record = true
record_announcement = "recording-notice"

[agents.alice]
password = "alice-secret"
display_name = "Alice Smith"
queues = ["support"]

[agents.bob]
password = "bob-secret"
queues = ["support"]
{extra}"#
        ),
        ..ServerOpts::default()
    })
    .with_bearer(ADMIN)
}

/// The caller's Call-ID, as PJSIP reported it.
fn call_id(peer: &PyPeer, srv: &Server) -> String {
    peer.expect_where(
        "call_state",
        |e| e["call_id"].as_str().is_some_and(|s| !s.is_empty()),
        Duration::from_secs(10),
        srv,
    )["call_id"]
        .as_str()
        .expect("call_id")
        .to_string()
}

/// One HTTP request with `token`: (status, head, body bytes).
fn request(srv: &Server, method: &str, path: &str, token: &str) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(srv.api).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        srv.api
    )
    .expect("write");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {}", String::from_utf8_lossy(&resp)));
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = resp[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    (status, head, body)
}

/// The body of a chunked response.
fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&raw[..eol]).to_string();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
    out
}

/// A call id in a query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The recording of call `id` once it has ended (its writer finishes a
/// moment after the call), within 10 s.
fn finished_recording(srv: &Server, id: &str) -> Value {
    let list = || {
        let (status, _, body) = request(
            srv,
            "GET",
            &format!("/api/v1/recordings?call_id={}", encode(id)),
            SUPER,
        );
        let body = String::from_utf8_lossy(&body).to_string();
        assert_eq!(status, 200, "{body}");
        json(&body)
    };
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let list = list();
            let rows = list["recordings"].as_array().cloned().unwrap_or_default();
            assert!(rows.len() <= 1, "one recording per bridge: {list:#}");
            rows.first().filter(|r| r["state"] != "recording").cloned()
        },
        || {
            let list = list();
            format!("no finished recording for {id}: {list:#}\n{}", srv.log())
        },
    )
}

/// The recording's WAV through the API (supervisor token): its left and
/// right channels, after checking the format.
fn download(srv: &Server, rec: &Value) -> (Vec<i16>, Vec<i16>) {
    let id = rec["id"].as_i64().expect("id");
    let (status, head, body) =
        request(srv, "GET", &format!("/api/v1/recordings/{id}/audio"), SUPER);
    assert_eq!(status, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: audio/wav"),
        "{head}"
    );
    assert_eq!(
        body.len() as i64,
        rec["bytes"].as_i64().expect("bytes"),
        "{rec}"
    );
    let reader = hound::WavReader::new(std::io::Cursor::new(body)).expect("a WAV");
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let samples: Vec<i16> = reader.into_samples().map(|s| s.expect("sample")).collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// Seconds (20 ms blocks) in which `freq` dominates `channel`: not
/// silence, at least half the block's energy at `freq`, and four times
/// more than at each of the other test tones.
fn tone_secs(channel: &[i16], freq: f64) -> f64 {
    let others: Vec<f64> = [CALLER_TONE, AGENT_TONE, PAUSED_TONE]
        .into_iter()
        .filter(|f| (f - freq).abs() > 60.0)
        .collect();
    let min_power = (0.003f64 * 32768.0).powi(2);
    let hits = channel
        .chunks_exact(160)
        .filter(|block| {
            let energy = mean_power(block);
            if energy < min_power {
                return false;
            }
            let ratio = tone_power(block, freq) / energy;
            ratio >= 0.5
                && others
                    .iter()
                    .all(|o| tone_power(block, *o) / energy * 4.0 <= ratio)
        })
        .count();
    hits as f64 * 0.02
}

/// Seconds of silence (20 ms blocks below -50 dBFS) in `channel`.
fn silent_secs(channel: &[i16]) -> f64 {
    let max = (0.003f64 * 32768.0).powi(2);
    channel
        .chunks_exact(160)
        .filter(|b| mean_power(b) < max)
        .count() as f64
        * 0.02
}

/// A caller for the support queue playing [`CALLER_TONE`] (and listening
/// for [`AGENT_TONE`]).
fn caller(srv: &Server, extra: &[&str]) -> PyPeer {
    let tone = CALLER_TONE.to_string();
    let agent_tone = AGENT_TONE.to_string();
    let mut args = vec![
        "--dtmf",
        "1@1.5",
        "--play",
        &tone,
        "--play-at",
        "2",
        "--detect",
        &agent_tone,
    ];
    args.extend(extra);
    PJSUA.caller(srv, "udp", "2000", &args)
}

/// Alice's phone, registered and available.
fn alice(srv: &Server, extra: &[&str]) -> PyPeer {
    let mut args = vec!["--ring-delay", "0.5"];
    args.extend(extra);
    PJSUA.registered_alice(srv, "udp", &args)
}

/// A queued call taken by alice, who hangs up 3 s after hearing the
/// caller: both sides hear each other, the call completes. Returns the
/// caller's Call-ID.
fn recorded_call(srv: &Server) -> String {
    let tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    let mut agent = alice(
        srv,
        &[
            "--play",
            &tone,
            "--detect",
            &caller_tone,
            "--hangup-on-tone",
            &caller_tone,
            "--hangup-delay",
            "3",
            "--timeout",
            "35",
        ],
    );
    let mut c = caller(srv, &["--timeout", "30"]);
    let id = call_id(&c, srv);
    agent.expect("incoming", Duration::from_secs(15), srv);
    finish_queued_call(srv, &id, &mut agent, &mut c, Bye::Agent);
    id
}

#[test]
fn the_caller_is_on_the_left_and_the_agent_on_the_right() {
    let srv = server("");
    let id = recorded_call(&srv);
    let rec = finished_recording(&srv, &id);
    assert_eq!(rec["state"], "complete", "{rec:#}\n{}", srv.log());
    assert_eq!(rec["agent"], "alice", "{rec}");
    assert_eq!(rec["queue"], "support", "{rec}");
    assert_eq!(rec["paused_ms"], 0, "{rec}");
    assert!(rec["error"].is_null(), "{rec}");
    let ms = rec["duration_ms"].as_i64().expect("duration");
    assert!(ms >= 3000, "3 s of conversation at least: {rec}");
    let (left, right) = download(&srv, &rec);
    assert!((left.len() as i64 - ms * 8).abs() < 8, "{rec}");
    let secs = |ch: &[i16], f| tone_secs(ch, f);
    let report = format!(
        "left: {} s of {CALLER_TONE} Hz, {} s of {AGENT_TONE} Hz; right: {} s of {CALLER_TONE} Hz, {} s of {AGENT_TONE} Hz ({rec})",
        secs(&left, CALLER_TONE),
        secs(&left, AGENT_TONE),
        secs(&right, CALLER_TONE),
        secs(&right, AGENT_TONE)
    );
    eprintln!("{report}");
    assert!(secs(&left, CALLER_TONE) >= 2.0, "{report}");
    assert!(secs(&right, AGENT_TONE) >= 2.0, "{report}");
    assert!(secs(&left, AGENT_TONE) < 0.1, "{report}");
    assert!(secs(&right, CALLER_TONE) < 0.1, "{report}");
    // The metadata and the file: supervisors only.
    let n = rec["id"].as_i64().expect("id");
    let (status, _, body) = request(&srv, "GET", &format!("/api/v1/recordings/{n}"), SUPER);
    assert_eq!(status, 200);
    assert_eq!(json(&String::from_utf8_lossy(&body))["path"], rec["path"]);
    let (status, _, _) = request(&srv, "GET", &format!("/api/v1/recordings/{n}/audio"), ALICE);
    assert_eq!(status, 403, "an agent may not download recordings");
    let (status, _, _) = request(&srv, "GET", "/api/v1/recordings/999999/audio", SUPER);
    assert_eq!(status, 404);
    // The file is in the data directory's `recordings`.
    let file = srv
        .dir
        .path()
        .join("data/recordings")
        .join(rec["path"].as_str().expect("path"));
    assert!(file.is_file(), "{}", file.display());
    assert!(srv.metric("ringback_recordings_started_total") >= 1.0);
    assert_eq!(srv.metric("ringback_recordings_failed_total"), 0.0);
}

#[test]
fn a_callback_taken_by_a_recording_agent_is_recorded() {
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    // The customer answers, presses 1 in the intro, plays its tone and
    // hangs up 3 s after hearing the agent.
    let mut customer = PJSUA.spawn(
        "customer",
        "customer",
        &args(&[
            "--ring-delay",
            "0.5",
            "--dtmf-base",
            "audio",
            "--dtmf",
            "1@1",
            "--play",
            &caller_tone,
            "--play-at",
            "1",
            "--detect",
            &agent_tone,
            "--hangup-on-tone",
            &agent_tone,
            "--hangup-delay",
            "3",
            "--timeout",
            "35",
        ]),
    );
    let trunk = format!(
        "[trunk]\naddress = \"127.0.0.1:{}\"\ncaller_id = \"+15550100\"\ntransport = \"udp\"\n",
        customer.port
    );
    let mut opts = common::callback_opts(
        &trunk,
        "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
    );
    // The last table is [agents.alice]: she records every call she takes
    // (the operator queue does not).
    opts.extra_config.push_str("record = true\n");
    let srv = Server::start(opts);
    let mut agent = PJSUA.registered_alice(
        &srv,
        "udp",
        &[
            "--ring-delay",
            "0.5",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--timeout",
            "35",
        ],
    );
    let id = request_callback(&srv, Some("recorded callback"));
    agent.expect("incoming", Duration::from_secs(15), &srv);
    customer.expect("dtmf_sent", Duration::from_secs(30), &srv);
    customer.finish_hearing(AGENT_TONE, &srv);
    agent.finish_hearing(CALLER_TONE, &srv);
    let list = || {
        let (_, _, body) = request(&srv, "GET", "/api/v1/recordings", "open");
        json(&String::from_utf8_lossy(&body))
    };
    let rec = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            list()["recordings"]
                .as_array()
                .and_then(|r| r.first())
                .filter(|r| r["state"] != "recording")
                .cloned()
        },
        || format!("no recording: {:#}\n{}", list(), srv.log()),
    );
    assert_eq!(rec["state"], "complete", "{rec:#}");
    assert_eq!(rec["agent"], "alice", "{rec}");
    assert_eq!(rec["queue"], "operator", "{rec}");
    let call = rec["call_id"].as_str().unwrap_or_default();
    assert!(call.starts_with(&format!("cb-{id}-")), "the attempt: {rec}");
    let (left, right) = download(&srv, &rec);
    let report = format!(
        "left: {} s of {CALLER_TONE} Hz, {} s of {AGENT_TONE} Hz; right: {} s of {AGENT_TONE} Hz, {} s of {CALLER_TONE} Hz",
        tone_secs(&left, CALLER_TONE),
        tone_secs(&left, AGENT_TONE),
        tone_secs(&right, AGENT_TONE),
        tone_secs(&right, CALLER_TONE),
    );
    eprintln!("{report}");
    assert!(
        tone_secs(&left, CALLER_TONE) >= 1.5,
        "the customer left: {report}"
    );
    assert!(
        tone_secs(&right, AGENT_TONE) >= 1.5,
        "the agent right: {report}"
    );
    assert!(tone_secs(&left, AGENT_TONE) < 0.1, "{report}");
    assert!(tone_secs(&right, CALLER_TONE) < 0.1, "{report}");
}

/// A mono WAV for the agent's phone: `AGENT_TONE` for 4 s,
/// `PAUSED_TONE` for 3 s, then `AGENT_TONE` again (30 s in all).
fn agent_wav(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("agent.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create WAV");
    for i in 0..30 * 8000 {
        let t = f64::from(i) / 8000.0;
        let f = if (4.0..7.0).contains(&t) {
            PAUSED_TONE
        } else {
            AGENT_TONE
        };
        let s = 0.3 * 32767.0 * (2.0 * std::f64::consts::PI * f * t).sin();
        w.write_sample(s as i16).expect("sample");
    }
    w.finalize().expect("finish WAV");
    path
}

#[test]
fn a_pause_records_silence_and_counts_the_paused_time() {
    let srv = server("");
    let work = tempfile::tempdir().expect("tempdir");
    let wav = agent_wav(work.path());
    let wav = wav.to_string_lossy().to_string();
    let mut agent = alice(
        &srv,
        &[
            "--play-wav",
            &wav,
            "--hangup-after",
            "11",
            "--timeout",
            "40",
        ],
    );
    let mut c = caller(&srv, &["--timeout", "40"]);
    let id = call_id(&c, &srv);
    agent.expect("media_active", Duration::from_secs(15), &srv);
    // The agent's WAV starts now: its third tone plays from 4 s to 7 s.
    let t0 = Instant::now();
    let path = format!("/api/v1/calls/{}/recording", encode(&id));
    std::thread::sleep(Duration::from_secs(3));
    // Only the agent on the call (or a supervisor) may pause it.
    let (status, _, _) = request(&srv, "POST", &format!("{path}/pause"), BOB);
    assert_eq!(status, 403, "another agent");
    let (status, _, body) = request(&srv, "POST", &format!("{path}/pause"), ALICE);
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200, "{body}\n{}", srv.log());
    assert_eq!(json(&body)["paused"], true, "{body}");
    // The agent page sees it paused.
    let (_, _, agents) = request(&srv, "GET", "/api/v1/agents", SUPER);
    let agents = json(&String::from_utf8_lossy(&agents));
    let me = agents["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "alice"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(me["recording"], "paused", "{me:#}");
    std::thread::sleep((t0 + Duration::from_secs(8)).saturating_duration_since(Instant::now()));
    let (status, _, body) = request(&srv, "POST", &format!("{path}/resume"), ALICE);
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200, "{body}");
    let resumed = json(&body);
    assert_eq!(resumed["paused"], false, "{body}");
    assert!(
        resumed["paused_ms"].as_u64().is_some_and(|ms| ms >= 4500),
        "{body}"
    );
    c.finish(&srv);
    agent.finish(&srv);
    let rec = finished_recording(&srv, &id);
    assert_eq!(rec["state"], "complete", "{rec:#}");
    let paused = rec["paused_ms"].as_i64().expect("paused_ms");
    assert!((4500..=6000).contains(&paused), "about 5 s paused: {rec}");
    let (left, right) = download(&srv, &rec);
    let report = format!(
        "left: {} s of {CALLER_TONE} Hz, {} s of {PAUSED_TONE} Hz; right: {} s of {AGENT_TONE} Hz, {} s of {PAUSED_TONE} Hz, {} s silent ({rec})",
        tone_secs(&left, CALLER_TONE),
        tone_secs(&left, PAUSED_TONE),
        tone_secs(&right, AGENT_TONE),
        tone_secs(&right, PAUSED_TONE),
        silent_secs(&right),
    );
    eprintln!("{report}");
    assert!(
        tone_secs(&right, PAUSED_TONE) < 0.1,
        "the paused tone was recorded: {report}"
    );
    assert!(tone_secs(&left, PAUSED_TONE) < 0.1, "{report}");
    // Before and after the pause: both legs.
    assert!(tone_secs(&right, AGENT_TONE) >= 4.0, "{report}");
    assert!(tone_secs(&left, CALLER_TONE) >= 4.0, "{report}");
    // The pause itself: silence on both channels, the timeline kept.
    assert!(silent_secs(&right) >= 4.5, "{report}");
    assert!(silent_secs(&left) >= 4.5, "{report}");
    // Pausing a call that is over: nothing to pause.
    let (status, _, _) = request(&srv, "POST", &format!("{path}/pause"), SUPER);
    assert_eq!(status, 404);
}

#[test]
fn an_unusable_recordings_directory_fails_the_recording_not_the_call() {
    let blocker = tempfile::NamedTempFile::new().expect("a file");
    let srv = server(&format!(
        "\n[recording]\ndir = \"{}\"\n",
        blocker.path().display()
    ));
    // Audio both ways and a completed call (finish_queued_call asserts both).
    let id = recorded_call(&srv);
    let rec = finished_recording(&srv, &id);
    assert_eq!(rec["state"], "failed", "{rec:#}");
    let e = rec["error"].as_str().unwrap_or_default();
    assert!(e.contains("cannot create"), "the error says why: {rec}");
    let n = rec["id"].as_i64().expect("id");
    let (status, _, _) = request(&srv, "GET", &format!("/api/v1/recordings/{n}/audio"), SUPER);
    assert_eq!(status, 404, "no audio");
    assert!(srv.metric("ringback_recordings_failed_total") >= 1.0);
    assert!(
        srv.log().contains("recording failed; the call goes on"),
        "a warning is logged"
    );
}

#[test]
fn a_recording_cut_by_a_crash_is_completed_at_the_next_start() {
    cut_by_a_crash(server(""));
}

/// The same on PostgreSQL, where a node finishes only its own recordings
/// (hence a stable node id).
#[test]
fn a_recording_cut_by_a_crash_is_completed_at_the_next_start_on_postgres() {
    let db = common::pg::PgDb::create();
    cut_by_a_crash(server_on(
        "\n[callbacks]\nnode_id = \"recording-test\"\n",
        Some(db.url()),
    ));
}

fn cut_by_a_crash(srv: Server) {
    let tone = AGENT_TONE.to_string();
    let agent = alice(&srv, &["--play", &tone, "--timeout", "40"]);
    let c = caller(&srv, &["--timeout", "40"]);
    let id = call_id(&c, &srv);
    agent.expect("media_active", Duration::from_secs(15), &srv);
    // Four seconds of conversation (more than the writer's buffer), then
    // the server dies with the file's header unfinished.
    std::thread::sleep(Duration::from_secs(4));
    let (_, _, body) = request(
        &srv,
        "GET",
        &format!("/api/v1/recordings?call_id={}", encode(&id)),
        SUPER,
    );
    let list = json(&String::from_utf8_lossy(&body));
    assert_eq!(list["recordings"][0]["state"], "recording", "{list:#}");
    drop(c);
    drop(agent);
    let srv = srv.restart().with_bearer(ADMIN);
    let rec = finished_recording(&srv, &id);
    assert_eq!(rec["state"], "complete", "{rec:#}\n{}", srv.log());
    assert!(
        rec["duration_ms"].as_i64().is_some_and(|ms| ms >= 1000),
        "{rec}"
    );
    let (left, right) = download(&srv, &rec);
    assert!(tone_secs(&left, CALLER_TONE) >= 0.5, "{rec}");
    assert!(tone_secs(&right, AGENT_TONE) >= 0.5, "{rec}");
    assert!(srv
        .log()
        .contains("finished recordings left open by a previous run"));
}

#[test]
fn the_agent_pauses_in_the_page_and_the_dashboard_plays_the_recording() {
    // Chromium and playwright-core first (installed when missing): the
    // call must not end while they install.
    common::browser::ensure_node_modules(&common::repo().join("tests/browser"));
    let srv = server("");
    let tone = AGENT_TONE.to_string();
    let mut agent = alice(
        &srv,
        &["--play", &tone, "--hangup-after", "14", "--timeout", "45"],
    );
    let mut c = caller(&srv, &["--timeout", "45"]);
    let id = call_id(&c, &srv);
    agent.expect("media_active", Duration::from_secs(15), &srv);
    let work = tempfile::tempdir().expect("tempdir");
    let artifacts = common::repo().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("mkdir tests/artifacts");
    let mut page = common::browser::Page::open(
        "recording.test.mjs",
        &srv,
        &[
            ("AGENT_TOKEN", ALICE.to_string()),
            ("SUPER_TOKEN", SUPER.to_string()),
            (
                "SCREENSHOT",
                artifacts.join("recordings.png").display().to_string(),
            ),
        ],
        440.0,
        work.path(),
    );
    let shown = page.expect("recorded", 30, &srv);
    assert!(
        shown["text"]
            .as_str()
            .is_some_and(|t| t.contains("Recording")),
        "{shown}"
    );
    page.expect("paused", 10, &srv);
    page.expect("resumed", 10, &srv);
    c.finish(&srv);
    agent.finish(&srv);
    let listed = page.expect("listed", 45, &srv);
    assert!(
        listed["text"]
            .as_str()
            .is_some_and(|t| t.contains("Alice Smith")),
        "{listed}"
    );
    let played = page.expect("played", 20, &srv);
    let rec = finished_recording(&srv, &id);
    let secs = played["duration"].as_f64().unwrap_or(0.0);
    let ms = rec["duration_ms"].as_f64().unwrap_or(0.0);
    assert!((secs * 1000.0 - ms).abs() < 100.0, "{played} vs {rec}");
    assert!(
        rec["paused_ms"].as_i64().is_some_and(|p| p >= 1000),
        "paused in the page: {rec}"
    );
}

#[test]
fn recordings_older_than_the_retention_are_deleted_at_start() {
    let mut srv = server("\n[recording]\nretention_days = 30\n");
    srv.kill9();
    // What earlier runs left: a recording from 2020 and one from today.
    let dir = srv.dir.path().join("data/recordings");
    let today = chrono::Utc::now();
    let rows = [
        ("2020-01-01/old.wav", "2020-01-01T10:00:00.000Z".to_string()),
        (
            "today/new.wav",
            today.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    ];
    let url = format!("sqlite://{}", srv.db().display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let pool = sqlx::SqlitePool::connect(&url)
                .await
                .expect("open the store");
            for (path, at) in &rows {
                let file = dir.join(path);
                std::fs::create_dir_all(file.parent().expect("day")).expect("mkdir");
                std::fs::write(&file, b"RIFF").expect("write");
                sqlx::query(
                    "INSERT INTO recordings (call_id, agent, path, started_at, ended_at, state) \
                     VALUES ('c', 'alice', $1, $2, $2, 'complete')",
                )
                .bind(*path)
                .bind(at)
                .execute(&pool)
                .await
                .expect("insert");
            }
        });
    let srv = srv.restart().with_bearer(ADMIN);
    let list = || {
        let (_, _, body) = request(&srv, "GET", "/api/v1/recordings", SUPER);
        json(&String::from_utf8_lossy(&body))
    };
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let list = list();
            let paths: Vec<&str> = list["recordings"]
                .as_array()
                .map(|r| r.iter().filter_map(|x| x["path"].as_str()).collect())
                .unwrap_or_default();
            (paths == ["today/new.wav"]).then_some(())
        },
        || format!("the old one stays: {:#}\n{}", list(), srv.log()),
    );
    assert!(
        !dir.join("2020-01-01/old.wav").exists(),
        "its file is deleted"
    );
    assert!(!dir.join("2020-01-01").exists(), "and its empty day");
    assert!(dir.join("today/new.wav").exists(), "the recent one is kept");
}
