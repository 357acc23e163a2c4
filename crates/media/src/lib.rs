//! Sans-IO media core of ringback.
//!
//! Everything in this crate is pure computation: no sockets, no files, no threads, no
//! async runtime and no clock reads (`crates/clippy.toml` enforces the clock and file
//! parts). Time enters as arguments (`std::time::Instant` or RTP sample counts), so
//! the same code runs under the real server, the `simulate` command and unit tests, and
//! a single media clock in the server can drive every stream.
//!
//! Modules:
//! - [`g711`]: table-driven µ-law / A-law, bit-exact with the ITU-T G.191 reference.
//! - [`codec`]: the two codecs we speak and their static RTP payload types.
//! - [`sdp`]: tolerant SDP parser, RFC 3264 offer/answer for one audio stream, SDES
//!   (RFC 4568) `a=crypto` negotiation under an [`sdp::SrtpPolicy`].
//! - [`srtp`]: SRTP (RFC 3711, RFC 6188) and AES-GCM SRTP (RFC 7714) for RTP packets.
//! - [`rtp`]: allocation-free RTP header parsing and packet writing.
//! - [`dtmf`]: RFC 4733 telephone-events (receive dedupe + send) and SIP INFO bodies.
//! - [`prompt`]: WAV decoding (of bytes the server read) at any rate, resampling to
//!   8 kHz, pre-encoded frames.
//! - [`player`]: per-call prompt queue + music-on-hold loop, frame by frame.
//! - [`goertzel`]: tone / DTMF detection used to verify the audio we really send.
//! - [`inband`]: streaming in-band DTMF detector for peers that send keys only as tones.
#![warn(missing_docs)]

pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod goertzel;
pub mod inband;
pub mod player;
pub mod prompt;
pub mod rtp;
pub mod sdp;
pub mod srtp;

pub use codec::Codec;
pub use srtp::{KeyMaterial, Srtp, SrtpError, Suite};

/// Proves the per-packet paths never touch the heap, with a counting allocator that
/// only this crate's test binary installs.
#[cfg(test)]
// Tests are a shell: they may read the clock (issue 12).
#[allow(clippy::disallowed_methods)]
mod alloc_free {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;
    thread_local! {
        static ALLOCS: Cell<usize> = const { Cell::new(0) };
    }
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: forwarding the caller's contract to the system allocator.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarding the caller's contract to the system allocator.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
    #[global_allocator]
    static GLOBAL: Counting = Counting;

    fn allocations() -> usize {
        ALLOCS.with(|c| c.get())
    }

    #[test]
    fn packet_paths_do_not_allocate() {
        use crate::{dtmf, g711, prompt, rtp, Codec};
        let p = prompt::tone(440.0, 1000, 0.5);
        let mut sender = rtp::RtpSender::new(1, 2, 3);
        let mut rx = dtmf::DtmfReceiver::new();
        let mut inband = crate::inband::InbandDtmf::new();
        let mut digits = 0usize;
        let mut tx = dtmf::DtmfSender::for_digit('5', 100).unwrap();
        let mut buf = [0u8; 1500];
        let mut pcm = [0i16; 160];
        let mut stats = rtp::RtpStats::new(8000);
        let mut player = crate::player::Player::new();
        player.set_loop(Some(std::sync::Arc::new(p.clone())));
        player.enqueue(std::sync::Arc::new(p.clone()));
        let t0 = std::time::Instant::now();
        let before = allocations();
        let mut bytes = 0usize;
        for i in 0..10_000usize {
            let frame = p.frame(Codec::Pcmu, i % 60);
            let n = sender.write(0, frame, &mut buf);
            let h = rtp::parse(&buf[..n]).unwrap();
            stats.on_packet(&h, t0);
            if let Some(f) = player.next_frame(Codec::Pcma) {
                bytes += f.data.len();
            }
            bytes += h.payload(&buf[..n]).len();
            g711::decode_frame(Codec::Pcmu, h.payload(&buf[..n]), &mut pcm);
            inband.process_g711(Codec::Pcmu, h.payload(&buf[..n]), |_| digits += 1);
            g711::transcode_in_place(Codec::Pcmu, Codec::Pcma, &mut buf[12..n]);
            let ev = dtmf::TelephoneEvent {
                event: (i % 16) as u8,
                end: i % 3 == 0,
                volume: 10,
                duration: 160,
            };
            let _ = rx.on_rtp((i / 7) as u32, &ev, t0);
            if let Some(n) = tx.next_packet(&mut sender, 101, &mut buf) {
                bytes += n;
            }
        }
        assert_eq!(allocations() - before, 0, "hot path allocated");
        assert!(bytes > 1_600_000);
        assert_eq!(digits, 0, "a 440 Hz tone is not a key");
        // Sanity check that the counter works at all.
        let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(10));
        assert!(allocations() > before && v.capacity() >= 10);
    }

    #[test]
    fn srtp_paths_do_not_allocate() {
        use crate::srtp::{KeyMaterial, Srtp, Suite};
        for suite in Suite::ALL {
            let key = KeyMaterial::random(suite);
            let (mut tx, mut rx) = (Srtp::new(&key), Srtp::new(&key));
            let mut sender = crate::rtp::RtpSender::new(9, 65_000, 0);
            let (mut buf, mut srtp, mut plain) = ([0u8; 1500], Vec::new(), Vec::new());
            let payload = [0x55u8; 160];
            // Warm up: the first packet creates the SSRC's state and grows the Vecs.
            let n = sender.write(0, &payload, &mut buf);
            tx.protect(&buf[..n], &mut srtp).unwrap();
            rx.unprotect(&srtp, &mut plain).unwrap();
            let before = allocations();
            for i in 0..2_000 {
                let n = sender.write(0, &payload, &mut buf);
                if i % 2 == 0 {
                    tx.protect(&buf[..n], &mut srtp).unwrap();
                    rx.unprotect(&srtp, &mut plain).unwrap();
                } else {
                    let m = tx.protect_in_place(&mut buf, n).unwrap();
                    assert_eq!(rx.unprotect_in_place(&mut buf[..m]), Ok(n));
                    // A replay is refused without allocating either.
                    assert!(rx.unprotect(&srtp, &mut plain).is_err());
                }
            }
            assert_eq!(
                allocations() - before,
                0,
                "{suite}: SRTP hot path allocated"
            );
            assert!(plain.is_empty(), "cleared after the refused replay");
        }
    }
}
