//! `swim-node run`: load the config, start the member and its admin server, join through
//! the seeds (resolving DNS names again on every retry), and leave gracefully on SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use swim_net::{Cluster, NetError};

use crate::config::{self, RunFlags};
use crate::{admin, telemetry};

/// How long a graceful leave may take to spread before the process exits anyway.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    flags: RunFlags,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    // Everything is checked before anything is bound.
    let cfg = config::load(args.flags.config.as_deref(), &args.flags.overrides)?;
    let prometheus = telemetry::install_prometheus()?;
    let cluster = match Cluster::start(cfg.cluster.clone()).await {
        Ok(c) => c,
        // A file or setting the member refused is named by its config key.
        Err(e @ (NetError::TlsFile { .. } | NetError::Setting { .. } | NetError::Core(_))) => {
            return Err(config::net_error(e).into())
        }
        Err(e) => return Err(anyhow::Error::new(e).context("starting the member")),
    };
    let admin = admin::serve(cfg.admin, cluster.watcher(), prometheus.clone()).await?;
    tracing::info!(
        name = cluster.name(),
        bind = %cluster.local_addr(),
        advertise = %cluster.advertise_addr(),
        admin = %admin,
        "started"
    );
    // The join loop resolves seeds; this task owns the member and forwards its requests.
    let (join_tx, mut join_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<SocketAddr>>();
    let joining = tokio::spawn(join_loop(
        cfg.seeds.clone(),
        cluster.advertise_addr(),
        cluster.watcher(),
        join_tx,
        prometheus,
    ));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut events = cluster.events();
    let mut events_open = true;
    loop {
        tokio::select! {
            Some(seeds) = join_rx.recv() => {
                if let Err(e) = cluster.join(&seeds) {
                    tracing::error!(error = %e, "cannot join");
                }
            }
            event = events.recv(), if events_open => {
                use tokio::sync::broadcast::error::RecvError;
                let yielded = match event {
                    Ok(swim_core::Event::NameYielded { .. }) => true,
                    // Missed events: the counter still tells.
                    Err(RecvError::Lagged(_)) => cluster.stats().names_yielded > 0,
                    Err(RecvError::Closed) => {
                        events_open = false;
                        false
                    }
                    Ok(_) => false,
                };
                if yielded {
                    // No leave: a leave under this name would be taken for the holder's.
                    joining.abort();
                    let name = cluster.name().to_string();
                    let _ = tokio::time::timeout(Duration::from_secs(3), cluster.shutdown()).await;
                    return Err(NameYielded(name).into());
                }
            }
            _ = &mut signal => break,
        }
    }
    joining.abort();
    tracing::info!("leaving the cluster");
    match cluster.leave(LEAVE_TIMEOUT).await {
        Ok(()) => tracing::info!("leave spread"),
        Err(e) => tracing::warn!(error = %e, "leave did not finish spreading; exiting anyway"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), cluster.shutdown()).await;
    Ok(())
}

