//! The in-memory form of a checked dialplan.
//!
//! These types are what the interpreter and the server see after the loader
//! has validated a file: every reference resolves, every value is in range.
//! They are plain data (no spans) so that a snapshot can be shared by many
//! calls through an `Arc` and compared or logged cheaply. The TOML keys each
//! field comes from are documented on the field.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;

/// Operator queue name used at run time when neither the dialplan nor the
/// server configuration names one. `check` rejects such plans, so this only
/// matters for hand-built plans; it exists so that zero-out can never turn
/// into silence.
pub const FALLBACK_OPERATOR_QUEUE: &str = "operator";

/// What the loader checks references against.
///
/// Each set is optional because `ringback check` may run without a server
/// configuration or a prompts directory: `None` means "unknown, don't check",
/// while `Some(empty)` means "there are none" and reports every reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckContext {
    /// Prompt names available (file stems of `prompts/*.wav`).
    pub prompts: Option<HashSet<String>>,
    /// Queue names defined in `ringback.toml`.
    pub queues: Option<HashSet<String>>,
    /// The server-wide operator queue, used by plans without `operator`.
    pub global_operator: Option<String>,
    /// Lookup names defined in `ringback.toml` (`[lookups.<name>]`).
    pub lookups: Option<HashSet<String>>,
}

/// One validated dialplan file: an entry point for the numbers it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialplan {
    /// The file it was loaded from (used in diagnostics, logs and CDRs).
    pub file: PathBuf,
    /// `[dialplan] name`: display name; defaults to the file stem.
    pub name: String,
    /// `[dialplan] numbers`: Request-URI users this plan answers; `"*"` makes
    /// it the catch-all plan.
    pub numbers: Vec<String>,
    /// `[dialplan] start`: the first node of every call.
    pub start: String,
    /// `[dialplan] operator`: queue for zero-out and default fallbacks; when
    /// `None` the server's global operator queue is used.
    pub operator: Option<String>,
    /// `[dialplan] timezone`: default zone of `hours` nodes (default UTC).
    pub timezone: Tz,
    /// `[dialplan] language`: the prompt set (`prompts/<language>/`) and
    /// language skill of callers whose own language (the directory's, or a
    /// `set` node's `language` variable) is not known.
    pub language: Option<String>,
    /// `[dialplan] type_ahead` (default true): keys pressed during a play
    /// node are kept for the next menu or gather.
    pub type_ahead: bool,
    /// `[nodes.<name>]`: every node by name.
    pub nodes: HashMap<String, Node>,
    /// Short hash of the file contents, so CDRs and logs can tell which
    /// version of a plan a call ran (hot reload keeps old snapshots alive).
    pub version: String,
}

impl Dialplan {
    /// The operator queue in effect: the plan's own, else the global one.
    pub fn operator_queue<'a>(&'a self, global: Option<&'a str>) -> Option<&'a str> {
        self.operator.as_deref().or(global)
    }

    /// The node called `name`, if any.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }
}

/// A list of prompt names played in order (`prompt = "x"` or `["x", "y"]`).
/// Names are file stems in `prompts/`; an empty list means "no prompt".
pub type Prompts = Vec<String>;

/// One step of a dialplan; the TOML `type` key selects the variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `type = "menu"`: a prompt and a choice by one key press.
    Menu(Menu),
    /// `type = "gather"`: collect several digits into a variable.
    Gather(Gather),
    /// `type = "play"`: play prompts, then continue or hang up.
    Play(Play),
    /// `type = "set"`: set variables (shown to agents), then continue.
    Set(SetVars),
    /// `type = "goto"`: continue at another node.
    Goto(Goto),
    /// `type = "hours"`: branch on business hours and holidays.
    Hours(Hours),
    /// `type = "queue"`: hand the call to the ACD.
    Queue(QueueNode),
    /// `type = "callback"`: register a callback request and hang up.
    Callback(CallbackNode),
    /// `type = "transfer"`: blind transfer to a SIP URI or extension.
    Transfer(Transfer),
    /// `type = "hangup"`: optional closing prompt, then hang up.
    Hangup(Hangup),
    /// `type = "lookup"`: ask a configured HTTP endpoint, map its JSON
    /// answer into variables.
    Lookup(LookupNode),
    /// `type = "say"`: speak prompts and variables (digits, numbers,
    /// amounts, dates, times).
    Say(Say),
}

