//! Process-wide counters, kept as plain atomics so the hot paths pay one
//! relaxed increment. [`render`] writes them in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        $( #[doc = $help] pub static $name: AtomicU64 = AtomicU64::new(0); )*
        fn render_counters(out: &mut String) {
            $(
                let n = stringify!($name).to_ascii_lowercase();
                let _ = writeln!(out, "# HELP ringback_{n} {}", $help);
                let _ = writeln!(out, "# TYPE ringback_{n} {}", if n.ends_with("_total") { "counter" } else { "gauge" });
                let _ = writeln!(out, "ringback_{n} {}", $name.load(Relaxed));
            )*
        }
    };
}

counters! {
    SIP_REQUESTS_IN_TOTAL: "SIP requests received.",
    SIP_RESPONSES_IN_TOTAL: "SIP responses received.",
    SIP_REQUESTS_OUT_TOTAL: "SIP requests sent (including retransmissions).",
    SIP_RESPONSES_OUT_TOTAL: "SIP responses sent (including retransmissions).",
    SIP_MALFORMED_TOTAL: "SIP messages that could not be parsed.",
    CALLS_ACTIVE: "Inbound calls in progress (each counted once, whatever legs it has).",
    SIP_TASKS_ACTIVE: "Tasks the SIP endpoint routes to: inbound calls, callback attempts, trunk registrations.",
    CALLS_ANSWERED_TOTAL: "Calls answered.",
    CALLS_REJECTED_TOTAL: "INVITEs rejected (no route, no codec, overload, no port).",
    DTMF_RFC4733_TOTAL: "Digits received as RFC 4733 telephone-events.",
    DTMF_SIP_INFO_TOTAL: "Digits received by SIP INFO.",
    DTMF_INBAND_TOTAL: "Digits detected as tones in the audio.",
    DIALPLAN_RELOADS_TOTAL: "Successful dialplan reloads.",
    SRTP_AUTH_FAILURES_TOTAL: "Packets on a secure stream dropped because their authentication tag was wrong (tampered, forged, or clear RTP where SRTP is due).",
    SRTP_REPLAYED_TOTAL: "SRTP packets dropped as replays (already received, or older than the replay window).",
    SRTP_MALFORMED_TOTAL: "Packets on a secure stream dropped because they cannot be SRTP at all (shorter than a header and tag, not RTP version 2).",
    DIALPLAN_RELOAD_FAILURES_TOTAL: "Rejected dialplan reloads (the old version kept serving).",
    WEB_CALLS_TOTAL: "Calls started from the public web page (`/call`).",
    WEB_CALLS_REFUSED_TOTAL: "Calls from the public web page that could not be started (unusable offer, no RTP port, no dialplan).",
    WEB_CALLS_RATE_LIMITED_TOTAL: "Public web call tokens refused because the address called too often.",
    BROWSER_LEGS_ANSWERED_TOTAL: "Calls agents answered in the agent page's browser phone.",
    RECORDINGS_STARTED_TOTAL: "Call recordings started (a bridged call whose queue or agent records).",
    RECORDINGS_FAILED_TOTAL: "Call recordings that ended failed (disk full, directory unusable, store error); the calls went on.",
    RECORDINGS_DROPPED_FRAMES_TOTAL: "Audio frames a recording lost because its writer fell behind (its queue was full); silence stands in for them.",
    ACD_OWNER: "Whether this node runs the queues' ACD (1) or hops its waiting callers to the node that does (0); 1 on a single node.",
    HOPS_TOTAL: "Waiting callers this node sent to the queues' owner on another node (one queue across nodes).",
    HOPS_IN_TOTAL: "Waiting callers other nodes sent to this node's queues.",
}

/// Whether this node holds the ACD lease (`ringback_acd_owner`).
pub fn set_acd_owner(mine: bool) {
    ACD_OWNER.store(u64::from(mine), Relaxed);
}

/// Counters with one label set each (SIP method/status, disposition). One
/// endpoint task does most of the counting, so the lock is uncontended.
static LABELED: Mutex<BTreeMap<(&'static str, String), u64>> = Mutex::new(BTreeMap::new());

fn bump(metric: &'static str, labels: String) {
    let mut m = LABELED.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry((metric, labels)).or_insert(0) += 1;
}

/// One `sip_messages_total` label set. Counted by key, formatted only
/// when scraped: the endpoint counts every message it receives and sends,
/// and a `format!` and a string-keyed map per message showed in its
/// profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SipKey {
    out: bool,
    method: &'static str,
    /// 0 for requests.
    status: u16,
}

static SIP_MESSAGES: Mutex<BTreeMap<SipKey, u64>> = Mutex::new(BTreeMap::new());

