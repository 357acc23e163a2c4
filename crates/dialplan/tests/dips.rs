//! `lookup` and `say` nodes: what `check` reports (with `file:line:col`),
//! how the interpreter asks, maps the answer or falls back, what it says,
//! and `simulate` with a faked answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use ringback_dialplan::*;

const PLAN: &str = r##"
[dialplan]
numbers = ["2000"]
start = "ask"
operator = "operator"

[nodes.ask]
type = "gather"
prompt = "enter-order"
var = "order"
max_digits = 8
next = "status"

[nodes.status]
type = "lookup"
lookup = "orders"
vars = { status = "status", ship_date = "shipping.date" }
next = "tell"
fallback = "sorry"

[nodes.tell]
type = "say"
say = ["your-order", "{order:digits}", "order-ships-on", "{ship_date:date}"]
next = "bye"
fallback = "sorry"

[nodes.sorry]
type = "play"
prompt = "order-status-unavailable"
next = "agent"

[nodes.agent]
type = "queue"
queue = "operator"

[nodes.bye]
type = "hangup"
prompt = "goodbye"
"##;

fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every prompt the plan and the `say` formats need.
fn prompts() -> HashSet<String> {
    let mut p = set(&[
        "enter-order",
        "your-order",
        "order-ships-on",
        "order-status-unavailable",
        "goodbye",
    ]);
    for f in SayFormat::ALL {
        p.extend(f.prompts());
    }
    p
}

fn ctx() -> CheckContext {
    CheckContext {
        prompts: Some(prompts()),
        queues: Some(set(&["operator"])),
        global_operator: None,
        lookups: Some(set(&["orders"])),
    }
}

fn plan() -> Arc<Dialplan> {
    let (plan, warnings) = load_str(Path::new("orders.toml"), PLAN, &ctx()).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    Arc::new(plan)
}

/// Start the call and enter order 4512#: the session asks the lookup.
fn at_lookup() -> (Session, Vec<Action>) {
    let mut s = Session::new(plan(), None);
    let mut out = Vec::new();
    s.handle(
        Event::Started(CallInfo {
            caller: "+15550123".into(),
            dialed: "2000".into(),
            now: Utc
                .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
                .single()
                .expect("time"),
        }),
        &mut out,
    );
    s.handle(Event::PlaybackDone, &mut out);
    for d in "4512#".chars() {
        s.handle(Event::Digit(d), &mut out);
    }
    (s, out)
}

