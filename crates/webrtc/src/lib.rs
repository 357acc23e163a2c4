//! Sans-IO WebRTC transport for ringback's browser legs (issue 14).
//!
//! A browser leg is one audio stream over one UDP port: ICE (we are an ICE-lite
//! agent, RFC 8445 §2.5, so we only answer the browser's connectivity checks),
//! DTLS-SRTP (RFC 5763/5764: the handshake authenticates the fingerprints of the SDP
//! exchange and exports the SRTP keys) and SRTP, which `ringback_media::srtp` does.
//! Like every crate under `crates/`, this one does no I/O and reads no clock: the
//! shell feeds datagrams and the current `Instant`, and carries out the outputs.
//!
//! Modules:
//! - [`identity`]: our certificate ([`DtlsIdentity`], made once at start-up) and
//!   certificate [`Fingerprint`]s.
//! - [`sdp`]: the browser's SDP ([`parse`]), codec choice, our offer and answer (JSEP,
//!   audio only, BUNDLE, rtcp-mux), DTLS roles and ICE credentials.
//! - [`stun`]: STUN binding requests and responses, RFC 7983 demultiplexing.
//! - [`transport`]: one leg's [`Transport`]: the ICE-lite responder, the DTLS
//!   handshake (via `dimpl`), fingerprint check, key export and liveness.
#![warn(missing_docs)]

pub mod identity;
pub mod sdp;
pub mod stun;
pub mod transport;

pub use identity::{DtlsIdentity, Fingerprint};
pub use sdp::{
    build_answer, build_offer, choose_audio, negotiated, parse, random_ice_credentials,
    we_are_dtls_server, AudioChoice, LocalDescription, RemoteDescription, SdpError, Setup,
};
pub use stun::{
    binding_error, binding_success, is_dtls, is_stun, parse_binding_request, BindingRequest,
    StunError,
};
pub use transport::{CloseReason, Transport, TransportConfig, TransportOutput};

/// Errors setting up WebRTC (not per-packet: those never fail loudly).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebRtcError {
    /// The certificate or key could not be generated or used.
    #[error("DTLS certificate: {0}")]
    Certificate(String),
    /// The DTLS configuration was refused.
    #[error("DTLS configuration: {0}")]
    Config(String),
}
