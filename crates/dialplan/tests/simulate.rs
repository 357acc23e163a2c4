//! `simulate`: the scripted shell and its printed trace, on the shipped demo.

mod common;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use ringback_dialplan::*;

fn demo(file: &str) -> Arc<Dialplan> {
    let path = common::repo().join("dialplans").join(file);
    match common::load_file(&path, &CheckContext::default()) {
        Ok((p, _)) => Arc::new(p),
        Err(e) => panic!("{e:?}"),
    }
}

fn monday_10am() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap()
}

/// Made-up prompt lengths: the greeting lasts 3 s, everything else 2 s.
fn lengths() -> std::collections::HashMap<String, std::time::Duration> {
    [
        "welcome",
        "main-menu",
        "opening-hours",
        "thank-you",
        "support-menu",
        "please-hold",
    ]
    .iter()
    .map(|p| {
        let secs = if *p == "welcome" { 3 } else { 2 };
        (p.to_string(), std::time::Duration::from_secs(secs))
    })
    .collect()
}

fn run(plan: Arc<Dialplan>, digits: &str, now: DateTime<Utc>) -> SimReport {
    let script = SimScript {
        digits: parse_sim_inputs(digits).expect("valid digits"),
        caller: "+15551230000".into(),
        now,
        prompt_lengths: lengths(),
        lookups: Default::default(),
    };
    simulate(plan, &script, None)
}

fn header(plan: &Dialplan, at: &str) -> String {
    format!(
        "simulating `{}` ({}, version {}): +15551230000 calls 1000 at {at}\n",
        plan.name,
        plan.file.display(),
        plan.version
    )
}

#[test]
fn digit_lists_parse_like_the_cli_documents() {
    use SimInput::{Digit as D, Wait as W};
    assert_eq!(
        parse_sim_inputs("1,2,w,-,0"),
        Ok(vec![D('1'), D('2'), W, W, D('0')])
    );
    assert_eq!(
        parse_sim_inputs(" 2 , 1234# ,*"),
        Ok(vec![D('2'), D('1'), D('2'), D('3'), D('4'), D('#'), D('*')])
    );
    assert_eq!(parse_sim_inputs(""), Ok(vec![]));
    assert_eq!(parse_sim_inputs("W,"), Ok(vec![W]));
    let err = parse_sim_inputs("1,x").expect_err("x is not a key");
    assert!(err.contains("`x`"), "{err}");
}

#[test]
fn zero_out_three_menus_deep_prints_the_whole_path() {
    let plan = demo("main.toml");
    let report = run(Arc::clone(&plan), "2,2,0", monday_10am());
    let expected = header(&plan, "2026-11-23T15:00:00Z")
        + " 1  [hours]       business hours (America/New_York, Mon 2026-11-23 10:00): open → welcome
 2  [welcome]     ▶ welcome (no barge-in)
 3  [main]        ▶ main-menu
 4                caller pressed 2 → support
 5  [support]     ▶ support-menu
 6                caller pressed 2 → phone-line
 7  [phone-line]  ▶ phone-line-menu
 8                caller pressed 0 → operator (zero-out)
 9                ⇒ queue `operator` (zero-out)
 => queued in `operator` (zero-out) after path hours > welcome > main > support > phone-line; digits 2,2,0
";
    assert_eq!(report.to_string(), expected);
    assert_eq!(
        report.outcome,
        Some(Outcome::Queued {
            queue: "operator".into(),
            zero_out: true
        })
    );
    // digits barged in: every menu prompt was stopped, no timer ever ran
    assert_eq!(
        report
            .actions
            .iter()
            .filter(|a| **a == Action::StopPlayback)
            .count(),
        3
    );
    assert!(!report
        .actions
        .iter()
        .any(|a| matches!(a, Action::StartTimer { .. })));
}

