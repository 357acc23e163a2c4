//! Several ringback nodes behind Kamailio (issue 17's groundwork), with the
//! shipped `deploy/kamailio/kamailio.cfg` run by Debian's `kamailio` (and
//! `kamailio-postgres-modules`), PostgreSQL at 127.0.0.1:5432 (a fresh
//! database per test, holding ringback's tables and Kamailio's `location`
//! and `subscriber`), two ringback nodes on one database, and real SIP
//! peers: SIPp, PJSIP and baresip.
//!
//! - calls through Kamailio spread over both nodes (call records counted
//!   per `node_id`), every record and metric naming its node;
//! - an agent whose phone registered with Kamailio (its location in
//!   PostgreSQL) is rung by a call that landed on either node, audio both
//!   ways. Each node still runs its own queue (its own line, its own agent
//!   states): one queue across nodes is the next part of issue 17;
//! - a drained node (`POST /api/v1/node/drain`) answers OPTIONS with 503,
//!   Kamailio's probe takes it out of rotation, new calls all go to the
//!   other node, its own call goes on to a normal end, and then it exits
//!   with status 0; `SIGUSR1` does the same;
//! - the cost of the extra SIP hop (INVITE → 200 through Kamailio and
//!   straight to a node), printed.
//!
//! Everything runs on free loopback ports with its own directories and is
//! stopped by PID. A missing Kamailio fails the tests (it does not skip
//! them): `apt-get install kamailio kamailio-postgres-modules`
//! (`scripts/test` does).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::peer::{
    args, json, wait_agent_state, AGENT_CONFIG, AGENT_TONE, BARESIP_PEER, CALLER_TONE, PJSUA,
};
use common::pg::PgDb;
use common::scenario::Uac;
use common::{free_udp_port, poll_until, repo, Server, ServerOpts, Sipp};

// ---------------------------------------------------------------------------------------------
// Kamailio with the shipped configuration.
// ---------------------------------------------------------------------------------------------

fn kamailio_cfg() -> PathBuf {
    repo().join("deploy/kamailio/kamailio.cfg")
}

/// `kamailio -c` on the shipped configuration with `defines`: loads every
/// module (a missing `db_postgres` fails here) and parses the routes.
fn kamailio_check(defines: &[String]) -> std::process::Output {
    Command::new("kamailio")
        .arg("-c")
        .arg("-f")
        .arg(kamailio_cfg())
        .args(defines.iter().flat_map(|d| ["-A".to_string(), d.clone()]))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kamailio cannot be run ({e}): `apt-get install kamailio kamailio-postgres-modules` \
                 (scripts/test does)"
            )
        })
}

