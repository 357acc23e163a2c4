//! Scheduler rules, one test per rule, with a synthetic clock.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid")
}

/// Mon 2026-11-23 15:00 UTC (10:00 in New York).
fn t0() -> DateTime<Utc> {
    utc(2026, 11, 23, 15, 0)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn req(id: &str, queue: &str, number: &str, entered_at: DateTime<Utc>) -> NewCallback {
    NewCallback {
        id: id.into(),
        queue: queue.into(),
        number: number.into(),
        entered_at,
        preferred: None,
        not_before: None,
        context: "menu 2 > billing".into(),
        origin: Origin::Ivr,
    }
}

fn sched(default: Policy) -> Scheduler {
    Scheduler::new(HashMap::new(), default)
}

fn policy(toml_text: &str) -> Policy {
    toml::from_str(toml_text).expect("policy")
}

/// New York, weekdays 09:00-18:00, Christmas off.
fn ny(extra: &str) -> Policy {
    policy(&format!(
        "timezone = \"America/New_York\"\nwindow = [{{ days = \"mon-fri\", from = \"09:00\", to = \"18:00\" }}]\nholidays = [\"2026-12-25\"]\n{extra}"
    ))
}

fn ok(s: &mut Scheduler, r: NewCallback, now: DateTime<Utc>) -> Callback {
    let id = r.id.clone();
    let (cb, ts) = s.request(r, now).unwrap_or_else(|e| panic!("{id}: {e}"));
    assert_eq!(ts.len(), 1);
    assert_eq!(
        (ts[0].from, ts[0].to),
        (CallbackState::Requested, CallbackState::Scheduled)
    );
    cb
}

fn ids(cbs: &[Callback]) -> Vec<&str> {
    cbs.iter().map(|c| c.id.as_str()).collect()
}

/// Hands out and dials `id` at `now`.
fn dial(s: &mut Scheduler, id: &str, now: DateTime<Utc>) -> Transition {
    if !s.is_handed_out(id) {
        let got = s.eligible(now);
        assert!(got.iter().any(|c| c.id == id), "{id} not eligible at {now}");
    }
    s.dialing(id, now).expect("dialing")
}

fn finish(s: &mut Scheduler, id: &str, r: AttemptResult, now: DateTime<Utc>) -> Transition {
    let mut ts = s.finished(id, r, now).expect("finished");
    assert_eq!(ts.len(), 1);
    ts.remove(0)
}

#[test]
fn request_is_scheduled_with_a_transition() {
    let mut s = sched(Policy::default());
    let entered = t0() - secs(300);
    let (cb, ts) = s
        .request(req("a", "sales", "+1 (555) 123-4567", entered), t0())
        .expect("accepted");
    assert_eq!(cb.number, "+15551234567");
    assert_eq!(cb.state, CallbackState::Scheduled);
    assert_eq!(cb.entered_at, entered);
    assert_eq!(cb.created_at, t0());
    assert_eq!(cb.attempts, 0);
    assert_eq!(cb.next_attempt_at, Some(t0()));
    assert_eq!(cb.expires_at, t0() + TimeDelta::hours(24));
    assert_eq!(ts[0].id, "a");
    assert_eq!(ts[0].attempt, 0);
    assert_eq!(ts[0].at, t0());
    assert_eq!(ts[0].reason, "ivr request accepted; dialing allowed now");
    assert_eq!(s.get("a"), Some(&cb));
    assert_eq!(s.pending_in_queue("sales"), 1);
    assert_eq!(s.poll_timeout(t0()), Some(t0()));
}

#[test]
fn eligible_orders_by_place_in_line_and_hands_out_once() {
    let mut s = sched(Policy::default());
    // Requested in the order c, a, b, but a entered the queue first.
    ok(&mut s, req("c", "q", "+15550000003", t0() - secs(10)), t0());
    ok(
        &mut s,
        req("a", "q", "+15550000001", t0() - secs(900)),
        t0(),
    );
    ok(&mut s, req("b", "q", "+15550000002", t0() - secs(60)), t0());
    let got = s.eligible(t0());
    assert_eq!(ids(&got), ["a", "b", "c"]);
    assert_eq!(got[0].entered_at, t0() - secs(900));
    assert!(s.eligible(t0() + secs(1)).is_empty(), "handed out once");
    assert!(s.is_handed_out("a"));
    // Nothing to wake up for but expiry.
    assert_eq!(s.poll_timeout(t0()), Some(t0() + TimeDelta::hours(24)));
    // A retried callback keeps its place in line.
    dial(&mut s, "a", t0());
    finish(&mut s, "a", AttemptResult::CustomerBusy, t0() + secs(30));
    let got = s.eligible(t0() + secs(150));
    assert_eq!(ids(&got), ["a"]);
    assert_eq!(got[0].entered_at, t0() - secs(900));
}

#[test]
fn agent_lost_goes_back_to_the_head_uncounted() {
    let mut s = sched(Policy::default());
    ok(
        &mut s,
        req("old", "q", "+15550000001", t0() - secs(600)),
        t0(),
    );
    ok(
        &mut s,
        req("new", "q", "+15550000002", t0() - secs(60)),
        t0(),
    );
    assert_eq!(ids(&s.eligible(t0())), ["old", "new"]);
    let d = s.dialing("old", t0() + secs(5)).expect("dialing");
    assert_eq!(
        (d.from, d.to, d.attempt),
        (CallbackState::Scheduled, CallbackState::Dialing, 1)
    );
    let t = finish(&mut s, "old", AttemptResult::AgentLost, t0() + secs(20));
    assert_eq!(
        (t.from, t.to),
        (CallbackState::Dialing, CallbackState::Scheduled)
    );
    assert_eq!(t.attempt, 0, "agent lost is not an attempt");
    assert_eq!(t.result, Some(AttemptResult::AgentLost));
    assert_eq!(t.next_attempt_at, Some(t0() + secs(20)));
    let cb = s.get("old").expect("live");
    assert_eq!(cb.entered_at, t0() - secs(600));
    assert_eq!(cb.last_result, Some(AttemptResult::AgentLost));
    // Immediately eligible again, ahead of everything newer.
    ok(
        &mut s,
        req("newest", "q", "+15550000003", t0()),
        t0() + secs(20),
    );
    assert_eq!(s.poll_timeout(t0() + secs(20)), Some(t0() + secs(20)));
    assert_eq!(ids(&s.eligible(t0() + secs(20))), ["old", "newest"]);
}

#[test]
fn backoff_schedule_is_exact_and_capped() {
    let mut s = sched(policy("max_attempts = 7"));
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    let mut now = t0();
    let mut delays = Vec::new();
    for n in 1..=6 {
        let d = dial(&mut s, "a", now);
        assert_eq!(d.attempt, n);
        let end = now + secs(25);
        let t = finish(&mut s, "a", AttemptResult::CustomerNoAnswer, end);
        assert_eq!(t.to, CallbackState::RetryWait);
        let next = t.next_attempt_at.expect("retry time");
        delays.push((next - end).num_seconds());
        // Not eligible a second early; eligible at the exact time.
        assert!(s.eligible(next - secs(1)).is_empty());
        assert_eq!(s.poll_timeout(next - secs(1)), Some(next));
        now = next;
    }
    assert_eq!(delays, [120, 240, 480, 960, 1800, 1800]);
    dial(&mut s, "a", now);
    let t = finish(&mut s, "a", AttemptResult::CustomerBusy, now + secs(5));
    assert_eq!(t.to, CallbackState::Failed);
    assert_eq!(t.attempt, 7);
}

#[test]
fn max_attempts_then_failed_and_the_slot_is_free() {
    let mut s = sched(Policy::default());
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    let results = [
        AttemptResult::CustomerBusy,
        AttemptResult::CustomerNoAcceptance,
        AttemptResult::Failed("503 Service Unavailable".into()),
    ];
    let mut now = t0();
    let mut last = None;
    for r in results {
        dial(&mut s, "a", now);
        let t = finish(&mut s, "a", r, now + secs(10));
        now = t.next_attempt_at.unwrap_or(now);
        last = Some(t);
    }
    let t = last.expect("three attempts");
    assert_eq!(
        (t.from, t.to, t.attempt),
        (CallbackState::Dialing, CallbackState::Failed, 3)
    );
    assert_eq!(
        t.reason,
        "failed: 503 Service Unavailable; no attempts left (3 of 3)"
    );
    assert!(s.get("a").is_none() && s.pending_in_queue("q") == 0);
    assert!(s.live_for_number("+15550000001", "q").is_none());
    ok(&mut s, req("a2", "q", "+15550000001", now), now);
}

#[test]
fn declined_cancels_and_completed_completes() {
    let mut s = sched(Policy::default());
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    ok(&mut s, req("b", "q", "+15550000002", t0()), t0());
    dial(&mut s, "a", t0());
    let t = finish(
        &mut s,
        "a",
        AttemptResult::CustomerDeclined,
        t0() + secs(20),
    );
    assert_eq!((t.to, t.attempt), (CallbackState::Cancelled, 1));
    assert_eq!(t.reason, "customer declined (pressed 2)");

    dial(&mut s, "b", t0());
    let c = s.connected("b", t0() + secs(15)).expect("connected");
    assert_eq!(
        (c.from, c.to),
        (CallbackState::Dialing, CallbackState::Connected)
    );
    let t = finish(&mut s, "b", AttemptResult::Completed, t0() + secs(300));
    assert_eq!(
        (t.from, t.to, t.attempt),
        (CallbackState::Connected, CallbackState::Completed, 1)
    );
    assert_eq!(s.live().count(), 0);
}

#[test]
fn illegal_inputs_are_refused_without_change() {
    let mut s = sched(Policy::default());
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    let before = s.get("a").cloned();
    let illegal = |e: CallbackError| matches!(e, CallbackError::IllegalTransition { .. });
    assert_eq!(
        s.dialing("a", t0()),
        Err(CallbackError::NotHandedOut("a".into()))
    );
    assert!(illegal(s.connected("a", t0()).unwrap_err()));
    assert!(illegal(
        s.finished("a", AttemptResult::CustomerBusy, t0())
            .unwrap_err()
    ));
    assert_eq!(s.get("a").cloned(), before);
    assert!(matches!(
        s.dialing("zzz", t0()),
        Err(CallbackError::Unknown(_))
    ));
    dial(&mut s, "a", t0());
    let e = s.finished("a", AttemptResult::Completed, t0()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "callback `a`: cannot complete (the customer was never connected) while dialing"
    );
    assert!(illegal(s.cancel("a", "caller asked", t0()).unwrap_err()));
    assert!(illegal(s.reschedule("a", t0(), t0()).unwrap_err()));
    assert!(illegal(s.dialing("a", t0()).unwrap_err()));
    s.connected("a", t0()).expect("connected");
    assert!(illegal(s.connected("a", t0()).unwrap_err()));
    assert!(illegal(
        s.finished("a", AttemptResult::AgentLost, t0()).unwrap_err()
    ));
    assert_eq!(s.get("a").map(|c| c.state), Some(CallbackState::Connected));
    // A dropped bridge is a failed attempt: retried.
    let t = finish(
        &mut s,
        "a",
        AttemptResult::Failed("BYE from trunk".into()),
        t0() + secs(9),
    );
    assert_eq!(t.to, CallbackState::RetryWait);
    // Ended callbacks are unknown afterwards.
    s.cancel("a", "", t0() + secs(10)).expect("cancel");
    assert!(matches!(
        s.cancel("a", "", t0()),
        Err(CallbackError::Unknown(_))
    ));
}

#[test]
fn expiry() {
    let mut s = sched(policy("expire_after_hours = 2"));
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    ok(&mut s, req("b", "q", "+15550000002", t0()), t0() + secs(60));
    s.eligible(t0() + secs(60));
    let exp = t0() + TimeDelta::hours(2);
    assert_eq!(s.poll_timeout(t0() + secs(60)), Some(exp));
    assert!(s.expire(exp - secs(1)).is_empty());
    // b is being dialed at a's expiry: left to its attempt.
    s.dialing("b", exp - secs(30)).expect("dialing");
    let ts = s.expire(exp);
    assert_eq!(ts.len(), 1);
    assert_eq!(
        (ts[0].id.as_str(), ts[0].from, ts[0].to),
        ("a", CallbackState::Scheduled, CallbackState::Expired)
    );
    assert!(s.get("a").is_none());
    // b's attempt fails after its expiry: expired, not retried.
    let t = finish(&mut s, "b", AttemptResult::CustomerBusy, exp + secs(90));
    assert_eq!(t.to, CallbackState::Expired);
    assert!(
        t.reason.starts_with("busy; no dialing time left"),
        "{}",
        t.reason
    );
    assert_eq!(s.poll_timeout(exp + secs(90)), None);
}

#[test]
fn retry_that_would_land_after_expiry_expires_now() {
    let mut s = sched(policy(
        "expire_after_hours = 1\nretry_after_secs = 1800\nretry_max_secs = 3600",
    ));
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    dial(&mut s, "a", t0());
    let t = finish(&mut s, "a", AttemptResult::CustomerBusy, t0() + secs(60));
    assert_eq!(t.to, CallbackState::RetryWait);
    dial(&mut s, "a", t.next_attempt_at.expect("retry"));
    // Second retry would be at +3600 s from ~+1860 s: past the 1 h expiry.
    let t = finish(
        &mut s,
        "a",
        AttemptResult::CustomerNoAnswer,
        t0() + secs(1900),
    );
    assert_eq!(t.to, CallbackState::Expired);
}

#[test]
fn closed_window_waits_for_the_next_opening_in_the_queue_zone() {
    let mut policies = HashMap::new();
    policies.insert("ny".to_owned(), ny("expire_after_hours = 72"));
    let mut s = Scheduler::new(policies, Policy::default());
    // Fri 2026-11-27 19:00 EST = Sat 00:00 UTC.
    let fri_evening = utc(2026, 11, 28, 0, 0);
    let cb = ok(
        &mut s,
        req("a", "ny", "+15550000001", fri_evening),
        fri_evening,
    );
    let monday_9 = utc(2026, 11, 30, 14, 0);
    assert_eq!(cb.next_attempt_at, Some(monday_9));
    assert!(s.eligible(fri_evening).is_empty());
    assert_eq!(s.poll_timeout(fri_evening), Some(monday_9));
    assert!(s.eligible(monday_9 - secs(1)).is_empty());
    assert_eq!(ids(&s.eligible(monday_9)), ["a"]);
    // Another queue without a window: any time.
    let cb = ok(
        &mut s,
        req("b", "other", "+15550000002", fri_evening),
        fri_evening,
    );
    assert_eq!(cb.next_attempt_at, Some(fri_evening));

    // With the default 24 h expiry the weekend swallows the request: refused.
    let mut s = sched(ny(""));
    let e = s
        .request(req("c", "q", "+15550000003", fri_evening), fri_evening)
        .unwrap_err();
    assert_eq!(e.code(), "no_dialing_time");
    assert_eq!(
        e.to_string(),
        "no time to call back: dialing is not allowed at any time before the request would expire (2026-11-29T00:00:00Z)"
    );
}

#[test]
fn holidays_and_dst_day() {
    let mut s = sched(ny("expire_after_hours = 120"));
    // Thu 2026-12-24 19:00 EST: Fri is Christmas, then the weekend.
    let xmas_eve = utc(2026, 12, 25, 0, 0);
    let cb = ok(&mut s, req("a", "q", "+15550000001", xmas_eve), xmas_eve);
    assert_eq!(cb.next_attempt_at, Some(utc(2026, 12, 28, 14, 0)));

    // Daily 09:00 New York on the day DST starts (Sun 2026-03-08): 13:00 UTC.
    let mut s = sched(policy(
        "timezone = \"America/New_York\"\nwindow = [{ days = \"daily\", from = \"09:00\", to = \"18:00\" }]",
    ));
    let sat_night = utc(2026, 3, 8, 3, 0);
    let cb = ok(&mut s, req("b", "q", "+15550000002", sat_night), sat_night);
    assert_eq!(cb.next_attempt_at, Some(utc(2026, 3, 8, 13, 0)));
    // ... and closes at 18:00 EDT = 22:00 UTC.
    assert_eq!(ids(&s.eligible(utc(2026, 3, 8, 13, 0))), ["b"]);
    assert_eq!(
        s.poll_timeout(utc(2026, 3, 8, 13, 0)),
        Some(utc(2026, 3, 8, 22, 0))
    );
}

#[test]
fn retry_after_closing_time_moves_to_the_next_morning() {
    let mut s = sched(ny(""));
    // Mon 17:55 EST = 22:55 UTC.
    let late = utc(2026, 11, 23, 22, 55);
    ok(&mut s, req("a", "q", "+15550000001", late), late);
    dial(&mut s, "a", late);
    let t = finish(&mut s, "a", AttemptResult::CustomerBusy, late + secs(60));
    // 17:56 + 120 s = 17:58: still open.
    assert_eq!(t.next_attempt_at, Some(late + secs(180)));
    dial(&mut s, "a", late + secs(180));
    let t = finish(&mut s, "a", AttemptResult::CustomerBusy, late + secs(200));
    // 17:58:20 + 240 s = 18:02:20: closed → Tue 09:00 EST.
    assert_eq!(t.next_attempt_at, Some(utc(2026, 11, 24, 14, 0)));
    assert!(
        t.reason.contains("attempt 3 of 3 at 2026-11-24T14:00:00Z"),
        "{}",
        t.reason
    );
}

#[test]
fn handed_out_callbacks_are_withdrawn_when_the_window_closes() {
    let mut s = sched(ny(""));
    let before_close = utc(2026, 11, 23, 22, 50); // 17:50 EST
    let close = utc(2026, 11, 23, 23, 0);
    ok(
        &mut s,
        req("a", "q", "+15550000001", before_close),
        before_close,
    );
    ok(
        &mut s,
        req("b", "q", "+15550000002", before_close),
        before_close,
    );
    assert_eq!(s.eligible(before_close).len(), 2);
    assert_eq!(s.poll_timeout(before_close), Some(close));
    assert!(s.withdraw(close - secs(1)).is_empty());
    // The shell was late for a: dialing is refused and withdraws it.
    let e = s.dialing("a", close + secs(30)).unwrap_err();
    let tue_9 = utc(2026, 11, 24, 14, 0);
    assert_eq!(
        e,
        CallbackError::OutsideWindow {
            id: "a".into(),
            next: Some(tue_9)
        }
    );
    assert!(!s.is_handed_out("a"));
    assert_eq!(s.withdraw(close), ["b"]);
    assert_eq!(s.poll_timeout(close), Some(tue_9));
    assert!(s.eligible(close).is_empty());
    assert_eq!(s.eligible(tue_9).len(), 2);
    assert_eq!(s.get("a").map(|c| c.attempts), Some(0));
}

#[test]
fn preferred_window_is_respected() {
    let mut s = sched(Policy::default());
    let start = t0() + TimeDelta::hours(2);
    let end = t0() + TimeDelta::hours(3);
    let mut r = req("a", "q", "+15550000001", t0());
    r.preferred = Some((start, end));
    r.origin = Origin::Web;
    let cb = ok(&mut s, r, t0());
    assert_eq!(cb.next_attempt_at, Some(start));
    assert_eq!(cb.expires_at, end, "expires with the preferred window");
    assert!(s.eligible(start - secs(1)).is_empty());
    assert_eq!(s.eligible(start).len(), 1);
    assert_eq!(s.poll_timeout(start), Some(end));
    // A retry past the window's end: nothing left → expired.
    dial(&mut s, "a", end - secs(100));
    let t = finish(&mut s, "a", AttemptResult::CustomerNoAnswer, end - secs(60));
    assert_eq!(t.to, CallbackState::Expired);

    // Preferred window ∩ dialing window: a window of 08:00-10:00 New York
    // with dialing from 09:00 is dialed from 09:00.
    let mut s = sched(ny(""));
    let mut r = req("b", "q", "+15550000002", t0());
    let sunday = utc(2026, 11, 22, 20, 0);
    r.preferred = Some((utc(2026, 11, 23, 13, 0), utc(2026, 11, 23, 15, 0)));
    let cb = ok(&mut s, r, sunday);
    assert_eq!(cb.next_attempt_at, Some(utc(2026, 11, 23, 14, 0)));

    // Refusals.
    let mut s = sched(Policy::default());
    let bad = |s: &mut Scheduler, p: (DateTime<Utc>, DateTime<Utc>)| {
        let mut r = req("x", "q", "+15550000009", t0());
        r.preferred = Some(p);
        s.request(r, t0()).unwrap_err()
    };
    let e = bad(&mut s, (t0() + secs(60), t0()));
    assert!(
        e.to_string()
            .contains("ends (2026-11-23T15:00:00Z) before it starts"),
        "{e}"
    );
    let e = bad(&mut s, (t0() - secs(600), t0() - secs(60)));
    assert!(e.to_string().contains("already over"), "{e}");
    let e = bad(
        &mut s,
        (t0() + TimeDelta::hours(30), t0() + TimeDelta::hours(31)),
    );
    assert_eq!(e.code(), "invalid_window");
    // Preferred window on Saturday, dialing on weekdays only: no time.
    let mut s = sched(ny("expire_after_hours = 168"));
    let e = bad(&mut s, (utc(2026, 11, 28, 15, 0), utc(2026, 11, 28, 18, 0)));
    assert_eq!(e.code(), "no_dialing_time");
    assert_eq!(s.live().count(), 0, "a refusal stores nothing");
}

#[test]
fn dedupe_one_live_callback_per_number_and_queue() {
    let mut s = sched(Policy::default());
    ok(&mut s, req("a", "sales", "+1 555 000 0001", t0()), t0());
    let e = s
        .request(req("b", "sales", "+1-555-000-0001", t0()), t0())
        .unwrap_err();
    assert_eq!(
        e,
        Refusal::Duplicate {
            existing_id: "a".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "a callback to this number is already pending in this queue (id a)"
    );
    assert_eq!(s.check("sales", "(+1) 555.000.0001", t0()), Err(e));
    assert_eq!(
        s.live_for_number("+1 (555) 000-0001", "sales")
            .map(|c| c.id.as_str()),
        Some("a")
    );
    // Another queue is another promise.
    ok(&mut s, req("c", "support", "+15550000001", t0()), t0());
    // Once it ends, the number may ask again.
    s.cancel("a", "caller called back in", t0())
        .expect("cancel");
    ok(&mut s, req("d", "sales", "+15550000001", t0()), t0());
    // Reused id.
    assert_eq!(
        s.request(req("d", "sales", "+15550000002", t0()), t0()),
        Err(Refusal::IdInUse("d".into()))
    );
}

#[test]
fn deny_and_allow_patterns() {
    let s = sched(Policy::default());
    let denied = |n: &str| match s.check("q", n, t0()) {
        Err(Refusal::Denied { pattern }) => pattern,
        other => panic!("{n}: {other:?}"),
    };
    assert_eq!(denied("+1 900 555 0100"), "+1900*");
    assert_eq!(denied("1-900-555-0100"), "1900*");
    assert_eq!(denied("(900) 555-0100"), "900XXXXXXX");
    assert_eq!(denied("+1 976 555 0100"), "+1976*");
    assert_eq!(denied("00 44 20 7946 0958"), "00*");
    assert_eq!(denied("011 44 20 7946 0958"), "011*");
    assert_eq!(denied("+882 1234 5678"), "+882*");
    assert_eq!(
        s.check("q", "+1 555 123 4567", t0()).as_deref(),
        Ok("+15551234567")
    );
    assert_eq!(
        s.check("q", "0201 234567", t0()).as_deref(),
        Ok("0201234567")
    );
    let e = s.check("q", "+19005550100", t0()).unwrap_err();
    assert_eq!(e.code(), "denied");
    assert_eq!(
        e.to_string(),
        "calls to this number are not allowed (blocked by pattern \"+1900*\": premium-rate, international or denied by configuration)"
    );

    let s = sched(policy("allow = [\"+1*\", \"0*\"]\ndeny = [\"+1555000*\"]"));
    assert_eq!(
        s.check("q", "+44 20 7946 0958", t0()),
        Err(Refusal::NotAllowed)
    );
    assert_eq!(
        s.check("q", "+1 555 123 4567", t0()).as_deref(),
        Ok("+15551234567")
    );
    assert_eq!(
        s.check("q", "0201234567", t0()).as_deref(),
        Ok("0201234567")
    );
    // Deny wins over allow; built-in list still applies.
    assert!(matches!(
        s.check("q", "+15550001234", t0()),
        Err(Refusal::Denied { .. })
    ));
    assert!(matches!(
        s.check("q", "+19005550100", t0()),
        Err(Refusal::Denied { .. })
    ));
    assert!(matches!(
        s.check("q", "0044207946", t0()),
        Err(Refusal::Denied { .. })
    ));
    let e = s.check("q", "+44 20 7946 0958", t0()).unwrap_err();
    assert_eq!(e.code(), "not_allowed");
    assert!(matches!(
        s.check("q", "call me", t0()),
        Err(Refusal::InvalidNumber(_))
    ));
}

#[test]
fn per_number_daily_limit_counts_across_queues() {
    let mut s = sched(Policy::default());
    let n = "+15550000001";
    let mut now = t0();
    for (i, q) in ["a", "b", "a"].iter().enumerate() {
        let id = format!("r{i}");
        ok(&mut s, req(&id, q, n, now), now);
        s.cancel(&id, "test", now).expect("cancel");
        now += TimeDelta::hours(1);
    }
    let e = s.request(req("r3", "c", n, now), now).unwrap_err();
    assert_eq!(
        e,
        Refusal::RateLimited {
            limit: RateLimit::PerNumberPerDay,
            max: 3,
            until: t0() + TimeDelta::hours(24)
        }
    );
    assert_eq!(
        e.to_string(),
        "too many callback requests for this number (at most 3 in 24 hours); try again after 2026-11-24T15:00:00Z"
    );
    // Other numbers are unaffected; the number may ask again after 24 h.
    ok(&mut s, req("other", "c", "+15550000002", now), now);
    let later = t0() + TimeDelta::hours(24);
    assert!(s.check("c", n, later - secs(1)).is_err());
    ok(&mut s, req("r4", "c", n, later), later);
}

#[test]
fn global_hourly_limit() {
    let mut s = sched(policy("max_per_hour = 5"));
    for i in 0..5 {
        let at = t0() + secs(60 * i);
        ok(
            &mut s,
            req(&format!("r{i}"), "q", &format!("+1555000000{i}"), at),
            at,
        );
    }
    let now = t0() + secs(600);
    let e = s
        .request(req("r5", "q", "+15550000005", now), now)
        .unwrap_err();
    assert_eq!(
        e,
        Refusal::RateLimited {
            limit: RateLimit::GlobalPerHour,
            max: 5,
            until: t0() + TimeDelta::hours(1)
        }
    );
    // Refused requests do not count; one slot frees after the first ages out.
    let later = t0() + TimeDelta::hours(1);
    ok(&mut s, req("r6", "q", "+15550000006", later), later);
    assert!(s
        .request(req("r7", "q", "+15550000007", later), later)
        .is_err());
}

#[test]
fn max_pending_stops_offers() {
    let mut policies = HashMap::new();
    policies.insert("small".to_owned(), policy("max_pending = 2"));
    let mut s = Scheduler::new(policies, Policy::default());
    ok(&mut s, req("a", "small", "+15550000001", t0()), t0());
    ok(&mut s, req("b", "small", "+15550000002", t0()), t0());
    let full = Refusal::QueueFull {
        queue: "small".into(),
        max: 2,
    };
    assert_eq!(s.check("small", "+15550000003", t0()), Err(full.clone()));
    assert_eq!(
        full.to_string(),
        "queue `small` cannot take more callbacks (2 pending)"
    );
    assert_eq!(
        s.request(req("c", "small", "+15550000003", t0()), t0()),
        Err(full)
    );
    ok(&mut s, req("d", "big", "+15550000003", t0()), t0());
    s.cancel("a", "", t0()).expect("cancel");
    ok(&mut s, req("c", "small", "+15550000003", t0()), t0());
}

fn stored(id: &str, number: &str, state: CallbackState, attempts: u32) -> Callback {
    Callback {
        id: id.into(),
        queue: "q".into(),
        number: number.into(),
        state,
        entered_at: t0() - secs(600),
        created_at: t0() - secs(300),
        attempts,
        next_attempt_at: state.is_waiting().then_some(t0() - secs(300)),
        preferred: None,
        expires_at: t0() + TimeDelta::hours(20),
        context: String::new(),
        origin: Origin::Ivr,
        last_result: None,
    }
}

#[test]
fn a_connected_callback_is_not_called_again_after_a_crash_by_default() {
    let now = t0();
    let rows = vec![stored("conn", "+15550000002", CallbackState::Connected, 1)];
    let mut s = sched(Policy::default());
    let ts = s.restore(rows, now);
    assert_eq!(ts.len(), 1);
    assert_eq!(
        (ts[0].from, ts[0].to, ts[0].attempt),
        (CallbackState::Connected, CallbackState::Completed, 1)
    );
    assert!(
        ts[0].reason.contains("not called again"),
        "{}",
        ts[0].reason
    );
    assert_eq!(s.live().count(), 0);
    assert!(s.eligible(now + secs(3_600)).is_empty());
}

#[test]
fn redial_interrupted_is_a_policy_key() {
    assert!(!policy("").redial_interrupted);
    assert!(policy("redial_interrupted = true").redial_interrupted);
}

#[test]
fn restore_after_a_crash_retries_and_never_duplicates() {
    let now = t0();
    let mut retry = stored("retry", "+15550000005", CallbackState::RetryWait, 1);
    retry.next_attempt_at = Some(now + secs(100));
    let mut old = stored("old", "+15550000006", CallbackState::Scheduled, 0);
    old.expires_at = now - secs(1);
    let mut twin = stored("twin", "+15550000001", CallbackState::Scheduled, 0);
    twin.created_at = t0() - secs(10);
    let rows = vec![
        stored("dial", "+15550000001", CallbackState::Dialing, 2),
        stored("conn", "+15550000002", CallbackState::Connected, 1),
        stored("req", "+15550000003", CallbackState::Requested, 0),
        stored("sched", "+15550000004", CallbackState::Scheduled, 0),
        retry,
        old,
        twin,
        stored("done", "+15550000007", CallbackState::Completed, 1),
    ];
    // This queue calls an interrupted conversation back.
    let redial = Policy {
        redial_interrupted: true,
        ..Policy::default()
    };
    let mut s = sched(redial);
    let ts = s.restore(rows, now);
    let by_id: HashMap<&str, &Transition> = ts.iter().map(|t| (t.id.as_str(), t)).collect();
    let dial = by_id["dial"];
    assert_eq!(
        (dial.from, dial.to, dial.attempt),
        (CallbackState::Dialing, CallbackState::Scheduled, 1)
    );
    assert!(dial.reason.starts_with("interrupted while dialing"));
    let conn = by_id["conn"];
    assert_eq!(
        (conn.from, conn.to, conn.attempt),
        (CallbackState::Connected, CallbackState::RetryWait, 0)
    );
    assert_eq!(conn.next_attempt_at, Some(now + secs(120)));
    assert_eq!(by_id["req"].to, CallbackState::Scheduled);
    let twin = by_id["twin"];
    assert_eq!(twin.to, CallbackState::Cancelled);
    assert!(twin.reason.contains("duplicate of live callback dial"));
    assert_eq!(by_id["old"].to, CallbackState::Expired);
    assert_eq!(ts.len(), 5, "sched, retry and done need no repair");
    assert_eq!(s.live().count(), 5);

    // Nothing is handed out until eligible; the interrupted one keeps its
    // place in line and is dialed again exactly once.
    assert!(matches!(
        s.dialing("dial", now),
        Err(CallbackError::NotHandedOut(_))
    ));
    let got = s.eligible(now);
    assert_eq!(ids(&got), ["dial", "req", "sched"]);
    assert_eq!(got[0].entered_at, t0() - secs(600));
    assert!(s.eligible(now + secs(1)).is_empty());
    let d = s.dialing("dial", now + secs(2)).expect("dialing");
    assert_eq!(d.attempt, 2);
    assert!(s.dialing("dial", now + secs(3)).is_err());
    assert_eq!(ids(&s.eligible(now + secs(120))), ["conn", "retry"]);

    // The rate history survives through the rows' created_at.
    let mut s = sched(policy("max_per_number_per_day = 1"));
    s.restore(
        vec![stored("done", "+15550000007", CallbackState::Completed, 1)],
        now,
    );
    assert_eq!(
        s.check("q", "+15550000007", now).map_err(|e| e.code()),
        Err("rate_limited")
    );
}

#[test]
fn restore_keeps_attempts_within_the_maximum() {
    let mut s = sched(policy("max_attempts = 2"));
    let ts = s.restore(
        vec![
            stored("a", "+15550000001", CallbackState::Dialing, 2),
            stored("b", "+15550000002", CallbackState::RetryWait, 2),
        ],
        t0(),
    );
    let a: Vec<_> = ts.iter().filter(|t| t.id == "a").collect();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].to, a[0].attempt), (CallbackState::Scheduled, 1));
    let b: Vec<_> = ts.iter().filter(|t| t.id == "b").collect();
    assert_eq!(
        (b[0].from, b[0].to),
        (CallbackState::RetryWait, CallbackState::Failed)
    );
    assert!(s.live().all(|c| c.attempts <= 2));
}

