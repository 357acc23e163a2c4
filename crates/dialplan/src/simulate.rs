//! `ringback simulate`: drive a [`Session`] with scripted key presses.
//!
//! The simulator is a minimal shell: it executes the session's actions the
//! way the server would (playback, one timer) but instantly. Prompts finish
//! at once unless the next scripted input is a key and the prompt accepts
//! barge-in; when the plan waits for input and the script has none left, the
//! timer fires. That makes a script like `1,2,0` mean "what the caller
//! presses at each question", which is how operators think about it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

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
}

impl fmt::Display for SimInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimInput::Digit(d) => write!(f, "{d}"),
            SimInput::Wait => f.write_str("w"),
        }
    }
}

/// Parses the CLI's `--digits` list: comma-separated keys (`0`-`9`, `*`,
/// `#`), `w` or `-` for "wait for the timeout". A token of several keys
/// (`1234#`) is split into single presses, handy for gather nodes.
pub fn parse_sim_inputs(list: &str) -> Result<Vec<SimInput>, String> {
    let mut out = Vec::new();
    for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
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
    // The shell's view: is something playing (and interruptible), is the
    // timer armed.
    let mut playing: Option<bool> = None;
    let mut timer = false;
    let mut steps = 1;
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
                Action::Play { barge_in, .. } => playing = Some(*barge_in),
                Action::StopPlayback => playing = None,
                Action::StartTimer { .. } => timer = true,
                Action::CancelTimer => timer = false,
                _ => {}
            }
            actions.push(a);
        }
        if session.is_finished() || steps >= MAX_SIM_STEPS {
            break;
        }
        let event = if let Some(barge_in) = playing {
            match inputs.peek() {
                Some(SimInput::Digit(d)) if barge_in => {
                    let d = *d;
                    inputs.next();
                    Event::Digit(d)
                }
                _ => {
                    playing = None;
                    Event::PlaybackDone
                }
            }
        } else if timer {
            match inputs.next() {
                Some(SimInput::Digit(d)) => Event::Digit(d),
                Some(SimInput::Wait) | None => {
                    timer = false;
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
