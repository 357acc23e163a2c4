//! `phone-load`'s figures: the window's measurements, the server's own
//! per-call counters (its `call ended` log lines), the floor from
//! `udp-floor --out`, the JSON result and the printed summary.
//!
//! * Packets both ways, for the streams (callers' and agents') that sent for
//!   the whole window: received in the window against 50 × window (what
//!   ringback sent them), and sent in the window against the same nominal
//!   (whether the generator kept up). What ringback *received* comes from
//!   its per-call counters (`rtp_received` in the `call ended` log line,
//!   with `--server-log`) against what we sent on that call, for the calls
//!   we hung up ourselves (audio stopped 60 ms before the BYE, so both
//!   counts cover the same packets), and from
//!   `ringback_rtp_packets_received_total` when the server exports it.
//! * Server cost per packet: its CPU seconds in the window / (packets it
//!   sent + packets it received in the window), where sent = every packet
//!   our receivers got in the window and received = every packet our sender
//!   sent in the window (loopback loses nothing the kernel does not count).
//!   The floor for the same mix = sent × the floor's send cost + received ×
//!   its receive cost (`udp-floor`, sendto from per-call sockets); the ratio
//!   is the issue-16 figure. Also given: the same against the `sendmmsg`
//!   floor, and with the media clocks' 1 ms timer wake-ups added to the floor;
//!   and against the per-call-socket floor (`udp-floor --mode percall`'s
//!   receive cost, which a port per call cannot go below, plus the wake-ups).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::common::{summary, Args};
use crate::phone_agents::{Agents, LegState};
use crate::phone_calls::{Callers, End, Timing};
use crate::phone_media::{Kind, Media};
use crate::phone_tx::TxResult;
use crate::procfs;
use crate::rx::{self, Control, RxResult};

/// Server counters this benchmark reads from `/metrics`.
const METRICS: [&str; 5] = [
    "ringback_dtmf_rfc4733_total",
    "ringback_rtp_packets_sent_total",
    "ringback_rtp_packets_received_total",
    "ringback_calls_answered_total",
    "ringback_media_clock_overruns_total",
];

fn scrape(api: Option<SocketAddr>) -> BTreeMap<&'static str, f64> {
    api.map(|a| crate::common::scrape(a, &METRICS))
        .unwrap_or_default()
}

/// The server at one moment: counters and memory.
pub struct Snapshot {
    metrics: BTreeMap<&'static str, f64>,
    rss_kib: u64,
}

impl Snapshot {
    /// Read `/metrics` (if `api`) and the server's RSS (if `pid`).
    pub fn take(pid: Option<u32>, api: Option<SocketAddr>) -> Snapshot {
        Snapshot {
            metrics: scrape(api),
            rss_kib: pid.and_then(procfs::rss_kib).unwrap_or(0),
        }
    }

    fn delta(&self, later: &Snapshot, name: &str) -> Option<f64> {
        Some(later.metrics.get(name)? - self.metrics.get(name)?)
    }
}

/// The measurement window.
pub struct Window {
    pid: Option<u32>,
    api: Option<SocketAddr>,
    /// CLOCK_REALTIME ns at the start and end.
    pub w0: u64,
    w1: u64,
    server_cpu: Option<procfs::CpuMeter>,
    self_cpu: procfs::CpuMeter,
    system_cpu: procfs::SystemCpu,
    server_cpu_s0: f64,
    udp0: Vec<(String, u64)>,
    load_before: f64,
    start: Snapshot,
    end_snap: Option<Snapshot>,
    rss_peak: u64,
    up: Vec<usize>,
    // Filled by `end`.
    server_cpu_pct: Option<f64>,
    server_cpu_s: Option<f64>,
    self_cpu_pct: f64,
    system_cpu_pct: f64,
    udp1: Vec<(String, u64)>,
    threads: Option<u64>,
    clock_threads: usize,
    fds: Option<usize>,
}

