//! `ivr-load`: N concurrent callers against a running ringback, each hearing
//! a looping prompt; measures what the callers receive.
//!
//! ```text
//! ivr-load --server 127.0.0.1:5060 --pid $(pidof ringback) --calls 1000 \
//!          [--rate 500] [--window 20] [--settle 3] [--number 2000] \
//!          [--rx-threads 2] [--sockets per-call|shared:K] [--out bench/results/ivr-1000.json]
//! ```
//!
//! Ramps up at `--rate` calls/s, waits `--settle` s, measures for `--window`
//! s, then hangs up at the same rate. Per call it counts RTP packets received
//! in the window against the nominal 50/s, sequence gaps, and the
//! inter-arrival jitter |interval − 20 ms| from kernel receive timestamps;
//! for the server it reads CPU time and RSS from /proc. The load generator's
//! own CPU and the kernel's per-socket drop counters are reported too, so a
//! receiver that cannot keep up is visible instead of being blamed on the
//! server.

mod procfs;
#[allow(dead_code)]
mod rx;
#[allow(dead_code)]
mod sip;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

struct Args {
    server: SocketAddr,
    pid: Option<u32>,
    calls: usize,
    rate: f64,
    window: f64,
    settle: f64,
    number: String,
    rx_threads: usize,
    mode: rx::Mode,
    shared_sockets: usize,
    nap_ms: f64,
    out: Option<String>,
    label: String,
    srtp: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: ivr-load --server IP:PORT [--pid PID] [--calls N] [--rate CPS] [--window S] \
         [--settle S] [--number NUM] [--rx-threads T] [--rx-nap-ms MS] [--sockets per-call|shared:K] [--srtp] [--out FILE] [--label TEXT]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        server: "127.0.0.1:5060".parse().expect("default address"),
        pid: None,
        calls: 100,
        rate: 500.0,
        window: 20.0,
        settle: 3.0,
        number: "2000".into(),
        rx_threads: 2,
        mode: rx::Mode::PerCall,
        shared_sockets: 0,
        nap_ms: 2.0,
        out: None,
        label: String::new(),
        srtp: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--server" => a.server = v().parse().unwrap_or_else(|_| usage()),
            "--pid" => a.pid = Some(v().parse().unwrap_or_else(|_| usage())),
            "--calls" => a.calls = v().parse().unwrap_or_else(|_| usage()),
            "--rate" => a.rate = v().parse().unwrap_or_else(|_| usage()),
            "--window" => a.window = v().parse().unwrap_or_else(|_| usage()),
            "--settle" => a.settle = v().parse().unwrap_or_else(|_| usage()),
            "--number" => a.number = v(),
            "--rx-threads" => a.rx_threads = v().parse().unwrap_or_else(|_| usage()),
            "--sockets" => {
                let s = v();
                if s == "per-call" {
                    a.mode = rx::Mode::PerCall;
                } else if let Some(k) = s.strip_prefix("shared:") {
                    a.mode = rx::Mode::Shared;
                    a.shared_sockets = k.parse().unwrap_or_else(|_| usage());
                } else {
                    usage()
                }
            }
            "--rx-nap-ms" => a.nap_ms = v().parse().unwrap_or_else(|_| usage()),
            "--out" => a.out = Some(v()),
            "--label" => a.label = v(),
            "--srtp" => a.srtp = true,
            _ => usage(),
        }
    }
    a.rx_threads = a.rx_threads.max(1);
    a.rate = a.rate.max(1.0);
    a
}

