//! The audio codecs ringback negotiates.
//!
//! Only G.711 is supported on purpose: it needs no licence, costs one table lookup per
//! sample, lets prompts be encoded once at load time and shared by every call, and is
//! offered by practically every SIP device and trunk.

/// A G.711 variant. `Hash`/`Eq` so it can key per-codec caches (pre-encoded prompts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (North America, Japan). Static payload type 0.
    Pcmu,
    /// G.711 A-law (rest of the world). Static payload type 8.
    Pcma,
}

impl Codec {
    /// Both codecs in our default preference order, for building offers.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// RTP sampling clock of G.711. Telephone-events must use the same clock (RFC 4733
    /// §2.1), which is why SDP negotiation only accepts `telephone-event/8000`.
    pub const CLOCK_RATE: u32 = 8000;

    /// Static RTP payload type from RFC 3551 table 4 (0 for PCMU, 8 for PCMA). Offers
    /// may omit `a=rtpmap` for these, so the static number alone must identify them.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name as written in `a=rtpmap` (RFC 3551 §4.5.14).
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The byte that encodes a zero sample. Used to pad the last prompt frame and to
    /// send silence without running the encoder (0xFF for µ-law, 0xD5 for A-law).
    pub fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Looks a codec up by its SDP encoding name, case-insensitively, because RFC 4566
    /// §6 says encoding names are case-insensitive and phones send `pcmu` too.
    pub fn from_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// Maps a *static* payload type to a codec (0 → PCMU, 8 → PCMA). Useful when an RTP
    /// packet arrives with a PT that was never described by `a=rtpmap`.
    pub fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711;

    #[test]
    fn static_payload_types_and_names() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_name("pcmu"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_name("PCMA"), Some(Codec::Pcma));
        assert_eq!(Codec::from_name("G722"), None);
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_static_payload_type(9), None);
        for c in Codec::ALL {
            assert_eq!(Codec::from_name(c.encoding_name()), Some(c));
            assert_eq!(Codec::from_static_payload_type(c.payload_type()), Some(c));
        }
    }

    #[test]
    fn silence_byte_is_encoded_zero() {
        assert_eq!(g711::ulaw_encode(0), Codec::Pcmu.silence_byte());
        assert_eq!(g711::alaw_encode(0), Codec::Pcma.silence_byte());
        assert_eq!(g711::ulaw_decode(Codec::Pcmu.silence_byte()), 0);
        // A-law has no exact zero: its smallest level is ±8.
        assert_eq!(g711::alaw_decode(Codec::Pcma.silence_byte()), 8);
    }
}