impl Window {
    /// Start measuring: meters, counters, and the receivers' window.
    pub fn start(pid: Option<u32>, api: Option<SocketAddr>, ctl: &Control) -> Window {
        let start = Snapshot::take(pid, api);
        let w = Window {
            pid,
            api,
            w0: procfs::realtime_ns(),
            w1: 0,
            server_cpu: pid.map(procfs::CpuMeter::start),
            self_cpu: procfs::CpuMeter::start(std::process::id()),
            system_cpu: procfs::SystemCpu::start(),
            server_cpu_s0: pid.and_then(procfs::cpu_seconds).unwrap_or(0.0),
            udp0: procfs::udp_counters(),
            load_before: procfs::loadavg(),
            start,
            end_snap: None,
            rss_peak: 0,
            up: Vec::new(),
            server_cpu_pct: None,
            server_cpu_s: None,
            self_cpu_pct: 0.0,
            system_cpu_pct: 0.0,
            udp1: Vec::new(),
            threads: None,
            clock_threads: 0,
            fds: None,
        };
        ctl.win_start
            .store(w.w0, std::sync::atomic::Ordering::SeqCst);
        w
    }

    /// Once a second: RSS and calls up.
    pub fn sample(&mut self, up: usize) {
        self.rss_peak = self
            .rss_peak
            .max(self.pid.and_then(procfs::rss_kib).unwrap_or(0));
        self.up.push(up);
    }

    /// Close the window.
    pub fn end(&mut self, up: usize, ctl: &Control) {
        self.w1 = procfs::realtime_ns();
        ctl.win_end
            .store(self.w1, std::sync::atomic::Ordering::SeqCst);
        self.server_cpu_pct = self.server_cpu.as_ref().map(procfs::CpuMeter::percent);
        self.server_cpu_s = self
            .pid
            .and_then(procfs::cpu_seconds)
            .map(|c| c - self.server_cpu_s0);
        self.self_cpu_pct = self.self_cpu.percent();
        self.system_cpu_pct = self.system_cpu.percent();
        self.udp1 = procfs::udp_counters();
        self.sample(up);
        self.threads = self.pid.and_then(procfs::threads);
        self.fds = self.pid.and_then(procfs::open_fds);
        self.clock_threads = self.pid.map_or(0, clock_threads);
        self.end_snap = Some(Snapshot::take(self.pid, self.api));
    }

    fn secs(&self) -> f64 {
        self.w1.saturating_sub(self.w0) as f64 / 1e9
    }
}

/// Threads of `pid` named `media-clock-*` (ringback's media clocks).
fn clock_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with("media-clock"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Everything the result is made of.
pub struct Run<'a> {
    /// Command line.
    pub args: &'a Args,
    /// The callers.
    pub callers: &'a Callers,
    /// The agent stand-ins.
    pub agents: &'a Agents,
    /// Stream bookkeeping.
    pub media: &'a Media,
    /// The sender's result.
    pub tx: &'a TxResult,
    /// The receivers' results.
    pub rx: &'a [RxResult],
    /// The window.
    pub win: &'a Window,
    /// Server snapshot before the first call.
    pub before: &'a Snapshot,
    /// Server snapshot after the last call.
    pub after: &'a Snapshot,
    /// Shares of browse, listen, agent, early.
    pub mix: [f64; 4],
    /// Caller slots.
    pub n: usize,
    /// Agent stand-ins.
    pub agents_n: usize,
    /// Calls per second (ramp and teardown).
    pub rate: f64,
    /// Ramp duration, s.
    pub ramp_s: f64,
    /// Shared sockets.
    pub k: usize,
    /// Callers' timing.
    pub timing: Timing,
    /// Agents' talk time, s.
    pub talk: (f64, f64),
    /// Stream ids available.
    pub capacity: usize,
}

/// Per-stream receive counts merged over the receiver threads.
struct Merged {
    rx_in_window: Vec<u64>,
    seq_lost: Vec<u64>,
    clock: rx::Jitter,
    relayed: rx::Jitter,
    kernel_drops: u64,
    other: u64,
    cpu_s: f64,
}

