//! The order-status demo (examples/order-status) with real parts: a SIPp
//! caller enters an order number, ringback's `lookup` node asks a local HTTP
//! server started by the test, and the `say` path follows its answer. With
//! the server stopped, or answering nothing, the caller takes the fallback
//! within the lookup's timeout.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::scenario::Uac;
use common::{call_id_from_trace, Server, ServerOpts, Sipp};

const DEMO: &str = include_str!("../examples/order-status/order-status.toml");
const ANSWER: &str = include_str!("../examples/order-status/order-4512.json");

/// An HTTP server answering every request with `ANSWER`; the request lines
/// it saw.
fn orders_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            s.lock()
                .expect("lock")
                .push(head.lines().next().unwrap_or("").to_string());
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ANSWER}",
                ANSWER.len()
            );
        }
    });
    (port, seen)
}

fn server(port: u16, timeout_ms: u64) -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("order-status.toml".into(), DEMO.into())],
        extra_config: format!(
            "\n[lookups.orders]\nurl = \"http://127.0.0.1:{port}/orders/{{order}}\"\ntimeout_ms = {timeout_ms}\n"
        ),
        ..ServerOpts::default()
    })
}

/// Call 3000, enter 4512#, stay `stay_ms`, hang up; the call's record.
fn call(srv: &Server, stay_ms: u64) -> common::Cdr {
    let mut uac = Uac::new().invite().pause(800);
    for d in "4512#".chars() {
        uac = uac.info_digit(d).pause(100);
    }
    let run = Sipp::from_xml(&uac.pause(stay_ms).bye().xml()).run(srv.sip, "3000");
    run.assert_ok("caller");
    srv.wait_cdr(
        &call_id_from_trace(&run.messages).expect("Call-ID"),
        Duration::from_secs(5),
    )
}

#[test]
fn a_lookup_against_a_local_http_server_drives_the_path() {
    let (port, seen) = orders_server();
    let srv = server(port, 2000);
    // The say node's prompts last about 5 s; the caller stays for them.
    let cdr = call(&srv, 7_000);
    assert_eq!(cdr.path, "ask > status > tell > bye", "{cdr:?}");
    assert!(cdr.vars.contains("2026-03-03"), "{cdr:?}");
    assert!(cdr.vars.contains("shipped"), "{cdr:?}");
    assert_eq!(cdr.disposition, "completed", "{cdr:?}");
    assert_eq!(
        seen.lock().expect("lock").clone(),
        ["GET /orders/4512?caller=%2B15550123&order=4512 HTTP/1.1"]
    );
    assert_eq!(
        srv.metric("ringback_lookups_total{lookup=\"orders\",outcome=\"ok\"}"),
        1.0
    );
}

#[test]
fn with_the_server_stopped_or_silent_the_fallback_is_taken_within_the_timeout() {
    // Stopped: nothing listens on the port any more (connection refused).
    let port = {
        let gone = TcpListener::bind("127.0.0.1:0").expect("bind");
        gone.local_addr().expect("addr").port()
    };
    let srv = server(port, 1500);
    let cdr = call(&srv, 1_500);
    assert_eq!(cdr.path, "ask > status > sorry", "{cdr:?}");

    // Silent: it accepts and never answers. The caller hangs up 2.5 s after
    // `#`; the fallback (at 1.5 s) must come before.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let until = Instant::now() + Duration::from_secs(20);
        silent.set_nonblocking(true).expect("nonblocking");
        while Instant::now() < until {
            if let Ok((c, _)) = silent.accept() {
                kept.push(c);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let srv = server(port, 1500);
    let cdr = call(&srv, 2_500);
    assert_eq!(cdr.path, "ask > status > sorry", "{cdr:?}");
    assert!(
        srv.wait_log("no answer within 1500 ms", 1, Duration::from_secs(2)),
        "{}",
        srv.log()
    );
    drop(held);
}
