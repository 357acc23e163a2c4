//! The receive state machine fed packets and time directly: latching,
//! the RTP timeout, and RFC 4733 digits behave as the per-call task did.

use super::*;
use ringback_media::dtmf::TelephoneEvent;
use ringback_media::rtp::RtpSender;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const PT: u8 = 0;
const DTMF_PT: u8 = 101;
const TIMEOUT: Duration = Duration::from_secs(5);

fn receiver() -> (Receiver, Arc<StreamShared>, UnboundedReceiver<MediaEvent>) {
    let shared = Arc::new(StreamShared::default());
    let (tx, rx) = unbounded_channel();
    let digits = Digits {
        codec: Codec::Pcmu,
        pt: PT,
        dtmf_pt: Some(DTMF_PT),
    };
    let r = Receiver::new(Arc::clone(&shared), digits, None, Some(TIMEOUT), tx);
    (r, shared, rx)
}

fn audio(rtp: &mut RtpSender) -> Vec<u8> {
    let mut buf = [0u8; 200];
    let n = rtp.write(PT, &[0xFF; 160], &mut buf);
    buf[..n].to_vec()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn events(rx: &mut UnboundedReceiver<MediaEvent>) -> Vec<MediaEvent> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[test]
fn the_first_source_latches_and_another_takes_over_only_after_a_second_of_silence() {
    let (mut r, shared, _rx) = receiver();
    let mut rtp = RtpSender::new(1, 1, 1);
    let t0 = Instant::now();
    r.on_datagram(&audio(&mut rtp), addr(4000), t0);
    assert_eq!(*shared.remote.lock().unwrap(), Some(addr(4000)));
    assert_eq!(shared.received.load(Ordering::Relaxed), 1);
    // Another source while the first is alive: dropped, not latched.
    r.on_datagram(
        &audio(&mut rtp),
        addr(5000),
        t0 + Duration::from_millis(500),
    );
    assert_eq!(*shared.remote.lock().unwrap(), Some(addr(4000)));
    assert_eq!(shared.received.load(Ordering::Relaxed), 1);
    // The first one keeps going.
    r.on_datagram(
        &audio(&mut rtp),
        addr(4000),
        t0 + Duration::from_millis(600),
    );
    assert_eq!(shared.received.load(Ordering::Relaxed), 2);
    // Silent for RELATCH_AFTER: the new source takes over.
    let later = t0 + Duration::from_millis(600) + RELATCH_AFTER;
    r.on_datagram(&audio(&mut rtp), addr(5000), later);
    assert_eq!(*shared.remote.lock().unwrap(), Some(addr(5000)));
    assert_eq!(shared.received.load(Ordering::Relaxed), 3);
}

#[test]
fn garbage_is_ignored_and_counts_for_nothing() {
    let (mut r, shared, mut rx) = receiver();
    let now = Instant::now();
    for junk in [&b""[..], b"\x00", b"hello world, not RTP", &[0x80; 11]] {
        r.on_datagram(junk, addr(4000), now);
    }
    assert_eq!(shared.received.load(Ordering::Relaxed), 0);
    assert_eq!(*shared.remote.lock().unwrap(), None, "nothing latched");
    assert!(events(&mut rx).is_empty());
}

#[test]
fn silence_past_the_timeout_is_reported_once_and_again_after_media_resumes() {
    let (mut r, shared, mut rx) = receiver();
    let t0 = Instant::now();
    r.check_timeout(t0 + TIMEOUT - Duration::from_millis(20));
    assert!(events(&mut rx).is_empty());
    r.check_timeout(t0 + TIMEOUT);
    r.check_timeout(t0 + TIMEOUT + Duration::from_secs(1));
    assert_eq!(events(&mut rx), [MediaEvent::RtpTimeout], "once");
    // A packet re-arms it.
    let mut rtp = RtpSender::new(1, 1, 1);
    let t1 = t0 + TIMEOUT + Duration::from_secs(2);
    r.on_datagram(&audio(&mut rtp), addr(4000), t1);
    r.check_timeout(t1 + TIMEOUT);
    assert_eq!(events(&mut rx), [MediaEvent::RtpTimeout]);
    // On hold, silence does not count, and the count restarts on resume.
    let t2 = t1 + TIMEOUT + Duration::from_secs(1);
    r.on_datagram(&audio(&mut rtp), addr(4000), t2);
    shared.on_hold.store(true, Ordering::Relaxed);
    r.check_timeout(t2 + TIMEOUT * 3);
    shared.on_hold.store(false, Ordering::Relaxed);
    r.check_timeout(t2 + TIMEOUT * 3 + Duration::from_secs(1));
    assert!(
        events(&mut rx).is_empty(),
        "held, then resumed a second ago"
    );
    r.check_timeout(t2 + TIMEOUT * 4);
    assert_eq!(events(&mut rx), [MediaEvent::RtpTimeout]);
}

#[test]
fn an_rfc4733_key_is_one_digit_whatever_its_packets() {
    let (mut r, _shared, mut rx) = receiver();
    let mut rtp = RtpSender::new(1, 1, 8000);
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let mut send = |r: &mut Receiver, duration: u16, end: bool, marker: bool, ms: u64| {
        let ev = TelephoneEvent {
            event: 5,
            end,
            volume: 10,
            duration,
        };
        let n = rtp.write_telephone_event(DTMF_PT, 8000, &ev, marker, &mut buf);
        r.on_datagram(&buf[..n], addr(4000), t0 + Duration::from_millis(ms));
    };
    send(&mut r, 160, false, true, 0);
    send(&mut r, 320, false, false, 20);
    send(&mut r, 480, true, false, 40);
    send(&mut r, 480, true, false, 41);
    send(&mut r, 480, true, false, 42);
    assert_eq!(events(&mut rx), [MediaEvent::Digit('5')]);
}

#[test]
fn a_receiver_whose_call_is_gone_stops_quietly() {
    let (mut r, shared, rx) = receiver();
    drop(rx);
    let t0 = Instant::now();
    r.check_timeout(t0 + TIMEOUT);
    let mut rtp = RtpSender::new(1, 1, 1);
    r.on_datagram(&audio(&mut rtp), addr(4000), t0 + TIMEOUT);
    assert_eq!(
        shared.received.load(Ordering::Relaxed),
        0,
        "closed: nothing more is done"
    );
}
