//! One fake browser's call set-up, as `/call` does it: a token
//! (`POST /api/v1/webcall/tokens`), the signalling WebSocket
//! (`GET /api/v1/webcall?token=`), a JSEP-style offer with our own
//! certificate's fingerprint, the server's answer; then the ICE check (the
//! browser is the controlling agent and nominates at once) and the DTLS
//! handshake as client (dimpl, DTLS 1.2 as Chrome and Firefox speak it),
//! the server's certificate checked against the answer's `a=fingerprint`,
//! and the SRTP keys exported (RFC 5764 §4.2).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dimpl::{Config, Dtls, DtlsCertificate, Output, SrtpProfile};
use ringback_media::srtp::{KeyMaterial, Suite};
use ringback_webrtc::{is_dtls, is_stun, Fingerprint};
use tungstenite::{Message, WebSocket};

use crate::common::Http;
use crate::webrtc_stun::{self, Response};

/// What every fake browser shares: its certificate (one per browser
/// process, as a browser profile has) and the DTLS configuration.
pub struct Identity {
    cert: DtlsCertificate,
    fingerprint: Fingerprint,
    config: Arc<Config>,
}

impl Identity {
    /// A fresh self-signed ECDSA P-256 certificate (rcgen), as browsers make.
    pub fn generate() -> Result<Identity, String> {
        use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        let params =
            CertificateParams::new(vec!["WebRTC".to_string()]).map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let der = cert.der().to_vec();
        let fingerprint =
            Fingerprint::of_der("sha-256", &der).ok_or("sha-256 fingerprint unavailable")?;
        let config = Config::builder().build().map_err(|e| e.to_string())?;
        Ok(Identity {
            cert: DtlsCertificate {
                certificate: der,
                private_key: key.serialize_der(),
            },
            fingerprint,
            config: Arc::new(config),
        })
    }
}

/// A leg whose keys are up: what the media threads need.
pub struct Leg {
    /// The leg's UDP socket (ICE, DTLS, SRTP), connected to the server's port.
    pub socket: UdpSocket,
    /// Our sending key (the DTLS client's write key).
    pub local: KeyMaterial,
    /// The server's sending key.
    pub remote: KeyMaterial,
    /// Our SSRC (as in our offer).
    pub ssrc: u32,
    /// `telephone-event/8000` payload type the server accepted (if any).
    pub dtmf_pt: Option<u8>,
    /// For consent checks: `"<server ufrag>:<our ufrag>"` and the server's pwd.
    pub ice_username: String,
    /// The server's `ice-pwd`.
    pub ice_pwd: String,
    /// Our ICE tie-breaker.
    pub tiebreaker: u64,
    /// The signalling socket, kept open for the call's life.
    pub ws: WebSocket<TcpStream>,
    /// Phase times, ms: token, WebSocket + answer, ICE, DTLS; and the total.
    pub times: Times,
}

/// Where a leg's set-up time went.
#[derive(Clone, Copy, Default, Debug)]
pub struct Times {
    /// `POST /api/v1/webcall/tokens` round trip.
    pub token_ms: f64,
    /// WebSocket upgrade, offer sent, answer received.
    pub signalling_ms: f64,
    /// Binding request → authenticated success.
    pub ice_ms: f64,
    /// First ClientHello → keys exported and the server's certificate checked.
    pub dtls_ms: f64,
    /// Token request → keys.
    pub total_ms: f64,
}

/// Why a leg did not come up (the key groups the counts in the result).
#[derive(Debug)]
pub struct Failure {
    /// Phase: `token`, `websocket`, `answer`, `ice`, `dtls`, `fingerprint`.
    pub phase: &'static str,
    /// What happened.
    pub detail: String,
}

fn fail(phase: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        phase,
        detail: detail.into(),
    }
}

