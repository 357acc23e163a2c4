//! `webrtc-load`: N fake browsers calling a public number of a running
//! ringback the way the `/call` page does; measures set-up time, the audio
//! the browsers receive, and the server's CPU: "browser legs per core".
//!
//! ```text
//! webrtc-load --api 127.0.0.1:8080 --pid $(pidof ringback) --legs 100 \
//!             [--rate 50] [--setup-threads 8] [--settle 3] [--window 20] \
//!             [--number 2000] [--rx-threads 1] [--timeout 15] [--out FILE] [--label TEXT]
//! ```
//!
//! Each leg: `POST /api/v1/webcall/tokens`, the signalling WebSocket, a
//! JSEP offer (PCMU + telephone-event, rtcp-mux, `setup:actpass`, our own
//! certificate's fingerprint), the answer; a nominating STUN check; the DTLS
//! 1.2 handshake as client (dimpl), the server's certificate checked against
//! its `a=fingerprint`, SRTP keys exported. From then on (while later legs
//! are still being set up) it sends a 20 ms PCMU tone in SRTP, a consent
//! check every 5 s, one RFC 4733 key ('5', which the benchmark's hold queue
//! ignores) after the ramp, and opens and times every packet the server
//! sends. Set-ups start at `--rate` per second on `--setup-threads` workers.

#[allow(dead_code)]
mod common;
mod pacer;
#[allow(dead_code)]
mod procfs;
#[allow(dead_code)]
mod rx;
mod webrtc_leg;
mod webrtc_media;
mod webrtc_stun;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{summary, Args, Http};
use serde_json::json;
use tungstenite::{Message, WebSocket};
use webrtc_leg::{Failure, Identity, Times};
use webrtc_media::{MediaCtl, RxLeg, TxLeg};

const USAGE: &str = "usage: webrtc-load --api IP:PORT [--pid PID] [--legs N] [--rate PER_S] \
[--setup-threads T] [--settle S] [--window S] [--number NUM] [--rx-threads T] [--rx-nap-ms MS] \
[--timeout S] [--out FILE] [--label TEXT]";

/// A leg that came up, as the driver keeps it.
struct Up {
    index: usize,
    ws: WebSocket<TcpStream>,
    times: Times,
    hung_up_by_server: bool,
}

/// The server's counters this benchmark checks.
const METRICS: [&str; 6] = [
    "ringback_dtmf_rfc4733_total",
    "ringback_srtp_auth_failures_total",
    "ringback_srtp_replayed_total",
    "ringback_srtp_malformed_total",
    "ringback_web_calls_total",
    "ringback_web_calls_refused_total",
];

fn scrape(api: SocketAddr) -> BTreeMap<&'static str, f64> {
    common::scrape(api, &METRICS)
}

