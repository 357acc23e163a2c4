//! Admission control: which new work the server takes on, decided before any
//! of it is done.
//!
//! A telephony server under overload must protect the calls it already
//! carries: a caller mid-menu should keep perfect audio while the 10,001st
//! caller hears a fast 503 and retries elsewhere (RFC 3261 §21.5.4, with
//! `Retry-After`). Everything here is a plain state machine fed with the time
//! and a few load figures, so the endpoint task only asks and obeys, and the
//! rules are tested without sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;

/// Why a request is refused, and what to tell the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// SIP status (503 for overload).
    pub code: u16,
    /// Seconds for `Retry-After`.
    pub retry_after: u32,
    /// Label for metrics and logs.
    pub reason: &'static str,
}

impl Refusal {
    const fn overload(reason: &'static str, retry_after: u32) -> Refusal {
        Refusal {
            code: 503,
            retry_after,
            reason,
        }
    }
}

/// The load figures admission looks at, measured by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    /// Calls in progress.
    pub calls: usize,
    /// SIP transactions alive in the transaction layer.
    pub transactions: usize,
    /// Worst lateness of any media clock over the last second.
    pub media_lag: Duration,
    /// Busiest media clock thread's share of the last second, percent.
    pub media_load_pct: u8,
    /// Longest time a SIP datagram waited in the socket's receive queue
    /// over the last second or two: how far the signalling is behind.
    pub sip_delay: Duration,
    /// The node drains (`src/drain.rs`): no new calls at all.
    pub draining: bool,
}

/// The worst of a measurement over a rolling one-to-two-second window.
///
/// Why a window and not an average: one 400 ms stall is what makes a phone
/// retransmit, and an average would hide it among thousands of fast reads.
#[derive(Debug, Clone, Default)]
pub struct WorstRecent {
    current: Duration,
    previous: Duration,
    window_start: Option<Instant>,
}

impl WorstRecent {
    /// Record one measurement taken at `now`.
    pub fn record(&mut self, value: Duration, now: Instant) {
        self.roll(now);
        self.current = self.current.max(value);
    }

    /// The worst value of the current and the previous second.
    pub fn recent(&mut self, now: Instant) -> Duration {
        self.roll(now);
        self.current.max(self.previous)
    }

    fn roll(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let age = now.saturating_duration_since(start);
        if age >= Duration::from_secs(2) {
            self.previous = Duration::ZERO;
            self.current = Duration::ZERO;
            self.window_start = Some(now);
        } else if age >= Duration::from_secs(1) {
            self.previous = self.current;
            self.current = Duration::ZERO;
            self.window_start = Some(now);
        }
    }
}

/// A token bucket: `rate` per second, at most `burst` saved up.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Refill for the time since the last take, then take one if there is one.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `Retry-After` of a draining node's refusals: long enough that a phone
/// calling it directly does not come back before the node is gone.
const DRAINING_RETRY_AFTER_SECS: u32 = 60;

/// Per-source request budgets are forgotten this long after their last use.
const SOURCE_IDLE: Duration = Duration::from_secs(60);

/// At most this many sources are tracked; beyond it, idle ones are dropped
/// first and then the table is cleared (a spoofed-source flood must not
/// grow memory without bound).
const MAX_SOURCES: usize = 100_000;

/// The admission rules of one endpoint.
#[derive(Debug)]
pub struct Admission {
    limits: LimitsConfig,
    calls: Bucket,
    sources: HashMap<IpAddr, Bucket>,
}

impl Admission {
    /// Rules from the `[limits]` configuration, starting with full buckets.
    pub fn new(limits: LimitsConfig, now: Instant) -> Admission {
        let burst = call_burst(&limits);
        Admission {
            limits,
            calls: Bucket::full(burst, now),
            sources: HashMap::new(),
        }
    }

    /// May a new call (an out-of-dialog INVITE) start?
    ///
    /// Checked cheapest first. A refused INVITE costs one small response and
    /// no call task, RTP port or store row.
    pub fn admit_call(&mut self, load: Load, now: Instant) -> Result<(), Refusal> {
        self.overloaded(load)?;
        let l = &self.limits;
        if l.max_call_rate > 0.0
            && !self
                .calls
                .take(l.max_call_rate, call_burst(&self.limits), now)
        {
            return Err(Refusal::overload("max_call_rate", 1));
        }
        Ok(())
    }

