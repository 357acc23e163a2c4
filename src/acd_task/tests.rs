//! The ACD task's own bookkeeping, without sockets.

use super::*;

fn task() -> (AcdTask, mpsc::UnboundedReceiver<LogRow>) {
    let cfg =
        Config::parse(std::path::Path::new("test.toml"), "[queues.support]\n").expect("config");
    let (queues, agents) = engine_config(&cfg);
    let (log, log_rx) = mpsc::unbounded_channel();
    let task = AcdTask {
        log,
        acd: Acd::new(queues, agents, 1).expect("engine"),
        calls: HashMap::new(),
        devices: crate::agent_devices::DeviceBook::new(&cfg),
        auto_login: Default::default(),
        tz: chrono_tz::UTC,
    };
    (task, log_rx)
}

#[test]
fn a_caller_who_abandons_leaves_no_subscription_behind() {
    let (mut t, _log) = task();
    for i in 0..100 {
        let id = format!("call-{i}");
        let (tx, _rx) = mpsc::unbounded_channel();
        let now = Now::system();
        let w = ringback_acd::WaitingCall::new(id.as_str(), "support", "+15550100", now.mono);
        t.on_cmd(
            AcdCmd::Input {
                input: Input::Enqueue(w),
                notify: Some(tx),
            },
            now,
        );
        t.on_cmd(
            AcdCmd::Input {
                input: Input::Abandon(CallId::from(id.as_str())),
                notify: None,
            },
            now,
        );
    }
    assert!(t.calls.is_empty(), "{} subscriptions left", t.calls.len());
}
