//! Every step, timer and failure of a callback attempt, driven with a fake
//! clock: no sockets, no sleeps.

use super::*;
use ringback_acd::Input as Acd;

const CALL: &str = "cb-42-0000beef";
const NUMBER: &str = "+15551230001";
const WAITED: u64 = 150;
const LEASE: Duration = Duration::from_secs(30);
const ACCEPT: Duration = Duration::from_secs(8);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A core under test, its fake clock and what it asked for so far.
struct H {
    core: CallbackAttempt,
    now: Now,
    start: Now,
}

impl H {
    /// An attempt for a customer who entered the queue 150 s ago, with two
    /// trunks.
    fn new() -> H {
        H::with_trunks(2)
    }

    fn with_trunks(trunks: usize) -> H {
        let now = Now::system();
        let setup = Setup {
            call: CALL.into(),
            queue: "support".into(),
            number: NUMBER.into(),
            entered_at: now.wall - chrono::TimeDelta::seconds(WAITED as i64),
            lease: LEASE,
            accept_timeout: ACCEPT,
            trunks,
            priority: 0,
            customer_key: None,
            required_skills: Vec::new(),
        };
        H {
            core: CallbackAttempt::new(setup, now),
            now,
            start: now,
        }
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        self.core.handle(input, self.now);
        self.drain()
    }

    /// Move the clock on and fire the timer if it is due.
    fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now = self.now.plus(d);
        if self.core.poll_timeout().is_some_and(|t| t <= self.now.mono) {
            self.core.handle_timeout(self.now);
        }
        self.drain()
    }

    fn phase(&self) -> &Phase {
        self.core.phase()
    }

    fn timeout_in(&self) -> Option<Duration> {
        self.core.poll_timeout().map(|t| t - self.now.mono)
    }

    /// Enqueued, offered to alice, lease claimed: alice's phone rings.
    fn agent_ringing() -> H {
        let mut h = H::new();
        h.drain();
        h.feed(offer("alice"));
        let out = h.feed(Input::LeaseClaimed(LeaseAnswer::Held));
        assert_eq!(
            out,
            vec![Output::RingAgent {
                agent: "alice".into(),
                waited_secs: WAITED as i64
            }]
        );
        h
    }

    /// Alice answered; the ACD has not connected yet.
    fn agent_answered() -> H {
        let mut h = H::agent_ringing();
        let out = h.feed(Input::Agent(LegEvent::Answered));
        assert_eq!(
            out,
            vec![Output::Acd(Acd::OfferAnswered {
                call: CALL.into(),
                agent: "alice".into()
            })]
        );
        h
    }

    /// Connected and allowed to dial: the whisper plays. Returns its token.
    fn whisper() -> (H, u64) {
        let mut h = H::agent_answered();
        assert_eq!(
            h.feed(Input::Connected {
                agent: "alice".into()
            }),
            vec![Output::AskToDial]
        );
        let out = h.feed(Input::MayDial(true));
        let Phase::Whisper { token, .. } = *h.phase() else {
            panic!("{:?}", h.phase());
        };
        assert_eq!(
            out,
            vec![Output::Play {
                leg: Leg::Agent,
                prompts: names(&["callback-whisper", "digit-3", "minutes-ago"]),
                looped: false,
                token,
            }]
        );
        (h, token)
    }

    /// The whisper is over: music for alice, the customer rings via trunk 0.
    fn customer_ringing() -> H {
        let (mut h, token) = H::whisper();
        let out = h.feed(Input::Agent(LegEvent::PlaybackDone { token }));
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(is_hold_music(&out[0]), "{out:?}");
        assert_eq!(out[1], Output::DialCustomer { trunk: 0 });
        h
    }

    /// The customer answered and hears the intro.
    fn accepting() -> H {
        let mut h = H::customer_ringing();
        let out = h.feed(Input::Customer(LegEvent::Answered));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(is_intro(&out[0]), "{out:?}");
        h
    }

    /// The customer pressed 1: they talk.
    fn bridged() -> H {
        let mut h = H::accepting();
        let out = h.feed(Input::CustomerDigit('1'));
        assert_eq!(
            out,
            vec![
                Output::Bridge,
                Output::Accepted {
                    waited_secs: WAITED
                }
            ]
        );
        assert_eq!(
            h.phase(),
            &Phase::Bridged {
                agent: "alice".into()
            }
        );
        h
    }
}

