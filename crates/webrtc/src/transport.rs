//! One browser leg's transport: the ICE-lite responder, the DTLS handshake (via
//! `dimpl`), the check of the peer's certificate against the SDP fingerprint, the
//! DTLS-SRTP key export (RFC 5764 §4.2) and liveness.
//!
//! Everything arrives through one UDP port: the shell passes each datagram to
//! [`Transport::handle_datagram`] (STUN and DTLS are handled, anything else is
//! ignored; SRTP is the shell's to open, and it reports authenticated packets with
//! [`Transport::media_received`]), calls [`Transport::handle_timeout`] at
//! [`Transport::poll_timeout`], and drains [`Transport::poll_output`] after each call.
//!
//! For the shell: receive into a buffer of at least 2048 bytes (our DTLS records are
//! at most dimpl's 1150-byte MTU, a browser's are similar; STUN checks are ~100
//! bytes). Pass a fresh monotonic `Instant` with every call, never an older one than
//! before. Until `Keys`, SRTP cannot be opened; after `Closed` the leg is over.
//! Unauthenticated DTLS (epoch 0: a plaintext fatal alert) from the browser's address
//! still ends a handshake, as in every DTLS stack.

use crate::identity::{DtlsIdentity, Fingerprint};
use crate::stun::{self, binding_error, binding_success, is_dtls, is_stun};
use dimpl::{Dtls, Output, ProtocolVersion, SrtpProfile};
use ringback_media::srtp::{KeyMaterial, Suite};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a leg may take from creation to DTLS keys before it is given up
/// ([`CloseReason::ConnectTimeout`]).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How many distinct addresses that passed a connectivity check are remembered (DTLS
/// is accepted from them); a browser has a handful of candidates.
const MAX_VALIDATED: usize = 16;

/// DTLS records are at most the MTU (1150 in dimpl's default configuration); the
/// buffer grows if dimpl asks for more, up to this.
const MAX_DTLS_BUF: usize = 65_536;

/// What one leg's transport needs from the SDP exchange.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Our `ice-ufrag`.
    pub local_ufrag: String,
    /// Our `ice-pwd`: the key of the checks' MESSAGE-INTEGRITY.
    pub local_pwd: String,
    /// The browser's `ice-ufrag` (empty: accept any, if the SDP did not say).
    pub remote_ufrag: String,
    /// The browser's `a=fingerprint`: its certificate must match or no keys come out.
    pub remote_fingerprint: Fingerprint,
    /// Whether we are the DTLS server ([`crate::we_are_dtls_server`]).
    pub dtls_server: bool,
    /// After a candidate pair is selected: no valid STUN, DTLS or media packet for
    /// this long closes the leg ([`CloseReason::Idle`]).
    pub idle_timeout: Duration,
}

impl TransportConfig {
    /// The default [`TransportConfig::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
}

/// Why a transport closed. It emits nothing after [`TransportOutput::Closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The browser sent a DTLS `close_notify`.
    PeerClosed,
    /// Nothing valid arrived for [`TransportConfig::idle_timeout`] after selection.
    Idle,
    /// No DTLS keys within [`CONNECT_TIMEOUT`].
    ConnectTimeout,
    /// The peer's certificate does not match the SDP fingerprint (or it sent none).
    FingerprintMismatch,
    /// DTLS failed (the handshake timed out, the peer sent a fatal alert, …).
    Dtls(String),
    /// [`Transport::close`] was called.
    Local,
}