#[test]
fn cancel_and_reschedule() {
    let mut s = sched(ny(""));
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    ok(&mut s, req("b", "q", "+15550000002", t0()), t0());
    s.eligible(t0());
    let t = s
        .cancel("a", "customer asked on the phone", t0())
        .expect("cancel");
    assert_eq!(
        (t.from, t.to),
        (CallbackState::Scheduled, CallbackState::Cancelled)
    );
    assert_eq!(t.reason, "cancelled: customer asked on the phone");
    assert_eq!(t.next_attempt_at, None);

    // Reschedule to 20:00 local: dialed at the next opening, Tue 09:00.
    let t = s
        .reschedule("b", utc(2026, 11, 24, 1, 0), t0() + secs(10))
        .expect("reschedule");
    assert_eq!(
        (t.from, t.to),
        (CallbackState::Scheduled, CallbackState::Scheduled)
    );
    assert_eq!(t.next_attempt_at, Some(utc(2026, 11, 24, 14, 0)));
    assert_eq!(
        t.reason,
        "rescheduled to 2026-11-24T01:00:00Z; dialing allowed from 2026-11-24T14:00:00Z"
    );
    assert!(!s.is_handed_out("b"));
    assert!(s.eligible(t0() + secs(20)).is_empty());
    // Past the expiry: the expiry moves with it.
    let later = utc(2026, 11, 26, 15, 0);
    let t = s.reschedule("b", later, t0()).expect("reschedule");
    assert_eq!(t.next_attempt_at, Some(later));
    assert_eq!(
        s.get("b").map(|c| c.expires_at),
        Some(later + TimeDelta::hours(24))
    );
    // To a Saturday with 24 h expiry: no dialing time, nothing changes.
    let e = s
        .reschedule("b", utc(2026, 11, 28, 15, 0), t0())
        .unwrap_err();
    assert!(matches!(e, CallbackError::NoDialingTime { .. }));
    assert_eq!(s.get("b").and_then(|c| c.next_attempt_at), Some(later));
}

