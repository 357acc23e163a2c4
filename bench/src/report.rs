//! `bench-report RESULTS_DIR README`: turn `ivr-*.json`, `callrate.json`,
//! `callback-*.json`, `webrtc-*.json`, `phone-*.json` (with `phone-floor.json`)
//! and `dialplan-ops.json` into Markdown tables and put
//! them between the `<!-- results:begin -->` / `<!-- results:end -->`
//! markers of the README (appended if missing).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

const BEGIN: &str = "<!-- results:begin -->";
const END: &str = "<!-- results:end -->";

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

fn s(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    match cur {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn sockets(v: &Value) -> String {
    match s(v, &["params", "sockets"]).as_str() {
        "Shared" => format!("shared:{}", s(v, &["params", "shared_sockets"])),
        _ => "per-call".into(),
    }
}

/// Every `PREFIX*.json` in `dir` that parses.
fn read_runs(dir: &str, prefix: &str) -> Vec<Value> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(prefix) && n.ends_with(".json")
                })
                .filter_map(|e| read_json(&e.path()))
                .collect()
        })
        .unwrap_or_default()
}

fn read_json(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// `webrtc-*.json` (`webrtc-load`): one row per number of browser legs.
fn webrtc_table(md: &mut String, dir: &str) {
    let mut runs: Vec<Value> = read_runs(dir, "webrtc-");
    if runs.is_empty() {
        return;
    }
    runs.sort_by(|a, b| f(a, &["params", "legs"]).total_cmp(&f(b, &["params", "legs"])));
    let _ = writeln!(md, "### Browser legs (`webrtc-load`, `bench/webrtc.sh`)\n");
    let _ = writeln!(
        md,
        "| legs | up | failed | set-up p50 / p99 (token → keys) | server CPU per set-up | packets vs nominal | late (> 40 ms) | jitter p50 / p99 / max | SRTP auth failures (us / server) | keys seen by server / sent | server CPU (idle) | **legs per core** (above idle) | RSS/leg | generator CPU (its packets vs nominal) | other procs CPU |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for v in &runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} / {:.1} ms | {:.1} ms | {:.3} % | {} | {:.3} / {:.3} / {:.2} ms | {} / {:.0} | {:.0} / {} | {:.1} % ({:.1} %) | **{:.0}** ({:.0}) | {:.0} KiB | {:.0} % ({:.2} %) | {:.0} % |",
            s(v, &["params", "legs"]),
            s(v, &["legs", "measured"]),
            s(v, &["legs", "failed"]),
            f(v, &["setup_ms", "token_to_keys", "p50"]),
            f(v, &["setup_ms", "token_to_keys", "p99"]),
            f(v, &["server", "cpu_ms_per_setup_estimate"]),
            f(v, &["received", "received_pct"]),
            s(v, &["received", "late_over_40ms"]),
            f(v, &["received", "jitter_ms", "p50"]),
            f(v, &["received", "jitter_ms", "p99"]),
            f(v, &["received", "jitter_ms", "max"]),
            s(v, &["received", "srtp_auth_failures"]),
            f(v, &["server", "srtp_auth_failures_delta"]),
            f(v, &["server", "dtmf_rfc4733_delta"]),
            s(v, &["sent", "keys"]),
            f(v, &["server", "cpu_pct_window"]),
            f(v, &["server", "cpu_pct_idle"]),
            f(v, &["server", "browser_legs_per_core"]),
            f(v, &["server", "browser_legs_per_core_above_idle"]),
            f(v, &["server", "rss_per_leg_kib"]),
            f(v, &["generator", "cpu_pct"]),
            f(v, &["sent", "in_window_pct_of_nominal"]),
            f(v, &["generator", "other_procs_cpu_pct"]),
        );
    }
    let _ = writeln!(
        md,
        "\nWindow {:.0} s; set-ups at {} per second. Each leg: token, WebSocket, offer/answer, STUN check, DTLS 1.2 handshake (the generator is the client), then 20 ms PCMU in SRTP both ways, one RFC 4733 key and a consent check every 5 s. Legs per core = measured legs / (server CPU in the window / 100 %). Server CPU per set-up = (CPU during the ramp − idle − the media of the legs already up) / legs.\n",
        f(&runs[0], &["params", "window_s"]),
        s(&runs[0], &["params", "rate_per_s"]),
    );
}

