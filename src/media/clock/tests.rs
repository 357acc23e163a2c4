use super::*;

#[test]
fn shared_silence_is_each_codecs_encoded_zero() {
    for c in [Codec::Pcmu, Codec::Pcma] {
        assert!(silence(c).iter().all(|&b| b == c.silence_byte()), "{c:?}");
    }
}

#[test]
fn governor_drops_real_time_when_overloaded_and_restores_it_with_headroom() {
    let mut g = RtGovernor {
        priority: 10,
        realtime: true,
    };
    assert_eq!(g.on_window(50), None);
    assert_eq!(g.on_window(89), None);
    assert_eq!(g.on_window(95), Some(false), "overloaded: demote");
    assert_eq!(g.on_window(95), None, "already demoted");
    assert_eq!(g.on_window(80), None, "hysteresis: not yet");
    assert_eq!(g.on_window(70), Some(true), "headroom: restore");
    assert!(g.realtime);
    // Never switches when real-time scheduling was not granted.
    let mut off = RtGovernor {
        priority: 0,
        realtime: false,
    };
    assert_eq!(off.on_window(100), None);
    assert_eq!(off.on_window(0), None);
}

#[test]
fn busy_share_and_lateness_roll_per_window() {
    let st = ClockStats::default();
    st.record_late(300);
    st.record_late(5_000);
    assert_eq!(st.recent_late_us(), 5_000);
    st.roll_window(Duration::from_millis(250), Duration::from_secs(1));
    assert_eq!(st.last_window_busy_pct.load(Ordering::Relaxed), 25);
    // The previous window still counts for a second...
    assert_eq!(st.recent_late_us(), 5_000);
    st.roll_window(Duration::ZERO, Duration::from_secs(1));
    // ...and is forgotten after that.
    assert_eq!(st.recent_late_us(), 0);
    assert_eq!(st.max_late_us.load(Ordering::Relaxed), 5_000);
}
