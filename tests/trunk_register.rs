//! Trunk registration against a carrier stand-in: SIPp as a registrar that
//! challenges (401, MD5, qop=auth), checks the credentials with
//! `<verifyauth>` and grants short bindings; and one that refuses (403).
//! The state is read where operators read it: `GET /api/v1/trunks` and the
//! `ringback_trunk_up` gauge.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{free_udp_port, poll_until, Server, ServerOpts, Sipp, SippProcess};

const USER: &str = "trunk1";
const PASSWORD: &str = "s3cret";
const DOMAIN: &str = "carrier.test";
const UP: &str = "ringback_trunk_up{trunk=\"default\"}";

/// A response to the last REGISTER.
fn reply(status: &str, extra: &str) -> String {
    format!(
        "<send><![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]reg[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n{extra}Content-Length: 0\n]]></send>"
    )
}

/// Receive a REGISTER whose credentials must verify; a wrong answer gets
/// 403 and ends the scenario (the test then sees `failed`).
fn recv_authorized(label: &str) -> String {
    format!(
        "<recv request=\"REGISTER\" timeout=\"20000\"><action><verifyauth assign_to=\"authvalid\" username=\"{USER}\" password=\"{PASSWORD}\"/></action></recv>\n\
         <nop test=\"authvalid\" next=\"{label}\"/>\n\
         {}\n\
         <recv request=\"NEVER\" timeout=\"1000\"/>\n\
         <label id=\"{label}\"/>",
        reply("403 Bad Credentials", "")
    )
}

fn scenario(steps: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<!DOCTYPE scenario SYSTEM \"sipp.dtd\">\n<scenario name=\"carrier registrar\">\n{}\n</scenario>\n",
        steps.join("\n")
    )
}

/// The carrier of the happy path: 401 to the first REGISTER, 200 with a
/// 10 s binding to the authenticated one, 200 again to the refresh (which
/// must carry credentials proactively), then the unregistration at
/// shutdown (`Expires: 0`).
fn challenging_registrar() -> String {
    let ok = reply("200 OK", "[last_Contact:];expires=10\n");
    scenario(&[
        "<recv request=\"REGISTER\"><action><ereg regexp=\"Authorization\" search_in=\"msg\" check_it_inverse=\"true\" assign_to=\"noauth\"/></action></recv>".into(),
        reply(
            "401 Unauthorized",
            &format!("WWW-Authenticate: Digest realm=\"{DOMAIN}\", nonce=\"[pid]n[call_number]\", algorithm=MD5, qop=\"auth\"\n"),
        ),
        recv_authorized("first"),
        ok.clone(),
        // The refresh, about 5 s later, authorized without a new challenge.
        "<recv request=\"REGISTER\" timeout=\"20000\"><action><ereg regexp=\"nc=00000002\" search_in=\"hdr\" header=\"Authorization:\" check_it=\"true\" assign_to=\"nc2\"/><verifyauth assign_to=\"authvalid\" username=\"trunk1\" password=\"s3cret\"/></action></recv>".into(),
        "<nop test=\"authvalid\" next=\"refreshok\"/>".into(),
        reply("403 Bad Credentials", ""),
        "<recv request=\"NEVER\" timeout=\"1000\"/>".into(),
        "<label id=\"refreshok\"/>".into(),
        ok,
        // Shutdown: the binding is removed.
        "<recv request=\"REGISTER\" timeout=\"20000\"><action><ereg regexp=\"Expires: 0[[:space:]]\" search_in=\"msg\" check_it=\"true\" assign_to=\"zero\"/></action></recv>".into(),
        reply("200 OK", ""),
        // SIPp insists that every variable is used.
        "<nop><action><log message=\"checked [$noauth] [$nc2] [$zero]\"/></action></nop>".into(),
    ])
}

/// A carrier that refuses every REGISTER.
fn refusing_registrar() -> String {
    scenario(&[
        "<recv request=\"REGISTER\"/>".into(),
        reply("403 Forbidden", ""),
        // The retry comes after the backoff (5 s, up to 20 % shorter).
        "<recv request=\"REGISTER\" timeout=\"20000\"/>".into(),
        reply("403 Forbidden", ""),
    ])
}

/// Start the carrier on a port of its own, then a server whose default
/// trunk registers there.
fn carrier_and_server(xml: &str) -> (SippProcess, Server, u16) {
    carrier_and_server_over(xml, "udp")
}

/// The carrier (SIPp, over `transport`) and a server whose default trunk
/// registers with it over the same transport.
fn carrier_and_server_over(xml: &str, transport: &str) -> (SippProcess, Server, u16) {
    let port = free_udp_port();
    let mut sipp = Sipp::from_xml(xml).arg("-p").arg(port);
    if transport == "tcp" {
        sipp = sipp.arg("-t").arg("t1");
    }
    let carrier = sipp.spawn(SocketAddr::from(([127, 0, 0, 1], 9)), USER);
    // Let SIPp bind before the first REGISTER leaves.
    std::thread::sleep(Duration::from_millis(300));
    let srv = Server::start(ServerOpts {
        extra_config: format!(
            "\n[trunk]\naddress = \"127.0.0.1:{port}\"\ndomain = \"{DOMAIN}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nregister = true\nregister_expires_secs = 60\ntransport = \"{transport}\"\n"
        ),
        ..ServerOpts::default()
    });
    (carrier, srv, port)
}

