//! `phone-load`: N callers that behave like phones against a running
//! ringback — they send G.711 all call long, press keys by RFC 4733, zero out
//! to agent stand-ins that answer and talk, and hang up — and what that
//! costs the server against the machine's floor.
//!
//! ```text
//! phone-load --server 127.0.0.1:5060 --pid PID --callers 1000 \
//!     [--api 127.0.0.1:8080] [--number 3000] [--rate 200] [--settle 5] [--window 20] \
//!     [--mix browse:50,listen:20,agent:20,early:10] [--agents M --agent-password PW] \
//!     [--agent-prefix pa] [--answer-ms 200] [--talk 20,40] [--think 2,5] [--early 1,4] \
//!     [--redial 0.5,1.5] [--key-ms 100] [--sockets shared:16] [--rx-threads 2] \
//!     [--tx-rt-priority 0] [--capacity STREAMS] \
//!     [--prompts DIR] [--server-log FILE] [--floor FILE] [--out FILE] [--label TEXT]
//! ```
//!
//! Callers start at `--rate` per second; after the ramp and `--settle`
//! seconds it measures for `--window` seconds, then stops every caller's
//! audio and hangs up at `--rate`. The behaviours and their timing are in
//! `phone_calls.rs`, the agents in `phone_agents.rs`, the sender in
//! `phone_tx.rs`; receiving is `ivr-load`'s (`rx.rs`). What is measured and
//! how it is reported: `phone_result.rs` and bench/README.md.

#[allow(dead_code)]
mod common;
mod pacer;
mod phone_agents;
mod phone_calls;
mod phone_media;
mod phone_result;
mod phone_tx;
#[allow(dead_code)]
mod procfs;
#[allow(dead_code)]
mod rx;
#[allow(dead_code)]
mod sip;
#[allow(dead_code)]
mod sip_phone;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Args;
use phone_agents::Agents;
use phone_calls::{Behaviour, Callers, PromptHeads, Timing};
use phone_media::Media;
use phone_result::{Snapshot, Window};

const USAGE: &str = "usage: phone-load --server IP:PORT [--pid PID] [--api IP:PORT] --callers N \
[--number 3000] [--rate CPS] [--settle S] [--window S] [--mix browse:50,listen:20,agent:20,early:10] \
[--agents M] [--agent-password PW] [--agent-prefix pa] [--answer-ms MS] [--talk MIN,MAX] \
[--think MIN,MAX] [--early MIN,MAX] [--redial MIN,MAX] [--key-ms MS] [--sockets shared:K] \
[--rx-threads T] [--rx-nap-ms MS] [--tx-rt-priority P] [--capacity STREAMS] [--prompts DIR] [--server-log FILE] \
[--floor FILE] [--out FILE] [--label TEXT] [--print-agents]";

/// A `MIN,MAX` pair of seconds (or one number for both).
fn range(args: &Args, key: &str, default: (f64, f64)) -> (f64, f64) {
    let Some(v) = args.get(key) else {
        return default;
    };
    let nums: Vec<f64> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    match nums.as_slice() {
        [x] => (*x, *x),
        [lo, hi] if lo <= hi => (*lo, *hi),
        _ => {
            eprintln!("--{key}: expected MIN,MAX seconds, got `{v}`\n{USAGE}");
            std::process::exit(2);
        }
    }
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("phone-load: {msg}");
    std::process::exit(1)
}

/// First 8 PCMU bytes of every prompt in `dir` (top level) → its name.
fn prompt_heads(dir: Option<&str>) -> PromptHeads {
    let mut heads = PromptHeads::new();
    let Some(dir) = dir else { return heads };
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("phone-load: cannot read prompts in {dir}; prompts are not identified");
        return heads;
    };
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("wav") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(p) = ringback_media::prompt::decode_wav(&path, &bytes) else {
            continue;
        };
        if p.frames(ringback_media::codec::Codec::Pcmu) == 0 {
            continue;
        }
        let f = p.frame(ringback_media::codec::Codec::Pcmu, 0);
        let mut head = [0u8; 8];
        let n = f.len().min(8);
        head[..n].copy_from_slice(&f[..n]);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        heads
            .entry(u64::from_be_bytes(head))
            .and_modify(|v| {
                v.push('|');
                v.push_str(&name);
            })
            .or_insert(name);
    }
    heads
}

/// The phones: callers, agent stand-ins and their media.
struct Phones {
    callers: Callers,
    agents: Agents,
    media: Media,
    last_report: Instant,
}