impl Node {
    /// The TOML `type` value of this node, for messages and traces.
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Menu(_) => "menu",
            Node::Gather(_) => "gather",
            Node::Play(_) => "play",
            Node::Set(_) => "set",
            Node::Goto(_) => "goto",
            Node::Hours(_) => "hours",
            Node::Queue(_) => "queue",
            Node::Callback(_) => "callback",
            Node::Transfer(_) => "transfer",
            Node::Hangup(_) => "hangup",
            Node::Lookup(_) => "lookup",
            Node::Say(_) => "say",
        }
    }
}

/// `type = "menu"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    /// `prompt` (required): played with barge-in; a key press stops it.
    pub prompt: Prompts,
    /// `options`: digit (`0`-`9`, `*`, `#`) → node name. `0` is never needed:
    /// it always zero-outs to the operator (and may only name a queue node
    /// for the operator queue).
    pub options: BTreeMap<char, String>,
    /// `timeout` (seconds, 1..=60, default 5): wait for a key after the prompt.
    pub timeout: Duration,
    /// `max_retries` (1..=10, default 3): invalid or timed-out attempts
    /// before `on_fail`; bounds every menu loop.
    pub max_retries: u32,
    /// `invalid_prompt` (optional): played on a wrong key before the menu
    /// prompt is repeated.
    pub invalid_prompt: Prompts,
    /// `timeout_prompt` (optional): played on a timeout before the menu
    /// prompt is repeated.
    pub timeout_prompt: Prompts,
    /// `on_fail` (optional): node after `max_retries` failures; `None` means
    /// the zero-out route (operator queue), never silence.
    pub on_fail: Option<String>,
}

/// `type = "gather"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    /// `prompt` (required): played with barge-in.
    pub prompt: Prompts,
    /// `var` (required, `[a-z_][a-z0-9_]*`): variable that receives the digits.
    pub var: String,
    /// `min_digits` (default 1): shorter input counts as invalid.
    pub min_digits: usize,
    /// `max_digits` (required, 1..=32): input ends automatically at this length.
    pub max_digits: usize,
    /// `terminator` (`"#"` or `"*"`, default `"#"`): ends input early.
    pub terminator: char,
    /// `timeout` (seconds, 1..=60, default 5): first-digit and inter-digit timeout.
    pub timeout: Duration,
    /// `max_retries` (1..=10, default 3): failed attempts before `on_fail`.
    pub max_retries: u32,
    /// `invalid_prompt` (optional): played when the input is too short.
    pub invalid_prompt: Prompts,
    /// `timeout_prompt` (optional, an addition to the original schema for
    /// symmetry with menus): played when nothing was entered.
    pub timeout_prompt: Prompts,
    /// `next` (required): node after a successful entry.
    pub next: String,
    /// `on_fail` (optional): node after `max_retries`; default zero-out.
    pub on_fail: Option<String>,
}

/// `type = "play"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    /// `prompt` (required): played to the end (no barge-in), except that
    /// `0` reaches the operator at any moment.
    pub prompt: Prompts,
    /// `next` (optional): node afterwards; `None` hangs up after playing.
    pub next: Option<String>,
    /// `zero_out` (default true): `0` during this prompt reaches the
    /// operator. `false` exempts one prompt (a legal notice that must be
    /// heard); `ringback check` lists such nodes.
    pub zero_out: bool,
    /// `type_ahead` (default: the plan's): other keys pressed during this
    /// prompt are kept for the next menu or gather instead of being lost.
    pub type_ahead: Option<bool>,
}

/// `type = "set"`.
#[derive(Debug, Clone, PartialEq)]
pub struct SetVars {
    /// `vars` (required): variable name → string value; the variables travel
    /// with the call (agent headers, CDR).
    pub vars: BTreeMap<String, String>,
    /// `next` (required).
    pub next: String,
}

/// `type = "goto"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Goto {
    /// `target` (required): node to continue at.
    pub target: String,
}

