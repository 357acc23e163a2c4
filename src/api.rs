//! The HTTP surface: Prometheus metrics and a health check. The REST API,
//! server-sent events and dashboard grow here.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics;
use crate::server::ServerCtx;

/// Build the router.
pub fn router(ctx: Arc<ServerCtx>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(ctx)
}

/// Serve until the process ends.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerCtx>) {
    if let Err(e) = axum::serve(listener, router(ctx)).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

async fn metrics_handler(State(ctx): State<Arc<ServerCtx>>) -> impl IntoResponse {
    let mut out = metrics::render();
    let media = &ctx.media;
    let snap = ctx.snapshot();
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
    let _ = writeln!(out, "# HELP ringback_build_info Build information.");
    let _ = writeln!(out, "# TYPE ringback_build_info gauge");
    let _ = writeln!(
        out,
        "ringback_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = metrics::CALLS_ACTIVE.load(Relaxed);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