#[test]
fn a_silent_caller_is_asked_again_then_reaches_the_operator() {
    let plan = demo("main.toml");
    let report = run(Arc::clone(&plan), "", monday_10am());
    let expected = header(&plan, "2026-11-23T15:00:00Z")
        + " 1  [hours]    business hours (America/New_York, Mon 2026-11-23 10:00): open → welcome
 2  [welcome]  ▶ welcome (no barge-in)
 3  [main]     ▶ main-menu   … waiting for a digit (5 s)
 4             no input (timeout)
 5             no input: attempt 1 of 3, asking again
 6             ▶ no-input, main-menu   … waiting for a digit (5 s)
 7             no input (timeout)
 8             no input: attempt 2 of 3, asking again
 9             ▶ no-input, main-menu   … waiting for a digit (5 s)
10             no input (timeout)
11             zero-out to a human (too many failed attempts)
12             ⇒ queue `operator` (zero-out)
 => queued in `operator` (zero-out) after path hours > welcome > main; no digits
";
    assert_eq!(report.to_string(), expected);
}

#[test]
fn closed_on_a_holiday_plays_the_closing_prompts_and_hangs_up() {
    let plan = demo("main.toml");
    let christmas = Utc.with_ymd_and_hms(2026, 12, 25, 15, 0, 0).unwrap();
    let report = run(Arc::clone(&plan), "1", christmas);
    let expected = header(&plan, "2026-12-25T15:00:00Z")
        + " 1  [hours]   business hours (America/New_York, Fri 2026-12-25 10:00): closed (holiday) → closed
 2  [closed]  ▶ closed, opening-hours, goodbye (no barge-in)
 3            hang up
 => hung up by the plan after path hours > closed; no digits
    unused input: 1
";
    assert_eq!(report.to_string(), expected);
    assert_eq!(report.actions.last(), Some(&Action::Hangup));
}

#[test]
fn saturday_afternoon_and_sunday_are_closed_saturday_morning_is_open() {
    let plan = demo("main.toml");
    let at = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
    // Sat 2026-11-28 10:00 EST
    assert_eq!(run(Arc::clone(&plan), "1", at(28, 15)).path[1], "welcome");
    // Sat 13:00 EST: closed
    assert_eq!(run(Arc::clone(&plan), "1", at(28, 18)).path[1], "closed");
    // Sun 10:00 EST: closed
    assert_eq!(run(Arc::clone(&plan), "1", at(29, 15)).path[1], "closed");
    // Mon 19:59 EST open, 20:00 closed
    let late = Utc.with_ymd_and_hms(2026, 11, 24, 0, 59, 0).unwrap();
    assert_eq!(run(Arc::clone(&plan), "1", late).path[1], "welcome");
    assert_eq!(run(plan, "1", at(24, 1)).path[1], "closed");
}

#[test]
fn gather_entry_reaches_the_support_queue_with_variables() {
    let plan = demo("main.toml");
    let report = run(plan, "2,2,2,1234#", monday_10am());
    assert_eq!(
        report.path,
        [
            "hours",
            "welcome",
            "main",
            "support",
            "phone-line",
            "account",
            "fault",
            "support-queue"
        ]
    );
    assert_eq!(report.vars["account"], "1234");
    assert_eq!(report.vars["topic"], "phone-line-fault");
    let text = report.to_string();
    assert!(text.contains("caller entered 1,2,3,4\n"), "{text}");
    assert!(text.contains("entry complete: account = 1234"), "{text}");
    assert!(
        text.contains("    vars: account=1234, topic=phone-line-fault\n"),
        "{text}"
    );
    assert!(matches!(
        report.actions.last(),
        Some(Action::Enqueue { queue, callback: Some(_), .. }) if queue == "support"
    ));
}

#[test]
fn waiting_then_choosing_and_leftover_input() {
    let plan = demo("main.toml");
    // w: let the first prompt time out, then 1 barges into the replay
    let report = run(Arc::clone(&plan), "w,1,5,5", monday_10am());
    assert_eq!(report.path, ["hours", "welcome", "main", "billing"]);
    assert_eq!(
        report.unused,
        vec![SimInput::Digit('5'), SimInput::Digit('5')]
    );
    assert!(report.to_string().contains("    unused input: 5,5\n"));
    // outage info plays, then returns to the phone-line menu
    let report = run(plan, "2,2,1,0", monday_10am());
    assert_eq!(
        report.path,
        [
            "hours",
            "welcome",
            "main",
            "support",
            "phone-line",
            "outage-info",
            "phone-line"
        ]
    );
    assert_eq!(report.digits, "2210");
}

