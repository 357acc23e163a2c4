//! Interpreter behaviour: every node type, every transition, the zero-out
//! rule, bounded retries and robustness against out-of-place events.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ringback_dialplan::*;

const PLAN: &str = r##"
[dialplan]
numbers = ["1000"]
start = "main"
operator = "operator"
timezone = "America/New_York"

[nodes.main]
type = "menu"
prompt = "main-menu"
options = { "1" = "billing", "2" = "support", "3" = "info", "4" = "account", "5" = "cb", "6" = "partner", "7" = "bye", "8" = "tag", "9" = "main", "#" = "ops" }
timeout = 5
max_retries = 3
invalid_prompt = "invalid-option"
timeout_prompt = "no-input"

[nodes.support]
type = "menu"
prompt = "support-menu"
options = { "1" = "tech", "2" = "support-q" }
max_retries = 2
on_fail = "bye"

[nodes.tech]
type = "menu"
prompt = ["tech-menu", "more"]
options = { "1" = "support-q", "2" = "partner2" }
timeout = 7

[nodes.billing]
type = "queue"
queue = "billing"
priority = 5
max_wait = 600
on_timeout = "bye"
callback = { offer = true, after = 90, key = "#" }

[nodes.support-q]
type = "queue"
queue = "support"
max_wait = 300

[nodes.ops]
type = "menu"
prompt = "ops-menu"
options = { "0" = "op", "1" = "op" }

[nodes.op]
type = "queue"
queue = "operator"
priority = 10
max_wait = 120
on_timeout = "bye"

[nodes.info]
type = "play"
prompt = ["opening-hours", "thank-you"]
next = "main"

[nodes.account]
type = "gather"
prompt = "enter-account"
var = "account"
min_digits = 4
max_digits = 6
timeout = 4
max_retries = 2
invalid_prompt = "invalid-entry"
next = "support-q"
on_fail = "bye"

[nodes.cb]
type = "callback"
queue = "billing"
confirm_prompt = "callback-confirm"

[nodes.partner]
type = "transfer"
target = "sip:partner@example.com"
prompt = "transferring"

[nodes.partner2]
type = "transfer"
target = "2001"
on_fail = "bye"

[nodes.bye]
type = "hangup"
prompt = "goodbye"

[nodes.tag]
type = "set"
vars = { tier = "gold", source = "ivr" }
next = "jump"

[nodes.jump]
type = "goto"
target = "billing"
"##;

