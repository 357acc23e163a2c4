//! A hand-written SIP UAC for load: INVITE with SDP, ACK, hold, BYE, over
//! one non-blocking UDP socket. Deliberately independent of ringback's own
//! SIP stack, so a bug there cannot hide itself in the benchmark.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Where one call is.
#[derive(Clone, Debug)]
pub enum State {
    /// Not started.
    Idle,
    /// INVITE sent (first at `first`, last at `last`, `sends` times).
    Inviting {
        first: Instant,
        last: Instant,
        sends: u32,
    },
    /// Answered and ACKed.
    Up {
        /// Server's RTP port from its SDP answer.
        rtp_port: u16,
    },
    /// BYE sent, waiting for 200.
    Byeing {
        first: Instant,
        last: Instant,
        sends: u32,
    },
    /// Ended cleanly.
    Done,
    /// Never came up, or ended badly.
    Failed(String),
}

/// One call.
pub struct Call {
    /// Where it is.
    pub state: State,
    /// Our RTP port (advertised in the SDP offer).
    pub rtp_port: u16,
    /// INVITE → 200 time.
    pub setup_ms: Option<f64>,
    /// The server hung up on us during the hold.
    pub dropped_by_server: bool,
    /// The telephone-event payload type of the server's answer, if any.
    pub dtmf_pt: Option<u8>,
    to: String,
    contact: String,
}

/// Drives all calls.
pub struct Uac {
    sock: UdpSocket,
    server: SocketAddr,
    local: SocketAddr,
    number: String,
    run: String,
    /// All calls, by index.
    pub calls: Vec<Call>,
    /// Our retransmissions (INVITE and BYE): a sign the server is slow.
    pub retransmissions: u64,
    /// 200 OKs the server retransmitted (our ACK was late or lost).
    pub ok_retransmitted: u64,
    buf: Vec<u8>,
    last_timers: Instant,
    /// Offer SRTP (`RTP/SAVP` with one SDES key) instead of plain RTP.
    pub srtp: bool,
    /// Offer only PCMU and telephone-event (a caller that sends PCMU must
    /// know the answer's codec without parsing it).
    pub pcmu_only: bool,
    /// When set, the index of every call whose state changed on a message or
    /// a timer is pushed here, so a driver with many calls need not scan them.
    pub changed: Option<Vec<usize>>,
}

fn new_call(rtp_port: u16) -> Call {
    Call {
        state: State::Idle,
        rtp_port,
        setup_ms: None,
        dropped_by_server: false,
        dtmf_pt: None,
        to: String::new(),
        contact: String::new(),
    }
}

const T1: Duration = Duration::from_millis(500);
const GIVE_UP: Duration = Duration::from_secs(16);

impl Uac {
    /// A UAC sending to `server` and dialing `number`; `rtp_ports[i]` is call i's RTP port.
    pub fn new(server: SocketAddr, number: &str, rtp_ports: &[u16]) -> std::io::Result<Uac> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_nonblocking(true)?;
        let big: libc::c_int = 8 << 20;
        // SAFETY: valid fd and a live c_int.
        unsafe {
            for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&big as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        let local = sock.local_addr()?;
        let run = format!("{:x}", crate::procfs::realtime_ns() & 0xffff_ffff);
        Ok(Uac {
            sock,
            server,
            local,
            number: number.to_string(),
            run,
            calls: rtp_ports.iter().map(|&p| new_call(p)).collect(),
            retransmissions: 0,
            ok_retransmitted: 0,
            buf: vec![0u8; 65_536],
            last_timers: Instant::now(),
            srtp: false,
            pcmu_only: false,
            changed: None,
        })
    }

    /// The SIP socket's descriptor (to wait on it beside others).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }

    /// A new call (not started) whose RTP is at `rtp_port`; its index.
    pub fn add_call(&mut self, rtp_port: u16) -> usize {
        self.calls.push(new_call(rtp_port));
        self.calls.len() - 1
    }

    /// The call's state changed: tell the driver if it asked.
    fn changed(&mut self, i: usize) {
        if let Some(c) = self.changed.as_mut() {
            c.push(i);
        }
    }

    fn call_id(&self, i: usize) -> String {
        format!("{}-{i}@ivr-load", self.run)
    }

    fn from(&self, i: usize) -> String {
        format!("<sip:load{i}@{}>;tag=t{}-{i}", self.local, self.run)
    }

    fn send(&self, msg: &str) {
        // A full send buffer shows up as a retransmission later.
        let _ = self.sock.send_to(msg.as_bytes(), self.server);
    }