fn offer(agent: &str) -> Input {
    Input::Offer {
        agent: agent.into(),
    }
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn is_hold_music(o: &Output) -> bool {
    matches!(o, Output::Play { leg: Leg::Agent, prompts, looped: true, .. } if prompts == &names(&["hold-music"]))
}

fn is_intro(o: &Output) -> bool {
    matches!(o, Output::Play { leg: Leg::Customer, prompts, looped: false, .. } if prompts == &names(&["callback-intro"]))
}

fn hang_up(leg: Leg) -> Output {
    Output::HangUp {
        leg,
        by: HangupBy::Ringback,
    }
}

fn end_leg(leg: Leg, by: HangupBy) -> Output {
    Output::EndLeg { leg, by }
}

fn abandon() -> Output {
    Output::Acd(Acd::Abandon(CALL.into()))
}

fn call_ended() -> Output {
    Output::Acd(Acd::CallEnded {
        call: CALL.into(),
        agent: "alice".into(),
        by: EndedBy::Caller,
    })
}

fn offer_failed(agent: &str, reason: OfferFailure) -> Output {
    Output::Acd(Acd::OfferFailed {
        call: CALL.into(),
        agent: agent.into(),
        reason,
    })
}

fn result(r: AttemptResult) -> Output {
    Output::Report(Outcome::Result(r))
}

/// The end of an attempt connected to alice with both legs still up.
fn end_with_both_legs(r: AttemptResult) -> Vec<Output> {
    vec![
        hang_up(Leg::Customer),
        hang_up(Leg::Agent),
        call_ended(),
        result(r),
        Output::Finished,
    ]
}

fn assert_finished(h: &mut H) {
    assert!(h.core.is_finished());
    assert_eq!(h.core.poll_timeout(), None);
    for input in [
        Input::Shutdown,
        Input::Stop,
        offer("bob"),
        Input::Agent(LegEvent::Bye),
        Input::Customer(LegEvent::Bye),
        Input::CustomerDigit('1'),
    ] {
        assert_eq!(h.feed(input), vec![], "nothing after the end");
    }
    assert_eq!(h.advance(secs(3600)), vec![]);
}

// ---------------------------------------------------------------- waiting

#[test]
fn enters_the_queue_in_the_callers_original_place() {
    let mut h = H::new();
    let out = h.drain();
    let [Output::Acd(Acd::Enqueue(w))] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(w.id.as_str(), CALL);
    assert_eq!(w.queue.as_str(), "support");
    assert_eq!(w.caller, NUMBER);
    assert_eq!(h.start.mono - w.entered_at, secs(WAITED));
    assert_eq!(h.phase(), &Phase::Waiting);
    assert_eq!(h.core.poll_timeout(), None, "no timer while waiting");
    assert_eq!(h.advance(secs(600)), vec![]);
}

#[test]
fn a_vip_customers_attempt_waits_with_their_priority() {
    let mut h = H::new();
    let now = h.now;
    let setup = Setup {
        call: CALL.into(),
        queue: "support".into(),
        number: NUMBER.into(),
        entered_at: now.wall,
        lease: LEASE,
        accept_timeout: ACCEPT,
        trunks: 1,
        priority: 4,
        customer_key: Some("customer:7".into()),
        required_skills: vec![("spanish".into(), 2)],
    };
    h.core = CallbackAttempt::new(setup, now);
    let out = h.drain();
    let [Output::Acd(Acd::Enqueue(w))] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(w.priority, 4);
    assert_eq!(w.caller, NUMBER);
    assert_eq!(
        w.sticky_key(),
        "customer:7",
        "sticky routing knows the customer"
    );
    assert_eq!(w.required_skills, [("spanish".to_string(), 2)]);
}

#[test]
fn an_offer_claims_the_lease_before_ringing() {
    let mut h = H::new();
    h.drain();
    h.now = h.now.plus(secs(5));
    let out = h.feed(offer("alice"));
    assert_eq!(
        out,
        vec![Output::ClaimLease {
            at: h.now.wall,
            until: h.now.wall + chrono::TimeDelta::seconds(30),
        }]
    );
    assert_eq!(
        h.phase(),
        &Phase::ClaimingLease {
            agent: "alice".into(),
            offer_live: true
        }
    );
    let out = h.feed(Input::LeaseClaimed(LeaseAnswer::Held));
    assert_eq!(
        out,
        vec![Output::RingAgent {
            agent: "alice".into(),
            waited_secs: WAITED as i64 + 5
        }]
    );
    assert_eq!(
        h.phase(),
        &Phase::AgentRinging {
            agent: "alice".into()
        }
    );
}

#[test]
fn claim_lost_to_another_node_backs_off_one_second_then_hands_back() {
    let mut h = H::new();
    h.drain();
    h.feed(offer("alice"));
    assert_eq!(
        h.feed(Input::LeaseClaimed(LeaseAnswer::HeldElsewhere)),
        vec![]
    );
    assert!(matches!(
        h.phase(),
        Phase::Backoff {
            then: Outcome::HandBack,
            ..
        }
    ));
    assert_eq!(h.timeout_in(), Some(secs(1)));
    // Nothing moves it meanwhile (the ACD's offer, a stop, a cancel).
    assert_eq!(h.feed(Input::Stop), vec![]);
    assert_eq!(h.feed(offer("bob")), vec![]);
    assert_eq!(h.advance(Duration::from_millis(999)), vec![]);
    assert_eq!(
        h.advance(Duration::from_millis(1)),
        vec![
            abandon(),
            Output::Report(Outcome::HandBack),
            Output::Finished
        ]
    );
    assert_finished(&mut h);
}

#[test]
fn claim_error_hands_back_at_once() {
    let mut h = H::new();
    h.drain();
    h.feed(offer("alice"));
    assert_eq!(
        h.feed(Input::LeaseClaimed(LeaseAnswer::Error)),
        vec![
            abandon(),
            Output::Report(Outcome::HandBack),
            Output::Finished
        ]
    );
    assert_finished(&mut h);
}

#[test]
fn leaving_the_queue_backs_off_thirty_seconds_then_hands_back() {
    let mut h = H::new();
    h.drain();
    assert_eq!(h.feed(Input::Leave), vec![]);
    assert_eq!(h.timeout_in(), Some(secs(30)));
    assert_eq!(h.advance(secs(29)), vec![]);
    assert_eq!(h.timeout_in(), Some(secs(1)));
    assert_eq!(
        h.advance(secs(1)),
        vec![
            abandon(),
            Output::Report(Outcome::HandBack),
            Output::Finished
        ]
    );
    assert_finished(&mut h);
}

#[test]
fn leaving_the_queue_while_the_agent_rings_hangs_up_after_the_back_off() {
    let mut h = H::agent_ringing();
    assert_eq!(h.feed(Input::Leave), vec![]);
    assert_eq!(h.timeout_in(), Some(secs(30)), "no lease renewal either");
    assert_eq!(
        h.advance(secs(30)),
        vec![
            hang_up(Leg::Agent),
            abandon(),
            Output::Report(Outcome::HandBack),
            Output::Finished
        ]
    );
}

#[test]
fn shutdown_during_a_back_off_hands_back_at_once() {
    let mut h = H::new();
    h.drain();
    h.feed(Input::Leave);
    assert_eq!(
        h.feed(Input::Shutdown),
        vec![
            abandon(),
            Output::Report(Outcome::HandBack),
            Output::Finished
        ]
    );
    assert_finished(&mut h);
}

// ------------------------------------------------------------ agent leg

#[test]
fn agent_no_answer_busy_reject_and_errors_go_back_to_the_acd() {
    for (code, reason) in [
        (480, OfferFailure::NoAnswer),
        (408, OfferFailure::NoAnswer),
        (487, OfferFailure::NoAnswer),
        (486, OfferFailure::Busy),
        (600, OfferFailure::Busy),
        (603, OfferFailure::Rejected),
        (404, OfferFailure::Error),
        (488, OfferFailure::Error),
    ] {
        let mut h = H::agent_ringing();
        assert_eq!(
            h.feed(Input::Agent(LegEvent::Failed(code))),
            vec![
                end_leg(Leg::Agent, HangupBy::Agent),
                offer_failed("alice", reason)
            ],
            "{code}"
        );
        assert_eq!(h.phase(), &Phase::Waiting);
        // The next offer starts over.
        assert!(matches!(
            h.feed(offer("bob"))[..],
            [Output::ClaimLease { .. }]
        ));
    }
}

#[test]
fn agent_invite_timeout_is_no_answer() {
    let mut h = H::agent_ringing();
    assert_eq!(
        h.feed(Input::Agent(LegEvent::Timeout)),
        vec![
            end_leg(Leg::Agent, HangupBy::Agent),
            offer_failed("alice", OfferFailure::NoAnswer)
        ]
    );
    assert_eq!(h.phase(), &Phase::Waiting);
}

#[test]
fn agent_that_cannot_be_dialed_is_an_error_offer() {
    let mut h = H::agent_ringing();
    assert_eq!(
        h.feed(Input::Agent(LegEvent::DialFailed)),
        vec![offer_failed("alice", OfferFailure::Error)]
    );
    assert_eq!(h.phase(), &Phase::Waiting);
    // No leg to hang up at the end.
    assert_eq!(
        h.feed(Input::Stop),
        vec![
            abandon(),
            Output::Report(Outcome::Dropped),
            Output::Finished
        ]
    );
}

#[test]
fn cancelled_offer_cancels_the_ringing_leg_which_its_final_answer_ends() {
    let mut h = H::agent_ringing();
    assert_eq!(
        h.feed(Input::CancelOffer {
            agent: "bob".into()
        }),
        vec![],
        "another agent's offer"
    );
    assert_eq!(
        h.feed(Input::CancelOffer {
            agent: "alice".into()
        }),
        vec![Output::CancelAgent]
    );
    assert_eq!(h.phase(), &Phase::Waiting);
    // The 487: a record, and nothing for the ACD (the offer is gone).
    assert_eq!(
        h.feed(Input::Agent(LegEvent::Failed(487))),
        vec![end_leg(Leg::Agent, HangupBy::Agent)]
    );
    assert_eq!(h.feed(Input::Agent(LegEvent::Failed(487))), vec![]);
}

#[test]
fn cancelled_leg_answering_too_late_was_hung_up_by_ringback() {
    let mut h = H::agent_ringing();
    h.feed(Input::CancelOffer {
        agent: "alice".into(),
    });
    assert_eq!(h.feed(Input::Agent(LegEvent::Answered)), vec![]);
    assert_eq!(
        h.feed(Input::Agent(LegEvent::AnsweredTooLate)),
        vec![end_leg(Leg::Agent, HangupBy::Ringback)]
    );
}

#[test]
fn cancelled_leg_still_lingering_is_hung_up_before_the_next_agent_rings() {
    let mut h = H::agent_ringing();
    h.feed(Input::CancelOffer {
        agent: "alice".into(),
    });
    h.feed(offer("bob"));
    assert_eq!(
        h.feed(Input::LeaseClaimed(LeaseAnswer::Held)),
        vec![
            hang_up(Leg::Agent),
            Output::RingAgent {
                agent: "bob".into(),
                waited_secs: WAITED as i64
            }
        ]
    );
}

#[test]
fn cancelled_offer_after_the_agent_answered_hangs_up_the_leg() {
    let mut h = H::agent_answered();
    assert_eq!(
        h.feed(Input::CancelOffer {
            agent: "alice".into()
        }),
        vec![hang_up(Leg::Agent)]
    );
    assert_eq!(h.phase(), &Phase::Waiting);
}

#[test]
fn offer_cancelled_while_the_lease_is_claimed_is_not_rung() {
    let mut h = H::new();
    h.drain();
    h.feed(offer("alice"));
    assert_eq!(
        h.feed(Input::CancelOffer {
            agent: "alice".into()
        }),
        vec![]
    );
    assert_eq!(h.feed(Input::LeaseClaimed(LeaseAnswer::Held)), vec![]);
    assert_eq!(h.phase(), &Phase::Waiting);
    assert_eq!(h.timeout_in(), Some(secs(10)), "the lease held is renewed");
}

#[test]
fn a_second_offer_while_one_agent_rings_is_refused() {
    let mut h = H::agent_ringing();
    assert_eq!(
        h.feed(offer("bob")),
        vec![offer_failed("bob", OfferFailure::Error)]
    );
    assert_eq!(
        h.phase(),
        &Phase::AgentRinging {
            agent: "alice".into()
        }
    );
}

#[test]
fn agent_bye_before_the_customer_answers_is_agent_lost() {
    // Answered, before the ACD connected.
    let mut h = H::agent_answered();
    assert_eq!(
        h.feed(Input::Agent(LegEvent::Bye)),
        vec![
            end_leg(Leg::Agent, HangupBy::Agent),
            abandon(),
            result(AttemptResult::AgentLost),
            Output::Finished
        ]
    );
    assert_finished(&mut h);

    // During the whisper.
    let (mut h, _) = H::whisper();
    assert_eq!(
        h.feed(Input::Agent(LegEvent::Bye)),
        vec![
            end_leg(Leg::Agent, HangupBy::Agent),
            call_ended(),
            result(AttemptResult::AgentLost),
            Output::Finished
        ]
    );

    // While the customer's phone rings, and while they hear the intro.
    for mut h in [H::customer_ringing(), H::accepting()] {
        assert_eq!(
            h.feed(Input::Agent(LegEvent::Bye)),
            vec![
                end_leg(Leg::Agent, HangupBy::Agent),
                hang_up(Leg::Customer),
                call_ended(),
                result(AttemptResult::AgentLost),
                Output::Finished
            ]
        );
        assert_finished(&mut h);
    }
}

#[test]
fn agent_rtp_timeout_before_the_bridge_is_agent_lost() {
    for mut h in [H::agent_answered(), H::customer_ringing(), H::accepting()] {
        let out = h.feed(Input::Agent(LegEvent::RtpTimeout));
        assert_eq!(
            out[out.len() - 2],
            result(AttemptResult::AgentLost),
            "{out:?}"
        );
        assert!(out.contains(&hang_up(Leg::Agent)), "{out:?}");
    }
}

#[test]
fn connected_to_an_agent_whose_leg_is_gone_is_agent_lost() {
    let mut h = H::agent_answered();
    h.feed(Input::CancelOffer {
        agent: "alice".into(),
    });
    assert_eq!(
        h.feed(Input::Connected {
            agent: "alice".into()
        }),
        vec![
            call_ended(),
            result(AttemptResult::AgentLost),
            Output::Finished
        ]
    );
}

// ------------------------------------------------------------ whisper

#[test]
fn the_service_refusing_to_dial_drops_the_attempt() {
    let mut h = H::agent_answered();
    h.feed(Input::Connected {
        agent: "alice".into(),
    });
    assert_eq!(
        h.feed(Input::MayDial(false)),
        vec![
            hang_up(Leg::Agent),
            call_ended(),
            Output::Report(Outcome::Dropped),
            Output::Finished
        ]
    );
    assert_finished(&mut h);
}

#[test]
fn whisper_says_the_minutes_waited_rounded_up() {
    let mut h = H::agent_answered();
    h.now = h.now.plus(secs(12 * 60 + 31 - WAITED)); // 12:31 waited
    h.feed(Input::Connected {
        agent: "alice".into(),
    });
    let out = h.feed(Input::MayDial(true));
    let [Output::Play { prompts, .. }] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(
        prompts,
        &names(&["callback-whisper", "digit-1", "digit-3", "minutes-ago"])
    );
}

#[test]
fn whisper_done_dials_the_customer_through_the_first_trunk() {
    let (mut h, token) = H::whisper();
    assert_eq!(
        h.feed(Input::Agent(LegEvent::PlaybackDone { token: token + 7 })),
        vec![],
        "another playlist"
    );
    assert_eq!(
        h.feed(Input::Customer(LegEvent::PlaybackDone { token })),
        vec![],
        "the other leg"
    );
    let out = h.feed(Input::Agent(LegEvent::PlaybackDone { token }));
    assert!(is_hold_music(&out[0]), "{out:?}");
    assert_eq!(out[1], Output::DialCustomer { trunk: 0 });
    assert_eq!(
        h.phase(),
        &Phase::CustomerRinging {
            agent: "alice".into(),
            trunk: 0,
            early_bridged: false,
            exhausted: AttemptResult::Failed("trunk unavailable".into()),
        }
    );
    // The same token again changes nothing.
    assert_eq!(
        h.feed(Input::Agent(LegEvent::PlaybackDone { token })),
        vec![]
    );
}

// ------------------------------------------------------------ customer leg

#[test]
fn carrier_failure_fails_over_to_the_next_trunk() {
    for code in [503, 500, 502, 408] {
        let mut h = H::customer_ringing();
        assert_eq!(
            h.feed(Input::Customer(LegEvent::Failed(code))),
            vec![
                end_leg(Leg::Customer, HangupBy::Customer),
                Output::DialCustomer { trunk: 1 }
            ],
            "{code}"
        );
        assert!(matches!(h.phase(), Phase::CustomerRinging { trunk: 1, .. }));
        // Trunk 1 answers: the attempt goes on as usual.
        let out = h.feed(Input::Customer(LegEvent::Answered));
        assert!(is_intro(&out[0]), "{out:?}");
    }
}

#[test]
fn invite_timeout_fails_over_to_the_next_trunk() {
    let mut h = H::customer_ringing();
    assert_eq!(
        h.feed(Input::Customer(LegEvent::Timeout)),
        vec![
            end_leg(Leg::Customer, HangupBy::Customer),
            Output::DialCustomer { trunk: 1 }
        ]
    );
    assert_eq!(
        h.feed(Input::Customer(LegEvent::Timeout)),
        vec![
            end_leg(Leg::Customer, HangupBy::Customer),
            hang_up(Leg::Agent),
            call_ended(),
            result(AttemptResult::CustomerNoAnswer),
            Output::Finished
        ]
    );
    assert_finished(&mut h);
}

#[test]
fn all_trunks_failing_reports_the_last_failure() {
    for (last, r) in [
        (502, AttemptResult::Failed("trunk answered 502".into())),
        (503, AttemptResult::Failed("trunk answered 503".into())),
        (408, AttemptResult::CustomerNoAnswer),
    ] {
        let mut h = H::customer_ringing();
        h.feed(Input::Customer(LegEvent::Failed(503)));
        assert_eq!(
            h.feed(Input::Customer(LegEvent::Failed(last))),
            vec![
                end_leg(Leg::Customer, HangupBy::Customer),
                hang_up(Leg::Agent),
                call_ended(),
                result(r),
                Output::Finished
            ],
            "{last}"
        );
    }
}

#[test]
fn trunks_that_cannot_be_tried_are_skipped() {
    let mut h = H::with_trunks(3);
    h.drain();
    h.feed(offer("alice"));
    h.feed(Input::LeaseClaimed(LeaseAnswer::Held));
    h.feed(Input::Agent(LegEvent::Answered));
    h.feed(Input::Connected {
        agent: "alice".into(),
    });
    h.feed(Input::MayDial(true));
    let Phase::Whisper { token, .. } = *h.phase() else {
        panic!()
    };
    let out = h.feed(Input::Agent(LegEvent::PlaybackDone { token }));
    assert_eq!(out[1], Output::DialCustomer { trunk: 0 });
    assert_eq!(
        h.feed(Input::Customer(LegEvent::DialFailed)),
        vec![Output::DialCustomer { trunk: 1 }]
    );
    assert_eq!(
        h.feed(Input::Customer(LegEvent::DialFailed)),
        vec![Output::DialCustomer { trunk: 2 }]
    );
    // The last one rings then fails with 503; none left.
    assert_eq!(
        h.feed(Input::Customer(LegEvent::Failed(503))),
        vec![
            end_leg(Leg::Customer, HangupBy::Customer),
            hang_up(Leg::Agent),
            call_ended(),
            result(AttemptResult::Failed("trunk answered 503".into())),
            Output::Finished
        ]
    );
}

#[test]
fn no_trunk_at_all_fails_the_attempt() {
    let mut h = H::customer_ringing();
    assert_eq!(
        h.feed(Input::Customer(LegEvent::DialFailed)),
        vec![Output::DialCustomer { trunk: 1 }]
    );
    assert_eq!(
        h.feed(Input::Customer(LegEvent::DialFailed)),
        vec![
            hang_up(Leg::Agent),
            call_ended(),
            result(AttemptResult::Failed("trunk unavailable".into())),
            Output::Finished
        ]
    );
    // Failing over after a 503 onto a trunk that cannot be tried keeps
    // the 503.
    let mut h = H::customer_ringing();
    h.feed(Input::Customer(LegEvent::Failed(503)));
    let out = h.feed(Input::Customer(LegEvent::DialFailed));
    assert_eq!(
        out[2],
        result(AttemptResult::Failed("trunk answered 503".into()))
    );
}

#[test]
fn busy_declined_and_no_answer_end_the_attempt_without_failover() {
    for (code, r) in [
        (486, AttemptResult::CustomerBusy),
        (600, AttemptResult::CustomerBusy),
        (603, AttemptResult::CustomerDeclined),
        (480, AttemptResult::CustomerNoAnswer),
        (487, AttemptResult::CustomerNoAnswer),
        (404, AttemptResult::Failed("trunk answered 404".into())),
        (488, AttemptResult::Failed("trunk answered 488".into())),
    ] {
        let mut h = H::customer_ringing();
        assert_eq!(
            h.feed(Input::Customer(LegEvent::Failed(code))),
            vec![
                end_leg(Leg::Customer, HangupBy::Customer),
                hang_up(Leg::Agent),
                call_ended(),
                result(r),
                Output::Finished
            ],
            "{code}"
        );
        assert_finished(&mut h);
    }
}

#[test]
fn early_media_is_bridged_then_the_answer_brings_back_the_music() {
    let mut h = H::customer_ringing();
    assert_eq!(
        h.feed(Input::Customer(LegEvent::EarlyMedia)),
        vec![Output::Bridge]
    );
    assert!(matches!(
        h.phase(),
        Phase::CustomerRinging {
            early_bridged: true,
            ..
        }
    ));
    let out = h.feed(Input::Customer(LegEvent::Answered));
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0], Output::Unbridge);
    assert!(is_hold_music(&out[1]), "{out:?}");
    assert!(is_intro(&out[2]), "{out:?}");
    assert!(matches!(h.phase(), Phase::Accepting { .. }));
}