fn merge(rx: &[RxResult], streams: usize) -> Merged {
    let mut m = Merged {
        rx_in_window: vec![0; streams],
        seq_lost: vec![0; streams],
        clock: rx::Jitter::default(),
        relayed: rx::Jitter::default(),
        kernel_drops: 0,
        other: 0,
        cpu_s: 0.0,
    };
    for r in rx {
        m.clock.merge(&r.jitter);
        m.relayed.merge(&r.relayed);
        m.kernel_drops += r.kernel_drops;
        m.other += r.other;
        m.cpu_s += r.cpu_s;
        for (i, s) in r.streams.iter().enumerate().take(streams) {
            m.rx_in_window[i] += u64::from(s.in_window);
            m.seq_lost[i] += u64::from(s.seq_lost);
        }
    }
    m
}

fn pct(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        100.0 * a / b
    } else {
        f64::NAN
    }
}

/// Packets both ways for the streams of one kind that sent all window long.
fn packets(run: &Run, m: &Merged, kind: Kind) -> Value {
    let (w0, w1) = (run.win.w0, run.win.w1);
    let nominal_per = 50.0 * run.win.secs();
    let ids: Vec<usize> = run
        .media
        .meta
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == kind && s.covers(w0, w1))
        .map(|(i, _)| i)
        .collect();
    let received: u64 = ids.iter().map(|&i| m.rx_in_window[i]).sum();
    let sent: u64 = ids
        .iter()
        .map(|&i| u64::from(run.tx.per_stream.get(i).map_or(0, |s| s.in_window)))
        .sum();
    let nominal = nominal_per * ids.len() as f64;
    let below = |v: u64| (v as f64) < 0.999 * nominal_per;
    json!({
        "streams": ids.len(),
        "nominal": nominal,
        "received_from_server": received,
        "received_pct": pct(received as f64, nominal),
        "streams_received_below_99_9pct": ids.iter().filter(|&&i| below(m.rx_in_window[i])).count(),
        "streams_silent": ids.iter().filter(|&&i| m.rx_in_window[i] == 0).count(),
        "seq_lost": ids.iter().map(|&i| m.seq_lost[i]).sum::<u64>(),
        "sent_by_generator": sent,
        "sent_pct": pct(sent as f64, nominal),
    })
}

/// What the server counted per call (`call ended` lines of its JSON log),
/// against what we sent on those calls.
fn server_counts(run: &Run) -> Value {
    let Some(path) = run.args.get("server-log") else {
        return Value::Null;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return json!({ "error": format!("cannot read {path}") });
    };
    let runid = run.callers.uac.run_id();
    let (mut calls, mut ours, mut got, mut sent, mut below, mut all_got, mut all_sent) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["fields"]["message"].as_str() != Some("call ended") {
            continue;
        }
        calls += 1;
        let Some(i) = v["span"]["call_id"]
            .as_str()
            .and_then(|c| crate::sip::call_index(&runid, c))
        else {
            continue;
        };
        let Some(c) = run.callers.calls.get(i) else {
            continue;
        };
        let received = v["fields"]["rtp_received"].as_u64().unwrap_or(0);
        let ours_sent = u64::from(
            run.tx
                .per_stream
                .get(c.stream as usize)
                .map_or(0, |s| s.total),
        );
        all_got += received;
        all_sent += ours_sent;
        if c.end == End::ByUs {
            ours += 1;
            got += received;
            sent += ours_sent;
            if (received as f64) < 0.999 * ours_sent as f64 {
                below += 1;
            }
        }
    }
    json!({
        "source": "the server's `call ended` log lines (rtp_received per call)",
        "calls_logged": calls,
        "calls_we_hung_up": ours,
        "received_by_server": got,
        "sent_by_us": sent,
        "received_pct": pct(got as f64, sent as f64),
        "calls_below_99_9pct": below,
        "all_calls_received_by_server": all_got,
        "all_calls_sent_by_us": all_sent,
    })
}

