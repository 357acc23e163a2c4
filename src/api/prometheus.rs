//! `GET /metrics`: the process counters plus gauges of what is happening
//! right now (media clocks, queues, agents, callbacks), in the Prometheus
//! text format.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use crate::metrics;

/// Prometheus metrics
///
/// The process counters plus gauges of what is happening right now (media
/// clocks, queues, agents, callbacks, trunks), in the Prometheus text
/// format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "ops",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String))
)]
pub(super) async fn metrics_handler(State(ctx): State<Arc<ApiState>>) -> impl IntoResponse {
    let mut out = metrics::render();
    let media = &ctx.media;
    let snap = ctx.dialplans.current();
    let gauges: [(&str, &str, &str, u64); 5] = [
        (
            "rtp_packets_sent_total",
            "counter",
            "RTP packets sent by the media clocks.",
            media.packets_sent(),
        ),
        (
            "media_clock_overruns_total",
            "counter",
            "Media clock ticks served more than one interval late.",
            media.overruns(),
        ),
        (
            "media_clock_max_late_microseconds",
            "gauge",
            "Worst lateness of a media clock tick since start.",
            media.max_late_us(),
        ),
        (
            "rtp_ports_in_use",
            "gauge",
            "RTP ports held by calls.",
            media.ports_in_use() as u64,
        ),
        (
            "dialplans_loaded",
            "gauge",
            "Dialplans in the serving snapshot.",
            snap.plans.len() as u64,
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(out, "# HELP ringback_{name} {help}");
        let _ = writeln!(out, "# TYPE ringback_{name} {kind}");
        let _ = writeln!(out, "ringback_{name} {value}");
    }
    // Queues, agents and callbacks as they are right now.
    let (agents, queues) = ctx.acd.snapshot().await;
    metrics::gauge(
        &mut out,
        "queue_waiting",
        "Callers (and callbacks) waiting per queue.",
        &queues
            .iter()
            .map(|q| {
                (
                    format!("queue=\"{}\"", q.name.as_str()),
                    q.waiting.len() as f64,
                )
            })
            .collect::<Vec<_>>(),
    );
    metrics::gauge(
        &mut out,
        "queue_longest_wait_seconds",
        "Longest current wait per queue.",
        &queues
            .iter()
            .map(|q| {
                (
                    format!("queue=\"{}\"", q.name.as_str()),
                    q.longest_wait.map_or(0.0, |d| d.as_secs_f64()),
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut by_state: std::collections::BTreeMap<&str, f64> = [
        "logged-out",
        "available",
        "ringing",
        "on-call",
        "wrap-up",
        "paused",
    ]
    .into_iter()
    .map(|s| (s, 0.0))
    .collect();
    for a in &agents {
        *by_state.entry(a.state.name()).or_insert(0.0) += 1.0;
    }
    metrics::gauge(
        &mut out,
        "agents",
        "Agents by state.",
        &by_state
            .iter()
            .map(|(s, n)| (format!("state=\"{s}\""), *n))
            .collect::<Vec<_>>(),
    );
    let counts = ctx.store.callback_counts().await.unwrap_or_default();
    let cb: Vec<(String, f64)> = [
        "scheduled",
        "retry_wait",
        "dialing",
        "connected",
        "completed",
        "failed",
        "cancelled",
        "expired",
    ]
    .iter()
    .map(|state| {
        let n = counts.get(*state).copied().unwrap_or(0);
        (format!("state=\"{state}\""), n as f64)
    })
    .collect();
    metrics::gauge(
        &mut out,
        "callbacks",
        "Callbacks by state (from the store).",
        &cb,
    );
    let _ = writeln!(out, "# HELP ringback_build_info Build information.");
    let _ = writeln!(out, "# TYPE ringback_build_info gauge");
    let _ = writeln!(
        out,
        "ringback_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    // With several nodes, every sample says whose it is.
    let out = metrics::with_node_label(out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
