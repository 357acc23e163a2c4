//! ringback dialplans: schema, loader with `file:line:col` diagnostics,
//! validator and a pure interpreter.
//!
//! A dialplan is one TOML file per entry point. The loader ([`load_str`],
//! [`load_sources`], [`load_sources_cached`]) turns file texts into checked
//! [`Dialplan`]s or into a complete list of [`Diagnostic`]s; a [`Session`]
//! runs one call through a plan as a state machine without any I/O;
//! [`simulate()`] drives a session with scripted key presses and prints the
//! path a caller would take. The crate reads no files, spawns no threads and
//! reads no clock: the server (`src/plan_loader.rs`) reads the files and
//! passes the time in (`crates/clippy.toml` enforces it).
//!
//! # Schema
//!
//! ```toml
//! [dialplan]
//! name = "Acme Corp main line"    # optional, default: the file stem
//! numbers = ["1000", "+15550100"] # required, non-empty; "*" = catch-all plan
//! start = "hours"                 # required: first node
//! operator = "operator"           # zero-out queue; optional with a global one
//! timezone = "America/New_York"   # default zone of hours nodes (default UTC)
//! language = "es"                 # optional: prompt set (prompts/es/) for callers
//!                                 # whose language is not known
//!
//! [nodes.<name>]                  # names: [A-Za-z0-9_-]+
//! type = "menu"                   # menu gather play set goto hours queue
//!                                 # callback transfer hangup lookup say
//! ```
//!
//! Keys per node type (unknown keys are errors; every default is listed on
//! the corresponding field of the [`model`] structs):
//!
//! | type | required | optional |
//! |------|----------|----------|
//! | `menu` | `prompt` | `options` {digit → node}, `timeout` (1..=60 s, 5), `max_retries` (1..=10, 3), `invalid_prompt`, `timeout_prompt`, `on_fail` (default: operator) |
//! | `gather` | `prompt`, `var`, `max_digits` (1..=32), `next` | `min_digits` (1), `terminator` (`#`/`*`, `#`), `timeout`, `max_retries`, `invalid_prompt`, `timeout_prompt`, `on_fail` |
//! | `play` | `prompt` | `next` (default: hang up) |
//! | `set` | `vars` {name → string}, `next` | |
//! | `goto` | `target` | |
//! | `hours` | `open` [{days, from, to}], `open_next`, `closed_next` | `timezone`, `holidays` ["YYYY-MM-DD"] |
//! | `queue` | `queue` | `priority` (-1000..=1000), `max_wait` (1..=86400 s), `on_timeout`, `callback` {offer, after, key} |
//! | `callback` | `queue` | `confirm_prompt` |
//! | `transfer` | `target` (sip:/sips: URI or extension) | `prompt`, `on_fail` |
//! | `hangup` | | `prompt` |
//! | `lookup` | `lookup` (a `[lookups.<name>]`), `next`, `fallback` | `vars` {variable → path in the JSON answer} |
//! | `say` | `say` [prompt names and `{variable:format}`] | `next` (default: hang up), `fallback` |
//!
//! A prompt value is a name (`prompts/<name>.wav`, without extension) or a
//! list of names played in order.
//!
//! # The zero-out rule
//!
//! `0` in every menu reaches a human: the plan's `operator` queue or the
//! server's global one. `check` rejects a menu that binds `0` to anything but
//! a queue node for that queue, and a plan without any operator queue; the
//! interpreter enforces it even when `0` is not listed. Fallbacks default to
//! the operator too, and loops a silent caller could never leave are errors.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod diag;
mod hours;
pub mod language;
mod loader;
pub mod lookup;
pub mod model;
mod parse;
pub mod say;
mod session;
mod simulate;
mod suggest;

pub use diag::{sort_diagnostics, Diagnostic, Severity};
pub use hours::HoursVerdict;
pub use loader::{
    check_in_order, content_version, load_sources, load_sources_cached, load_str, read_error,
    CheckJob, CheckedFile, Diagnostics, DialplanSet, LoadCache, SourceFile,
};
pub use model::{
    CallbackNode, CallbackOffer, CheckContext, Days, Dialplan, Gather, Goto, Hangup, Hours,
    LookupNode, Menu, Node, OpenRange, Play, Prompts, QueueNode, Say, SayFormat, SayItem, SetVars,
    Transfer, FALLBACK_OPERATOR_QUEUE,
};
pub use session::{
    Action, CallInfo, DigitEffect, Event, Outcome, RetryReason, Session, Step, StepKind,
    ZeroOutReason, MAX_STEPS_WITHOUT_INPUT, MAX_TRACE,
};
pub use simulate::{parse_sim_inputs, simulate, SimInput, SimReport, SimScript, MAX_SIM_STEPS};
