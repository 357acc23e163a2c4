//! SRTP for RTP packets: RFC 3711 (AES-CM + HMAC-SHA1), RFC 6188 (AES-256-CM) and
//! RFC 7714 (AEAD AES-GCM), keyed by SDES (RFC 4568, see [`crate::sdp`]).
//!
//! Only RTP is protected: ringback sends no RTCP, so SRTCP is not implemented (a
//! received SRTCP packet fails authentication and is dropped like any other garbage).
//!
//! The protocol is ours, counter mode included; the primitives are RustCrypto's (`aes`,
//! `hmac`, `sha1`, `aes-gcm`, `subtle`). A context ([`Srtp`]) is one direction of one call: the shell
//! keeps one for what it sends (our key) and one for what it receives (the peer's key).
//! Session keys are derived once in [`Srtp::new`] and the AES key schedules and the
//! HMAC inner/outer states are kept pre-keyed, so the per-packet paths
//! ([`Srtp::protect_in_place`], [`Srtp::unprotect_in_place`], and the `Vec` variants
//! once their buffer has grown) do not allocate: this runs every 20 ms for every call.
//!
//! Nothing here reads a clock or the OS: randomness for keys comes from a caller-supplied
//! RNG ([`KeyMaterial::from_rng`]) or, like [`crate::rtp::RtpSender::random`], from
//! `rand`'s thread RNG ([`KeyMaterial::random`]).

use std::fmt;

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128Enc, Aes256Enc};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// Longest master key of any suite (AES-256).
const MAX_KEY_LEN: usize = 32;
/// Longest master salt of any suite (the AES-CM suites' 112 bits).
const MAX_SALT_LEN: usize = 14;
/// Length of the HMAC-SHA1 session authentication key (RFC 3711: n_a = 160 bits).
const AUTH_KEY_LEN: usize = 20;
/// The AEAD tag length of the RFC 7714 suites.
const GCM_TAG_LEN: usize = 16;
/// Length of the fixed RTP header.
const RTP_HEADER_LEN: usize = 12;
/// Replay window in packets (RFC 3711 §3.3.2 asks for at least 64). 128 fits a `u128`
/// bitmap, so the check is two shifts, and matches libsrtp's default.
const REPLAY_WINDOW: u64 = 128;
/// SSRCs tracked per context. A call has one per direction (two while a relayed leg
/// adds its own); state is created only for authenticated packets, so an attacker
/// without the key cannot grow it, and the least recently used one is recycled.
const MAX_STREAMS: usize = 16;

/// Longest MKI we accept, in bytes. RFC 4568 allows up to 128, real phones use 1 to 4;
/// a fixed bound keeps [`KeyMaterial`] and the packet paths free of allocation.
pub const MAX_MKI_LEN: usize = 4;

/// Key derivation labels (RFC 3711 §4.3.1); only the SRTP ones, since there is no SRTCP.
const LABEL_ENCRYPTION: u8 = 0x00;
const LABEL_AUTH: u8 = 0x01;
const LABEL_SALT: u8 = 0x02;