/// Key → action figures over `keys`.
fn key_stats(keys: &[&crate::phone_calls::KeyRec]) -> Value {
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut action: Vec<f64> = keys
        .iter()
        .filter_map(|k| match (k.prompt_ns, k.agent_ns) {
            (Some(p), Some(a)) => Some(ms(p.min(a))),
            (Some(p), None) => Some(ms(p)),
            (None, Some(a)) => Some(ms(a)),
            (None, None) => None,
        })
        .collect();
    let mut prompt: Vec<f64> = keys.iter().filter_map(|k| k.prompt_ns.map(ms)).collect();
    let mut agent: Vec<f64> = keys.iter().filter_map(|k| k.agent_ns.map(ms)).collect();
    let zero = keys.iter().filter(|k| k.digit == '0').count();
    let mut wrong: BTreeMap<String, usize> = BTreeMap::new();
    for k in keys {
        if let Some(got) = &k.got {
            if !got.split('|').any(|g| g == k.expected) {
                *wrong.entry(format!("{} → {got}", k.expected)).or_insert(0) += 1;
            }
        }
    }
    json!({
        "pressed": keys.len(),
        "to_action_ms": summary(&mut action),
        "to_prompt_ms": summary(&mut prompt),
        "zero_out": zero,
        "zero_out_to_agent_invite_ms": summary(&mut agent),
        "zero_out_without_agent_invite": keys.iter().filter(|k| k.digit == '0' && k.agent_ns.is_none()).count(),
        "unanswered": keys.iter().filter(|k| k.unanswered).count(),
        "not_sent": keys.iter().filter(|k| k.tx_ns == 0).count(),
        "wrong_prompt": wrong.values().sum::<usize>(),
        "wrong_prompt_by_kind": wrong,
        "prompt_identified": keys.iter().filter(|k| k.got.as_deref().is_some_and(|g| !g.starts_with("unknown"))).count(),
    })
}

/// The floor (`udp-floor --out`) applied to this run's packets.
fn floor(run: &Run, sent: f64, received: f64, cpu_s: Option<f64>) -> Value {
    let Some(path) = run.args.get("floor") else {
        return Value::Null;
    };
    let Some(f) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        return json!({ "error": format!("cannot read {path}") });
    };
    let us = |mode: &str, key: &str| f[mode][key].as_f64();
    let cost = |mode: &str| -> Option<f64> {
        Some(
            (sent * us(mode, "tx_us_per_packet")? + received * us(mode, "rx_us_per_packet")?) / 1e6,
        )
    };
    let wake_us = f["timer"]["cpu_us_per_wakeup"].as_f64();
    let wakeups = run.win.clock_threads as f64 * 1000.0 * run.win.secs();
    let sendto = cost("sendto");
    let mmsg = cost("sendmmsg");
    let timers = wake_us.map(|w| wakeups * w / 1e6);
    // The architecture's own floor: sends from per-call sockets, receives
    // as a port per call must (one `recvmmsg` per packet, 1 ms polls
    // included), and the clocks' timer wake-ups.
    let per_call = (|| {
        Some(
            (sent * us("sendto", "tx_us_per_packet")?
                + received * us("percall", "rx_us_per_packet")?)
                / 1e6
                + timers?,
        )
    })();
    let ratio = |floor: Option<f64>| match (cpu_s, floor) {
        (Some(c), Some(fl)) if fl > 0.0 => Some(c / fl),
        _ => None,
    };
    json!({
        "file": path,
        "measured_unix": f["timestamp_unix"],
        "send_us_per_packet": us("sendto", "tx_us_per_packet"),
        "receive_us_per_packet": us("sendto", "rx_us_per_packet"),
        "sendmmsg_send_us_per_packet": us("sendmmsg", "tx_us_per_packet"),
        "timer_wakeup_us": wake_us,
        "timer_late_us": f["timer"]["late_us"],
        "floor_cpu_s": sendto,
        "floor_cpu_pct": sendto.map(|s| 100.0 * s / run.win.secs()),
        "ratio_to_floor": ratio(sendto),
        "ratio_to_sendmmsg_floor": ratio(mmsg),
        "clock_wakeups": wakeups,
        "floor_with_wakeups_cpu_s": sendto.zip(timers).map(|(a, b)| a + b),
        "ratio_to_floor_with_wakeups": ratio(sendto.zip(timers).map(|(a, b)| a + b)),
        "per_call_receive_us_per_packet": us("percall", "rx_us_per_packet"),
        "per_call_floor_cpu_s": per_call,
        "ratio_to_per_call_floor": ratio(per_call),
    })
}

