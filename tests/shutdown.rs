//! Shutdown as an operator sees it: SIGTERM ends an idle server at once, a
//! caller in the IVR gets a BYE first, and starting again right away binds
//! the same SIP and API ports.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::scenario::Uac;
use common::{free_udp_port, repo, Sipp};

/// A config on fixed ports (so a restart must bind the same ones).
fn config(dir: &std::path::Path, sip: u16, api: u16) -> std::path::PathBuf {
    let path = dir.join("ringback.toml");
    std::fs::write(
        &path,
        format!(
            r#"operator_queue = "operator"
[sip]
listen = "127.0.0.1:{sip}"
[rtp]
ip = "127.0.0.1"
port_min = {rtp}
port_max = {rtp_max}
threads = 1
[api]
listen = "127.0.0.1:{api}"
[dialplans]
dir = "{plans}"
watch = true
[prompts]
dir = "{prompts}"
[database]
url = "sqlite://data/ringback.db"
[queues.operator]
[queues.billing]
[queues.support]
[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#,
            rtp = 17_000 + (sip % 500) * 2,
            rtp_max = 17_000 + (sip % 500) * 2 + 200,
            plans = repo().join("dialplans").display(),
            prompts = repo().join("prompts").display(),
        ),
    )
    .expect("write config");
    path
}

/// Start and wait for the ready line; the log goes to `log`.
fn start(cfg: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringback"))
        .arg("--config")
        .arg(cfg)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn ringback");
    let mut first = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read ready line");
    assert!(first.starts_with("ringback ready"), "not ready: {first:?}");
    child
}

/// SIGTERM and the time until the process is gone.
fn terminate(child: &mut Child) -> Duration {
    let t0 = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let until = t0 + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "exit status {status}");
            return t0.elapsed();
        }
        assert!(Instant::now() < until, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn idle_sigterm_exits_at_once_and_a_restart_binds_the_same_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sip, api) = (free_udp_port(), free_udp_port());
    let cfg = config(dir.path(), sip, api);
    let mut first = start(&cfg, &dir.path().join("first.log"));
    // An agent logged in (its phone registered): a clean shutdown logs it
    // out, so the next start finds nothing left open.
    common::require_sipp();
    Sipp::from_xml(&common::scenario::register(
        "alice",
        "alice-secret",
        300,
        200,
    ))
    .run(std::net::SocketAddr::from(([127, 0, 0, 1], sip)), "alice")
    .assert_ok("REGISTER");
    let took = terminate(&mut first);
    assert!(took < Duration::from_secs(1), "idle shutdown took {took:?}");
    // Right away, on the same ports.
    let second_log = dir.path().join("second.log");
    let mut second = start(&cfg, &second_log);
    let took = terminate(&mut second);
    assert!(
        took < Duration::from_secs(1),
        "second shutdown took {took:?}"
    );
    let log = std::fs::read_to_string(&second_log).unwrap_or_default();
    assert!(
        !log.contains("left open by a previous run"),
        "a clean shutdown left something to repair:\n{log}"
    );
}

#[test]
fn sigterm_hangs_up_a_caller_first() {
    common::require_sipp();
    let dir = tempfile::tempdir().expect("tempdir");
    let (sip, api) = (free_udp_port(), free_udp_port());
    let cfg = config(dir.path(), sip, api);
    let mut server = start(&cfg, &dir.path().join("server.log"));
    // A caller on the support line, listening to the menu, until BYE.
    let caller = Sipp::from_xml(&Uac::new().invite().expect_bye(15_000).xml())
        .spawn(std::net::SocketAddr::from(([127, 0, 0, 1], sip)), "2000");
    std::thread::sleep(Duration::from_millis(1_500));
    let took = terminate(&mut server);
    caller
        .wait()
        .assert_ok("caller got BYE from the shutting-down server");
    assert!(
        took < Duration::from_secs(2),
        "shutdown with a call took {took:?}"
    );
    // The call record was written before the exit.
    let rows = common::query_text(
        &dir.path().join("data/ringback.db"),
        "SELECT disposition, hangup_by FROM calls",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_ne!(rows[0][0].as_deref(), Some("in_progress"), "{rows:?}");
}