#[test]
fn release_returns_a_callback_to_the_scheduler() {
    let mut s = sched(Policy::default());
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    assert_eq!(
        s.release("a", t0()),
        Err(CallbackError::NotHandedOut("a".into()))
    );
    assert_eq!(s.eligible(t0()).len(), 1);
    s.release("a", t0() + secs(5)).expect("release");
    assert_eq!(ids(&s.eligible(t0() + secs(5))), ["a"]);
}

#[test]
fn reconfigure_recomputes_and_fails_exhausted() {
    let mut s = sched(Policy::default());
    ok(&mut s, req("a", "q", "+15550000001", t0()), t0());
    dial(&mut s, "a", t0());
    finish(&mut s, "a", AttemptResult::CustomerBusy, t0());
    dial(&mut s, "a", t0() + secs(120));
    finish(&mut s, "a", AttemptResult::CustomerBusy, t0() + secs(120));
    ok(
        &mut s,
        req("b", "q", "+15550000002", t0()),
        t0() + secs(125),
    );
    let ts = s.reconfigure(HashMap::new(), ny("max_attempts = 2"), t0() + secs(130));
    assert_eq!(ts.len(), 1);
    assert_eq!((ts[0].id.as_str(), ts[0].to), ("a", CallbackState::Failed));
    // Mon 15:00 UTC is inside the new window: b is still dialable now.
    assert_eq!(ids(&s.eligible(t0() + secs(130))), ["b"]);
}

