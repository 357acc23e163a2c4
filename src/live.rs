//! What supervisors and agents see live: the context of every call waiting
//! for or talking to an agent, and today's counters (service level, abandon
//! rate, handle time, callbacks, 15-minute intervals).
//!
//! "Today" is the local day of the configured zone (`stats.timezone`, UTC
//! by default): the counters start from zero at that zone's midnight. They
//! live in memory, counted as things happen; the durable record is the
//! store (queue log, callback history, call records), from which they are
//! rebuilt at start-up ([`Live::rebuild`]) and the repeat-call rate is
//! computed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Days, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::store::{DayRecord, Store};

/// Calls answered within this many seconds count toward the service level.
pub const SERVICE_LEVEL_SECS: u64 = 20;

/// Context an agent gets about the caller in front of them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallContext {
    /// Caller's number.
    pub caller: String,
    /// The caller's name, from the customer directory.
    pub caller_name: Option<String>,
    /// The caller's account id, from the customer directory.
    pub account: Option<String>,
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
pub struct Live {
    contexts: Mutex<HashMap<String, CallContext>>,
    day: Mutex<Day>,
    /// Whose midnight starts "today".
    tz: Tz,
}

impl Default for Live {
    fn default() -> Self {
        Live::new(Tz::UTC)
    }
}

/// The local day of `tz` that contains `t`, and its bounds as instants:
/// `[start, end)`, local midnight to the next local midnight (23 or 25
/// hours across a daylight-saving change; a midnight that does not exist
/// starts the day at the first minute that does).
pub fn local_day(tz: Tz, t: DateTime<Utc>) -> (NaiveDate, DateTime<Utc>, DateTime<Utc>) {
    let day = t.with_timezone(&tz).date_naive();
    let start = ringback_calendar::resolve(tz, day.and_time(chrono::NaiveTime::MIN));
    let end = day
        .checked_add_days(Days::new(1))
        .map_or(start + chrono::Duration::days(1), |next| {
            ringback_calendar::resolve(tz, next.and_time(chrono::NaiveTime::MIN))
        });
    (day, start, end)
}

/// Today's figures, as the dashboard shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Stats)]
pub struct DayStats {
    /// Calls that entered a queue today: each caller once (however many
    /// queues), each callback attempt once.
    pub calls_today: u32,
    /// Answered within `service_level_secs`, of answered + abandoned.
    #[schema(required = true)]
    pub service_level_pct: Option<f64>,
    /// The service-level threshold.
    pub service_level_secs: u64,
    /// Abandoned while waiting, of answered + abandoned.
    #[schema(required = true)]
    pub abandon_rate_pct: Option<f64>,
    /// Average talk time of finished agent calls.
    #[schema(required = true)]
    pub avg_handle_secs: Option<u64>,
    /// Completed, of finished callback attempts that ended the callback.
    #[schema(required = true)]
    pub callback_completion_pct: Option<f64>,
    /// Share of today's inbound calls whose caller also called in the
    /// previous 7 days (filled in from the store by the API).
    #[schema(required = true)]
    pub repeat_call_rate_pct: Option<f64>,
    /// Callbacks completed today.
    pub callbacks_completed_today: u32,
    /// Callbacks that failed or expired today.
    pub callbacks_failed_today: u32,
    /// Calls and average wait per 15 minutes.
    pub intervals: Vec<Interval>,
}