#[test]
fn the_direct_support_line_starts_at_its_menu() {
    let plan = demo("support-direct.toml");
    let report = run(plan, "2,87654321", monday_10am());
    assert_eq!(
        report.path,
        ["support", "account", "fault", "support-queue"]
    );
    assert_eq!(report.vars["account"], "87654321");
    assert_eq!(report.vars["source"], "direct-line");
    assert_eq!(report.dialed, "2000");
}

#[test]
fn a_caller_who_never_stops_pressing_is_cut_at_the_step_limit() {
    let src = r#"
[dialplan]
numbers = ["1"]
start = "m"
operator = "operator"
[nodes.m]
type = "menu"
prompt = "main-menu"
options = { "9" = "m" }
"#;
    let (plan, _) = load_str(Path::new("loop.toml"), src, &CheckContext::default()).expect("valid");
    let script = SimScript {
        digits: vec![SimInput::Digit('9'); 500],
        caller: String::new(),
        now: monday_10am(),
        prompt_lengths: Default::default(),
        lookups: Default::default(),
    };
    let report = simulate(Arc::new(plan), &script, None);
    assert_eq!(report.outcome, None);
    assert_eq!(report.steps, MAX_SIM_STEPS);
    assert_eq!(report.unused.len(), 500 - (MAX_SIM_STEPS - 1));
    let text = report.to_string();
    assert!(text.contains(" => no outcome after 200 events"), "{text}");
    assert!(text.contains("anonymous calls 1"), "{text}");
}

#[test]
fn a_transfer_is_an_outcome() {
    let src = r#"
[dialplan]
numbers = ["1"]
start = "m"
operator = "operator"
[nodes.m]
type = "menu"
prompt = "main-menu"
options = { "1" = "t" }
[nodes.t]
type = "transfer"
target = "sip:partner@example.com"
prompt = "transferring"
"#;
    let (plan, _) = load_str(Path::new("t.toml"), src, &CheckContext::default()).expect("valid");
    let report = run(Arc::new(plan), "1", monday_10am());
    let text = report.to_string();
    assert!(
        text.contains("⇒ transfer to sip:partner@example.com"),
        "{text}"
    );
    assert!(
        text.contains(" => transferred to sip:partner@example.com after path m > t; digits 1"),
        "{text}"
    );
}

#[test]
fn timed_keys_parse_and_must_be_in_order() {
    assert_eq!(
        parse_sim_inputs("0@1.5").expect("valid"),
        vec![SimInput::At('0', std::time::Duration::from_millis(1_500))]
    );
    assert!(parse_sim_inputs("12@1").is_err());
    assert!(parse_sim_inputs("1@soon").is_err());
    assert!(parse_sim_inputs("1@3,2@1").is_err());
}

#[test]
fn zero_pressed_during_the_greeting_reaches_the_operator() {
    // The greeting (3 s) is a play node: 0 at 1.5 s interrupts it.
    let report = run(demo("main.toml"), "0@1.5", monday_10am());
    assert_eq!(report.path, ["hours", "welcome"], "{report}");
    assert_eq!(
        report.outcome,
        Some(ringback_dialplan::Outcome::Queued {
            queue: "operator".into(),
            zero_out: true
        })
    );
    assert_eq!(report.digits, "0");
}

#[test]
fn a_key_typed_ahead_during_the_greeting_answers_the_menu() {
    // 1 at 1 s (during the 3 s greeting) is kept for the main menu.
    let report = run(demo("main.toml"), "1@1", monday_10am());
    assert_eq!(
        report.path,
        ["hours", "welcome", "main", "billing"],
        "{report}"
    );
    // 1 at 4 s lands during the main menu's prompt (3 s + 2 s).
    let report = run(demo("main.toml"), "1@4", monday_10am());
    assert_eq!(
        report.path,
        ["hours", "welcome", "main", "billing"],
        "{report}"
    );
    // 1 at 9 s is after the prompt, within the 5 s timeout.
    let report = run(demo("main.toml"), "1@9", monday_10am());
    assert_eq!(
        report.path,
        ["hours", "welcome", "main", "billing"],
        "{report}"
    );
}
