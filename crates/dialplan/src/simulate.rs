//! `ringback simulate`: drive a [`Session`] with scripted key presses.
//!
//! The simulator is a minimal shell: it executes the session's actions the
//! way the server would (playback, one timer) but instantly. Prompts finish
//! at once unless the next scripted input is a key and the prompt accepts
//! barge-in; when the plan waits for input and the script has none left, the
//! timer fires. That makes a script like `1,2,0` mean "what the caller
//! presses at each question", which is how operators think about it.
//!
//! A key with a time, `0@1.5`, is pressed that many seconds into the call
//! instead, whatever is playing then: the simulator keeps a clock, prompts
//! last as long as their recordings (`SimScript::prompt_lengths`) and timers
//! as long as the plan says, so a `0` pressed during the greeting does what
//! it does on a real call.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::model::Dialplan;
use crate::session::{
    Action, CallInfo, DigitEffect, Event, Outcome, Session, Step, StepKind, ZeroOutReason,
};

/// Events fed to a simulated call at most; a guard against plans that keep
/// the caller busy forever.
pub const MAX_SIM_STEPS: usize = 200;

/// One scripted caller input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimInput {
    /// Press a key.
    Digit(char),
    /// Press nothing and let the input timer expire.
    Wait,
    /// Press a key this long after the call was answered.
    At(char, Duration),
}

impl fmt::Display for SimInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimInput::Digit(d) => write!(f, "{d}"),
            SimInput::Wait => f.write_str("w"),
            SimInput::At(d, t) => write!(f, "{d}@{}", t.as_secs_f64()),
        }
    }
}

