//! Semantic checks on a parsed [`Draft`]: references, prompts, queues, the
//! zero-out rule, reachability and unbounded loops.
//!
//! These need the whole file (all node names) and the server context, which
//! is why they run after the structural parse.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use chrono_tz::Tz;

use crate::diag::Sink;
use crate::model::*;
use crate::parse::{Draft, EdgeKind, Ref};
use crate::suggest::did_you_mean;

/// Runs every semantic check; returns the plan if the file has no errors.
pub(crate) fn check(
    sink: &mut Sink<'_>,
    d: Draft,
    ctx: &CheckContext,
    file: &Path,
    version: String,
) -> Option<Dialplan> {
    let names: Vec<&str> = d.nodes.keys().map(String::as_str).collect();

    // start
    let start_ok = match &d.start {
        Some(s) if d.nodes.contains_key(s.get_ref()) => true,
        Some(s) => {
            let hint = did_you_mean(s.get_ref(), names.iter().copied());
            sink.error(
                &s.span(),
                format!("start node `{}` does not exist{hint}", s.get_ref()),
            );
            false
        }
        None => false,
    };

    // references between nodes
    let mut dangling = false;
    for r in &d.refs {
        if !d.nodes.contains_key(&r.target) {
            dangling = true;
            let hint = did_you_mean(&r.target, names.iter().copied());
            sink.error(
                &r.span,
                format!(
                    "unknown node `{}` in {} of node `{}`{hint}",
                    r.target, r.field, r.from
                ),
            );
        }
    }

    // prompts and queues
    if let Some(prompts) = &ctx.prompts {
        for p in &d.prompt_refs {
            if !prompts.contains(p.get_ref()) {
                let hint = did_you_mean(p.get_ref(), prompts.iter().map(String::as_str));
                sink.error(
                    &p.span(),
                    format!(
                        "prompt `{}` not found (no prompts/{}.wav){hint}",
                        p.get_ref(),
                        p.get_ref()
                    ),
                );
            }
        }
    }
    if let Some(queues) = &ctx.queues {
        let mut known: Vec<&str> = queues.iter().map(String::as_str).collect();
        known.sort_unstable();
        let unknown_queue = |sink: &mut Sink<'_>, span: &std::ops::Range<usize>, q: &str| {
            let hint = did_you_mean(q, known.iter().copied());
            sink.error(
                span,
                format!(
                    "queue `{q}` is not defined in ringback.toml{hint}; known queues: {}",
                    known.join(", ")
                ),
            );
        };
        for q in &d.queue_refs {
            if !queues.contains(q.get_ref()) {
                unknown_queue(sink, &q.span(), q.get_ref());
            }
        }
        if let Some(op) = &d.operator {
            if !op.get_ref().trim().is_empty() && !queues.contains(op.get_ref()) {
                unknown_queue(sink, &op.span(), op.get_ref());
            }
        }
    }

    check_dips(sink, &d, ctx);
    check_when_open(sink, &d);

    // zero-out rule
    let operator = d
        .operator
        .as_ref()
        .map(|o| o.get_ref().clone())
        .filter(|o| !o.trim().is_empty())
        .or_else(|| ctx.global_operator.clone());
    match &operator {
        // Without a [dialplan] table that is already reported.
        None if d.dialplan_span.is_empty() => {}
        None => sink.error(
            &d.dialplan_span,
            "no operator route: set `operator = \"<queue>\"` in [dialplan] or a global operator queue in ringback.toml; 0 in every menu and every default fallback goes there",
        ),
        Some(op) => {
            for (menu, span, target) in &d.zero_options {
                let bad = match d.nodes.get(target).map(|n| n.node.as_ref()) {
                    // unknown node (reported above) or a node with its own errors
                    None | Some(None) => false,
                    Some(Some(Node::Queue(q))) => &q.queue != op,
                    Some(Some(_)) => true,
                };
                if bad {
                    sink.error(
                        span,
                        format!(
                            "digit 0 is reserved for zero-out to a human (operator queue `{op}`); menu `{menu}` binds it to `{target}`. Remove the option (0 always reaches the operator) or point it at a queue node for `{op}`"
                        ),
                    );
                }
            }
            for (node, span) in &d.wait_without_timeout {
                let is_op = matches!(
                    d.nodes.get(node).and_then(|n| n.node.as_ref()),
                    Some(Node::Queue(q)) if &q.queue == op
                );
                if is_op {
                    sink.warning(
                        span,
                        format!(
                            "`max_wait` of node `{node}` has no `on_timeout` and `{node}` is the operator queue: the caller is hung up when it expires; add `on_timeout`"
                        ),
                    );
                }
            }
        }
    }

    // Prompts exempt from zero-out are allowed, but listed every time.
    for (node, span) in &d.zero_out_exempt {
        sink.warning(
            span,
            format!(
                "play node `{node}` has `zero_out = false`: a caller pressing 0 while it plays is not put through to a human until it ends"
            ),
        );
    }

    // reachability (meaningless while references dangle: fix those first)
    if start_ok && !dangling {
        if let Some(start) = &d.start {
            let reachable = reachable(&d.refs, start.get_ref());
            for (name, node) in &d.nodes {
                if !reachable.contains(name.as_str()) {
                    sink.warning(
                        &node.span,
                        format!(
                            "node `{name}` is unreachable from start node `{}`",
                            start.get_ref()
                        ),
                    );
                }
            }
        }
    }

    // loops a caller cannot leave
    let kinds: HashMap<&str, &'static str> = d
        .nodes
        .iter()
        .filter_map(|(n, dn)| dn.node.as_ref().map(|x| (n.as_str(), x.type_name())))
        .collect();
    for cycle in silent_cycles(&d.refs) {
        let closing = &cycle.last_edge;
        let path = cycle
            .nodes
            .iter()
            .chain(std::iter::once(&cycle.nodes[0]))
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(" → ");
        let spins = cycle
            .nodes
            .iter()
            .all(|n| matches!(kinds.get(n.as_str()), Some(&("set" | "goto" | "hours"))));
        let msg = if spins {
            format!(
                "loop that never reaches a caller-facing step: {path}; the call would spin forever. Put a menu, gather or play node in it, or leave the loop"
            )
        } else {
            format!(
                "a caller who presses nothing would loop forever: {path}; let one of these fall back to the operator or hang up"
            )
        };
        sink.error(&closing.span, msg);
    }

    if sink.has_errors() {
        return None;
    }
    let nodes: HashMap<String, Node> = d
        .nodes
        .into_iter()
        .filter_map(|(k, v)| v.node.map(|n| (k, n)))
        .collect();
    let name = d.name.unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Some(Dialplan {
        file: file.to_path_buf(),
        name,
        numbers: d.numbers.into_iter().map(|n| n.into_inner()).collect(),
        start: d.start?.into_inner(),
        operator: d.operator.map(|o| o.into_inner()),
        timezone: d.timezone.unwrap_or(Tz::UTC),
        language: d.language,
        type_ahead: d.type_ahead.unwrap_or(true),
        nodes,
        version,
    })
}