/// `phone-*.json` (`phone-load`, `bench/phone.sh`): one row per level of
/// talking callers, then issue 16's targets beside what was measured.
fn phone_tables(md: &mut String, dir: &str) {
    let mut runs: Vec<Value> = read_runs(dir, "phone-")
        .into_iter()
        .filter(|v| s(v, &["benchmark"]) == "phone-like-callers")
        .collect();
    if runs.is_empty() {
        return;
    }
    runs.sort_by(|a, b| f(a, &["params", "callers"]).total_cmp(&f(b, &["params", "callers"])));
    let _ = writeln!(
        md,
        "### Talking callers (`phone-load`, `bench/phone.sh`, issue 16)\n"
    );
    let _ = writeln!(
        md,
        "| talking callers | calls placed (failed) | server → callers | callers → server (server's count) | server → agents / agents → server | jitter p50 / p99 / max (relayed p99) | key → action p50 / p99 (keys) | zero-out → agent INVITE p50 / p99 | server CPU | CPU per packet (packets/s) | **× floor** (sendmmsg floor; with timer wake-ups; per-call-socket floor) | RSS/call | generator CPU (its packets vs nominal) | other procs CPU |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for v in &runs {
        let _ = writeln!(
            md,
            "| {} | {} ({}) | {} | {} | {} / {} | {:.3} / {:.3} / {:.2} ms ({:.2} ms) | {:.1} / {:.1} ms ({}) | {} | {:.0} % | {:.2} µs ({:.0}) | **{:.2}** ({:.2}; {:.2}; {:.2}) | {:.1} KiB | {:.0} % ({:.2} %) | {:.0} % |",
            s(v, &["params", "callers"]),
            s(v, &["calls", "placed"]),
            f(v, &["calls", "failed"]) + f(v, &["agents", "failed"]),
            pct3(f(v, &["rtp", "callers", "received_pct"])),
            pct3(server_received_pct(v)),
            pct3(f(v, &["rtp", "agents", "received_pct"])),
            pct3(f(v, &["rtp", "agents", "sent_pct"])),
            f(v, &["rtp", "jitter_ms", "p50"]),
            f(v, &["rtp", "jitter_ms", "p99"]),
            f(v, &["rtp", "jitter_ms", "max"]),
            f(v, &["rtp", "jitter_relayed_ms", "p99"]),
            f(v, &["keys", "window", "to_action_ms", "p50"]),
            f(v, &["keys", "window", "to_action_ms", "p99"]),
            s(v, &["keys", "window", "pressed"]),
            p50_p99(v, &["keys", "window", "zero_out_to_agent_invite_ms"]),
            f(v, &["server", "cpu_pct_window"]),
            f(v, &["server", "cpu_us_per_packet"]),
            f(v, &["server", "packets_per_s"]),
            f(v, &["server", "floor", "ratio_to_floor"]),
            f(v, &["server", "floor", "ratio_to_sendmmsg_floor"]),
            f(v, &["server", "floor", "ratio_to_floor_with_wakeups"]),
            f(v, &["server", "floor", "ratio_to_per_call_floor"]),
            f(v, &["server", "rss_per_call_kib"]),
            f(v, &["generator", "cpu_pct_window"]),
            f(v, &["rtp", "callers", "sent_pct"]),
            f(v, &["machine_load", "others_cpu_pct_window"]),
        );
    }
    let first = &runs[0];
    let floor = read_json(&Path::new(dir).join("phone-floor.json")).unwrap_or(Value::Null);
    let _ = writeln!(
        md,
        "\nWindow {:.0} s; mix (% of callers) browse {:.0} / listen {:.0} / agent {:.0} / early {:.0}; calls placed at {} per second. Packets are for the streams that sent all window long (server → callers: what the callers received against 50/s; callers → server: what ringback counted per call against what the caller sent, for the calls the callers hung up; agents: their legs against 50/s, – when no leg lasted the window). Jitter is |inter-arrival − 20 ms| of the packets ringback's media clock sends (prompts, music); relayed: what a caller talking to an agent, or the agent, hears through ringback's relay (the other phone's timing included). Key → action: the key's first RFC 4733 packet leaving → the first packet of the prompt that answers it (marker bit; the prompt is identified by its first bytes) or the agent's INVITE, whichever comes first. CPU per packet = server CPU seconds / (packets it sent + received) in the window; × floor = that CPU against the floor's cost of the same packets ({}).\n",
        f(first, &["params", "window_s"]),
        f(first, &["params", "mix_pct", "browse"]),
        f(first, &["params", "mix_pct", "listen"]),
        f(first, &["params", "mix_pct", "agent"]),
        f(first, &["params", "mix_pct", "early"]),
        s(first, &["params", "rate_cps"]),
        if floor.is_null() {
            "no `phone-floor.json`".to_string()
        } else {
            format!(
                "`udp-floor` in the same run: {:.2} µs per packet sent from per-call sockets, {:.2} µs received in batches, {:.2} µs received as a port per call must (one `recvmmsg` per packet, 1 ms polls); {:.2} µs sent with `sendmmsg`; a 1 ms timer wake-up {:.2} µs, late p99 {:.0} µs",
                f(&floor, &["sendto", "tx_us_per_packet"]),
                f(&floor, &["sendto", "rx_us_per_packet"]),
                f(&floor, &["percall", "rx_us_per_packet"]),
                f(&floor, &["sendmmsg", "tx_us_per_packet"]),
                f(&floor, &["timer", "cpu_us_per_wakeup"]),
                f(&floor, &["timer", "late_us", "p99"]),
            )
        }
    );
    phone_targets(md, &runs);
}