    fn invite(&self, i: usize) -> String {
        // With --srtp the server seals every packet it sends (AES-CM-128,
        // HMAC-SHA1-80, the suite phones use most); the receivers count
        // and time packets by their clear header either way.
        let (profile, crypto) = if self.srtp {
            (
                "RTP/SAVP",
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e\r\n",
            )
        } else {
            ("RTP/AVP", "")
        };
        let (pts, pcma) = if self.pcmu_only {
            ("0 101", "")
        } else {
            ("0 8 101", "a=rtpmap:8 PCMA/8000\r\n")
        };
        let sdp = format!(
            "v=0\r\no=load {i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} {profile} {pts}\r\na=rtpmap:0 PCMU/8000\r\n{pcma}\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n{crypto}",
            self.calls[i].rtp_port
        );
        format!(
            "INVITE sip:{num}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{run}-{i}-inv;rport\r\n\
             From: {from}\r\nTo: <sip:{num}@{srv}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:load{i}@{me}>\r\nMax-Forwards: 70\r\nUser-Agent: ringback-ivr-load\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            num = self.number,
            srv = self.server,
            me = self.local,
            run = self.run,
            from = self.from(i),
            cid = self.call_id(i),
            len = sdp.len(),
        )
    }

    fn in_dialog(&self, i: usize, method: &str, cseq: u32, branch: &str) -> String {
        let c = &self.calls[i];
        format!(
            "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{run}-{i}-{branch};rport\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            contact = c.contact,
            me = self.local,
            run = self.run,
            from = self.from(i),
            to = c.to,
            cid = self.call_id(i),
        )
    }

    /// Send INVITE number `i`.
    pub fn start_call(&mut self, i: usize) {
        let msg = self.invite(i);
        self.send(&msg);
        let now = Instant::now();
        self.calls[i].state = State::Inviting {
            first: now,
            last: now,
            sends: 1,
        };
    }

    /// Send BYE on call `i` if it is up.
    pub fn hang_up(&mut self, i: usize) {
        if let State::Up { .. } = self.calls[i].state {
            let msg = self.in_dialog(i, "BYE", 2, "bye");
            self.send(&msg);
            let now = Instant::now();
            self.calls[i].state = State::Byeing {
                first: now,
                last: now,
                sends: 1,
            };
        }
    }

