//! TOML → [`Draft`]: structural validation with exact spans.
//!
//! We walk toml's spanned document tree (`toml::de::DeTable`) by hand instead
//! of deriving `Deserialize`: serde stops at the first error, while an
//! operator fixing a dialplan wants *every* mistake of a file in one run, each
//! with its own `line:col`. Unknown keys are rejected exactly like
//! `#[serde(deny_unknown_fields)]` would, but with the list of allowed keys
//! and a "did you mean" hint.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::str::FromStr;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::Sink;
use crate::hours::{parse_days, parse_hhmm};
use crate::model::*;
use crate::suggest::did_you_mean;

mod dips;

pub(crate) type Span = Range<usize>;
type SV<'i> = Spanned<DeValue<'i>>;

/// The node types, in the order they are listed in messages.
pub(crate) const NODE_TYPES: &[&str] = &[
    "menu", "gather", "play", "set", "goto", "hours", "queue", "callback", "transfer", "hangup",
    "lookup", "say",
];

const DIALPLAN_KEYS: &[&str] = &[
    "name",
    "numbers",
    "start",
    "operator",
    "timezone",
    "language",
    "type_ahead",
];
const MENU_KEYS: &[&str] = &[
    "type",
    "prompt",
    "options",
    "timeout",
    "max_retries",
    "invalid_prompt",
    "timeout_prompt",
    "on_fail",
];
const GATHER_KEYS: &[&str] = &[
    "type",
    "prompt",
    "var",
    "min_digits",
    "max_digits",
    "terminator",
    "timeout",
    "max_retries",
    "invalid_prompt",
    "timeout_prompt",
    "next",
    "on_fail",
];
const PLAY_KEYS: &[&str] = &["type", "prompt", "next", "zero_out", "type_ahead"];
const SET_KEYS: &[&str] = &["type", "vars", "next"];
const GOTO_KEYS: &[&str] = &["type", "target"];
const HOURS_KEYS: &[&str] = &[
    "type",
    "timezone",
    "open",
    "holidays",
    "open_next",
    "closed_next",
];
const QUEUE_KEYS: &[&str] = &[
    "type",
    "queue",
    "priority",
    "max_wait",
    "on_timeout",
    "callback",
];
const CALLBACK_KEYS: &[&str] = &["type", "queue", "confirm_prompt", "when_open"];
const TRANSFER_KEYS: &[&str] = &["type", "target", "prompt", "on_fail"];
const HANGUP_KEYS: &[&str] = &["type", "prompt"];
const OPEN_KEYS: &[&str] = &["days", "from", "to"];
const OFFER_KEYS: &[&str] = &["offer", "after", "key"];

/// How a reference to another node is followed, which matters for the loop
/// check: only edges taken without any caller input can form a loop that
/// never ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EdgeKind {
    /// Taken because the caller entered something.
    Input,
    /// Taken without caller input (fallbacks, next, goto, hours, failures).
    Silent,
    /// Taken after waiting in a queue for a human; not a spin.
    QueueTimeout,
}

/// A reference from one node to another, kept with its span so every check
/// can point at the exact value.
#[derive(Debug, Clone)]
pub(crate) struct Ref {
    pub from: String,
    /// How the key is written, e.g. `next` or `options."1"`.
    pub field: String,
    pub target: String,
    pub span: Span,
    pub kind: EdgeKind,
}

/// A parsed node with the position of its name.
#[derive(Debug)]
pub(crate) struct DraftNode {
    pub span: Span,
    /// `None` when the node had errors (its name still counts as declared).
    pub node: Option<Node>,
}

/// Everything the parse pass learned, spans included, for the check pass.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub name: Option<String>,
    pub numbers: Vec<Spanned<String>>,
    pub start: Option<Spanned<String>>,
    pub operator: Option<Spanned<String>>,
    pub timezone: Option<Tz>,
    pub language: Option<String>,
    /// Span of the `[dialplan]` key (or 0..0 when the table is missing).
    pub dialplan_span: Span,
    pub nodes: BTreeMap<String, DraftNode>,
    pub refs: Vec<Ref>,
    pub prompt_refs: Vec<Spanned<String>>,
    pub queue_refs: Vec<Spanned<String>>,
    /// `[dialplan] type_ahead`, when given.
    pub type_ahead: Option<bool>,
    /// Play nodes with `zero_out = false`: (node, span of the value).
    pub zero_out_exempt: Vec<(String, Span)>,
    /// Menus that bind `0`: (menu, span of the `"0"` key, target).
    pub zero_options: Vec<(String, Span, String)>,
    /// Queue nodes with `max_wait` and no `on_timeout`: (node, span).
    pub wait_without_timeout: Vec<(String, Span)>,
    /// `lookup` values of lookup nodes (checked against `[lookups]`).
    pub lookup_refs: Vec<Spanned<String>>,
    /// Variables some node of the file sets (gather, set, lookup).
    pub var_defs: BTreeSet<String>,
    /// Variables `say` nodes speak, where.
    pub var_uses: Vec<Spanned<String>>,
    /// `say` entries with a format, where (their number prompts must exist).
    pub format_refs: Vec<(Span, crate::say::SayFormat)>,
    /// `when_open` of callback nodes: (node, the hours node it names).
    pub hours_refs: Vec<(String, Spanned<String>)>,
}

/// A table being read, with who owns it (for messages) and where to point
/// when a required key is missing.
struct Tc<'a, 'i> {
    t: &'a DeTable<'i>,
    span: Span,
    owner: String,
}