/// A set of weekdays, as written in `days = "mon-fri"` (`"sat,sun"`,
/// `"daily"`, `"weekdays"`, `"weekends"`).
pub use ringback_calendar::Days;

/// One `open = [{ days, from, to }]` entry of an `hours` node: `days` as
/// above, `from` (`"HH:MM"`) and `to` (`"HH:MM"`, up to `"24:00"`) as
/// minutes since local midnight.
pub use ringback_calendar::OpenRange;

/// `type = "hours"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hours {
    /// `timezone` (optional): IANA zone; `None` uses the plan's timezone.
    pub timezone: Option<Tz>,
    /// `open` (required, may be empty = always closed).
    pub open: Vec<OpenRange>,
    /// `holidays`: local dates (`"2026-12-25"` or a TOML date) closed all day.
    pub holidays: BTreeSet<NaiveDate>,
    /// `open_next` (required).
    pub open_next: String,
    /// `closed_next` (required).
    pub closed_next: String,
}

/// `callback = { offer, after, key }` on a queue node: the callback offer
/// made to waiting callers (executed by the ACD, not the IVR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackOffer {
    /// `offer` (default true): whether to offer a callback at all.
    pub offer: bool,
    /// `after` (seconds, 0..=3600, default 60): wait before offering.
    pub after: Duration,
    /// `key` (default `"1"`, never `"0"`): key that accepts the offer.
    pub key: char,
}

/// `type = "queue"`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueNode {
    /// `queue` (required): queue name from `ringback.toml`.
    pub queue: String,
    /// `priority` (optional, -1000..=1000, default 0): higher is served first.
    pub priority: i32,
    /// `max_wait` (optional, seconds, 1..=86400): then `QueueExited`.
    pub max_wait: Option<Duration>,
    /// `on_timeout` (optional): node after `max_wait`; default zero-out (or
    /// hang up if this already is the operator queue).
    pub on_timeout: Option<String>,
    /// `callback` (optional): callback offer settings.
    pub callback: Option<CallbackOffer>,
}

/// `type = "callback"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackNode {
    /// `queue` (required): the queue the callback keeps a place in.
    pub queue: String,
    /// `confirm_prompt` (optional): played after the request is recorded.
    pub confirm_prompt: Prompts,
    /// `when_open` (optional): an `hours` node of this file. When the call
    /// is outside those hours the callback is not dialed before their next
    /// opening (an after-hours callback); inside them it changes nothing.
    pub when_open: Option<String>,
}

/// `type = "transfer"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// `target` (required): `sip:`/`sips:` URI or an extension (`+`, digits,
    /// `*`, `#`).
    pub target: String,
    /// `prompt` (optional): played before transferring.
    pub prompt: Prompts,
    /// `on_fail` (optional): node when the transfer fails; default zero-out.
    pub on_fail: Option<String>,
}

/// `type = "hangup"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hangup {
    /// `prompt` (optional): closing prompt.
    pub prompt: Prompts,
}

/// `type = "lookup"`.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupNode {
    /// `lookup` (required): a `[lookups.<name>]` of `ringback.toml`.
    pub lookup: String,
    /// `vars` (optional): variable → path in the JSON answer
    /// (`"shipping.date"`, `"items.0.sku"`); every path must be in the
    /// answer, or the lookup failed.
    pub vars: BTreeMap<String, String>,
    /// `next` (required): node after a good answer.
    pub next: String,
    /// `fallback` (required): node when the lookup times out, fails, its
    /// circuit breaker is open or the answer lacks a mapped field.
    pub fallback: String,
}

/// One entry of a `say` node.
pub use crate::say::{SayFormat, SayItem};

/// `type = "say"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Say {
    /// `say` (required): prompt names and `{variable:format}` entries,
    /// spoken in order without barge-in (0 still reaches the operator).
    pub items: Vec<SayItem>,
    /// `next` (optional): node afterwards; `None` hangs up.
    pub next: Option<String>,
    /// `fallback` (optional): node when a variable is unset or cannot be
    /// spoken in its format; without it such an entry is skipped.
    pub fallback: Option<String>,
}
