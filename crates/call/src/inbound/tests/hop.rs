//! One queue across nodes: a caller hops to the queues' owner, keeps their
//! place through a failover, and the owner's side of the same hop.

use super::*;
use chrono::TimeZone;

fn on_node(node: &str) -> Setup {
    Setup {
        acd_at: AcdAt::Node(node.into()),
        ..setup()
    }
}

fn hops(outs: &[Output]) -> Vec<(String, HopIn)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Hop { node, hop } => Some((node.clone(), hop.clone())),
            _ => None,
        })
        .collect()
}

/// At the main menu of a node whose queues run on node-a.
fn at_menu_elsewhere() -> Harness {
    let (mut h, _) = Harness::start(on_node("node-a"));
    h.done();
    h
}

#[test]
fn a_caller_reaching_a_queue_owned_elsewhere_hops_with_the_queue_node_and_entry_time() {
    let mut h = at_menu_elsewhere();
    let entered = h.now;
    let outs = h.keys("2");
    // No line of our own, no live entry, no callback check here.
    assert!(enqueued(&outs).is_empty(), "{outs:?}");
    assert!(
        !outs.iter().any(|o| matches!(o, Output::Live(_))),
        "{outs:?}"
    );
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::CheckPendingCallback { .. })),
        "{outs:?}"
    );
    let hop = hops(&outs);
    assert_eq!(hop.len(), 1, "{outs:?}");
    let (node, hop) = &hop[0];
    assert_eq!(node, "node-a");
    assert_eq!(hop.queue, "billing");
    assert_eq!(hop.priority, 5);
    assert_eq!(hop.entered_at, entered.wall);
    assert_eq!(
        hop.callback,
        Some(CallbackOffer {
            offer: true,
            after: secs(30),
            key: '1'
        })
    );
    // Music meanwhile.
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Play {
            hold_music: true,
            ..
        }
    )));
    // Answered: bridged, our music stops being ours (a new token).
    let outs = h.send(Input::Hop(HopEvent::Answered));
    assert_eq!(outs, vec![Output::BridgeHop]);
    // Keys are the owner's now (relayed with the media), not ours.
    assert_eq!(h.keys("1"), vec![]);
    assert_eq!(h.call.poll_timeout(), None);
    // The owner ended the call after an agent took it.
    let outs = h.send(Input::Hop(HopEvent::Ended {
        overflow: false,
        disposition: Disposition::Completed,
    }));
    assert_eq!(
        outs,
        vec![
            Output::DropHop,
            Output::Ended(Ending {
                disposition: Disposition::Completed,
                hangup_by: HangupBy::Ringback,
                send_bye: true
            })
        ]
    );
}

#[test]
fn an_overflow_at_the_owner_continues_the_plan_here() {
    let mut h = at_menu_elsewhere();
    h.keys("2");
    h.send(Input::Hop(HopEvent::Answered));
    let outs = h.send(Input::Hop(HopEvent::Ended {
        overflow: true,
        disposition: Disposition::Completed,
    }));
    // billing's on_timeout is `sorry`: a hangup node with a prompt.
    assert!(
        outs.iter().any(
            |o| matches!(o, Output::Play { prompts, .. } if prompts == &vec!["sorry".to_string()])
        ),
        "{outs:?}"
    );
}

#[test]
fn a_refused_hop_is_tried_again_and_the_caller_hangs_up_as_hopped() {
    let mut h = at_menu_elsewhere();
    h.keys("3");
    assert_eq!(h.send(Input::Hop(HopEvent::Failed)), vec![]);
    assert_eq!(h.due_in(), Some(HOP_RETRY));
    let outs = h.fire();
    assert_eq!(hops(&outs).len(), 1, "{outs:?}");
    h.send(Input::Hop(HopEvent::Answered));
    let outs = h.send(Input::CallerHungUp);
    assert_eq!(
        outs.last(),
        Some(&Output::Ended(Ending {
            disposition: Disposition::Hopped,
            hangup_by: HangupBy::Caller,
            send_bye: false
        }))
    );
    assert!(outs.contains(&Output::DropHop), "{outs:?}");
}

