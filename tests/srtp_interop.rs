mod common;
use std::time::Duration;
use common::peer::{args, Bye, finish_queued_call, AGENT_CONFIG, AGENT_TONE, CALLER_TONE, PJSUA};
use common::{Server, ServerOpts};

#[test]
fn explore() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::certs::Ca::new(dir.path(), "lab");
    let rb = ca.issue("ringback");
    let srv = Server::start(ServerOpts {
        extra_config: format!("{AGENT_CONFIG}srtp = \"mandatory\"\n"),
        sip_extra: format!("tls_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nsrtp = \"mandatory\"\n", rb.cert.display(), rb.key.display()),
        ..ServerOpts::default()
    });
    let tls = srv.tls.unwrap().to_string();
    let cas = ca.cert.to_str().unwrap().to_string();
    let a = AGENT_TONE.to_string(); let c = CALLER_TONE.to_string();
    let mut agent = PJSUA.spawn("agent alice", "agent", &args(&["--transport","tls","--ca",&cas,"--registrar",&tls,"--user","alice","--password","alice-secret","--srtp","mandatory","--ring-delay","0.5","--play",&a,"--detect",&c,"--timeout","35"]));
    agent.expect("registered", Duration::from_secs(10), &srv);
    common::peer::wait_agent_state(&srv, "alice", "available");
    let uri = format!("sip:2000@{tls};transport=tls");
    let mut caller = PJSUA.spawn("caller","caller", &args(&["--transport","tls","--ca",&cas,"--uri",&uri,"--srtp","mandatory","--dtmf","1@1.5","--play",&c,"--play-at","2","--detect",&a,"--hangup-on-tone",&a,"--hangup-delay","2","--timeout","30"]));
    let id = caller.expect_where("call_state", |e| e["call_id"].as_str().is_some_and(|s| !s.is_empty()), Duration::from_secs(10), &srv)["call_id"].as_str().unwrap().to_string();
    let inv = agent.expect("incoming", Duration::from_secs(15), &srv);
    std::fs::write("/tmp/srtp_explore/incoming.json", inv.to_string()).unwrap();
    let _ = finish_queued_call(&srv, &id, &mut agent, &mut caller, Bye::Caller);
    std::fs::write("/tmp/srtp_explore/caller.log", caller.log()).unwrap();
    std::fs::write("/tmp/srtp_explore/agent.log", agent.log()).unwrap();
    std::fs::write("/tmp/srtp_explore/caller.events", caller.events().iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")).unwrap();
    std::fs::write("/tmp/srtp_explore/agent.events", agent.events().iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")).unwrap();
    std::fs::write("/tmp/srtp_explore/server.log", srv.log()).unwrap();
    println!("{}", srv.metric("ringback_srtp_auth_failures_total"));
}
