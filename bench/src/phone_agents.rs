//! Agent stand-ins for `phone-load`: registered SIP UAs (REGISTER with MD5
//! digest, one shared UDP socket as behind one NAT: each agent is told apart
//! by its Contact user) that answer ringback's INVITE with 180 and 200 + an
//! SDP answer (PCMU, and telephone-event if offered), send RTP back from the
//! shared media sockets, and hang up after a talk time. They also take a
//! CANCEL (the caller gave up while the phone rang) and the server's BYE (the
//! caller hung up).
//!
//! The INVITE's kernel arrival time is the zero-out key's action: the
//! driver matches it to the caller through `X-Ringback-Call-Id`.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::phone_media::{Kind, Media};
use crate::sip_phone::{register, Agent, Msg, Phone};

const T1: Duration = Duration::from_millis(500);
const GIVE_UP: Duration = Duration::from_secs(16);

/// Where an agent's leg is.
#[derive(Clone, Debug, PartialEq)]
pub enum LegState {
    /// INVITE received, 180 sent; 200 due at `answer_at`.
    Ringing {
        /// When to answer.
        answer_at: Instant,
    },
    /// 200 sent (retransmitted until the ACK).
    Answered(Resend),
    /// Talking; our RTP stops at `bye_at`, the BYE follows 60 ms later.
    Talking {
        /// When the agent hangs up.
        bye_at: Instant,
    },
    /// RTP stopped, BYE due at `at`.
    Stopping {
        /// When to send the BYE.
        at: Instant,
    },
    /// BYE sent, waiting for its 200.
    Byeing(Resend),
    /// The agent hung up and the server said 200.
    Done,
    /// The server hung up (the caller left).
    EndedByServer,
    /// CANCELed while ringing.
    Cancelled,
    /// Something went wrong (no ACK, no answer to BYE, no PCMU offered).
    Failed(String),
}

/// RFC 3261 retransmission of a message until its answer: T1, doubling to
/// 4 s, given up after 16 s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resend {
    first: Instant,
    last: Instant,
    sends: u32,
}

/// What a [`Resend`] timer says now.
enum Retry {
    Wait,
    Resend,
    GiveUp,
}

impl Resend {
    /// Sent once, now.
    fn now() -> Resend {
        let now = Instant::now();
        Resend {
            first: now,
            last: now,
            sends: 1,
        }
    }

    /// Whether to send again (and count it) or give up.
    fn check(&mut self, now: Instant) -> Retry {
        if now - self.first > GIVE_UP {
            Retry::GiveUp
        } else if now - self.last >= T1 * (1 << (self.sends - 1).min(3)) {
            self.last = now;
            self.sends += 1;
            Retry::Resend
        } else {
            Retry::Wait
        }
    }
}

/// One INVITE from ringback to an agent.
pub struct Leg {
    /// Where it is.
    pub state: LegState,
    /// The caller's call index (from `X-Ringback-Call-Id`), if ours.
    pub caller: Option<usize>,
    /// Our RTP stream, once answered.
    pub stream: Option<u32>,
    invite: Msg,
    src: SocketAddr,
    tag: String,
    contact: String,
    answer: String,
    server_rtp: Option<SocketAddrV4>,
    dtmf_pt: Option<u8>,
    pcmu: bool,
}

/// Something the driver wants to know.
pub enum AgentEvent {
    /// An INVITE for an agent arrived (kernel time), for this caller.
    Invited {
        /// Caller's call index, if the INVITE named one of ours.
        caller: Option<usize>,
        /// Kernel arrival time, CLOCK_REALTIME ns.
        at_ns: u64,
    },
    /// An agent answered this caller: from now on the caller hears the
    /// agent's packets relayed by ringback.
    Answered {
        /// Caller's call index, if ours.
        caller: Option<usize>,
    },
}

/// All agent stand-ins.
pub struct Agents {
    phone: Phone,
    server: SocketAddr,
    ids: Vec<String>,
    /// Legs by Call-ID.
    pub legs: HashMap<String, Leg>,
    answer_after: Duration,
    talk: (f64, f64),
    /// Agents that registered.
    pub registered: usize,
    /// REGISTERs that failed, with the reason.
    pub register_failures: Vec<String>,
    /// Requests and responses we could not place (unknown Call-ID, unknown agent).
    pub strays: u64,
    /// Our retransmissions (200 and BYE).
    pub retransmissions: u64,
    /// The callers' Call-ID prefix (`X-Ringback-Call-Id` → caller index).
    run: String,
}

