//! Our DTLS identity: one self-signed ECDSA P-256 certificate, made once at server
//! start and shared by every browser leg, and certificate fingerprints (RFC 8122) as
//! written in `a=fingerprint` lines.

use crate::WebRtcError;
use dimpl::{Config, DtlsCertificate};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::fmt::Write as _;
use std::sync::Arc;

/// A certificate fingerprint (RFC 8122 §5): a hash function name and the digest of
/// the DER certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function name, lower case as in SDP (`"sha-256"`).
    pub algorithm: String,
    /// The digest bytes.
    pub value: Vec<u8>,
}

impl Fingerprint {
    /// The attribute value for `a=fingerprint:`: `"sha-256 AB:CD:…"` (upper-case hex).
    pub fn to_sdp(&self) -> String {
        let mut s = String::with_capacity(self.algorithm.len() + 1 + self.value.len() * 3);
        s.push_str(&self.algorithm);
        s.push(' ');
        for (i, b) in self.value.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            let _ = write!(s, "{b:02X}");
        }
        s
    }

    /// The fingerprint of a DER certificate with `algorithm` (`sha-256`, `sha-384`,
    /// `sha-512` or `sha-1`, case-insensitive); `None` for any other hash function.
    pub fn of_der(algorithm: &str, der: &[u8]) -> Option<Fingerprint> {
        let algorithm = algorithm.to_ascii_lowercase();
        let value = match algorithm.as_str() {
            "sha-256" => Sha256::digest(der).to_vec(),
            "sha-384" => Sha384::digest(der).to_vec(),
            "sha-512" => Sha512::digest(der).to_vec(),
            "sha-1" => Sha1::digest(der).to_vec(),
            _ => return None,
        };
        Some(Fingerprint { algorithm, value })
    }

    /// Parses an `a=fingerprint:` value (`"sha-256 AB:CD:…"`, hex in either case).
    /// `None` when the hash function is not one [`Fingerprint::of_der`] supports or
    /// the digest is not colon-separated hex of that function's length.
    pub fn from_sdp(value: &str) -> Option<Fingerprint> {
        let mut parts = value.split_whitespace();
        let algorithm = parts.next()?.to_ascii_lowercase();
        let hex = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let expected = digest_len(&algorithm)?;
        let mut bytes = Vec::with_capacity(expected);
        for pair in hex.split(':') {
            if pair.len() != 2 {
                return None;
            }
            bytes.push(u8::from_str_radix(pair, 16).ok()?);
        }
        (bytes.len() == expected).then_some(Fingerprint {
            algorithm,
            value: bytes,
        })
    }

    /// Whether `der` (the peer's certificate) has this fingerprint.
    pub fn matches(&self, der: &[u8]) -> bool {
        Fingerprint::of_der(&self.algorithm, der).is_some_and(|f| f.value == self.value)
    }
}

fn digest_len(algorithm: &str) -> Option<usize> {
    match algorithm {
        "sha-1" => Some(20),
        "sha-256" => Some(32),
        "sha-384" => Some(48),
        "sha-512" => Some(64),
        _ => None,
    }
}

/// Our DTLS certificate, its SHA-256 fingerprint and the DTLS configuration every leg
/// uses. Cheap to clone (the configuration is shared).
#[derive(Clone)]
pub struct DtlsIdentity {
    cert: DtlsCertificate,
    fingerprint: Fingerprint,
    config: Arc<Config>,
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.fingerprint.to_sdp())
            .finish_non_exhaustive()
    }
}

impl DtlsIdentity {
    /// A fresh self-signed ECDSA P-256 certificate (random serial, validity 1975–4096:
    /// browsers only pin the fingerprint) and its SHA-256 fingerprint.
    pub fn generate() -> Result<DtlsIdentity, WebRtcError> {
        let (certificate, key) = self_signed()?;
        DtlsIdentity::from_der(certificate, key)
    }

    /// An identity from an existing certificate (DER) and its ECDSA P-256 or P-384
    /// private key (PKCS#8 DER), for a shell that keeps one across restarts.
    pub fn from_der(
        certificate: Vec<u8>,
        private_key_pkcs8: Vec<u8>,
    ) -> Result<DtlsIdentity, WebRtcError> {
        let fingerprint = Fingerprint::of_der("sha-256", &certificate)
            .ok_or_else(|| WebRtcError::Certificate("sha-256 unavailable".into()))?;
        let config = Config::builder()
            .build()
            .map_err(|e| WebRtcError::Config(e.to_string()))?;
        Ok(DtlsIdentity {
            cert: DtlsCertificate {
                certificate,
                private_key: private_key_pkcs8,
            },
            fingerprint,
            config: Arc::new(config),
        })
    }

    /// The SHA-256 fingerprint of our certificate, for `a=fingerprint`.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Our certificate in DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert.certificate
    }

    pub(crate) fn certificate(&self) -> DtlsCertificate {
        self.cert.clone()
    }

    pub(crate) fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config)
    }
}

/// A self-signed ECDSA P-256 certificate: (certificate DER, PKCS#8 private key DER).
fn self_signed() -> Result<(Vec<u8>, Vec<u8>), WebRtcError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
    let err = |e: rcgen::Error| WebRtcError::Certificate(e.to_string());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "ringback");
    params.distinguished_name = name;
    // Unique serials: Firefox refuses a second certificate with the same issuer and
    // serial in one process (mediasoup issue 127).
    let serial: [u8; 16] = rand::random();
    let mut serial = serial.to_vec();
    serial[0] &= 0x7f; // a positive INTEGER
    params.serial_number = Some(serial.into());
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_has_a_sha256_fingerprint_of_its_certificate() {
        let id = DtlsIdentity::generate().unwrap();
        let fp = id.fingerprint();
        assert_eq!(fp.algorithm, "sha-256");
        assert_eq!(fp.value.len(), 32);
        assert!(fp.matches(id.certificate_der()));
        let other = DtlsIdentity::generate().unwrap();
        assert_ne!(other.fingerprint(), fp);
    }

    #[test]
    fn fingerprint_sdp_round_trip() {
        let fp = Fingerprint::of_der("SHA-256", b"abc").unwrap();
        let sdp = fp.to_sdp();
        assert!(sdp.starts_with("sha-256 BA:78:16:BF:8F:01:CF:EA"));
        assert_eq!(sdp.len(), "sha-256 ".len() + 32 * 3 - 1);
        assert_eq!(Fingerprint::from_sdp(&sdp), Some(fp.clone()));
        assert_eq!(Fingerprint::from_sdp(&sdp.to_lowercase()), Some(fp));
        assert_eq!(Fingerprint::from_sdp("md5 AB:CD"), None);
        assert_eq!(Fingerprint::from_sdp("sha-256 AB:CD"), None);
        assert_eq!(Fingerprint::from_sdp("sha-256"), None);
        assert_eq!(Fingerprint::of_der("md5", b"abc"), None);
        for alg in ["sha-1", "sha-384", "sha-512"] {
            let f = Fingerprint::of_der(alg, b"x").unwrap();
            assert_eq!(Fingerprint::from_sdp(&f.to_sdp()), Some(f));
        }
    }
}