fn load(src: &str) -> Arc<Dialplan> {
    match load_str(Path::new("test.toml"), src, &CheckContext::default()) {
        Ok((p, _)) => Arc::new(p),
        Err(e) => panic!(
            "test plan does not load:\n{}",
            e.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn monday_10am() -> DateTime<Utc> {
    // Mon 2026-11-23 10:00 in New York
    Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap()
}

fn start_at(plan: Arc<Dialplan>, now: DateTime<Utc>) -> (Session, Vec<Action>) {
    let mut s = Session::new(plan, None);
    let mut out = Vec::new();
    s.handle(
        Event::Started(CallInfo {
            caller: "+15551234567".into(),
            dialed: "1000".into(),
            now,
        }),
        &mut out,
    );
    (s, out)
}

fn start() -> (Session, Vec<Action>) {
    start_at(load(PLAN), monday_10am())
}

fn feed(s: &mut Session, events: &[Event]) -> Vec<Action> {
    let mut out = Vec::new();
    for e in events {
        s.handle(e.clone(), &mut out);
    }
    out
}

fn digits(s: &mut Session, keys: &str) -> Vec<Action> {
    let events: Vec<Event> = keys.chars().map(Event::Digit).collect();
    feed(s, &events)
}

fn play(names: &[&str], barge_in: bool) -> Action {
    Action::Play {
        prompts: names.iter().map(|s| s.to_string()).collect(),
        barge_in,
    }
}

fn timer(secs: u64) -> Action {
    Action::StartTimer {
        after: Duration::from_secs(secs),
    }
}

fn zero_out() -> Action {
    Action::Enqueue {
        queue: "operator".into(),
        zero_out: true,
        priority: 0,
        max_wait: None,
        callback: None,
    }
}

fn support_q() -> Action {
    Action::Enqueue {
        queue: "support".into(),
        zero_out: false,
        priority: 0,
        max_wait: Some(Duration::from_secs(300)),
        callback: None,
    }
}

fn zero_out_reasons(s: &Session) -> Vec<ZeroOutReason> {
    s.trace()
        .iter()
        .filter_map(|st| match st.kind {
            StepKind::ZeroOut { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------------ menus

#[test]
fn menu_plays_its_prompt_with_barge_in_then_starts_the_timer() {
    let (mut s, out) = start();
    assert_eq!(out, vec![play(&["main-menu"], true)]);
    assert_eq!(s.current_node(), Some("main"));
    assert!(!s.is_finished());
    assert_eq!(feed(&mut s, &[Event::PlaybackDone]), vec![timer(5)]);
}

#[test]
fn a_digit_after_the_prompt_cancels_the_timer_and_follows_the_option() {
    let (mut s, _) = start();
    feed(&mut s, &[Event::PlaybackDone]);
    let out = digits(&mut s, "1");
    assert_eq!(
        out,
        vec![
            Action::CancelTimer,
            Action::Enqueue {
                queue: "billing".into(),
                zero_out: false,
                priority: 5,
                max_wait: Some(Duration::from_secs(600)),
                callback: Some(CallbackOffer {
                    offer: true,
                    after: Duration::from_secs(90),
                    key: '#',
                }),
            }
        ]
    );
    assert!(s.is_finished());
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Queued {
            queue: "billing".into(),
            zero_out: false
        })
    );
    assert_eq!(s.path(), ["main", "billing"]);
    assert_eq!(s.digits(), "1");
}

#[test]
fn a_digit_during_the_prompt_stops_it_and_acts_at_once() {
    let (mut s, _) = start();
    let out = digits(&mut s, "2");
    assert_eq!(
        out,
        vec![Action::StopPlayback, play(&["support-menu"], true)]
    );
    assert_eq!(s.current_node(), Some("support"));
}

#[test]
fn zero_reaches_the_operator_even_when_the_menu_does_not_list_it() {
    let (mut s, _) = start();
    let out = digits(&mut s, "0");
    assert_eq!(out, vec![Action::StopPlayback, zero_out()]);
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Queued {
            queue: "operator".into(),
            zero_out: true
        })
    );
    assert_eq!(zero_out_reasons(&s), vec![ZeroOutReason::KeyZero]);
}

#[test]
fn zero_out_works_three_menus_deep() {
    let (mut s, _) = start();
    feed(&mut s, &[Event::PlaybackDone]);
    digits(&mut s, "2");
    feed(&mut s, &[Event::PlaybackDone]);
    let out = digits(&mut s, "1");
    assert_eq!(
        out,
        vec![Action::CancelTimer, play(&["tech-menu", "more"], true)]
    );
    assert_eq!(feed(&mut s, &[Event::PlaybackDone]), vec![timer(7)]);
    let out = digits(&mut s, "0");
    assert_eq!(out, vec![Action::CancelTimer, zero_out()]);
    assert_eq!(s.path(), ["main", "support", "tech"]);
    assert_eq!(s.digits(), "210");
    assert!(s.is_finished());
}

#[test]
fn zero_bound_to_an_operator_queue_node_uses_that_node_and_stays_a_zero_out() {
    let (mut s, _) = start();
    digits(&mut s, "#");
    let out = digits(&mut s, "0");
    assert_eq!(
        out,
        vec![
            Action::StopPlayback,
            Action::Enqueue {
                queue: "operator".into(),
                zero_out: true,
                priority: 10,
                max_wait: Some(Duration::from_secs(120)),
                callback: None,
            }
        ]
    );
    assert_eq!(s.path(), ["main", "ops", "op"]);
    // the operator queue timing out continues at its on_timeout
    let out = feed(&mut s, &[Event::QueueExited]);
    assert_eq!(out, vec![play(&["goodbye"], false)]);
}

#[test]
fn an_invalid_key_plays_the_invalid_prompt_then_the_menu_again() {
    let (mut s, _) = start();
    feed(&mut s, &[Event::PlaybackDone]);
    let out = digits(&mut s, "*");
    assert_eq!(
        out,
        vec![
            Action::CancelTimer,
            play(&["invalid-option", "main-menu"], true)
        ]
    );
    assert_eq!(s.current_node(), Some("main"));
    assert_eq!(s.digits(), "*");
}

#[test]
fn max_retries_of_invalid_keys_falls_back_to_the_operator_by_default() {
    let (mut s, _) = start();
    // attempt 1 and 2: asked again; attempt 3: fallback
    let out = digits(&mut s, "**");
    assert_eq!(
        out,
        vec![
            Action::StopPlayback,
            play(&["invalid-option", "main-menu"], true),
            Action::StopPlayback,
            play(&["invalid-option", "main-menu"], true),
        ]
    );
    let out = digits(&mut s, "*");
    assert_eq!(out, vec![Action::StopPlayback, zero_out()]);
    assert_eq!(zero_out_reasons(&s), vec![ZeroOutReason::MaxRetries]);
}

#[test]
fn timeouts_replay_with_the_timeout_prompt_and_are_bounded() {
    let (mut s, _) = start();
    let out = feed(
        &mut s,
        &[Event::PlaybackDone, Event::Timeout, Event::PlaybackDone],
    );
    assert_eq!(
        out,
        vec![timer(5), play(&["no-input", "main-menu"], true), timer(5)]
    );
    let out = feed(
        &mut s,
        &[Event::Timeout, Event::PlaybackDone, Event::Timeout],
    );
    assert_eq!(
        out,
        vec![play(&["no-input", "main-menu"], true), timer(5), zero_out()]
    );
    assert!(s.is_finished());
    let retries = s
        .trace()
        .iter()
        .filter(|st| matches!(st.kind, StepKind::Retry { .. }))
        .count();
    assert_eq!(retries, 2);
}

#[test]
fn explicit_on_fail_is_followed_after_max_retries() {
    let (mut s, _) = start();
    digits(&mut s, "2");
    // support: max_retries 2, no notice prompts, on_fail = bye
    let out = feed(&mut s, &[Event::PlaybackDone, Event::Timeout]);
    assert_eq!(out, vec![timer(5), play(&["support-menu"], true)]);
    let out = feed(&mut s, &[Event::Digit('9')]);
    assert_eq!(out, vec![Action::StopPlayback, play(&["goodbye"], false)]);
    assert!(s
        .trace()
        .iter()
        .any(|st| st.kind == StepKind::Fallback { to: "bye".into() }));
    let out = feed(&mut s, &[Event::PlaybackDone]);
    assert_eq!(out, vec![Action::Hangup]);
    assert_eq!(s.outcome(), Some(&Outcome::HungUp { by_caller: false }));
}

#[test]
fn retries_start_from_zero_on_every_visit_of_a_menu() {
    let (mut s, _) = start();
    digits(&mut s, "**"); // two failures in main
    digits(&mut s, "3"); // info → main again
    feed(&mut s, &[Event::PlaybackDone]); // back in main, fresh
    let out = digits(&mut s, "**");
    assert_eq!(
        out,
        vec![
            Action::StopPlayback,
            play(&["invalid-option", "main-menu"], true),
            Action::StopPlayback,
            play(&["invalid-option", "main-menu"], true),
        ]
    );
    assert!(!s.is_finished());
}

#[test]
fn an_option_can_reenter_the_same_menu() {
    let (mut s, _) = start();
    let out = digits(&mut s, "9");
    assert_eq!(out, vec![Action::StopPlayback, play(&["main-menu"], true)]);
    assert_eq!(s.path(), ["main", "main"]);
}

// ------------------------------------------------------------------- play

#[test]
fn play_keeps_other_keys_for_the_next_menu() {
    let (mut s, _) = start();
    let out = digits(&mut s, "3");
    assert_eq!(
        out,
        vec![
            Action::StopPlayback,
            play(&["opening-hours", "thank-you"], false)
        ]
    );
    // The prompt plays on (no barge-in); the key waits for the next menu.
    assert_eq!(digits(&mut s, "1"), vec![]);
    assert_eq!(s.digits(), "3");
    let out = feed(&mut s, &[Event::PlaybackDone]);
    // The menu comes back and takes the key at once, as if pressed there.
    assert_eq!(out[0], play(&["main-menu"], true));
    assert_eq!(out[1], Action::StopPlayback);
    assert!(
        matches!(&out[2], Action::Enqueue { queue, .. } if queue == "billing"),
        "{out:?}"
    );
    assert_eq!(s.digits(), "31");
    assert_eq!(s.path(), ["main", "info", "main", "billing"]);
}

#[test]
fn zero_during_a_play_node_reaches_the_operator_at_once() {
    let (mut s, _) = start();
    digits(&mut s, "3");
    let out = digits(&mut s, "0");
    assert_eq!(out[0], Action::StopPlayback);
    assert!(
        matches!(&out[1], Action::Enqueue { zero_out: true, .. }),
        "{out:?}"
    );
    assert_eq!(s.digits(), "30");
    // Keys typed before the 0 are not replayed anywhere.
    assert_eq!(feed(&mut s, &[Event::PlaybackDone]), vec![]);
}

const NOTICE: &str = r#"
[dialplan]
numbers = ["1"]
start = "notice"
operator = "operator"
type_ahead = false

[nodes.notice]
type = "play"
prompt = "outage-info"
zero_out = false
next = "greeting"

[nodes.greeting]
type = "play"
prompt = "welcome"
next = "main"

[nodes.main]
type = "menu"
prompt = "main-menu"
options = { "1" = "bye" }

[nodes.bye]
type = "hangup"
prompt = "goodbye"
"#;

#[test]
fn an_exempt_notice_ignores_zero_and_a_plan_may_turn_type_ahead_off() {
    let (mut s, out) = start_at(load(NOTICE), monday_10am());
    assert_eq!(out, vec![play(&["outage-info"], false)]);
    // zero_out = false: the notice plays to its end.
    assert_eq!(digits(&mut s, "0"), vec![]);
    let out = feed(&mut s, &[Event::PlaybackDone]);
    assert_eq!(out, vec![play(&["welcome"], false)]);
    // type_ahead = false: a key during the greeting is dropped...
    assert_eq!(digits(&mut s, "1"), vec![]);
    let out = feed(&mut s, &[Event::PlaybackDone]);
    assert_eq!(out, vec![play(&["main-menu"], true)]);
    assert_eq!(s.digits(), "");
    // ...but 0 still reaches a human during the greeting.
    let (mut s, _) = start_at(load(NOTICE), monday_10am());
    feed(&mut s, &[Event::PlaybackDone]);
    let out = digits(&mut s, "0");
    assert!(
        matches!(&out[1], Action::Enqueue { zero_out: true, .. }),
        "{out:?}"
    );
}

#[test]
fn check_lists_prompts_exempt_from_zero_out() {
    let (_, warnings) = load_str(Path::new("notice.toml"), NOTICE, &CheckContext::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let text = format!("{warnings:?}");
    assert!(
        text.contains("play node `notice` has `zero_out = false`"),
        "{text}"
    );
}

#[test]
fn play_without_next_hangs_up() {
    let plan = load(
        r#"
[dialplan]
numbers = ["1"]
start = "p"
operator = "operator"
[nodes.p]
type = "play"
prompt = "closed"
"#,
    );
    let (mut s, out) = start_at(plan, monday_10am());
    assert_eq!(out, vec![play(&["closed"], false)]);
    assert_eq!(feed(&mut s, &[Event::PlaybackDone]), vec![Action::Hangup]);
    assert_eq!(s.outcome(), Some(&Outcome::HungUp { by_caller: false }));
    assert!(s.is_finished());
}

// ----------------------------------------------------------------- gather

fn in_gather() -> Session {
    let (mut s, _) = start();
    digits(&mut s, "4");
    assert_eq!(s.current_node(), Some("account"));
    s
}

#[test]
fn gather_collects_with_barge_in_until_the_terminator() {
    let mut s = in_gather();
    let out = digits(&mut s, "12");
    assert_eq!(
        out,
        vec![
            Action::StopPlayback,
            timer(4),
            Action::CancelTimer,
            timer(4)
        ]
    );
    let out = digits(&mut s, "34#");
    assert_eq!(
        out,
        vec![
            Action::CancelTimer,
            timer(4),
            Action::CancelTimer,
            timer(4),
            Action::CancelTimer,
            support_q()
        ]
    );
    assert_eq!(s.vars().get("account").map(String::as_str), Some("1234"));
    assert_eq!(s.digits(), "41234#");
    assert_eq!(s.path(), ["main", "account", "support-q"]);
}

#[test]
fn gather_ends_by_itself_at_max_digits() {
    let mut s = in_gather();
    feed(&mut s, &[Event::PlaybackDone]);
    let out = digits(&mut s, "987654");
    assert_eq!(out.last(), Some(&support_q()));
    assert_eq!(s.vars()["account"], "987654");
}

#[test]
fn gather_ends_on_the_inter_digit_timeout() {
    let mut s = in_gather();
    feed(&mut s, &[Event::PlaybackDone]);
    digits(&mut s, "12345");
    let out = feed(&mut s, &[Event::Timeout]);
    assert_eq!(out, vec![support_q()]);
    assert_eq!(s.vars()["account"], "12345");
}

#[test]
fn gather_too_short_is_invalid_then_on_fail() {
    let mut s = in_gather();
    let out = digits(&mut s, "12#");
    assert_eq!(
        out.last(),
        Some(&play(&["invalid-entry", "enter-account"], true))
    );
    assert!(s.vars().get("account").is_none());
    // a second short entry exhausts max_retries (2): on_fail = bye
    let out = digits(&mut s, "1#");
    assert_eq!(out.last(), Some(&play(&["goodbye"], false)));
    assert!(s.trace().iter().any(|st| st.kind
        == StepKind::Retry {
            reason: RetryReason::TooShort,
            attempt: 1,
            max: 2
        }));
}

#[test]
fn gather_retry_buffer_is_fresh() {
    let mut s = in_gather();
    digits(&mut s, "12#");
    digits(&mut s, "5678#");
    assert_eq!(s.vars()["account"], "5678");
}

#[test]
fn gather_lone_zero_then_timeout_is_a_zero_out() {
    let mut s = in_gather();
    feed(&mut s, &[Event::PlaybackDone]);
    digits(&mut s, "0");
    let out = feed(&mut s, &[Event::Timeout]);
    assert_eq!(out, vec![zero_out()]);
    assert_eq!(zero_out_reasons(&s), vec![ZeroOutReason::LoneZero]);
}

#[test]
fn gather_zero_inside_a_number_is_just_a_digit() {
    let mut s = in_gather();
    digits(&mut s, "0120#");
    assert_eq!(s.vars()["account"], "0120");
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Queued {
            queue: "support".into(),
            zero_out: false
        })
    );
}

#[test]
fn gather_silence_retries_then_default_fallback_is_the_operator() {
    let plan = load(
        r#"
[dialplan]
numbers = ["1"]
start = "g"
operator = "operator"
[nodes.g]
type = "gather"
prompt = "enter-account"
var = "pin"
max_digits = 4
max_retries = 2
timeout_prompt = "no-input"
next = "done"
[nodes.done]
type = "hangup"
"#,
    );
    let (mut s, _) = start_at(plan, monday_10am());
    let out = feed(&mut s, &[Event::PlaybackDone, Event::Timeout]);
    assert_eq!(
        out,
        vec![timer(5), play(&["no-input", "enter-account"], true)]
    );
    let out = feed(&mut s, &[Event::PlaybackDone, Event::Timeout]);
    assert_eq!(out, vec![timer(5), zero_out()]);
    assert_eq!(zero_out_reasons(&s), vec![ZeroOutReason::MaxRetries]);
}

#[test]
fn one_digit_gather_treats_zero_as_zero_out() {
    let plan = load(
        r#"
[dialplan]
numbers = ["1"]
start = "g"
operator = "operator"
[nodes.g]
type = "gather"
prompt = "enter-account"
var = "choice"
max_digits = 1
next = "done"
[nodes.done]
type = "hangup"
"#,
    );
    let (mut s, _) = start_at(Arc::clone(&plan), monday_10am());
    assert_eq!(digits(&mut s, "0"), vec![Action::StopPlayback, zero_out()]);
    let (mut s, _) = start_at(plan, monday_10am());
    assert_eq!(
        digits(&mut s, "7"),
        vec![Action::StopPlayback, Action::Hangup]
    );
    assert_eq!(s.vars()["choice"], "7");
}

// ------------------------------------------------------- set / goto / hours

#[test]
fn set_and_goto_run_instantly() {
    let (mut s, _) = start();
    let out = digits(&mut s, "8");
    assert!(matches!(out.last(), Some(Action::Enqueue { queue, .. }) if queue == "billing"));
    assert_eq!(s.path(), ["main", "tag", "jump", "billing"]);
    assert_eq!(s.vars()["tier"], "gold");
    assert_eq!(s.vars()["source"], "ivr");
}

const HOURS: &str = r#"
[dialplan]
numbers = ["1"]
start = "hours"
operator = "operator"
timezone = "America/New_York"
[nodes.hours]
type = "hours"
open = [{ days = "mon-fri", from = "08:00", to = "18:00" }, { days = "sat", from = "22:00", to = "02:00" }]
holidays = ["2026-12-25"]
open_next = "open"
closed_next = "closed"
[nodes.open]
type = "play"
prompt = "welcome"
[nodes.closed]
type = "hangup"
prompt = "closed"
"#;

fn hours_path(now: DateTime<Utc>) -> Vec<String> {
    let (s, _) = start_at(load(HOURS), now);
    s.path().to_vec()
}

#[test]
fn hours_inside_outside_holiday_and_overnight() {
    let utc = |d, h, m| Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap();
    // Mon Dec 21 10:00 EST: open
    assert_eq!(hours_path(utc(21, 15, 0)), ["hours", "open"]);
    // Mon Dec 21 18:00 EST: closed
    assert_eq!(hours_path(utc(21, 23, 0)), ["hours", "closed"]);
    // Fri Dec 25 (holiday) 10:00: closed
    assert_eq!(hours_path(utc(25, 15, 0)), ["hours", "closed"]);
    // Sat Dec 26 23:30 EST (overnight range): open
    assert_eq!(hours_path(utc(27, 4, 30)), ["hours", "open"]);
    // Sun Dec 27 01:30 EST (tail of Saturday's range): open
    assert_eq!(hours_path(utc(27, 6, 30)), ["hours", "open"]);
    // Sun Dec 27 02:30 EST: closed
    assert_eq!(hours_path(utc(27, 7, 30)), ["hours", "closed"]);
}

#[test]
fn hours_follow_daylight_saving_time() {
    // Mon 2026-03-09 is the first weekday after the switch to EDT (UTC-4).
    // 12:30 UTC = 08:30 EDT: open (in EST it would be 07:30, closed).
    let at = Utc.with_ymd_and_hms(2026, 3, 9, 12, 30, 0).unwrap();
    assert_eq!(hours_path(at), ["hours", "open"]);
    // Fri 2026-03-06 12:30 UTC = 07:30 EST: closed.
    let at = Utc.with_ymd_and_hms(2026, 3, 6, 12, 30, 0).unwrap();
    assert_eq!(hours_path(at), ["hours", "closed"]);
    let (s, _) = start_at(
        load(HOURS),
        Utc.with_ymd_and_hms(2026, 3, 9, 12, 30, 0).unwrap(),
    );
    match &s.trace()[0].kind {
        StepKind::Hours { local, open, .. } => {
            assert!(open);
            assert_eq!(local.to_string(), "2026-03-09 08:30:00");
        }
        other => panic!("expected an hours step, got {other:?}"),
    }
}

// -------------------------------------------------------------- queue exits

#[test]
fn queue_exit_continues_at_on_timeout() {
    let (mut s, _) = start();
    digits(&mut s, "1");
    let out = feed(&mut s, &[Event::QueueExited]);
    assert_eq!(out, vec![play(&["goodbye"], false)]);
    assert!(!s.is_finished());
    assert_eq!(s.outcome(), None);
}

#[test]
fn queue_exit_without_on_timeout_zero_outs() {
    let (mut s, _) = start();
    digits(&mut s, "2");
    digits(&mut s, "2");
    let out = feed(&mut s, &[Event::QueueExited]);
    assert_eq!(out, vec![zero_out()]);
    assert_eq!(zero_out_reasons(&s), vec![ZeroOutReason::QueueTimeout]);
    // the operator queue itself timing out with no on_timeout: hang up
    let out = feed(&mut s, &[Event::QueueExited]);
    assert_eq!(out, vec![Action::Hangup]);
    assert_eq!(s.outcome(), Some(&Outcome::HungUp { by_caller: false }));
}

// ---------------------------------------------------- callback / transfer

#[test]
fn callback_is_recorded_before_the_confirmation_then_hangs_up() {
    let (mut s, _) = start();
    let out = digits(&mut s, "5");
    assert_eq!(
        out,
        vec![
            Action::StopPlayback,
            Action::Callback {
                queue: "billing".into(),
                not_before: None,
            },
            play(&["callback-confirm"], false)
        ]
    );
    assert!(!s.is_finished());
    assert_eq!(feed(&mut s, &[Event::PlaybackDone]), vec![Action::Hangup]);
    assert!(s.is_finished());
    assert_eq!(
        s.outcome(),
        Some(&Outcome::CallbackRequested {
            queue: "billing".into()
        })
    );
}

#[test]
fn transfer_plays_its_prompt_then_transfers_and_zero_outs_on_failure() {
    let (mut s, _) = start();
    let out = digits(&mut s, "6");
    assert_eq!(
        out,
        vec![Action::StopPlayback, play(&["transferring"], false)]
    );
    let out = feed(&mut s, &[Event::PlaybackDone]);
    assert_eq!(
        out,
        vec![Action::Transfer {
            target: "sip:partner@example.com".into()
        }]
    );
    assert!(s.is_finished());
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Transferred {
            target: "sip:partner@example.com".into()
        })
    );
    let out = feed(&mut s, &[Event::TransferFailed]);
    assert_eq!(out, vec![zero_out()]);
    assert_eq!(zero_out_reasons(&s), vec![ZeroOutReason::TransferFailed]);
}