fn random_word(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// The offer Chrome makes for one audio transceiver restricted to PCMU and
/// telephone-event (trimmed of extensions ringback ignores).
fn offer(port: u16, ufrag: &str, pwd: &str, fp: &Fingerprint, ssrc: u32) -> String {
    let session: u64 = rand::random::<u64>() >> 1;
    format!(
        "v=0\r\n\
         o=- {session} 2 IN IP4 127.0.0.1\r\n\
         s=-\r\n\
         t=0 0\r\n\
         a=group:BUNDLE 0\r\n\
         a=extmap-allow-mixed\r\n\
         a=msid-semantic: WMS bench\r\n\
         m=audio {port} UDP/TLS/RTP/SAVPF 0 101\r\n\
         c=IN IP4 127.0.0.1\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=candidate:1 1 udp {prio} 127.0.0.1 {port} typ host generation 0\r\n\
         a=ice-ufrag:{ufrag}\r\n\
         a=ice-pwd:{pwd}\r\n\
         a=ice-options:trickle\r\n\
         a=fingerprint:{fp}\r\n\
         a=setup:actpass\r\n\
         a=mid:0\r\n\
         a=sendrecv\r\n\
         a=msid:bench audio\r\n\
         a=rtcp-mux\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ssrc:{ssrc} cname:bench\r\n\
         a=ssrc:{ssrc} msid:bench audio\r\n",
        prio = webrtc_stun::HOST_PRIORITY,
        fp = fp.to_sdp(),
    )
}

/// The server's host candidate (`a=candidate:… udp PRIO IP PORT typ host`).
fn candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|l| {
        let v = l.trim().strip_prefix("a=candidate:")?;
        let f: Vec<&str> = v.split_whitespace().collect();
        if f.len() < 8 || !f[2].eq_ignore_ascii_case("udp") || f[7] != "host" {
            return None;
        }
        format!("{}:{}", f[4], f[5]).parse().ok()
    })
}

/// Waits for a text frame on the signalling socket.
fn read_text(ws: &mut WebSocket<TcpStream>) -> Result<String, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Ok(t.as_str().to_string()),
            Ok(Message::Close(c)) => return Err(format!("server closed the socket: {c:?}")),
            Ok(_) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Sets a leg up; `http` is the worker's keep-alive API connection.
