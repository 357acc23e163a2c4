//! `bench-report RESULTS_DIR README`: turn `ivr-*.json` and `callrate.json`
//! into Markdown tables and put them between the `<!-- results:begin -->` /
//! `<!-- results:end -->` markers of the README (appended if missing).

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

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(readme)) = (args.next(), args.next()) else {
        eprintln!("usage: bench-report RESULTS_DIR README.md");
        std::process::exit(2);
    };
    let mut ivr: Vec<Value> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with("ivr-") && n.ends_with(".json")
                })
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|t| serde_json::from_str(&t).ok())
                .collect()
        })
        .unwrap_or_default();
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