#[test]
fn early_media_then_a_carrier_failure_unbridges_and_fails_over() {
    let mut h = H::customer_ringing();
    h.feed(Input::Customer(LegEvent::EarlyMedia));
    assert_eq!(
        h.feed(Input::Customer(LegEvent::Failed(503))),
        vec![
            end_leg(Leg::Customer, HangupBy::Customer),
            Output::Unbridge,
            Output::DialCustomer { trunk: 1 }
        ]
    );
    assert!(matches!(
        h.phase(),
        Phase::CustomerRinging {
            trunk: 1,
            early_bridged: false,
            ..
        }
    ));
    // Trunk 1 answers without early media: no unbridge, no music again.
    let out = h.feed(Input::Customer(LegEvent::Answered));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(is_intro(&out[0]));
}

#[test]
fn customer_gone_before_accepting_is_no_acceptance() {
    let mut h = H::customer_ringing();
    assert_eq!(
        h.feed(Input::Customer(LegEvent::RtpTimeout)),
        end_with_both_legs(AttemptResult::CustomerNoAcceptance)
    );
    let mut h = H::accepting();
    assert_eq!(
        h.feed(Input::Customer(LegEvent::Bye)),
        vec![
            end_leg(Leg::Customer, HangupBy::Customer),
            hang_up(Leg::Agent),
            call_ended(),
            result(AttemptResult::CustomerNoAcceptance),
            Output::Finished
        ]
    );
    let mut h = H::accepting();
    assert_eq!(
        h.feed(Input::Customer(LegEvent::RtpTimeout)),
        end_with_both_legs(AttemptResult::CustomerNoAcceptance)
    );
}

