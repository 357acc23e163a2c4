//! The post-call survey: when the agent hangs up on a caller of a queue with
//! `survey = { prompt, keys }`, the caller (still on the line) hears one
//! question and answers with a key.
//!
//! The rules, all decided here:
//! - Only the **agent** hanging up starts a survey (a caller who hangs up
//!   has left; an agent phone that vanished ends the call as before).
//! - A key in the range is the score: "thank you", then ringback hangs up.
//!   A key may interrupt the question.
//! - Another key, or silence for [`SURVEY_ANSWER_TIMEOUT`] after the
//!   question, asks once more ([`SURVEY_TRIES`] in all); then "goodbye" and
//!   no score.
//! - A caller who hangs up during the survey is simply no answer: no score,
//!   and nothing ever calls them back for it.
//!
//! Every survey ending is recorded as the agent's hang-up (`hangup_by =
//! agent`: the conversation was theirs to end), `completed`.

use std::time::{Duration, Instant};

use ringback_sansio::Now;

use super::{InboundCall, LiveUpdate, Output, Phase};
use crate::ending::{Disposition, Ending, HangupBy};

/// How long the caller has to answer after the question ends.
pub const SURVEY_ANSWER_TIMEOUT: Duration = Duration::from_secs(8);

/// How many times the question is asked (an invalid key or silence asks
/// again until this many).
pub const SURVEY_TRIES: u32 = 2;

/// A queue's `survey = { prompt = "…", keys = "1-5" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    /// The question's prompts.
    pub prompt: Vec<String>,
    /// The lowest key that is a score.
    pub lowest: u8,
    /// The highest key that is a score (the best).
    pub highest: u8,
}

impl Survey {
    /// A survey asking `prompt`, answered with a key of `keys` (`"1-5"`:
    /// two digits 0-9, the first lower). The message names what is wrong.
    pub fn new(prompt: Vec<String>, keys: &str) -> Result<Survey, String> {
        if prompt.is_empty() || prompt.iter().any(|p| p.trim().is_empty()) {
            return Err("`prompt` must name a prompt".into());
        }
        let bad = || format!("`keys` = \"{keys}\": expected a range of keys such as \"1-5\"");
        let (lo, hi) = keys.trim().split_once('-').ok_or_else(bad)?;
        let digit = |s: &str| match s.trim().as_bytes() {
            [d @ b'0'..=b'9'] => Some(d - b'0'),
            _ => None,
        };
        let (Some(lowest), Some(highest)) = (digit(lo), digit(hi)) else {
            return Err(bad());
        };
        if lowest >= highest {
            return Err(format!(
                "`keys` = \"{keys}\": the first key must be lower than the last"
            ));
        }
        Ok(Survey {
            prompt,
            lowest,
            highest,
        })
    }

    /// The score key `d` stands for, if it is one.
    pub fn score(&self, d: char) -> Option<u8> {
        let v = u8::try_from(d.to_digit(10)?).ok()?;
        (self.lowest..=self.highest).contains(&v).then_some(v)
    }
}

/// The survey of one call, for its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyResult {
    /// The queue whose survey it was.
    pub queue: String,
    /// The agent the caller talked to.
    pub agent: String,
    /// The key the caller pressed; `None`: no answer (silence, invalid
    /// keys, hung up).
    pub score: Option<u8>,
    /// The survey's lowest score key.
    pub lowest: u8,
    /// The survey's highest (best) score key.
    pub highest: u8,
}

/// Where a survey is.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Surveying {
    survey: Survey,
    /// Token of the prompt playing (question, "thank you", "goodbye").
    token: u64,
    /// Times the question was asked.
    asked: u32,
    /// The question ended at; the answer is due by this.
    deadline: Option<Instant>,
    /// The closing prompt plays; the call ends after it.
    closing: bool,
}

impl Surveying {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl InboundCall {
    /// The agent hung up on a bridged caller: ask the queue's survey
    /// question, if it has one. False when there is none (the call ends).
    pub(super) fn start_survey(&mut self, agent: &str, talk_secs: u64) -> bool {
        let Some(queue) = self.queue.clone() else {
            return false;
        };
        let Some(survey) = self.queues.get(&queue).and_then(|q| q.survey.clone()) else {
            return false;
        };
        tracing::info!(%agent, %queue, "agent hung up; asking the survey question");
        self.out
            .push_back(Output::Live(LiveUpdate::Handled { talk_secs }));
        self.survey_result = Some(SurveyResult {
            queue,
            agent: agent.to_string(),
            score: None,
            lowest: survey.lowest,
            highest: survey.highest,
        });
        let token = self.play(survey.prompt.clone(), false, false);
        self.phase = Phase::Surveying(Box::new(Surveying {
            survey,
            token,
            asked: 1,
            deadline: None,
            closing: false,
        }));
        true
    }

    fn surveying(&mut self) -> Option<&mut Surveying> {
        match &mut self.phase {
            Phase::Surveying(s) if !s.closing => Some(s),
            _ => None,
        }
    }

    /// A key during the survey: a score, or a wrong key.
    pub(super) fn on_survey_digit(&mut self, d: char, now: Now) {
        let Some(s) = self.surveying() else {
            return;
        };
        match s.survey.score(d) {
            Some(score) => {
                tracing::info!(score, "survey answered");
                if let Some(r) = &mut self.survey_result {
                    r.score = Some(score);
                }
                self.close_survey(vec!["thank-you".into()]);
            }
            None => {
                tracing::info!(digit = %d, "not a survey key");
                self.ask_again(vec!["invalid-option".into()], now);
            }
        }
    }

    /// The question (or the closing prompt) ended.
    pub(super) fn on_survey_played(&mut self, token: u64, now: Now) {
        let Phase::Surveying(s) = &mut self.phase else {
            return;
        };
        if s.token != token {
            return;
        }
        if s.closing {
            self.end_survey(true, now);
        } else {
            s.deadline = Some(now.mono + SURVEY_ANSWER_TIMEOUT);
        }
    }

    /// No answer in time.
    pub(super) fn on_survey_timeout(&mut self, now: Now) {
        if self
            .surveying()
            .and_then(|s| s.deadline)
            .is_some_and(|t| t <= now.mono)
        {
            tracing::info!("no survey answer");
            self.ask_again(Vec::new(), now);
        }
    }

    /// Ask the question again after `first`, or give up after
    /// [`SURVEY_TRIES`].
    fn ask_again(&mut self, first: Vec<String>, _now: Now) {
        let Some(s) = self.surveying() else {
            return;
        };
        if s.asked >= SURVEY_TRIES {
            self.close_survey(vec!["goodbye".into()]);
            return;
        }
        s.asked += 1;
        s.deadline = None;
        let mut prompts = first;
        prompts.extend(s.survey.prompt.iter().cloned());
        self.out.push_back(Output::StopPlayback);
        let token = self.play(prompts, false, false);
        if let Phase::Surveying(s) = &mut self.phase {
            s.token = token;
        }
    }

    /// Play the closing prompt; the call ends after it.
    fn close_survey(&mut self, prompts: Vec<String>) {
        self.out.push_back(Output::StopPlayback);
        let token = self.play(prompts, false, false);
        if let Phase::Surveying(s) = &mut self.phase {
            s.token = token;
            s.closing = true;
            s.deadline = None;
        }
    }

    /// The survey is over: ringback hangs up (`send_bye`), or the caller
    /// already did.
    pub(super) fn end_survey(&mut self, send_bye: bool, now: Now) {
        self.end(
            Ending {
                disposition: Disposition::Completed,
                hangup_by: HangupBy::Agent,
                send_bye,
            },
            now,
        );
    }
}
