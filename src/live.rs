//! What supervisors and agents see live: the context of every call waiting
//! for or talking to an agent, and today's counters (service level, abandon
//! rate, handle time, callbacks, 15-minute intervals).
//!
//! Counters live in memory and start from zero at midnight UTC and at a
//! restart; the durable record is the store (CDRs, queue log, callback
//! history), from which the repeat-call rate is computed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use serde::Serialize;

/// Calls answered within this many seconds count toward the service level.
pub const SERVICE_LEVEL_SECS: u64 = 20;

/// Context an agent gets about the caller in front of them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallContext {
    /// Caller's number.
    pub caller: String,
    /// Menu path.
    pub path: String,
    /// Digits entered.
    pub digits: String,
    /// When the caller first entered a queue.
    #[serde(skip)]
    pub entered_at: DateTime<Utc>,
    /// Calls from this number in the previous 7 days.
    pub repeat: Option<i64>,
    /// Callback id (callback attempts).
    pub callback_id: Option<String>,
    /// Callback notes (web form text, IVR path).
    pub callback_context: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct Day {
    day: Option<NaiveDate>,
    queued: u32,
    answered: u32,
    answered_in_sl: u32,
    abandoned: u32,
    handled: u32,
    handle_secs: u64,
    callbacks_completed: u32,
    callbacks_failed: u32,
    /// 15-minute interval start → (calls, total wait secs, answered).
    intervals: BTreeMap<DateTime<Utc>, (u32, u64, u32)>,
}

/// Shared live state.
#[derive(Default)]
pub struct Live {
    contexts: Mutex<HashMap<String, CallContext>>,
    day: Mutex<Day>,
}

/// Today's figures, as the dashboard shows them.
#[derive(Debug, Clone, Serialize)]
pub struct DayStats {
    /// Calls that entered a queue today.
    pub calls_today: u32,
    /// Answered within [`SERVICE_LEVEL_SECS`], of answered + abandoned.
    pub service_level_pct: Option<f64>,
    /// The service-level threshold.
    pub service_level_secs: u64,
    /// Abandoned while waiting, of answered + abandoned.
    pub abandon_rate_pct: Option<f64>,
    /// Average talk time of finished agent calls.
    pub avg_handle_secs: Option<u64>,
    /// Completed, of finished callback attempts that ended the callback.
    pub callback_completion_pct: Option<f64>,
    /// Filled in from the store by the API.
    pub repeat_call_rate_pct: Option<f64>,
    /// Callbacks completed today.
    pub callbacks_completed_today: u32,
    /// Callbacks that failed or expired today.
    pub callbacks_failed_today: u32,
    /// Calls and average wait per 15 minutes.
    pub intervals: Vec<Interval>,
}

/// One 15-minute bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// Start (RFC 3339).
    pub start: String,
    /// Calls queued in it.
    pub calls: u32,
    /// Average wait of the calls answered in it.
    pub avg_wait_secs: Option<u64>,
}

fn pct(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| (f64::from(part) * 1000.0 / f64::from(whole)).round() / 10.0)
}