#[test]
fn callbacks_ahead_counts_older_entries() {
    let mut s = sched(Policy::default());
    ok(
        &mut s,
        req("a", "q", "+15550000001", t0() - secs(300)),
        t0(),
    );
    ok(
        &mut s,
        req("b", "q", "+15550000002", t0() - secs(100)),
        t0(),
    );
    ok(
        &mut s,
        req("c", "other", "+15550000003", t0() - secs(900)),
        t0(),
    );
    assert_eq!(s.callbacks_ahead("q", t0() - secs(200)), 1);
    assert_eq!(s.callbacks_ahead("q", t0()), 2);
    assert_eq!(s.callbacks_ahead("other", t0()), 1);
}

#[test]
fn refusal_codes_are_stable() {
    let all = [
        (Refusal::InvalidNumber("x".into()), "invalid_number"),
        (
            Refusal::Duplicate {
                existing_id: "x".into(),
            },
            "duplicate",
        ),
        (
            Refusal::Denied {
                pattern: "00*".into(),
            },
            "denied",
        ),
        (Refusal::NotAllowed, "not_allowed"),
        (
            Refusal::RateLimited {
                limit: RateLimit::GlobalPerHour,
                max: 1,
                until: t0(),
            },
            "rate_limited",
        ),
        (
            Refusal::QueueFull {
                queue: "q".into(),
                max: 1,
            },
            "queue_full",
        ),
        (
            Refusal::NoDialingTime { expires_at: t0() },
            "no_dialing_time",
        ),
        (Refusal::InvalidWindow("x".into()), "invalid_window"),
        (Refusal::IdInUse("x".into()), "id_in_use"),
    ];
    for (r, code) in all {
        assert_eq!(r.code(), code);
        assert!(!r.to_string().is_empty());
    }
    assert_eq!(
        normalize_number("12").unwrap_err().to_string(),
        "invalid number: \"12\" is too short: 2 digits, at least 7 needed"
    );
}