fn trunks(srv: &Server) -> serde_json::Value {
    let (status, body) = srv.http_get("/api/v1/trunks");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// Wait until the default trunk is in `state`; returns its JSON.
fn wait_state(srv: &Server, state: &str, timeout: Duration) -> serde_json::Value {
    let default = || {
        let all = trunks(srv);
        all["trunks"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == "default"))
            .cloned()
            .unwrap_or_else(|| panic!("no default trunk in {all}"))
    };
    poll_until(
        timeout,
        Duration::from_millis(50),
        || Some(default()).filter(|t| t["state"] == state),
        || {
            let t = default();
            format!("trunk never reached `{state}`: {t}\nlog:\n{}", srv.log())
        },
    )
}

#[test]
fn registers_with_digest_refreshes_and_unregisters() {
    registers_with_digest_over("udp");
}

/// The same over TCP: ringback opens the connection to the carrier itself
/// and keeps using it for refreshes and the final unregister.
#[test]
fn registers_over_tcp() {
    registers_with_digest_over("tcp");
}

fn registers_with_digest_over(transport: &str) {
    let (carrier, srv, port) = carrier_and_server_over(&challenging_registrar(), transport);
    let t = wait_state(&srv, "registered", Duration::from_secs(10));
    assert_eq!(t["register"], true);
    assert_eq!(t["address"], format!("127.0.0.1:{port}"));
    assert!(t["registered_until"].is_string(), "{t}");
    assert!(t["last_error"].is_null(), "{t}");
    assert_eq!(srv.metric(UP), 1.0);
    // The 200 granted 10 s: the refresh goes out at about 5 s and succeeds.
    assert!(
        srv.wait_log("trunk registered", 2, Duration::from_secs(9)),
        "no refresh; log:\n{}",
        srv.log()
    );
    let t = wait_state(&srv, "registered", Duration::from_secs(1));
    assert!(t["last_error"].is_null(), "{t}");
    assert_eq!(srv.metric(UP), 1.0);
    // Shutdown unregisters.
    drop(srv);
    let run = carrier.wait();
    run.assert_ok("challenging registrar");
    let registers: Vec<&str> = run
        .messages
        .split("REGISTER sip:")
        .skip(1)
        .filter(|m| m.starts_with(DOMAIN))
        .collect();
    assert_eq!(registers.len(), 4, "{}", run.messages);
    // The first without credentials, then all with the same Call-ID and
    // From tag, CSeq counting up.
    assert!(!registers[0].contains("Authorization:"));
    let header = |m: &str, name: &str| -> String {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {m}"))
            .trim()
            .to_string()
    };
    for (i, m) in registers.iter().enumerate() {
        assert_eq!(header(m, "Call-ID:"), header(registers[0], "Call-ID:"));
        assert_eq!(header(m, "From:"), header(registers[0], "From:"));
        assert_eq!(header(m, "CSeq:"), format!("{} REGISTER", i + 1));
        assert_eq!(
            header(m, "To:"),
            format!("<sip:{USER}@{DOMAIN}>"),
            "AOR in To"
        );
        assert!(header(m, "Contact:").starts_with(&format!("<sip:{USER}@127.0.0.1:")));
        if i > 0 {
            assert!(header(m, "Authorization:").contains("username=\"trunk1\""));
        }
    }
    assert_eq!(header(registers[0], "Expires:"), "60");
    assert_eq!(header(registers[2], "Expires:"), "60");
    assert_eq!(header(registers[3], "Expires:"), "0");
}

#[test]
fn refused_registration_fails_and_backs_off() {
    let (carrier, srv, _) = carrier_and_server(&refusing_registrar());
    let t = wait_state(&srv, "failed", Duration::from_secs(10));
    let failed_at = Instant::now();
    assert_eq!(t["last_error"], "403 Forbidden", "{t}");
    assert!(t["registered_until"].is_null(), "{t}");
    assert!(t["retry_at"].is_string(), "{t}");
    assert_eq!(srv.metric(UP), 0.0);
    let (_, metrics) = srv.http_get("/metrics");
    assert!(
        metrics.contains("# TYPE ringback_trunk_up gauge"),
        "{metrics}"
    );
    // The retry comes after the backoff, not at once.
    let run = carrier.wait();
    run.assert_ok("refusing registrar");
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(3_500),
        "retried after {waited:?}"
    );
    // Still failed, now with a longer backoff.
    let t = wait_state(&srv, "failed", Duration::from_secs(1));
    assert_eq!(t["last_error"], "403 Forbidden");
    assert_eq!(srv.metric(UP), 0.0);
    assert!(
        srv.wait_log("trunk registration failed", 2, Duration::from_secs(2)),
        "{}",
        srv.log()
    );
}

// ---------------------------------------------------------------------------
// A real registrar: Kamailio (Debian package `kamailio`) with digest
// authentication (SHA-256, qop=auth, nonce counts checked), usrloc in
// memory, and a lookup that relays requests for the AOR to the binding.
// ---------------------------------------------------------------------------