/// The whole result as JSON.
pub fn build(run: &Run) -> Value {
    let win = run.win;
    let secs = win.secs();
    let m = merge(run.rx, run.media.meta.len());
    let mut all_jitter = m.clock.clone();
    all_jitter.merge(&m.relayed);
    let jitter = |j: &rx::Jitter| {
        json!({
            "p50": j.percentile_ms(0.5), "p99": j.percentile_ms(0.99),
            "p999": j.percentile_ms(0.999), "max": j.max_ms(),
            "intervals": j.hist.iter().sum::<u64>() + j.overflow,
        })
    };
    let server_sent: u64 = m.rx_in_window.iter().sum();
    let server_received = run.tx.packets_in_window;
    let cpu_s = win.server_cpu_s;
    let per_packet_us = cpu_s.map(|c| c * 1e6 / (server_sent + server_received).max(1) as f64);

    // Calls.
    let calls = &run.callers.calls;
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls {
        let k = match &c.end {
            End::Open => "open".to_string(),
            End::ByUs => "hung up by the caller".into(),
            End::ByAgent => "hung up by the agent".into(),
            End::Failed(why) => format!("failed: {why}"),
        };
        *ends.entry(k).or_insert(0) += 1;
    }
    let failed = calls
        .iter()
        .filter(|c| matches!(c.end, End::Failed(_)))
        .count();
    let mut setup: Vec<f64> = run
        .callers
        .uac
        .calls
        .iter()
        .filter_map(|c| c.setup_ms)
        .collect();
    let mut legs: BTreeMap<String, usize> = BTreeMap::new();
    for l in run.agents.legs.values() {
        let k = match &l.state {
            LegState::Done => "hung up by the agent".to_string(),
            LegState::EndedByServer => "hung up by the server".into(),
            LegState::Cancelled => "cancelled while ringing".into(),
            LegState::Failed(why) => format!("failed: {why}"),
            other => format!("open: {other:?}").chars().take(24).collect(),
        };
        *legs.entry(k).or_insert(0) += 1;
    }
    let agent_failed = run
        .agents
        .legs
        .values()
        .filter(|l| matches!(l.state, LegState::Failed(_)))
        .count();

    // Keys: in the window (the level's figure) and over the whole run.
    let all: Vec<&crate::phone_calls::KeyRec> = run.callers.keys.iter().collect();
    let in_win: Vec<&crate::phone_calls::KeyRec> = all
        .iter()
        .copied()
        .filter(|k| k.tx_ns >= win.w0 && k.tx_ns < win.w1)
        .collect();
    let end = win.end_snap.as_ref();
    let dtmf_seen = run.before.delta(run.after, "ringback_dtmf_rfc4733_total");
    let up_avg = win.up.iter().sum::<usize>() as f64 / win.up.len().max(1) as f64;
    let up_end = win.up.last().copied().unwrap_or(0);
    let rss_end = end.map_or(0, |s| s.rss_kib);
    let metric_rx = end.and_then(|e| win.start.delta(e, "ringback_rtp_packets_received_total"));
    let (nproc, cpu_model) = procfs::machine();
    let others =
        (win.system_cpu_pct - win.server_cpu_pct.unwrap_or(0.0) - win.self_cpu_pct).max(0.0);
    json!({
        "benchmark": "phone-like-callers",
        "label": run.args.get("label").unwrap_or(""),
        "timestamp_unix": win.w0 / 1_000_000_000,
        "machine": { "nproc": nproc, "cpu_model": cpu_model },
        "params": {
            "callers": run.n, "agents": run.agents_n, "rate_cps": run.rate, "window_s": secs,
            "settle_s": run.args.num("settle", 5.0), "number": run.args.get("number").unwrap_or("3000"),
            "mix_pct": {
                "browse": run.mix[0] * 100.0, "listen": run.mix[1] * 100.0,
                "agent": run.mix[2] * 100.0, "early": run.mix[3] * 100.0,
            },
            "think_s": [run.timing.think.0, run.timing.think.1],
            "early_hangup_s": [run.timing.early.0, run.timing.early.1],
            "redial_s": [run.timing.redial.0, run.timing.redial.1],
            "talk_s": [run.talk.0, run.talk.1],
            "key_ms": run.timing.key_ms,
            "sockets": format!("shared:{}", run.k), "stream_capacity": run.capacity,
            "tx_rt_priority": run.args.num("tx-rt-priority", 0u8),
        },
        "calls": {
            "placed": calls.len(), "failed": failed, "ends": ends,
            "up_in_window": { "avg": up_avg, "min": win.up.iter().min(), "max": win.up.iter().max(), "end": up_end },
            "setup_ms": summary(&mut setup),
            "ramp_s": run.ramp_s,
            "uac_retransmissions": run.callers.uac.retransmissions,
            "server_200_retransmissions": run.callers.uac.ok_retransmitted,
            "slots_out_of_streams": run.callers.starved_slots,
        },
        "agents": {
            "registered": run.agents.registered, "register_failures": run.agents.register_failures.len(),
            "legs": run.agents.legs.len(), "failed": agent_failed, "ends": legs,
            "retransmissions": run.agents.retransmissions, "strays": run.agents.strays,
            "legs_for_unknown_callers": run.agents.legs.values().filter(|l| l.caller.is_none()).count(),
        },
        "rtp": {
            "callers": packets(run, &m, Kind::Caller),
            "agents": packets(run, &m, Kind::Agent),
            "server_received_per_call": server_counts(run),
            "server_received_metric_window": metric_rx.map(|r| json!({
                "received": r,
                "sent_by_generator": server_received,
                "received_pct": pct(r, server_received as f64),
            })),
            "generator_sent_window": server_received,
            "jitter_ms": jitter(&m.clock),
            "jitter_relayed_ms": jitter(&m.relayed),
            "jitter_all_ms": jitter(&all_jitter),
        },
        "keys": {
            "window": key_stats(&in_win),
            "run": key_stats(&all),
            "sent_trains": run.tx.keys,
            "seen_by_server_run": dtmf_seen,
        },
        "server": {
            "pid": run.args.get("pid"),
            "cpu_pct_window": win.server_cpu_pct, "cpu_s_window": cpu_s,
            "packets_sent_window": server_sent, "packets_received_window": server_received,
            "packets_per_s": (server_sent + server_received) as f64 / secs.max(1e-9),
            "cpu_us_per_packet": per_packet_us,
            "rtp_packets_sent_metric_window": end.and_then(|e| win.start.delta(e, "ringback_rtp_packets_sent_total")),
            "media_clock_overruns_window": end.and_then(|e| win.start.delta(e, "ringback_media_clock_overruns_total")),
            "floor": floor(run, server_sent as f64, server_received as f64, cpu_s),
            "clock_threads": win.clock_threads,
            "rss_idle_kib": run.before.rss_kib, "rss_end_kib": rss_end, "rss_peak_kib": win.rss_peak,
            "rss_per_call_kib": if up_end > 0 { rss_end.saturating_sub(run.before.rss_kib) as f64 / up_end as f64 } else { f64::NAN },
            "threads": win.threads, "fds": win.fds,
        },
        "generator": {
            "cpu_pct_window": win.self_cpu_pct,
            "tx": {
                "packets": run.tx.packets, "event_packets": run.tx.event_packets,
                "sendmmsg_calls": run.tx.syscalls, "send_errors": run.tx.send_errors,
                "phase_late_p99_ms": run.tx.late_p99_ms, "phase_late_max_ms": run.tx.late_max_ms,
                "cpu_s": run.tx.cpu_s,
            },
            "rx": { "cpu_s": m.cpu_s, "unmatched_datagrams": m.other, "kernel_socket_drops": m.kernel_drops },
            "udp_rcvbuf_errors_window": procfs::udp_delta(&win.udp0, &win.udp1, "RcvbufErrors"),
            "udp_sndbuf_errors_window": procfs::udp_delta(&win.udp0, &win.udp1, "SndbufErrors"),
            "streams_refused": run.media.exhausted,
        },
        "machine_load": {
            "system_cpu_pct_window": win.system_cpu_pct,
            "others_cpu_pct_window": others,
            "loadavg_1m_before": win.load_before,
        },
    })
}