/// "p50 / p99 ms" of a summary, or "–" where it has no samples.
fn p50_p99(v: &Value, path: &[&str]) -> String {
    let at = |k: &str| {
        let mut p = path.to_vec();
        p.push(k);
        f(v, &p)
    };
    if at("n") > 0.0 {
        format!("{:.1} / {:.1} ms", at("p50"), at("p99"))
    } else {
        "–".into()
    }
}

/// A percentage with three decimals, or "–" where nothing was measured.
fn pct3(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.3} %")
    }
}

/// What ringback received of what the phones sent: its per-call counters
/// (`call ended` lines), else its `ringback_rtp_packets_received_total`.
fn server_received_pct(v: &Value) -> f64 {
    let per_call = f(v, &["rtp", "server_received_per_call", "received_pct"]);
    if per_call.is_nan() {
        f(v, &["rtp", "server_received_metric_window", "received_pct"])
    } else {
        per_call
    }
}

/// A level is clean at ≥ 99.9 % of packets both ways and no failed call.
/// Both ways needs the server's own count; agents count where a leg lasted
/// the window.
fn phone_clean(v: &Value) -> bool {
    let to_phones = [
        f(v, &["rtp", "callers", "received_pct"]),
        f(v, &["rtp", "agents", "received_pct"]),
    ];
    let to_server = server_received_pct(v);
    let failed = f(v, &["calls", "failed"]) + f(v, &["agents", "failed"]);
    to_phones.iter().all(|p| p.is_nan() || *p >= 99.9) && to_server >= 99.9 && failed == 0.0
}

/// Issue 16's targets for talking callers, each beside its figure.
fn phone_targets(md: &mut String, runs: &[Value]) {
    let at = |n: f64| runs.iter().find(|v| f(v, &["params", "callers"]) == n);
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    let mut rows: Vec<(String, String, String)> = Vec::new();
    rows.push(match at(1000.0) {
        Some(v) => {
            let r = f(v, &["server", "floor", "ratio_to_floor"]);
            (
                "server CPU ≤ 1.3× the floor at 1,000 talking callers".into(),
                format!(
                    "{r:.2}× ({:.0} % CPU against a floor of {:.0} % for the same packets)",
                    f(v, &["server", "cpu_pct_window"]),
                    f(v, &["server", "floor", "floor_cpu_pct"])
                ),
                verdict(r <= 1.3).into(),
            )
        }
        None => (
            "server CPU ≤ 1.3× the floor at 1,000 talking callers".into(),
            "not measured".into(),
            "-".into(),
        ),
    });
    let best = runs
        .iter()
        .filter(|v| phone_clean(v))
        .map(|v| f(v, &["params", "callers"]))
        .fold(0.0, f64::max);
    rows.push((
        "≥ 2,500 clean talking callers (≥ 99.9 % of packets both ways, 0 failed)".into(),
        if best > 0.0 {
            format!("largest clean level measured: {best:.0}")
        } else {
            "no clean level measured".into()
        },
        verdict(best >= 2500.0).into(),
    ));
    rows.push(match at(2500.0) {
        Some(v) => {
            let p = f(v, &["keys", "window", "to_action_ms", "p99"]);
            (
                "key → action p99 < 40 ms at 2,500".into(),
                format!(
                    "{p:.1} ms ({} keys in the window)",
                    s(v, &["keys", "window", "pressed"])
                ),
                verdict(p < 40.0).into(),
            )
        }
        None => (
            "key → action p99 < 40 ms at 2,500".into(),
            "not measured".into(),
            "-".into(),
        ),
    });
    rows.push(match at(1000.0) {
        Some(v) => {
            let p = f(v, &["rtp", "jitter_ms", "p99"]);
            (
                "jitter p99 < 2 ms at 1,000".into(),
                format!("{p:.3} ms"),
                verdict(p < 2.0).into(),
            )
        }
        None => (
            "jitter p99 < 2 ms at 1,000".into(),
            "not measured".into(),
            "-".into(),
        ),
    });
    let _ = writeln!(md, "| target (issue 16) | measured | |\n|---|---|---|");
    for (t, m, ok) in rows {
        let _ = writeln!(md, "| {t} | {m} | {ok} |");
    }
    let _ = writeln!(md);
}