/// Fail (not skip) when Kamailio or its PostgreSQL module is missing.
fn require_kamailio() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let out = kamailio_check(&["LISTEN=udp:127.0.0.1:5999".into()]);
        assert!(
            out.status.success(),
            "kamailio cannot load deploy/kamailio/kamailio.cfg: \
             `apt-get install kamailio kamailio-postgres-modules` (scripts/test does)\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A running Kamailio, stopped by PID when dropped.
struct Kamailio {
    child: Child,
    /// Where it listens (UDP).
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Kamailio {
    /// Start it on `port` with the ringback `nodes` as dispatcher set 1,
    /// the database `db`, and probes every second.
    fn start(db: &PgDb, port: u16, nodes: &[SocketAddr]) -> Kamailio {
        require_kamailio();
        let dir = tempfile::tempdir().expect("tempdir");
        let list: String = nodes.iter().map(|n| format!("1 sip:{n} 8\n")).collect();
        let list_file = dir.path().join("nodes.list");
        std::fs::write(&list_file, list).expect("write the node list");
        let log_file = dir.path().join("kamailio.log");
        let log = std::fs::File::create(&log_file).expect("log file");
        let ctl = dir.path().join("ctl.sock");
        let child = Command::new("kamailio")
            .args(["-DD", "-E", "-m", "32", "-M", "4", "-f"])
            .arg(kamailio_cfg())
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
            .args(["-A", &format!("DBURL=\"{}\"", db.url())])
            .args(["-A", &format!("DSLIST=\"{}\"", list_file.display())])
            .args(["-A", &format!("CTL_SOCKET=\"unix:{}\"", ctl.display())])
            .args(["-A", "DS_PING_INTERVAL=1", "-A", "CHILDREN=2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn kamailio");
        let mut k = Kamailio {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                if ctl.exists() && k.kamcmd("dispatcher.list").is_some() {
                    return Some(());
                }
                if let Ok(Some(st)) = k.child.try_wait() {
                    panic!("kamailio exited ({st}):\n{}", k.log());
                }
                None
            },
            // `k` is borrowed by the probe: read its log file by name.
            || {
                let log = std::fs::read_to_string(&log_file).unwrap_or_default();
                format!("kamailio not ready:\n{log}")
            },
        );
        k
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// `kamcmd` over the control socket; `None` if it failed.
    fn kamcmd(&self, cmd: &str) -> Option<String> {
        let sock = format!("unix:{}", self.dir.path().join("ctl.sock").display());
        let out = Command::new("kamcmd")
            .args(["-s", &sock, cmd])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The dispatcher's flags of `node` (`AP`: active and probed, `IP`:
    /// inactive and probed, ...).
    fn flags(&self, node: SocketAddr) -> String {
        let list = self.kamcmd("dispatcher.list").unwrap_or_default();
        let uri = format!("sip:{node}");
        let mut lines = list.lines().map(str::trim);
        while let Some(l) = lines.next() {
            if l.strip_prefix("URI: ") == Some(uri.as_str()) {
                if let Some(f) = lines.next().and_then(|f| f.strip_prefix("FLAGS: ")) {
                    return f.to_string();
                }
            }
        }
        String::new()
    }

    /// Wait until `node`'s flags start with `state` (`A` or `I`).
    fn wait_state(&self, node: SocketAddr, state: char, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        poll_until(
            timeout,
            Duration::from_millis(50),
            || self.flags(node).starts_with(state).then_some(()),
            || {
                format!(
                    "node {node} is `{}` in Kamailio's dispatcher, not `{state}…`:\n{}\n{}",
                    self.flags(node),
                    self.kamcmd("dispatcher.list").unwrap_or_default(),
                    self.log()
                )
            },
        );
        t0.elapsed()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let until = Instant::now() + Duration::from_secs(3);
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
}

// ---------------------------------------------------------------------------------------------
// Two nodes, one database, Kamailio in front.
// ---------------------------------------------------------------------------------------------

/// Fields drop in order: Kamailio, the nodes, then the database.
struct Cluster {
    kam: Kamailio,
    a: Server,
    b: Server,
    db: PgDb,
}

/// Agent alice's password in Kamailio's `subscriber` table.
const ALICE_PASSWORD: &str = "alice-secret";

fn cluster(extra_config: &str) -> Cluster {
    require_kamailio();
    let db = PgDb::create();
    let tables = std::fs::read_to_string(repo().join("deploy/kamailio/kamailio-tables.sql"))
        .expect("deploy/kamailio/kamailio-tables.sql");
    db.execute_script(&tables);
    db.execute_script(&format!(
        "INSERT INTO subscriber (username, domain, password) VALUES ('alice', '', '{ALICE_PASSWORD}')"
    ));
    let kam_port = free_udp_port();
    let node = |id: &str| {
        Server::start(ServerOpts {
            database_url: Some(db.url()),
            extra_config: format!(
                "\n[callbacks]\nnode_id = \"{id}\"\n\n[cluster]\nagent_proxy = \"sip:127.0.0.1:{kam_port}\"\ndrain_timeout_secs = 60\n{extra_config}"
            ),
            ..ServerOpts::default()
        })
    };
    // One after the other: the first one migrates the database.
    let a = node("node-a");
    let b = node("node-b");
    let kam = Kamailio::start(&db, kam_port, &[a.sip, b.sip]);
    // Both probed and answering before the first call.
    kam.wait_state(a.sip, 'A', Duration::from_secs(5));
    kam.wait_state(b.sip, 'A', Duration::from_secs(5));
    Cluster { kam, a, b, db }
}

impl Cluster {
    /// The server whose `node_id` is `id`.
    fn node(&self, id: &str) -> &Server {
        if id == "node-a" {
            &self.a
        } else {
            &self.b
        }
    }

    /// Inbound call records per node: (node_id, count), by node.
    fn inbound_per_node(&self) -> Vec<(Option<String>, usize)> {
        self.db
            .rows(
                "SELECT node_id, CAST(COUNT(*) AS TEXT) FROM calls WHERE leg = 'inbound' \
                 GROUP BY node_id ORDER BY node_id",
            )
            .into_iter()
            .map(|r| {
                let n = r[1].as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
                (r[0].clone(), n)
            })
            .collect()
    }

    /// The node that wrote call `call_id`'s record (`leg`), waiting for it.
    fn node_of(&self, call_id: &str, leg: &str) -> String {
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                let rows = self.db.rows(&format!(
                    "SELECT node_id FROM calls WHERE leg = '{leg}' AND \
                     (call_id = '{call_id}' OR parent_call_id = '{call_id}')"
                ));
                rows.first().and_then(|r| r[0].clone())
            },
            || {
                format!(
                    "no {leg} record of {call_id}:\nA:\n{}\nB:\n{}",
                    self.a.log(),
                    self.b.log()
                )
            },
        )
    }

    /// The id of the node that is not `id`.
    fn other_id(id: &str) -> &'static str {
        if id == "node-a" {
            "node-b"
        } else {
            "node-a"
        }
    }

    fn node_mut(&mut self, id: &str) -> &mut Server {
        if id == "node-a" {
            &mut self.a
        } else {
            &mut self.b
        }
    }

    /// Alice's PJSIP phone registered with Kamailio (digest against the
    /// `subscriber` table), not with either node: answers `calls` calls
    /// after half a second, plays the agent tone, listens for the caller's.
    fn alice(&self, calls: u32, timeout_secs: u32) -> common::peer::PyPeer {
        let (agent_tone, caller_tone) = (AGENT_TONE.to_string(), CALLER_TONE.to_string());
        let (kam, calls, timeout) = (
            self.kam.addr.to_string(),
            calls.to_string(),
            timeout_secs.to_string(),
        );
        let agent = PJSUA.spawn(
            "agent alice",
            "agent",
            &args(&[
                "--transport",
                "udp",
                "--registrar",
                &kam,
                "--user",
                "alice",
                "--password",
                ALICE_PASSWORD,
                "--calls",
                &calls,
                "--ring-delay",
                "0.5",
                "--play",
                &agent_tone,
                "--detect",
                &caller_tone,
                "--timeout",
                &timeout,
            ]),
        );
        agent.expect("registered", Duration::from_secs(10), &self.a);
        agent
    }

    fn logs(&self) -> String {
        format!(
            "--- node-a:\n{}\n--- node-b:\n{}\n--- kamailio:\n{}",
            self.a.log(),
            self.b.log(),
            self.kam.log()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// SIPp calls that follow Record-Route (ACK and BYE carry the route set).
// ---------------------------------------------------------------------------------------------

fn uac_through_proxy(pause_ms: u64) -> String {
    let dialog = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n\
From: \"Test Caller\" <sip:+15550123@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
Call-ID: [call_id]\n";
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call through a proxy">
<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{dialog}CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="183" optional="true"/>
<recv response="200" rtd="true" rrs="true"/>
<send><![CDATA[
ACK [next_url] SIP/2.0
[routes]
{dialog}CSeq: 1 ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
<pause milliseconds="{pause_ms}"/>
<send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
[routes]
{dialog}CSeq: 2 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
<recv response="200" crlf="true"/>
</scenario>
"#
    )
}

/// `n` calls to `number` at `target`, one at a time, each holding
/// `pause_ms` before its BYE: (all succeeded, SIPp's report).
fn sipp_calls(target: SocketAddr, number: &str, n: usize, pause_ms: u64) -> (bool, String) {
    common::require_sipp();
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("uac.xml");
    std::fs::write(&scenario, uac_through_proxy(pause_ms)).expect("scenario");
    let out = Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-s", number, "-m", &n.to_string(), "-l", "1", "-r", "50"])
        .args([
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
            "-trace_err",
        ])
        .arg(target.to_string())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run sipp");
    let errors: String = std::fs::read_dir(dir.path())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    (
        out.status.success(),
        format!("{}\n{errors}", String::from_utf8_lossy(&out.stdout)),
    )
}

/// One call by hand over UDP, to time it: INVITE to `target`, the time
/// until its 200, then ACK and BYE along the route set (Record-Route),
/// as a phone would.
fn timed_call(target: SocketAddr, number: &str) -> Duration {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = sock.local_addr().expect("local address");
    let call_id = format!("hop-{:016x}@127.0.0.1", rand::random::<u64>());
    let from = format!("<sip:+15550123@{local}>;tag=t{:08x}", rand::random::<u32>());
    let to = format!("<sip:{number}@{target}>");
    let branch = || format!("z9hG4bK{:016x}", rand::random::<u64>());
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        local.port() + 2
    );
    let invite = format!(
        "INVITE sip:{number}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={};rport\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        branch(),
        sdp.len()
    );
    let mut buf = vec![0u8; 65_536];
    let t0 = Instant::now();
    sock.send_to(invite.as_bytes(), target)
        .expect("send INVITE");
    // The first final answer to the INVITE.
    let (took, ok) = loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer to the INVITE");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let code: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if code >= 200 && text.contains("CSeq: 1 INVITE") {
            assert_eq!(code, 200, "{text}");
            break (t0.elapsed(), text);
        }
    };
    let header = |name: &str| -> Vec<String> {
        ok.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .collect()
    };
    let to_tagged = header("To").pop().expect("To");
    let contact = header("Contact").pop().expect("Contact");
    let remote = contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_string();
    let routes: String = header("Record-Route")
        .iter()
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    let request = |method: &str, cseq: u32| {
        format!(
            "{method} {remote} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={};rport\r\n{routes}\
             From: {from}\r\nTo: {to_tagged}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            branch()
        )
    };
    // Through Kamailio the route set's first hop is Kamailio; without
    // Record-Route it is the node itself: `target` either way.
    sock.send_to(request("ACK", 1).as_bytes(), target)
        .expect("send ACK");
    std::thread::sleep(Duration::from_millis(20));
    sock.send_to(request("BYE", 2).as_bytes(), target)
        .expect("send BYE");
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer to the BYE");
        let text = String::from_utf8_lossy(&buf[..n]);
        if text.contains("CSeq: 2 BYE") {
            assert!(text.starts_with("SIP/2.0 200"), "{text}");
            break;
        }
    }
    took
}

/// (median, mean, 95th percentile) of `v`, in ms.
fn summary(v: &[Duration]) -> (f64, f64, f64) {
    let mut s: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), s.iter().sum::<f64>() / s.len() as f64, at(0.95))
}