// ------------------------------------------------------------ accepting

#[test]
fn accepting_by_pressing_1_bridges() {
    let mut h = H::accepting();
    assert_eq!(h.feed(Input::CustomerDigit('5')), vec![], "other keys");
    assert_eq!(h.feed(Input::CustomerDigit('#')), vec![]);
    h.now = h.now.plus(secs(3));
    assert_eq!(
        h.feed(Input::CustomerDigit('1')),
        vec![
            Output::Bridge,
            Output::Accepted {
                waited_secs: WAITED + 3
            }
        ]
    );
    assert!(matches!(h.phase(), Phase::Bridged { .. }));
    // The accept deadline is gone; only the lease renewal is left.
    assert_eq!(h.timeout_in(), Some(secs(7)));
    assert_eq!(
        h.feed(Input::CustomerDigit('2')),
        vec![],
        "too late to decline"
    );
}

#[test]
fn declining_by_pressing_2() {
    let mut h = H::accepting();
    assert_eq!(
        h.feed(Input::CustomerDigit('2')),
        end_with_both_legs(AttemptResult::CustomerDeclined)
    );
    assert_finished(&mut h);
}

#[test]
fn digits_outside_the_acceptance_step_are_ignored() {
    let mut h = H::customer_ringing();
    assert_eq!(h.feed(Input::CustomerDigit('1')), vec![]);
    assert_eq!(h.feed(Input::CustomerDigit('2')), vec![]);
    assert!(matches!(h.phase(), Phase::CustomerRinging { .. }));
}