fn plays(out: &[Action]) -> Vec<Vec<String>> {
    out.iter()
        .filter_map(|a| match a {
            Action::Play { prompts, .. } => Some(prompts.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lookup_asks_with_the_caller_and_the_variables() {
    let (s, out) = at_lookup();
    let Some(Action::Lookup {
        lookup,
        caller,
        vars,
    }) = out.last()
    else {
        panic!("{out:?}");
    };
    assert_eq!(lookup, "orders");
    assert_eq!(caller, "+15550123");
    assert_eq!(vars, &BTreeMap::from([("order".into(), "4512".into())]));
    assert_eq!(s.current_node(), Some("status"));
    assert!(!s.is_finished());
}

#[test]
fn a_good_answer_sets_variables_and_the_say_node_speaks_them() {
    let (mut s, _) = at_lookup();
    let mut out = Vec::new();
    s.handle(
        Event::LookupAnswered(r#"{"status":"shipped","shipping":{"date":"2026-03-03"}}"#.into()),
        &mut out,
    );
    assert_eq!(s.vars()["status"], "shipped");
    assert_eq!(s.vars()["ship_date"], "2026-03-03");
    assert_eq!(
        plays(&out),
        [[
            "your-order",
            "digit-4",
            "digit-5",
            "digit-1",
            "digit-2",
            "order-ships-on",
            "day-tuesday",
            "say-the",
            "ord-3",
            "say-of",
            "month-march"
        ]
        .map(String::from)
        .to_vec()]
    );
    // No barge-in, but 0 still reaches a human.
    assert!(matches!(
        out.last(),
        Some(Action::Play {
            barge_in: false,
            ..
        })
    ));
    let mut out = Vec::new();
    s.handle(Event::Digit('0'), &mut out);
    assert!(matches!(
        out.last(),
        Some(Action::Enqueue { zero_out: true, .. })
    ));
}

#[test]
fn failures_bad_answers_and_unspeakable_values_take_the_fallback() {
    for (event, why) in [
        (
            Event::LookupFailed("no answer within 2000 ms".into()),
            "2000 ms",
        ),
        (Event::LookupAnswered("<html>".into()), "bad JSON"),
        (
            Event::LookupAnswered(r#"{"status":"x"}"#.into()),
            "shipping.date",
        ),
    ] {
        let (mut s, _) = at_lookup();
        let mut out = Vec::new();
        s.handle(event, &mut out);
        assert_eq!(plays(&out), [vec!["order-status-unavailable".to_string()]]);
        assert_eq!(s.current_node(), Some("sorry"));
        let failed = s.trace().iter().any(|st| {
            matches!(&st.kind, StepKind::LookupFailed { reason, fallback } if reason.contains(why) && fallback == "sorry")
        });
        assert!(failed, "{why}: {:?}", s.trace());
    }
    // The answer maps, but the date cannot be said: the say node's fallback.
    let (mut s, _) = at_lookup();
    let mut out = Vec::new();
    s.handle(
        Event::LookupAnswered(r#"{"status":"late","shipping":{"date":"soon"}}"#.into()),
        &mut out,
    );
    assert_eq!(plays(&out), [vec!["order-status-unavailable".to_string()]]);
}

#[test]
fn zero_during_a_lookup_reaches_a_human_and_the_late_answer_is_ignored() {
    let (mut s, _) = at_lookup();
    let mut out = Vec::new();
    s.handle(Event::Digit('0'), &mut out);
    assert!(matches!(
        out.last(),
        Some(Action::Enqueue { zero_out: true, .. })
    ));
    let mut out = Vec::new();
    s.handle(Event::LookupAnswered(r#"{"status":"x"}"#.into()), &mut out);
    assert!(out.is_empty(), "{out:?}");
    // Other keys wait for the answer.
    let (mut s, _) = at_lookup();
    let mut out = Vec::new();
    s.handle(Event::Digit('5'), &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(s.current_node(), Some("status"));
}

#[test]
fn simulate_takes_a_faked_answer_or_fails_the_lookup() {
    let script = |lookups: HashMap<String, String>| SimScript {
        digits: parse_sim_inputs("4512#").expect("digits"),
        caller: "+15550123".into(),
        now: Utc
            .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
            .single()
            .expect("time"),
        prompt_lengths: HashMap::new(),
        lookups,
    };
    let answer = r#"{"status":"shipped","shipping":{"date":"2026-03-03"}}"#;
    let report = simulate(
        plan(),
        &script(HashMap::from([("orders".to_string(), answer.to_string())])),
        None,
    );
    assert_eq!(report.path, ["ask", "status", "tell", "bye"]);
    assert_eq!(report.vars["ship_date"], "2026-03-03");
    let text = report.to_string();
    assert!(
        text.contains("lookup answered: ship_date=2026-03-03, status=shipped"),
        "{text}"
    );
    let report = simulate(plan(), &script(HashMap::new()), None);
    assert_eq!(report.path, ["ask", "status", "sorry", "agent"]);
    assert!(
        report
            .to_string()
            .contains("lookup failed (no answer given"),
        "{report}"
    );
}

fn errors(src: &str) -> Vec<String> {
    match load_str(Path::new("x.toml"), src, &ctx()) {
        Ok((_, w)) => w.iter().map(|d| d.to_string()).collect(),
        Err(e) => e.iter().map(|d| d.to_string()).collect(),
    }
}

const HEAD: &str = "[dialplan]\nnumbers = [\"1\"]\nstart = \"a\"\noperator = \"operator\"\n\n[nodes.q]\ntype = \"queue\"\nqueue = \"operator\"\n\n";

#[test]
fn check_reports_lookups_and_say_formats_at_their_place() {
    let cases = [
        (
            "[nodes.a]\ntype = \"lookup\"\nlookup = \"order\"\nnext = \"q\"\nfallback = \"q\"\n",
            "x.toml:12:10: error: lookup `order` is not defined in ringback.toml (no [lookups.order]) (did you mean `orders`?); known lookups: orders",
        ),
        (
            "[nodes.a]\ntype = \"lookup\"\nlookup = \"orders\"\nnext = \"q\"\n",
            "missing required key `fallback`",
        ),
        (
            "[nodes.a]\ntype = \"lookup\"\nlookup = \"orders\"\nvars = { s = \"a..b\" }\nnext = \"q\"\nfallback = \"q\"\n",
            "x.toml:13:14: error: invalid path `a..b` for variable `s`",
        ),
        (
            "[nodes.a]\ntype = \"say\"\nsay = [\"goodbye\", \"{n:nmber}\"]\nnext = \"q\"\n",
            "x.toml:12:19: error: unknown say format `nmber` in `{n:nmber}` (did you mean `number`?)",
        ),
        (
            "[nodes.a]\ntype = \"say\"\nsay = [\"{n}\"]\nnext = \"q\"\n",
            "x.toml:12:8: error: `{n}` has no format",
        ),
        (
            "[nodes.a]\ntype = \"say\"\nsay = [\"nope\"]\nnext = \"q\"\n",
            "x.toml:12:8: error: prompt `nope` not found",
        ),
        (
            "[nodes.a]\ntype = \"say\"\nsay = [\"{total:amount}\"]\nnext = \"q\"\n",
            "x.toml:12:8: warning: variable `total` is not set by any gather, set or lookup node",
        ),
        (
            "[nodes.a]\ntype = \"say\"\nsay = []\n",
            "x.toml:12:7: error: `say` of node `a` is empty",
        ),
    ];
    for (nodes, expected) in cases {
        let src = format!("{HEAD}{nodes}");
        let got = errors(&src);
        assert!(
            got.iter()
                .any(|e| e.starts_with(expected) || e.contains(expected)),
            "{expected}\nnot in {got:#?}"
        );
    }
}

#[test]
fn check_reports_missing_number_prompts_of_a_format() {
    let mut c = ctx();
    if let Some(p) = c.prompts.as_mut() {
        p.remove("num-13");
    }
    let src = format!(
        "{HEAD}[nodes.a]\ntype = \"set\"\nvars = {{ n = \"13\" }}\nnext = \"b\"\n\n[nodes.b]\ntype = \"say\"\nsay = [\"{{n:number}}\", \"{{n:digits}}\"]\nnext = \"q\"\n"
    );
    let errs = load_str(Path::new("x.toml"), &src, &c).expect_err("num-13 missing");
    let msgs: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        msgs,
        ["x.toml:17:8: error: say format `number` needs 1 prompt(s) that are missing, e.g. prompts/num-13.wav (the shipped prompts/ has them all)"],
    );
}
