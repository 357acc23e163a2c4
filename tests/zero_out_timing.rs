//! `ringback simulate` and a real call agree on keys pressed *during*
//! prompts: a SIPp caller presses a key one second into the call, while the
//! greeting (a play node) is still playing, and `simulate --digits K@1`
//! must report the same path and digits as the call record.
//!
//! The greeting yields to `0` (zero-out at any moment) and keeps any other
//! key for the menu that follows (type-ahead).

mod common;

use std::process::Command;
use std::time::Duration;

use common::scenario::Uac;
use common::{call_id_from_trace, Server, ServerOpts, Sipp};

const PLAN: &str = r#"
[dialplan]
name = "timing"
numbers = ["300"]
start = "greeting"
operator = "operator"

[nodes.greeting]
type = "play"
prompt = "welcome"
next = "main"

[nodes.main]
type = "menu"
prompt = "main-menu"
options = { "1" = "sales" }

[nodes.sales]
type = "queue"
queue = "billing"
"#;

/// What `simulate` says: (path, digits) from its closing line.
fn simulated(srv: &Server, digits: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringback"))
        .arg("--config")
        .arg(srv.dir.path().join("ringback.toml"))
        .arg("simulate")
        .arg(srv.dialplans().join("timing.toml"))
        .arg("--digits")
        .arg(digits)
        .output()
        .expect("run simulate");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "simulate failed:\n{text}");
    let line = text
        .lines()
        .find(|l| l.contains(" after path "))
        .unwrap_or_else(|| panic!("no outcome line in:\n{text}"));
    let rest = line.split(" after path ").nth(1).unwrap_or_default();
    let (path, digits) = rest.split_once("; ").unwrap_or((rest, ""));
    let digits = digits
        .strip_prefix("digits ")
        .unwrap_or("")
        .replace(',', "");
    (path.to_string(), digits)
}

/// What a real call does when the caller presses `key` one second in.
fn real_call(srv: &Server, key: char) -> (String, String) {
    let caller = Uac::new()
        .invite()
        .pause(1_000)
        .info_digit(key)
        .pause(2_000)
        .bye();
    let run = Sipp::from_xml(&caller.xml()).run(srv.sip, "300");
    run.assert_ok("caller");
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&run.messages).expect("call id"),
        Duration::from_secs(5),
    );
    (cdr.path, cdr.digits)
}

fn server() -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("timing.toml".into(), PLAN.into())],
        ..ServerOpts::default()
    })
}

#[test]
fn zero_during_the_greeting_reaches_the_operator_in_both() {
    let srv = server();
    let sim = simulated(&srv, "0@1");
    assert_eq!(sim, ("greeting".to_string(), "0".to_string()));
    assert_eq!(real_call(&srv, '0'), sim);
    let cdrs = srv.cdrs();
    assert_eq!(cdrs[0].queue.as_deref(), Some("operator"), "{cdrs:?}");
}

#[test]
fn a_key_typed_during_the_greeting_answers_the_menu_in_both() {
    let srv = server();
    let sim = simulated(&srv, "1@1");
    assert_eq!(
        sim,
        ("greeting > main > sales".to_string(), "1".to_string())
    );
    assert_eq!(real_call(&srv, '1'), sim);
}
