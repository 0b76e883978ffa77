//! Process-wide telemetry: tracing to stderr (filtered by `RUST_LOG`) and the one metrics
//! registry, a Prometheus recorder whose text `/metrics` serves, with the build and the
//! process (CPU, memory, file descriptors) beside swim-net's metrics.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Buckets for every histogram (all are `*_seconds`): probe round trips (milliseconds) and
/// push-pulls (milliseconds to seconds) up to detection latencies of several minutes. Every histogram gets them, so none is ever
/// exported as a summary. Listed in `swim-net/METRICS.md`.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0,
    20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
];

/// How log lines are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event (timestamp, level, target, fields).
    Json,
}

/// Logs one line per event to stderr; `RUST_LOG` overrides the default `info`. Colour only
/// when stderr is a terminal: a container's log, a file or a pipe gets plain text.
pub(crate) fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Installs the Prometheus recorder (once per process) and keeps its histograms drained.
pub(crate) fn install_prometheus() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    metrics::describe_gauge!(
        "swim_build_info",
        "Always 1; labels: version (swim-node), protocol (the wire protocol version)"
    );
    metrics::gauge!(
        "swim_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "protocol" => swim_core::PROTOCOL_VERSION.to_string()
    )
    .set(1.0);
    process_collector().describe();
    process_collector().collect();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Samples the process metrics (`process_*`: CPU seconds, resident and virtual memory, open
/// and maximum file descriptors, threads, start time) from `/proc`; called on every scrape.
pub(crate) fn collect_process() {
    process_collector().collect();
}