#[test]
fn transfer_failure_follows_on_fail() {
    let (mut s, _) = start();
    digits(&mut s, "2");
    let out = digits(&mut s, "12");
    assert_eq!(
        out,
        vec![
            Action::StopPlayback,
            play(&["tech-menu", "more"], true),
            Action::StopPlayback,
            Action::Transfer {
                target: "2001".into()
            }
        ]
    );
    let out = feed(&mut s, &[Event::TransferFailed]);
    assert_eq!(out, vec![play(&["goodbye"], false)]);
}

#[test]
fn hangup_node_without_prompt_hangs_up_at_once() {
    let plan = load(
        r#"
[dialplan]
numbers = ["1"]
start = "bye"
operator = "operator"
[nodes.bye]
type = "hangup"
"#,
    );
    let (s, out) = start_at(plan, monday_10am());
    assert_eq!(out, vec![Action::Hangup]);
    assert!(s.is_finished());
}

// ---------------------------------------------------------- robustness

#[test]
fn caller_hangup_ends_the_session_and_later_events_are_ignored() {
    let (mut s, _) = start();
    assert_eq!(feed(&mut s, &[Event::Hangup]), vec![]);
    assert_eq!(s.outcome(), Some(&Outcome::HungUp { by_caller: true }));
    assert!(s.is_finished());
    let out = feed(
        &mut s,
        &[
            Event::Digit('1'),
            Event::PlaybackDone,
            Event::Timeout,
            Event::QueueExited,
            Event::TransferFailed,
            Event::Hangup,
        ],
    );
    assert_eq!(out, vec![]);
    assert_eq!(s.digits(), "");
}

