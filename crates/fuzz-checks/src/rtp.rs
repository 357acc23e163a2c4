//! `rtp_dtmf`: datagrams arriving on a call's RTP port.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ringback_media::dtmf::{char_to_event, event_to_char, parse_event, DtmfReceiver};
use ringback_media::{g711, rtp, Codec};

/// Runs `data` as a sequence of RTP datagrams through the call's receive loop
/// (`receive` in `src/media/mod.rs`): [`rtp::parse`], the bridge relay's header rewrite
/// and G.711 transcoding, and for the negotiated telephone-event payload type
/// [`parse_event`] and [`DtmfReceiver::on_rtp`].
///
/// Input layout: byte 0 is the negotiated telephone-event payload type (low 7 bits), byte
/// 1 picks the relay's codecs; then records of `[length, gap]` followed by `length`
/// datagram bytes (fewer at the end), `gap` being the arrival time since the previous
/// datagram in 10 ms units (so both the 250 ms repeat gap and the 2 s stale gap are
/// reachable).
///
/// Invariants: nothing panics; a parsed header's payload lies inside the datagram, after
/// the 12-byte header, and excludes the padding; the receiver only ever reports DTMF keys
/// (`0-9 * # A-D`) and reports each key press — a (timestamp, event) pair not seen before
/// — on its first packet.
pub fn rtp_dtmf(data: &[u8]) {
    let [dtmf_pt, codecs, rest @ ..] = data else {
        return;
    };
    let dtmf_pt = dtmf_pt & 0x7F;
    let pick = |bit: u8| {
        if codecs & bit == 0 {
            Codec::Pcmu
        } else {
            Codec::Pcma
        }
    };
    let (from_codec, to_codec) = (pick(1), pick(2));
    let from_pt = from_codec.payload_type();

    let mut receiver = DtmfReceiver::default();
    let mut seen: HashSet<(u32, u8)> = HashSet::new();
    // TODO(issue 12): the harness only needs an arbitrary base instant (every later
    // time is derived from the input); it plays the shell here. Take it from
    // ringback_sansio::Now once fuzz-checks depends on that crate.
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut input = rest;
    while let [len, gap, tail @ ..] = input {
        let len = usize::from(*len).min(tail.len());
        let (pkt, next) = tail.split_at(len);
        input = next;
        now += Duration::from_millis(10 * u64::from(*gap));

        let _ = rtp::looks_like_rtcp(pkt);
        let Ok(hdr) = rtp::parse(pkt) else {
            continue;
        };
        assert_eq!(hdr.version, 2);
        assert!(hdr.pt < 128);
        assert!(
            hdr.payload_offset >= rtp::HEADER_LEN
                && hdr.payload_offset + hdr.payload_len <= pkt.len(),
            "payload {}+{} outside a {}-byte datagram",
            hdr.payload_offset,
            hdr.payload_len,
            pkt.len()
        );
        assert_eq!(hdr.payload(pkt).len(), hdr.payload_len);

        relay(pkt, &hdr, from_pt, from_codec, to_codec);

        if hdr.pt == dtmf_pt {
            let payload = pkt
                .get(hdr.payload_offset..hdr.payload_offset + hdr.payload_len)
                .unwrap_or(&[]);
            let Ok(ev) = parse_event(payload) else {
                continue;
            };
            let first = seen.insert((hdr.ts, ev.event));
            match receiver.on_rtp(hdr.ts, &ev, now) {
                Some(d) => {
                    assert!("0123456789*#ABCD".contains(d), "non-DTMF key {d:?}");
                    assert_eq!(char_to_event(d), Some(ev.event));
                }
                None => assert!(
                    !first || event_to_char(ev.event).is_none(),
                    "first packet of key event {} at ts {} not reported",
                    ev.event,
                    hdr.ts
                ),
            }
        }
    }
}

/// `Relay::forward` in src/media/mod.rs: copy into a 1500-byte buffer, rewrite PT,
/// sequence, timestamp and SSRC, transcode the payload in place.
fn relay(pkt: &[u8], hdr: &rtp::RtpHeaderView, from_pt: u8, from: Codec, to: Codec) {
    if hdr.pt != from_pt {
        return;
    }
    let mut buf = [0u8; 1500];
    let Some(out) = buf.get_mut(..pkt.len()) else {
        return;
    };
    out.copy_from_slice(pkt);
    let pt = to.payload_type();
    out[1] = (out[1] & 0x80) | (pt & 0x7f);
    out[2..4].copy_from_slice(&hdr.seq.wrapping_add(0x1234).to_be_bytes());
    out[4..8].copy_from_slice(&hdr.ts.wrapping_add(0x89AB_CDEF).to_be_bytes());
    out[8..12].copy_from_slice(&0x5555_5555u32.to_be_bytes());
    if from != to {
        if let Some(payload) = out.get_mut(hdr.payload_offset..hdr.payload_offset + hdr.payload_len)
        {
            g711::transcode_in_place(from, to, payload);
        }
    }
    let again = rtp::parse(out).unwrap_or_else(|e| panic!("relayed packet does not parse: {e}"));
    assert_eq!(again.pt, pt);
    assert_eq!(
        (again.payload_offset, again.payload_len),
        (hdr.payload_offset, hdr.payload_len)
    );
}