/// What the shell must do.
#[derive(Debug)]
pub enum TransportOutput {
    /// Send this datagram from the leg's port.
    Transmit {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// The browser nominated this address: send media there (again when it changes).
    Selected(SocketAddr),
    /// The DTLS handshake finished and the peer's certificate matched: `local` seals
    /// what we send, `remote` opens what the browser sends. Emitted once.
    Keys {
        /// Our sending key (the server write key if we are the DTLS server).
        local: KeyMaterial,
        /// The browser's sending key.
        remote: KeyMaterial,
    },
    /// The transport is finished; the leg should end.
    Closed(CloseReason),
}

/// One browser leg's ICE-lite + DTLS-SRTP transport.
#[derive(Debug)]
pub struct Transport {
    cfg: TransportConfig,
    /// `"<our ufrag>:<their ufrag>"` (or `"<our ufrag>:"`).
    expected_username: String,
    dtls: Dtls,
    buf: Vec<u8>,
    out: VecDeque<TransportOutput>,
    connect_deadline: Instant,
    dtls_deadline: Option<Instant>,
    last_activity: Instant,
    selected: Option<SocketAddr>,
    nominated: bool,
    validated: Vec<SocketAddr>,
    dtls_peer: Option<SocketAddr>,
    cert_ok: bool,
    connected: bool,
    closed: bool,
}

impl Transport {
    /// A transport waiting for the browser's first connectivity check. As DTLS client
    /// it sends its ClientHello once an address is selected.
    pub fn new(cfg: TransportConfig, identity: &DtlsIdentity, now: Instant) -> Transport {
        let mut dtls = Dtls::new_auto(identity.config(), identity.certificate(), now);
        if !cfg.dtls_server {
            dtls.set_active(true);
        }
        let expected_username = format!("{}:{}", cfg.local_ufrag, cfg.remote_ufrag);
        Transport {
            cfg,
            expected_username,
            dtls,
            buf: vec![0; 2048],
            out: VecDeque::new(),
            connect_deadline: now + CONNECT_TIMEOUT,
            dtls_deadline: None,
            last_activity: now,
            selected: None,
            nominated: false,
            validated: Vec::new(),
            dtls_peer: None,
            cert_ok: false,
            connected: false,
            closed: false,
        }
    }

    /// Feeds one received datagram. Invalid ones are dropped (a check that fails
    /// authentication gets a STUN error response); none closes the transport.
    pub fn handle_datagram(&mut self, from: SocketAddr, pkt: &[u8], now: Instant) {
        if self.closed {
            return;
        }
        if is_stun(pkt) {
            self.handle_stun(from, pkt, now);
        } else if is_dtls(pkt) {
            if self.selected != Some(from) && !self.validated.contains(&from) {
                return;
            }
            if !plausible_dtls(
                pkt,
                self.dtls.protocol_version() == Some(ProtocolVersion::DTLS1_2),
            ) {
                return;
            }
            self.last_activity = self.last_activity.max(now);
            if self.dtls_peer.is_none() {
                self.dtls_peer = Some(from);
            }
            let r = self
                .dtls
                .handle_timeout(now)
                .and_then(|()| self.dtls.handle_packet(pkt));
            match r {
                Ok(()) => self.drain_dtls(),
                Err(e) => self.finish(CloseReason::Dtls(e.to_string())),
            }
        }
    }

    fn handle_stun(&mut self, from: SocketAddr, pkt: &[u8], now: Instant) {
        let req =
            match stun::parse_binding_request(pkt, &self.expected_username, &self.cfg.local_pwd) {
                Ok(req) => req,
                Err(e) => {
                    if let (Some(code), Some(txid)) = (e.error_code(), stun::transaction_id(pkt)) {
                        self.transmit(from, binding_error(txid, code));
                    }
                    return;
                }
            };
        self.transmit(
            from,
            binding_success(req.transaction_id, from, &self.cfg.local_pwd),
        );
        self.last_activity = self.last_activity.max(now);
        if !self.validated.contains(&from) {
            if self.validated.len() == MAX_VALIDATED {
                self.validated.remove(0);
            }
            self.validated.push(from);
        }
        let nominates = req.use_candidate && req.controlling;
        let switch = if nominates {
            self.selected != Some(from) || !self.nominated
        } else {
            self.selected.is_none()
        };
        if !switch {
            return;
        }
        let changed = self.selected != Some(from);
        let first = self.selected.is_none();
        self.selected = Some(from);
        self.nominated |= nominates;
        if changed {
            self.out.push_back(TransportOutput::Selected(from));
        }
        if first && !self.cfg.dtls_server {
            // The DTLS client speaks first, now that it knows where to.
            match self.dtls.handle_timeout(now) {
                Ok(()) => self.drain_dtls(),
                Err(e) => self.finish(CloseReason::Dtls(e.to_string())),
            }
        }
    }

    /// The shell authenticated an SRTP packet from `from`: the leg is alive.
    pub fn media_received(&mut self, from: SocketAddr, now: Instant) {
        let _ = from;
        if !self.closed {
            self.last_activity = self.last_activity.max(now);
        }
    }