/// One 15-minute bucket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Interval {
    /// Start (RFC 3339).
    pub start: String,
    /// Calls queued in it.
    pub calls: u32,
    /// Average wait of the calls answered in it.
    #[schema(required = true)]
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
    /// Live state whose "today" is the local day of `tz`.
    pub fn new(tz: Tz) -> Live {
        Live {
            contexts: Mutex::default(),
            day: Mutex::default(),
            tz,
        }
    }

    /// When today began (local midnight of the configured zone, as UTC).
    pub fn day_start(&self) -> DateTime<Utc> {
        local_day(self.tz, Utc::now()).1
    }

    /// The counters of the day containing `now`: a new day starts from zero.
    fn day_at(&self, now: DateTime<Utc>) -> std::sync::MutexGuard<'_, Day> {
        let mut d = self.day.lock().unwrap_or_else(|p| p.into_inner());
        let today = now.with_timezone(&self.tz).date_naive();
        if d.day != Some(today) {
            *d = Day {
                day: Some(today),
                ..Day::default()
            };
        }
        d
    }

    /// Today's counters from the store: what happened since local midnight,
    /// replayed as if counted live. Called at start-up, before any call or
    /// callback can count anything.
    pub async fn rebuild(&self, store: &Store) -> anyhow::Result<DayStats> {
        self.rebuild_at(store, Utc::now()).await
    }

    async fn rebuild_at(&self, store: &Store, now: DateTime<Utc>) -> anyhow::Result<DayStats> {
        let (_, start, end) = local_day(self.tz, now);
        let record = store.day_record(start, end).await?;
        self.restore(now, &record);
        Ok(self.stats_at(now))
    }

    /// Replace the counters of the day containing `now` by `record` (whose
    /// events all lie in that day).
    fn restore(&self, now: DateTime<Utc>, record: &DayRecord) {
        {
            let mut d = self.day_at(now);
            *d = Day {
                day: d.day,
                ..Day::default()
            };
        }
        for t in &record.queued {
            self.count_queued(*t);
        }
        for (t, waited) in &record.answered {
            self.count_answered(*t, *waited);
        }
        for t in &record.abandoned {
            self.day_at(*t).abandoned += 1;
        }
        for (t, talk) in &record.handled {
            self.count_handled(*t, *talk);
        }
        for (t, completed) in &record.callbacks_ended {
            self.count_callback_ended(*t, *completed);
        }
    }

    fn count_queued(&self, now: DateTime<Utc>) {
        let mut d = self.day_at(now);
        d.queued += 1;
        d.intervals.entry(bucket(now)).or_default().0 += 1;
    }

    fn count_answered(&self, now: DateTime<Utc>, waited_secs: u64) {
        let mut d = self.day_at(now);
        d.answered += 1;
        if waited_secs <= SERVICE_LEVEL_SECS {
            d.answered_in_sl += 1;
        }
        let e = d.intervals.entry(bucket(now)).or_default();
        e.1 += waited_secs;
        e.2 += 1;
    }

    fn count_handled(&self, now: DateTime<Utc>, talk_secs: u64) {
        let mut d = self.day_at(now);
        d.handled += 1;
        d.handle_secs += talk_secs;
    }

    fn count_callback_ended(&self, now: DateTime<Utc>, completed: bool) {
        let mut d = self.day_at(now);
        if completed {
            d.callbacks_completed += 1;
        } else {
            d.callbacks_failed += 1;
        }
    }

    /// A call is waiting for an agent (or a callback attempt started).
    pub fn queued(&self, call_id: &str, ctx: CallContext) {
        self.count_queued(Utc::now());
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
        self.count_answered(Utc::now(), waited_secs);
    }

    /// The caller hung up while waiting.
    pub fn abandoned(&self) {
        self.day_at(Utc::now()).abandoned += 1;
    }

    /// An agent call ended after `talk_secs`.
    pub fn handled(&self, talk_secs: u64) {
        self.count_handled(Utc::now(), talk_secs);
    }

    /// A callback ended for good (completed or not).
    pub fn callback_ended(&self, completed: bool) {
        self.count_callback_ended(Utc::now(), completed);
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
        self.stats_at(Utc::now())
    }

    /// The figures of the day containing `now`.
    fn stats_at(&self, now: DateTime<Utc>) -> DayStats {
        let d = self.day_at(now).clone();
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
            caller_name: None,
            account: None,
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

    fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 1, d, h, m, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn the_day_is_the_local_day_of_the_zone() {
        use chrono_tz::Europe::Berlin;
        let date = |d| NaiveDate::from_ymd_opt(2026, 1, d).expect("date");
        // 23:30 UTC is 00:30 the next day in Berlin (UTC+1 in winter).
        assert_eq!(
            local_day(Berlin, utc(14, 23, 30)),
            (date(15), utc(14, 23, 0), utc(15, 23, 0))
        );
        assert_eq!(
            local_day(Tz::UTC, utc(14, 23, 30)),
            (date(14), utc(14, 0, 0), utc(15, 0, 0))
        );
        // Spring forward: Berlin's 2026-03-29 has 23 hours.
        let t = utc(1, 12, 0) + chrono::Duration::days(87);
        let (day, start, end) = local_day(Berlin, t);
        assert_eq!(day, NaiveDate::from_ymd_opt(2026, 3, 29).expect("date"));
        assert_eq!(end - start, chrono::Duration::hours(23));
        assert_eq!(start.to_rfc3339(), "2026-03-28T23:00:00+00:00");
    }

    #[test]
    fn counters_roll_over_at_local_midnight() {
        let berlin = Live::new(chrono_tz::Europe::Berlin);
        let utc_live = Live::default();
        for live in [&berlin, &utc_live] {
            live.count_queued(utc(14, 22, 30));
            live.count_callback_ended(utc(14, 22, 40), true);
            live.count_queued(utc(14, 23, 30));
        }
        // In Berlin 23:30 UTC is already the 15th: a new day, from zero.
        let s = berlin.stats_at(utc(14, 23, 31));
        assert_eq!(
            (s.calls_today, s.callbacks_completed_today),
            (1, 0),
            "{s:?}"
        );
        // In UTC all three are on the 14th.
        let s = utc_live.stats_at(utc(14, 23, 31));
        assert_eq!((s.calls_today, s.callbacks_completed_today), (2, 1));
        assert_eq!(utc_live.stats_at(utc(15, 0, 0)).calls_today, 0);
    }

    /// A call queued at 23:30 UTC belongs to the next day in Berlin, in the
    /// figures rebuilt from the store as in those counted live.
    #[tokio::test]
    async fn rebuild_takes_the_local_day_from_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.expect("connect");
        let row = |t, call: &str, event: &str, data: &str| crate::store::QueueLogRow {
            at: t,
            queue: Some("operator".into()),
            call_id: Some(call.into()),
            agent: None,
            event: event.into(),
            data: data.into(),
        };
        store
            .record_logs(
                &[],
                &[
                    row(utc(14, 22, 0), "early", "ENTERQUEUE", "|+1|1"),
                    row(utc(14, 22, 1), "early", "ABANDON", "1|1|60"),
                    row(utc(14, 23, 30), "late", "ENTERQUEUE", "|+2|1"),
                    row(utc(14, 23, 30), "late", "CONNECT", "5||2|5"),
                    row(utc(14, 23, 40), "late", "COMPLETECALLER", "5|600"),
                ],
                "node-1",
            )
            .await
            .expect("queue log");
        let berlin = Live::new(chrono_tz::Europe::Berlin);
        let s = berlin
            .rebuild_at(&store, utc(15, 8, 0))
            .await
            .expect("rebuild");
        assert_eq!(s.calls_today, 1, "only the 23:30 UTC call is on the 15th");
        assert_eq!(s.abandon_rate_pct, Some(0.0));
        assert_eq!(s.service_level_pct, Some(100.0));
        assert_eq!(s.avg_handle_secs, Some(600));
        assert_eq!(s.intervals.len(), 1);
        assert_eq!(s.intervals[0].start, "2026-01-14T23:30:00Z");
        assert_eq!(s.intervals[0].avg_wait_secs, Some(5));
        // Counting goes on from the rebuilt figures.
        berlin.count_queued(utc(15, 8, 1));
        assert_eq!(berlin.stats_at(utc(15, 8, 2)).calls_today, 2);

        let in_utc = Live::default();
        let s = in_utc
            .rebuild_at(&store, utc(15, 8, 0))
            .await
            .expect("rebuild");
        assert_eq!(s.calls_today, 0, "in UTC both calls were yesterday");
        let s = in_utc
            .rebuild_at(&store, utc(14, 23, 59))
            .await
            .expect("rebuild");
        assert_eq!(s.calls_today, 2);
        assert_eq!(s.abandon_rate_pct, Some(50.0));
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