#[test]
fn not_pressing_1_in_time_is_no_acceptance() {
    let mut h = H::accepting();
    let Phase::Accepting { deadline, .. } = *h.phase() else {
        panic!()
    };
    assert_eq!(deadline, h.now.mono + ACCEPT);
    assert_eq!(h.core.poll_timeout(), Some(deadline));
    assert_eq!(h.advance(secs(7)), vec![]);
    assert_eq!(
        h.advance(secs(1)),
        end_with_both_legs(AttemptResult::CustomerNoAcceptance)
    );
    assert_finished(&mut h);
}

// ------------------------------------------------------------ bridged

#[test]
fn bridged_calls_complete_however_they_end() {
    let mut h = H::bridged();
    assert_eq!(
        h.feed(Input::Agent(LegEvent::Bye)),
        vec![
            end_leg(Leg::Agent, HangupBy::Agent),
            hang_up(Leg::Customer),
            call_ended(),
            result(AttemptResult::Completed),
            Output::Finished
        ]
    );
    assert_finished(&mut h);

    let mut h = H::bridged();
    assert_eq!(
        h.feed(Input::Customer(LegEvent::Bye)),
        vec![
            end_leg(Leg::Customer, HangupBy::Customer),
            hang_up(Leg::Agent),
            call_ended(),
            result(AttemptResult::Completed),
            Output::Finished
        ]
    );

    for leg in [
        Input::Agent(LegEvent::RtpTimeout),
        Input::Customer(LegEvent::RtpTimeout),
    ] {
        let mut h = H::bridged();
        assert_eq!(h.feed(leg), end_with_both_legs(AttemptResult::Completed));
        assert_finished(&mut h);
    }
}