fn count_sip(out: bool, msg: &rsip::SipMessage) {
    let key = match msg {
        rsip::SipMessage::Request(r) => SipKey {
            out,
            method: method_name(&r.method),
            status: 0,
        },
        rsip::SipMessage::Response(r) => SipKey {
            out,
            method: ringback_sip::message::cseq(r).map_or("", |(_, m)| method_name(&m)),
            status: r.status_code.code(),
        },
    };
    let mut m = SIP_MESSAGES.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(key).or_insert(0) += 1;
}

/// A method's name without allocating.
fn method_name(m: &rsip::Method) -> &'static str {
    use rsip::Method as M;
    match m {
        M::Ack => "ACK",
        M::Bye => "BYE",
        M::Cancel => "CANCEL",
        M::Info => "INFO",
        M::Invite => "INVITE",
        M::Message => "MESSAGE",
        M::Notify => "NOTIFY",
        M::Options => "OPTIONS",
        M::PRack => "PRACK",
        M::Publish => "PUBLISH",
        M::Refer => "REFER",
        M::Register => "REGISTER",
        M::Subscribe => "SUBSCRIBE",
        M::Update => "UPDATE",
    }
}

fn render_sip_messages(out: &mut String) {
    let m = SIP_MESSAGES.lock().unwrap_or_else(|p| p.into_inner());
    if m.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP ringback_sip_messages_total SIP messages by direction, method and status."
    );
    let _ = writeln!(out, "# TYPE ringback_sip_messages_total counter");
    for (k, v) in m.iter() {
        let direction = if k.out { "out" } else { "in" };
        if k.status == 0 {
            let _ = writeln!(
                out,
                "ringback_sip_messages_total{{direction=\"{direction}\",method=\"{}\"}} {v}",
                k.method
            );
        } else {
            let _ = writeln!(
                out,
                "ringback_sip_messages_total{{direction=\"{direction}\",method=\"{}\",status=\"{}\"}} {v}",
                k.method, k.status
            );
        }
    }
}

/// Count an incoming message.
pub fn sip_in(msg: &rsip::SipMessage) {
    match msg {
        rsip::SipMessage::Request(_) => SIP_REQUESTS_IN_TOTAL.fetch_add(1, Relaxed),
        rsip::SipMessage::Response(_) => SIP_RESPONSES_IN_TOTAL.fetch_add(1, Relaxed),
    };
    count_sip(false, msg);
}

/// Count an outgoing message.
pub fn sip_out(msg: &rsip::SipMessage) {
    match msg {
        rsip::SipMessage::Request(_) => SIP_REQUESTS_OUT_TOTAL.fetch_add(1, Relaxed),
        rsip::SipMessage::Response(_) => SIP_RESPONSES_OUT_TOTAL.fetch_add(1, Relaxed),
    };
    count_sip(true, msg);
}

/// Count a finished call by disposition.
pub fn call_ended(disposition: &str) {
    bump("calls_total", format!("disposition=\"{disposition}\""));
}

/// Count an agent state the watchdog repaired (its call was gone), by the
/// state it was stuck in.
pub fn watchdog_repair(state: &str) {
    bump("watchdog_repairs_total", format!("state=\"{state}\""));
}

/// Count a dialplan lookup by name and outcome (`ok`, `failed`,
/// `breaker_open`).
pub fn count_lookup(lookup: &str, outcome: &str) {
    bump(
        "lookups_total",
        format!("lookup=\"{}\",outcome=\"{outcome}\"", label_value(lookup)),
    );
}

/// Count an unparseable message.
pub fn malformed() {
    SIP_MALFORMED_TOTAL.fetch_add(1, Relaxed);
}

/// Count a rejected INVITE, by reason.
pub fn rejected(why: &str) {
    CALLS_REJECTED_TOTAL.fetch_add(1, Relaxed);
    refused(why);
}

/// Count an INVITE refused before it was parsed (overload): one request
/// in, one `503` out, by reason.
pub fn refused_unparsed(why: &str) {
    SIP_REQUESTS_IN_TOTAL.fetch_add(1, Relaxed);
    SIP_RESPONSES_OUT_TOTAL.fetch_add(1, Relaxed);
    rejected(why);
}

/// Count a refused request or connection (REGISTER flood, TCP limit), by reason.
pub fn refused(why: &str) {
    bump("refusals_total", format!("reason=\"{why}\""));
}

/// Set the active-call and live-task gauges (the endpoint derives both
/// from its routing tables, so they return to 0 when nothing is up).
pub fn active_calls(calls: usize, tasks: usize) {
    CALLS_ACTIVE.store(calls as u64, Relaxed);
    SIP_TASKS_ACTIVE.store(tasks as u64, Relaxed);
}

/// Registration state of trunks with `register = true`, by trunk name.
static TRUNK_UP: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());

