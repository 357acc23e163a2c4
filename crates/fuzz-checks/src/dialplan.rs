//! `dialplan`: the text of a dialplan file.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use ringback_dialplan::{
    content_version, load_str, simulate, CheckContext, Diagnostic, DialplanSet, SimInput, SimScript,
};

const FILE: &str = "dialplans/fuzz.toml";

/// Runs `data` as the contents of a `dialplans/*.toml` file through the loader and
/// checker ([`load_str`], the text half of the `load_dir`/`load_file` the server and
/// `ringback check` call), once without and once with a server context (known prompts,
/// queues, global operator). A plan that loads is put in a [`DialplanSet`] and driven
/// through the interpreter by [`simulate`] with a fixed caller script.
///
/// Bytes that are not UTF-8 never reach the parser (`read_to_string` fails first), so
/// they are skipped.
///
/// Invariants: nothing panics; `Err` holds at least one error; every diagnostic names
/// the file and a `line:col` inside the text (1-based, column at most one past the end
/// of its line) and renders as `file:line:col: severity: message`; `Ok` holds no error
/// and a plan whose start node exists and which answers at least one number.
pub fn dialplan(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(content_version(text).len(), 12);
    let set = |items: &[&str]| -> HashSet<String> { items.iter().map(|s| s.to_string()).collect() };
    let server = CheckContext {
        prompts: Some(set(&[
            "welcome",
            "main-menu",
            "support-menu",
            "invalid-option",
            "no-input",
            "enter-account",
            "goodbye",
            "closed",
        ])),
        queues: Some(set(&["operator", "support", "billing"])),
        global_operator: Some("operator".into()),
        lookups: Some(set(&["orders"])),
    };
    for ctx in [CheckContext::default(), server] {
        match load_str(Path::new(FILE), text, &ctx) {
            Ok((plan, warnings)) => {
                for d in &warnings {
                    assert!(!d.is_error(), "Ok with an error: {d}");
                    check_position(d, text);
                }
                assert!(
                    plan.nodes.contains_key(&plan.start),
                    "start node {:?} missing",
                    plan.start
                );
                assert!(!plan.numbers.is_empty(), "plan answers no number");
                let plan = Arc::new(plan);
                let plans = DialplanSet::new(vec![(*plan).clone()]);
                for n in &plan.numbers {
                    assert!(plans.for_number(n).is_some(), "number {n:?} not routed");
                }
                run_calls(plan, ctx.global_operator.clone());
            }
            Err(diags) => {
                assert!(
                    diags.iter().any(Diagnostic::is_error),
                    "Err without an error"
                );
                for d in &diags {
                    check_position(d, text);
                }
            }
        }
    }
}

fn check_position(d: &Diagnostic, text: &str) {
    assert_eq!(d.file, Path::new(FILE), "diagnostic for another file: {d}");
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&d.line),
        "line {} outside a {}-line file: {d}",
        d.line,
        lines.len()
    );
    let width = lines[d.line - 1].chars().count();
    assert!(
        (1..=width + 1).contains(&d.col),
        "column {} outside line {} ({width} characters): {d}",
        d.col,
        d.line
    );
    let rendered = d.to_string();
    let prefix = format!("{FILE}:{}:{}: {}: ", d.line, d.col, d.severity);
    assert!(rendered.starts_with(&prefix), "rendered as {rendered:?}");
}

/// A few callers through the plan: pressing through menus, zeroing out, timing out.
fn run_calls(plan: Arc<ringback_dialplan::Dialplan>, global_operator: Option<String>) {
    use SimInput::{Digit, Wait};
    let scripts: [&[SimInput]; 3] = [
        &[
            Digit('1'),
            Digit('2'),
            Digit('3'),
            Digit('4'),
            Digit('#'),
            Wait,
        ],
        &[Digit('0')],
        &[Wait, Wait, Wait, Wait, Digit('9'), Digit('*'), Wait, Wait],
    ];
    for (i, digits) in scripts.iter().enumerate() {
        let script = SimScript {
            digits: digits.to_vec(),
            caller: "+15550100".into(),
            // Different days and times of day, so `hours` nodes go both ways.
            now: Utc
                .with_ymd_and_hms(2024, 3, 4 + 2 * i as u32, 17 - 7 * i as u32, 0, 0)
                .single()
                .unwrap_or_default(),
            prompt_lengths: Default::default(),
            lookups: Default::default(),
        };
        let report = simulate(Arc::clone(&plan), &script, global_operator.clone());
        let _ = report.to_string();
    }
}