/// `callback-*.json`: one row per store.
fn callback_tables(md: &mut String, dir: &str) {
    let mut runs: Vec<Value> = read_runs(dir, "callback-");
    if runs.is_empty() {
        return;
    }
    // SQLite first, then PostgreSQL, then anything else by name.
    runs.sort_by_key(|v| {
        let st = s(v, &["store"]);
        let rank = match st.as_str() {
            "sqlite" => 0,
            "postgres" => 1,
            _ => 2,
        };
        (rank, st)
    });
    let _ = writeln!(md, "### Callback dispatch (`callback-dispatch`)\n");
    let _ = writeln!(
        md,
        "| store | pending callbacks (start → end) | samples | p50 | p90 | p99 | max | p99 < 10 ms | unpause answered (p50) | server CPU | fill (web requests) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    for v in &runs {
        let met = if v["target_met"].as_bool() == Some(true) {
            "met"
        } else {
            "**not met**"
        };
        let _ = writeln!(
            md,
            "| {} | {:.0} → {:.0} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {met} | {:.2} ms | {:.0} % | {:.0}/s |",
            s(v, &["store"]),
            f(v, &["pending", "start"]),
            f(v, &["pending", "end"]),
            s(v, &["latency_ms", "n"]),
            f(v, &["latency_ms", "p50"]),
            f(v, &["latency_ms", "p90"]),
            f(v, &["latency_ms", "p99"]),
            f(v, &["latency_ms", "max"]),
            f(v, &["api_unpause_answer_ms", "p50"]),
            f(v, &["server_cpu_pct_during_samples"]),
            f(v, &["fill", "per_second"]),
        );
    }
    let _ = writeln!(
        md,
        "\nLatency: `POST /api/v1/agents/alice/unpause` (agent token) written → the INVITE's kernel receive timestamp at the agent's socket; the agent then pauses while ringing (CANCEL, 487, ACK) so every sample starts from the same state. Server CPU: during the samples, 100 % = one core. {}\n",
        runs.first()
            .map(|v| s(v, &["label"]))
            .filter(|l| !l.is_empty() && l != "-")
            .map(|l| format!("Build: {l}."))
            .unwrap_or_default()
    );
}

