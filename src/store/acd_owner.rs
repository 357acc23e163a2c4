//! The lease on the queues' ACD (one queue across nodes): who holds it,
//! taking it over when it ran out, renewing it (see
//! `migrations/*/0012_acd_owner.sql`).

use chrono::{DateTime, Utc};

use super::{parse_ts, ts, Store};

/// The row's one name: every queue has the same owner (agents are shared
/// between queues, so their states need one writer).
const NAME: &str = "acd";

/// The lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdLease {
    /// The holder's node id.
    pub node_id: String,
    /// Where other nodes send callers (`IP:PORT`, UDP).
    pub sip_addr: String,
    /// The holder's HTTP API (`http://IP:PORT`), if it said.
    pub api_url: Option<String>,
    /// Held since (this holder, without a gap).
    pub since: Option<DateTime<Utc>>,
    /// Valid until.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Who wants the lease and until when.
pub struct Claim<'a> {
    /// This node's id.
    pub node_id: &'a str,
    /// This node's SIP address for hops.
    pub sip_addr: &'a str,
    /// This node's API address.
    pub api_url: Option<&'a str>,
    /// Now (this node's clock).
    pub now: DateTime<Utc>,
    /// The lease runs until then if taken or renewed.
    pub until: DateTime<Utc>,
}

impl Store {
    /// Take the lease if nobody holds it or it ran out, renew it if we
    /// hold it; either way answer who holds it now. One statement decides
    /// (an upsert whose update only applies to our own or an expired
    /// row), so two nodes racing for it cannot both win.
    pub async fn claim_acd(&self, c: &Claim<'_>) -> anyhow::Result<AcdLease> {
        let (now, until) = (ts(c.now), ts(c.until));
        let upsert = "INSERT INTO acd_owner (name, node_id, sip_addr, api_url, since, expires_at) \
                      VALUES ($1, $2, $3, $4, $5, $6) \
                      ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id, \
                      sip_addr = excluded.sip_addr, api_url = excluded.api_url, \
                      since = CASE WHEN acd_owner.node_id = excluded.node_id \
                              THEN acd_owner.since ELSE excluded.since END, \
                      expires_at = excluded.expires_at \
                      WHERE acd_owner.node_id = excluded.node_id OR acd_owner.expires_at < $5";
        let select = "SELECT node_id, sip_addr, api_url, since, expires_at FROM acd_owner \
                      WHERE name = $1";
        let row: (String, String, Option<String>, String, String) = on_pool!(self, |pool| {
            sqlx::query(upsert)
                .bind(NAME)
                .bind(c.node_id)
                .bind(c.sip_addr)
                .bind(c.api_url)
                .bind(&now)
                .bind(&until)
                .execute(pool)
                .await?;
            sqlx::query_as(select).bind(NAME).fetch_one(pool).await?
        });
        Ok(AcdLease {
            node_id: row.0,
            sip_addr: row.1,
            api_url: row.2,
            since: parse_ts(&row.3),
            expires_at: parse_ts(&row.4),
        })
    }
}

impl Store {
    /// Each agent's last state as `node` (a queues' owner that died) left
    /// it: (agent, state, reason), for the node taking the queues over.
    pub async fn agent_states_left_by(
        &self,
        node: &str,
    ) -> anyhow::Result<Vec<(String, String, String)>> {
        let sql = "SELECT e.agent, e.to_state, e.reason FROM agent_events e \
                   WHERE e.id = (SELECT MAX(l.id) FROM agent_events l \
                                 WHERE l.agent = e.agent AND l.node_id = $1)";
        let rows: Vec<(String, String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(sql).bind(node).fetch_all(pool).await?
        });
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(node: &'a str, now: DateTime<Utc>) -> Claim<'a> {
        Claim {
            node_id: node,
            sip_addr: "127.0.0.1:5060",
            api_url: None,
            now,
            until: now + chrono::Duration::seconds(5),
        }
    }

    #[tokio::test]
    async fn one_holder_until_its_lease_runs_out_then_the_next_claimant() {
        let (_d, s) = crate::store::scratch_sqlite().await;
        let t0 = Utc::now();
        assert_eq!(s.claim_acd(&claim("a", t0)).await.expect("a").node_id, "a");
        // b asks while a's lease runs: a holds it.
        let l = s.claim_acd(&claim("b", t0)).await.expect("b");
        assert_eq!(l.node_id, "a");
        // a renews; its `since` stays.
        let t1 = t0 + chrono::Duration::seconds(2);
        let l = s.claim_acd(&claim("a", t1)).await.expect("renew");
        assert_eq!(
            (l.node_id.as_str(), l.since.map(|t| t.timestamp_millis())),
            ("a", Some(t0.timestamp_millis()))
        );
        // a stops renewing; after the expiry b takes it.
        let t2 = t1 + chrono::Duration::seconds(6);
        let l = s.claim_acd(&claim("b", t2)).await.expect("take over");
        assert_eq!(l.node_id, "b");
        assert_eq!(
            l.since.map(|t| t.timestamp_millis()),
            Some(t2.timestamp_millis())
        );
        // A lease renewed until `now` (a draining holder) goes at the
        // next claim.
        let mut give_up = claim("b", t2);
        give_up.until = t2;
        assert_eq!(s.claim_acd(&give_up).await.expect("b").node_id, "b");
        let t3 = t2 + chrono::Duration::milliseconds(1);
        assert_eq!(s.claim_acd(&claim("a", t3)).await.expect("a").node_id, "a");
    }
}
