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

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{metric, summary, Args, Http};
use md5::{Digest, Md5};
use serde_json::json;

const USAGE: &str = "usage: callback-dispatch --sip IP:PORT --api IP:PORT --admin-token T \
--agent ID --password PW --agent-token T [--queue operator] [--callbacks 10000] \
[--samples 300] [--warmup 10] [--gap-ms 50] [--trunk-port P] [--pid PID] [--store NAME] \
[--realm ringback] [--out FILE] [--label TEXT]";

/// A parsed SIP message (enough for this phone).
struct Msg {
    first: String,
    headers: Vec<(String, String)>,
}

impl Msg {
    fn parse(text: &str) -> Option<Msg> {
        let head = text.split("\r\n\r\n").next()?;
        let mut lines = head.split("\r\n");
        let first = lines.next()?.to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        for l in lines {
            if l.starts_with(' ') || l.starts_with('\t') {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(l.trim());
                }
                continue;
            }
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let k = match k.trim().to_ascii_lowercase().as_str() {
                "v" => "via".to_string(),
                "f" => "from".to_string(),
                "t" => "to".to_string(),
                "i" => "call-id".to_string(),
                "m" => "contact".to_string(),
                "l" => "content-length".to_string(),
                other => other.to_string(),
            };
            headers.push((k, v.trim().to_string()));
        }
        Some(Msg { first, headers })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Request method, or `None` for a response.
    fn method(&self) -> Option<&str> {
        (!self.first.starts_with("SIP/2.0")).then(|| self.first.split(' ').next().unwrap_or(""))
    }

    fn status(&self) -> Option<u16> {
        self.first
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.split(' ').next())
            .and_then(|s| s.parse().ok())
    }

    fn cseq_method(&self) -> &str {
        self.get("cseq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
    }

    /// A response to this request, with `to_tag` added to To if it has none.
    fn response(&self, code: u16, reason: &str, to_tag: &str, contact: &str) -> String {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for v in self.all("via") {
            out.push_str(&format!("Via: {v}\r\n"));
        }
        let to = self.get("to").unwrap_or("");
        let to = if to.contains(";tag=") {
            to.to_string()
        } else {
            format!("{to};tag={to_tag}")
        };
        out.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <{contact}>\r\n\
             User-Agent: ringback-callback-dispatch\r\nContent-Length: 0\r\n\r\n",
            self.get("from").unwrap_or(""),
            self.get("call-id").unwrap_or(""),
            self.get("cseq").unwrap_or(""),
        ));
        out
    }
}

/// The agent's phone: one UDP socket with kernel receive timestamps.
struct Phone {
    sock: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
}

impl Phone {
    fn new() -> std::io::Result<Phone> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        let on: libc::c_int = 1;
        // SAFETY: valid fd, pointer to a live c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let local = sock.local_addr()?;
        Ok(Phone {
            sock,
            local,
            buf: vec![0u8; 65_536],
        })
    }

    /// Wait up to `wait` for one datagram: (text, source, kernel receive
    /// time in CLOCK_REALTIME ns).
    fn recv(&mut self, wait: Duration) -> Option<(String, SocketAddr, u64)> {
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            return None;
        }
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: self.buf.len(),
        };
        let mut cbuf = [0u64; 16];
        // SAFETY: zeroed msghdr is a valid starting point; every pointer set
        // below refers to a live buffer of the stated length.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
        mh.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.as_mut_ptr().cast();
        mh.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        // SAFETY: mh is fully initialised above.
        let n = unsafe { libc::recvmsg(self.sock.as_raw_fd(), &mut mh, libc::MSG_DONTWAIT) };
        if n <= 0 {
            return None;
        }
        let mut stamp = procfs::realtime_ns();
        // SAFETY: walking the control messages the kernel wrote into cbuf.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&mh);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    stamp = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
        }
        let src = SocketAddr::from((
            std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            u16::from_be(addr.sin_port),
        ));
        Some((
            String::from_utf8_lossy(&self.buf[..n as usize]).into_owned(),
            src,
            stamp,
        ))
    }

    fn send(&self, text: &str, to: SocketAddr) {
        let _ = self.sock.send_to(text.as_bytes(), to);
    }
}

fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// `key=value` or `key="value"` from a Digest challenge.
fn param(header: &str, key: &str) -> Option<String> {
    let rest = header.strip_prefix("Digest").unwrap_or(header);
    for part in split_params(rest) {
        if let Some((k, v)) = part.split_once('=') {
            if k.trim().eq_ignore_ascii_case(key) {
                return Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    None
}

fn split_params(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out
}

struct Agent {
    id: String,
    password: String,
    realm: String,
}

/// REGISTER with MD5 digest; Ok when the registrar answers 200.
fn register(phone: &mut Phone, server: SocketAddr, a: &Agent, expires: u32) -> Result<(), String> {
    let run = procfs::realtime_ns() & 0xffff_ffff;
    let uri = format!("sip:{server}");
    let me = phone.local;
    let msg = |cseq: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-cbd-{run:x}-{cseq};rport\r\n\
             From: <sip:{id}@{host}>;tag=cbd{run:x}\r\nTo: <sip:{id}@{host}>\r\n\
             Call-ID: cbd-reg-{run:x}@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{id}@{me}>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n\
             User-Agent: ringback-callback-dispatch\r\n{auth}Content-Length: 0\r\n\r\n",
            id = a.id,
            host = server.ip(),
        )
    };
    let mut challenge: Option<String> = None;
    for cseq in 1..=2u32 {
        let auth = match &challenge {
            None => String::new(),
            Some(ch) => {
                let realm = param(ch, "realm").unwrap_or_else(|| a.realm.clone());
                let nonce = param(ch, "nonce").ok_or("challenge without nonce")?;
                let cnonce = format!("{:016x}", procfs::realtime_ns());
                let ha1 = md5_hex(&format!("{}:{realm}:{}", a.id, a.password));
                let ha2 = md5_hex(&format!("REGISTER:{uri}"));
                let qop = param(ch, "qop").is_some();
                let response = if qop {
                    md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"))
                } else {
                    md5_hex(&format!("{ha1}:{nonce}:{ha2}"))
                };
                let mut h = format!(
                    "Authorization: Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", \
                     uri=\"{uri}\", response=\"{response}\", algorithm=MD5",
                    a.id
                );
                if qop {
                    h.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""));
                }
                if let Some(o) = param(ch, "opaque") {
                    h.push_str(&format!(", opaque=\"{o}\""));
                }
                h + "\r\n"
            }
        };
        let text = msg(cseq, &auth);
        let mut got = None;
        for _ in 0..4 {
            phone.send(&text, server);
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                let Some((t, _, _)) = phone.recv(Duration::from_millis(100)) else {
                    continue;
                };
                let Some(m) = Msg::parse(&t) else { continue };
                if m.cseq_method() == "REGISTER"
                    && m.status().is_some_and(|s| s >= 200)
                    && m.get("cseq")
                        .is_some_and(|c| c.starts_with(&cseq.to_string()))
                {
                    got = Some(m);
                    break;
                }
            }
            if got.is_some() {
                break;
            }
        }
        let m = got.ok_or("no answer to REGISTER")?;
        match m.status() {
            Some(200) => return Ok(()),
            Some(401) if challenge.is_none() => {
                let md5 = m
                    .all("www-authenticate")
                    .find(|h| param(h, "algorithm").is_none_or(|al| al.eq_ignore_ascii_case("MD5")))
                    .ok_or("no MD5 challenge offered")?;
                challenge = Some(md5.to_string());
            }
            s => return Err(format!("REGISTER answered {s:?}")),
        }
    }
    Err("REGISTER not accepted".into())
}

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