    /// Runs timers: DTLS retransmissions, the connect timeout and the idle timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if !self.connected && now >= self.connect_deadline {
            self.finish(CloseReason::ConnectTimeout);
            return;
        }
        if self.selected.is_some() && now >= self.last_activity + self.cfg.idle_timeout {
            self.finish(CloseReason::Idle);
            return;
        }
        if self.dtls_deadline.is_some_and(|t| now >= t) && self.dtls_destination().is_some() {
            match self.dtls.handle_timeout(now) {
                Ok(()) => self.drain_dtls(),
                Err(e) => self.finish(CloseReason::Dtls(e.to_string())),
            }
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<TransportOutput> {
        self.out.pop_front()
    }

    /// When [`Transport::handle_timeout`] must be called next; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut t = None::<Instant>;
        let mut consider = |d: Instant| t = Some(t.map_or(d, |t| t.min(d)));
        if !self.connected {
            consider(self.connect_deadline);
        }
        if self.selected.is_some() {
            consider(self.last_activity + self.cfg.idle_timeout);
        }
        if let Some(d) = self
            .dtls_deadline
            .filter(|_| self.dtls_destination().is_some())
        {
            consider(d);
        }
        t
    }

    /// Closes the leg: a DTLS `close_notify` to the browser if connected, then
    /// [`CloseReason::Local`].
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.dtls_destination().is_some() {
            let r = self
                .dtls
                .handle_timeout(now)
                .and_then(|()| self.dtls.close());
            if r.is_ok() {
                self.drain_dtls();
            }
        }
        self.finish(CloseReason::Local);
    }

    /// Whether keys have been emitted and the transport is not closed.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.closed
    }

    /// The address media goes to, once selected.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    fn dtls_destination(&self) -> Option<SocketAddr> {
        self.selected.or(self.dtls_peer)
    }

    fn transmit(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.out.push_back(TransportOutput::Transmit { to, bytes });
    }

    fn finish(&mut self, reason: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.out.push_back(TransportOutput::Closed(reason));
        }
    }

    /// Drains dimpl's outputs until its next timeout.
    fn drain_dtls(&mut self) {
        let Some(to) = self.dtls_destination() else {
            return;
        };
        while !self.closed {
            let event = match self.dtls.poll_output(&mut self.buf) {
                Output::Packet(p) => DtlsEvent::Packet(p.to_vec()),
                Output::BufferTooSmall { needed } if needed <= MAX_DTLS_BUF => {
                    self.buf.resize(needed, 0);
                    continue;
                }
                Output::BufferTooSmall { .. } => {
                    DtlsEvent::Fail("DTLS record larger than 64 KiB".into())
                }
                Output::Timeout(t) => {
                    self.dtls_deadline = Some(t);
                    return;
                }
                Output::PeerCert(der) => {
                    DtlsEvent::PeerCert(self.cfg.remote_fingerprint.matches(der))
                }
                Output::KeyingMaterial(km, profile) => {
                    DtlsEvent::Keys(split_keys(&km, profile, self.cfg.dtls_server))
                }
                Output::CloseNotify => DtlsEvent::CloseNotify,
                _ => continue, // Connected, ApplicationData (no data channels)
            };
            match event {
                DtlsEvent::Packet(bytes) => self.transmit(to, bytes),
                DtlsEvent::PeerCert(true) => self.cert_ok = true,
                DtlsEvent::PeerCert(false) => {
                    let _ = self.dtls.close();
                    self.finish(CloseReason::FingerprintMismatch);
                }
                DtlsEvent::Keys(_) if !self.cert_ok => {
                    let _ = self.dtls.close();
                    self.finish(CloseReason::FingerprintMismatch);
                }
                DtlsEvent::Keys(Ok((local, remote))) => {
                    if !self.connected {
                        self.connected = true;
                        self.out.push_back(TransportOutput::Keys { local, remote });
                    }
                }
                DtlsEvent::Keys(Err(reason)) | DtlsEvent::Fail(reason) => {
                    self.finish(CloseReason::Dtls(reason))
                }
                DtlsEvent::CloseNotify => self.finish(CloseReason::PeerClosed),
            }
        }
    }
}