/// An SRTP crypto suite as named in SDES `a=crypto` lines (RFC 4568, RFC 6188,
/// RFC 7714 §14.1). The name fixes the cipher, key and salt lengths and the tag length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `AES_CM_128_HMAC_SHA1_80`: the default every SDES phone supports.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: the same with a 32-bit tag (baresip offers it first).
    AesCm128HmacSha1_32,
    /// `AES_256_CM_HMAC_SHA1_80` (RFC 6188): what PJSIP offers first.
    AesCm256HmacSha1_80,
    /// `AES_256_CM_HMAC_SHA1_32` (RFC 6188).
    AesCm256HmacSha1_32,
    /// `AEAD_AES_128_GCM` (RFC 7714): encryption and a 128-bit tag in one pass.
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM` (RFC 7714): offered first by PJSIP when built with OpenSSL.
    AeadAes256Gcm,
}

impl Suite {
    /// Every suite we implement, in no particular preference.
    pub const ALL: [Suite; 6] = [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AesCm256HmacSha1_80,
        Suite::AesCm256HmacSha1_32,
        Suite::AeadAes128Gcm,
        Suite::AeadAes256Gcm,
    ];

    /// The suite's name in an SDES `a=crypto` line.
    pub fn sdes_name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Suite::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The suite an SDES name denotes (ASCII case-insensitive, for tolerance), or `None`
    /// for suites we do not implement (`F8_128_HMAC_SHA1_80`, `AES_192_CM_…`, …), which
    /// an offer/answer must skip rather than reject.
    pub fn from_sdes_name(name: &str) -> Option<Suite> {
        Suite::ALL
            .into_iter()
            .find(|s| s.sdes_name().eq_ignore_ascii_case(name))
    }

    /// Master key length in bytes (16 or 32).
    pub fn key_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 | Suite::AeadAes128Gcm => 16,
            Suite::AesCm256HmacSha1_80 | Suite::AesCm256HmacSha1_32 | Suite::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length in bytes: 14 for AES-CM (RFC 3711, RFC 6188), 12 for GCM
    /// (RFC 7714), so an SDES key of the wrong length is refused.
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// Bytes of authentication tag appended to each packet (10, 4 or 16).
    pub fn tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm256HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 | Suite::AesCm256HmacSha1_32 => 4,
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }

    /// Whether this is an RFC 7714 AEAD suite (GCM) rather than AES-CM + HMAC-SHA1.
    pub fn is_aead(self) -> bool {
        matches!(self, Suite::AeadAes128Gcm | Suite::AeadAes256Gcm)
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdes_name())
    }
}

/// Master Key Identifier (RFC 3711 §3.1, RFC 4568 `|value:length`): a number sent
/// in every packet to say which master key protected it. We have one key per direction,
/// so it is only carried (and checked on receipt) when the peer's key line has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mki {
    value: u32,
    len: u8,
}

impl Mki {
    /// An MKI of `len` bytes (1 to [`MAX_MKI_LEN`]) carrying `value`; `None` if the value
    /// does not fit in `len` bytes or the length is out of range.
    pub fn new(value: u32, len: usize) -> Option<Mki> {
        if !(1..=MAX_MKI_LEN).contains(&len) {
            return None;
        }
        if len < 4 && value >> (8 * len) != 0 {
            return None;
        }
        Some(Mki {
            value,
            len: len as u8,
        })
    }

    /// The MKI value.
    pub fn value(self) -> u32 {
        self.value
    }

    /// Its length on the wire in bytes.
    pub fn len(self) -> usize {
        usize::from(self.len)
    }

    /// Always false: an MKI has at least one byte (for clippy's `len_without_is_empty`).
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The bytes on the wire (big-endian, `len()` bytes at the end of the array).
    fn wire(self) -> ([u8; MAX_MKI_LEN], usize) {
        (self.value.to_be_bytes(), MAX_MKI_LEN - self.len())
    }
}

/// Why an SDES key (the `inline:` key parameter) could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key parameter's method is not `inline:` (RFC 4568 defines no other for SRTP).
    #[error("key parameter is not inline:")]
    NotInline,
    /// The key is not base64.
    #[error("key is not valid base64")]
    Base64,
    /// The decoded key and salt have the wrong length for the suite.
    #[error("{suite} needs {expected} bytes of key and salt, got {got}")]
    Length {
        /// The suite of the line.
        suite: Suite,
        /// `key_len + salt_len` of the suite.
        expected: usize,
        /// Bytes decoded.
        got: usize,
    },
    /// The lifetime field is neither a decimal number nor `2^n`.
    #[error("invalid key lifetime {0:?}")]
    Lifetime(String),
    /// The MKI field is malformed, longer than [`MAX_MKI_LEN`] bytes, or used with an
    /// AEAD suite (whose MKI placement we do not implement).
    #[error("unsupported MKI {0:?}")]
    Mki(String),
    /// Several `;`-separated keys in one line (key switching by MKI), not supported.
    #[error("more than one key in one crypto attribute")]
    MultipleKeys,
}

/// Base64 as phones send it: with or without `=` padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// One direction's master key and salt (and MKI, if the SDES line had one), as sent in
/// an SDES `inline:` parameter. Kept in fixed arrays so it never allocates; its `Debug`
/// output hides the key so it cannot end up in a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    suite: Suite,
    key: [u8; MAX_KEY_LEN],
    salt: [u8; MAX_SALT_LEN],
    mki: Option<Mki>,
}

impl KeyMaterial {
    /// Builds key material from a master key and salt of the suite's lengths
    /// ([`Suite::key_len`], [`Suite::salt_len`]).
    pub fn new(suite: Suite, key: &[u8], salt: &[u8]) -> Result<KeyMaterial, KeyError> {
        if key.len() != suite.key_len() || salt.len() != suite.salt_len() {
            return Err(KeyError::Length {
                suite,
                expected: suite.key_len() + suite.salt_len(),
                got: key.len() + salt.len(),
            });
        }
        let mut k = KeyMaterial {
            suite,
            key: [0; MAX_KEY_LEN],
            salt: [0; MAX_SALT_LEN],
            mki: None,
        };
        k.key[..key.len()].copy_from_slice(key);
        k.salt[..salt.len()].copy_from_slice(salt);
        Ok(k)
    }

    /// Builds key material from the concatenated `key || salt` (what SDES base64-encodes).
    pub fn from_bytes(suite: Suite, key_and_salt: &[u8]) -> Result<KeyMaterial, KeyError> {
        let split = suite.key_len().min(key_and_salt.len());
        let (key, salt) = key_and_salt.split_at(split);
        KeyMaterial::new(suite, key, salt).map_err(|_| KeyError::Length {
            suite,
            expected: suite.key_len() + suite.salt_len(),
            got: key_and_salt.len(),
        })
    }

    /// Fresh random key material from a caller-supplied cryptographically secure RNG
    /// (the shell passes `rand::rng()`; tests pass a seeded one).
    pub fn from_rng<R: rand::CryptoRng + ?Sized>(suite: Suite, rng: &mut R) -> KeyMaterial {
        let mut k = KeyMaterial {
            suite,
            key: [0; MAX_KEY_LEN],
            salt: [0; MAX_SALT_LEN],
            mki: None,
        };
        rng.fill_bytes(&mut k.key[..suite.key_len()]);
        rng.fill_bytes(&mut k.salt[..suite.salt_len()]);
        k
    }

    /// Fresh random key material from `rand`'s thread-local CSPRNG (seeded from the OS),
    /// like [`crate::rtp::RtpSender::random`].
    pub fn random(suite: Suite) -> KeyMaterial {
        KeyMaterial::from_rng(suite, &mut rand::rng())
    }

    /// Parses an SDES key parameter, `inline:<base64 key||salt>[|lifetime][|MKI:length]`
    /// (RFC 4568). The lifetime is checked for syntax and otherwise ignored: a
    /// call never gets near 2^31 packets, and a new call gets new keys. A line with
    /// several `;`-separated keys is refused ([`KeyError::MultipleKeys`]) rather than
    /// half-supported, so the offer/answer can pick another line.
    pub fn from_inline(suite: Suite, key_params: &str) -> Result<KeyMaterial, KeyError> {
        let key_params = key_params.trim();
        if key_params
            .split(';')
            .filter(|p| !p.trim().is_empty())
            .count()
            > 1
        {
            return Err(KeyError::MultipleKeys);
        }
        let param = key_params.trim_end_matches(';').trim();
        let info = match param.split_once(':') {
            Some((method, info)) if method.trim().eq_ignore_ascii_case("inline") => info.trim(),
            _ => return Err(KeyError::NotInline),
        };
        let mut fields = info.split('|');
        let b64 = fields.next().unwrap_or_default().trim();
        let bytes = LENIENT_BASE64.decode(b64).map_err(|_| KeyError::Base64)?;
        let mut k = KeyMaterial::from_bytes(suite, &bytes)?;
        let mut seen_mki = false;
        for field in fields {
            let field = field.trim();
            if seen_mki {
                // Nothing may follow the MKI.
                return Err(KeyError::Mki(field.to_string()));
            }
            if let Some((value, len)) = field.split_once(':') {
                seen_mki = true;
                let mki = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .zip(len.trim().parse::<usize>().ok())
                    .and_then(|(v, l)| Mki::new(v, l))
                    .filter(|_| !suite.is_aead())
                    .ok_or_else(|| KeyError::Mki(field.to_string()))?;
                k.mki = Some(mki);
            } else if !valid_lifetime(field) {
                return Err(KeyError::Lifetime(field.to_string()));
            }
        }
        Ok(k)
    }

    /// The key parameter for an SDES line: `inline:<base64 key||salt>` (with padding, as
    /// RFC 4568 specifies base64), plus `|MKI:length` if this material has an MKI.
    pub fn to_inline(&self) -> String {
        let mut raw = [0u8; MAX_KEY_LEN + MAX_SALT_LEN];
        let n = self.suite.key_len() + self.suite.salt_len();
        raw[..self.suite.key_len()].copy_from_slice(self.key());
        raw[self.suite.key_len()..n].copy_from_slice(self.salt());
        let mut s = format!("inline:{}", STANDARD.encode(&raw[..n]));
        if let Some(m) = self.mki {
            s.push_str(&format!("|{}:{}", m.value, m.len));
        }
        s
    }

    /// Returns the same key with an MKI that every protected packet will carry (for
    /// tests and for peers that insist on one; ringback's own keys have none).
    pub fn with_mki(mut self, mki: Option<Mki>) -> KeyMaterial {
        if !self.suite.is_aead() {
            self.mki = mki;
        }
        self
    }

    /// The suite this key is for.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The master key.
    pub fn key(&self) -> &[u8] {
        &self.key[..self.suite.key_len()]
    }

    /// The master salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt[..self.suite.salt_len()]
    }

    /// The MKI, if the key line had one.
    pub fn mki(&self) -> Option<Mki> {
        self.mki
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("suite", &self.suite)
            .field("key", &"<redacted>")
            .field("mki", &self.mki)
            .finish()
    }
}

/// RFC 4568: `lifetime = ["2^"] 1*(DIGIT)`.
fn valid_lifetime(s: &str) -> bool {
    let digits = s.strip_prefix("2^").unwrap_or(s);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Why a packet was not protected or unprotected. Every variant means "drop this
/// packet"; none of them should end a call (a burst of garbage must not hang up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Not an RTP packet (version not 2, header longer than the packet, shorter than
    /// header + tag).
    #[error("malformed RTP/SRTP packet")]
    Malformed,
    /// The authentication tag does not match: wrong key, tampering, or not SRTP at all
    /// (a plain RTP packet, an SRTCP packet).
    #[error("SRTP authentication failed")]
    Auth,
    /// A packet index already seen or older than the replay window (RFC 3711 §3.3.2).
    /// On protect: an index we already sent, which would reuse keystream.
    #[error("SRTP replay")]
    Replay,
    /// The packet's MKI is not the one of our key.
    #[error("unknown SRTP MKI")]
    UnknownMki,
    /// The caller's buffer has no room for the tag ([`Srtp::overhead`]).
    #[error("buffer too small for the SRTP trailer")]
    BufferTooSmall,
    /// 2^48 packets were protected with this key (RFC 3711 §9.2): re-key.
    #[error("SRTP key exhausted")]
    Exhausted,
}

/// Boxed: the key schedules (with the software fallback's) are 700–1000 bytes.
enum CmCipher {
    Aes128(Box<Aes128Enc>),
    Aes256(Box<Aes256Enc>),
}

enum GcmCipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

enum Engine {
    /// RFC 3711 AES-CM with HMAC-SHA1: session key schedule, pre-keyed HMAC, session salt.
    Cm {
        cipher: CmCipher,
        mac: HmacSha1,
        salt: [u8; 14],
    },
    /// RFC 7714 AEAD: pre-keyed AES-GCM and the 96-bit session salt.
    Gcm { aead: GcmCipher, salt: [u8; 12] },
}

/// Per-SSRC state (RFC 3711 §3.2.1): rollover counter, highest sequence number seen
/// (`s_l`) and the replay bitmap (bit k set = index `highest - k` was accepted).
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    roc: u32,
    seq: u16,
    window: u128,
    used: u64,
}

impl Stream {
    fn highest(&self) -> u64 {
        (u64::from(self.roc) << 16) | u64::from(self.seq)
    }

    /// RFC 3711 §3.3.1 / Appendix A: the packet index a sequence number most likely
    /// has, given the highest one seen. A guess of ROC − 1 when ROC is 0 cannot be a
    /// real packet (nothing precedes index 0), so it is read as a jump forward instead.
    fn estimate(&self, seq: u16) -> Result<u64, SrtpError> {
        let s_l = self.seq;
        let v: u64 = if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 && self.roc > 0 {
                u64::from(self.roc) - 1
            } else {
                u64::from(self.roc)
            }
        } else if seq < s_l - 0x8000 {
            u64::from(self.roc) + 1
        } else {
            u64::from(self.roc)
        };
        if v > u64::from(u32::MAX) {
            return Err(SrtpError::Exhausted);
        }
        Ok((v << 16) | u64::from(seq))
    }

    fn check_replay(&self, index: u64) -> Result<(), SrtpError> {
        let h = self.highest();
        if index > h {
            return Ok(());
        }
        let age = h - index;
        if age >= REPLAY_WINDOW || (self.window >> age) & 1 == 1 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        let h = self.highest();
        if index > h {
            let shift = index - h;
            self.window = if shift >= REPLAY_WINDOW {
                1
            } else {
                (self.window << shift) | 1
            };
            self.roc = (index >> 16) as u32;
            self.seq = index as u16;
        } else {
            self.window |= 1u128 << (h - index);
        }
    }
}

/// One direction of an SRTP session: the derived session keys for one master key and
/// the per-SSRC rollover counters and replay windows.
///
/// Use one context per direction and never the same master key for both (the peer's
/// key for [`Srtp::unprotect`], ours for [`Srtp::protect`]): two senders with one key
/// would reuse keystream.
pub struct Srtp {
    suite: Suite,
    engine: Engine,
    mki: Option<Mki>,
    streams: Vec<Stream>,
    tick: u64,
}

impl fmt::Debug for Srtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Srtp")
            .field("suite", &self.suite)
            .field("mki", &self.mki)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

/// The AES-CM PRF of RFC 3711 §4.3.3 with key derivation rate 0 (the SDES default, and
/// the only rate PJSIP and baresip use): `out` = AES-CM keystream under the master key
/// with IV = (master_salt XOR label·2^48)·2^16. The 12-byte GCM master salt is
/// zero-padded to 112 bits first, as libsrtp does (its GCM reference packet is one of
/// the tests below).
fn kdf(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    let n = master_salt.len().min(MAX_SALT_LEN);
    iv[..n].copy_from_slice(&master_salt[..n]);
    iv[7] ^= label;
    out.fill(0);
    if let Ok(k) = <&[u8; 32]>::try_from(master_key) {
        aes_cm(&Aes256Enc::new(k.into()), &iv, out);
    } else {
        let mut k = [0u8; 16];
        let n = master_key.len().min(16);
        k[..n].copy_from_slice(&master_key[..n]);
        aes_cm(&Aes128Enc::new((&k).into()), &iv, out);
    }
}

/// Length of the RTP header including CSRCs and the header extension (RFC 3550 §5.1,
/// §5.3.1): SRTP encrypts only what follows it. `None` if it is not RTP version 2 or
/// the header does not fit.
fn header_len(pkt: &[u8]) -> Option<usize> {
    let b0 = *pkt.first()?;
    if pkt.len() < RTP_HEADER_LEN || b0 >> 6 != 2 {
        return None;
    }
    let mut n = RTP_HEADER_LEN + 4 * usize::from(b0 & 0x0F);
    if b0 & 0x10 != 0 {
        let ext = pkt.get(n..n + 4)?;
        let words = u16::from_be_bytes([ext[2], ext[3]]);
        n += 4 + 4 * usize::from(words);
    }
    (n <= pkt.len()).then_some(n)
}

fn seq_ssrc(pkt: &[u8]) -> Option<(u16, u32)> {
    let h = pkt.get(..RTP_HEADER_LEN)?;
    Some((
        u16::from_be_bytes([h[2], h[3]]),
        u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
    ))
}

impl Srtp {
    /// A context for one master key: derives the session encryption key, salt and
    /// authentication key (RFC 3711 §4.3 with kdr = 0; RFC 6188 for AES-256; RFC 7714
    /// for GCM) and keys the cipher and HMAC once.
    pub fn new(material: &KeyMaterial) -> Srtp {
        let suite = material.suite();
        let (mk, ms) = (material.key(), material.salt());
        let mut enc = [0u8; MAX_KEY_LEN];
        let enc = &mut enc[..suite.key_len()];
        kdf(mk, ms, LABEL_ENCRYPTION, enc);
        let engine = if suite.is_aead() {
            let mut salt = [0u8; 12];
            kdf(mk, ms, LABEL_SALT, &mut salt);
            Srtp::gcm_engine(enc, salt)
        } else {
            let mut salt = [0u8; 14];
            kdf(mk, ms, LABEL_SALT, &mut salt);
            let mut auth = [0u8; AUTH_KEY_LEN];
            kdf(mk, ms, LABEL_AUTH, &mut auth);
            Srtp::cm_engine(enc, salt, &auth)
        };
        Srtp {
            suite,
            engine,
            mki: material.mki(),
            streams: Vec::with_capacity(4),
            tick: 0,
        }
    }

    fn cm_engine(enc: &[u8], salt: [u8; 14], auth: &[u8]) -> Engine {
        let cipher = if let Ok(k) = <&[u8; 32]>::try_from(enc) {
            CmCipher::Aes256(Box::new(Aes256Enc::new(k.into())))
        } else {
            let mut k = [0u8; 16];
            k.copy_from_slice(&enc[..16.min(enc.len())]);
            CmCipher::Aes128(Box::new(Aes128Enc::new(&k.into())))
        };
        // HMAC accepts keys of any length: this cannot fail.
        let mac = match <HmacSha1 as hmac::KeyInit>::new_from_slice(auth) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        Engine::Cm { cipher, mac, salt }
    }

    fn gcm_engine(enc: &[u8], salt: [u8; 12]) -> Engine {
        let aead = if let Ok(k) = <&[u8; 32]>::try_from(enc) {
            GcmCipher::Aes256(Box::new(Aes256Gcm::new(k.into())))
        } else {
            let mut k = [0u8; 16];
            k.copy_from_slice(&enc[..16.min(enc.len())]);
            GcmCipher::Aes128(Box::new(Aes128Gcm::new(&k.into())))
        };
        Engine::Gcm { aead, salt }
    }

    /// A context keyed with *session* keys directly, skipping the KDF: the RFC test
    /// vectors (RFC 3711 B.2, RFC 7714 §16) are given that way.
    #[cfg(test)]
    fn from_session_keys(suite: Suite, enc: &[u8], salt: &[u8], auth: &[u8]) -> Srtp {
        let engine = if suite.is_aead() {
            let mut s = [0u8; 12];
            s.copy_from_slice(salt);
            Srtp::gcm_engine(enc, s)
        } else {
            let mut s = [0u8; 14];
            s.copy_from_slice(salt);
            Srtp::cm_engine(enc, s, auth)
        };
        Srtp {
            suite,
            engine,
            mki: None,
            streams: Vec::new(),
            tick: 0,
        }
    }

    /// The suite of this context.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Bytes [`Srtp::protect`] adds to a packet (tag plus MKI): size buffers with it.
    pub fn overhead(&self) -> usize {
        self.suite.tag_len() + self.mki.map_or(0, Mki::len)
    }

    /// The rollover counter of an SSRC this context has seen (tests, diagnostics).
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        self.streams.iter().find(|s| s.ssrc == ssrc).map(|s| s.roc)
    }

    fn stream_pos(&self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == ssrc)
    }

    /// The packet index for `seq` on `ssrc` and the stream's position, after the
    /// replay check. A new SSRC starts at ROC 0 (RFC 3711 §3.3.1: SDES carries no ROC).
    fn index_for(&self, ssrc: u32, seq: u16) -> Result<(Option<usize>, u64), SrtpError> {
        match self.stream_pos(ssrc) {
            Some(p) => {
                let s = self.streams.get(p).ok_or(SrtpError::Malformed)?;
                let index = s.estimate(seq)?;
                s.check_replay(index)?;
                Ok((Some(p), index))
            }
            None => Ok((None, u64::from(seq))),
        }
    }

    /// Records an index as used, once the packet was authenticated (or protected).
    fn commit(&mut self, pos: Option<usize>, ssrc: u32, index: u64) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(s) = pos.and_then(|p| self.streams.get_mut(p)) {
            s.accept(index);
            s.used = tick;
            return;
        }
        let fresh = Stream {
            ssrc,
            roc: (index >> 16) as u32,
            seq: index as u16,
            window: 1,
            used: tick,
        };
        if self.streams.len() < MAX_STREAMS {
            self.streams.push(fresh);
        } else if let Some(lru) = self.streams.iter_mut().min_by_key(|s| s.used) {
            *lru = fresh;
        }
    }

    /// Protects the RTP packet in `buf[..len]` in place: encrypts the payload (everything
    /// after the header, CSRCs and header extension), appends the MKI if any and the
    /// tag, and returns the SRTP length (`len + overhead()`). `buf` must have room for
    /// the trailer. The ROC follows the sequence number per SSRC (a wrap 65535 → 0
    /// increments it); re-sending an index already protected is refused
    /// ([`SrtpError::Replay`]) because it would reuse keystream.
    pub fn protect_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::BufferTooSmall)?;
        let hdr = header_len(pkt).ok_or(SrtpError::Malformed)?;
        let (seq, ssrc) = seq_ssrc(pkt).ok_or(SrtpError::Malformed)?;
        let total = len + self.overhead();
        let buf = buf.get_mut(..total).ok_or(SrtpError::BufferTooSmall)?;
        let (pos, index) = self.index_for(ssrc, seq)?;
        let roc = (index >> 16) as u32;
        match &self.engine {
            Engine::Cm { cipher, mac, salt } => {
                let (body, trailer) = buf.split_at_mut(len);
                if let Some(payload) = body.get_mut(hdr..) {
                    apply_cm(cipher, &cm_iv(salt, ssrc, index), payload);
                }
                let mut at = 0;
                if let Some(m) = self.mki {
                    let (wire, from) = m.wire();
                    let n = m.len();
                    trailer
                        .get_mut(..n)
                        .ok_or(SrtpError::BufferTooSmall)?
                        .copy_from_slice(wire.get(from..).ok_or(SrtpError::Malformed)?);
                    at = n;
                }
                let tag = hmac_tag(mac, body, roc);
                let tag_len = self.suite.tag_len();
                trailer
                    .get_mut(at..at + tag_len)
                    .ok_or(SrtpError::BufferTooSmall)?
                    .copy_from_slice(tag.get(..tag_len).ok_or(SrtpError::Malformed)?);
            }
            Engine::Gcm { aead, salt } => {
                let nonce = gcm_iv(salt, ssrc, roc, seq);
                let (body, trailer) = buf.split_at_mut(len);
                let (aad, payload) = body.split_at_mut(hdr);
                let nonce = (&nonce).into();
                let tag = match aead {
                    GcmCipher::Aes128(a) => a.encrypt_in_place_detached(nonce, aad, payload),
                    GcmCipher::Aes256(a) => a.encrypt_in_place_detached(nonce, aad, payload),
                }
                .map_err(|_| SrtpError::Malformed)?;
                trailer
                    .get_mut(..GCM_TAG_LEN)
                    .ok_or(SrtpError::BufferTooSmall)?
                    .copy_from_slice(&tag);
            }
        }
        self.commit(pos, ssrc, index);
        Ok(total)
    }

    /// Unprotects the SRTP packet filling `buf` in place and returns the length of the
    /// RTP packet now at its start (header unchanged, payload decrypted, trailer gone).
    ///
    /// The replay check comes first (cheap), then the tag is verified in constant time
    /// *before* anything is decrypted, so a forged packet leaves `buf` untouched; only
    /// an authenticated packet moves the ROC and the replay window (RFC 3711 §3.3).
    pub fn unprotect_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf.len();
        let mki_len = self.mki.map_or(0, Mki::len);
        let tag_len = self.suite.tag_len();
        let end = len
            .checked_sub(mki_len + tag_len)
            .ok_or(SrtpError::Malformed)?;
        let body = buf.get(..end).ok_or(SrtpError::Malformed)?;
        let hdr = header_len(body).ok_or(SrtpError::Malformed)?;
        let (seq, ssrc) = seq_ssrc(body).ok_or(SrtpError::Malformed)?;
        let (pos, index) = self.index_for(ssrc, seq)?;
        let roc = (index >> 16) as u32;
        match &self.engine {
            Engine::Cm { cipher, mac, salt } => {
                let (body, trailer) = buf.split_at_mut(end);
                if let Some(m) = self.mki {
                    let (wire, from) = m.wire();
                    let got = trailer.get(..mki_len).ok_or(SrtpError::Malformed)?;
                    if wire.get(from..) != Some(got) {
                        return Err(SrtpError::UnknownMki);
                    }
                }
                let got = trailer
                    .get(mki_len..mki_len + tag_len)
                    .ok_or(SrtpError::Malformed)?;
                let tag = hmac_tag(mac, body, roc);
                let want = tag.get(..tag_len).ok_or(SrtpError::Malformed)?;
                if !bool::from(want.ct_eq(got)) {
                    return Err(SrtpError::Auth);
                }
                if let Some(payload) = body.get_mut(hdr..) {
                    apply_cm(cipher, &cm_iv(salt, ssrc, index), payload);
                }
            }
            Engine::Gcm { aead, salt } => {
                let nonce = gcm_iv(salt, ssrc, roc, seq);
                let (body, trailer) = buf.split_at_mut(end);
                let tag = trailer.get(..GCM_TAG_LEN).ok_or(SrtpError::Malformed)?;
                let tag = <&[u8; GCM_TAG_LEN]>::try_from(tag)
                    .map_err(|_| SrtpError::Malformed)?
                    .into();
                let (aad, payload) = body.split_at_mut(hdr);
                let nonce = (&nonce).into();
                match aead {
                    GcmCipher::Aes128(a) => a.decrypt_in_place_detached(nonce, aad, payload, tag),
                    GcmCipher::Aes256(a) => a.decrypt_in_place_detached(nonce, aad, payload, tag),
                }
                .map_err(|_| SrtpError::Auth)?;
            }
        }
        self.commit(pos, ssrc, index);
        Ok(end)
    }

    /// [`Srtp::protect_in_place`] into a reusable `out` (cleared first): no allocation
    /// once `out` has grown to a packet plus [`Srtp::overhead`].
    pub fn protect(&mut self, rtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        out.extend_from_slice(rtp);
        out.resize(rtp.len() + self.overhead(), 0);
        match self.protect_in_place(out, rtp.len()) {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }

    /// [`Srtp::unprotect_in_place`] into a reusable `out` (cleared first, and left empty
    /// on error so unauthenticated bytes are never handed on).
    pub fn unprotect(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        out.extend_from_slice(srtp);
        match self.unprotect_in_place(out) {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }
}

/// RFC 3711 §4.1.1: IV = (k_s·2^16) XOR (SSRC·2^64) XOR (i·2^16).
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *d ^= s;
    }
    for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *d ^= s;
    }
    iv
}

/// RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt.
fn gcm_iv(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

fn apply_cm(cipher: &CmCipher, iv: &[u8; 16], data: &mut [u8]) {
    match cipher {
        CmCipher::Aes128(c) => aes_cm(c.as_ref(), iv, data),
        CmCipher::Aes256(c) => aes_cm(c.as_ref(), iv, data),
    }
}

/// AES in counter mode as RFC 3711 §4.1.1 defines it: keystream block j is
/// AES_k(IV + j), XORed into `data`. Eight blocks per call let AES-NI pipeline, and the
/// key schedule is borrowed, never copied.
fn aes_cm<C: BlockEncrypt + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>>(
    cipher: &C,
    iv: &[u8; 16],
    data: &mut [u8],
) {
    const BATCH: usize = 8;
    let base = u128::from_be_bytes(*iv);
    let mut j: u128 = 0;
    for chunk in data.chunks_mut(16 * BATCH) {
        let n = chunk.len().div_ceil(16);
        let mut blocks = [aes::Block::default(); BATCH];
        for (k, b) in blocks.iter_mut().take(n).enumerate() {
            *b = base.wrapping_add(j + k as u128).to_be_bytes().into();
        }
        if let Some(blocks) = blocks.get_mut(..n) {
            cipher.encrypt_blocks(blocks);
        }
        for (d, k) in chunk.iter_mut().zip(blocks.iter().flat_map(|b| b.iter())) {
            *d ^= k;
        }
        j += n as u128;
    }
}

/// RFC 3711 §4.2: HMAC-SHA1 over the authenticated portion (header + encrypted
/// payload) followed by the 32-bit ROC; the caller truncates to the suite's tag length.
fn hmac_tag(mac: &HmacSha1, authenticated: &[u8], roc: u32) -> [u8; 20] {
    let mut m = mac.clone();
    m.update(authenticated);
    m.update(&roc.to_be_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; 20];
    for (d, s) in out.iter_mut().zip(full.iter()) {
        *d = *s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rtc_srtp::context::Context as Oracle;
    use rtc_srtp::protection_profile::ProtectionProfile;

    fn hex(s: &str) -> Vec<u8> {
        let clean: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        assert!(clean.len() % 2 == 0, "odd hex");
        clean
            .chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    /// RFC 3711 B.3 master key and salt (also libsrtp's `srtp_validate` key).
    fn rfc3711_master(suite: Suite) -> KeyMaterial {
        KeyMaterial::new(
            suite,
            &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
            &hex("0EC675AD498AFEEBB6960B3AABE6"),
        )
        .unwrap()
    }

    /// RFC 6188 §7.2 master key and salt (also libsrtp's `srtp_validate_aes_256`).
    fn rfc6188_master(suite: Suite) -> KeyMaterial {
        KeyMaterial::new(
            suite,
            &hex("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"),
            &hex("3b04803de51ee7c96423ab5b78d2"),
        )
        .unwrap()
    }

    /// libsrtp's reference packet: PT 15, seq 0x1234, ts 0xdecafbad, SSRC 0xcafebabe,
    /// sixteen 0xab payload bytes.
    fn libsrtp_plain() -> Vec<u8> {
        hex("800f1234decafbadcafebabe abababababababababababababababab")
    }

    fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&0x1122_3344u32.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn roundtrip(tx: &mut Srtp, rx: &mut Srtp, pkt: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut s = Vec::new();
        tx.protect(pkt, &mut s).unwrap();
        let mut out = Vec::new();
        rx.unprotect(&s, &mut out)?;
        Ok(out)
    }

    #[test]
    fn contexts_can_be_shared_between_tasks() {
        // The shell keeps the sending context behind a Mutex shared by the media clock
        // and a relay, and moves the receiving one into a task.
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Srtp>();
        send_sync::<KeyMaterial>();
    }

    #[test]
    fn suite_names_and_lengths() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_sdes_name(s.sdes_name()), Some(s));
            assert_eq!(s.to_string(), s.sdes_name());
        }
        assert_eq!(
            Suite::from_sdes_name("aes_cm_128_hmac_sha1_80"),
            Some(Suite::AesCm128HmacSha1_80)
        );
        assert_eq!(Suite::from_sdes_name("F8_128_HMAC_SHA1_80"), None);
        assert_eq!(Suite::from_sdes_name("AES_192_CM_HMAC_SHA1_80"), None);
        assert_eq!(
            Suite::AesCm256HmacSha1_80.sdes_name(),
            "AES_256_CM_HMAC_SHA1_80"
        );
        assert_eq!(
            (
                Suite::AeadAes128Gcm.key_len(),
                Suite::AeadAes128Gcm.salt_len()
            ),
            (16, 12)
        );
        assert_eq!(
            (
                Suite::AesCm256HmacSha1_32.key_len(),
                Suite::AesCm256HmacSha1_32.salt_len(),
                Suite::AesCm256HmacSha1_32.tag_len()
            ),
            (32, 14, 4)
        );
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream for session key 2B7E…, salt F0F1…FD,
    /// SSRC 0, index 0, at counters 0–2 and FEFF–FF01, through the packet path.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let mut ctx = Srtp::from_session_keys(
            Suite::AesCm128HmacSha1_80,
            &hex("2B7E151628AED2A6ABF7158809CF4F3C"),
            &hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
            &[0; 20],
        );
        let blocks = 0xff02;
        let pkt = rtp(0, 0, &vec![0u8; 16 * blocks]);
        let mut out = Vec::new();
        ctx.protect(&pkt, &mut out).unwrap();
        let ks = &out[12..12 + 16 * blocks];
        let block = |i: usize| &ks[16 * i..16 * i + 16];
        assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
        assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
        assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
        assert_eq!(block(0xfeff), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
        assert_eq!(block(0xff00), hex("362B7C3C6773516318A077D7FC5073AE"));
        assert_eq!(block(0xff01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
    }

    /// RFC 3711 Appendix B.3: session key, salt and auth key from the master key.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let m = rfc3711_master(Suite::AesCm128HmacSha1_80);
        let mut k = [0u8; 16];
        kdf(m.key(), m.salt(), LABEL_ENCRYPTION, &mut k);
        assert_eq!(k.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0u8; 14];
        kdf(m.key(), m.salt(), LABEL_SALT, &mut s);
        assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut a = [0u8; 20];
        kdf(m.key(), m.salt(), LABEL_AUTH, &mut a);
        assert_eq!(a.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    /// RFC 6188 §7.2: the AES-256 PRF.
    #[test]
    fn rfc6188_aes256_key_derivation() {
        let m = rfc6188_master(Suite::AesCm256HmacSha1_80);
        let mut k = [0u8; 32];
        kdf(m.key(), m.salt(), LABEL_ENCRYPTION, &mut k);
        assert_eq!(
            k.to_vec(),
            hex("5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4")
        );
        let mut s = [0u8; 14];
        kdf(m.key(), m.salt(), LABEL_SALT, &mut s);
        assert_eq!(s.to_vec(), hex("fa31791685ca444a9e07c6c64e93"));
        let mut a = [0u8; 20];
        kdf(m.key(), m.salt(), LABEL_AUTH, &mut a);
        assert_eq!(a.to_vec(), hex("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05"));
    }

    fn known_answer(master: KeyMaterial, plain: &[u8], expected: &[u8]) {
        let mut tx = Srtp::new(&master);
        let mut out = Vec::new();
        tx.protect(plain, &mut out).unwrap();
        assert_eq!(out, expected, "{:?}", master.suite());
        let mut rx = Srtp::new(&master);
        let mut back = Vec::new();
        rx.unprotect(expected, &mut back).unwrap();
        assert_eq!(back, plain);
    }

    /// libsrtp `srtp_validate` (AES_CM_128_HMAC_SHA1_80) and its 32-bit-tag variant:
    /// end to end through key derivation, IV, encryption and HMAC.
    #[test]
    fn libsrtp_reference_packet_aes_cm_128() {
        let full =
            hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
        known_answer(
            rfc3711_master(Suite::AesCm128HmacSha1_80),
            &libsrtp_plain(),
            &full,
        );
        known_answer(
            rfc3711_master(Suite::AesCm128HmacSha1_32),
            &libsrtp_plain(),
            &full[..32],
        );
    }

    /// libsrtp `srtp_validate_aes_256` (AES_256_CM_HMAC_SHA1_80, RFC 6188 keys).
    #[test]
    fn libsrtp_reference_packet_aes_cm_256() {
        known_answer(
            rfc6188_master(Suite::AesCm256HmacSha1_80),
            &libsrtp_plain(),
            &hex("800f1234decafbadcafebabe f1d9de17ff251ff1aa007774b0b4b40d a08d9d9a5b3a55d8873b"),
        );
    }

    /// libsrtp `srtp_validate_gcm` (AEAD_AES_128_GCM, 12-byte master salt through the
    /// KDF).
    #[test]
    fn libsrtp_reference_packet_gcm() {
        let master = KeyMaterial::new(
            Suite::AeadAes128Gcm,
            &hex("000102030405060708090a0b0c0d0e0f"),
            &hex("a0a1a2a3a4a5a6a7a8a9aaab"),
        )
        .unwrap();
        known_answer(
            master,
            &libsrtp_plain(),
            &hex(
                "800f1234decafbadcafebabe c5002ede04cfdd2eb91159e0880aa06e d2976826f796b201df3131a127e8a392",
            ),
        );
    }

    /// RFC 7714 §16.1.1: AEAD_AES_128_GCM with the session key and salt given directly
    /// ("Quid pro quo", "Gallia est omnis divisa in partes tres"), IV 51753c6580c2726f20718414.
    #[test]
    fn rfc7714_aead_aes_128_gcm_vector() {
        let key = hex("000102030405060708090a0b0c0d0e0f");
        let salt = hex("517569642070726f2071756f");
        let plain = hex(
            "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
             69736120 696e2070 61727465 73207472 6573",
        );
        let protected = hex(
            "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
             0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
        );
        let mut s12 = [0u8; 12];
        s12.copy_from_slice(&salt);
        assert_eq!(
            gcm_iv(&s12, 0x5501_a0b2, 0, 0xf17b).to_vec(),
            hex("51753c6580c2726f20718414")
        );
        let mut tx = Srtp::from_session_keys(Suite::AeadAes128Gcm, &key, &salt, &[]);
        let mut out = Vec::new();
        tx.protect(&plain, &mut out).unwrap();
        assert_eq!(out, protected);
        let mut rx = Srtp::from_session_keys(Suite::AeadAes128Gcm, &key, &salt, &[]);
        let mut back = Vec::new();
        rx.unprotect(&protected, &mut back).unwrap();
        assert_eq!(back, plain);
    }

    fn profile(s: Suite) -> ProtectionProfile {
        match s {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            Suite::AesCm256HmacSha1_80 => ProtectionProfile::Aes256CmHmacSha1_80,
            Suite::AesCm256HmacSha1_32 => ProtectionProfile::Aes256CmHmacSha1_32,
            Suite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            Suite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        }
    }

    fn oracle(k: &KeyMaterial) -> Oracle {
        let provider = rtc_srtp::crypto::default_provider().unwrap();
        Oracle::new(
            k.key(),
            k.salt(),
            profile(k.suite()),
            None,
            None,
            provider.crypto(),
        )
        .unwrap()
    }

    /// A random RTP packet: CSRCs, a header extension, padding bit, marker, any payload
    /// length (0 included).
    fn random_rtp(rng: &mut impl Rng, seq: u16, ssrc: u32) -> Vec<u8> {
        let cc: u8 = rng.random_range(0..=3);
        let ext = rng.random_bool(0.5);
        let mut p = vec![0x80 | cc | if ext { 0x10 } else { 0 }, rng.random::<u8>()];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&rng.random::<u32>().to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        for _ in 0..cc {
            p.extend_from_slice(&rng.random::<u32>().to_be_bytes());
        }
        if ext {
            // Either RFC 8285 one-byte elements (well formed: the oracle parses them and
            // re-derives the header length from them) or an opaque profile.
            let words: u16 = rng.random_range(0..=3);
            let one_byte = rng.random_bool(0.5);
            let profile: u16 = if one_byte { 0xBEDE } else { 0x1234 };
            p.extend_from_slice(&profile.to_be_bytes());
            p.extend_from_slice(&words.to_be_bytes());
            for w in 0..words {
                if one_byte {
                    p.extend_from_slice(&[
                        ((w as u8 + 1) << 4) | 2,
                        rng.random(),
                        rng.random(),
                        rng.random(),
                    ]);
                } else {
                    p.extend_from_slice(&rng.random::<u32>().to_be_bytes());
                }
            }
        }
        let n = rng.random_range(0..=200);
        for _ in 0..n {
            p.push(rng.random());
        }
        p
    }

    /// Cross-check with an independent implementation (webrtc-rs `rtc-srtp`, with ring's
    /// HMAC and GCM): what we protect it unprotects and the reverse, for every suite,
    /// over a sequence wrap and with CSRCs and header extensions.
    #[test]
    fn interoperates_with_rtc_srtp_both_ways() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7714);
        for suite in Suite::ALL {
            let key = KeyMaterial::from_rng(suite, &mut rng);
            let (mut ours_tx, mut ours_rx) = (Srtp::new(&key), Srtp::new(&key));
            let (mut their_tx, mut their_rx) = (oracle(&key), oracle(&key));
            let ssrc: u32 = rng.random();
            let mut seq: u16 = 65_500;
            let mut s = Vec::new();
            let mut back = Vec::new();
            for i in 0..120 {
                let pkt = random_rtp(&mut rng, seq, ssrc);
                // ours → theirs
                ours_tx.protect(&pkt, &mut s).unwrap();
                assert_eq!(s.len(), pkt.len() + suite.tag_len());
                let theirs = their_rx
                    .decrypt_rtp(&s)
                    .unwrap_or_else(|e| panic!("{suite} packet {i}: rtc-srtp rejects ours: {e}"));
                assert_eq!(&theirs[..], &pkt[..], "{suite} packet {i}");
                // theirs → ours, and byte-identical to what we produce
                let protected = their_tx.encrypt_rtp(&pkt).unwrap();
                assert_eq!(
                    &protected[..],
                    &s[..],
                    "{suite} packet {i}: same SRTP bytes"
                );
                ours_rx
                    .unprotect(&protected, &mut back)
                    .unwrap_or_else(|e| panic!("{suite} packet {i}: we reject theirs: {e}"));
                assert_eq!(back, pkt, "{suite} packet {i}");
                seq = seq.wrapping_add(1);
            }
            assert_eq!(ours_tx.roc(ssrc), Some(1), "{suite}");
            assert_eq!(ours_rx.roc(ssrc), Some(1), "{suite}");
        }
    }

    #[test]
    fn tampering_fails_authentication_and_leaves_the_buffer() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for suite in Suite::ALL {
            let key = KeyMaterial::from_rng(suite, &mut rng);
            let mut tx = Srtp::new(&key);
            let mut s = Vec::new();
            tx.protect(&rtp(10, 0xabcd, &[0x55; 160]), &mut s).unwrap();
            // Payload, tag, and header (the sequence number and the marker bit).
            for bit in [12 * 8 + 3, (s.len() - 1) * 8, 3 * 8, 8] {
                let mut bad = s.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let mut rx = Srtp::new(&key);
                let copy = bad.clone();
                assert_eq!(
                    rx.unprotect_in_place(&mut bad),
                    Err(SrtpError::Auth),
                    "{suite} bit {bit}"
                );
                assert_eq!(bad, copy, "{suite}: nothing decrypted before the tag check");
                // The failed packet did not create state: the genuine one still passes.
                let mut out = Vec::new();
                rx.unprotect(&s, &mut out).unwrap();
            }
            // Another key: Auth.
            let mut other = Srtp::new(&KeyMaterial::from_rng(suite, &mut rng));
            let mut out = vec![1, 2, 3];
            assert_eq!(other.unprotect(&s, &mut out), Err(SrtpError::Auth));
            assert!(out.is_empty(), "nothing handed on after an error");
            // Plain RTP is not SRTP.
            let plain = rtp(11, 0xabcd, &[0x55; 160]);
            assert_eq!(
                Srtp::new(&key).unprotect(&plain, &mut out),
                Err(SrtpError::Auth)
            );
        }
    }

    #[test]
    fn replay_and_reordering() {
        let key = KeyMaterial::random(Suite::AesCm128HmacSha1_80);
        let mut tx = Srtp::new(&key);
        let mut rx = Srtp::new(&key);
        let mut out = Vec::new();
        let packets: Vec<Vec<u8>> = (0..300u16)
            .map(|i| {
                let mut s = Vec::new();
                tx.protect(&rtp(1000 + i, 7, &[i as u8; 20]), &mut s)
                    .unwrap();
                s
            })
            .collect();
        rx.unprotect(&packets[0], &mut out).unwrap();
        assert_eq!(rx.unprotect(&packets[0], &mut out), Err(SrtpError::Replay));
        rx.unprotect(&packets[5], &mut out).unwrap();
        // Late but inside the window: accepted once.
        for i in [3, 1, 4, 2] {
            rx.unprotect(&packets[i], &mut out).unwrap();
            assert_eq!(out[12], i as u8);
            assert_eq!(rx.unprotect(&packets[i], &mut out), Err(SrtpError::Replay));
        }
        rx.unprotect(&packets[200], &mut out).unwrap();
        // 195 behind the highest: older than the 128-packet window.
        assert_eq!(rx.unprotect(&packets[6], &mut out), Err(SrtpError::Replay));
        // 127 behind: still inside.
        rx.unprotect(&packets[73], &mut out).unwrap();
        assert_eq!(rx.unprotect(&packets[73], &mut out), Err(SrtpError::Replay));
        // A jump of more than the window clears it.
        rx.unprotect(&packets[299], &mut out).unwrap();
        assert_eq!(
            rx.unprotect(&packets[200], &mut out),
            Err(SrtpError::Replay)
        );
        // The sender refuses to protect an index twice (keystream reuse).
        let mut s = Vec::new();
        assert_eq!(
            tx.protect(&rtp(1000, 7, &[0; 20]), &mut s),
            Err(SrtpError::Replay)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn sequence_wrap_increments_the_roc() {
        for suite in [Suite::AesCm128HmacSha1_32, Suite::AeadAes128Gcm] {
            let key = KeyMaterial::random(suite);
            let mut tx = Srtp::new(&key);
            let mut rx = Srtp::new(&key);
            let mut seq = 65_530u16;
            let mut held = None;
            for i in 0..20u8 {
                let pkt = rtp(seq, 42, &[i; 33]);
                let mut s = Vec::new();
                tx.protect(&pkt, &mut s).unwrap();
                if seq == 65_535 {
                    // Deliver the last packet before the wrap after the first after it.
                    held = Some((s, pkt));
                } else {
                    let mut out = Vec::new();
                    rx.unprotect(&s, &mut out).unwrap();
                    assert_eq!(out, pkt, "{suite} seq {seq}");
                    if seq == 1 {
                        let (s, pkt) = held.take().unwrap();
                        rx.unprotect(&s, &mut out).unwrap();
                        assert_eq!(out, pkt, "late 65535 still belongs to ROC 0");
                    }
                }
                seq = seq.wrapping_add(1);
            }
            assert_eq!((tx.roc(42), rx.roc(42)), (Some(1), Some(1)));
            // A receiver that decrypts with the wrong ROC fails: the ROC is authenticated
            // (HMAC input, GCM IV).
            let mut fresh = Srtp::new(&key);
            let mut s = Vec::new();
            tx.protect(&rtp(seq, 42, &[1; 10]), &mut s).unwrap();
            assert_eq!(fresh.unprotect(&s, &mut Vec::new()), Err(SrtpError::Auth));
        }
    }

    #[test]
    fn ssrcs_are_tracked_separately_and_bounded() {
        let key = KeyMaterial::random(Suite::AesCm128HmacSha1_80);
        let mut tx = Srtp::new(&key);
        let mut rx = Srtp::new(&key);
        let mut s = Vec::new();
        let mut out = Vec::new();
        for ssrc in 0..100u32 {
            tx.protect(&rtp(5, ssrc, &[1]), &mut s).unwrap();
            rx.unprotect(&s, &mut out).unwrap();
        }
        assert!(rx.streams.len() <= MAX_STREAMS && tx.streams.len() <= MAX_STREAMS);
        assert_eq!(rx.roc(99), Some(0));
    }

    #[test]
    fn mki_sits_between_payload_and_tag() {
        let master = rfc3711_master(Suite::AesCm128HmacSha1_80);
        let with = master.clone().with_mki(Mki::new(0x0102, 2));
        let mut tx = Srtp::new(&with);
        assert_eq!(tx.overhead(), 12);
        let mut s = Vec::new();
        tx.protect(&libsrtp_plain(), &mut s).unwrap();
        // Removing the two MKI bytes gives libsrtp's packet: the MKI is neither encrypted
        // nor authenticated (RFC 3711 §3.1).
        assert_eq!(&s[28..30], &[0x01, 0x02]);
        let mut without = s.clone();
        without.drain(28..30);
        assert_eq!(
            without,
            hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb")
        );
        let mut out = Vec::new();
        Srtp::new(&with).unprotect(&s, &mut out).unwrap();
        assert_eq!(out, libsrtp_plain());
        let other = master.with_mki(Mki::new(3, 2));
        assert_eq!(
            Srtp::new(&other).unprotect(&s, &mut out),
            Err(SrtpError::UnknownMki)
        );
    }

    #[test]
    fn in_place_api_and_buffer_bounds() {
        let key = KeyMaterial::random(Suite::AesCm256HmacSha1_80);
        let mut tx = Srtp::new(&key);
        let mut rx = Srtp::new(&key);
        let pkt = rtp(1, 2, &[9; 160]);
        let mut buf = [0u8; 1500];
        buf[..pkt.len()].copy_from_slice(&pkt);
        assert_eq!(
            tx.protect_in_place(&mut buf[..pkt.len() + 5], pkt.len()),
            Err(SrtpError::BufferTooSmall)
        );
        let n = tx.protect_in_place(&mut buf, pkt.len()).unwrap();
        assert_eq!(n, pkt.len() + 10);
        assert_eq!(rx.unprotect_in_place(&mut buf[..n]), Ok(pkt.len()));
        assert_eq!(&buf[..pkt.len()], &pkt[..]);
        assert_eq!(
            tx.protect_in_place(&mut buf, 2000),
            Err(SrtpError::BufferTooSmall)
        );
    }

    /// Network input never panics: random bytes, truncations and bit flips of valid
    /// packets, for every suite, through both APIs.
    #[test]
    fn garbage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        for suite in Suite::ALL {
            let key = KeyMaterial::from_rng(suite, &mut rng);
            let mut tx = Srtp::new(&key);
            let mut rx = Srtp::new(&key);
            let mut out = Vec::new();
            for i in 0..3000u32 {
                let len = rng.random_range(0..80);
                let mut junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                if i % 2 == 0 && !junk.is_empty() {
                    junk[0] = 0x80 | (junk[0] & 0x3F); // looks like RTP v2
                }
                assert!(rx.unprotect(&junk, &mut out).is_err());
                let _ = tx.protect(&junk, &mut out);
                let _ = rx.unprotect_in_place(&mut junk.clone());
            }
            let mut s = Vec::new();
            tx.protect(&random_rtp(&mut rng, 60_000, 5), &mut s)
                .unwrap();
            for cut in 0..s.len() {
                assert!(
                    rx.unprotect(&s[..cut], &mut out).is_err(),
                    "{suite} cut {cut}"
                );
            }
        }
        assert_eq!(header_len(&[0x9F; 12]), None, "15 CSRCs do not fit");
        assert_eq!(header_len(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(header_len(&[0x40; 20]), None, "version 1");
    }

    #[test]
    fn inline_keys() {
        let m = rfc3711_master(Suite::AesCm128HmacSha1_80);
        let inline = m.to_inline();
        assert_eq!(inline, "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm");
        assert_eq!(KeyMaterial::from_inline(m.suite(), &inline), Ok(m.clone()));
        for ok in [
            "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|2^31",
            "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|2^20|1:4",
            "INLINE:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|1000000",
            " inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm ",
        ] {
            let k = KeyMaterial::from_inline(m.suite(), ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!((k.key(), k.salt()), (m.key(), m.salt()), "{ok}");
        }
        let k = KeyMaterial::from_inline(
            m.suite(),
            "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|2^20|1:4",
        )
        .unwrap();
        assert_eq!(k.mki(), Mki::new(1, 4));
        assert_eq!(
            k.to_inline(),
            "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|1:4"
        );
        // AES-256: 46 bytes, padded and unpadded base64 both accepted.
        let k256 = rfc6188_master(Suite::AesCm256HmacSha1_80);
        let padded = k256.to_inline();
        assert!(padded.ends_with("=="), "{padded}");
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(
            KeyMaterial::from_inline(k256.suite(), unpadded),
            Ok(k256.clone())
        );
        for (suite, bad, err) in [
            (m.suite(), "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOq", "length"),
            (k256.suite(), inline.as_str(), "length"),
            (Suite::AeadAes128Gcm, inline.as_str(), "length"),
            (m.suite(), "inline:!!!!", "base64"),
            (m.suite(), "uri:https://example.com/key", "inline"),
            (m.suite(), "4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm", "inline"),
            (m.suite(), "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|2^x", "lifetime"),
            (m.suite(), "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|1:5", "mki"),
            (m.suite(), "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|256:1", "mki"),
            (m.suite(), "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|1:1|2^20", "mki"),
            (
                m.suite(),
                "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|2^20|1:4;inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm|2^20|2:4",
                "multiple",
            ),
        ] {
            let e = KeyMaterial::from_inline(suite, bad).unwrap_err();
            let kind = match e {
                KeyError::Length { .. } => "length",
                KeyError::Base64 => "base64",
                KeyError::NotInline => "inline",
                KeyError::Lifetime(_) => "lifetime",
                KeyError::Mki(_) => "mki",
                KeyError::MultipleKeys => "multiple",
            };
            assert_eq!(kind, err, "{bad}: {e}");
        }
        // GCM keys carry no MKI (placement not implemented).
        let gcm = KeyMaterial::random(Suite::AeadAes128Gcm);
        let line = format!("{}|1:1", gcm.to_inline());
        assert!(matches!(
            KeyMaterial::from_inline(Suite::AeadAes128Gcm, &line),
            Err(KeyError::Mki(_))
        ));
        assert_eq!(
            KeyMaterial::from_inline(Suite::AeadAes128Gcm, &gcm.to_inline()),
            Ok(gcm)
        );
    }

    #[test]
    fn keys_are_random_and_never_printed() {
        let a = KeyMaterial::random(Suite::AesCm128HmacSha1_80);
        let b = KeyMaterial::random(Suite::AesCm128HmacSha1_80);
        assert_ne!(a, b);
        let shown = format!("{a:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&format!("{:?}", a.key())));
        assert!(!shown.contains(&a.to_inline()[7..15]));
        let mut r1 = rand::rngs::StdRng::seed_from_u64(5);
        let mut r2 = rand::rngs::StdRng::seed_from_u64(5);
        assert_eq!(
            KeyMaterial::from_rng(Suite::AeadAes256Gcm, &mut r1),
            KeyMaterial::from_rng(Suite::AeadAes256Gcm, &mut r2)
        );
        assert!(format!("{:?}", Srtp::new(&a)).contains("AesCm128HmacSha1_80"));
    }

    #[test]
    fn roundtrip_every_suite_with_padding_bit() {
        for suite in Suite::ALL {
            let key = KeyMaterial::random(suite);
            let (mut tx, mut rx) = (Srtp::new(&key), Srtp::new(&key));
            // P bit with 4 bytes of RTP padding: encrypted like any payload byte.
            let mut pkt = rtp(3, 3, &[1, 2, 3, 4, 0, 0, 0, 4]);
            pkt[0] |= 0x20;
            assert_eq!(
                roundtrip(&mut tx, &mut rx, &pkt),
                Ok(pkt.clone()),
                "{suite}"
            );
            // Empty payload.
            let pkt = rtp(4, 3, &[]);
            assert_eq!(
                roundtrip(&mut tx, &mut rx, &pkt),
                Ok(pkt.clone()),
                "{suite}"
            );
        }
    }
}