pub fn connect(
    id: &Identity,
    http: &mut Http,
    api: SocketAddr,
    number: &str,
    timeout: Duration,
) -> Result<Leg, Failure> {
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    // 1. Token.
    let body = format!("{{\"number\":\"{number}\"}}");
    let ans = http
        .call("POST", "/api/v1/webcall/tokens", None, &body)
        .map_err(|e| fail("token", e.to_string()))?;
    if ans.status != 201 {
        return Err(fail("token", format!("HTTP {}: {}", ans.status, ans.body)));
    }
    let token = ans.json()["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| fail("token", format!("no token in {}", ans.body)))?;
    let t_token = Instant::now();

    // 2. Signalling: WebSocket, offer, answer.
    let tcp = TcpStream::connect_timeout(&api, Duration::from_secs(5))
        .map_err(|e| fail("websocket", e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| fail("websocket", e.to_string()))?;
    let url = format!("ws://{api}/api/v1/webcall?token={token}");
    let (mut ws, _) =
        tungstenite::client(url.as_str(), tcp).map_err(|e| fail("websocket", e.to_string()))?;
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| fail("ice", e.to_string()))?;
    let port = socket
        .local_addr()
        .map_err(|e| fail("ice", e.to_string()))?
        .port();
    let (ufrag, pwd) = (random_word(4), random_word(24));
    let ssrc: u32 = rand::random();
    let sdp = offer(port, &ufrag, &pwd, &id.fingerprint, ssrc);
    let frame = serde_json::json!({ "type": "call", "sdp": sdp }).to_string();
    ws.send(Message::text(frame))
        .map_err(|e| fail("websocket", e.to_string()))?;
    let text = read_text(&mut ws).map_err(|e| fail("answer", e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail("answer", format!("{e}: {text}")))?;
    if v["type"] != "answer" {
        return Err(fail("answer", text));
    }
    let answer = v["sdp"].as_str().unwrap_or_default();
    let remote = ringback_webrtc::parse(answer).map_err(|e| fail("answer", e.to_string()))?;
    let server = candidate(answer).ok_or_else(|| fail("answer", "no host candidate"))?;
    if remote.setup != ringback_webrtc::Setup::Passive {
        return Err(fail(
            "answer",
            format!("expected a=setup:passive, got {:?}", remote.setup),
        ));
    }
    if !remote.payload_types.contains(&0) {
        return Err(fail("answer", "PCMU not accepted"));
    }
    let dtmf_pt = remote.payload_types.iter().copied().find(|&p| p == 101);
    socket
        .connect(server)
        .map_err(|e| fail("ice", e.to_string()))?;
    let t_answer = Instant::now();

    // 3. ICE: one nominating check (retransmitted every 100 ms, RFC 8445 pacing aside).
    let ice_username = format!("{}:{ufrag}", remote.ice_ufrag);
    let tiebreaker: u64 = rand::random();
    let txid: [u8; 12] = rand::random();
    let req = webrtc_stun::binding_request(txid, &ice_username, &remote.ice_pwd, tiebreaker, true);
    let mut buf = vec![0u8; 4096];
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(fail("ice", "no binding success before the deadline"));
        }
        if now >= next_send {
            socket.send(&req).map_err(|e| fail("ice", e.to_string()))?;
            next_send = now + Duration::from_millis(100);
        }
        let _ = socket.set_read_timeout(Some((next_send - now).max(Duration::from_millis(1))));
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(fail("ice", e.to_string())),
        };
        if !is_stun(&buf[..n]) {
            continue;
        }
        match webrtc_stun::check_response(&buf[..n], &txid, &remote.ice_pwd) {
            Response::Success => break,
            Response::Error(code) => return Err(fail("ice", format!("STUN error {code}"))),
            Response::Other(_) => continue,
        }
    }
    let t_ice = Instant::now();

    // 4. DTLS as client.
    let mut dtls = Dtls::new_12(Arc::clone(&id.config), id.cert.clone(), t_ice);
    dtls.set_active(true);
    let mut out = vec![0u8; 2048];
    let mut cert_ok = None;
    let mut keys = None;
    let mut wake = t_ice;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(fail("dtls", "no keys before the deadline"));
        }
        if now >= wake {
            dtls.handle_timeout(now)
                .map_err(|e| fail("dtls", e.to_string()))?;
        }
        // Drain dimpl until its next timeout.
        loop {
            match dtls.poll_output(&mut out) {
                Output::Packet(p) => {
                    socket.send(p).map_err(|e| fail("dtls", e.to_string()))?;
                }
                Output::BufferTooSmall { needed } if needed <= 65_536 => out.resize(needed, 0),
                Output::BufferTooSmall { needed } => {
                    return Err(fail("dtls", format!("a {needed}-byte DTLS record")));
                }
                Output::Timeout(t) => {
                    wake = t;
                    break;
                }
                Output::PeerCert(der) => cert_ok = Some(remote.fingerprint.matches(der)),
                Output::KeyingMaterial(km, profile) => keys = Some(split_keys(&km, profile)),
                _ => {}
            }
        }
        if cert_ok == Some(false) {
            return Err(fail("fingerprint", "server certificate ≠ a=fingerprint"));
        }
        if let Some(k) = keys.take() {
            if cert_ok != Some(true) {
                return Err(fail("fingerprint", "keys without a server certificate"));
            }
            let (local, remote_key) = k.map_err(|e| fail("dtls", e))?;
            let t_keys = Instant::now();
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
            // Media threads read without blocking; the WebSocket stays blocking
            // with a short timeout for the hang-up watch.
            socket
                .set_nonblocking(true)
                .map_err(|e| fail("dtls", e.to_string()))?;
            let _ = ws
                .get_mut()
                .set_read_timeout(Some(Duration::from_millis(1)));
            return Ok(Leg {
                socket,
                local,
                remote: remote_key,
                ssrc,
                dtmf_pt,
                ice_username,
                ice_pwd: remote.ice_pwd.clone(),
                tiebreaker,
                ws,
                times: Times {
                    token_ms: ms(t0, t_token),
                    signalling_ms: ms(t_token, t_answer),
                    ice_ms: ms(t_answer, t_ice),
                    dtls_ms: ms(t_ice, t_keys),
                    total_ms: ms(t0, t_keys),
                },
            });
        }
        let now = Instant::now();
        let wait = wake
            .min(deadline)
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        let _ = socket.set_read_timeout(Some(wait));
        match socket.recv(&mut buf) {
            Ok(n) if is_dtls(&buf[..n]) => dtls
                .handle_packet(&buf[..n])
                .map_err(|e| fail("dtls", e.to_string()))?,
            Ok(_) => {} // a late STUN response, early SRTP
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(fail("dtls", e.to_string())),
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// RFC 5764 §4.2: client key | server key | client salt | server salt; we
/// are the client, so (ours, the server's).
fn split_keys(km: &[u8], profile: SrtpProfile) -> Result<(KeyMaterial, KeyMaterial), String> {
    let suite = match profile {
        SrtpProfile::AES128_CM_SHA1_80 => Suite::AesCm128HmacSha1_80,
        SrtpProfile::AEAD_AES_128_GCM => Suite::AeadAes128Gcm,
        SrtpProfile::AEAD_AES_256_GCM => Suite::AeadAes256Gcm,
        other => return Err(format!("unexpected SRTP profile {other}")),
    };
    let (k, s) = (suite.key_len(), suite.salt_len());
    if km.len() != 2 * (k + s) {
        return Err(format!("{} bytes of keying material", km.len()));
    }
    let client = KeyMaterial::new(suite, &km[..k], &km[2 * k..2 * k + s]);
    let server = KeyMaterial::new(suite, &km[k..2 * k], &km[2 * k + s..]);
    match (client, server) {
        (Ok(c), Ok(s)) => Ok((c, s)),
        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
    }
}