#[test]
fn caller_hangup_while_queued_keeps_the_queue_outcome() {
    let (mut s, _) = start();
    digits(&mut s, "1");
    feed(&mut s, &[Event::Hangup]);
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Queued {
            queue: "billing".into(),
            zero_out: false
        })
    );
}

#[test]
fn events_that_do_not_apply_are_ignored() {
    let plan = load(PLAN);
    let mut s = Session::new(plan, None);
    // before Started
    let out = feed(
        &mut s,
        &[
            Event::Digit('1'),
            Event::PlaybackDone,
            Event::Timeout,
            Event::Hangup,
            Event::QueueExited,
        ],
    );
    assert_eq!(out, vec![]);
    assert_eq!(s.path(), [] as [&str; 0]);
    assert_eq!(s.current_node(), None);
    let info = CallInfo {
        caller: "x".into(),
        dialed: "1000".into(),
        now: monday_10am(),
    };
    feed(&mut s, &[Event::Started(info.clone())]);
    // Timeout while the prompt plays (no timer armed), a second Started,
    // keys that are not DTMF, transfer/queue events out of place
    let out = feed(
        &mut s,
        &[
            Event::Timeout,
            Event::Started(info),
            Event::Digit('x'),
            Event::Digit('A'),
            Event::TransferFailed,
            Event::QueueExited,
        ],
    );
    assert_eq!(out, vec![]);
    // PlaybackDone while already waiting: ignored
    let out = feed(&mut s, &[Event::PlaybackDone, Event::PlaybackDone]);
    assert_eq!(out, vec![timer(5)]);
    assert_eq!(s.path(), ["main"]);
}