fn main() {
    let args = parse_args();
    let nofile = procfs::raise_nofile();
    let sockets_needed = match args.mode {
        rx::Mode::PerCall => args.calls,
        rx::Mode::Shared => args.shared_sockets.max(1),
    };
    if sockets_needed as u64 + 64 > nofile {
        eprintln!(
            "ivr-load: {sockets_needed} RTP sockets need more than the open-files limit {nofile}; \
             use --sockets shared:K"
        );
        std::process::exit(2);
    }

    // RTP sockets and receiver threads.
    let mut rtp: Vec<UdpSocket> = Vec::with_capacity(sockets_needed);
    for _ in 0..sockets_needed {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind RTP socket");
        s.set_nonblocking(true).expect("nonblocking");
        let rcvbuf = if args.mode == rx::Mode::Shared {
            4 << 20
        } else {
            0
        };
        rx::prepare_socket(s.as_raw_fd(), rcvbuf);
        rtp.push(s);
    }
    let fds: Arc<Vec<RawFd>> = Arc::new(rtp.iter().map(|s| s.as_raw_fd()).collect());
    let ctl = rx::Control::new();
    let nap = Duration::from_secs_f64(args.nap_ms / 1000.0);
    let (shards, receivers) = rx::spawn(
        Arc::clone(&fds),
        args.rx_threads,
        args.mode,
        args.calls,
        &ctl,
        nap,
    );

    let ports: Vec<u16> = (0..args.calls)
        .map(|i| rtp[i % rtp.len()].local_addr().expect("addr").port())
        .collect();
    let mut uac = sip::Uac::new(args.server, &args.number, &ports).expect("SIP socket");
    uac.srtp = args.srtp;
    let pid = args.pid;
    let rss_idle = pid.and_then(procfs::rss_kib).unwrap_or(0);
    let fds_idle = pid.and_then(procfs::open_fds).unwrap_or(0);

    // Ramp up.
    eprintln!(
        "ivr-load: {} calls at {} calls/s to {} (number {}), {:?} sockets, {} receiver threads",
        args.calls, args.rate, args.server, args.number, args.mode, args.rx_threads
    );
    let ramp_start = Instant::now();
    let ramp_cpu = pid.map(procfs::CpuMeter::start);
    let mut started = 0;
    let mut mapped = vec![false; args.calls];
    let deadline = ramp_start + Duration::from_secs_f64(args.calls as f64 / args.rate + 30.0);
    let mut last_report = Instant::now();
    loop {
        let due = ((ramp_start.elapsed().as_secs_f64() * args.rate) as usize).min(args.calls);
        while started < due {
            uac.start_call(started);
            started += 1;
        }
        uac.poll(Duration::from_millis(1));
        map_ports(&uac, &ctl, &mut mapped);
        if last_report.elapsed() >= Duration::from_secs(2) {
            eprintln!("  ramp: {started} sent, {:?}", uac.tally());
            last_report = Instant::now();
        }
        if (started == args.calls && uac.pending() == 0) || Instant::now() > deadline {
            break;
        }
    }
    let ramp_secs = ramp_start.elapsed().as_secs_f64();
    let ramp_cpu_pct = ramp_cpu.map(|m| m.percent());
    eprintln!("  ramp done in {ramp_secs:.1} s: {:?}", uac.tally());

    // Settle.
    let until = Instant::now() + Duration::from_secs_f64(args.settle);
    while Instant::now() < until {
        uac.poll(Duration::from_millis(20));
    }

    // Measurement window.
    let up_at_start: Vec<bool> = uac
        .calls
        .iter()
        .map(|c| matches!(c.state, sip::State::Up { .. }))
        .collect();
    let udp0 = procfs::udp_counters();
    let server_cpu = pid.map(procfs::CpuMeter::start);
    let self_cpu = procfs::CpuMeter::start(std::process::id());
    let system_cpu = procfs::SystemCpu::start();
    let load_before = procfs::loadavg();
    let w0 = procfs::realtime_ns();
    ctl.win_start.store(w0, Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs_f64(args.window);
    let mut rss_peak = 0;
    let mut next_sample = Instant::now();
    while Instant::now() < until {
        uac.poll(Duration::from_millis(20));
        if Instant::now() >= next_sample {
            rss_peak = rss_peak.max(pid.and_then(procfs::rss_kib).unwrap_or(0));
            next_sample += Duration::from_secs(1);
        }
    }
    let w1 = procfs::realtime_ns();
    ctl.win_end.store(w1, Ordering::SeqCst);
    let server_cpu_pct = server_cpu.map(|m| m.percent());
    let self_cpu_pct = self_cpu.percent();
    let system_cpu_pct = system_cpu.percent();
    let rss_end = pid.and_then(procfs::rss_kib).unwrap_or(0);
    rss_peak = rss_peak.max(rss_end);
    let threads = pid.and_then(procfs::threads);
    let fds_loaded = pid.and_then(procfs::open_fds).unwrap_or(0);
    let udp1 = procfs::udp_counters();
    let measured: Vec<bool> = uac
        .calls
        .iter()
        .zip(&up_at_start)
        .map(|(c, &s)| s && matches!(c.state, sip::State::Up { .. }))
        .collect();
    let window_s = (w1 - w0) as f64 / 1e9;

    // Tear down.
    let bye_start = Instant::now();
    let mut byed = 0;
    let deadline = bye_start + Duration::from_secs_f64(args.calls as f64 / args.rate + 30.0);
    loop {
        let due = ((bye_start.elapsed().as_secs_f64() * args.rate) as usize).min(args.calls);
        while byed < due {
            uac.hang_up(byed);
            byed += 1;
        }
        uac.poll(Duration::from_millis(1));
        if (byed == args.calls && uac.pending() == 0) || Instant::now() > deadline {
            break;
        }
    }
    ctl.stop.store(true, Ordering::SeqCst);
    let results: Vec<rx::RxResult> = receivers
        .into_iter()
        .map(|h| h.join().expect("receiver thread"))
        .collect();
    drop(shards);
    drop(rtp);

    // Merge.
    let mut jitter = rx::Jitter::default();
    let (mut other, mut kdrops, mut pkts, mut syscalls, mut rx_cpu) = (0, 0, 0, 0, 0.0);
    let mut in_window = vec![0u64; args.calls];
    let mut seq_lost = 0u64;
    let mut reordered = 0u64;
    for r in &results {
        jitter.merge(&r.jitter);
        other += r.other;
        kdrops += r.kernel_drops;
        pkts += r.packets;
        syscalls += r.syscalls;
        rx_cpu += r.cpu_s;
        for (i, s) in r.streams.iter().enumerate() {
            if measured[i] {
                in_window[i] += u64::from(s.in_window);
                seq_lost += u64::from(s.seq_lost);
                reordered += u64::from(s.reordered);
            }
        }
    }
    let n_measured = measured.iter().filter(|&&m| m).count();
    let nominal_per = 50.0 * window_s;
    let received: u64 = in_window.iter().sum();
    let nominal = nominal_per * n_measured as f64;
    let pct = if nominal > 0.0 {
        100.0 * received as f64 / nominal
    } else {
        0.0
    };
    let below_99 = in_window
        .iter()
        .zip(&measured)
        .filter(|(&r, &m)| m && (r as f64) < 0.99 * nominal_per)
        .count();
    let silent = in_window
        .iter()
        .zip(&measured)
        .filter(|(&r, &m)| m && r == 0)
        .count();
    let p = |q| jitter.percentile_ms(q);
    let (p50, p99, p999, max_ms) = (p(0.5), p(0.99), p(0.999), jitter.max_ms());
    let tally = uac.tally();
    let failed: usize = tally
        .iter()
        .filter(|(k, _)| k.starts_with("failed"))
        .map(|(_, v)| v)
        .sum();
    let never_up = args.calls - up_at_start.iter().filter(|&&u| u).count();
    let mut setup: Vec<f64> = uac.calls.iter().filter_map(|c| c.setup_ms).collect();
    setup.sort_by(f64::total_cmp);
    let setup_p = |q: f64| {
        setup
            .get(((setup.len() as f64 * q) as usize).min(setup.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let rss_per_call = if n_measured > 0 {
        rss_end.saturating_sub(rss_idle) as f64 / n_measured as f64
    } else {
        0.0
    };
    let (nproc, cpu_model) = procfs::machine();

    println!();
    println!(
        "{:>6} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8} {:>7}",
        "calls",
        "up",
        "failed",
        "pkts%",
        "seqlost",
        "jit50",
        "jit99",
        "jit999",
        "jitmax",
        "srvCPU%",
        "KiB/call",
        "genCPU%",
        "kdrops"
    );
    println!(
        "{:>6} {:>6} {:>6} {:>8.3} {:>8} {:>7.3} {:>7.3} {:>7.3} {:>7.2} {:>8.1} {:>9.1} {:>8.1} {:>7}",
        args.calls,
        n_measured,
        failed,
        pct,
        seq_lost,
        p50,
        p99,
        p999,
        max_ms,
        server_cpu_pct.unwrap_or(f64::NAN),
        rss_per_call,
        self_cpu_pct,
        kdrops
    );
    println!(
        "(jitter = |inter-arrival − 20 ms| in ms from kernel timestamps; window {window_s:.1} s; \
         setup p50 {:.1} ms p99 {:.1} ms; our retransmissions {}; streams <99%: {below_99}, silent: {silent}; \
         machine CPU {system_cpu_pct:.0}%, of which other processes {:.0}%)",
        setup_p(0.5),
        setup_p(0.99),
        uac.retransmissions,
        (system_cpu_pct - server_cpu_pct.unwrap_or(0.0) - self_cpu_pct).max(0.0)
    );

    let result = json!({
        "benchmark": "ivr-concurrent-calls",
        "label": args.label,
        "timestamp_unix": w0 / 1_000_000_000,
        "machine": { "nproc": nproc, "cpu_model": cpu_model },
        "params": {
            "calls": args.calls, "rate_cps": args.rate, "window_s": window_s,
            "settle_s": args.settle, "number": args.number, "rx_threads": args.rx_threads,
            "rx_nap_ms": args.nap_ms,
            "sockets": format!("{:?}", args.mode), "shared_sockets": args.shared_sockets,
        },
        "calls": {
            "target": args.calls, "measured": n_measured, "never_up": never_up,
            "failed": failed, "states": tally,
            "dropped_by_server": uac.calls.iter().filter(|c| c.dropped_by_server).count(),
            "setup_ms": { "p50": setup_p(0.5), "p99": setup_p(0.99), "max": setup.last().copied().unwrap_or(0.0) },
            "ramp_s": ramp_secs, "uac_retransmissions": uac.retransmissions,
            "server_200_retransmissions": uac.ok_retransmitted,
        },
        "rtp": {
            "received_in_window": received, "nominal": nominal, "received_pct": pct,
            "seq_lost": seq_lost, "reordered_or_dup": reordered,
            "streams_below_99pct": below_99, "streams_silent": silent,
            "jitter_ms": { "p50": p50, "p99": p99, "p999": p999, "max": max_ms },
        },
        "server": {
            "pid": pid, "cpu_pct_window": server_cpu_pct, "cpu_pct_ramp": ramp_cpu_pct,
            "rss_idle_kib": rss_idle, "rss_end_kib": rss_end, "rss_peak_kib": rss_peak,
            "rss_per_call_kib": rss_per_call, "threads": threads,
            "fds_idle": fds_idle, "fds_loaded": fds_loaded,
        },
        "generator": {
            "cpu_pct_window": self_cpu_pct, "rx_thread_cpu_s_total": rx_cpu,
            "packets_read": pkts, "recvmmsg_calls": syscalls, "non_rtp_or_unknown": other,
            "kernel_socket_drops": kdrops,
            "udp_rcvbuf_errors_window": procfs::udp_delta(&udp0, &udp1, "RcvbufErrors"),
            "udp_sndbuf_errors_window": procfs::udp_delta(&udp0, &udp1, "SndbufErrors"),
            "udp_in_errors_window": procfs::udp_delta(&udp0, &udp1, "InErrors"),
            "nofile_limit": nofile,
        },
        "machine_load": {
            "system_cpu_pct_window": system_cpu_pct,
            "others_cpu_pct_window": (system_cpu_pct - server_cpu_pct.unwrap_or(0.0) - self_cpu_pct).max(0.0),
            "loadavg_1m_before": load_before,
        },
    });
    let out = args
        .out
        .unwrap_or_else(|| format!("bench/results/ivr-{}.json", args.calls));
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match serde_json::to_string_pretty(&result) {
        Ok(text) => {
            if let Err(e) = std::fs::write(&out, text + "\n") {
                eprintln!("ivr-load: cannot write {out}: {e}");
            } else {
                eprintln!("ivr-load: wrote {out}");
            }
        }
        Err(e) => eprintln!("ivr-load: cannot encode the result: {e}"),
    }
}

/// Shared-socket mode: tell the receivers which server port is which call.
fn map_ports(uac: &sip::Uac, ctl: &rx::Control, mapped: &mut [bool]) {
    for (i, c) in uac.calls.iter().enumerate() {
        if mapped[i] {
            continue;
        }
        if let sip::State::Up { rtp_port } = c.state {
            ctl.port_map[usize::from(rtp_port)].store(i as u32, Ordering::Relaxed);
            mapped[i] = true;
        }
    }
}
