//! `callback-dispatch`: with N callbacks pending in one queue, how long from
//! an agent becoming available to the INVITE for that agent arriving at the
//! agent's phone?
//!
//! ```text
//! callback-dispatch --sip 127.0.0.1:5060 --api 127.0.0.1:8080 --admin-token T \
//!     --agent alice --password secret --agent-token A [--queue operator] \
//!     [--callbacks 10000] [--samples 300] [--warmup 10] [--gap-ms 50] \
//!     [--trunk-port P] [--pid PID] [--store sqlite] [--out FILE]
//! ```
//!
//! It is the agent's SIP phone (its own UDP socket on 127.0.0.1, REGISTER
//! with MD5 digest, hand-written SIP), fills the store with N callbacks
//! through `POST /api/v1/callbacks` (the path a web form takes), then per
//! sample: `POST /api/v1/agents/<id>/unpause` with the agent's own token
//! (what the agent page sends; the clock starts right before the request's
//! `write`), waits for the INVITE (arrival = the kernel's `SO_TIMESTAMPNS`
//! receive timestamp), answers 180, pauses the agent again through the API
//! (ringback withdraws the offer: CANCEL, 200, 487, ACK), so the next sample
//! starts from the same state: the same N callbacks pending and the same one
//! at the head of the line.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod procfs;
#[allow(dead_code)]
mod sip_phone;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{metric, summary, Args, Http};
use serde_json::json;
use sip_phone::{register, Agent, Msg, Phone};

const USAGE: &str = "usage: callback-dispatch --sip IP:PORT --api IP:PORT --admin-token T \
--agent ID --password PW --agent-token T [--queue operator] [--callbacks 10000] \
[--samples 300] [--warmup 10] [--gap-ms 50] [--trunk-port P] [--pid PID] [--store NAME] \
[--realm ringback] [--out FILE] [--label TEXT]";

fn metrics(api: &mut Http) -> String {
    api.call("GET", "/metrics", None, "")
        .map(|a| a.body)
        .unwrap_or_default()
}

fn pending(text: &str) -> f64 {
    ["scheduled", "retry_wait", "requested"]
        .iter()
        .filter_map(|s| metric(text, &format!("ringback_callbacks{{state=\"{s}\"}}")))
        .sum()
}

fn waiting(text: &str, queue: &str) -> f64 {
    metric(
        text,
        &format!("ringback_queue_waiting{{queue=\"{queue}\"}}"),
    )
    .unwrap_or(f64::NAN)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("callback-dispatch: {msg}");
    std::process::exit(1);
}

struct Sample {
    latency_ms: f64,
    api_ms: f64,
    callback: String,
    withdraw_ms: f64,
}