fn reachable<'a>(refs: &'a [Ref], start: &'a str) -> BTreeSet<&'a str> {
    let mut adj: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in refs {
        adj.entry(r.from.as_str())
            .or_default()
            .push(r.target.as_str());
    }
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for &t in adj.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(t) {
                queue.push_back(t);
            }
        }
    }
    seen
}

struct Cycle<'a> {
    nodes: Vec<String>,
    last_edge: &'a Ref,
}

/// Every strongly connected component of the graph of *silent* edges (taken
/// without caller input) is a loop a silent caller can never leave; one
/// concrete cycle per component is reported, found by BFS from its
/// alphabetically first node so the message is stable.
fn silent_cycles(refs: &[Ref]) -> Vec<Cycle<'_>> {
    let mut adj: BTreeMap<&str, Vec<&Ref>> = BTreeMap::new();
    for r in refs.iter().filter(|r| r.kind == EdgeKind::Silent) {
        adj.entry(r.from.as_str()).or_default().push(r);
    }
    let sccs = tarjan(&adj);
    let mut out = Vec::new();
    for scc in sccs {
        let first = scc.iter().min().copied();
        let Some(first) = first else { continue };
        let self_loop = adj
            .get(first)
            .is_some_and(|es| es.iter().any(|e| e.target == first));
        if scc.len() == 1 && !self_loop {
            continue;
        }
        // BFS within the component from `first` back to `first`.
        let mut prev: HashMap<&str, &Ref> = HashMap::new();
        let mut queue = VecDeque::from([first]);
        let mut closing: Option<&Ref> = None;
        'bfs: while let Some(n) = queue.pop_front() {
            for e in adj.get(n).map(Vec::as_slice).unwrap_or(&[]) {
                let t = e.target.as_str();
                if t == first {
                    closing = Some(e);
                    break 'bfs;
                }
                if scc.contains(&t) && !prev.contains_key(t) {
                    prev.insert(t, e);
                    queue.push_back(t);
                }
            }
        }
        let Some(closing) = closing else { continue };
        let mut nodes = vec![closing.from.clone()];
        let mut cur = closing.from.as_str();
        while cur != first {
            let Some(e) = prev.get(cur) else { break };
            cur = e.from.as_str();
            nodes.push(cur.to_string());
        }
        nodes.reverse();
        out.push(Cycle {
            nodes,
            last_edge: closing,
        });
    }
    out
}