/// A `/metrics` sample's value (the whole label set given).
fn metric(srv: &Server, sample: &str) -> Option<f64> {
    let (_, body) = srv.http_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

/// Every variant of the shipped configuration loads (`kamailio -c`): the
/// nodes from the database instead of a file, registration without
/// digest, debug logging, a domain alias.
#[test]
fn the_shipped_kamailio_configuration_loads_in_every_variant() {
    require_kamailio();
    for extra in [
        vec![],
        vec!["WITH_DISPATCHER_DB".to_string()],
        vec!["WITHOUT_AUTH".into(), "WITH_DEBUG".into()],
        vec![
            "SIP_DOMAIN=\"sip.example.com\"".into(),
            "UL_DB_MODE=3".into(),
        ],
    ] {
        let mut defines = vec!["LISTEN=udp:127.0.0.1:5999".to_string()];
        defines.extend(extra.clone());
        let out = kamailio_check(&defines);
        assert!(
            out.status.success(),
            "kamailio -c with {extra:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn calls_through_kamailio_spread_over_both_nodes_and_every_record_names_its_node() {
    let c = cluster("");
    let (ok, report) = sipp_calls(c.kam.addr, "2000", 10, 100);
    assert!(ok, "SIPp through Kamailio:\n{report}\n{}", c.logs());
    // Round robin: five each; at least three each whatever else happened.
    let per_node = c.inbound_per_node();
    assert_eq!(
        per_node.iter().map(|(_, n)| n).sum::<usize>(),
        10,
        "{per_node:?}"
    );
    for id in ["node-a", "node-b"] {
        let n = per_node
            .iter()
            .find(|(node, _)| node.as_deref() == Some(id))
            .map_or(0, |(_, n)| *n);
        assert!(n >= 3, "{id} took {n} of 10 calls: {per_node:?}");
    }
    // Every record carries a node id, and each node's metrics say whose
    // they are and count only its own calls.
    assert!(
        per_node.iter().all(|(node, _)| node.is_some()),
        "{per_node:?}"
    );
    for (node, n) in &per_node {
        let id = node.as_deref().unwrap_or_default();
        let srv = c.node(id);
        let sample = format!("ringback_calls_answered_total{{node=\"{id}\"}}");
        assert_eq!(metric(srv, &sample), Some(*n as f64), "{sample}");
        assert_eq!(
            metric(srv, &format!("ringback_calls_active{{node=\"{id}\"}}")),
            Some(0.0)
        );
    }
}

/// The extra hop: INVITE → 200 over 50 calls through Kamailio and 50
/// straight to a node (one at a time, loopback, debug build), printed.
#[test]
fn the_extra_sip_hop_through_kamailio_is_measured() {
    let c = cluster("");
    let n = 50;
    // Warm both paths up (prompts in the page cache, store connections).
    for _ in 0..3 {
        timed_call(c.kam.addr, "2000");
        timed_call(c.a.sip, "2000");
    }
    // Interleaved, so that both see the same machine.
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..n {
        direct.push(timed_call(c.a.sip, "2000"));
        proxied.push(timed_call(c.kam.addr, "2000"));
    }
    let (d50, dmean, d95) = summary(&direct);
    let (p50, pmean, p95) = summary(&proxied);
    eprintln!(
        "INVITE -> 200 over {n} calls each: straight to a node median {d50:.2} ms, mean {dmean:.2} ms, \
         p95 {d95:.2} ms; through Kamailio median {p50:.2} ms, mean {pmean:.2} ms, p95 {p95:.2} ms; \
         the hop adds {:.2} ms at the median",
        p50 - d50
    );
    // A sanity bound, not a benchmark: the hop is a relay on loopback.
    assert!(p50 < d50 + 50.0, "the hop costs {:.1} ms", p50 - d50);
}

#[test]
fn an_agent_registered_through_kamailio_is_rung_by_calls_landing_on_either_node() {
    let c = cluster(AGENT_CONFIG);
    let kam = c.kam.addr.to_string();
    let (agent_tone, caller_tone) = (AGENT_TONE.to_string(), CALLER_TONE.to_string());
    // Alice's phone registers with Kamailio, not with either node; it
    // answers two calls.
    let mut agent = c.alice(2, 80);
    // Her location is in PostgreSQL, written through by Kamailio.
    let location =
        c.db.rows("SELECT username, contact FROM location WHERE username = 'alice'");
    assert_eq!(location.len(), 1, "{location:?}");
    let contact = location[0][1].clone().unwrap_or_default();
    assert!(
        contact.contains(&format!(":{}", agent.port)),
        "the phone's contact: {contact}"
    );
    // Both nodes ring her through Kamailio: available on each from the
    // start (each node's ACD keeps its own state of her).
    wait_agent_state(&c.a, "alice", "available");
    wait_agent_state(&c.b, "alice", "available");

    let uri = format!("sip:2000@{kam}");
    // Call 1: a PJSIP caller, press 1 (support queue), hang up 2 s after
    // hearing the agent.
    let mut caller1 = PJSUA.spawn(
        "caller 1",
        "caller",
        &args(&[
            "--transport",
            "udp",
            "--uri",
            &uri,
            "--dtmf",
            "1@1.5",
            "--play",
            &caller_tone,
            "--play-at",
            "2",
            "--detect",
            &agent_tone,
            "--hangup-on-tone",
            &agent_tone,
            "--hangup-delay",
            "2",
            "--timeout",
            "30",
        ]),
    );
    let inv1 = agent.expect_where(
        "incoming",
        |e| e["call"] == "c1",
        Duration::from_secs(20),
        &c.a,
    );
    let call1 = inv1["x_ringback"]["X-Ringback-Call-Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!call1.is_empty(), "{}", inv1["x_ringback"]);
    caller1.finish_hearing(AGENT_TONE, &c.a);
    let node1 = c.node_of(&call1, "inbound");
    // Wrap-up (1 s) on that node before the next call.
    wait_agent_state(c.node(&node1), "alice", "available");

    // Call 2: a baresip caller; round robin sends it to the other node.
    let mut caller2 = BARESIP_PEER.spawn(
        "caller 2",
        "caller",
        &args(&[
            "--transport",
            "udp",
            "--uri",
            &uri,
            "--dtmf",
            "1@1.5",
            "--play",
            &caller_tone,
            "--detect",
            &agent_tone,
            "--hangup-after",
            "7",
            "--timeout",
            "30",
        ]),
    );
    let inv2 = agent.expect_where(
        "incoming",
        |e| e["call"] == "c2",
        Duration::from_secs(20),
        &c.a,
    );
    let call2 = inv2["x_ringback"]["X-Ringback-Call-Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    caller2.finish_hearing(AGENT_TONE, &c.a);
    agent.finish(&c.a);
    // The agent heard each caller.
    for call in ["c1", "c2"] {
        let r = agent.expect_where(
            "tone_report",
            |e| e["call"] == call && e["freq"].as_f64() == Some(CALLER_TONE),
            Duration::from_secs(10),
            &c.a,
        );
        assert_eq!(
            r["detected"],
            true,
            "agent, {call}: {r}\n{}",
            agent.diagnostics()
        );
    }
    let node2 = c.node_of(&call2, "inbound");
    assert_ne!(
        node1,
        node2,
        "both calls landed on {node1}; they should have been spread\n{}",
        c.logs()
    );
    // Each node rang her through Kamailio and recorded its own agent leg,
    // answered.
    for (call, node) in [(&call1, &node1), (&call2, &node2)] {
        assert_eq!(&c.node_of(call, "agent"), node, "agent leg of {call}");
        let legs = c.db.rows(&format!(
            "SELECT dialed, answered_at FROM calls WHERE leg = 'agent' AND parent_call_id = '{call}'"
        ));
        assert!(
            legs.iter()
                .any(|l| l[0].as_deref() == Some("alice") && l[1].is_some()),
            "{call}: {legs:?}"
        );
        let inbound = c.db.rows(&format!(
            "SELECT disposition, queue FROM calls WHERE leg = 'inbound' AND call_id = '{call}'"
        ));
        assert_eq!(
            inbound,
            vec![vec![Some("completed".into()), Some("support".into())]],
            "{call}"
        );
        // The queue log of each call is its node's too.
        let logged = c.db.rows(&format!(
            "SELECT DISTINCT node_id FROM queue_log WHERE call_id = '{call}'"
        ));
        assert_eq!(logged, vec![vec![Some(node.clone())]], "{call}");
    }
    // Every row of the shared store says which node wrote it.
    for table in ["calls", "queue_log", "agent_events"] {
        let unnamed = c.db.rows(&format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM {table} \
             WHERE node_id IS NULL OR node_id NOT IN ('node-a', 'node-b')"
        ));
        assert_eq!(unnamed, vec![vec![Some("0".into())]], "{table}");
    }
}

#[test]
fn a_drained_node_takes_no_new_calls_finishes_its_call_and_exits_0() {
    let mut c = cluster("");
    let kam = c.kam.addr;
    // A baresip caller through Kamailio: in the support menu, then hangs
    // up by itself after 12 s.
    let mut caller = BARESIP_PEER.spawn(
        "caller",
        "caller",
        &args(&[
            "--transport",
            "udp",
            "--uri",
            &format!("sip:2000@{kam}"),
            "--hangup-after",
            "12",
            "--timeout",
            "40",
        ]),
    );
    let call = caller.expect("established", Duration::from_secs(10), &c.a)["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let busy_id = c.node_of(&call, "inbound");
    let other_id = Cluster::other_id(&busy_id);
    let (busy_sip, other_sip) = (c.node(&busy_id).sip, c.node(other_id).sip);

    // Drain it over the API.
    let (status, body) = c.node(&busy_id).http_post("/api/v1/node/drain", "");
    assert_eq!(status, 202, "{body}");
    let answer = json(&body);
    assert_eq!(answer["node"], busy_id.as_str(), "{answer}");
    assert_eq!(
        (&answer["draining"], &answer["started"], &answer["calls"]),
        (&true.into(), &true.into(), &1.into()),
        "{answer}"
    );
    let (_, again) = c.node(&busy_id).http_post("/api/v1/node/drain", "");
    assert_eq!(json(&again)["started"], false, "{again}");
    assert_eq!(
        c.node(&busy_id).http_get("/healthz"),
        (200, "draining\n".to_string())
    );
    // Its OPTIONS now answer 503: Kamailio's next probe (every second)
    // takes it out of rotation.
    let out_after = c.kam.wait_state(busy_sip, 'I', Duration::from_secs(5));
    assert!(c.kam.flags(other_sip).starts_with('A'));

    // New calls all go to the other node.
    let before = c.inbound_per_node();
    let (ok, report) = sipp_calls(kam, "2000", 6, 100);
    assert!(ok, "calls while draining:\n{report}\n{}", c.logs());
    let after = c.inbound_per_node();
    let count = |rows: &[(Option<String>, usize)], id: &str| {
        rows.iter()
            .find(|(n, _)| n.as_deref() == Some(id))
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(count(&after, &busy_id), 1, "{after:?}");
    assert_eq!(
        count(&after, other_id),
        count(&before, other_id) + 6,
        "{after:?}"
    );

    // Its own call goes on, then ends normally; then the node exits 0.
    let busy = c.node_mut(&busy_id);
    assert!(busy.alive(), "the drained node left while its call was up");
    caller.expect("hangup", Duration::from_secs(20), busy);
    let status = busy
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the drained node did not exit:\n{}", busy.log()));
    assert!(status.success(), "exit status {status}:\n{}", busy.log());
    assert!(
        busy.log().contains("drained: no call left"),
        "{}",
        busy.log()
    );
    caller.finish(&c.a);
    let record = c.db.rows(&format!(
        "SELECT disposition, hangup_by, ended_at FROM calls WHERE leg = 'inbound' AND call_id = '{call}'"
    ));
    assert_eq!(record.len(), 1, "{record:?}");
    assert_ne!(record[0][0].as_deref(), Some("interrupted"), "{record:?}");
    assert_eq!(record[0][1].as_deref(), Some("caller"), "{record:?}");
    assert!(record[0][2].is_some(), "{record:?}");
    eprintln!("Kamailio took the drained node out of rotation {out_after:?} after the drain");
}

/// `SIGUSR1` drains like the API: an idle node exits at once, status 0,
/// having said why.
#[test]
fn sigusr1_drains_an_idle_node_which_exits_0() {
    let mut srv = Server::start(ServerOpts::default());
    assert_eq!(srv.http_get("/healthz"), (200, "ok\n".to_string()));
    srv.signal("USR1");
    let status = srv
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("not exited:\n{}", srv.log()));
    assert!(status.success(), "{status}:\n{}", srv.log());
    let log = srv.log();
    assert!(
        log.contains("draining: new calls are refused") && log.contains("\"SIGUSR1\""),
        "{log}"
    );
    assert!(log.contains("drained: no call left"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
}

/// A drain that runs out of time (`cluster.drain_timeout_secs`) ends the
/// calls still up with a BYE, as a shutdown does, and exits 0.
#[test]
fn a_drain_that_runs_out_of_time_ends_the_calls_with_bye_and_exits_0() {
    let mut srv = Server::start(ServerOpts {
        extra_config: "\n[cluster]\ndrain_timeout_secs = 2\n".into(),
        ..ServerOpts::default()
    });
    let caller =
        Sipp::from_xml(&Uac::new().invite().expect_bye(20_000).xml()).spawn(srv.sip, "2000");
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            if srv.metric("ringback_calls_active") < 1.0 {
                return None;
            }
            Some(())
        },
        || format!("no call:\n{}", srv.log()),
    );
    let t0 = Instant::now();
    srv.signal("USR1");
    // New calls are refused meanwhile, 503 with Retry-After.
    let refused = Sipp::from_xml(&Uac::new().invite_rejected(503).xml()).run(srv.sip, "2000");
    refused.assert_ok("a new call while draining");
    assert!(
        refused.messages.contains("Retry-After: 60"),
        "{}",
        refused.messages
    );
    let status = srv
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("not exited:\n{}", srv.log()));
    let took = t0.elapsed();
    assert!(status.success(), "{status}:\n{}", srv.log());
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "exited {took:?} after the drain"
    );
    caller.wait().assert_ok("the caller still up gets a BYE");
    assert!(srv.log().contains("drain time is up"), "{}", srv.log());
}

// ---------------------------------------------------------------------------------------------
// One queue across nodes: the ACD lease, hops, failover.
// ---------------------------------------------------------------------------------------------

/// `[cluster]` keys (they follow `agent_proxy` in that section) for one
/// queue across nodes, then the support queue and alice.
fn shared_queues_config() -> String {
    format!(
        "shared_queues = true\nsecret = \"cluster-test-secret\"\nlease_secs = 3\n{AGENT_CONFIG}"
    )
}

impl Cluster {
    /// The node holding the ACD lease, as the store says, once one does.
    fn acd_owner(&self) -> Option<String> {
        self.db
            .rows("SELECT node_id FROM acd_owner WHERE name = 'acd'")
            .first()
            .and_then(|r| r[0].clone())
    }

    /// The first holder of the ACD lease, and the other node.
    fn wait_any_owner(&self) -> (String, String) {
        let o = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || self.acd_owner(),
            || format!("nobody took the ACD lease\n{}", self.logs()),
        );
        let other = Cluster::other_id(&o).to_string();
        (o, other)
    }

    /// The holder once it is `want` (waiting up to `timeout`); how long that took.
    fn wait_owner(&self, want: &str, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        poll_until(
            timeout,
            Duration::from_millis(20),
            || (self.acd_owner().as_deref() == Some(want)).then_some(()),
            || {
                format!(
                    "the ACD lease is {:?}, not {want}, after {timeout:?}\n{}",
                    self.acd_owner(),
                    self.logs()
                )
            },
        );
        t0.elapsed()
    }
}

/// Alice's phone rings with its call `call` (`c1`, `c2`, …), from the
/// caller with number `number`; the INVITE's event.
fn offered(
    agent: &common::peer::PyPeer,
    call: &str,
    number: &str,
    srv: &Server,
) -> serde_json::Value {
    let inv = agent.expect_where(
        "incoming",
        |e| e["call"] == call,
        Duration::from_secs(30),
        srv,
    );
    assert_eq!(inv["x_ringback"]["X-Ringback-Caller"], number, "{inv}");
    inv
}

/// Seconds of the day at which the first log line containing `needle`
/// was written (the log's RFC 3339 timestamps).
fn log_time(log: &str, needle: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(needle))?;
    let t = line.find('T').map(|i| &line[i + 1..])?;
    let mut parts = t.get(..15)?.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// A node's sample of `name` (labelled with its node id).
fn node_metric(c: &Cluster, node: &str, name: &str) -> f64 {
    metric(c.node(node), &format!("{name}{{node=\"{node}\"}}")).unwrap_or(-1.0)
}

/// Callers waiting in `queue` on `srv`, in service order: their numbers.
fn line(srv: &Server, queue: &str) -> Vec<String> {
    let (status, body) = srv.http_get("/api/v1/queues");
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    v["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["name"] == queue)
        .flat_map(|q| q["waiting"].as_array().cloned().unwrap_or_default())
        .map(|w| w["caller"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn wait_line(srv: &Server, queue: &str, want: &[&str], logs: &dyn Fn() -> String) {
    poll_until(
        Duration::from_secs(15),
        Duration::from_millis(50),
        || (line(srv, queue) == want).then_some(()),
        || {
            let got = line(srv, queue);
            format!("line of {queue}: {got:?}, expected {want:?}\n{}", logs())
        },
    );
}

/// A caller through Kamailio with number `user` who presses 1 (support),
/// plays the caller tone and hangs up 2 s after hearing the agent.
fn support_caller(
    peer: common::peer::PeerScript,
    name: &str,
    kam: &str,
    user: &str,
) -> common::peer::PyPeer {
    let uri = format!("sip:2000@{kam}");
    let (agent_tone, caller_tone) = (AGENT_TONE.to_string(), CALLER_TONE.to_string());
    let mut a = vec![
        "--transport",
        "udp",
        "--uri",
        &uri,
        "--user",
        user,
        "--dtmf",
        "1@1.5",
        "--play",
        &caller_tone,
        "--detect",
        &agent_tone,
        "--timeout",
        "60",
    ];
    // baresip hangs up after a time; PJSIP on hearing the agent.
    if peer.label == "baresip" {
        a.extend(["--hangup-after", "16"]);
    } else {
        a.extend(["--hangup-on-tone", &agent_tone, "--hangup-delay", "2"]);
    }
    peer.spawn(name, "caller", &args(&a))
}

#[test]
fn one_queue_across_nodes_serves_callers_from_both_in_entry_order_and_survives_the_owner_killed() {
    let mut c = cluster(&shared_queues_config());
    let kam = c.kam.addr.to_string();
    let (owner, other) = c.wait_any_owner();
    assert_eq!(node_metric(&c, &owner, "ringback_acd_owner"), 1.0);
    assert_eq!(node_metric(&c, &other, "ringback_acd_owner"), 0.0);
    let mut agent = c.alice(4, 150);
    wait_agent_state(c.node(&owner), "alice", "available");
    // Alice is away: both callers wait, one on each node, in one line.
    let (status, body) = c.node(&owner).http_post("/api/v1/agents/alice/pause", "");
    assert_eq!(status, 200, "{body}");
    let mut first = support_caller(PJSUA, "caller 1001", &kam, "1001");
    {
        let o = c.node(&owner);
        let logs = || c.logs();
        wait_line(o, "support", &["1001"], &logs);
    }
    let mut second = support_caller(BARESIP_PEER, "caller 1002", &kam, "1002");
    {
        let o = c.node(&owner);
        let logs = || c.logs();
        wait_line(o, "support", &["1001", "1002"], &logs);
    }
    // One caller landed on each node (round robin); the one on the other
    // node hopped to the owner's line, and only there.
    assert_eq!(
        c.inbound_per_node(),
        vec![(Some("node-a".into()), 1), (Some("node-b".into()), 1)],
        "{}",
        c.logs()
    );
    // What the hop costs the caller: our INVITE to the owner until its
    // 200 OK (from the origin's log).
    let log = c.node(&other).log();
    if let (Some(t0), Some(t1)) = (
        log_time(&log, "hopping to the queues' owner"),
        log_time(&log, "waiting in the owner's queue"),
    ) {
        eprintln!(
            "hop: INVITE to the owner → answered in {:.1} ms",
            (t1 - t0) * 1000.0
        );
    }
    // The other node's API shows the owner's line, and says so.
    assert_eq!(line(c.node(&other), "support"), ["1001", "1002"]);
    let (status, node, _) = c
        .node(&other)
        .http_get_head("/api/v1/queues", "X-Ringback-Node");
    assert_eq!((status, node.as_deref()), (200, Some(owner.as_str())));
    assert_eq!(node_metric(&c, &other, "ringback_hops_total"), 1.0);
    assert_eq!(node_metric(&c, &owner, "ringback_hops_in_total"), 1.0);
    // Back: alice takes them in entry order, whichever node they called.
    // Unpaused through the other node's API: the owner's agent changes.
    let (status, body) = c.node(&other).http_post("/api/v1/agents/alice/unpause", "");
    assert_eq!(status, 200, "{body}");
    for (call, number) in [("c1", "1001"), ("c2", "1002")] {
        let inv = offered(&agent, call, number, &c.a);
        assert_eq!(
            inv["x_ringback"]["X-Ringback-Path"]
                .as_str()
                .map(|p| p.contains("support")),
            Some(true),
            "{inv}"
        );
        assert_eq!(inv["x_ringback"]["X-Ringback-Digits"], "1", "{inv}");
        if call == "c1" {
            first.finish_hearing(AGENT_TONE, &c.a);
        } else {
            second.finish_hearing(AGENT_TONE, &c.a);
        }
    }
    // The hopped caller's record on its node is the call's; the owner's
    // `hop` record is its wait there.
    let hop =
        c.db.rows("SELECT node_id, parent_call_id, queue FROM calls WHERE leg = 'hop'");
    assert_eq!(hop.len(), 1, "{hop:?}");
    assert_eq!(hop[0][0].as_deref(), Some(owner.as_str()));
    assert_eq!(hop[0][2].as_deref(), Some("support"));
    let origin = c.db.rows(&format!(
        "SELECT node_id, disposition FROM calls WHERE leg = 'inbound' AND call_id = '{}'",
        hop[0][1].clone().unwrap_or_default()
    ));
    // The caller hung up on the node they called, which records the
    // call as `hopped`: the owner's record says how the wait went.
    assert_eq!(
        origin,
        vec![vec![Some(other.clone()), Some("hopped".into())]]
    );
    let hop_call = c.db.rows(&format!(
        "SELECT c.disposition, a.dialed, CAST(a.answered_at IS NOT NULL AS TEXT) FROM calls c \
         JOIN calls a ON a.parent_call_id = c.call_id AND a.leg = 'agent' \
         WHERE c.leg = 'hop' AND c.parent_call_id = '{}'",
        hop[0][1].clone().unwrap_or_default()
    ));
    assert_eq!(
        hop_call,
        vec![vec![
            Some("completed".into()),
            Some("alice".into()),
            Some("true".into())
        ]],
        "{}",
        c.logs()
    );

    // A third caller calls the other node straight and waits in the
    // owner's line (hopped) while alice is away again.
    let (status, body) = c.node(&owner).http_post("/api/v1/agents/alice/pause", "");
    assert_eq!(status, 200, "{body}");
    let other_sip = c.node(&other).sip.to_string();
    let mut third = support_caller(PJSUA, "caller 1003", &other_sip, "1003");
    {
        let o = c.node(&owner);
        let logs = || c.logs();
        wait_line(o, "support", &["1003"], &logs);
    }
    let queued_at = Instant::now();
    std::thread::sleep(Duration::from_secs(2));

    // The owner dies: the other node takes the queues over within 10 s.
    let owner_addr = c.node(&owner).sip;
    let killed = Instant::now();
    c.node_mut(&owner).kill9();
    let took = c.wait_owner(&other, Duration::from_secs(10));
    eprintln!(
        "failover: {other} holds the ACD lease {:.2} s after kill -9 of {owner}",
        took.as_secs_f64()
    );
    assert!(killed.elapsed() < Duration::from_secs(10));
    poll_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || (node_metric(&c, &other, "ringback_acd_owner") == 1.0).then_some(()),
        || format!("{other} does not say it owns the ACD"),
    );
    // Alice's pause lived with the old owner and moved with the queues;
    // the waiting caller kept the call and their place: they wait in the
    // new owner's own line with their first entry time.
    wait_agent_state(c.node(&other), "alice", "paused");
    {
        let o = c.node(&other);
        let logs = || c.logs();
        wait_line(o, "support", &["1003"], &logs);
    }
    let (status, body) = c.node(&other).http_post("/api/v1/agents/alice/unpause", "");
    assert_eq!(status, 200, "{body}");
    let inv = offered(&agent, "c3", "1003", c.node(&other));
    let waited: u64 = inv["x_ringback"]["X-Ringback-Waited"]
        .as_str()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    assert!(
        waited + 1 >= queued_at.elapsed().as_secs(),
        "waited {waited} s by the header, {:?} since the caller queued",
        queued_at.elapsed()
    );
    third.finish_hearing(AGENT_TONE, c.node(&other));

    // Kamailio stops sending calls to the dead node; the next caller
    // reaches alice through the new owner.
    c.kam.wait_state(owner_addr, 'I', Duration::from_secs(10));
    wait_agent_state(c.node(&other), "alice", "available");
    let mut fourth = support_caller(PJSUA, "caller 1004", &kam, "1004");
    offered(&agent, "c4", "1004", c.node(&other));
    fourth.finish_hearing(AGENT_TONE, c.node(&other));
    agent.finish(c.node(&other));
    for call in ["c1", "c2", "c3", "c4"] {
        let r = agent.expect_where(
            "tone_report",
            |e| e["call"] == call && e["freq"].as_f64() == Some(CALLER_TONE),
            Duration::from_secs(10),
            c.node(&other),
        );
        assert_eq!(
            r["detected"],
            true,
            "agent, {call}: {r}\n{}",
            agent.diagnostics()
        );
    }
}

#[test]
fn a_callback_waiting_when_the_owner_dies_is_dialed_exactly_once_by_the_new_owner() {
    let customer_port = free_udp_port();
    let mut c = cluster(&format!(
        "{}\n[trunk]\naddress = \"127.0.0.1:{customer_port}\"\ncaller_id = \"+15550100\"\n",
        shared_queues_config()
    ));
    let (owner, other) = c.wait_any_owner();
    let mut agent = c.alice(1, 90);
    wait_agent_state(c.node(&owner), "alice", "available");
    let (status, body) = c.node(&owner).http_post("/api/v1/agents/alice/pause", "");
    assert_eq!(status, 200, "{body}");
    // The callback is asked for on the node that does not own the queues;
    // the owner adopts it (the store is shared) and would dial it, but
    // alice is away.
    let (status, body) = c.node(&other).http_post(
        "/api/v1/callbacks",
        r#"{"number":"+15551230009","queue":"support"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let id = json(&body)["id"].as_str().expect("id").to_string();
    std::thread::sleep(Duration::from_secs(3));
    let cb = common::callback_checks::callback(c.node(&other), &id);
    assert!(
        cb["state"] == "scheduled" || cb["state"] == "queued",
        "{cb:#}"
    );
    assert!(common::callback_checks::dialing_nodes(&cb).is_empty());
    // The owner dies; the other node takes the queues and the callback
    // over and, once alice is back, dials the customer, once.
    c.node_mut(&owner).kill9();
    let took = c.wait_owner(&other, Duration::from_secs(10));
    eprintln!(
        "failover: {other} holds the ACD lease {:.2} s after kill -9",
        took.as_secs_f64()
    );
    let srv = c.node(&other);
    // Alice's pause moved with the queues; back, she takes the callback.
    wait_agent_state(srv, "alice", "paused");
    let (status, body) = srv.http_post("/api/v1/agents/alice/unpause", "");
    assert_eq!(status, 200, "{body}");
    common::phone(customer_port, &common::callback_checks::customer())
        .run(srv.sip, "x")
        .assert_ok("the customer, called back by the new owner");
    let cb = common::callback_checks::wait_completed(srv, &id, Duration::from_secs(20));
    assert_eq!(
        common::callback_checks::dialing_nodes(&cb),
        vec![other.clone()],
        "{cb:#}"
    );
    agent.finish(srv);
}