    /// The load part of [`Admission::admit_call`], without taking from the
    /// call-rate budget: what the endpoint asks before it even parses an
    /// INVITE, so that an overloaded server refuses a new call for the cost
    /// of a header scan (the full check follows for the calls it lets in).
    pub fn overloaded(&self, load: Load) -> Result<(), Refusal> {
        let l = &self.limits;
        if load.draining {
            // A rolling upgrade: the caller (or the proxy in front) tries
            // another node at once; this one will not take calls again.
            return Err(Refusal::overload("draining", DRAINING_RETRY_AFTER_SECS));
        }
        if load.calls >= l.max_calls {
            return Err(Refusal::overload("max_calls", 5));
        }
        if l.max_transactions > 0 && load.transactions >= l.max_transactions {
            return Err(Refusal::overload("max_transactions", 2));
        }
        if l.max_sip_delay_ms > 0 && load.sip_delay >= Duration::from_millis(l.max_sip_delay_ms) {
            // Signalling is already behind: a new call would be answered
            // late and push the calls in progress into retransmissions.
            return Err(Refusal::overload("sip_delay", 2));
        }
        if l.max_media_lag_ms > 0 && load.media_lag >= Duration::from_millis(l.max_media_lag_ms) {
            // The media clocks are already late: one more stream would make
            // every caller's audio worse.
            return Err(Refusal::overload("media_lag", 2));
        }
        if l.max_media_load_pct > 0 && load.media_load_pct >= l.max_media_load_pct {
            // No headroom left on a media clock: one more stream and the
            // next burst of work would make it late.
            return Err(Refusal::overload("media_load", 2));
        }
        Ok(())
    }

    /// May a REGISTER from `ip` be processed? A registration flood from one
    /// source is cut off here before it costs a digest check. (INVITEs are
    /// not limited per source: a trunk legitimately sends every call from
    /// one address; the global call rate covers them.)
    pub fn admit_register(&mut self, ip: IpAddr, load: Load, now: Instant) -> Result<(), Refusal> {
        let l = &self.limits;
        if l.max_transactions > 0 && load.transactions >= l.max_transactions {
            return Err(Refusal::overload("max_transactions", 2));
        }
        if l.max_sip_delay_ms > 0 && load.sip_delay >= Duration::from_millis(l.max_sip_delay_ms) {
            return Err(Refusal::overload("sip_delay", 2));
        }
        let rate = l.max_registers_per_source;
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = rate.max(1.0) * 2.0;
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&ip) {
            self.sources
                .retain(|_, b| now.saturating_duration_since(b.at) < SOURCE_IDLE);
            if self.sources.len() >= MAX_SOURCES {
                self.sources.clear();
            }
        }
        let bucket = self
            .sources
            .entry(ip)
            .or_insert_with(|| Bucket::full(burst, now));
        if bucket.take(rate, burst, now) {
            Ok(())
        } else {
            Err(Refusal::overload("register_rate", 5))
        }
    }

    /// Forget sources idle for a while (called from housekeeping).
    pub fn expire(&mut self, now: Instant) {
        self.sources
            .retain(|_, b| now.saturating_duration_since(b.at) < SOURCE_IDLE);
    }

    /// Sources currently tracked.
    #[cfg(test)]
    fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