/// Parses the CLI's `--digits` list: comma-separated keys (`0`-`9`, `*`,
/// `#`), `w` or `-` for "wait for the timeout". A token of several keys
/// (`1234#`) is split into single presses, handy for gather nodes. `K@S`
/// presses key `K` at `S` seconds into the call (`0@1.5`); timed keys must
/// come in time order.
pub fn parse_sim_inputs(list: &str) -> Result<Vec<SimInput>, String> {
    let mut out = Vec::new();
    let mut last_at = Duration::ZERO;
    for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if let Some((key, secs)) = token.split_once('@') {
            let mut keys = key.chars();
            let (Some(k @ ('0'..='9' | '*' | '#')), None) = (keys.next(), keys.next()) else {
                return Err(format!(
                    "invalid timed key `{token}`: expected one key 0-9, * or # before `@`, e.g. 0@1.5"
                ));
            };
            let at = secs
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && (0.0..=86_400.0).contains(s))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    format!("invalid time in `{token}`: seconds into the call, e.g. 0@1.5")
                })?;
            if at < last_at {
                return Err(format!(
                    "`{token}` is earlier than the timed key before it: list timed keys in time order"
                ));
            }
            last_at = at;
            out.push(SimInput::At(k, at));
            continue;
        }
        if token.eq_ignore_ascii_case("w") || token == "-" {
            out.push(SimInput::Wait);
            continue;
        }
        for c in token.chars() {
            match c {
                '0'..='9' | '*' | '#' => out.push(SimInput::Digit(c)),
                'w' | 'W' | '-' => out.push(SimInput::Wait),
                _ => {
                    return Err(format!(
                        "invalid input `{token}` in the digit list: expected keys 0-9, * or #, or `w`/`-` to wait for the timeout"
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// A simulated call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimScript {
    /// What the caller presses, in order.
    pub digits: Vec<SimInput>,
    /// Caller id.
    pub caller: String,
    /// Call time (decides `hours` nodes).
    pub now: DateTime<Utc>,
    /// How long each prompt plays (for timed keys); a prompt not listed
    /// takes no time.
    pub prompt_lengths: HashMap<String, Duration>,
    /// What each lookup answers (`--lookup NAME=FILE.json`: the file's
    /// text); a lookup not listed fails, as an unreachable endpoint does.
    pub lookups: HashMap<String, String>,
}

/// What happened in a simulated call; `Display` prints the readable trace.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// Plan display name.
    pub plan_name: String,
    /// Plan file.
    pub file: PathBuf,
    /// Plan version hash.
    pub version: String,
    /// The number "dialed" (the plan's first number).
    pub dialed: String,
    /// Caller id used.
    pub caller: String,
    /// Call time used.
    pub now: DateTime<Utc>,
    /// The session's trace.
    pub trace: Vec<Step>,
    /// Every action the session emitted, in order.
    pub actions: Vec<Action>,
    /// Nodes visited.
    pub path: Vec<String>,
    /// Keys accepted.
    pub digits: String,
    /// Final variables.
    pub vars: BTreeMap<String, String>,
    /// How the call ended (`None`: step limit reached or stuck).
    pub outcome: Option<Outcome>,
    /// Scripted inputs that were never used.
    pub unused: Vec<SimInput>,
    /// Events fed to the session.
    pub steps: usize,
}

/// Runs `script` against `plan` (see the module docs for the rules) and
/// stops at the outcome or after [`MAX_SIM_STEPS`] events.
pub fn simulate(
    plan: Arc<Dialplan>,
    script: &SimScript,
    global_operator: Option<String>,
) -> SimReport {
    let mut session = Session::new(Arc::clone(&plan), global_operator);
    let dialed = plan
        .numbers
        .iter()
        .find(|n| n.as_str() != "*")
        .or(plan.numbers.first())
        .cloned()
        .unwrap_or_default();
    let mut inputs = script.digits.iter().copied().peekable();
    let mut actions = Vec::new();
    let mut out = Vec::new();
    // The shell's view: what is playing (interruptible or not, and when it
    // ends on the call's clock), and when the timer fires.
    let mut playing: Option<(bool, Duration)> = None;
    let mut timer: Option<Duration> = None;
    let mut clock = Duration::ZERO;
    let mut steps = 1;
    // A lookup's answer, fed before anything else happens.
    let mut answer: Option<Event> = None;
    session.handle(
        Event::Started(CallInfo {
            caller: script.caller.clone(),
            dialed: dialed.clone(),
            now: script.now,
        }),
        &mut out,
    );
    loop {
        for a in out.drain(..) {
            match &a {
                Action::Play { barge_in, prompts } => {
                    let length: Duration = prompts
                        .iter()
                        .filter_map(|p| script.prompt_lengths.get(p))
                        .sum();
                    playing = Some((*barge_in, clock + length));
                }
                Action::StopPlayback => playing = None,
                Action::StartTimer { after } => timer = Some(clock + *after),
                Action::CancelTimer => timer = None,
                Action::Lookup { lookup, .. } => {
                    answer = Some(match script.lookups.get(lookup) {
                        Some(body) => Event::LookupAnswered(body.clone()),
                        None => Event::LookupFailed(format!(
                            "no answer given (simulate --lookup {lookup}=FILE.json)"
                        )),
                    });
                }
                _ => {}
            }
            actions.push(a);
        }
        if session.is_finished() || steps >= MAX_SIM_STEPS {
            break;
        }
        // A timed key lands whatever is going on, if it comes before the
        // prompt ends or the timer fires.
        let due = match (inputs.peek(), playing, timer) {
            (Some(SimInput::At(d, at)), Some((_, end)), _) if *at < end => Some((*d, *at)),
            (Some(SimInput::At(d, at)), None, Some(end)) if *at < end => Some((*d, *at)),
            _ => None,
        };
        let event = if let Some(ev) = answer.take() {
            ev
        } else if let Some((d, at)) = due {
            inputs.next();
            clock = clock.max(at);
            Event::Digit(d)
        } else if let Some((barge_in, end)) = playing {
            match inputs.peek() {
                Some(SimInput::Digit(d)) if barge_in => {
                    let d = *d;
                    inputs.next();
                    Event::Digit(d)
                }
                _ => {
                    playing = None;
                    clock = clock.max(end);
                    Event::PlaybackDone
                }
            }
        } else if let Some(end) = timer {
            match inputs.peek() {
                Some(SimInput::Digit(d)) => {
                    let d = *d;
                    inputs.next();
                    Event::Digit(d)
                }
                Some(SimInput::Wait) => {
                    inputs.next();
                    timer = None;
                    clock = clock.max(end);
                    Event::Timeout
                }
                Some(SimInput::At(..)) | None => {
                    timer = None;
                    clock = clock.max(end);
                    Event::Timeout
                }
            }
        } else {
            // Nothing the caller could react to: the plan is stuck.
            break;
        };
        steps += 1;
        session.handle(event, &mut out);
    }
    SimReport {
        plan_name: plan.name.clone(),
        file: plan.file.clone(),
        version: plan.version.clone(),
        dialed,
        caller: script.caller.clone(),
        now: script.now,
        trace: session.trace().to_vec(),
        actions,
        path: session.path().to_vec(),
        digits: session.digits().to_string(),
        vars: session.vars().clone(),
        outcome: session.outcome().cloned(),
        unused: inputs.collect(),
        steps,
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulating `{}` ({}, version {}): {} calls {} at {}",
            self.plan_name,
            self.file.display(),
            self.version,
            if self.caller.is_empty() {
                "anonymous"
            } else {
                &self.caller
            },
            self.dialed,
            self.now.to_rfc3339_opts(SecondsFormat::Secs, true)
        )?;
        let width = self
            .trace
            .iter()
            .filter_map(|s| s.node.as_ref())
            .map(|n| n.chars().count() + 2)
            .max()
            .unwrap_or(0);
        let mut lines: Vec<(Option<&str>, String)> = Vec::new();
        let mut i = 0;
        while i < self.trace.len() {
            let s = &self.trace[i];
            // "caller pressed 0 → operator (zero-out)" already says why
            if matches!(
                s.kind,
                StepKind::ZeroOut {
                    reason: ZeroOutReason::KeyZero
                }
            ) && i > 0
                && matches!(
                    self.trace[i - 1].kind,
                    StepKind::Digit {
                        effect: DigitEffect::ZeroOut,
                        ..
                    }
                )
            {
                i += 1;
                continue;
            }
            let mut text = s.kind.to_string();
            // "▶ prompt   … waiting for a digit (5 s)" on one line
            if let (StepKind::Play { .. }, Some(next)) = (&s.kind, self.trace.get(i + 1)) {
                if matches!(next.kind, StepKind::Waiting { .. }) && next.node == s.node {
                    text = format!("{text}   {}", next.kind);
                    i += 1;
                }
            }
            // a run of gather digits on one line
            if matches!(
                s.kind,
                StepKind::Digit {
                    effect: DigitEffect::Collected,
                    ..
                }
            ) {
                let mut keys = Vec::new();
                while let Some(StepKind::Digit {
                    digit,
                    effect: DigitEffect::Collected,
                }) = self.trace.get(i).map(|s| &s.kind)
                {
                    keys.push(digit.to_string());
                    i += 1;
                }
                i -= 1;
                text = format!("caller entered {}", keys.join(","));
            }
            lines.push((s.node.as_deref(), text));
            i += 1;
        }
        let mut last: Option<&str> = None;
        for (n, (node, text)) in lines.iter().enumerate() {
            let label = match node {
                Some(name) if *node != last => format!("[{name}]"),
                _ => String::new(),
            };
            last = *node;
            writeln!(f, "{:>2}  {label:<width$}  {text}", n + 1)?;
        }
        let path = if self.path.is_empty() {
            "(none)".to_string()
        } else {
            self.path.join(" > ")
        };
        let digits = if self.digits.is_empty() {
            "no digits".to_string()
        } else {
            let d: Vec<String> = self.digits.chars().map(String::from).collect();
            format!("digits {}", d.join(","))
        };
        match &self.outcome {
            Some(Outcome::Queued { queue, zero_out }) => write!(
                f,
                " => queued in `{queue}`{}",
                if *zero_out { " (zero-out)" } else { "" }
            )?,
            Some(Outcome::Transferred { target }) => write!(f, " => transferred to {target}")?,
            Some(Outcome::CallbackRequested { queue }) => {
                write!(f, " => callback requested in `{queue}`")?
            }
            Some(Outcome::HungUp { by_caller: false }) => write!(f, " => hung up by the plan")?,
            Some(Outcome::HungUp { by_caller: true }) => write!(f, " => caller hung up")?,
            None => write!(f, " => no outcome after {} events", self.steps)?,
        }
        writeln!(f, " after path {path}; {digits}")?;
        if !self.vars.is_empty() {
            let v: Vec<String> = self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "    vars: {}", v.join(", "))?;
        }
        if !self.unused.is_empty() {
            let u: Vec<String> = self.unused.iter().map(ToString::to_string).collect();
            writeln!(f, "    unused input: {}", u.join(","))?;
        }
        Ok(())
    }
}