fn hand_built(nodes: Vec<(&str, Node)>, operator: Option<&str>) -> Arc<Dialplan> {
    Arc::new(Dialplan {
        file: "hand.toml".into(),
        name: "hand".into(),
        numbers: vec!["1".into()],
        start: nodes[0].0.to_string(),
        operator: operator.map(str::to_string),
        timezone: chrono_tz::UTC,
        language: None,
        type_ahead: true,
        nodes: nodes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<HashMap<_, _>>(),
        version: "0".into(),
    })
}

#[test]
fn runaway_guard_ends_an_unchecked_loop_with_a_zero_out() {
    // check rejects this plan; the interpreter must still never spin
    let plan = hand_built(
        vec![
            ("a", Node::Goto(Goto { target: "b".into() })),
            ("b", Node::Goto(Goto { target: "a".into() })),
        ],
        Some("ops"),
    );
    let (s, out) = start_at(plan, monday_10am());
    assert_eq!(
        out,
        vec![Action::Enqueue {
            queue: "ops".into(),
            zero_out: true,
            priority: 0,
            max_wait: None,
            callback: None
        }]
    );
    assert_eq!(s.path().len(), MAX_STEPS_WITHOUT_INPUT);
    assert_eq!(zero_out_reasons(&s), vec![ZeroOutReason::Guard]);
}