#[test]
fn when_the_owner_dies_the_caller_keeps_their_place_here_or_at_the_next_owner() {
    let mut h = at_menu_elsewhere();
    let entered = h.now;
    h.keys("3");
    h.send(Input::Hop(HopEvent::Answered));
    h.advance(40);
    // The lease is being taken over: music here, no hop yet.
    let outs = h.send(Input::AcdAt(AcdAt::Unknown));
    assert_eq!(outs[0], Output::DropHop, "{outs:?}");
    assert!(hops(&outs).is_empty());
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Play {
            hold_music: true,
            ..
        }
    )));
    // Still unknown a second later: nothing placed, asked again later.
    assert!(hops(&h.fire()).is_empty());
    // node-b took over: hop there with the first entry time.
    let outs = h.send(Input::AcdAt(AcdAt::Node("node-b".into())));
    let hop = hops(&outs);
    assert_eq!(hop.len(), 1, "{outs:?}");
    assert_eq!(hop[0].0, "node-b");
    assert_eq!(hop[0].1.entered_at, entered.wall);
    // And when this node takes over instead, the caller waits in our own
    // line, still with the first entry time.
    let outs = h.send(Input::AcdAt(AcdAt::Here));
    assert_eq!(outs[0], Output::DropHop, "{outs:?}");
    assert_eq!(enqueued(&outs), vec![waiting("support", entered.mono)]);
    assert!(outs.contains(&Output::Live(LiveUpdate::Queued)), "{outs:?}");
}

#[test]
fn a_callback_node_on_a_node_that_owns_no_queue_stores_the_request_without_joining_a_line() {
    let mut h = at_menu_elsewhere();
    let outs = h.keys("4");
    assert!(enqueued(&outs).is_empty(), "{outs:?}");
    assert!(hops(&outs).is_empty(), "{outs:?}");
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::RequestCallback { queue, .. } if queue == "billing")),
        "{outs:?}"
    );
}

#[test]
fn the_owner_puts_a_hopped_in_caller_in_line_with_the_original_entry_time() {
    let now = Now::system();
    let entered = now.wall - chrono::Duration::seconds(90);
    let hop = HopIn {
        queue: "billing".into(),
        entered_at: entered,
        priority: 5,
        max_wait: Some(secs(600)),
        callback: None,
        zero_out: true,
        path: "welcome > main > billing".into(),
        digits: "2".into(),
    };
    let vars = BTreeMap::from([("account".to_string(), "42".to_string())]);
    let mut call = InboundCall::hopped_in(setup(), hop, vars, now);
    let outs = drain(&mut call);
    let mut expected = waiting("billing", now.mono - secs(90)).with_priority(5);
    expected.max_wait = Some(secs(600));
    assert_eq!(enqueued(&outs), vec![expected], "{outs:?}");
    assert!(outs.contains(&Output::Live(LiveUpdate::Queued)));
    assert!(outs.contains(&Output::CheckPendingCallback {
        queue: "billing".into()
    }));
    assert_eq!(call.path(), "welcome > main > billing");
    assert_eq!(call.digits(), "2");
    assert_eq!(call.vars().get("account").map(String::as_str), Some("42"));
    assert_eq!(call.entered_queue_at(), Some(entered));
    assert!(call.is_hopped_in());
    // The queue lets the caller go: the call ends, saying so.
    call.handle(
        Input::LeaveQueue {
            overflow: None,
            why: "max_wait",
        },
        now,
    );
    let outs = drain(&mut call);
    assert!(call.hop_overflowed(), "{outs:?}");
    assert!(
        matches!(outs.last(), Some(Output::Ended(e)) if e.send_bye),
        "{outs:?}"
    );
}

#[test]
fn the_hop_header_reads_back_and_bad_values_are_named() {
    let hop = HopIn {
        queue: "billing".into(),
        entered_at: Utc.timestamp_millis_opt(1_733_221_234_123).unwrap(),
        priority: -3,
        max_wait: Some(secs(120)),
        callback: Some(CallbackOffer {
            offer: true,
            after: secs(45),
            key: '#',
        }),
        zero_out: true,
        path: "a > b".into(),
        digits: "12".into(),
    };
    let v = hop.header_value();
    assert_eq!(
        v,
        "queue=billing;entered=1733221234123;priority=-3;max-wait=120;offer-after=45;offer-key=#;zero-out=1"
    );
    assert_eq!(HopIn::parse(&v, "a > b", "12"), Ok(hop));
    for (bad, says) in [
        ("entered=1", "no queue"),
        ("queue=a", "no entered"),
        ("queue=a;entered=x", "entered: `x` is not a number"),
        ("queue=a b;entered=1", "queue: `a b` is not a queue name"),
        ("queue=a;entered=1;junk", "`junk` is not key=value"),
    ] {
        assert_eq!(HopIn::parse(bad, "", "").unwrap_err(), says, "{bad}");
    }
}