impl Phones {
    /// Wait up to 1 ms for SIP on either socket, then handle everything
    /// that is due; every 2 s a progress line on stderr.
    fn pump(&mut self, phase: &str) {
        let mut fds = [self.callers.uac.fd(), self.agents.fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two valid pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, 1) };
        self.callers.uac.poll(Duration::ZERO);
        let mut events = Vec::new();
        self.agents.poll(&mut self.media, &mut events);
        self.callers.step(&mut self.media, &mut events);
        if self.last_report.elapsed() >= Duration::from_secs(2) {
            self.last_report = Instant::now();
            eprintln!(
                "  {phase}: {} calls placed, {} up, {} keys, {} agent legs ({} open)",
                self.callers.calls.len(),
                self.callers.up(),
                self.callers.keys.len(),
                self.agents.legs.len(),
                self.agents.pending()
            );
        }
    }
}

fn main() {
    let args = Args::parse(USAGE);
    let n: usize = args.num("callers", 100);
    let rate: f64 = args.num("rate", 200.0f64).max(1.0);
    let settle: f64 = args.num("settle", 5.0);
    let window: f64 = args.num("window", 20.0);
    let number = args.get("number").unwrap_or("3000").to_string();
    let mix = phone_calls::parse_mix(
        args.get("mix")
            .unwrap_or("browse:50,listen:20,agent:20,early:10"),
    )
    .unwrap_or_else(|e| fail(format!("--mix: {e}")));
    let slots = phone_calls::assign(n, &mix);
    let agent_slots = slots.iter().filter(|&&b| b == Behaviour::Agent).count();
    // Enough agents that a zero-out finds one free: one per zero-out slot,
    // half as many again for those in wrap-up, and two spare.
    let agents_n: usize = args.num("agents", (agent_slots * 3).div_ceil(2) + 2);
    if args.get("print-agents").is_some() {
        println!("{}", if agent_slots > 0 { agents_n } else { 0 });
        return;
    }
    let server: SocketAddr = args
        .need("server")
        .parse()
        .unwrap_or_else(|_| fail("--server: expected IP:PORT"));
    let server_ip = match server {
        SocketAddr::V4(a) => *a.ip(),
        SocketAddr::V6(_) => fail("--server: IPv4 only"),
    };
    let api: Option<SocketAddr> = args.get("api").map(|a| {
        a.parse()
            .unwrap_or_else(|_| fail("--api: expected IP:PORT"))
    });
    let pid: Option<u32> = args.get("pid").map(|_| args.num("pid", 0));
    let password = args.get("agent-password").unwrap_or("").to_string();
    if agent_slots > 0 && password.is_empty() {
        fail("callers zero out (--mix agent:…), so agents need --agent-password");
    }
    let timing = Timing {
        think: range(&args, "think", (2.0, 5.0)),
        early: range(&args, "early", (1.0, 4.0)),
        redial: range(&args, "redial", (0.5, 1.5)),
        key_ms: args.num("key-ms", 100),
        action_timeout: Duration::from_secs(3),
    };
    let talk = range(&args, "talk", (20.0, 40.0));
    let k: usize = args
        .get("sockets")
        .unwrap_or("shared:16")
        .strip_prefix("shared:")
        .and_then(|k| k.parse().ok())
        .filter(|&k: &usize| k > 0)
        .unwrap_or_else(|| fail("--sockets: only shared:K (K > 0)"));
    let rx_threads: usize = args.num("rx-threads", 2usize).max(1);
    let tx_rt: u8 = args.num("tx-rt-priority", 0);
    let nap_ms: f64 = args.num("rx-nap-ms", 2.0);
    let capacity: usize = args.num("capacity", 40 * (n + agents_n) + 10_000);
    let nofile = procfs::raise_nofile();
    if (k + 64) as u64 > nofile {
        fail(format!(
            "{k} sockets need more than the open-files limit {nofile}"
        ));
    }

    // Shared RTP sockets, receivers, sender.
    let sockets: Vec<UdpSocket> = (0..k)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind an RTP socket");
            rx::prepare_socket(s.as_raw_fd(), 4 << 20);
            s
        })
        .collect();
    let sockets = Arc::new(sockets);
    let fds: Arc<Vec<RawFd>> = Arc::new(sockets.iter().map(|s| s.as_raw_fd()).collect());
    let ctl = rx::Control::with_actions(capacity);
    let nap = Duration::from_secs_f64(nap_ms / 1000.0);
    let (shards, receivers) = rx::spawn(
        Arc::clone(&fds),
        rx_threads,
        rx::Mode::Shared,
        capacity,
        &ctl,
        nap,
    );
    let (tx_cmd, tx_rx) = std::sync::mpsc::channel();
    let sender = {
        let (socks, ctl) = (Arc::clone(&sockets), Arc::clone(&ctl));
        std::thread::Builder::new()
            .name("rtp-tx".into())
            .spawn(move || phone_tx::send_loop(tx_rx, socks, ctl, capacity, tx_rt))
            .expect("spawn the sender")
    };
    let media = Media::new(tx_cmd, Arc::clone(&ctl), &sockets, capacity);

    // SIP: the callers' UAC and the agents.
    let uac = sip::Uac::new(server, &number, &[]).expect("SIP socket");
    let reg_start = Instant::now();
    let agents = Agents::register_all(
        server,
        args.get("agent-prefix").unwrap_or("pa"),
        if agent_slots > 0 { agents_n } else { 0 },
        &password,
        Duration::from_millis(args.num("answer-ms", 200)),
        talk,
        uac.run_id(),
    )
    .expect("agent SIP socket");
    eprintln!(
        "phone-load: {} of {} agents registered in {:.1} s{}",
        agents.registered,
        if agent_slots > 0 { agents_n } else { 0 },
        reg_start.elapsed().as_secs_f64(),
        agents
            .register_failures
            .first()
            .map(|e| format!(" (first failure: {e})"))
            .unwrap_or_default()
    );
    let heads = prompt_heads(args.get("prompts"));
    let mut p = Phones {
        callers: Callers::new(uac, slots, timing, server_ip, heads),
        agents,
        media,
        last_report: Instant::now(),
    };
    let before = Snapshot::take(pid, api);

    // Ramp up, then let the callers settle into their menus and queues.
    eprintln!(
        "phone-load: {n} callers at {rate}/s to {server} (number {number}); mix {}; {k} shared sockets",
        Behaviour::ALL
            .iter()
            .zip(mix)
            .map(|(b, m)| format!("{} {:.0} %", b.name(), m * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let t0 = Instant::now();
    let mut dialed = 0;
    let ramp_deadline = t0 + Duration::from_secs_f64(n as f64 / rate + 30.0);
    loop {
        let due = ((t0.elapsed().as_secs_f64() * rate) as usize).min(n);
        while dialed < due {
            p.callers.dial(dialed, &mut p.media);
            dialed += 1;
        }
        p.pump("ramp");
        let first_calls_settled = p.callers.calls.len() >= n && p.callers.uac.pending() == 0;
        if (dialed == n && first_calls_settled) || Instant::now() > ramp_deadline {
            break;
        }
    }
    let ramp_s = t0.elapsed().as_secs_f64();
    let settle_until = Instant::now() + Duration::from_secs_f64(settle);
    while Instant::now() < settle_until {
        p.pump("settle");
    }

    // Measurement window.
    let mut win = Window::start(pid, api, &ctl);
    let until = Instant::now() + Duration::from_secs_f64(window);
    let mut next_sample = Instant::now();
    while Instant::now() < until {
        p.pump("window");
        if Instant::now() >= next_sample {
            win.sample(p.callers.up());
            next_sample += Duration::from_secs(1);
        }
    }
    win.end(p.callers.up(), &ctl);

    // Tear down: stop the audio, hang up, let the agents' legs end.
    p.callers.tear_down(rate);
    let deadline = Instant::now() + Duration::from_secs_f64(n as f64 / rate + 30.0);
    loop {
        p.pump("teardown");
        let done =
            p.callers.scheduled() == 0 && p.callers.uac.pending() == 0 && p.agents.pending() == 0;
        if done || Instant::now() > deadline {
            break;
        }
    }
    p.agents.hang_up_all(&mut p.media);
    ctl.stop.store(true, Ordering::SeqCst);
    let tx = sender.join().expect("sender thread");
    let rx: Vec<rx::RxResult> = receivers
        .into_iter()
        .map(|h| h.join().expect("receiver thread"))
        .collect();
    drop(shards);
    // The server logs each call's counters as the call ends.
    std::thread::sleep(Duration::from_millis(500));
    let after = Snapshot::take(pid, api);

    let ctx = phone_result::Run {
        args: &args,
        callers: &p.callers,
        agents: &p.agents,
        media: &p.media,
        tx: &tx,
        rx: &rx,
        win: &win,
        before: &before,
        after: &after,
        mix,
        n,
        agents_n: if agent_slots > 0 { agents_n } else { 0 },
        rate,
        ramp_s,
        k,
        timing,
        talk,
        capacity,
    };
    let result = phone_result::build(&ctx);
    phone_result::print(&result);
    let out = args
        .get("out")
        .map(str::to_string)
        .unwrap_or_else(|| format!("bench/results/phone-{n}.json"));
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    common::write_json(&out, &result);
}
