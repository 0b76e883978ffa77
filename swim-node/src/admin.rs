//! The admin HTTP server: `/metrics` (Prometheus text), `/health/live`, `/health/ready`
//! (ready once joined) and `/members` (this node's view as JSON).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use swim_net::Watcher;

#[derive(Clone)]
struct AdminState {
    watcher: Watcher,
    prometheus: PrometheusHandle,
}

/// One member in `/members`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct MemberJson {
    pub name: String,
    pub address: String,
    pub state: String,
    pub incarnation: u32,
    /// Metadata as UTF-8 text when it is, else as hex.
    pub metadata: Option<String>,
    /// When this node's view entered `state` (RFC 3339, UTC).
    pub since: String,
    /// Refuted suspicions of this member seen here (it flaps if this grows).
    pub false_suspicions: u32,
    /// Times it was declared dead here and came back as the same process.
    pub false_deaths: u32,
}

/// Binds `addr` and serves until the process ends. Returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    watcher: Watcher,
    prometheus: PrometheusHandle,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the admin address {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .route("/members", get(members))
        .with_state(AdminState {
            watcher,
            prometheus,
        });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    Ok(bound)
}

async fn metrics(State(s): State<AdminState>) -> Response {
    crate::telemetry::collect_process();
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
        .into_response()
}

async fn ready(State(s): State<AdminState>) -> Response {
    if s.watcher.is_joined() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not joined yet\n").into_response()
    }
}

async fn members(State(s): State<AdminState>) -> Json<Vec<MemberJson>> {
    Json(members_json(&s.watcher))
}

pub(crate) fn members_json(watcher: &Watcher) -> Vec<MemberJson> {
    let (now, wall) = (Instant::now(), SystemTime::now());
    watcher
        .members()
        .iter()
        .map(|m| MemberJson {
            name: m.name.to_string(),
            address: m.addr.to_string(),
            state: m.state.name().to_string(),
            incarnation: m.incarnation,
            metadata: m.metadata.as_deref().map(|b| match std::str::from_utf8(b) {
                Ok(s) => s.to_string(),
                Err(_) => b.iter().map(|x| format!("{x:02x}")).collect(),
            }),
            since: humantime::format_rfc3339_seconds(wall - now.saturating_duration_since(m.since))
                .to_string(),
            false_suspicions: m.false_suspicions,
            false_deaths: m.false_deaths,
        })
        .collect()
}
