//! After-hours callbacks: a `callback` node's `when_open` names an `hours`
//! node, and a request made while those hours are closed is not dialed
//! before their next opening.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use ringback_dialplan::*;

const PLAN: &str = r##"
[dialplan]
numbers = ["1000"]
start = "hours"
operator = "operator"
timezone = "America/New_York"

[nodes.hours]
type = "hours"
open = [ { days = "mon-fri", from = "09:00", to = "17:00" } ]
holidays = ["2026-11-26"]
open_next = "open"
closed_next = "closed"

[nodes.open]
type = "queue"
queue = "support"

[nodes.closed]
type = "menu"
prompt = "closed-callback-offer"
options = { "1" = "later" }
on_fail = "bye"

[nodes.later]
type = "callback"
queue = "support"
when_open = "hours"
confirm_prompt = "callback-when-open"

[nodes.bye]
type = "hangup"
prompt = "goodbye"
"##;

fn load(src: &str) -> Result<Dialplan, Vec<String>> {
    load_str(Path::new("test.toml"), src, &CheckContext::default())
        .map(|(p, _)| p)
        .map_err(|e| e.iter().map(|d| d.to_string()).collect())
}

fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0)
        .single()
        .expect("valid time")
}

/// Starts a call at `now`, presses `keys`, and returns the callback the
/// plan requested.
fn callback_at(now: DateTime<Utc>, keys: &str) -> Option<(String, Option<DateTime<Utc>>)> {
    let plan = Arc::new(load(PLAN).expect("plan loads"));
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
    for d in keys.chars() {
        s.handle(Event::Digit(d), &mut out);
    }
    out.into_iter().find_map(|a| match a {
        Action::Callback { queue, not_before } => Some((queue, not_before)),
        _ => None,
    })
}

#[test]
fn a_request_in_the_evening_waits_for_the_next_morning() {
    // Mon 2026-11-23 20:00 in New York (01:00 UTC on Tuesday).
    let got = callback_at(utc(24, 1, 0), "1");
    // Tue 09:00 in New York = 14:00 UTC.
    assert_eq!(got, Some(("support".into(), Some(utc(24, 14, 0)))));
}

#[test]
fn a_request_on_the_eve_of_a_holiday_waits_past_it() {
    // Wed 2026-11-25 18:00 New York; Thursday is a holiday → Friday 09:00.
    let got = callback_at(utc(25, 23, 0), "1");
    assert_eq!(got, Some(("support".into(), Some(utc(27, 14, 0)))));
}

#[test]
fn a_request_on_friday_night_waits_for_monday() {
    // Fri 2026-11-27 22:00 New York → Mon 2026-11-30 09:00 (14:00 UTC).
    let got = callback_at(utc(28, 3, 0), "1");
    assert_eq!(got, Some(("support".into(), Some(utc(30, 14, 0)))));
}

#[test]
fn the_trace_names_the_opening() {
    let plan = Arc::new(load(PLAN).expect("plan loads"));
    let mut s = Session::new(plan, None);
    let mut out = Vec::new();
    s.handle(
        Event::Started(CallInfo {
            caller: "+15551234567".into(),
            dialed: "1000".into(),
            now: utc(24, 1, 0),
        }),
        &mut out,
    );
    s.handle(Event::Digit('1'), &mut out);
    let trace: Vec<String> = s.trace().iter().map(|t| t.kind.to_string()).collect();
    assert!(
        trace.iter().any(|t| {
            t.contains(
            "callback requested in `support`, not dialed before the opening at 2026-11-24T14:00:00Z"
        )
        }),
        "{trace:#?}"
    );
}

#[test]
fn a_callback_node_reached_while_open_is_not_held_back() {
    // The same callback node reached during opening hours (through a plan
    // that goes there directly) may be dialed at once.
    let src = PLAN.replace("start = \"hours\"", "start = \"later\"");
    let plan = Arc::new(load(&src).expect("plan loads"));
    let mut s = Session::new(plan, None);
    let mut out = Vec::new();
    s.handle(
        Event::Started(CallInfo {
            caller: "+15551234567".into(),
            dialed: "1000".into(),
            // Mon 2026-11-23 10:00 New York.
            now: utc(23, 15, 0),
        }),
        &mut out,
    );
    assert!(
        out.contains(&Action::Callback {
            queue: "support".into(),
            not_before: None
        }),
        "{out:?}"
    );
}

#[test]
fn when_open_must_name_an_hours_node() {
    let errs = load(&PLAN.replace("when_open = \"hours\"", "when_open = \"hour\""))
        .expect_err("unknown node");
    assert!(
        errs.iter().any(
            |e| e.contains("unknown node `hour` in when_open of node `later`")
                && e.contains("did you mean `hours`")
        ),
        "{errs:#?}"
    );
    let errs = load(&PLAN.replace("when_open = \"hours\"", "when_open = \"bye\""))
        .expect_err("not an hours node");
    assert!(
        errs.iter()
            .any(|e| e.contains("when_open of node `later` names `bye`, a hangup node")),
        "{errs:#?}"
    );
    let errs =
        load(&PLAN.replace("when_open = \"hours\"", "when_open = 3")).expect_err("not a string");
    assert!(errs.iter().any(|e| e.contains("when_open")), "{errs:#?}");
}