fn after_hours(id: &str, number: &str, at: DateTime<Utc>, opening: DateTime<Utc>) -> NewCallback {
    NewCallback {
        not_before: Some(opening),
        ..req(id, "q", number, at)
    }
}

#[test]
fn an_after_hours_request_waits_for_the_opening_and_lives_from_there() {
    let mut s = sched(Policy::default());
    let night = utc(2026, 11, 24, 2, 0);
    let opening = utc(2026, 11, 24, 14, 0);
    let cb = ok(
        &mut s,
        after_hours("a", "+15550000001", night, opening),
        night,
    );
    assert_eq!(cb.next_attempt_at, Some(opening));
    assert_eq!(cb.expires_at, opening + TimeDelta::hours(24));
    assert_eq!(s.poll_timeout(night), Some(opening));
    assert!(
        s.eligible(opening - secs(1)).is_empty(),
        "not before the opening"
    );
    assert_eq!(ids(&s.eligible(opening)), ["a"]);
}

#[test]
fn an_after_hours_request_also_waits_for_the_dialing_window() {
    // The line opens at 08:00 New York but customers may be dialed from 09:00.
    let mut s = sched(ny(""));
    let night = utc(2026, 11, 24, 2, 0);
    let opening = utc(2026, 11, 24, 13, 0);
    let cb = ok(
        &mut s,
        after_hours("a", "+15550000001", night, opening),
        night,
    );
    assert_eq!(cb.next_attempt_at, Some(utc(2026, 11, 24, 14, 0)));
}

