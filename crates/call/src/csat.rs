//! Customer satisfaction (CSAT) from post-call survey answers: which
//! answers count as satisfied, and the figures per interval and per queue
//! or agent. Pure: the shell reads the answers from the store and passes
//! the interval's bounds in.
//!
//! CSAT is the share of answers in the top of the survey's range: the two
//! highest keys when the range has at least four keys (`1-5`: 4 and 5;
//! `0-9`: 8 and 9), the highest key otherwise (`1-3`: 3). Surveys that
//! were asked but not answered count as `asked` only.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

/// One survey as stored with its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// When the call started.
    pub at: DateTime<Utc>,
    /// Its queue.
    pub queue: String,
    /// The agent rated.
    pub agent: String,
    /// The key pressed; `None`: no answer.
    pub score: Option<u8>,
    /// The survey's lowest score key.
    pub lowest: u8,
    /// The survey's highest (best) score key.
    pub highest: u8,
}

impl Answer {
    /// Whether the answer counts as satisfied (see the module docs).
    pub fn satisfied(&self) -> bool {
        let Some(score) = self.score else {
            return false;
        };
        let keys = self.highest.saturating_sub(self.lowest) + 1;
        let top = if keys >= 4 { 2 } else { 1 };
        score > self.highest.saturating_sub(top) && score <= self.highest
    }
}

/// The figures of one queue or agent in one interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Surveys asked.
    pub asked: u64,
    /// Surveys answered with a score key.
    pub answered: u64,
    /// Answers that count as satisfied.
    pub satisfied: u64,
    /// Sum of the scores answered.
    score_sum: u64,
}

impl Figures {
    fn add(&mut self, a: &Answer) {
        self.asked += 1;
        if let Some(s) = a.score {
            self.answered += 1;
            self.score_sum += u64::from(s);
            if a.satisfied() {
                self.satisfied += 1;
            }
        }
    }

    /// CSAT in percent (one decimal); `None` without answers.
    pub fn csat_pct(&self) -> Option<f64> {
        (self.answered > 0)
            .then(|| (self.satisfied as f64 * 1000.0 / self.answered as f64).round() / 10.0)
    }

    /// The average score (two decimals); `None` without answers.
    pub fn average(&self) -> Option<f64> {
        (self.answered > 0)
            .then(|| (self.score_sum as f64 * 100.0 / self.answered as f64).round() / 100.0)
    }
}

/// Figures by (interval start, queue or agent), in time then name order.
pub type Table = BTreeMap<(DateTime<Utc>, String), Figures>;

/// CSAT per interval of `step` from `from` (answers before `from` or from
/// `to` on are left out), per queue and per agent.
pub fn tables(
    answers: &[Answer],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: TimeDelta,
) -> (Table, Table) {
    let mut queues = Table::new();
    let mut agents = Table::new();
    let step_ms = step.num_milliseconds().max(1);
    for a in answers.iter().filter(|a| from <= a.at && a.at < to) {
        let n = (a.at - from).num_milliseconds() / step_ms;
        let start = from + TimeDelta::milliseconds(n * step_ms);
        queues.entry((start, a.queue.clone())).or_default().add(a);
        agents.entry((start, a.agent.clone())).or_default().add(a);
    }
    (queues, agents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0)
            .single()
            .expect("valid")
    }

    fn answer(at: DateTime<Utc>, queue: &str, agent: &str, score: Option<u8>) -> Answer {
        Answer {
            at,
            queue: queue.into(),
            agent: agent.into(),
            score,
            lowest: 1,
            highest: 5,
        }
    }

    #[test]
    fn satisfied_is_the_top_of_the_range() {
        let a = |score, lowest, highest| Answer {
            score: Some(score),
            lowest,
            highest,
            ..answer(t(9, 0), "q", "a", None)
        };
        assert!(a(5, 1, 5).satisfied() && a(4, 1, 5).satisfied());
        assert!(!a(3, 1, 5).satisfied());
        assert!(a(9, 0, 9).satisfied() && a(8, 0, 9).satisfied() && !a(7, 0, 9).satisfied());
        assert!(a(3, 1, 3).satisfied() && !a(2, 1, 3).satisfied());
        assert!(a(2, 1, 2).satisfied() && !a(1, 1, 2).satisfied());
        assert!(!answer(t(9, 0), "q", "a", None).satisfied());
    }

    #[test]
    fn figures_per_hour_queue_and_agent() {
        let answers = [
            answer(t(9, 5), "sales", "alice", Some(5)),
            answer(t(9, 10), "sales", "bob", Some(2)),
            answer(t(9, 59), "sales", "alice", None),
            answer(t(10, 0), "support", "alice", Some(4)),
            answer(t(8, 59), "sales", "alice", Some(1)),
            answer(t(11, 0), "sales", "alice", Some(1)),
        ];
        let (queues, agents) = tables(&answers, t(9, 0), t(11, 0), TimeDelta::hours(1));
        let sales9 = &queues[&(t(9, 0), "sales".to_string())];
        assert_eq!((sales9.asked, sales9.answered, sales9.satisfied), (3, 2, 1));
        assert_eq!(sales9.csat_pct(), Some(50.0));
        assert_eq!(sales9.average(), Some(3.5));
        let support10 = &queues[&(t(10, 0), "support".to_string())];
        assert_eq!(support10.csat_pct(), Some(100.0));
        assert_eq!(
            queues.len(),
            2,
            "before `from` and from `to` on are left out"
        );
        let alice9 = &agents[&(t(9, 0), "alice".to_string())];
        assert_eq!((alice9.asked, alice9.answered), (2, 1));
        assert_eq!(alice9.csat_pct(), Some(100.0));
        let bob9 = &agents[&(t(9, 0), "bob".to_string())];
        assert_eq!(bob9.csat_pct(), Some(0.0));
        assert_eq!(agents.len(), 3);
    }

    #[test]
    fn no_answers_no_figures() {
        let f = Figures::default();
        assert_eq!((f.csat_pct(), f.average()), (None, None));
        let (q, a) = tables(&[], t(0, 0), t(23, 0), TimeDelta::days(1));
        assert!(q.is_empty() && a.is_empty());
    }
}
