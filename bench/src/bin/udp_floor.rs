//! `udp-floor`: what one RTP packet costs the kernel on this machine, with no
//! ringback in the way — the floor under every media figure in the README.
//!
//! ```text
//! udp-floor [--senders 10000] [--receivers 16] [--secs 5] [--mode sendto|sendmmsg|percall|timer|all]
//!           [--out FILE.json]
//! ```
//!
//! One thread sends 172-byte packets (an RTP header + 20 ms of G.711) as fast
//! as it can, round-robin from `--senders` sockets (one per call, as a media
//! server with per-call ports must) to `--receivers` sockets drained by a
//! second thread with `recvmmsg`. `--mode sendmmsg` instead sends batches of
//! 32 from one socket (what shared media ports would allow). It prints the
//! CPU time per packet of each thread (`CLOCK_THREAD_CPUTIME_ID`): on
//! loopback the sender also pays for the receiver's side of the stack, so
//! the sender's figure is what a media server pays per packet, and
//! 1e6 / that figure is the packets/s one core can send at best.
//!
//! `--mode percall` measures the receive side as a media server with a port
//! per call must receive: 5,000 sender sockets each send to a receiver
//! socket of its own, and the receiving thread does what ringback's receive
//! threads do — every millisecond one `epoll_wait` without waiting over all
//! 5,000 sockets, then one `recvmmsg` per ready socket, which holds about
//! one packet. Its CPU per packet (polls included) is the receive floor for
//! per-call sockets; the default mode's receivers hold many packets per
//! `recvmmsg` and show the cheapest receive the kernel allows.
//!
//! `--mode timer` measures a timer wake-up instead: one thread sleeps to
//! absolute deadlines every millisecond (as ringback's media clocks do, with
//! the same 1 µs timer slack) and reports its CPU time per wake-up and how
//! late it woke. `--mode all` runs sendto, sendmmsg, percall and timer in turn;
//! `--out` writes the figures as JSON (`phone-load --floor` reads it to
//! print the server's CPU per packet against this floor).

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PACKET: usize = 172;
const BATCH: usize = 32;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Sendto,
    Sendmmsg,
    PerCall,
    Timer,
    All,
}

struct Args {
    senders: usize,
    receivers: usize,
    secs: f64,
    mode: Mode,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        senders: 10_000,
        receivers: 16,
        secs: 5.0,
        mode: Mode::Sendto,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let bad = || format!("bad value for {k}: {v}");
        match k.as_str() {
            "--senders" => a.senders = v.parse().map_err(|_| bad())?,
            "--receivers" => a.receivers = v.parse().map_err(|_| bad())?,
            "--secs" => a.secs = v.parse().map_err(|_| bad())?,
            "--mode" => {
                a.mode = match v.as_str() {
                    "sendto" => Mode::Sendto,
                    "sendmmsg" => Mode::Sendmmsg,
                    "percall" => Mode::PerCall,
                    "timer" => Mode::Timer,
                    "all" => Mode::All,
                    _ => return Err(bad()),
                }
            }
            "--out" => a.out = Some(v),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

/// What one packet mode measured.
struct PacketFloor {
    sent: u64,
    received: u64,
    errors: u64,
    wall_s: f64,
    senders: usize,
    receivers: usize,
    tx_us: f64,
    rx_us: f64,
}

impl PacketFloor {
    /// The figures of one run; prints what was sent and received.
    fn measured(
        senders: usize,
        receivers: usize,
        (sent, errors, got): (u64, u64, u64),
        wall: Duration,
        tx_cpu: Duration,
        rx_cpu: Duration,
    ) -> PacketFloor {
        let per = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n.max(1) as f64;
        println!(
            "sent={sent} ({:.0}/s) errors={errors} received={got} ({:.2} %)",
            sent as f64 / wall.as_secs_f64(),
            100.0 * got as f64 / sent.max(1) as f64
        );
        PacketFloor {
            sent,
            received: got,
            errors,
            wall_s: wall.as_secs_f64(),
            senders,
            receivers,
            tx_us: per(tx_cpu, sent),
            rx_us: per(rx_cpu, got),
        }
    }

    /// As written into `--out`.
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "senders": self.senders, "receivers": self.receivers, "secs": self.wall_s,
            "sent": self.sent, "received": self.received, "errors": self.errors,
            "tx_us_per_packet": self.tx_us, "rx_us_per_packet": self.rx_us,
        })
    }
}