/// One dimpl output, owned, so the poll buffer is free again.
enum DtlsEvent {
    Packet(Vec<u8>),
    PeerCert(bool),
    Keys(Result<(KeyMaterial, KeyMaterial), String>),
    CloseNotify,
    Fail(String),
}

/// Whether every record of a DTLS datagram has a sane header. dimpl discards most
/// garbage by itself but treats a buffered record of a handshake epoch that is left
/// over when the handshake completes as fatal, so records that cannot belong to the
/// handshake must not reach it: plaintext-header records must carry a DTLS version,
/// fit in the datagram, and be of epoch 0 (handshake, alert, change_cipher_spec,
/// ack) or, in DTLS 1.2 (`dtls12`), epoch 1 (DTLS 1.3 protects every later epoch
/// with the unified header, which dimpl checks itself).
fn plausible_dtls(pkt: &[u8], dtls12: bool) -> bool {
    let mut rest = pkt;
    while let Some(&first) = rest.first() {
        if (32..=63).contains(&first) {
            return true; // DTLS 1.3 unified header.
        }
        let Some(header) = rest.get(..13) else {
            return false;
        };
        let version_ok = header[1] == 0xfe && matches!(header[2], 0xfd | 0xff);
        let epoch_ok = match u16::from_be_bytes([header[3], header[4]]) {
            0 => matches!(first, 20 | 21 | 22 | 26),
            1 => dtls12 && (20..=23).contains(&first),
            _ => false,
        };
        let len = usize::from(u16::from_be_bytes([header[11], header[12]]));
        let Some(body) = rest.get(13..13 + len) else {
            return false;
        };
        let plain_handshake = first == 22 && header[3..5] == [0, 0];
        if !version_ok || !epoch_ok || (plain_handshake && !handshake_fragments_ok(body)) {
            return false;
        }
        rest = &rest[13 + len..];
    }
    true
}

/// Whether a plaintext handshake record is a sequence of whole fragments (12-byte
/// header: type, length, message_seq, fragment_offset, fragment_length), each
/// inside its message.
fn handshake_fragments_ok(mut body: &[u8]) -> bool {
    let u24 = |b: &[u8]| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
    if body.is_empty() {
        return false;
    }
    while !body.is_empty() {
        let Some(h) = body.get(..12) else {
            return false;
        };
        let (length, offset, frag_len) = (u24(&h[1..4]), u24(&h[6..9]), u24(&h[9..12]));
        if offset + frag_len > length || body.len() < 12 + frag_len {
            return false;
        }
        body = &body[12 + frag_len..];
    }
    true
}

/// The SRTP suite of a DTLS-SRTP protection profile.
pub(crate) fn suite_of(profile: SrtpProfile) -> Option<Suite> {
    match profile {
        SrtpProfile::AES128_CM_SHA1_80 => Some(Suite::AesCm128HmacSha1_80),
        SrtpProfile::AEAD_AES_128_GCM => Some(Suite::AeadAes128Gcm),
        SrtpProfile::AEAD_AES_256_GCM => Some(Suite::AeadAes256Gcm),
        _ => None,
    }
}

/// Splits exported keying material (RFC 5764 §4.2: client key | server key | client
/// salt | server salt) into (ours, theirs).
pub(crate) fn split_keys(
    material: &[u8],
    profile: SrtpProfile,
    we_are_server: bool,
) -> Result<(KeyMaterial, KeyMaterial), String> {
    let suite = suite_of(profile).ok_or_else(|| format!("unsupported SRTP profile {profile}"))?;
    let (k, s) = (suite.key_len(), suite.salt_len());
    if material.len() != 2 * (k + s) {
        return Err(format!(
            "{profile}: {} bytes of keying material, expected {}",
            material.len(),
            2 * (k + s)
        ));
    }
    let client_key = &material[..k];
    let server_key = &material[k..2 * k];
    let client_salt = &material[2 * k..2 * k + s];
    let server_salt = &material[2 * k + s..];
    let client = KeyMaterial::new(suite, client_key, client_salt).map_err(|e| e.to_string())?;
    let server = KeyMaterial::new(suite, server_key, server_salt).map_err(|e| e.to_string())?;
    Ok(if we_are_server {
        (server, client)
    } else {
        (client, server)
    })
}

#[cfg(test)]
mod tests;