    /// Read everything pending (waiting up to `wait` for the first datagram),
    /// then run retransmission timers.
    pub fn poll(&mut self, wait: Duration) {
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) };
        for _ in 0..10_000 {
            let n = match self.sock.recv_from(&mut self.buf) {
                Ok((n, _)) => n,
                Err(_) => break,
            };
            let text = String::from_utf8_lossy(&self.buf[..n]).into_owned();
            self.on_message(&text);
        }
        self.timers();
    }

    fn timers(&mut self) {
        let now = Instant::now();
        if now - self.last_timers < Duration::from_millis(10) {
            return;
        }
        self.last_timers = now;
        for i in 0..self.calls.len() {
            let state = match &self.calls[i].state {
                s @ (State::Inviting { .. } | State::Byeing { .. }) => s.clone(),
                _ => continue,
            };
            match state {
                State::Inviting { first, last, sends } => {
                    if now - first > GIVE_UP {
                        self.calls[i].state = State::Failed("INVITE timeout".into());
                        self.changed(i);
                    } else if now - last >= T1 * (1 << (sends - 1).min(3)) {
                        let msg = self.invite(i);
                        self.send(&msg);
                        self.retransmissions += 1;
                        self.calls[i].state = State::Inviting {
                            first,
                            last: now,
                            sends: sends + 1,
                        };
                    }
                }
                State::Byeing { first, last, sends } => {
                    if now - first > GIVE_UP {
                        self.calls[i].state = State::Failed("BYE timeout".into());
                        self.changed(i);
                    } else if now - last >= T1 * (1 << (sends - 1).min(3)) {
                        let msg = self.in_dialog(i, "BYE", 2, "bye");
                        self.send(&msg);
                        self.retransmissions += 1;
                        self.calls[i].state = State::Byeing {
                            first,
                            last: now,
                            sends: sends + 1,
                        };
                    }
                }
                _ => {}
            }
        }
    }

    fn index_of(&self, call_id: &str) -> Option<usize> {
        call_index(&self.run, call_id).filter(|&i| i < self.calls.len())
    }

    /// This run's Call-ID prefix (see [`call_index`]).
    pub fn run_id(&self) -> String {
        self.run.clone()
    }

    fn on_message(&mut self, text: &str) {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or_default();
        let headers: Vec<(&str, &str)> = lines
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((n.trim(), v.trim()))
            })
            .collect();
        let get = |name: &str, short: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(short))
                .map(|(_, v)| *v)
        };
        let Some(i) = get("Call-ID", "i").and_then(|c| self.index_of(c)) else {
            return;
        };
        if let Some(code) = start.strip_prefix("SIP/2.0 ") {
            let code: u16 = code.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let method = get("CSeq", "CSeq")
                .and_then(|c| c.split_whitespace().nth(1))
                .unwrap_or_default();
            match (method, code) {
                ("INVITE", 100..=199) => {}
                ("INVITE", 200..=299) => {
                    let to = get("To", "t").unwrap_or_default().to_string();
                    let contact = get("Contact", "m")
                        .and_then(|c| c.split('<').nth(1))
                        .and_then(|c| c.split('>').next())
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("sip:{}@{}", self.number, self.server));
                    let rtp_port = body
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("m=audio "))
                        .and_then(|r| r.split_whitespace().next())
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    let dtmf_pt = telephone_event_pt(body);
                    match self.calls[i].state.clone() {
                        State::Inviting { first, .. } => {
                            let c = &mut self.calls[i];
                            c.setup_ms = Some(first.elapsed().as_secs_f64() * 1000.0);
                            c.to = to;
                            c.contact = contact;
                            c.dtmf_pt = dtmf_pt;
                            c.state = State::Up { rtp_port };
                            self.changed(i);
                        }
                        _ => self.ok_retransmitted += 1,
                    }
                    // ACK every 2xx, including retransmissions (RFC 3261 §13.2.2.4).
                    if !self.calls[i].contact.is_empty() {
                        let ack = self.in_dialog(i, "ACK", 1, "ack");
                        self.send(&ack);
                    }
                }
                ("INVITE", c) => {
                    // ACK the failure (same branch as the INVITE) and give up.
                    let ack = format!(
                        "ACK sip:{num}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{run}-{i}-inv;rport\r\n\
                         From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n\
                         Content-Length: 0\r\n\r\n",
                        num = self.number,
                        srv = self.server,
                        me = self.local,
                        run = self.run,
                        from = self.from(i),
                        to = get("To", "t").unwrap_or_default(),
                        cid = self.call_id(i),
                    );
                    self.send(&ack);
                    if let State::Inviting { .. } = self.calls[i].state {
                        self.calls[i].state = State::Failed(format!("INVITE {c}"));
                        self.changed(i);
                    }
                }
                ("BYE", 200..=299) => {
                    if let State::Byeing { .. } = self.calls[i].state {
                        self.calls[i].state = State::Done;
                        self.changed(i);
                    }
                }
                ("BYE", c) if c >= 300 => {
                    if let State::Byeing { .. } = self.calls[i].state {
                        self.calls[i].state = State::Failed(format!("BYE {c}"));
                        self.changed(i);
                    }
                }
                _ => {}
            }
        } else {
            // A request from the server (BYE when it hangs up on us): 200 OK.
            let method = start.split(' ').next().unwrap_or_default();
            let mut resp = String::from("SIP/2.0 200 OK\r\n");
            for (n, v) in &headers {
                let keep = ["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq"]
                    .iter()
                    .any(|k| n.eq_ignore_ascii_case(k));
                if keep {
                    resp.push_str(&format!("{n}: {v}\r\n"));
                }
            }
            resp.push_str("Content-Length: 0\r\n\r\n");
            self.send(&resp);
            if method == "BYE" {
                let c = &mut self.calls[i];
                if let State::Up { .. } = c.state {
                    c.dropped_by_server = true;
                    c.state = State::Failed("server hung up".into());
                    self.changed(i);
                }
            }
        }
    }

    /// Calls in each state (for progress lines and the result).
    pub fn tally(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in &self.calls {
            let k = match &c.state {
                State::Idle => "idle".to_string(),
                State::Inviting { .. } => "inviting".into(),
                State::Up { .. } => "up".into(),
                State::Byeing { .. } => "byeing".into(),
                State::Done => "done".into(),
                State::Failed(why) => format!("failed: {why}"),
            };
            *m.entry(k).or_insert(0) += 1;
        }
        m
    }

    /// Calls still waiting for a final response to INVITE or BYE.
    pub fn pending(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| matches!(c.state, State::Inviting { .. } | State::Byeing { .. }))
            .count()
    }
}

/// The payload type the SDP maps to `telephone-event`, if any.
pub fn telephone_event_pt(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let (pt, enc) = l.trim().strip_prefix("a=rtpmap:")?.split_once(' ')?;
        enc.to_ascii_lowercase()
            .starts_with("telephone-event/")
            .then(|| pt.parse().ok())?
    })
}

/// The call index in one of our Call-IDs (`{run}-{i}@ivr-load`).
pub fn call_index(run: &str, call_id: &str) -> Option<usize> {
    let rest = call_id.strip_prefix(run)?.strip_prefix('-')?;
    rest.strip_suffix("@ivr-load")?.parse().ok()
}