impl Agents {
    /// Register `n` agents `{prefix}{i}` (all with `password`) with `server`.
    /// `run` is the callers' Call-ID prefix ([`crate::sip::Uac::run_id`]).
    pub fn register_all(
        server: SocketAddr,
        prefix: &str,
        n: usize,
        password: &str,
        answer_after: Duration,
        talk: (f64, f64),
        run: String,
    ) -> std::io::Result<Agents> {
        let mut phone = Phone::new()?;
        let mut ids = Vec::with_capacity(n);
        let mut registered = 0;
        let mut register_failures = Vec::new();
        for i in 0..n {
            let a = Agent {
                id: format!("{prefix}{i}"),
                password: password.to_string(),
                realm: "ringback".into(),
            };
            match register(&mut phone, server, &a, 3600) {
                Ok(()) => registered += 1,
                Err(e) => register_failures.push(format!("{}: {e}", a.id)),
            }
            ids.push(a.id);
        }
        Ok(Agents {
            phone,
            server,
            ids,
            legs: HashMap::new(),
            answer_after,
            talk,
            registered,
            register_failures,
            strays: 0,
            retransmissions: 0,
            run,
        })
    }

    /// The SIP socket (to wait on it).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.phone.fd()
    }

    /// Legs not finished yet (ringing, talking, hanging up).
    pub fn pending(&self) -> usize {
        self.legs
            .values()
            .filter(|l| {
                !matches!(
                    l.state,
                    LegState::Done
                        | LegState::EndedByServer
                        | LegState::Cancelled
                        | LegState::Failed(_)
                )
            })
            .count()
    }

    /// Hang up every talking leg now (teardown).
    pub fn hang_up_all(&mut self, media: &mut Media) {
        let now = Instant::now();
        for leg in self.legs.values_mut() {
            if let LegState::Talking { .. } = leg.state {
                if let Some(id) = leg.stream {
                    media.stop(id);
                }
                leg.state = LegState::Stopping {
                    at: now + Duration::from_millis(60),
                };
            }
        }
    }

    /// Read what arrived, answer it, run the timers.
    pub fn poll(&mut self, media: &mut Media, events: &mut Vec<AgentEvent>) {
        while let Some((text, src, at_ns)) = self.phone.recv(Duration::ZERO) {
            let Some(m) = Msg::parse(&text) else {
                self.strays += 1;
                continue;
            };
            match m.method() {
                Some(method) => {
                    let method = method.to_string();
                    self.on_request(&method, m, src, at_ns, media, events);
                }
                None => self.on_response(&m),
            }
        }
        self.timers(media, events);
    }

    fn on_request(
        &mut self,
        method: &str,
        m: Msg,
        src: SocketAddr,
        at_ns: u64,
        media: &mut Media,
        events: &mut Vec<AgentEvent>,
    ) {
        let call_id = m.get("call-id").unwrap_or("").to_string();
        match method {
            "INVITE" => {
                if let Some(leg) = self.legs.get_mut(&call_id) {
                    // A retransmission or a re-INVITE: the same answer again.
                    if !leg.answer.is_empty() {
                        let text = if m.get("cseq") == leg.invite.get("cseq") {
                            leg.answer.clone()
                        } else {
                            let sdp = answer_sdp(&leg.invite, leg.stream, media);
                            m.response_with_body(
                                200,
                                "OK",
                                &leg.tag,
                                &leg.contact,
                                Some(("application/sdp", &sdp)),
                            )
                        };
                        self.phone.send(&text, src);
                    }
                    return;
                }
                let user = m
                    .first
                    .split_whitespace()
                    .nth(1)
                    .and_then(|u| u.strip_prefix("sip:"))
                    .and_then(|u| u.split('@').next())
                    .unwrap_or("");
                let Some(agent) = self.ids.iter().position(|id| id == user) else {
                    self.strays += 1;
                    self.phone
                        .send(&m.response(404, "Not Found", "nf", "sip:x@127.0.0.1"), src);
                    return;
                };
                let caller = m
                    .get("x-ringback-call-id")
                    .and_then(|c| crate::sip::call_index(&self.run, c));
                events.push(AgentEvent::Invited { caller, at_ns });
                let contact = format!("sip:{user}@{}", self.phone.local);
                let tag = format!("ag{agent}-{}", at_ns & 0xffff_ffff);
                let (server_rtp, dtmf_pt, pcmu) = offer(&m.body, self.server);
                self.phone
                    .send(&m.response(180, "Ringing", &tag, &contact), src);
                self.legs.insert(
                    call_id,
                    Leg {
                        state: LegState::Ringing {
                            answer_at: Instant::now() + self.answer_after,
                        },
                        caller,
                        stream: None,
                        invite: m,
                        src,
                        tag,
                        contact,
                        answer: String::new(),
                        server_rtp,
                        dtmf_pt,
                        pcmu,
                    },
                );
            }
            "ACK" => {
                if let Some(leg) = self.legs.get_mut(&call_id) {
                    if let LegState::Answered(_) = leg.state {
                        let (lo, hi) = self.talk;
                        let secs = lo + (hi - lo).max(0.0) * rand::random::<f64>();
                        leg.state = LegState::Talking {
                            bye_at: Instant::now() + Duration::from_secs_f64(secs),
                        };
                    }
                }
            }
            "CANCEL" | "BYE" => {
                let Some(leg) = self.legs.get_mut(&call_id) else {
                    self.strays += 1;
                    self.phone.send(
                        &m.response(
                            481,
                            "Call/Transaction Does Not Exist",
                            "x",
                            "sip:x@127.0.0.1",
                        ),
                        src,
                    );
                    return;
                };
                self.phone
                    .send(&m.response(200, "OK", &leg.tag, &leg.contact), src);
                if method == "CANCEL" {
                    // The caller gave up while the phone rang.
                    if let LegState::Ringing { .. } = leg.state {
                        self.phone.send(
                            &leg.invite
                                .response(487, "Request Terminated", &leg.tag, &leg.contact),
                            leg.src,
                        );
                        leg.state = LegState::Cancelled;
                    }
                    return;
                }
                // BYE: the caller hung up.
                if let Some(id) = leg.stream {
                    media.stop(id);
                }
                if !matches!(leg.state, LegState::Done | LegState::Failed(_)) {
                    leg.state = LegState::EndedByServer;
                }
            }
            _ => {
                // OPTIONS, INFO, NOTIFY…: a plain 200.
                let (tag, contact) = self
                    .legs
                    .get(&call_id)
                    .map(|l| (l.tag.clone(), l.contact.clone()))
                    .unwrap_or_else(|| ("opt".into(), format!("sip:agent@{}", self.phone.local)));
                self.phone.send(&m.response(200, "OK", &tag, &contact), src);
            }
        }
    }

    fn on_response(&mut self, m: &Msg) {
        let call_id = m.get("call-id").unwrap_or("");
        let Some(leg) = self.legs.get_mut(call_id) else {
            self.strays += 1;
            return;
        };
        if m.cseq_method() == "BYE" && m.status().is_some_and(|s| s >= 200) {
            if let LegState::Byeing(_) = leg.state {
                // 481: the server had ended the call already (glare).
                leg.state = match m.status() {
                    Some(200..=299) | Some(481) => LegState::Done,
                    s => LegState::Failed(format!("BYE {s:?}")),
                };
            }
        }
    }

    fn timers(&mut self, media: &mut Media, events: &mut Vec<AgentEvent>) {
        let now = Instant::now();
        for leg in self.legs.values_mut() {
            match leg.state.clone() {
                LegState::Ringing { answer_at } if now >= answer_at => {
                    let (Some(dest), true) = (leg.server_rtp, leg.pcmu) else {
                        self.phone.send(
                            &leg.invite.response(
                                488,
                                "Not Acceptable Here",
                                &leg.tag,
                                &leg.contact,
                            ),
                            leg.src,
                        );
                        leg.state = LegState::Failed("no PCMU in the offer".into());
                        continue;
                    };
                    let Some((id, _)) = media.reserve(Kind::Agent) else {
                        self.phone.send(
                            &leg.invite
                                .response(486, "Busy Here", &leg.tag, &leg.contact),
                            leg.src,
                        );
                        leg.state = LegState::Failed("generator out of streams".into());
                        continue;
                    };
                    leg.stream = Some(id);
                    let sdp = answer_sdp(&leg.invite, leg.stream, media);
                    leg.answer = leg.invite.response_with_body(
                        200,
                        "OK",
                        &leg.tag,
                        &leg.contact,
                        Some(("application/sdp", &sdp)),
                    );
                    self.phone.send(&leg.answer, leg.src);
                    // A phone starts its audio with the 200; what it hears
                    // from now on is the caller's audio, relayed.
                    media.start(id, dest, leg.dtmf_pt);
                    media.set_relayed(id);
                    events.push(AgentEvent::Answered { caller: leg.caller });
                    leg.state = LegState::Answered(Resend::now());
                }
                LegState::Answered(mut t) => match t.check(now) {
                    Retry::GiveUp => {
                        if let Some(id) = leg.stream {
                            media.stop(id);
                        }
                        leg.state = LegState::Failed("no ACK for 200".into());
                    }
                    Retry::Resend => {
                        self.phone.send(&leg.answer, leg.src);
                        self.retransmissions += 1;
                        leg.state = LegState::Answered(t);
                    }
                    Retry::Wait => {}
                },
                LegState::Talking { bye_at } if now >= bye_at => {
                    if let Some(id) = leg.stream {
                        media.stop(id);
                    }
                    // Let the last packets arrive before the BYE, so what
                    // the server counted is what we sent.
                    leg.state = LegState::Stopping {
                        at: now + Duration::from_millis(60),
                    };
                }
                LegState::Stopping { at } if now >= at => {
                    self.phone.send(&bye(leg, self.phone.local), leg.src);
                    leg.state = LegState::Byeing(Resend::now());
                }
                LegState::Byeing(mut t) => match t.check(now) {
                    Retry::GiveUp => leg.state = LegState::Failed("BYE timeout".into()),
                    Retry::Resend => {
                        self.phone.send(&bye(leg, self.phone.local), leg.src);
                        self.retransmissions += 1;
                        leg.state = LegState::Byeing(t);
                    }
                    Retry::Wait => {}
                },
                _ => {}
            }
        }
    }
}