/// Tarjan's strongly connected components (iterative, so a huge plan cannot
/// overflow the stack).
fn tarjan<'a>(adj: &BTreeMap<&'a str, Vec<&'a Ref>>) -> Vec<Vec<&'a str>> {
    let mut all: BTreeSet<&str> = adj.keys().copied().collect();
    for es in adj.values() {
        for e in es {
            all.insert(e.target.as_str());
        }
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut low: HashMap<&str, usize> = HashMap::new();
    let mut on_stack: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut next = 0usize;
    let mut out = Vec::new();
    for &root in &all {
        if index.contains_key(root) {
            continue;
        }
        // (node, next edge position)
        let mut work: Vec<(&str, usize)> = vec![(root, 0)];
        index.insert(root, next);
        low.insert(root, next);
        next += 1;
        stack.push(root);
        on_stack.insert(root);
        while let Some(&mut (v, ref mut pos)) = work.last_mut() {
            let edges = adj.get(v).map(Vec::as_slice).unwrap_or(&[]);
            if *pos < edges.len() {
                let w = edges[*pos].target.as_str();
                *pos += 1;
                if !index.contains_key(w) {
                    index.insert(w, next);
                    low.insert(w, next);
                    next += 1;
                    stack.push(w);
                    on_stack.insert(w);
                    work.push((w, 0));
                } else if on_stack.contains(w) {
                    let lw = index[w];
                    let lv = low[v];
                    low.insert(v, lv.min(lw));
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    let lv = low[v];
                    let lp = low[parent];
                    low.insert(parent, lp.min(lv));
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack.remove(w);
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    out.push(comp);
                }
            }
        }
    }
    out
}

/// Lookup nodes name a configured lookup; `say` formats have their number
/// prompts; a spoken variable is set somewhere (else a warning: it may come
/// from another plan through a transfer).
fn check_dips(sink: &mut Sink<'_>, d: &Draft, ctx: &CheckContext) {
    if let Some(lookups) = &ctx.lookups {
        let mut known: Vec<&str> = lookups.iter().map(String::as_str).collect();
        known.sort_unstable();
        for l in &d.lookup_refs {
            if !lookups.contains(l.get_ref()) {
                let hint = did_you_mean(l.get_ref(), known.iter().copied());
                let list = if known.is_empty() {
                    "none is defined".to_string()
                } else {
                    format!("known lookups: {}", known.join(", "))
                };
                sink.error(
                    &l.span(),
                    format!(
                        "lookup `{}` is not defined in ringback.toml (no [lookups.{}]){hint}; {list}",
                        l.get_ref(),
                        l.get_ref()
                    ),
                );
            }
        }
    }
    if let Some(prompts) = &ctx.prompts {
        for (span, format) in &d.format_refs {
            let missing: Vec<String> = format
                .prompts()
                .into_iter()
                .filter(|p| !prompts.contains(p))
                .collect();
            if let Some(first) = missing.first() {
                sink.error(
                    span,
                    format!(
                        "say format `{format}` needs {} prompt(s) that are missing, e.g. prompts/{first}.wav (the shipped prompts/ has them all)",
                        missing.len()
                    ),
                );
            }
        }
    }
    for v in &d.var_uses {
        if !d.var_defs.contains(v.get_ref()) {
            sink.warning(
                &v.span(),
                format!(
                    "variable `{}` is not set by any gather, set or lookup node of this file (it is skipped when unset)",
                    v.get_ref()
                ),
            );
        }
    }
}

/// `when_open` of a callback node names an `hours` node of the file.
fn check_when_open(sink: &mut Sink<'_>, d: &Draft) {
    for (node, target) in &d.hours_refs {
        let hours = d
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n.node, Some(Node::Hours(_))))
            .map(|(name, _)| name.as_str());
        match d.nodes.get(target.get_ref()).map(|n| n.node.as_ref()) {
            None => {
                let hint = did_you_mean(target.get_ref(), hours);
                sink.error(
                    &target.span(),
                    format!(
                        "unknown node `{}` in when_open of node `{node}`{hint}; it must name an hours node",
                        target.get_ref()
                    ),
                );
            }
            Some(Some(other)) if !matches!(other, Node::Hours(_)) => {
                sink.error(
                    &target.span(),
                    format!(
                        "when_open of node `{node}` names `{}`, a {} node; it must name an hours node (whose next opening the callback waits for)",
                        target.get_ref(),
                        other.type_name()
                    ),
                );
            }
            // An hours node, or a node with errors of its own.
            Some(_) => {}
        }
    }
}