#[test]
fn nothing_times_out_a_bridged_call_but_the_lease() {
    let mut h = H::bridged();
    for _ in 0..360 {
        let out = h.advance(secs(10));
        assert!(matches!(out[..], [Output::RenewLease { .. }]), "{out:?}");
        h.feed(Input::LeaseRenewed(LeaseAnswer::Held));
    }
    assert!(matches!(h.phase(), Phase::Bridged { .. }));
}

// ------------------------------------------------------------ stop

#[test]
fn stop_while_waiting_leaves_the_queue_silently() {
    let mut h = H::new();
    h.drain();
    assert_eq!(
        h.feed(Input::Stop),
        vec![
            abandon(),
            Output::Report(Outcome::Dropped),
            Output::Finished
        ]
    );
    assert_finished(&mut h);
}

#[test]
fn stop_while_the_lease_is_claimed_or_the_agent_rings_drops_the_attempt() {
    let mut h = H::new();
    h.drain();
    h.feed(offer("alice"));
    assert_eq!(
        h.feed(Input::Stop),
        vec![
            abandon(),
            Output::Report(Outcome::Dropped),
            Output::Finished
        ]
    );
    assert_eq!(h.feed(Input::LeaseClaimed(LeaseAnswer::Held)), vec![]);

    for mut h in [H::agent_ringing(), H::agent_answered()] {
        assert_eq!(
            h.feed(Input::Stop),
            vec![
                hang_up(Leg::Agent),
                abandon(),
                Output::Report(Outcome::Dropped),
                Output::Finished
            ]
        );
    }
}

