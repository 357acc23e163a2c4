//! The SIP side of a benchmark's agent phone, shared by `callback-dispatch`
//! and `phone-load`: a parsed message, a UDP socket with kernel receive
//! timestamps, and REGISTER with MD5 digest. Hand-written on purpose, like
//! `ivr-load`'s UAC: a bug in ringback's SIP stack cannot hide itself here.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use crate::procfs;

/// A parsed SIP message (enough for this phone).
pub struct Msg {
    /// The request or status line.
    pub first: String,
    /// Headers in order, names lower-cased and compact forms expanded.
    pub headers: Vec<(String, String)>,
    /// The body (after the blank line).
    pub body: String,
}

impl Msg {
    /// Parse a datagram's text; `None` if it has no start line.
    pub fn parse(text: &str) -> Option<Msg> {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
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
        Some(Msg {
            first,
            headers,
            body: body.to_string(),
        })
    }

    /// The first value of a header (lower-case name).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header (lower-case name).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Request method, or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        (!self.first.starts_with("SIP/2.0")).then(|| self.first.split(' ').next().unwrap_or(""))
    }

    /// Status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        self.first
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.split(' ').next())
            .and_then(|s| s.parse().ok())
    }

    /// The method named in CSeq.
    pub fn cseq_method(&self) -> &str {
        self.get("cseq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
    }

    /// A response to this request, with `to_tag` added to To if it has none.
    pub fn response(&self, code: u16, reason: &str, to_tag: &str, contact: &str) -> String {
        self.response_with_body(code, reason, to_tag, contact, None)
    }

    /// A response with an optional body (`(content type, text)`), e.g. a
    /// 200 with an SDP answer.
    pub fn response_with_body(
        &self,
        code: u16,
        reason: &str,
        to_tag: &str,
        contact: &str,
        body: Option<(&str, &str)>,
    ) -> String {
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
        let (ctype, text) = match body {
            Some((t, b)) => (format!("Content-Type: {t}\r\n"), b),
            None => (String::new(), ""),
        };
        out.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <{contact}>\r\n\
             User-Agent: ringback-bench\r\n{ctype}Content-Length: {}\r\n\r\n{text}",
            self.get("from").unwrap_or(""),
            self.get("call-id").unwrap_or(""),
            self.get("cseq").unwrap_or(""),
            text.len(),
        ));
        out
    }
}

/// The agent's phone: one UDP socket with kernel receive timestamps.
pub struct Phone {
    sock: UdpSocket,
    /// Our address (the Contact's host and port).
    pub local: SocketAddr,
    buf: Vec<u8>,
}

impl Phone {
    /// Bind a socket on 127.0.0.1 with `SO_TIMESTAMPNS`.
    pub fn new() -> std::io::Result<Phone> {
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

    /// The socket's descriptor (to wait on it beside others).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }

    /// Wait up to `wait` for one datagram: (text, source, kernel receive
    /// time in CLOCK_REALTIME ns).
    pub fn recv(&mut self, wait: Duration) -> Option<(String, SocketAddr, u64)> {
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

    /// Send one datagram (a lost one shows up as a retransmission).
    pub fn send(&self, text: &str, to: SocketAddr) {
        let _ = self.sock.send_to(text.as_bytes(), to);
    }
}

/// Lower-case hex MD5.
pub fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// `key=value` or `key="value"` from a Digest challenge.
pub fn param(header: &str, key: &str) -> Option<String> {
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

/// An agent's credentials.
pub struct Agent {
    /// Agent id (SIP user name).
    pub id: String,
    /// Digest password.
    pub password: String,
    /// Realm to assume if the challenge names none.
    pub realm: String,
}

/// REGISTER with MD5 digest; Ok when the registrar answers 200.
pub fn register(
    phone: &mut Phone,
    server: SocketAddr,
    a: &Agent,
    expires: u32,
) -> Result<(), String> {
    let run = procfs::realtime_ns() & 0xffff_ffff;
    let uri = format!("sip:{server}");
    let me = phone.local;
    let msg = |cseq: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-cbd-{run:x}-{cseq};rport\r\n\
             From: <sip:{id}@{host}>;tag=cbd{run:x}\r\nTo: <sip:{id}@{host}>\r\n\
             Call-ID: cbd-reg-{id}-{run:x}@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{id}@{me}>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n\
             User-Agent: ringback-bench\r\n{auth}Content-Length: 0\r\n\r\n",
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