/// New calls allowed in one burst: a quarter second's worth, at least 10.
fn call_burst(l: &LimitsConfig) -> f64 {
    (l.max_call_rate / 4.0).max(10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_calls: 3,
            max_call_rate: 40.0,
            max_transactions: 100,
            max_media_lag_ms: 10,
            max_media_load_pct: 80,
            max_sip_delay_ms: 200,
            max_registers_per_source: 5.0,
            ..LimitsConfig::default()
        }
    }

    fn load(calls: usize) -> Load {
        Load {
            calls,
            ..Load::default()
        }
    }

    #[test]
    fn a_draining_node_refuses_every_new_call_but_not_registrations() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        let draining = Load {
            draining: true,
            ..Load::default()
        };
        let r = a.admit_call(draining, t).unwrap_err();
        assert_eq!((r.code, r.reason, r.retry_after), (503, "draining", 60));
        assert!(a
            .admit_register("127.0.0.1".parse().expect("ip"), draining, t)
            .is_ok());
    }

    #[test]
    fn call_limit_refuses_with_retry_after() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        assert!(a.admit_call(load(2), t).is_ok());
        let r = a.admit_call(load(3), t).unwrap_err();
        assert_eq!((r.code, r.reason), (503, "max_calls"));
        assert!(r.retry_after > 0);
    }

    #[test]
    fn call_rate_allows_a_burst_then_the_rate() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        // Burst of max(40/4, 10) = 10.
        let admitted = (0..50).filter(|_| a.admit_call(load(0), t).is_ok()).count();
        assert_eq!(admitted, 10);
        // One second later 40 more tokens, capped by the burst of 10.
        let t1 = t + Duration::from_secs(1);
        let admitted = (0..50)
            .filter(|_| a.admit_call(load(0), t1).is_ok())
            .count();
        assert_eq!(admitted, 10);
        // 25 ms at 40/s is one token.
        let t2 = t1 + Duration::from_millis(25);
        assert!(a.admit_call(load(0), t2).is_ok());
        assert_eq!(
            a.admit_call(load(0), t2).unwrap_err().reason,
            "max_call_rate"
        );
    }

    #[test]
    fn late_media_clock_refuses_new_calls_and_recovers() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        let late = Load {
            media_lag: Duration::from_millis(12),
            ..Load::default()
        };
        assert_eq!(a.admit_call(late, t).unwrap_err().reason, "media_lag");
        let fine = Load {
            media_lag: Duration::from_millis(3),
            ..Load::default()
        };
        assert!(a.admit_call(fine, t).is_ok());
    }

    #[test]
    fn busy_media_clock_refuses_new_calls() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        let busy = Load {
            media_load_pct: 85,
            ..Load::default()
        };
        assert_eq!(a.admit_call(busy, t).unwrap_err().reason, "media_load");
        let fine = Load {
            media_load_pct: 60,
            ..Load::default()
        };
        assert!(a.admit_call(fine, t).is_ok());
    }

    #[test]
    fn signalling_backlog_refuses_new_calls_and_registers() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        let behind = Load {
            sip_delay: Duration::from_millis(250),
            ..Load::default()
        };
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(a.admit_call(behind, t).unwrap_err().reason, "sip_delay");
        assert_eq!(
            a.admit_register(ip, behind, t).unwrap_err().reason,
            "sip_delay"
        );
        let fine = Load {
            sip_delay: Duration::from_millis(5),
            ..Load::default()
        };
        assert!(a.admit_call(fine, t).is_ok());
    }

    #[test]
    fn worst_recent_keeps_a_stall_for_one_to_two_seconds() {
        let t = Instant::now();
        let mut w = WorstRecent::default();
        w.record(Duration::from_millis(1), t);
        w.record(Duration::from_millis(400), t + Duration::from_millis(100));
        w.record(Duration::from_millis(2), t + Duration::from_millis(200));
        assert_eq!(
            w.recent(t + Duration::from_millis(300)),
            Duration::from_millis(400)
        );
        // Next second: still remembered as the previous window.
        w.record(Duration::from_millis(3), t + Duration::from_millis(1100));
        assert_eq!(
            w.recent(t + Duration::from_millis(1500)),
            Duration::from_millis(400)
        );
        // Two seconds on: forgotten.
        assert_eq!(
            w.recent(t + Duration::from_millis(2200)),
            Duration::from_millis(3)
        );
        assert_eq!(w.recent(t + Duration::from_millis(5000)), Duration::ZERO);
    }

    #[test]
    fn transaction_limit_applies_to_calls_and_sources() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        let full = Load {
            transactions: 100,
            ..Load::default()
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            a.admit_call(full, t).unwrap_err().reason,
            "max_transactions"
        );
        assert_eq!(
            a.admit_register(ip, full, t).unwrap_err().reason,
            "max_transactions"
        );
    }

    #[test]
    fn one_flooding_source_does_not_limit_another() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        let flood: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let ok = (0..100)
            .filter(|_| a.admit_register(flood, Load::default(), t).is_ok())
            .count();
        assert_eq!(ok, 10, "burst is twice the per-second rate");
        assert!(a.admit_register(other, Load::default(), t).is_ok());
        // The flooder gets 5 per second back.
        let later = t + Duration::from_secs(1);
        let ok = (0..100)
            .filter(|_| a.admit_register(flood, Load::default(), later).is_ok())
            .count();
        assert_eq!(ok, 5);
        a.expire(later + SOURCE_IDLE);
        assert_eq!(a.tracked_sources(), 0);
    }

    #[test]
    fn zero_disables_each_limit() {
        let t = Instant::now();
        let mut a = Admission::new(
            LimitsConfig {
                max_calls: usize::MAX,
                max_call_rate: 0.0,
                max_transactions: 0,
                max_media_lag_ms: 0,
                max_media_load_pct: 0,
                max_sip_delay_ms: 0,
                max_registers_per_source: 0.0,
                ..LimitsConfig::default()
            },
            t,
        );
        let heavy = Load {
            calls: 1_000_000,
            transactions: 1_000_000,
            media_lag: Duration::from_secs(1),
            media_load_pct: 100,
            sip_delay: Duration::from_secs(5),
            // Not a limit: a drain refuses calls whatever the limits say.
            draining: false,
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10_000 {
            assert!(a.admit_call(heavy, t).is_ok());
            assert!(a.admit_register(ip, heavy, t).is_ok());
        }
    }

    #[test]
    fn spoofed_source_flood_keeps_the_table_bounded() {
        let t = Instant::now();
        let mut a = Admission::new(limits(), t);
        for i in 0..(MAX_SOURCES as u32 + 10) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = a.admit_register(ip, Load::default(), t);
        }
        assert!(a.tracked_sources() <= MAX_SOURCES);
    }
}