#[test]
fn stop_once_the_customer_is_being_dialed_lets_the_result_decide() {
    let (mut h, _) = H::whisper();
    assert_eq!(h.feed(Input::Stop), vec![]);
    let mut h = H::customer_ringing();
    assert_eq!(h.feed(Input::Stop), vec![]);
    assert_eq!(
        h.feed(Input::Customer(LegEvent::Failed(486))),
        vec![
            end_leg(Leg::Customer, HangupBy::Customer),
            hang_up(Leg::Agent),
            call_ended(),
            result(AttemptResult::CustomerBusy),
            Output::Finished
        ]
    );
    for mut h in [H::accepting(), H::bridged()] {
        assert_eq!(h.feed(Input::Stop), vec![]);
    }
}

// ------------------------------------------------------------ lease

#[test]
fn the_lease_is_renewed_every_third_of_its_length() {
    let mut h = H::new();
    h.drain();
    assert_eq!(h.core.poll_timeout(), None, "no lease before a claim");
    h.feed(offer("alice"));
    assert_eq!(h.core.poll_timeout(), None);
    h.feed(Input::LeaseClaimed(LeaseAnswer::Held));
    assert_eq!(h.timeout_in(), Some(secs(10)));
    assert_eq!(h.advance(secs(9)), vec![]);
    let out = h.advance(secs(1));
    assert_eq!(
        out,
        vec![Output::RenewLease {
            at: h.now.wall,
            until: h.now.wall + chrono::TimeDelta::seconds(30)
        }]
    );
    assert_eq!(h.timeout_in(), Some(secs(10)));
    // A store error is retried at the next renewal.
    assert_eq!(h.feed(Input::LeaseRenewed(LeaseAnswer::Error)), vec![]);
    assert!(matches!(
        h.advance(secs(10))[..],
        [Output::RenewLease { .. }]
    ));
    assert_eq!(h.feed(Input::LeaseRenewed(LeaseAnswer::Held)), vec![]);
    // Renewed while the attempt waits in the queue again, too.
    h.feed(Input::Agent(LegEvent::Failed(486)));
    assert_eq!(h.phase(), &Phase::Waiting);
    assert!(matches!(
        h.advance(secs(10))[..],
        [Output::RenewLease { .. }]
    ));
    // A second claim does not move the schedule.
    h.feed(offer("bob"));
    h.feed(Input::LeaseClaimed(LeaseAnswer::Held));
    assert_eq!(h.timeout_in(), Some(secs(10)));
}