/// `dialplan-ops.json`.
fn dialplan_table(md: &mut String, v: &Value) {
    let _ = writeln!(
        md,
        "### Dialplan operations (`dialplan-ops`, {} dialplan files, {} prompts)\n",
        s(v, &["dialplans", "files"]),
        s(v, &["dialplans", "prompts"]),
    );
    let _ = writeln!(
        md,
        "| operation | runs | median | p90 | p99 | max | target |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
    let target = |value: f64, limit: f64| {
        if value < limit {
            format!("< {limit:.0} ms: met")
        } else {
            format!("< {limit:.0} ms: **not met**")
        }
    };
    let reload_api = f(v, &["reload", "api", "server_took_ms", "p99"]);
    let reload_rt = f(v, &["reload", "api", "round_trip_ms", "p99"]);
    let reload_hup = f(v, &["reload", "sighup", "server_took_ms", "p99"]);
    let start_opt = f(
        v,
        &[
            "startup",
            "existing_data_dir",
            "spawn_to_options_answered_ms",
            "p50",
        ],
    );
    let start_srv = f(
        v,
        &["startup", "existing_data_dir", "server_startup_ms", "p50"],
    );
    let start_fresh = f(
        v,
        &[
            "startup",
            "fresh_data_dir",
            "spawn_to_options_answered_ms",
            "p50",
        ],
    );
    let rows: [(&str, &[&str], &[&str], String); 10] = [
        (
            "`ringback check` of all files (spawn → exit)",
            &["check", "files_ms"],
            &["check", "runs"],
            "-".into(),
        ),
        (
            "`ringback check` of the 3 shipped files (spawn → exit)",
            &["check", "shipped_3_files_ms"],
            &["check", "runs"],
            "-".into(),
        ),
        (
            "reload via API: server's `took_ms`",
            &["reload", "api", "server_took_ms"],
            &["reload", "api", "runs"],
            format!("p99 {}", target(reload_api, 50.0)),
        ),
        (
            "reload via API: request round trip",
            &["reload", "api", "round_trip_ms"],
            &["reload", "api", "runs"],
            format!("p99 {}", target(reload_rt, 50.0)),
        ),
        (
            "reload via SIGHUP: server's `took_ms`",
            &["reload", "sighup", "server_took_ms"],
            &["reload", "sighup", "runs"],
            format!("p99 {}", target(reload_hup, 50.0)),
        ),
        (
            "reload via SIGHUP: signal → log line",
            &["reload", "sighup", "kill_to_log_line_ms"],
            &["reload", "sighup", "runs"],
            "-".into(),
        ),
        (
            "start-up (existing data dir): spawn → OPTIONS answered",
            &[
                "startup",
                "existing_data_dir",
                "spawn_to_options_answered_ms",
            ],
            &["startup", "runs"],
            format!("median {}", target(start_opt, 100.0)),
        ),
        (
            "start-up (existing data dir): server's `startup_ms`",
            &["startup", "existing_data_dir", "server_startup_ms"],
            &["startup", "runs"],
            format!("median {}", target(start_srv, 100.0)),
        ),
        (
            "start-up (fresh data dir): spawn → OPTIONS answered",
            &["startup", "fresh_data_dir", "spawn_to_options_answered_ms"],
            &["startup", "runs"],
            format!("median {}", target(start_fresh, 100.0)),
        ),
        (
            "start-up (fresh data dir): server's `startup_ms`",
            &["startup", "fresh_data_dir", "server_startup_ms"],
            &["startup", "runs"],
            "-".into(),
        ),
    ];
    for (name, path, runs, tgt) in rows {
        let at = |k: &str| {
            let mut p: Vec<&str> = path.to_vec();
            p.push(k);
            f(v, &p)
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {tgt} |",
            s(v, runs),
            at("p50"),
            at("p90"),
            at("p99"),
            at("max"),
        );
    }
    let label = s(v, &["label"]);
    let _ = writeln!(
        md,
        "\n`took_ms` is the server's own figure (load changed prompts and dialplans — unchanged files are reused — validate, swap); the API round trip adds HTTP (the `dialplan_versions` rows are written afterwards by a background task). `startup_ms` is logged by the server from the start of `serve` (after reading the config). SQLite store.{}\n",
        if label.is_empty() || label == "-" {
            String::new()
        } else {
            format!(" Build: {label}.")
        }
    );
}

/// `overload.json` (bench/overload.sh): the flood's outcome and the audio of
/// the calls that were already in progress.
fn overload_table(md: &mut String, v: &Value) {
    let _ = writeln!(
        md,
        "### Overload (`bench/overload.sh`: SIPp flood while `ivr-load` holds calls; default admission control)\n"
    );
    let _ = writeln!(
        md,
        "| flood | INVITEs | answered or 503 + Retry-After | failed | retransmissions | refusals by reason | held calls | held failed | held packets vs nominal | held jitter p50 / p99 / max | server CPU |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|");
    let refusals = v["server"]["refusals"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let h = &v["held"];
    let _ = writeln!(
        md,
        "| {} calls/s for {} s | {} | {} | {} | {} | {} | {} | {} | {:.3} % | {:.3} / {:.3} / {:.2} ms | {:.0} % |\n",
        s(v, &["flood", "rate_cps"]),
        s(v, &["flood", "seconds"]),
        s(v, &["flood", "invites"]),
        s(v, &["flood", "completed"]),
        s(v, &["flood", "failed"]),
        s(v, &["flood", "retransmissions"]),
        if refusals.is_empty() { "none".to_string() } else { refusals },
        s(h, &["params", "calls"]),
        s(h, &["calls", "failed"]),
        f(h, &["rtp", "received_pct"]),
        f(h, &["rtp", "jitter_ms", "p50"]),
        f(h, &["rtp", "jitter_ms", "p99"]),
        f(h, &["rtp", "jitter_ms", "max"]),
        f(h, &["server", "cpu_pct_window"]),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(readme)) = (args.next(), args.next()) else {
        eprintln!("usage: bench-report RESULTS_DIR README.md");
        std::process::exit(2);
    };
    let mut ivr: Vec<Value> = read_runs(&dir, "ivr-");
    ivr.sort_by(|a, b| f(a, &["params", "calls"]).total_cmp(&f(b, &["params", "calls"])));
    let rate: Option<Value> = std::fs::read_to_string(Path::new(&dir).join("callrate.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());

    let mut md = String::new();
    let machine = ivr
        .first()
        .map(|v| {
            format!(
                "{} cores (`nproc`), {}",
                s(v, &["machine", "nproc"]),
                s(v, &["machine", "cpu_model"])
            )
        })
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(md, "Machine: {machine}.\n");
    if !ivr.is_empty() {
        let _ = writeln!(md, "### Concurrent IVR calls (`ivr-load`)\n");
        let _ = writeln!(
            md,
            "| calls | measured | failed | packets vs nominal | seq. lost | jitter p50 | jitter p99 | jitter max | server CPU | RSS/call | generator CPU (sockets) | other procs CPU | kernel drops |"
        );
        let _ = writeln!(
            md,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for v in &ivr {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.3} % | {} | {:.3} ms | {:.3} ms | {:.2} ms | {:.0} % | {:.1} KiB | {:.0} % ({}) | {:.0} % | {} |",
                s(v, &["params", "calls"]),
                s(v, &["calls", "measured"]),
                s(v, &["calls", "failed"]),
                f(v, &["rtp", "received_pct"]),
                s(v, &["rtp", "seq_lost"]),
                f(v, &["rtp", "jitter_ms", "p50"]),
                f(v, &["rtp", "jitter_ms", "p99"]),
                f(v, &["rtp", "jitter_ms", "max"]),
                f(v, &["server", "cpu_pct_window"]),
                f(v, &["server", "rss_per_call_kib"]),
                f(v, &["generator", "cpu_pct_window"]),
                sockets(v),
                f(v, &["machine_load", "others_cpu_pct_window"]),
                s(v, &["generator", "kernel_socket_drops"]),
            );
        }
        let _ = writeln!(
            md,
            "\nWindow {:.0} s per step; ramp {} calls/s. Jitter is |inter-arrival − 20 ms| from kernel receive timestamps. CPU: 100 % = one core. RSS/call = (RSS at the end of the window − RSS idle) / calls.\n",
            ivr.first().map_or(0.0, |v| f(v, &["params", "window_s"])),
            ivr.first().map_or("-".into(), |v| s(v, &["params", "rate_cps"])),
        );
    }
    if let Some(r) = &rate {
        let _ = writeln!(md, "### Call rate (SIPp, `bench/sipp/uac-2s.xml`)\n");
        let _ = writeln!(
            md,
            "| calls/s | calls | successful | failed | retransmissions | server CPU |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
        for st in r["steps"].as_array().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} % |",
                s(st, &["rate_cps"]),
                s(st, &["calls"]),
                s(st, &["successful"]),
                s(st, &["failed"]),
                s(st, &["retransmissions"]),
                f(st, &["server_cpu_pct"]),
            );
        }
        let _ = writeln!(
            md,
            "\nHighest rate with 0 failures and 0 retransmissions: **{} calls/s**.\n",
            s(r, &["best_clean_rate_cps"])
        );
    }

    if let Some(v) = read_json(&Path::new(&dir).join("overload.json")) {
        overload_table(&mut md, &v);
    }
    callback_tables(&mut md, &dir);
    webrtc_table(&mut md, &dir);
    phone_tables(&mut md, &dir);
    if let Some(v) = read_json(&Path::new(&dir).join("dialplan-ops.json")) {
        dialplan_table(&mut md, &v);
    }

    let old = std::fs::read_to_string(&readme).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{BEGIN}\n{md}{}", &old[..a], &old[b..])
        }
        _ => format!("{old}\n{BEGIN}\n{md}{END}\n"),
    };
    if let Err(e) = std::fs::write(&readme, new) {
        eprintln!("bench-report: cannot write {readme}: {e}");
        std::process::exit(1);
    }
    eprintln!("bench-report: updated {readme}");
}