/// The server's offer: its RTP address, its telephone-event payload type,
/// and whether it offers PCMU.
fn offer(sdp: &str, server: SocketAddr) -> (Option<SocketAddrV4>, Option<u8>, bool) {
    let ip = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .and_then(|a| a.trim().parse().ok())
        .or(match server {
            SocketAddr::V4(a) => Some(*a.ip()),
            SocketAddr::V6(_) => None,
        });
    let m = sdp.lines().find_map(|l| l.trim().strip_prefix("m=audio "));
    let port: Option<u16> = m
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok());
    let pcmu = m.is_some_and(|r| r.split_whitespace().skip(2).any(|pt| pt == "0"));
    let addr = match (ip, port) {
        (Some(ip), Some(port)) if port > 0 => Some(SocketAddrV4::new(ip, port)),
        _ => None,
    };
    (addr, crate::sip::telephone_event_pt(sdp), pcmu)
}

/// Our SDP answer: PCMU (and telephone-event if offered) at the stream's
/// shared socket.
fn answer_sdp(invite: &Msg, stream: Option<u32>, media: &Media) -> String {
    let port = stream.map_or(0, |id| media.local_port(id));
    let dtmf = crate::sip::telephone_event_pt(&invite.body);
    let (pts, te) = match dtmf {
        Some(pt) => (
            format!("0 {pt}"),
            format!("a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"),
        ),
        None => ("0".to_string(), String::new()),
    };
    format!(
        "v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pts}\r\na=rtpmap:0 PCMU/8000\r\n{te}a=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The agent's BYE (we are the dialog's UAS: From is the INVITE's To with
/// our tag, To is its From).
fn bye(leg: &Leg, me: SocketAddr) -> String {
    let inv = &leg.invite;
    let target = inv
        .get("contact")
        .and_then(|c| c.split('<').nth(1))
        .and_then(|c| c.split('>').next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("sip:{}", leg.src));
    let to = inv.get("to").unwrap_or("");
    let from = if to.contains(";tag=") {
        to.to_string()
    } else {
        format!("{to};tag={}", leg.tag)
    };
    format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-agbye-{tag};rport\r\n\
         From: {from}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n\
         User-Agent: ringback-bench\r\nContent-Length: 0\r\n\r\n",
        inv.get("from").unwrap_or(""),
        inv.get("call-id").unwrap_or(""),
        tag = leg.tag,
    )
}