#[test]
fn accept_deadline_and_lease_renewal_share_the_timer() {
    let h = H::accepting();
    // Claimed at the start: renewal due in 10 s; accept deadline in 8 s.
    assert_eq!(h.timeout_in(), Some(ACCEPT));
    let mut h = H::accepting();
    h.now = h.now.plus(secs(9));
    h.core.handle_timeout(h.now);
    let out = h.drain();
    assert_eq!(
        out[out.len() - 2],
        result(AttemptResult::CustomerNoAcceptance)
    );
    assert!(!out.iter().any(|o| matches!(o, Output::RenewLease { .. })));
}

#[test]
fn lease_lost_mid_call_hands_the_callback_back() {
    let mut h = H::bridged();
    assert!(matches!(
        h.advance(secs(10))[..],
        [Output::RenewLease { .. }]
    ));
    assert_eq!(
        h.feed(Input::LeaseRenewed(LeaseAnswer::HeldElsewhere)),
        vec![
            hang_up(Leg::Customer),
            hang_up(Leg::Agent),
            call_ended(),
            Output::Report(Outcome::HandBack),
            Output::Finished
        ]
    );
    assert_finished(&mut h);

    let mut h = H::agent_ringing();
    h.advance(secs(10));
    assert_eq!(
        h.feed(Input::LeaseRenewed(LeaseAnswer::HeldElsewhere)),
        vec![
            hang_up(Leg::Agent),
            abandon(),
            Output::Report(Outcome::HandBack),
            Output::Finished
        ]
    );
}

// ------------------------------------------------------------ shutdown

#[test]
fn shutdown_fails_the_attempt_in_every_step() {
    let failed = || result(AttemptResult::Failed("server shutting down".into()));
    let mut h = H::new();
    h.drain();
    assert_eq!(
        h.feed(Input::Shutdown),
        vec![abandon(), failed(), Output::Finished]
    );
    assert_finished(&mut h);

    let mut h = H::agent_ringing();
    assert_eq!(
        h.feed(Input::Shutdown),
        vec![hang_up(Leg::Agent), abandon(), failed(), Output::Finished]
    );

    for mut h in [H::customer_ringing(), H::accepting(), H::bridged()] {
        assert_eq!(
            h.feed(Input::Shutdown),
            vec![
                hang_up(Leg::Customer),
                hang_up(Leg::Agent),
                call_ended(),
                failed(),
                Output::Finished
            ]
        );
        assert_finished(&mut h);
    }
}

// ------------------------------------------------------------ mappings

#[test]
fn customer_status_mapping() {
    for c in [408, 480, 487] {
        assert_eq!(customer_result(c), AttemptResult::CustomerNoAnswer);
    }
    assert_eq!(customer_result(486), AttemptResult::CustomerBusy);
    assert_eq!(customer_result(600), AttemptResult::CustomerBusy);
    assert_eq!(customer_result(603), AttemptResult::CustomerDeclined);
    assert_eq!(
        customer_result(503),
        AttemptResult::Failed("trunk answered 503".into())
    );
}