fn bucket(t: DateTime<Utc>) -> DateTime<Utc> {
    let m = t.minute() - t.minute() % 15;
    t.with_minute(m)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

impl Live {
    fn today(&self) -> std::sync::MutexGuard<'_, Day> {
        let mut d = self.day.lock().unwrap_or_else(|p| p.into_inner());
        let today = Utc::now().date_naive();
        if d.day != Some(today) {
            *d = Day {
                day: Some(today),
                ..Day::default()
            };
        }
        d
    }

    /// A call is waiting for an agent (or a callback attempt started).
    pub fn queued(&self, call_id: &str, ctx: CallContext) {
        {
            let mut d = self.today();
            d.queued += 1;
            d.intervals.entry(bucket(Utc::now())).or_default().0 += 1;
        }
        self.contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(call_id.to_string(), ctx);
    }

    /// Update the stored context (e.g. the repeat count became known).
    pub fn update(&self, call_id: &str, f: impl FnOnce(&mut CallContext)) {
        if let Some(c) = self
            .contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(call_id)
        {
            f(c);
        }
    }

    /// An agent took the call after `waited` seconds.
    pub fn answered(&self, waited_secs: u64) {
        let mut d = self.today();
        d.answered += 1;
        if waited_secs <= SERVICE_LEVEL_SECS {
            d.answered_in_sl += 1;
        }
        let e = d.intervals.entry(bucket(Utc::now())).or_default();
        e.1 += waited_secs;
        e.2 += 1;
    }

    /// The caller hung up while waiting.
    pub fn abandoned(&self) {
        self.today().abandoned += 1;
    }

    /// An agent call ended after `talk_secs`.
    pub fn handled(&self, talk_secs: u64) {
        let mut d = self.today();
        d.handled += 1;
        d.handle_secs += talk_secs;
    }

    /// A callback ended for good (completed or not).
    pub fn callback_ended(&self, completed: bool) {
        let mut d = self.today();
        if completed {
            d.callbacks_completed += 1;
        } else {
            d.callbacks_failed += 1;
        }
    }

    /// The call is over: forget its context.
    pub fn gone(&self, call_id: &str) {
        self.contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(call_id);
    }

    /// The context of a call (for the agent handling it).
    pub fn context(&self, call_id: &str) -> Option<CallContext> {
        self.contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(call_id)
            .cloned()
    }

    /// Every call being waited on or handled, by call id.
    pub fn calls(&self) -> Vec<(String, CallContext)> {
        let mut v: Vec<_> = self
            .contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        v.sort_by_key(|(_, c)| c.entered_at);
        v
    }

    /// Today's figures.
    pub fn stats(&self) -> DayStats {
        let d = self.today().clone();
        let finished = d.answered + d.abandoned;
        DayStats {
            calls_today: d.queued,
            service_level_pct: pct(d.answered_in_sl, finished),
            service_level_secs: SERVICE_LEVEL_SECS,
            abandon_rate_pct: pct(d.abandoned, finished),
            avg_handle_secs: (d.handled > 0).then(|| d.handle_secs / u64::from(d.handled)),
            callback_completion_pct: pct(
                d.callbacks_completed,
                d.callbacks_completed + d.callbacks_failed,
            ),
            repeat_call_rate_pct: None,
            callbacks_completed_today: d.callbacks_completed,
            callbacks_failed_today: d.callbacks_failed,
            intervals: d
                .intervals
                .iter()
                .map(|(start, (calls, wait, answered))| Interval {
                    start: start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    calls: *calls,
                    avg_wait_secs: (*answered > 0).then(|| wait / u64::from(*answered)),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CallContext {
        CallContext {
            caller: "+1555".into(),
            path: "main".into(),
            digits: "0".into(),
            entered_at: Utc::now(),
            repeat: None,
            callback_id: None,
            callback_context: None,
        }
    }

    #[test]
    fn service_level_and_abandon_rate() {
        let live = Live::default();
        for i in 0..4 {
            live.queued(&format!("c{i}"), ctx());
        }
        live.answered(5);
        live.answered(60);
        live.answered(10);
        live.abandoned();
        let s = live.stats();
        assert_eq!(s.calls_today, 4);
        assert_eq!(s.service_level_pct, Some(50.0));
        assert_eq!(s.abandon_rate_pct, Some(25.0));
        assert_eq!(s.intervals.iter().map(|i| i.calls).sum::<u32>(), 4);
        live.handled(100);
        live.handled(200);
        assert_eq!(live.stats().avg_handle_secs, Some(150));
    }

    #[test]
    fn contexts_come_and_go() {
        let live = Live::default();
        live.queued("a", ctx());
        live.update("a", |c| c.repeat = Some(2));
        assert_eq!(live.context("a").and_then(|c| c.repeat), Some(2));
        live.gone("a");
        assert!(live.context("a").is_none());
        assert!(
            live.stats().service_level_pct.is_none(),
            "no finished call yet: no figure, not 0 %"
        );
    }
}