fn main() {
    let args = Args::parse(USAGE);
    let api: SocketAddr = args.need("api").parse().unwrap_or_else(|_| {
        eprintln!("--api: expected IP:PORT\n{USAGE}");
        std::process::exit(2);
    });
    let pid: Option<u32> = args.get("pid").and_then(|p| p.parse().ok());
    let legs: usize = args.num("legs", 100);
    let rate: f64 = args.num("rate", 50.0_f64).max(0.1);
    let workers: usize = args.num("setup-threads", 8usize).max(1);
    let settle: f64 = args.num("settle", 3.0);
    let window: f64 = args.num("window", 20.0);
    let number = args.get("number").unwrap_or("2000").to_string();
    let rx_threads: usize = args.num("rx-threads", 1usize).max(1);
    let nap = Duration::from_secs_f64(args.num("rx-nap-ms", 2.0_f64) / 1000.0);
    let timeout = Duration::from_secs_f64(args.num("timeout", 15.0));
    let label = args.get("label").unwrap_or("").to_string();
    let nofile = procfs::raise_nofile();
    if (2 * legs + 64) as u64 > nofile {
        eprintln!(
            "webrtc-load: {legs} legs need ~{} descriptors; the limit is {nofile}",
            2 * legs + 64
        );
        std::process::exit(2);
    }
    let identity = match Identity::generate() {
        Ok(i) => Arc::new(i),
        Err(e) => {
            eprintln!("webrtc-load: cannot make a certificate: {e}");
            std::process::exit(1);
        }
    };
    let metrics0 = scrape(api);
    let rss_idle = pid.and_then(procfs::rss_kib).unwrap_or(0);
    // The idle server's own CPU (timers, housekeeping), to subtract.
    let idle_cpu_pct = pid.map(|p| {
        let m = procfs::CpuMeter::start(p);
        std::thread::sleep(Duration::from_secs(3));
        m.percent()
    });

    // Media threads first: a leg starts sending as soon as its keys are up,
    // or the server's 4 s idle timeout would end it during the ramp.
    let ctl = MediaCtl::new();
    let (tx_new, tx_rx) = channel::<TxLeg>();
    let sender = {
        let ctl = Arc::clone(&ctl);
        std::thread::Builder::new()
            .name("srtp-tx".into())
            .spawn(move || webrtc_media::send_loop(tx_rx, ctl))
            .unwrap_or_else(|e| panic!("cannot spawn the sender: {e}"))
    };
    let mut rx_new: Vec<Sender<RxLeg>> = Vec::new();
    let mut receivers = Vec::new();
    for t in 0..rx_threads {
        let (s, r) = channel::<RxLeg>();
        rx_new.push(s);
        let ctl = Arc::clone(&ctl);
        receivers.push(
            std::thread::Builder::new()
                .name(format!("srtp-rx-{t}"))
                .spawn(move || webrtc_media::recv_loop(r, ctl, nap))
                .unwrap_or_else(|e| panic!("cannot spawn a receiver: {e}")),
        );
    }

    // Ramp: set-ups start at `rate`, on `workers` threads.
    eprintln!(
        "webrtc-load: {legs} browser legs to {api} (number {number}) at {rate}/s on {workers} set-up threads"
    );
    let up: Arc<Mutex<Vec<Up>>> = Arc::new(Mutex::new(Vec::with_capacity(legs)));
    let failures: Arc<Mutex<Vec<(usize, Failure)>>> = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let ramp_start = Instant::now();
    let ramp_cpu = pid.map(procfs::CpuMeter::start);
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (identity, up, failures, next) = (
                Arc::clone(&identity),
                Arc::clone(&up),
                Arc::clone(&failures),
                Arc::clone(&next),
            );
            let (tx_new, rx_new, number) = (tx_new.clone(), rx_new.clone(), number.clone());
            std::thread::Builder::new()
                .name(format!("setup-{w}"))
                .spawn(move || {
                    let mut http = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= legs {
                            return;
                        }
                        let due = ramp_start + Duration::from_secs_f64(i as f64 / rate);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        if http.is_none() {
                            http = Http::connect(api).ok();
                        }
                        let Some(h) = http.as_mut() else {
                            let f = webrtc_leg::Failure {
                                phase: "token",
                                detail: "cannot connect to the API".into(),
                            };
                            lock(&failures).push((i, f));
                            continue;
                        };
                        match webrtc_leg::connect(&identity, h, api, &number, timeout) {
                            Ok(leg) => {
                                rx::prepare_socket(leg.socket.as_raw_fd(), 0);
                                let socket = Arc::new(leg.socket);
                                let consent = (leg.ice_username, leg.ice_pwd, leg.tiebreaker);
                                let tx = TxLeg::new(
                                    Arc::clone(&socket),
                                    &leg.local,
                                    leg.ssrc,
                                    leg.dtmf_pt,
                                    consent,
                                );
                                let _ = tx_new.send(tx);
                                let _ = rx_new[i % rx_new.len()].send((i, socket, leg.remote));
                                let _ = leg.ws.get_ref().set_nonblocking(true);
                                lock(&up).push(Up {
                                    index: i,
                                    ws: leg.ws,
                                    times: leg.times,
                                    hung_up_by_server: false,
                                });
                            }
                            Err(f) => {
                                if lock(&failures).len() < 5 {
                                    eprintln!("  leg {i}: {} failed: {}", f.phase, f.detail);
                                }
                                lock(&failures).push((i, f));
                            }
                        }
                    }
                })
                .unwrap_or_else(|e| panic!("cannot spawn a set-up thread: {e}"))
        })
        .collect();
    let mut last = Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "  ramp: {} up, {} failed",
                lock(&up).len(),
                lock(&failures).len()
            );
            last = Instant::now();
        }
    }
    for h in handles {
        let _ = h.join();
    }
    let ramp_s = ramp_start.elapsed().as_secs_f64();
    let ramp_cpu_s = ramp_cpu.as_ref().map(|m| m.percent() / 100.0 * ramp_s);
    let mut up = std::mem::take(&mut *lock(&up));
    let failures = std::mem::take(&mut *lock(&failures));
    eprintln!(
        "  ramp done in {ramp_s:.1} s: {} up, {} failed",
        up.len(),
        failures.len()
    );

    // Every leg presses its key now; settle; measure.
    ctl.press.store(true, Ordering::SeqCst);
    watch(&mut up, Duration::from_secs_f64(settle));
    let up_at_start: Vec<usize> = up
        .iter()
        .filter(|u| !u.hung_up_by_server)
        .map(|u| u.index)
        .collect();
    let server_cpu = pid.map(procfs::CpuMeter::start);
    let self_cpu = procfs::CpuMeter::start(std::process::id());
    let system_cpu = procfs::SystemCpu::start();
    let w0 = procfs::realtime_ns();
    ctl.win_start.store(w0, Ordering::SeqCst);
    let sent0 = ctl.sent.load(Ordering::Relaxed);
    watch(&mut up, Duration::from_secs_f64(window));
    let w1 = procfs::realtime_ns();
    ctl.win_end.store(w1, Ordering::SeqCst);
    let sent_in_window = ctl.sent.load(Ordering::Relaxed) - sent0;
    let server_cpu_pct = server_cpu.map(|m| m.percent());
    let self_cpu_pct = self_cpu.percent();
    let system_cpu_pct = system_cpu.percent();
    let rss_end = pid.and_then(procfs::rss_kib).unwrap_or(0);
    let threads = pid.and_then(procfs::threads);
    let window_s = (w1 - w0) as f64 / 1e9;
    // Let the last packets of the window be read before the counters are taken.
    std::thread::sleep(Duration::from_millis(100));
    let metrics1 = scrape(api);

    // Hang up (the page's "hangup" frame), stop the media threads.
    for u in &mut up {
        let _ = u.ws.get_ref().set_nonblocking(false);
        let _ = u.ws.send(Message::text("{\"type\":\"hangup\"}"));
        let _ = u.ws.close(None);
        let _ = u.ws.flush();
    }
    ctl.stop.store(true, Ordering::SeqCst);
    let tx = sender.join().unwrap_or_default();
    let mut rxs = Vec::new();
    for r in receivers {
        match r.join() {
            Ok(Ok(r)) => rxs.push(r),
            Ok(Err(e)) => eprintln!("webrtc-load: receiver failed: {e}"),
            Err(_) => eprintln!("webrtc-load: a receiver panicked"),
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let metrics2 = scrape(api);

    // Merge.
    let mut jitter = rx::Jitter::default();
    let (mut auth, mut replays, mut malformed, mut stun, mut dtls, mut rtcp, mut other_pt) =
        (0, 0, 0, 0, 0, 0, 0);
    let (mut kdrops, mut rx_pkts, mut rx_cpu) = (0, 0, 0.0);
    let mut stats = vec![webrtc_media::RxStat::default(); legs];
    for r in &rxs {
        jitter.merge(&r.jitter);
        auth += r.auth_failures;
        replays += r.replays;
        malformed += r.malformed;
        stun += r.stun;
        dtls += r.dtls;
        rtcp += r.rtcp;
        other_pt += r.other_pt;
        kdrops += r.kernel_drops;
        rx_pkts += r.packets;
        rx_cpu += r.cpu_s;
        for &(g, st) in &r.legs {
            if let Some(s) = stats.get_mut(g) {
                *s = st;
            }
        }
    }
    let measured: Vec<usize> = up_at_start
        .iter()
        .copied()
        .filter(|&i| !up.iter().any(|u| u.index == i && u.hung_up_by_server))
        .collect();
    let n = measured.len();
    let nominal_per = 50.0 * window_s;
    let received: u64 = measured
        .iter()
        .map(|&i| u64::from(stats[i].in_window))
        .sum();
    let voiced: u64 = measured.iter().map(|&i| u64::from(stats[i].voiced)).sum();
    let seq_lost: u64 = measured.iter().map(|&i| u64::from(stats[i].seq_lost)).sum();
    let reordered: u64 = measured
        .iter()
        .map(|&i| u64::from(stats[i].reordered))
        .sum();
    let late: u64 = measured.iter().map(|&i| u64::from(stats[i].late)).sum();
    let below_99 = measured
        .iter()
        .filter(|&&i| f64::from(stats[i].in_window) < 0.99 * nominal_per)
        .count();
    let silent = measured
        .iter()
        .filter(|&&i| stats[i].in_window == 0)
        .count();
    let nominal = nominal_per * n as f64;
    let pct = if nominal > 0.0 {
        100.0 * received as f64 / nominal
    } else {
        0.0
    };
    let p = |q| jitter.percentile_ms(q);
    let (j50, j99, j999, jmax) = (p(0.5), p(0.99), p(0.999), jitter.max_ms());
    let mut by_phase: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, f) in &failures {
        *by_phase.entry(f.phase).or_default() += 1;
    }
    let first_failures: Vec<String> = failures
        .iter()
        .take(5)
        .map(|(i, f)| format!("leg {i}: {}: {}", f.phase, f.detail))
        .collect();
    let times = |f: fn(&Times) -> f64| {
        let mut v: Vec<f64> = up.iter().map(|u| f(&u.times)).collect();
        summary(&mut v)
    };
    let total = times(|t| t.total_ms);
    let delta = |a: &BTreeMap<&str, f64>, b: &BTreeMap<&str, f64>, k: &str| {
        b.get(k).copied().unwrap_or(f64::NAN) - a.get(k).copied().unwrap_or(f64::NAN)
    };
    let dtmf_server = delta(&metrics0, &metrics1, "ringback_dtmf_rfc4733_total");
    let srv_auth = delta(&metrics0, &metrics1, "ringback_srtp_auth_failures_total");
    let srv_replay = delta(&metrics0, &metrics1, "ringback_srtp_replayed_total");
    let cores_used = server_cpu_pct.map(|c| c / 100.0);
    let legs_per_core = cores_used.filter(|&c| c > 0.0).map(|c| n as f64 / c);
    // Above the idle server: what the legs themselves cost.
    let cores_marginal = cores_used.map(|c| c - idle_cpu_pct.unwrap_or(0.0) / 100.0);
    let legs_per_core_marginal = cores_marginal.filter(|&c| c > 0.0).map(|c| n as f64 / c);
    // Server CPU per set-up: the ramp's CPU minus the idle server's and the
    // media of the legs already up (on average half of them during a
    // linear ramp, each costing what it costs in the window).
    let setup_ms_estimate = match (ramp_cpu_s, cores_marginal, idle_cpu_pct) {
        (Some(ramp), Some(media), Some(idle)) if !up.is_empty() => {
            let rest = ramp - idle / 100.0 * ramp_s - media * ramp_s / 2.0;
            Some(1000.0 * rest / up.len() as f64)
        }
        _ => None,
    };
    let rss_per_leg = if n > 0 {
        rss_end.saturating_sub(rss_idle) as f64 / n as f64
    } else {
        0.0
    };
    let other_pct = (system_cpu_pct - server_cpu_pct.unwrap_or(0.0) - self_cpu_pct).max(0.0);
    let (nproc, cpu_model) = procfs::machine();

    println!();
    println!(
        "{:>5} {:>5} {:>6} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8}",
        "legs",
        "up",
        "failed",
        "hs p50",
        "hs p99",
        "pkts%",
        "late",
        "jit50",
        "jit99",
        "jitmax",
        "authF",
        "srvCPU%",
        "legs/core",
        "genCPU%"
    );
    println!(
        "{:>5} {:>5} {:>6} {:>8.1} {:>8.1} {:>8.3} {:>7} {:>7.3} {:>7.3} {:>7.2} {:>7} {:>8.1} {:>9.0} {:>8.1}",
        legs,
        n,
        failures.len(),
        total["p50"].as_f64().unwrap_or(f64::NAN),
        total["p99"].as_f64().unwrap_or(f64::NAN),
        pct,
        late,
        j50,
        j99,
        jmax,
        auth,
        server_cpu_pct.unwrap_or(f64::NAN),
        legs_per_core.unwrap_or(f64::NAN),
        self_cpu_pct,
    );
    println!(
        "(hs = token → SRTP keys, ms; late = inter-arrival > 40 ms; jitter = |inter-arrival − 20 ms| \
         from kernel timestamps, ms; window {window_s:.1} s; voiced {:.1} %; seq gaps {seq_lost}; \
         server DTMF +{dtmf_server} for {} keys sent, server SRTP auth failures +{srv_auth}; \
         we sent {:.2} % of nominal packets in the window (sender phase late p99 {:.1} ms); \
         idle server {:.1} % CPU; server CPU per set-up ≈ {:.1} ms; machine CPU {system_cpu_pct:.0} %, other processes {other_pct:.0} %)",
        if received > 0 { 100.0 * voiced as f64 / received as f64 } else { 0.0 },
        tx.keys,
        100.0 * sent_in_window as f64 / (50.0 * window_s * up_at_start.len().max(1) as f64),
        tx.late_p99_ms,
        idle_cpu_pct.unwrap_or(f64::NAN),
        setup_ms_estimate.unwrap_or(f64::NAN),
    );

    let result = json!({
        "benchmark": "webrtc-browser-legs",
        "label": label,
        "timestamp_unix": w0 / 1_000_000_000,
        "machine": { "nproc": nproc, "cpu_model": cpu_model },
        "params": {
            "legs": legs, "rate_per_s": rate, "setup_threads": workers, "settle_s": settle,
            "window_s": window_s, "number": number, "rx_threads": rx_threads,
            "dtls": "1.2 client (dimpl)", "codec": "PCMU", "ptime_ms": 20,
        },
        "legs": {
            "target": legs, "up": up.len(), "measured": n, "failed": failures.len(),
            "failed_by_phase": by_phase, "first_failures": first_failures,
            "hung_up_by_server": up.iter().filter(|u| u.hung_up_by_server).count(),
            "ramp_s": ramp_s,
        },
        "setup_ms": {
            "token_to_keys": total,
            "token": times(|t| t.token_ms),
            "websocket_offer_answer": times(|t| t.signalling_ms),
            "ice_check": times(|t| t.ice_ms),
            "dtls_handshake": times(|t| t.dtls_ms),
        },
        "received": {
            "packets_in_window": received, "nominal": nominal, "received_pct": pct,
            "voiced_pct": if received > 0 { 100.0 * voiced as f64 / received as f64 } else { 0.0 },
            "seq_lost": seq_lost, "reordered_or_dup": reordered, "late_over_40ms": late,
            "legs_below_99pct": below_99, "legs_silent": silent,
            "jitter_ms": { "p50": j50, "p99": j99, "p999": j999, "max": jmax },
            "srtp_auth_failures": auth, "srtp_replays": replays, "srtp_malformed": malformed,
            "other_payload_types": other_pt, "stun": stun, "dtls_after_handshake": dtls,
            "srtcp": rtcp,
        },
        "sent": {
            "srtp_packets": tx.packets,
            "in_window": sent_in_window,
            "in_window_pct_of_nominal": 100.0 * sent_in_window as f64 / (50.0 * window_s * up_at_start.len().max(1) as f64), "dtmf_packets": tx.dtmf_packets, "keys": tx.keys,
            "consent_checks": tx.consent_checks, "send_errors": tx.send_errors,
            "seal_errors": tx.seal_errors,
            "phase_late_ms": { "p99": tx.late_p99_ms, "max": tx.late_max_ms },
        },
        "server": {
            "pid": pid, "cpu_pct_window": server_cpu_pct, "cores_used": cores_used,
            "browser_legs_per_core": legs_per_core,
            "cpu_pct_idle": idle_cpu_pct,
            "browser_legs_per_core_above_idle": legs_per_core_marginal,
            "cpu_s_ramp": ramp_cpu_s,
            "cpu_ms_per_setup_upper_bound": ramp_cpu_s.map(|s| 1000.0 * s / up.len().max(1) as f64),
            "cpu_ms_per_setup_estimate": setup_ms_estimate,
            "rss_idle_kib": rss_idle, "rss_end_kib": rss_end, "rss_per_leg_kib": rss_per_leg,
            "threads": threads,
            "dtmf_rfc4733_delta": dtmf_server, "srtp_auth_failures_delta": srv_auth,
            "srtp_replayed_delta": srv_replay,
            "web_calls_delta": delta(&metrics0, &metrics1, "ringback_web_calls_total"),
            "web_calls_refused_delta": delta(&metrics0, &metrics1, "ringback_web_calls_refused_total"),
            "srtp_auth_failures_delta_teardown": delta(&metrics1, &metrics2, "ringback_srtp_auth_failures_total"),
        },
        "generator": {
            "cpu_pct": self_cpu_pct, "rx_cpu_s": rx_cpu, "tx_cpu_s": tx.cpu_s,
            "rx_datagrams": rx_pkts, "kernel_drops": kdrops,
            "machine_cpu_pct": system_cpu_pct, "other_procs_cpu_pct": other_pct,
        },
    });
    if let Some(out) = args.get("out") {
        common::write_json(out, &result);
    }
}

/// Runs for `d`, reading the legs' signalling sockets once a second: a
/// `{"type":"hangup"}` from the server marks the leg.
fn watch(up: &mut [Up], d: Duration) {
    let until = Instant::now() + d;
    loop {
        for u in up.iter_mut().filter(|u| !u.hung_up_by_server) {
            // Non-blocking: WouldBlock ends the loop.
            while let Ok(m) = u.ws.read() {
                match m {
                    Message::Text(t) if t.as_str().contains("hangup") => u.hung_up_by_server = true,
                    Message::Close(_) => u.hung_up_by_server = true,
                    _ => {}
                }
            }
        }
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_secs(1)));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