/// One packet from each sender, the i-th to `dests[i % dests.len()]`:
/// (sent, failed).
fn send_round(senders: &[UdpSocket], dests: &[std::net::SocketAddr], payload: &[u8]) -> (u64, u64) {
    let (mut sent, mut errors) = (0, 0);
    for (i, s) in senders.iter().enumerate() {
        match s.send_to(payload, dests[i % dests.len()]) {
            Ok(_) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    (sent, errors)
}

fn main() -> std::io::Result<()> {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("udp-floor: {e}\nusage: udp-floor [--senders N] [--receivers K] [--secs S] [--mode sendto|sendmmsg|percall|timer|all] [--out FILE]");
        std::process::exit(2)
    });
    let mut json = serde_json::Map::new();
    json.insert("benchmark".into(), "machine-floor".into());
    json.insert(
        "timestamp_unix".into(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .into(),
    );
    json.insert(
        "nproc".into(),
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .into(),
    );
    for (mode, mmsg) in [(Mode::Sendto, false), (Mode::Sendmmsg, true)] {
        if args.mode == mode || args.mode == Mode::All {
            let f = packets(&args, mmsg)?;
            json.insert(if mmsg { "sendmmsg" } else { "sendto" }.into(), f.json());
        }
    }
    if args.mode == Mode::PerCall || args.mode == Mode::All {
        json.insert("percall".into(), per_call(args.secs)?.json());
    }
    if args.mode == Mode::Timer || args.mode == Mode::All {
        json.insert("timer".into(), timer(args.secs));
    }
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(json))
            .map_err(std::io::Error::other)?;
        std::fs::write(out, text + "\n")?;
        eprintln!("udp-floor: wrote {out}");
    }
    Ok(())
}