#[test]
fn a_missing_node_in_an_unchecked_plan_zero_outs() {
    let plan = hand_built(
        vec![(
            "a",
            Node::Goto(Goto {
                target: "nope".into(),
            }),
        )],
        None,
    );
    let mut s = Session::new(plan, Some("global-ops".into()));
    let mut out = Vec::new();
    s.handle(
        Event::Started(CallInfo {
            caller: String::new(),
            dialed: "1".into(),
            now: monday_10am(),
        }),
        &mut out,
    );
    assert!(
        matches!(&out[..], [Action::Enqueue { queue, zero_out: true, .. }] if queue == "global-ops")
    );
    assert_eq!(zero_out_reasons(&s), vec![ZeroOutReason::MissingNode]);
}

#[test]
fn operator_queue_resolution() {
    let with = load(PLAN);
    assert_eq!(
        Session::new(Arc::clone(&with), Some("g".into())).operator_queue(),
        "operator"
    );
    let without = hand_built(vec![("a", Node::Hangup(Hangup { prompt: vec![] }))], None);
    assert_eq!(
        Session::new(Arc::clone(&without), Some("g".into())).operator_queue(),
        "g"
    );
    assert_eq!(
        Session::new(without, None).operator_queue(),
        FALLBACK_OPERATOR_QUEUE
    );
}

#[test]
fn a_global_operator_satisfies_the_operator_rule() {
    let src = r#"
[dialplan]
numbers = ["1"]
start = "m"
[nodes.m]
type = "menu"
prompt = "main-menu"
"#;
    assert!(load_str(Path::new("x.toml"), src, &CheckContext::default()).is_err());
    let ctx = CheckContext {
        global_operator: Some("reception".into()),
        ..CheckContext::default()
    };
    let (plan, warnings) = load_str(Path::new("x.toml"), src, &ctx).expect("loads");
    assert!(warnings.is_empty());
    let mut s = Session::new(Arc::new(plan), ctx.global_operator.clone());
    let mut out = Vec::new();
    s.handle(
        Event::Started(CallInfo {
            caller: String::new(),
            dialed: "1".into(),
            now: monday_10am(),
        }),
        &mut out,
    );
    s.handle(Event::Digit('0'), &mut out);
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Queued {
            queue: "reception".into(),
            zero_out: true
        })
    );
}

#[test]
fn fixture_context_is_usable() {
    // keeps the shared helper compiled in this test binary
    assert!(common::fixture_ctx().queues.is_some());
}