/// Resolves the seeds and asks the member to join them, again with fresh DNS answers after
/// each unanswered attempt (a Kubernetes headless service's addresses change as pods come
/// and go), until joined. DNS is only used here, never on the probe path. Readiness: a node
/// whose seeds resolve only to itself starts the cluster (joined at once); a node is also
/// joined as soon as another joins through it, or a seed answers.
async fn join_loop(
    seeds: Vec<String>,
    own: SocketAddr,
    watcher: swim_net::Watcher,
    join: tokio::sync::mpsc::UnboundedSender<Vec<SocketAddr>>,
    prometheus: PrometheusHandle,
) {
    let mut trouble = SeedTrouble::read(&prometheus);
    if seeds.is_empty() {
        let _ = join.send(Vec::new());
        return;
    }
    let mut wait = Duration::from_secs(1);
    loop {
        let mut addrs = Vec::new();
        let mut seeds_itself = false;
        for seed in &seeds {
            match tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host(seed.as_str()),
            )
            .await
            {
                Ok(Ok(found)) => {
                    for a in found {
                        if a == own {
                            seeds_itself = true;
                        } else {
                            addrs.push(a);
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(seed, error = %e, "cannot resolve seed"),
                Err(_) => tracing::warn!(seed, "resolving seed timed out"),
            }
        }
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() && seeds_itself {
            // Every seed is this node (pod 0 of a StatefulSet whose pods all seed from it):
            // it is the first member of the cluster, ready at once; the others join it.
            tracing::info!(
                ?seeds,
                "the seeds name only this node: starting the cluster"
            );
            let _ = join.send(Vec::new());
            return;
        }
        if addrs.is_empty() {
            tracing::warn!(?seeds, "no seed address to join yet");
        } else if join.send(addrs.clone()).is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if watcher.is_joined() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if watcher.is_joined() {
            return;
        }
        let now = SeedTrouble::read(&prometheus);
        tracing::warn!(
            ?addrs,
            retry_in_s = wait.as_secs(),
            cause = %now.cause_since(&trouble),
            "no seed answered the join; resolving seeds again"
        );
        trouble = now;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Another live process held this node's name first: this one gave it up and exits with
/// [`NameYielded::EXIT_CODE`], without leaving.
#[derive(Debug, thiserror::Error)]
#[error("another live process held the name {0:?} first; this process gave it up (each process needs its own certificate and name)")]
pub(crate) struct NameYielded(pub(crate) String);

impl NameYielded {
    /// The exit status for it, distinct from a configuration error's (1).
    pub(crate) const EXIT_CODE: u8 = 3;
}

/// Resolves on SIGTERM (what container runtimes send) or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// What this process's own counters say about its connections, to tell an operator why no
/// seed answered: swim-net counts every failed dial, refused handshake and opened connection.
#[derive(Debug, Default, PartialEq)]
struct SeedTrouble {
    /// `(family, label value)` → counter value.
    counts: std::collections::BTreeMap<(String, String), f64>,
}

/// The counters read, with the label that says why.
const TROUBLE_FAMILIES: &[&str] = &[
    "swim_cluster_mismatches_total",
    "swim_connect_failures_total",
    "swim_refused_by_peer_total",
    "swim_tls_handshake_failures_total",
    "swim_connections_opened_total",
    // A gauge: connections in the cache (a dialled one is there once its handshake is done,
    // even if the peer never sends on it).
    "swim_connections",
];

impl SeedTrouble {
    fn read(prometheus: &PrometheusHandle) -> Self {
        Self::parse(&prometheus.render())
    }

    fn parse(text: &str) -> Self {
        let mut counts = std::collections::BTreeMap::new();
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (family, labels) = series.split_once('{').unwrap_or((series, ""));
            if !TROUBLE_FAMILIES.contains(&family) {
                continue;
            }
            let label = labels
                .split_once("=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map_or("", |(v, _)| v);
            if let Ok(v) = value.parse::<f64>() {
                *counts
                    .entry((family.to_string(), label.to_string()))
                    .or_insert(0.0) += v;
            }
        }
        Self { counts }
    }

    /// The labels of `family` whose counters grew since `before`.
    fn grew(&self, before: &Self, family: &str) -> Vec<String> {
        self.counts
            .iter()
            .filter(|((f, l), v)| {
                let was = before.counts.get(&(f.clone(), l.clone())).copied();
                f == family && **v > was.unwrap_or(0.0)
            })
            .map(|((_, l), _)| l.clone())
            .collect()
    }

    /// One sentence: why the seeds did not answer since `before`, from what grew meanwhile.
    fn cause_since(&self, before: &Self) -> String {
        let mismatched = self.grew(before, "swim_cluster_mismatches_total");
        if mismatched.iter().any(|by| by == "peer") {
            return "a seed refused our join: its cluster_name differs from ours \
                    (the WARN 'a peer refused our push-pull' names both)"
                .into();
        }
        let refused_by_peer = self.grew(before, "swim_refused_by_peer_total");
        if !refused_by_peer.is_empty() {
            return format!(
                "a seed refused our TLS handshake (alert {}): it does not trust our certificate",
                refused_by_peer.join(", ")
            );
        }
        let we_refused = self.grew(before, "swim_tls_handshake_failures_total");
        if !we_refused.is_empty() {
            return format!(
                "we refused a seed's certificate ({}): another CA, expired, or not its name",
                we_refused.join(", ")
            );
        }
        let failed = self.grew(before, "swim_connect_failures_total");
        if failed.iter().any(|r| r == "timeout") {
            return "no QUIC handshake within the dial timeout: the seed is down, unreachable, \
                    or a firewall drops UDP"
                .into();
        }
        if !failed.is_empty() {
            return format!("connecting to the seed failed ({})", failed.join(", "));
        }
        let connected = self.counts.get(&("swim_connections".into(), String::new()));
        if !self
            .grew(before, "swim_connections_opened_total")
            .is_empty()
            || connected.is_some_and(|n| *n > 0.0)
        {
            return "connected, but no answer to the join: the seed may be overloaded, or \
                    refused our push-pull for a reason its log gives"
                .into();
        }
        "no answer yet (a connection attempt may still be under way)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::SeedTrouble;

    const BEFORE: &str = "swim_connect_failures_total{reason=\"timeout\"} 0\n\
        swim_refused_by_peer_total{alert=\"unknown_ca\"} 0\n\
        swim_connections_opened_total{direction=\"out\"} 0\n";

    #[test]
    fn the_cause_names_what_grew_since_the_last_attempt() {
        let before = SeedTrouble::parse(BEFORE);
        let timeout = SeedTrouble::parse(&BEFORE.replace("timeout\"} 0", "timeout\"} 2"));
        assert!(timeout.cause_since(&before).contains("no QUIC handshake"));
        let refused = SeedTrouble::parse(&BEFORE.replace("unknown_ca\"} 0", "unknown_ca\"} 1"));
        assert!(refused.cause_since(&before).contains("alert unknown_ca"));
        let opened =
            SeedTrouble::parse(&BEFORE.replace("direction=\"out\"} 0", "direction=\"out\"} 1"));
        assert!(opened
            .cause_since(&before)
            .contains("no answer to the join"));
        let connected = SeedTrouble::parse(&format!("{BEFORE}swim_connections 1\n"));
        assert!(connected
            .cause_since(&before)
            .contains("no answer to the join"));
        // A seed of another cluster accepts our certificate, then closes on our push-pull.
        let other_cluster = SeedTrouble::parse(&format!(
            "{}swim_cluster_mismatches_total{{by=\"peer\"}} 1\n",
            BEFORE.replace("direction=\"out\"} 0", "direction=\"out\"} 1")
        ));
        assert!(other_cluster
            .cause_since(&before)
            .contains("its cluster_name differs"));
        assert!(before.cause_since(&before).contains("no answer yet"));
    }
}
