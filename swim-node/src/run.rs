//! `swim-node run`: load the config, start the member and its admin server, join through
//! the seeds (resolving DNS names again on every retry), and leave gracefully on SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

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
    let admin = admin::serve(cfg.admin, cluster.watcher(), prometheus).await?;
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
    ));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            Some(seeds) = join_rx.recv() => {
                if let Err(e) = cluster.join(&seeds) {
                    tracing::error!(error = %e, "cannot join");
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
/// and go), until joined. DNS is only used here, never on the probe path.
async fn join_loop(
    seeds: Vec<String>,
    own: SocketAddr,
    watcher: swim_net::Watcher,
    join: tokio::sync::mpsc::UnboundedSender<Vec<SocketAddr>>,
) {
    if seeds.is_empty() {
        let _ = join.send(Vec::new());
        return;
    }
    let mut wait = Duration::from_secs(1);
    loop {
        let mut addrs = Vec::new();
        for seed in &seeds {
            match tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host(seed.as_str()),
            )
            .await
            {
                Ok(Ok(found)) => addrs.extend(found.filter(|a| *a != own)),
                Ok(Err(e)) => tracing::warn!(seed, error = %e, "cannot resolve seed"),
                Err(_) => tracing::warn!(seed, "resolving seed timed out"),
            }
        }
        addrs.sort();
        addrs.dedup();
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
        tracing::info!(
            ?addrs,
            retry_in_s = wait.as_secs(),
            "not joined yet; resolving seeds again"
        );
        wait = (wait * 2).min(Duration::from_secs(30));
    }
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