impl<'a, 'i> Tc<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a SV<'i>> {
        self.t.get(key)
    }
    /// The span of `key` itself (for errors about the binding, not the value).
    fn key_span(&self, key: &str) -> Option<Span> {
        self.t.get_key_value(key).map(|(k, _)| k.span())
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date/time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Node names become log fields, SIP header values and trace labels, so they
/// are restricted to a safe, unambiguous alphabet.
pub(crate) fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_var_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Prompt names map to `prompts/<name>.wav`; no path separators or dots, so
/// a dialplan can never make the server read outside the prompts directory.
fn valid_prompt_name(s: &str) -> bool {
    valid_node_name(s)
}

fn valid_number(s: &str) -> bool {
    s == "*"
        || (!s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'*' | b'#' | b'.' | b'_' | b'-')
            }))
}

fn valid_transfer_target(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if let Some(rest) = lower
        .strip_prefix("sip:")
        .or_else(|| lower.strip_prefix("sips:"))
    {
        return !rest.is_empty()
            && !rest.starts_with('@')
            && rest
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    }
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

fn is_digit_key(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

/// Parses one file into a draft, reporting structural errors into `sink`.
/// Returns `None` only for TOML syntax errors (nothing else is trustworthy).
pub(crate) fn parse(sink: &mut Sink<'_>) -> Option<Draft> {
    let src = sink.src();
    let (doc, errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        report_syntax(sink, doc.get_ref(), &errors);
        return None;
    }
    let mut p = Parser {
        sink,
        d: Draft::default(),
    };
    p.document(doc.get_ref());
    Some(p.d)
}

/// Turns toml's syntax errors into diagnostics; duplicate keys get a message
/// that says *what* is duplicated (a digit in a menu is a collision).
fn report_syntax(sink: &mut Sink<'_>, doc: &DeTable<'_>, errors: &[toml::de::Error]) {
    let src = sink.src();
    let mut duplicated_tables: Vec<Vec<String>> = Vec::new();
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        if e.message() != "duplicate key" {
            sink.error(&span, format!("TOML syntax error: {}", e.message()));
            continue;
        }
        let key = src
            .get(span.clone())
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        let mut path = tree_path(doc, span.start);
        if path.is_empty() {
            path = header_path(src, span.start);
        }
        // A line that *is* a header repeats a whole table.
        let line_start = src[..clamp(src, span.start)]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let is_header = src[line_start..].trim_start().starts_with('[');
        if is_header {
            let full = header_path(src, span.start);
            if duplicated_tables.iter().any(|t| full.starts_with(t)) {
                continue;
            }
            let msg = match full.as_slice() {
                [n, name] if n == "nodes" => format!(
                    "node `{name}` is defined twice; rename one of them (node names must be unique in a file)"
                ),
                _ => format!("table `[{}]` is defined twice", full.join(".")),
            };
            sink.error(&span, msg);
            duplicated_tables.push(full);
            continue;
        }
        let mut full = path.clone();
        full.push(key.clone());
        if duplicated_tables.iter().any(|t| full.starts_with(t)) {
            continue;
        }
        let msg = match path.as_slice() {
            [n, node, o] if n == "nodes" && o == "options" => format!(
                "digit `{key}` is bound twice in options of node `{node}`; each digit can lead to one node only"
            ),
            [n] if n == "nodes" => format!(
                "node `{key}` is defined twice; rename one of them (node names must be unique in a file)"
            ),
            [n, node] if n == "nodes" => {
                format!("key `{key}` is set twice in node `{node}`; keep only one")
            }
            [] => format!("key `{key}` is set twice; keep only one"),
            p => format!("key `{key}` is set twice in `{}`; keep only one", p.join(".")),
        };
        sink.error(&span, msg);
    }
}

/// The deepest key path whose key or (inline) value span contains `offset`.
fn tree_path(t: &DeTable<'_>, offset: usize) -> Vec<String> {
    for (k, v) in t.iter() {
        let inside = |s: Span| s.start <= offset && offset < s.end;
        if inside(k.span()) {
            return vec![k.get_ref().to_string()];
        }
        let vs = v.span();
        let mut sub = match v.get_ref() {
            DeValue::Table(t2) => tree_path(t2, offset),
            _ => Vec::new(),
        };
        if !sub.is_empty() || inside(vs) {
            sub.insert(0, k.get_ref().to_string());
            return sub;
        }
    }
    Vec::new()
}

/// The path of the last `[table]` header before `offset` (textual fallback
/// for keys in a standard table body, whose span the tree does not cover).
/// `offset` clamped into `src` and moved back to a character boundary, so
/// slicing with it can never panic whatever span a parser reports.
fn clamp(src: &str, offset: usize) -> usize {
    let mut o = offset.min(src.len());
    while !src.is_char_boundary(o) {
        o -= 1;
    }
    o
}

fn header_path(src: &str, offset: usize) -> Vec<String> {
    let offset = clamp(src, offset);
    // Include the whole line holding `offset`: it may be the header itself.
    let end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let before = &src[..end];
    for line in before.lines().rev() {
        let l = line.trim();
        if let Some(inner) = l.strip_prefix('[') {
            let inner = inner.trim_start_matches('[');
            let inner = inner.split(']').next().unwrap_or("");
            return inner
                .split('.')
                .map(|s| s.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
                .collect();
        }
    }
    Vec::new()
}

struct Parser<'s, 'src> {
    sink: &'s mut Sink<'src>,
    d: Draft,
}

impl<'i> Parser<'_, '_> {
    fn document(&mut self, doc: &DeTable<'i>) {
        let mut have_nodes = false;
        for (k, v) in doc.iter() {
            match k.get_ref().as_ref() {
                "dialplan" => {
                    self.d.dialplan_span = k.span();
                    match v.get_ref() {
                        DeValue::Table(t) => self.header(&Tc {
                            t,
                            span: k.span(),
                            owner: "[dialplan]".into(),
                        }),
                        other => self.sink.error(
                            &v.span(),
                            format!(
                                "`dialplan` must be a table (`[dialplan]`), found {}",
                                type_name(other)
                            ),
                        ),
                    }
                }
                "nodes" => {
                    have_nodes = true;
                    match v.get_ref() {
                        DeValue::Table(t) => {
                            if t.is_empty() {
                                self.sink.error(
                                    &k.span(),
                                    "no nodes: add at least one `[nodes.<name>]` table",
                                );
                            }
                            for (name, node) in t.iter() {
                                self.node(name, node);
                            }
                        }
                        other => self.sink.error(
                            &v.span(),
                            format!(
                                "`nodes` must be a table of `[nodes.<name>]` tables, found {}",
                                type_name(other)
                            ),
                        ),
                    }
                }
                other => {
                    let hint = did_you_mean(other, ["dialplan", "nodes"]);
                    self.sink.error(
                        &k.span(),
                        format!(
                            "unknown top-level key `{other}`{hint}; a dialplan has a `[dialplan]` table and `[nodes.<name>]` tables"
                        ),
                    );
                }
            }
        }
        if !doc.contains_key("dialplan") {
            self.sink.error(
                &(0..0),
                "missing `[dialplan]` table (it names the `numbers` this plan answers and its `start` node)",
            );
        }
        if !have_nodes {
            self.sink
                .error(&(0..0), "no nodes: add at least one `[nodes.<name>]` table");
        }
    }

    // ---------------------------------------------------------------- helpers

    fn keys(&mut self, tc: &Tc<'_, 'i>, allowed: &[&str]) {
        for (k, _) in tc.t.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let hint = did_you_mean(key, allowed.iter().copied());
                self.sink.error(
                    &k.span(),
                    format!(
                        "unknown key `{key}` in {}{hint}; allowed keys: {}",
                        tc.owner,
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn missing(&mut self, tc: &Tc<'_, 'i>, key: &str, what: &str) {
        self.sink.error(
            &tc.span,
            format!("{} is missing required key `{key}` ({what})", tc.owner),
        );
    }

    fn wrong_type(&mut self, tc: &Tc<'_, 'i>, key: &str, v: &SV<'i>, expected: &str) {
        self.sink.error(
            &v.span(),
            format!(
                "`{key}` of {} must be {expected}, found {}",
                tc.owner,
                type_name(v.get_ref())
            ),
        );
    }

    fn string(&mut self, tc: &Tc<'_, 'i>, key: &str, expected: &str) -> Option<Spanned<String>> {
        let v = tc.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
            _ => {
                self.wrong_type(tc, key, v, expected);
                None
            }
        }
    }

    fn req_string(
        &mut self,
        tc: &Tc<'_, 'i>,
        key: &str,
        expected: &str,
    ) -> Option<Spanned<String>> {
        if tc.get(key).is_none() {
            self.missing(tc, key, expected);
            return None;
        }
        self.string(tc, key, expected)
    }

    /// An integer in `min..=max`; `Ok(None)` when absent, `Err(())` when bad.
    fn int(
        &mut self,
        tc: &Tc<'_, 'i>,
        key: &str,
        min: i64,
        max: i64,
        unit: &str,
    ) -> Result<Option<i64>, ()> {
        let Some(v) = tc.get(key) else {
            return Ok(None);
        };
        let expected = format!("a whole number{unit} between {min} and {max}");
        let n = match v.get_ref() {
            DeValue::Integer(i) => {
                let text = i.as_str().replace('_', "");
                match i64::from_str_radix(&text, i.radix()) {
                    Ok(n) => n,
                    Err(_) => {
                        self.sink.error(
                            &v.span(),
                            format!("`{key}` of {} is out of range: {expected}", tc.owner),
                        );
                        return Err(());
                    }
                }
            }
            _ => {
                self.wrong_type(tc, key, v, &expected);
                return Err(());
            }
        };
        if n < min || n > max {
            self.sink.error(
                &v.span(),
                format!("`{key}` of {} is {n}: must be {expected}", tc.owner),
            );
            return Err(());
        }
        Ok(Some(n))
    }

    fn seconds(
        &mut self,
        tc: &Tc<'_, 'i>,
        key: &str,
        min: i64,
        max: i64,
        default: u64,
    ) -> Option<std::time::Duration> {
        match self.int(tc, key, min, max, " of seconds") {
            Ok(Some(n)) => Some(std::time::Duration::from_secs(n.unsigned_abs())),
            Ok(None) => Some(std::time::Duration::from_secs(default)),
            Err(()) => None,
        }
    }

    fn retries(&mut self, tc: &Tc<'_, 'i>) -> Option<u32> {
        match self.int(tc, "max_retries", 1, 10, "") {
            Ok(n) => Some(n.map_or(3, |n| n.unsigned_abs() as u32)),
            Err(()) => None,
        }
    }

    /// A prompt value: one name or a list of names. Records each name for
    /// the prompt-existence check. Absent → empty list.
    fn prompts(&mut self, tc: &Tc<'_, 'i>, key: &str, required: bool) -> Option<Prompts> {
        let expected = "a prompt name or a list of prompt names";
        let Some(v) = tc.get(key) else {
            if required {
                self.missing(tc, key, expected);
                return None;
            }
            return Some(Vec::new());
        };
        let items: Vec<&SV<'i>> = match v.get_ref() {
            DeValue::String(_) => vec![v],
            DeValue::Array(a) => {
                if a.is_empty() {
                    self.sink.error(
                        &v.span(),
                        format!(
                            "`{key}` of {} is an empty list: name at least one prompt{}",
                            tc.owner,
                            if required { "" } else { " or remove the key" }
                        ),
                    );
                    return None;
                }
                a.iter().collect()
            }
            _ => {
                self.wrong_type(tc, key, v, expected);
                return None;
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            let DeValue::String(s) = item.get_ref() else {
                self.sink.error(
                    &item.span(),
                    format!(
                        "`{key}` of {} must list prompt names (strings), found {}",
                        tc.owner,
                        type_name(item.get_ref())
                    ),
                );
                ok = false;
                continue;
            };
            if let Some(stem) = s.strip_suffix(".wav").filter(|st| valid_prompt_name(st)) {
                self.sink.error(
                    &item.span(),
                    format!(
                        "prompt `{s}` in `{key}` of {}: write the name without extension (`{stem}`); prompts are looked up as prompts/<name>.wav",
                        tc.owner
                    ),
                );
                ok = false;
                continue;
            }
            if !valid_prompt_name(s) {
                self.sink.error(
                    &item.span(),
                    format!(
                        "invalid prompt name `{s}` in `{key}` of {}: use letters, digits, `-` and `_` (the file is prompts/<name>.wav)",
                        tc.owner
                    ),
                );
                ok = false;
                continue;
            }
            self.d
                .prompt_refs
                .push(Spanned::new(item.span(), s.to_string()));
            out.push(s.to_string());
        }
        ok.then_some(out)
    }

    /// A reference to another node (validated later, when all names are known).
    fn target(
        &mut self,
        tc: &Tc<'_, 'i>,
        node: &str,
        key: &str,
        required: bool,
        kind: EdgeKind,
    ) -> Option<Option<String>> {
        let expected = "the name of a node in this file";
        let s = if required {
            self.req_string(tc, key, expected)?
        } else {
            match tc.get(key) {
                None => return Some(None),
                Some(_) => self.string(tc, key, expected)?,
            }
        };
        self.reference(node, key.to_string(), &s, kind).map(Some)
    }

    fn reference(
        &mut self,
        node: &str,
        field: String,
        s: &Spanned<String>,
        kind: EdgeKind,
    ) -> Option<String> {
        if !valid_node_name(s.get_ref()) {
            self.sink.error(
                &s.span(),
                format!(
                    "invalid node name `{}` in {field} of node `{node}`: node names use letters, digits, `-` and `_`",
                    s.get_ref()
                ),
            );
            return None;
        }
        self.d.refs.push(Ref {
            from: node.to_string(),
            field,
            target: s.get_ref().clone(),
            span: s.span(),
            kind,
        });
        Some(s.get_ref().clone())
    }

    fn queue_name(&mut self, tc: &Tc<'_, 'i>, key: &str) -> Option<String> {
        let q = self.req_string(tc, key, "a queue name from ringback.toml")?;
        if q.get_ref().trim().is_empty() {
            self.sink.error(
                &q.span(),
                format!(
                    "`{key}` of {} is empty: name a queue from ringback.toml",
                    tc.owner
                ),
            );
            return None;
        }
        self.d.queue_refs.push(q.clone());
        Some(q.into_inner())
    }

    fn timezone(&mut self, tc: &Tc<'_, 'i>) -> Option<Option<Tz>> {
        let Some(s) = self.string(
            tc,
            "timezone",
            "an IANA time zone name such as \"America/New_York\"",
        ) else {
            return if tc.get("timezone").is_some() {
                None
            } else {
                Some(None)
            };
        };
        match Tz::from_str(s.get_ref()) {
            Ok(tz) => Some(Some(tz)),
            Err(_) => {
                let hint =
                    did_you_mean(s.get_ref(), chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()));
                self.sink.error(
                    &s.span(),
                    format!(
                        "unknown timezone `{}`{hint}: expected an IANA name such as \"America/New_York\", \"Europe/Berlin\" or \"UTC\"",
                        s.get_ref()
                    ),
                );
                None
            }
        }
    }

    // ------------------------------------------------------------- [dialplan]

    fn header(&mut self, tc: &Tc<'_, 'i>) {
        self.keys(tc, DIALPLAN_KEYS);
        self.d.name = self
            .string(tc, "name", "a display name (string)")
            .map(Spanned::into_inner);
        self.d.language = self
            .string(tc, "language", "a language tag such as \"en\"")
            .map(Spanned::into_inner);
        self.d.type_ahead = self.boolean(tc, "type_ahead").flatten();
        match tc.get("numbers") {
            None => self.missing(
                tc,
                "numbers",
                "the numbers this plan answers, e.g. [\"1000\"]",
            ),
            Some(v) => match v.get_ref() {
                DeValue::Array(a) => {
                    if a.is_empty() {
                        self.sink.error(
                            &v.span(),
                            "`numbers` of [dialplan] is empty: list the numbers (Request-URI users) this plan answers, or \"*\" for the catch-all plan",
                        );
                    }
                    let mut seen = BTreeSet::new();
                    for item in a.iter() {
                        match item.get_ref() {
                            DeValue::String(s) if valid_number(s) => {
                                if !seen.insert(s.to_string()) {
                                    self.sink.error(
                                        &item.span(),
                                        format!("number `{s}` is listed twice in `numbers`"),
                                    );
                                } else {
                                    self.d
                                        .numbers
                                        .push(Spanned::new(item.span(), s.to_string()));
                                }
                            }
                            DeValue::String(s) => self.sink.error(
                                &item.span(),
                                format!(
                                    "invalid number `{s}` in `numbers`: use the Request-URI user (digits, letters, `+`, `*`, `#`, `.`, `_`, `-`) or \"*\" for the catch-all plan"
                                ),
                            ),
                            other => self.sink.error(
                                &item.span(),
                                format!(
                                    "`numbers` of [dialplan] must list strings (quote numbers: \"1000\"), found {}",
                                    type_name(other)
                                ),
                            ),
                        }
                    }
                }
                _ => self.wrong_type(tc, "numbers", v, "a list of strings, e.g. [\"1000\"]"),
            },
        }
        self.d.start = self.req_string(tc, "start", "the name of the first node");
        self.d.operator = self.string(tc, "operator", "the name of the operator queue");
        if let Some(op) = &self.d.operator {
            if op.get_ref().trim().is_empty() {
                self.sink.error(
                    &op.span(),
                    "`operator` of [dialplan] is empty: name the queue that zero-out reaches, or remove the key to use the global operator queue",
                );
            }
        }
        if let Some(tz) = self.timezone(tc) {
            self.d.timezone = tz;
        }
    }

    // ------------------------------------------------------------------ nodes

    fn node(&mut self, name: &Spanned<std::borrow::Cow<'i, str>>, v: &SV<'i>) {
        let n: &str = name.get_ref();
        let span = name.span();
        if !valid_node_name(n) {
            self.sink.error(
                &span,
                format!("invalid node name `{n}`: node names use letters, digits, `-` and `_`"),
            );
        }
        let DeValue::Table(t) = v.get_ref() else {
            self.sink.error(
                &v.span(),
                format!(
                    "node `{n}` must be a table (`[nodes.{n}]` with a `type` key), found {}",
                    type_name(v.get_ref())
                ),
            );
            self.d
                .nodes
                .insert(n.to_string(), DraftNode { span, node: None });
            return;
        };
        let mut tc = Tc {
            t,
            span: span.clone(),
            owner: format!("node `{n}`"),
        };
        let allowed = format!("one of {}", NODE_TYPES.join(", "));
        let node = match self.req_string(&tc, "type", &allowed) {
            None => None,
            Some(ty) => {
                tc.owner = format!("node `{n}` ({})", ty.get_ref());
                match ty.get_ref().as_str() {
                    "menu" => self.menu(&tc, n),
                    "gather" => self.gather(&tc, n),
                    "play" => self.play(&tc, n),
                    "set" => self.set(&tc, n),
                    "goto" => self.goto(&tc, n),
                    "hours" => self.hours(&tc, n),
                    "queue" => self.queue(&tc, n),
                    "callback" => self.callback(&tc, n),
                    "transfer" => self.transfer(&tc, n),
                    "hangup" => self.hangup(&tc, n),
                    "lookup" => self.lookup(&tc, n),
                    "say" => self.say(&tc, n),
                    other => {
                        let hint = did_you_mean(other, NODE_TYPES.iter().copied());
                        self.sink.error(
                            &ty.span(),
                            format!(
                                "unknown node type `{other}` for node `{n}`{hint}; expected {allowed}"
                            ),
                        );
                        None
                    }
                }
            }
        };
        self.d.nodes.insert(n.to_string(), DraftNode { span, node });
    }

    fn menu(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, MENU_KEYS);
        let prompt = self.prompts(tc, "prompt", true);
        let mut options = Some(BTreeMap::new());
        match tc.get("options") {
            None => {}
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => {
                    for (k, target) in t.iter() {
                        let key: &str = k.get_ref();
                        let mut chars = key.chars();
                        let digit = match (chars.next(), chars.next()) {
                            (Some(c), None) if is_digit_key(c) => c,
                            _ => {
                                self.sink.error(
                                    &k.span(),
                                    format!(
                                        "invalid digit `{key}` in options of node `{n}`: a key is a single 0-9, * or #"
                                    ),
                                );
                                options = None;
                                continue;
                            }
                        };
                        let field = format!("options.\"{digit}\"");
                        let DeValue::String(s) = target.get_ref() else {
                            self.sink.error(
                                &target.span(),
                                format!(
                                    "{field} of node `{n}` must be a node name (string), found {}",
                                    type_name(target.get_ref())
                                ),
                            );
                            options = None;
                            continue;
                        };
                        let s = Spanned::new(target.span(), s.to_string());
                        if digit == '0' {
                            self.d.zero_options.push((
                                n.to_string(),
                                k.span(),
                                s.get_ref().clone(),
                            ));
                        }
                        match self.reference(n, field, &s, EdgeKind::Input) {
                            Some(t) => {
                                if let Some(o) = options.as_mut() {
                                    o.insert(digit, t);
                                }
                            }
                            None => options = None,
                        }
                    }
                }
                _ => {
                    self.wrong_type(
                        tc,
                        "options",
                        v,
                        "a table of digit → node, e.g. { \"1\" = \"billing\" }",
                    );
                    options = None;
                }
            },
        }
        let timeout = self.seconds(tc, "timeout", 1, 60, 5);
        let max_retries = self.retries(tc);
        let invalid_prompt = self.prompts(tc, "invalid_prompt", false);
        let timeout_prompt = self.prompts(tc, "timeout_prompt", false);
        let on_fail = self.target(tc, n, "on_fail", false, EdgeKind::Silent);
        Some(Node::Menu(Menu {
            prompt: prompt?,
            options: options?,
            timeout: timeout?,
            max_retries: max_retries?,
            invalid_prompt: invalid_prompt?,
            timeout_prompt: timeout_prompt?,
            on_fail: on_fail?,
        }))
    }

    fn gather(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, GATHER_KEYS);
        let prompt = self.prompts(tc, "prompt", true);
        let var = self
            .req_string(tc, "var", "the variable name that receives the digits")
            .and_then(|v| {
                if valid_var_name(v.get_ref()) {
                    Some(v.into_inner())
                } else {
                    self.sink.error(
                        &v.span(),
                        format!(
                            "invalid variable name `{}` in node `{n}`: use lowercase letters, digits and `_`, starting with a letter or `_`",
                            v.get_ref()
                        ),
                    );
                    None
                }
            });
        if let Some(v) = &var {
            self.d.var_defs.insert(v.clone());
        }
        let min = self
            .int(tc, "min_digits", 1, 32, "")
            .ok()
            .map(|m| m.unwrap_or(1));
        let max = if tc.get("max_digits").is_none() {
            self.missing(tc, "max_digits", "the longest entry accepted, 1..=32");
            None
        } else {
            self.int(tc, "max_digits", 1, 32, "").ok().flatten()
        };
        let mut range_ok = true;
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                let span = tc
                    .get("min_digits")
                    .map(|v| v.span())
                    .unwrap_or_else(|| tc.span.clone());
                self.sink.error(
                    &span,
                    format!(
                        "min_digits ({lo}) is greater than max_digits ({hi}) in node `{n}`; no entry could ever be accepted"
                    ),
                );
                range_ok = false;
            }
        }
        let terminator = match self.string(tc, "terminator", "\"#\" or \"*\"") {
            None if tc.get("terminator").is_some() => None,
            None => Some('#'),
            Some(s) => match s.get_ref().as_str() {
                "#" => Some('#'),
                "*" => Some('*'),
                other => {
                    self.sink.error(
                        &s.span(),
                        format!(
                            "invalid terminator `{other}` in node `{n}`: expected \"#\" or \"*\" (digits are part of the entry)"
                        ),
                    );
                    None
                }
            },
        };
        let timeout = self.seconds(tc, "timeout", 1, 60, 5);
        let max_retries = self.retries(tc);
        let invalid_prompt = self.prompts(tc, "invalid_prompt", false);
        let timeout_prompt = self.prompts(tc, "timeout_prompt", false);
        let next = self.target(tc, n, "next", true, EdgeKind::Input);
        let on_fail = self.target(tc, n, "on_fail", false, EdgeKind::Silent);
        if !range_ok {
            return None;
        }
        Some(Node::Gather(Gather {
            prompt: prompt?,
            var: var?,
            min_digits: min?.unsigned_abs() as usize,
            max_digits: max?.unsigned_abs() as usize,
            terminator: terminator?,
            timeout: timeout?,
            max_retries: max_retries?,
            invalid_prompt: invalid_prompt?,
            timeout_prompt: timeout_prompt?,
            next: next??,
            on_fail: on_fail?,
        }))
    }

    fn play(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, PLAY_KEYS);
        let prompt = self.prompts(tc, "prompt", true);
        let next = self.target(tc, n, "next", false, EdgeKind::Silent);
        let zero_out = self.boolean(tc, "zero_out");
        if let (Some(Some(false)), Some(v)) = (zero_out, tc.get("zero_out")) {
            self.d.zero_out_exempt.push((n.to_string(), v.span()));
        }
        let type_ahead = self.boolean(tc, "type_ahead");
        Some(Node::Play(Play {
            prompt: prompt?,
            next: next?,
            zero_out: zero_out?.unwrap_or(true),
            type_ahead: type_ahead?,
        }))
    }

    /// An optional boolean: `Some(None)` when absent, `None` when mistyped.
    fn boolean(&mut self, tc: &Tc<'_, 'i>, key: &str) -> Option<Option<bool>> {
        match tc.get(key) {
            None => Some(None),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Some(Some(*b)),
                _ => {
                    self.wrong_type(tc, key, v, "true or false");
                    None
                }
            },
        }
    }

    fn set(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, SET_KEYS);
        let mut vars = Some(BTreeMap::new());
        match tc.get("vars") {
            None => {
                self.missing(tc, "vars", "a table of variable = \"value\"");
                vars = None;
            }
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => {
                    if t.is_empty() {
                        self.sink.error(
                            &v.span(),
                            format!("`vars` of node `{n}` is empty: set at least one variable"),
                        );
                        vars = None;
                    }
                    for (k, val) in t.iter() {
                        let key: &str = k.get_ref();
                        if !valid_var_name(key) {
                            self.sink.error(
                                &k.span(),
                                format!(
                                    "invalid variable name `{key}` in node `{n}`: use lowercase letters, digits and `_`, starting with a letter or `_`"
                                ),
                            );
                            vars = None;
                            continue;
                        }
                        match val.get_ref() {
                            DeValue::String(s) => {
                                self.d.var_defs.insert(key.to_string());
                                if let Some(m) = vars.as_mut() {
                                    m.insert(key.to_string(), s.to_string());
                                }
                            }
                            other => {
                                self.sink.error(
                                    &val.span(),
                                    format!(
                                        "variable `{key}` of node `{n}` must be a string (quote it: \"...\"), found {}",
                                        type_name(other)
                                    ),
                                );
                                vars = None;
                            }
                        }
                    }
                }
                _ => {
                    self.wrong_type(tc, "vars", v, "a table of variable = \"value\"");
                    vars = None;
                }
            },
        }
        let next = self.target(tc, n, "next", true, EdgeKind::Silent);
        Some(Node::Set(SetVars {
            vars: vars?,
            next: next??,
        }))
    }

    fn goto(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, GOTO_KEYS);
        let target = self.target(tc, n, "target", true, EdgeKind::Silent);
        Some(Node::Goto(Goto { target: target?? }))
    }

    fn hours(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, HOURS_KEYS);
        let timezone = self.timezone(tc);
        let mut open = Some(Vec::new());
        match tc.get("open") {
            None => {
                self.missing(
                    tc,
                    "open",
                    "a list like [{ days = \"mon-fri\", from = \"08:00\", to = \"18:00\" }]",
                );
                open = None;
            }
            Some(v) => match v.get_ref() {
                DeValue::Array(a) => {
                    for (i, item) in a.iter().enumerate() {
                        let DeValue::Table(t) = item.get_ref() else {
                            self.sink.error(
                                &item.span(),
                                format!(
                                    "open[{i}] of node `{n}` must be a table {{ days, from, to }}, found {}",
                                    type_name(item.get_ref())
                                ),
                            );
                            open = None;
                            continue;
                        };
                        let sub = Tc {
                            t,
                            span: item.span(),
                            owner: format!("open[{i}] of node `{n}`"),
                        };
                        match self.open_range(&sub) {
                            Some(r) => {
                                if let Some(o) = open.as_mut() {
                                    o.push(r);
                                }
                            }
                            None => open = None,
                        }
                    }
                }
                _ => {
                    self.wrong_type(tc, "open", v, "a list of { days, from, to } tables");
                    open = None;
                }
            },
        }
        let mut holidays = Some(BTreeSet::new());
        if let Some(v) = tc.get("holidays") {
            match v.get_ref() {
                DeValue::Array(a) => {
                    for item in a.iter() {
                        let date = match item.get_ref() {
                            DeValue::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
                            DeValue::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                                dt.date.and_then(|d| {
                                    NaiveDate::from_ymd_opt(
                                        i32::from(d.year),
                                        u32::from(d.month),
                                        u32::from(d.day),
                                    )
                                })
                            }
                            _ => None,
                        };
                        match date {
                            Some(d) => {
                                if let Some(h) = holidays.as_mut() {
                                    h.insert(d);
                                }
                            }
                            None => {
                                let shown = match item.get_ref() {
                                    DeValue::String(s) => format!("\"{s}\""),
                                    other => other.type_str().to_string(),
                                };
                                self.sink.error(
                                    &item.span(),
                                    format!(
                                        "invalid holiday {shown} in node `{n}`: expected a date \"YYYY-MM-DD\" (local to the node's timezone)"
                                    ),
                                );
                                holidays = None;
                            }
                        }
                    }
                }
                _ => {
                    self.wrong_type(tc, "holidays", v, "a list of dates like [\"2026-12-25\"]");
                    holidays = None;
                }
            }
        }
        let open_next = self.target(tc, n, "open_next", true, EdgeKind::Silent);
        let closed_next = self.target(tc, n, "closed_next", true, EdgeKind::Silent);
        Some(Node::Hours(Hours {
            timezone: timezone?,
            open: open?,
            holidays: holidays?,
            open_next: open_next??,
            closed_next: closed_next??,
        }))
    }

    fn time_value(&mut self, tc: &Tc<'_, 'i>, key: &str, allow_24: bool) -> Option<u32> {
        let v = match tc.get(key) {
            None => {
                self.missing(tc, key, "a time \"HH:MM\"");
                return None;
            }
            Some(v) => v,
        };
        let text = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            // TOML 1.1 allows an unquoted local time (`from = 08:00`).
            DeValue::Datetime(dt) if dt.date.is_none() && dt.time.is_some() => {
                let t = dt.time?;
                if t.second != 0 {
                    self.sink.error(
                        &v.span(),
                        format!("`{key}` of {} has seconds: use \"HH:MM\"", tc.owner),
                    );
                    return None;
                }
                format!("{:02}:{:02}", t.hour, t.minute)
            }
            _ => {
                self.wrong_type(tc, key, v, "a time \"HH:MM\"");
                return None;
            }
        };
        match parse_hhmm(&text, allow_24) {
            Ok(m) => Some(m),
            Err(e) => {
                self.sink
                    .error(&v.span(), format!("{e} in `{key}` of {}", tc.owner));
                None
            }
        }
    }

    fn open_range(&mut self, tc: &Tc<'_, 'i>) -> Option<OpenRange> {
        self.keys(tc, OPEN_KEYS);
        let days = self
            .req_string(tc, "days", "e.g. \"mon-fri\", \"sat,sun\" or \"daily\"")
            .and_then(|s| match parse_days(s.get_ref()) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.sink.error(&s.span(), format!("{e} ({})", tc.owner));
                    None
                }
            });
        let from = self.time_value(tc, "from", false);
        let to = self.time_value(tc, "to", true);
        if let (Some(f), Some(t)) = (from, to) {
            if f == t {
                let span = tc.get("to").map(|v| v.span()).unwrap_or(tc.span.clone());
                self.sink.error(
                    &span,
                    format!(
                        "empty time range in {}: `from` equals `to`; use from = \"00:00\", to = \"24:00\" for the whole day",
                        tc.owner
                    ),
                );
                return None;
            }
        }
        Some(OpenRange {
            days: days?,
            from: from?,
            to: to?,
        })
    }

    fn queue(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, QUEUE_KEYS);
        let queue = self.queue_name(tc, "queue");
        let priority = self.int(tc, "priority", -1000, 1000, "").ok();
        let max_wait = match self.int(tc, "max_wait", 1, 86_400, " of seconds") {
            Ok(v) => Some(v.map(|s| std::time::Duration::from_secs(s.unsigned_abs()))),
            Err(()) => None,
        };
        let on_timeout = self.target(tc, n, "on_timeout", false, EdgeKind::QueueTimeout);
        if tc.get("max_wait").is_some() && tc.get("on_timeout").is_none() {
            self.d.wait_without_timeout.push((
                n.to_string(),
                tc.key_span("max_wait").unwrap_or(tc.span.clone()),
            ));
        }
        if tc.get("on_timeout").is_some() && tc.get("max_wait").is_none() {
            let span = tc.key_span("on_timeout").unwrap_or(tc.span.clone());
            self.sink.warning(
                &span,
                format!("`on_timeout` of node `{n}` has no effect without `max_wait`"),
            );
        }
        let callback = match tc.get("callback") {
            None => Some(None),
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => {
                    let sub = Tc {
                        t,
                        span: v.span(),
                        owner: format!("`callback` of node `{n}`"),
                    };
                    self.offer(&sub).map(Some)
                }
                _ => {
                    self.wrong_type(
                        tc,
                        "callback",
                        v,
                        "a table { offer = true, after = 60, key = \"1\" }",
                    );
                    None
                }
            },
        };
        Some(Node::Queue(QueueNode {
            queue: queue?,
            priority: i32::try_from(priority?.unwrap_or(0)).ok()?,
            max_wait: max_wait?,
            on_timeout: on_timeout?,
            callback: callback?,
        }))
    }

    fn offer(&mut self, tc: &Tc<'_, 'i>) -> Option<CallbackOffer> {
        self.keys(tc, OFFER_KEYS);
        let offer = match tc.get("offer") {
            None => Some(true),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Some(*b),
                _ => {
                    self.wrong_type(tc, "offer", v, "true or false");
                    None
                }
            },
        };
        let after = self.seconds(tc, "after", 0, 3600, 60);
        let key = match self.string(tc, "key", "a single key \"1\"-\"9\", \"*\" or \"#\"") {
            None if tc.get("key").is_some() => None,
            None => Some('1'),
            Some(s) => {
                let mut chars = s.get_ref().chars();
                match (chars.next(), chars.next()) {
                    (Some('0'), None) => {
                        self.sink.error(
                            &s.span(),
                            "callback key `0` is reserved for zero-out to a human; use 1-9, * or #",
                        );
                        None
                    }
                    (Some(c), None) if is_digit_key(c) => Some(c),
                    _ => {
                        self.sink.error(
                            &s.span(),
                            format!(
                                "invalid callback key `{}` in {}: expected a single key 1-9, * or #",
                                s.get_ref(),
                                tc.owner
                            ),
                        );
                        None
                    }
                }
            }
        };
        Some(CallbackOffer {
            offer: offer?,
            after: after?,
            key: key?,
        })
    }

    fn callback(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, CALLBACK_KEYS);
        let queue = self.queue_name(tc, "queue");
        let confirm_prompt = self.prompts(tc, "confirm_prompt", false);
        let when_open = match tc.get("when_open") {
            None => Some(None),
            Some(_) => self
                .string(tc, "when_open", "the name of an hours node in this file")
                .map(|s| {
                    self.d.hours_refs.push((n.to_string(), s.clone()));
                    Some(s.into_inner())
                }),
        };
        Some(Node::Callback(CallbackNode {
            queue: queue?,
            confirm_prompt: confirm_prompt?,
            when_open: when_open?,
        }))
    }

    fn transfer(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, TRANSFER_KEYS);
        let target = self
            .req_string(tc, "target", "a SIP URI (sip:/sips:) or an extension number")
            .and_then(|s| {
                if valid_transfer_target(s.get_ref()) {
                    Some(s.into_inner())
                } else {
                    self.sink.error(
                        &s.span(),
                        format!(
                            "invalid transfer target `{}` in node `{n}`: expected a SIP URI like \"sip:partner@example.com\" (sip:/sips:) or an extension number like \"2001\"",
                            s.get_ref()
                        ),
                    );
                    None
                }
            });
        let prompt = self.prompts(tc, "prompt", false);
        let on_fail = self.target(tc, n, "on_fail", false, EdgeKind::Silent);
        Some(Node::Transfer(Transfer {
            target: target?,
            prompt: prompt?,
            on_fail: on_fail?,
        }))
    }

    fn hangup(&mut self, tc: &Tc<'_, 'i>, _n: &str) -> Option<Node> {
        self.keys(tc, HANGUP_KEYS);
        let prompt = self.prompts(tc, "prompt", false);
        Some(Node::Hangup(Hangup { prompt: prompt? }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(valid_node_name("hours-info_2"));
        assert!(!valid_node_name("main menu"));
        assert!(!valid_node_name(""));
        assert!(valid_var_name("account_1"));
        assert!(valid_var_name("_x"));
        assert!(!valid_var_name("Account"));
        assert!(!valid_var_name("1abc"));
        assert!(valid_number("+15550100"));
        assert!(valid_number("*"));
        assert!(valid_number("support"));
        assert!(!valid_number("10 00"));
        assert!(!valid_number(""));
    }

    #[test]
    fn transfer_targets() {
        assert!(valid_transfer_target("sip:partner@example.com"));
        assert!(valid_transfer_target("SIPS:alice@example.com:5061"));
        assert!(valid_transfer_target("2001"));
        assert!(valid_transfer_target("+15550100"));
        assert!(!valid_transfer_target("sip:"));
        assert!(!valid_transfer_target("sip:@x"));
        assert!(!valid_transfer_target("http://example.com"));
        assert!(!valid_transfer_target("sip:a b@example.com"));
        assert!(!valid_transfer_target("+"));
    }
}