/// Kamailio, stopped (SIGTERM to the main process, which ends its workers)
/// on drop.
struct Kamailio {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Kamailio {
    fn available() -> bool {
        std::process::Command::new("kamailio")
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn start() -> Kamailio {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_udp_port();
        let cfg = format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
disable_tcp=yes
listen=udp:127.0.0.1:{port}
alias="{DOMAIN}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 5)
modparam("registrar", "max_expires", 10)
modparam("auth", "algorithm", "SHA-256")
modparam("auth", "qop", "auth")
modparam("auth", "nonce_count", 1)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("REGISTER")) {{
        $var(rc) = pv_www_authenticate("{DOMAIN}", "{PASSWORD}", "0");
        if ($var(rc) < 0) {{
            xlog("L_INFO", "REGISTER challenged rc=$var(rc) cseq=$cs\n");
            www_challenge("{DOMAIN}", "1");
            exit;
        }}
        if ($au != "{USER}") {{ sl_send_reply("403", "Wrong User"); exit; }}
        xlog("L_INFO", "REGISTER authenticated cseq=$cs expires=$hdr(Expires)\n");
        consume_credentials();
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Registered"); exit; }}
    t_relay();
}}
"#
        );
        let path = dir.path().join("kamailio.cfg");
        std::fs::write(&path, cfg).expect("write kamailio.cfg");
        let mut child = std::process::Command::new("kamailio")
            .arg("-f")
            .arg(&path)
            .args(["-DD", "-E", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(dir.path())
            .arg("-L")
            .arg("/usr/lib/x86_64-linux-gnu/kamailio/modules")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn kamailio");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let l2 = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = l2.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let k = Kamailio {
            child,
            port,
            _dir: dir,
            log,
        };
        // Ready when it answers (404: nobody registered yet).
        // No pause between tries: each waits up to 300 ms for the answer.
        poll_until(
            Duration::from_secs(10),
            Duration::ZERO,
            || k.options(Duration::from_millis(300)),
            || format!("kamailio did not start:\n{}", k.log()),
        );
        k
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Send `OPTIONS sip:trunk1@carrier.test` to Kamailio (which relays it
    /// to the registered Contact); the final response's status line.
    fn options(&self, wait: Duration) -> Option<String> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let me = sock.local_addr().expect("addr");
        let branch = format!("z9hG4bK{}", std::process::id() ^ me.port() as u32);
        let req = format!(
            "OPTIONS sip:{USER}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch}{}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:{USER}@{DOMAIN}>\r\nCall-ID: probe-{}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            me.port(),
            me.port()
        );
        sock.send_to(req.as_bytes(), ("127.0.0.1", self.port))
            .ok()?;
        let until = Instant::now() + wait;
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            sock.set_read_timeout(Some(
                until
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .ok()?;
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                return None;
            };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let status = text.lines().next().unwrap_or_default().to_string();
            if !status.starts_with("SIP/2.0 1") {
                return Some(status);
            }
        }
        None
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn registers_with_kamailio_sha256_and_receives_requests_for_the_aor() {
    // scripts/test installs it; a missing registrar is a failure, not a skip.
    assert!(
        Kamailio::available(),
        "kamailio is not installed (apt-get install kamailio)"
    );
    let kam = Kamailio::start();
    assert_eq!(
        kam.options(Duration::from_secs(2)).as_deref(),
        Some("SIP/2.0 404 Not Registered")
    );
    let srv = Server::start(ServerOpts {
        extra_config: format!(
            "\n[trunk]\naddress = \"127.0.0.1:{}\"\ndomain = \"{DOMAIN}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nrealm = \"{DOMAIN}\"\nregister = true\nregister_expires_secs = 60\n",
            kam.port
        ),
        ..ServerOpts::default()
    });
    let t = wait_state(&srv, "registered", Duration::from_secs(10));
    assert!(t["last_error"].is_null(), "{t}\n{}", kam.log());
    assert_eq!(srv.metric(UP), 1.0);
    // Kamailio capped the binding at 10 s: the refresh comes at 5 s, with
    // proactive credentials (nc=2) that Kamailio's nonce-count check accepts.
    assert!(
        srv.wait_log("trunk registered", 2, Duration::from_secs(9)),
        "no refresh; ringback:\n{}\nkamailio:\n{}",
        srv.log(),
        kam.log()
    );
    assert!(
        kam.log().matches("REGISTER authenticated").count() >= 2,
        "{}",
        kam.log()
    );
    // Requests for the AOR reach ringback through the binding.
    assert_eq!(
        kam.options(Duration::from_secs(3)).as_deref(),
        Some("SIP/2.0 200 OK"),
        "{}",
        kam.log()
    );
    // Shutdown removes the binding.
    drop(srv);
    assert!(
        kam.log().contains("expires=0"),
        "no unregistration:\n{}",
        kam.log()
    );
    assert_eq!(
        kam.options(Duration::from_secs(2)).as_deref(),
        Some("SIP/2.0 404 Not Registered")
    );
}