/// The summary a person reads at the end of a run.
pub fn print(v: &Value) {
    let f = |path: &[&str]| {
        let mut cur = v;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_f64().unwrap_or(f64::NAN)
    };
    println!();
    println!(
        "{:>7} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "callers",
        "calls",
        "failed",
        "srv→call",
        "call→srv",
        "srv→agt",
        "agt→srv",
        "jit50",
        "jit99",
        "jitmax",
        "key50",
        "key99",
        "srvCPU%",
        "µs/pkt",
        "×floor"
    );
    println!(
        "{:>7} {:>6} {:>6} {:>8.3}% {:>8.3}% {:>8.3}% {:>8.3}% {:>7.3} {:>7.3} {:>7.2} {:>8.1} {:>8.1} {:>8.1} {:>8.2} {:>8.2}",
        f(&["params", "callers"]),
        f(&["calls", "placed"]),
        f(&["calls", "failed"]) + f(&["agents", "failed"]),
        f(&["rtp", "callers", "received_pct"]),
        f(&["rtp", "server_received_per_call", "received_pct"]),
        f(&["rtp", "agents", "received_pct"]),
        f(&["rtp", "agents", "sent_pct"]),
        f(&["rtp", "jitter_ms", "p50"]),
        f(&["rtp", "jitter_ms", "p99"]),
        f(&["rtp", "jitter_ms", "max"]),
        f(&["keys", "window", "to_action_ms", "p50"]),
        f(&["keys", "window", "to_action_ms", "p99"]),
        f(&["server", "cpu_pct_window"]),
        f(&["server", "cpu_us_per_packet"]),
        f(&["server", "floor", "ratio_to_floor"]),
    );
    println!(
        "(window {:.1} s; calls up {:.0} avg; callers sent {:.3} % of nominal, agents {:.3} %; keys in window {:.0} \
         ({:.0} unanswered, {:.0} wrong prompt), zero-out → agent INVITE p50 {:.1} / p99 {:.1} ms; \
         server {:.0} packets/s, floor {:.1} % CPU, ×{:.2} against sendmmsg, ×{:.2} with timer wake-ups, \
         ×{:.2} against the per-call-socket floor; \
         RSS {:.1} KiB/call; generator CPU {:.0} % (phases late p99 {:.2} ms, max {:.1} ms); other processes {:.0} %)",
        f(&["params", "window_s"]),
        f(&["calls", "up_in_window", "avg"]),
        f(&["rtp", "callers", "sent_pct"]),
        f(&["rtp", "agents", "sent_pct"]),
        f(&["keys", "window", "pressed"]),
        f(&["keys", "window", "unanswered"]),
        f(&["keys", "window", "wrong_prompt"]),
        f(&["keys", "window", "zero_out_to_agent_invite_ms", "p50"]),
        f(&["keys", "window", "zero_out_to_agent_invite_ms", "p99"]),
        f(&["server", "packets_per_s"]),
        f(&["server", "floor", "floor_cpu_pct"]),
        f(&["server", "floor", "ratio_to_sendmmsg_floor"]),
        f(&["server", "floor", "ratio_to_floor_with_wakeups"]),
        f(&["server", "floor", "ratio_to_per_call_floor"]),
        f(&["server", "rss_per_call_kib"]),
        f(&["generator", "cpu_pct_window"]),
        f(&["generator", "tx", "phase_late_p99_ms"]),
        f(&["generator", "tx", "phase_late_max_ms"]),
        f(&["machine_load", "others_cpu_pct_window"]),
    );
}