/// Set `ringback_trunk_up{trunk}`: 1 while the carrier holds our
/// registration, 0 otherwise.
pub fn trunk_up(trunk: &str, up: bool) {
    TRUNK_UP
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(trunk.to_string(), up);
}

/// How many trunks keep a registration task (each is one of
/// `ringback_sip_tasks_active` for the life of the process).
pub fn trunk_registrations() -> usize {
    TRUNK_UP.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Prometheus text exposition of every counter.
pub fn render() -> String {
    let mut out = String::new();
    render_counters(&mut out);
    let trunks: Vec<(String, f64)> = TRUNK_UP
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(name, up)| {
            (
                format!("trunk=\"{}\"", label_value(name)),
                f64::from(u8::from(*up)),
            )
        })
        .collect();
    if !trunks.is_empty() {
        gauge(
            &mut out,
            "trunk_up",
            "Whether a registering trunk is registered with its carrier (1) or not (0).",
            &trunks,
        );
    }
    render_sip_messages(&mut out);
    let m = LABELED.lock().unwrap_or_else(|p| p.into_inner());
    let mut last = "";
    for ((metric, labels), v) in m.iter() {
        if *metric != last {
            let help = match *metric {
                "refusals_total" => {
                    "Requests refused, by reason (routing, codec, admission control: max_calls, max_call_rate, media_load, media_lag, max_transactions, register_rate, tcp_connections)."
                }
                "lookups_total" => {
                    "Dialplan lookups by name and outcome (ok, failed: timeout, error or bad status; breaker_open: not sent)."
                }
                "watchdog_repairs_total" => {
                    "Agents the watchdog found ringing or on a call that no longer exists, and freed."
                }
                _ => "Finished calls by disposition.",
            };
            let _ = writeln!(out, "# HELP ringback_{metric} {help}");
            let _ = writeln!(out, "# TYPE ringback_{metric} counter");
            last = metric;
        }
        let _ = writeln!(out, "ringback_{metric}{{{labels}}} {v}");
    }
    out
}

/// `node="<id>"`, rendered once at start-up (see [`set_node`]).
static NODE_LABEL: OnceLock<String> = OnceLock::new();

/// Label every sample with this node's id (`node="node-a"`): set at
/// start-up when `callbacks.node_id` is configured. Not for the default id:
/// it changes with every process, and a label that changes at each restart
/// would split every series in two.
pub fn set_node(node: &str) {
    let _ = NODE_LABEL.set(format!("node=\"{}\"", label_value(node)));
}

/// A rendered exposition with the node label (if any) added to every
/// sample: one pass per scrape, nothing per counted message.
pub fn with_node_label(text: String) -> String {
    match NODE_LABEL.get() {
        Some(label) => add_label(&text, label),
        None => text,
    }
}

/// Every sample line of `text` with `label` (`name="value"`) first among
/// its labels; comments as they are.
fn add_label(text: &str, label: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.lines().count() * (label.len() + 3));
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else {
            // The name ends at the first `{` (labels follow) or space.
            match line.find(['{', ' ']) {
                Some(i) if line[i..].starts_with('{') => {
                    out.push_str(&line[..=i]);
                    out.push_str(label);
                    if !line[i + 1..].starts_with('}') {
                        out.push(',');
                    }
                    out.push_str(&line[i + 1..]);
                }
                Some(i) => {
                    out.push_str(&line[..i]);
                    out.push('{');
                    out.push_str(label);
                    out.push('}');
                    out.push_str(&line[i..]);
                }
                None => out.push_str(line),
            }
        }
        out.push('\n');
    }
    out
}

/// A label value with backslashes, quotes and newlines escaped (Prometheus
/// text format).
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Write one gauge with a HELP/TYPE header and labelled samples.
pub fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP ringback_{name} {help}");
    let _ = writeln!(out, "# TYPE ringback_{name} gauge");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "ringback_{name} {v}");
        } else {
            let _ = writeln!(out, "ringback_{name}{{{labels}}} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::add_label;

    #[test]
    fn the_node_label_goes_on_every_sample_and_nowhere_else() {
        let text = "# HELP ringback_calls_active Calls.\n# TYPE ringback_calls_active gauge\n\
                    ringback_calls_active 3\n\
                    ringback_calls_total{disposition=\"completed\"} 7\n\
                    ringback_odd{} 1\n";
        assert_eq!(
            add_label(text, "node=\"a\""),
            "# HELP ringback_calls_active Calls.\n# TYPE ringback_calls_active gauge\n\
             ringback_calls_active{node=\"a\"} 3\n\
             ringback_calls_total{node=\"a\",disposition=\"completed\"} 7\n\
             ringback_odd{node=\"a\"} 1\n"
        );
    }
}
