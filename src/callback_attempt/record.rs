//! The call records of an attempt's two legs (`callback-agent`,
//! `callback-customer`). A leg's record is written when it ends; the
//! customer's answered leg is on record from the answer on (`in_progress`),
//! like an inbound call: if the process dies, start-up recovery closes it
//! `interrupted`, so the trunk call the customer took is never missing
//! from the records. (The agent's answered leg is rebuilt from the queue
//! log's `CONNECT` instead: see `Store::recover_after_restart`.)

use chrono::{DateTime, Utc};
use ringback_call::{Disposition, HangupBy};
use ringback_callback::Callback;

use crate::outbound::OutboundLeg;
use crate::store::Cdr;

/// What a leg's record says about the leg itself.
pub(super) struct LegFacts<'a> {
    /// `callback-agent` or `callback-customer`.
    pub kind: &'a str,
    /// The agent's id, or the customer's number.
    pub dialed: &'a str,
    /// The leg's SIP Call-ID (the record's key with `kind`).
    pub call_id: &'a str,
    /// INVITE sent.
    pub started_at: DateTime<Utc>,
    /// 2xx received.
    pub answered_at: Option<DateTime<Utc>>,
}

impl<'a> LegFacts<'a> {
    /// The facts of a placed leg.
    pub fn of(l: &'a OutboundLeg, kind: &'a str, dialed: &'a str) -> LegFacts<'a> {
        LegFacts {
            kind,
            dialed,
            call_id: &l.call_id,
            started_at: l.started_at,
            answered_at: l.answered_at,
        }
    }
}

/// The record of a leg of callback `cb`'s attempt `attempt`: open
/// (`in_progress`) while `end` is `None`, final once it has ended (who
/// ended it, when). Both versions share the key (Call-ID, leg), so the
/// final one replaces the open one.
pub(super) fn leg_cdr(
    cb: &Callback,
    attempt: &str,
    leg: &LegFacts,
    end: Option<(HangupBy, DateTime<Utc>)>,
) -> Cdr {
    let disposition = match (end, leg.answered_at) {
        (None, _) => "in_progress",
        (Some(_), Some(_)) => Disposition::Completed.as_str(),
        (Some(_), None) => Disposition::NotAnswered.as_str(),
    };
    Cdr {
        call_id: leg.call_id.into(),
        leg: leg.kind.into(),
        caller: cb.number.clone(),
        dialed: leg.dialed.into(),
        started_at: leg.started_at,
        answered_at: leg.answered_at,
        ended_at: end.map(|(_, at)| at),
        vars: format!("{{\"callback_id\":{:?}}}", cb.id),
        disposition: disposition.into(),
        hangup_by: end.map(|(by, _)| by.as_str().into()),
        queue: Some(cb.queue.clone()),
        // Both legs of one attempt belong to it: the attempt's call id in
        // the queue log (`cb-<callback id>-<suffix>`).
        parent_call_id: Some(attempt.into()),
        ..Cdr::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CdrWriter, Store};
    use ringback_callback::{CallbackState, Origin};

    fn callback() -> Callback {
        let now = Utc::now();
        Callback {
            id: "cb42".into(),
            queue: "billing".into(),
            number: "+15551230001".into(),
            state: CallbackState::Dialing,
            entered_at: now,
            created_at: now,
            attempts: 1,
            next_attempt_at: None,
            preferred: None,
            expires_at: now + chrono::Duration::hours(24),
            context: String::new(),
            origin: Origin::Web,
            last_result: None,
        }
    }

    /// (disposition, hangup_by, answered, ended) of every record.
    async fn rows(store: &Store) -> Vec<(String, Option<String>, bool, bool)> {
        let mut rows = store.recent_cdrs(10).await.expect("read");
        rows.reverse();
        rows.into_iter()
            .map(|r| {
                assert_eq!(
                    (r.leg.as_str(), r.parent_call_id.as_deref()),
                    ("callback-customer", Some("cb-cb42-0001"))
                );
                assert!(r.vars.contains("\"cb42\""), "{}", r.vars);
                (
                    r.disposition,
                    r.hangup_by,
                    r.answered_at.is_some(),
                    r.ended_at.is_some(),
                )
            })
            .collect()
    }

    /// The customer answered: their leg is on record at once. If the
    /// process dies now, the restart closes that record `interrupted`; if
    /// the call ends normally, the same record is completed (no second
    /// row).
    #[tokio::test]
    async fn an_answered_customer_leg_is_on_record_before_it_ends() {
        let cb = callback();
        let t = Utc::now();
        let leg = LegFacts {
            kind: "callback-customer",
            dialed: &cb.number,
            call_id: "leg-1",
            started_at: t,
            answered_at: Some(t),
        };
        for crash in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("r.db").display());
            let store = Store::connect(&url).await.expect("connect");
            let (cdr, _task) = CdrWriter::spawn(store.clone(), "node-1".into());
            cdr.write(leg_cdr(&cb, "cb-cb42-0001", &leg, None));
            cdr.flush().await;
            assert_eq!(
                rows(&store).await,
                vec![("in_progress".into(), None, true, false)]
            );
            if crash {
                assert_eq!(
                    store.close_orphaned_calls("node-1").await.expect("close"),
                    1
                );
                assert_eq!(
                    rows(&store).await,
                    vec![("interrupted".into(), Some("restart".into()), true, true)]
                );
            } else {
                let end = Some((HangupBy::Customer, Utc::now()));
                cdr.write(leg_cdr(&cb, "cb-cb42-0001", &leg, end));
                cdr.flush().await;
                assert_eq!(
                    rows(&store).await,
                    vec![("completed".into(), Some("customer".into()), true, true)]
                );
            }
        }
    }

    #[test]
    fn a_leg_that_was_never_answered_ends_not_answered() {
        let cb = callback();
        let leg = LegFacts {
            kind: "callback-agent",
            dialed: "alice",
            call_id: "leg-2",
            started_at: Utc::now(),
            answered_at: None,
        };
        let c = leg_cdr(
            &cb,
            "cb-cb42-0001",
            &leg,
            Some((HangupBy::Agent, Utc::now())),
        );
        assert_eq!(c.disposition, "not_answered");
        assert_eq!(c.hangup_by.as_deref(), Some("agent"));
        assert_eq!(c.queue.as_deref(), Some("billing"));
    }
}
