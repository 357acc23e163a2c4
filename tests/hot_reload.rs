//! Hot reload with calls in flight: a call keeps the dialplan version it
//! started with, new calls get the new one, and an invalid edit is rejected
//! while the last good version keeps serving.

mod common;

use std::time::Duration;

use common::scenario::Uac;
use common::{call_id_from_trace, Server, ServerOpts, Sipp};

fn plan(option_target: &str, extra: &str) -> String {
    format!(
        r#"[dialplan]
name = "reload"
numbers = ["100"]
start = "main"
operator = "operator"

[nodes.main]
type = "menu"
prompt = "digit-1"
options = {{ "1" = "{option_target}" }}
timeout = 10

[nodes.first]
type = "hangup"
prompt = "digit-2"

[nodes.second]
type = "hangup"
prompt = "digit-3"
{extra}"#
    )
}

/// Replace a file the way editors do (write a temp file, rename), so the
/// watcher never sees a half-written dialplan.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn press_one_call() -> Uac {
    Uac::new()
        .invite()
        .pause(200)
        .info_digit('1')
        .expect_bye(10_000)
}

#[test]
fn calls_keep_their_version_and_bad_edits_are_rejected() {
    let srv = Server::start(ServerOpts {
        dialplans: vec![("reload.toml".into(), plan("first", ""))],
        ..ServerOpts::default()
    });
    let file = srv.dialplans().join("reload.toml");

    // Call A starts on version 1 and presses 1 only after the reload.
    let call_a = Uac::new()
        .invite()
        .pause(4_000)
        .info_digit('1')
        .expect_bye(10_000);
    let a = Sipp::from_xml(&call_a.xml()).spawn(srv.sip, "100");
    std::thread::sleep(Duration::from_millis(800));

    replace(&file, &plan("second", ""));
    assert!(
        srv.wait_log("dialplans reloaded", 1, Duration::from_secs(5)),
        "no reload after a valid edit:\n{}",
        srv.log()
    );

    // Call B starts on version 2.
    let b = Sipp::from_xml(&press_one_call().xml()).run(srv.sip, "100");
    b.assert_ok("call B");
    let a = a.wait();
    a.assert_ok("call A");

    let cdr_a = srv.wait_cdr(
        &call_id_from_trace(&a.messages).expect("A id"),
        Duration::from_secs(5),
    );
    let cdr_b = srv.wait_cdr(
        &call_id_from_trace(&b.messages).expect("B id"),
        Duration::from_secs(5),
    );
    assert_eq!(
        cdr_a.path, "main > first",
        "call A must finish on the version it started with"
    );
    assert_eq!(
        cdr_b.path, "main > second",
        "call B must get the new version"
    );
    assert_ne!(cdr_a.dialplan_version, cdr_b.dialplan_version);
    let versions = srv.dialplan_versions();
    assert!(versions.len() >= 2, "both versions recorded: {versions:?}");

    // An invalid edit: the goto target does not exist.
    replace(&file, &plan("thrid", ""));
    assert!(
        srv.wait_log("reload rejected", 1, Duration::from_secs(5)),
        "invalid edit not reported:\n{}",
        srv.log()
    );
    let log = srv.log();
    assert!(
        log.contains("reload.toml:10:") && log.contains("thrid"),
        "error must point at file:line:col of the bad target:\n{log}"
    );
    let c = Sipp::from_xml(&press_one_call().xml()).run(srv.sip, "100");
    c.assert_ok("call C after a rejected edit");
    let cdr_c = srv.wait_cdr(
        &call_id_from_trace(&c.messages).expect("C id"),
        Duration::from_secs(5),
    );
    assert_eq!(
        cdr_c.path, "main > second",
        "the last good version keeps serving"
    );
    assert_eq!(cdr_c.dialplan_version, cdr_b.dialplan_version);
}

#[test]
fn sighup_reloads() {
    let srv = Server::start(ServerOpts {
        dialplans: vec![("reload.toml".into(), plan("first", ""))],
        ..ServerOpts::default()
    });
    srv.signal("HUP");
    assert!(
        srv.wait_log("SIGHUP", 1, Duration::from_secs(5))
            && srv.wait_log("dialplans reloaded", 1, Duration::from_secs(5)),
        "SIGHUP did not reload:\n{}",
        srv.log()
    );
}