#[test]
fn an_opening_already_past_changes_nothing() {
    let mut s = sched(Policy::default());
    let cb = ok(
        &mut s,
        after_hours("a", "+15550000001", t0(), t0() - secs(60)),
        t0(),
    );
    assert_eq!(cb.next_attempt_at, Some(t0()));
    assert_eq!(cb.expires_at, t0() + TimeDelta::hours(24));
}

#[test]
fn after_hours_requests_are_dialed_in_request_order() {
    let mut s = sched(Policy::default());
    let opening = utc(2026, 11, 24, 14, 0);
    // Requested at 20:00, 22:00 and 23:30 the evening before; handed out
    // in that order whatever order they were stored in.
    let (a, b, c) = (
        utc(2026, 11, 24, 1, 0),
        utc(2026, 11, 24, 3, 0),
        utc(2026, 11, 24, 4, 30),
    );
    ok(&mut s, after_hours("b", "+15550000002", b, opening), b);
    ok(&mut s, after_hours("c", "+15550000003", c, opening), c);
    ok(&mut s, after_hours("a", "+15550000001", a, opening), c);
    assert!(s.eligible(opening - secs(1)).is_empty());
    assert_eq!(ids(&s.eligible(opening)), ["a", "b", "c"]);
}

#[test]
fn a_restart_keeps_the_opening() {
    let mut s = sched(Policy::default());
    let night = utc(2026, 11, 24, 2, 0);
    let opening = utc(2026, 11, 24, 14, 0);
    let cb = ok(
        &mut s,
        after_hours("a", "+15550000001", night, opening),
        night,
    );
    let mut s2 = sched(Policy::default());
    assert!(s2.restore(vec![cb], night + secs(60)).is_empty());
    assert!(s2.eligible(opening - secs(1)).is_empty());
    assert_eq!(ids(&s2.eligible(opening)), ["a"]);
}