/// Send from `--senders` sockets (or batches from one with `mmsg`) to
/// `--receivers` drained by a second thread; CPU per packet of each side.
fn packets(args: &Args, mmsg: bool) -> std::io::Result<PacketFloor> {
    let (receivers, dests) = receivers(args.receivers.max(1))?;
    let n_senders = if mmsg { 1 } else { args.senders.max(1) };
    let senders: Vec<UdpSocket> = (0..n_senders)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    for s in &senders {
        s.set_nonblocking(true)?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let rx_stop = Arc::clone(&stop);
    let rx_count = Arc::clone(&received);
    let rx = std::thread::spawn(move || {
        let cpu0 = thread_cpu();
        let mut bufs = vec![[0u8; 256]; BATCH];
        while !rx_stop.load(Ordering::Relaxed) {
            for r in &receivers {
                loop {
                    let mut iov: Vec<libc::iovec> = bufs
                        .iter_mut()
                        .map(|b| libc::iovec {
                            iov_base: b.as_mut_ptr().cast(),
                            iov_len: b.len(),
                        })
                        .collect();
                    // SAFETY: zeroed mmsghdr is valid; iovecs outlive the call.
                    let mut msgs: Vec<libc::mmsghdr> = iov
                        .iter_mut()
                        .map(|v| {
                            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                            m.msg_hdr.msg_iov = v;
                            m.msg_hdr.msg_iovlen = 1;
                            m
                        })
                        .collect();
                    // SAFETY: msgs points to BATCH valid headers.
                    let n = unsafe {
                        libc::recvmmsg(
                            r.as_raw_fd(),
                            msgs.as_mut_ptr(),
                            BATCH as u32,
                            libc::MSG_DONTWAIT,
                            std::ptr::null_mut(),
                        )
                    };
                    if n <= 0 {
                        break;
                    }
                    rx_count.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        thread_cpu() - cpu0
    });

    let payload = [0xffu8; PACKET];
    let deadline = Instant::now() + Duration::from_secs_f64(args.secs);
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    let mut sent = 0u64;
    let mut errors = 0u64;
    let mut addrs: Vec<libc::sockaddr_in> = dests
        .iter()
        .map(|d| {
            // SAFETY: sockaddr_in is plain data; zero is a valid start.
            let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = d.port().to_be();
            a.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            a
        })
        .collect();
    'outer: loop {
        if mmsg {
            let mut iov = [libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: PACKET,
            }; BATCH];
            // SAFETY: zeroed mmsghdr is valid; iov and addrs outlive the call.
            let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
                .map(|i| {
                    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    let k = (sent as usize + i) % addrs.len();
                    m.msg_hdr.msg_name = (&mut addrs[k] as *mut libc::sockaddr_in).cast();
                    m.msg_hdr.msg_namelen =
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                    m.msg_hdr.msg_iov = &mut iov[i];
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            // SAFETY: msgs holds BATCH valid headers.
            let n = unsafe {
                libc::sendmmsg(senders[0].as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0)
            };
            if n > 0 {
                sent += n as u64;
            } else {
                errors += 1;
            }
        } else {
            let (ok, failed) = send_round(&senders, &dests, &payload);
            sent += ok;
            errors += failed;
        }
        if Instant::now() >= deadline {
            break 'outer;
        }
    }
    let tx_cpu = thread_cpu() - cpu0;
    let wall = wall0.elapsed();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let rx_cpu = rx.join().unwrap_or_default();
    let got = received.load(Ordering::Relaxed);
    println!(
        "mode={} senders={} receivers={} secs={:.1}",
        if mmsg { "sendmmsg" } else { "sendto" },
        n_senders,
        dests.len(),
        wall.as_secs_f64()
    );
    let f = PacketFloor::measured(
        n_senders,
        dests.len(),
        (sent, errors, got),
        wall,
        tx_cpu,
        rx_cpu,
    );
    println!(
        "sender CPU {:.2} µs/packet → at most {:.0} packets/s per core ({:.0} G.711 streams)",
        f.tx_us,
        1e6 / f.tx_us,
        1e6 / f.tx_us / 50.0
    );
    println!("receiver CPU {:.2} µs/packet", f.rx_us);
    Ok(f)
}

/// Sockets on each side in `--mode percall` (10,000 descriptors in all,
/// within the usual 20,000 open-files limit).
const PAIRS: usize = 5_000;

/// A non-blocking socket on 127.0.0.1 with a 4 MiB receive buffer.
fn floor_socket() -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_nonblocking(true)?;
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt with a valid int option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(s)
}

/// `n` receiving sockets and their addresses.
fn receivers(n: usize) -> std::io::Result<(Vec<UdpSocket>, Vec<std::net::SocketAddr>)> {
    let sockets: Vec<UdpSocket> = (0..n).map(|_| floor_socket()).collect::<Result<_, _>>()?;
    let addrs = sockets
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    Ok((sockets, addrs))
}

/// [`PAIRS`] senders, each to its own receiver; the receiving thread
/// polls them as ringback's receive threads do (module docs).
fn per_call(secs: f64) -> std::io::Result<PacketFloor> {
    let (receivers, dests) = receivers(PAIRS)?;
    let senders: Vec<UdpSocket> = (0..PAIRS)
        .map(|_| floor_socket())
        .collect::<Result<_, _>>()?;
    // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(std::io::Error::last_os_error());
    }
    for (i, r) in receivers.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: valid epoll and socket descriptors; `ev` outlives the call.
        if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, r.as_raw_fd(), &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let rx_stop = Arc::clone(&stop);
    let rx_count = Arc::clone(&received);
    let rx = std::thread::spawn(move || {
        // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
        const READ: usize = 8; // ringback's batch per recvmmsg
        let cpu0 = thread_cpu();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut bufs = vec![[0u8; 2048]; READ];
        while !rx_stop.load(Ordering::Relaxed) {
            loop {
                // SAFETY: `events` has room for its length; timeout 0 never blocks.
                let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), 256, 0) };
                let n = usize::try_from(n).unwrap_or(0);
                for e in &events[..n] {
                    let fd = receivers[e.u64 as usize].as_raw_fd();
                    let mut iov: [libc::iovec; READ] = std::array::from_fn(|i| libc::iovec {
                        iov_base: bufs[i].as_mut_ptr().cast(),
                        iov_len: 2048,
                    });
                    // SAFETY: zeroed mmsghdr is valid; the iovecs outlive the call.
                    let mut msgs: [libc::mmsghdr; READ] = unsafe { std::mem::zeroed() };
                    let mut addrs: [libc::sockaddr_storage; READ] = unsafe { std::mem::zeroed() };
                    for (i, m) in msgs.iter_mut().enumerate() {
                        m.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                        m.msg_hdr.msg_namelen =
                            std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                        m.msg_hdr.msg_iov = &mut iov[i];
                        m.msg_hdr.msg_iovlen = 1;
                    }
                    // SAFETY: msgs holds READ valid headers.
                    let got = unsafe {
                        libc::recvmmsg(
                            fd,
                            msgs.as_mut_ptr(),
                            READ as u32,
                            libc::MSG_DONTWAIT,
                            std::ptr::null_mut(),
                        )
                    };
                    if got > 0 {
                        rx_count.fetch_add(got as u64, Ordering::Relaxed);
                    }
                }
                if n < 256 {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        thread_cpu() - cpu0
    });
    let payload = [0xffu8; PACKET];
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    let (mut sent, mut errors) = (0u64, 0u64);
    while Instant::now() < deadline {
        let (ok, failed) = send_round(&senders, &dests, &payload);
        sent += ok;
        errors += failed;
    }
    let tx_cpu = thread_cpu() - cpu0;
    let wall = wall0.elapsed();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let rx_cpu = rx.join().unwrap_or_default();
    // SAFETY: `epoll` is ours and no longer used.
    unsafe { libc::close(epoll) };
    let got = received.load(Ordering::Relaxed);
    println!("mode=percall pairs={PAIRS} secs={:.1}", wall.as_secs_f64());
    let f = PacketFloor::measured(PAIRS, PAIRS, (sent, errors, got), wall, tx_cpu, rx_cpu);
    println!(
        "receiver CPU {:.2} µs/packet (epoll every 1 ms, one recvmmsg per ready socket)",
        f.rx_us
    );
    Ok(f)
}

/// One thread sleeping to absolute 1 ms deadlines for `secs`: CPU per
/// wake-up and lateness (p50, p99, max).
fn timer(secs: f64) -> serde_json::Value {
    let h = std::thread::spawn(move || {
        // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
        let period = Duration::from_millis(1);
        let n = (secs * 1000.0).max(1.0) as u64;
        let mut late_ns: Vec<u64> = Vec::with_capacity(n as usize);
        let start = Instant::now();
        let cpu0 = thread_cpu();
        for i in 1..=n {
            let due = start + period * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            late_ns.push(Instant::now().saturating_duration_since(due).as_nanos() as u64);
        }
        (thread_cpu() - cpu0, late_ns)
    });
    let (cpu, mut late) = h.join().unwrap_or_default();
    late.sort_unstable();
    let q = |p: f64| {
        let i = ((late.len() as f64 * p) as usize).min(late.len().saturating_sub(1));
        late.get(i).map_or(0.0, |&ns| ns as f64 / 1000.0)
    };
    let per = cpu.as_secs_f64() * 1e6 / late.len().max(1) as f64;
    println!("mode=timer period=1ms wake-ups={}", late.len());
    println!(
        "timer wake-up CPU {per:.2} µs; late p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        q(0.5),
        q(0.99),
        q(1.0)
    );
    serde_json::json!({
        "period_us": 1000, "wakeups": late.len(), "cpu_us_per_wakeup": per,
        "late_us": { "p50": q(0.5), "p99": q(0.99), "max": q(1.0) },
    })
}