fn main() {
    let args = Args::parse(USAGE);
    let sip: SocketAddr = args
        .need("sip")
        .parse()
        .unwrap_or_else(|e| fail(format!("--sip: {e}")));
    let api_addr: SocketAddr = args
        .need("api")
        .parse()
        .unwrap_or_else(|e| fail(format!("--api: {e}")));
    let admin = args.need("admin-token");
    let agent_token = args.need("agent-token");
    let agent = Agent {
        id: args.need("agent"),
        password: args.need("password"),
        realm: args.get("realm").unwrap_or("ringback").to_string(),
    };
    let queue = args.get("queue").unwrap_or("operator").to_string();
    let n_callbacks: usize = args.num("callbacks", 10_000);
    let samples: usize = args.num("samples", 300);
    let warmup: usize = args.num("warmup", 10);
    let gap_ms: u64 = args.num("gap-ms", 50);
    let pid: Option<u32> = args.get("pid").and_then(|p| p.parse().ok());
    let store = args.get("store").unwrap_or("unknown").to_string();

    // The trunk: customers are never reached in this flow (the agent never
    // answers), so anything arriving here is counted as unexpected.
    let trunk_invites = Arc::new(AtomicU64::new(0));
    if let Some(port) = args.get("trunk-port").and_then(|p| p.parse::<u16>().ok()) {
        let sock = UdpSocket::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| fail(format!("cannot bind the trunk port {port}: {e}")));
        let count = Arc::clone(&trunk_invites);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = sock.recv(&mut buf) {
                if buf[..n].starts_with(b"INVITE ") {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    let mut phone = Phone::new().unwrap_or_else(|e| fail(format!("agent socket: {e}")));
    let mut api = Http::connect(api_addr).unwrap_or_else(|e| fail(format!("API {api_addr}: {e}")));
    let mut agent_api =
        Http::connect(api_addr).unwrap_or_else(|e| fail(format!("API {api_addr}: {e}")));
    let contact = format!("sip:{}@{}", agent.id, phone.local);
    let agent_path = |action: &str| format!("/api/v1/agents/{}/{action}", agent.id);

    // 1. The agent's phone registers (auto-login makes the agent available),
    //    and the agent pauses before any callback exists.
    register(&mut phone, sip, &agent, 3600).unwrap_or_else(|e| fail(format!("REGISTER: {e}")));
    eprintln!("registered {} from {}", agent.id, phone.local);
    let a = agent_api
        .call(
            "POST",
            &agent_path("pause"),
            Some(&agent_token),
            r#"{"reason":"bench: between samples"}"#,
        )
        .unwrap_or_else(|e| fail(format!("pause: {e}")));
    if a.status != 200 {
        // Already paused (a rerun against the same server) is fine.
        eprintln!("pause answered {}: {}", a.status, a.body);
    }

    // 2. Fill the store through the API (the path a web form takes).
    let before = pending(&metrics(&mut api));
    let t_fill = Instant::now();
    let (mut created, mut refused) = (0usize, 0usize);
    let mut first_refusal = String::new();
    let need = n_callbacks.saturating_sub(before as usize);
    for i in 0..need {
        let number = format!("+1202{:07}", 5_000_000 + i);
        let body = format!(
            r#"{{"number":"{number}","queue":"{queue}","context":"bench callback {i}: web form, question about invoice {i}"}}"#
        );
        let a = api
            .call("POST", "/api/v1/callbacks", Some(&admin), &body)
            .unwrap_or_else(|e| fail(format!("POST /api/v1/callbacks: {e}")));
        if a.status == 201 {
            created += 1;
        } else {
            refused += 1;
            if first_refusal.is_empty() {
                first_refusal = format!("{}: {}", a.status, a.body);
                eprintln!("callback refused: {first_refusal}");
            }
            if refused > 100 && created == 0 {
                fail("every callback is refused; are the queue's limits raised?");
            }
        }
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "  {} callbacks created ({:.0}/s)",
                i + 1,
                (i + 1) as f64 / t_fill.elapsed().as_secs_f64()
            );
        }
    }
    let fill_s = t_fill.elapsed().as_secs_f64();
    eprintln!("filled: {created} created, {refused} refused in {fill_s:.1} s");

    // Every callback must be waiting in the ACD queue before measuring.
    let t_wait = Instant::now();
    let mut m = metrics(&mut api);
    while waiting(&m, &queue) < n_callbacks as f64 && t_wait.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(200));
        m = metrics(&mut api);
    }
    let pending_start = pending(&m);
    let waiting_start = waiting(&m, &queue);
    eprintln!("pending callbacks {pending_start}, waiting in `{queue}` {waiting_start}");
    if waiting_start < n_callbacks as f64 {
        fail(format!(
            "only {waiting_start} of {n_callbacks} callbacks reached the queue"
        ));
    }
    // Let the store settle (the fill's last writes, a WAL checkpoint).
    std::thread::sleep(Duration::from_secs(2));

    // 3. Samples.
    let cpu = pid.map(procfs::CpuMeter::start);
    let mut out: Vec<Sample> = Vec::new();
    let mut unexpected = 0u64;
    let mut retransmitted_invites = 0u64;
    let mut rng = procfs::realtime_ns() | 1;
    let t_samples = Instant::now();
    for s in 0..warmup + samples {
        while phone.recv(Duration::ZERO).is_some() {}
        let t0 = procfs::realtime_ns();
        let t0i = Instant::now();
        agent_api
            .send("POST", &agent_path("unpause"), Some(&agent_token), "")
            .unwrap_or_else(|e| fail(format!("unpause: {e}")));
        // Wait for the INVITE.
        let (invite, src, t1) = loop {
            let Some((text, src, t)) = phone.recv(Duration::from_secs(5)) else {
                fail(format!("sample {s}: no INVITE within 5 s of unpause"));
            };
            match Msg::parse(&text) {
                Some(m) if m.method() == Some("INVITE") => break (m, src, t),
                Some(m) => {
                    unexpected += 1;
                    eprintln!("unexpected before INVITE: {}", m.first);
                }
                None => {}
            }
        };
        let tag = format!("agent{s}");
        phone.send(&invite.response(180, "Ringing", &tag, &contact), src);
        let api_answer = agent_api
            .recv()
            .unwrap_or_else(|e| fail(format!("unpause answer: {e}")));
        let api_ms = common::ms_since(t0i);
        if api_answer.status != 200 {
            fail(format!(
                "unpause answered {}: {}",
                api_answer.status, api_answer.body
            ));
        }
        let callback = invite.get("x-ringback-callback").unwrap_or("").to_string();
        if callback.is_empty() {
            fail(format!(
                "sample {s}: the INVITE is not a callback offer: {}",
                invite.first
            ));
        }
        // Withdraw: the agent pauses again while the phone rings.
        let tw = Instant::now();
        let a = agent_api
            .call(
                "POST",
                &agent_path("pause"),
                Some(&agent_token),
                r#"{"reason":"bench: between samples"}"#,
            )
            .unwrap_or_else(|e| fail(format!("pause: {e}")));
        if a.status != 200 {
            fail(format!("pause answered {}: {}", a.status, a.body));
        }
        let call_id = invite.get("call-id").unwrap_or("").to_string();
        let mut done = false;
        let mut sent_487: Option<(Instant, u32)> = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done && Instant::now() < deadline {
            if let Some((at, n)) = sent_487 {
                if at.elapsed() > Duration::from_millis(500 << n.min(3)) {
                    phone.send(
                        &invite.response(487, "Request Terminated", &tag, &contact),
                        src,
                    );
                    sent_487 = Some((Instant::now(), n + 1));
                }
            }
            let Some((text, from, _)) = phone.recv(Duration::from_millis(100)) else {
                continue;
            };
            let Some(m) = Msg::parse(&text) else { continue };
            let same = m.get("call-id") == Some(call_id.as_str());
            match m.method() {
                Some("CANCEL") if same => {
                    phone.send(&m.response(200, "OK", &tag, &contact), from);
                    phone.send(
                        &invite.response(487, "Request Terminated", &tag, &contact),
                        src,
                    );
                    sent_487 = Some((Instant::now(), 0));
                }
                Some("ACK") if same => done = true,
                Some("INVITE") if same => {
                    retransmitted_invites += 1;
                    phone.send(&invite.response(180, "Ringing", &tag, &contact), src);
                }
                Some("INVITE") => {
                    unexpected += 1;
                    eprintln!("unexpected second INVITE while paused");
                    phone.send(&m.response(486, "Busy Here", "busy", &contact), from);
                }
                Some("ACK") => {}
                Some(_) => phone.send(&m.response(200, "OK", &tag, &contact), from),
                None => {}
            }
        }
        if !done {
            fail(format!(
                "sample {s}: the offer was not withdrawn (no CANCEL/ACK)"
            ));
        }
        let latency_ms = (t1 as f64 - t0 as f64) / 1e6;
        if s >= warmup {
            out.push(Sample {
                latency_ms,
                api_ms,
                callback,
                withdraw_ms: common::ms_since(tw),
            });
        }
        if (s + 1) % 50 == 0 {
            eprintln!("  sample {}: {latency_ms:.3} ms", s + 1);
        }
        // A gap of gap_ms..2*gap_ms, so samples do not lock onto the
        // server's periodic work (1 s snapshots, the 5 s callback sync).
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(gap_ms + rng % (gap_ms + 1)));
    }
    let cpu_pct = cpu.map(|c| c.percent());
    let samples_s = t_samples.elapsed().as_secs_f64();

    let m = metrics(&mut api);
    let pending_end = pending(&m);
    let waiting_end = waiting(&m, &queue);
    // The agent stays paused; unregister the phone.
    let _ = register(&mut phone, sip, &agent, 0);

    let mut lat: Vec<f64> = out.iter().map(|s| s.latency_ms).collect();
    let mut api_ms: Vec<f64> = out.iter().map(|s| s.api_ms).collect();
    let mut withdraw: Vec<f64> = out.iter().map(|s| s.withdraw_ms).collect();
    let raw: Vec<f64> = lat.iter().map(|x| (x * 1000.0).round() / 1000.0).collect();
    let distinct: BTreeSet<&str> = out.iter().map(|s| s.callback.as_str()).collect();
    let lat_summary = summary(&mut lat);
    let (nproc, cpu_model) = procfs::machine();
    let p99 = lat_summary["p99"].as_f64().unwrap_or(f64::NAN);
    let result = json!({
        "benchmark": "callback-dispatch",
        "store": store,
        "label": args.get("label").unwrap_or(""),
        "timestamp_unix": procfs::realtime_ns() / 1_000_000_000,
        "machine": { "nproc": nproc, "cpu_model": cpu_model, "loadavg_end": procfs::loadavg() },
        "params": {
            "callbacks": n_callbacks, "samples": samples, "warmup": warmup, "gap_ms": gap_ms,
            "queue": queue,
            "fill": "POST /api/v1/callbacks (web requests, admin token)",
            "trigger": "POST /api/v1/agents/{id}/unpause with the agent's own token (the agent page's request)",
            "reset": "agent pauses while ringing: ringback CANCELs, 487, ACK",
            "start": "CLOCK_REALTIME right before the unpause request is written",
            "end": "SO_TIMESTAMPNS kernel receive time of the INVITE at the agent's socket",
        },
        "fill": {
            "created": created, "refused": refused, "already_pending": before,
            "seconds": (fill_s * 10.0).round() / 10.0,
            "per_second": if fill_s > 0.0 { (created as f64 / fill_s).round() } else { 0.0 },
            "first_refusal": first_refusal,
        },
        "pending": { "start": pending_start, "end": pending_end },
        "queue_waiting": { "start": waiting_start, "end": waiting_end },
        "latency_ms": lat_summary,
        "api_unpause_answer_ms": summary(&mut api_ms),
        "withdraw_ms": summary(&mut withdraw),
        "samples_ms": raw,
        "callbacks_offered": distinct.len(),
        "unexpected_messages": unexpected,
        "invite_retransmissions": retransmitted_invites,
        "trunk_invites": trunk_invites.load(Ordering::Relaxed),
        "server_cpu_pct_during_samples": cpu_pct.map(|c| (c * 10.0).round() / 10.0),
        "samples_seconds": (samples_s * 10.0).round() / 10.0,
        "target_p99_ms": 10.0,
        "target_met": p99 < 10.0,
    });
    eprintln!(
        "{store}: {} samples, p50 {} ms, p90 {} ms, p99 {} ms, max {} ms; pending {pending_start} → {pending_end}",
        out.len(),
        result["latency_ms"]["p50"],
        result["latency_ms"]["p90"],
        result["latency_ms"]["p99"],
        result["latency_ms"]["max"],
    );
    match args.get("out") {
        Some(path) => common::write_json(path, &result),
        None => println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        ),
    }
}
