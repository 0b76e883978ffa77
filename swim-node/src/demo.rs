//! `swim-node demo`: a local cluster over real QUIC + mutual TLS on loopback with
//! throw-away certificates; shows the membership table live, kills one member, and shows
//! when each survivor declares it dead and the measured detection latency.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use swim_net::dev_certs::DevCa;
use swim_net::{Cluster, ClusterConfig, Event, MemberState};

use crate::{admin, run::shutdown_signal, telemetry};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Members in the demo cluster.
    #[arg(long, default_value_t = 5)]
    members: usize,
    /// When to kill one member (abruptly: no leave).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    kill_after: Duration,
    /// Stop after this long; without it the demo runs until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Admin address serving /metrics and the first member's /members (port 0: any free one).
    #[arg(long, default_value = "127.0.0.1:9946")]
    admin: SocketAddr,
}

fn letter(state: Option<MemberState>) -> &'static str {
    match state {
        Some(MemberState::Alive) => "alive",
        Some(MemberState::Suspect) => "SUSPECT",
        Some(MemberState::Dead) => "DEAD",
        Some(MemberState::Left) => "left",
        None => "-",
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        (2..=50).contains(&args.members),
        "--members must be 2 to 50"
    );
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let ca = DevCa::new("swim demo CA")?;
    // The recorder first: members register their metrics when they start.
    let prometheus = telemetry::install_prometheus()?;
    let mut nodes: Vec<Option<Cluster>> = Vec::new();
    for i in 0..args.members {
        let name = format!("demo-{i}");
        let tls = ca.write_node(&dir.path().join(&name), &name)?;
        let mut config = ClusterConfig::new(&name, "127.0.0.1:0".parse()?, tls);
        config.swim.probe_interval = Duration::from_millis(500);
        config.swim.probe_timeout = Duration::from_millis(200);
        nodes.push(Some(Cluster::start(config).await?));
    }
    let first = nodes[0].as_ref().expect("started");
    let admin = match admin::serve(args.admin, first.watcher(), prometheus.clone()).await {
        Ok(a) => a,
        Err(_) => admin::serve("127.0.0.1:0".parse()?, first.watcher(), prometheus).await?,
    };
    println!(
        "{} members over QUIC + mutual TLS on loopback (throw-away certificates in {})",
        args.members,
        dir.path().display()
    );
    println!("metrics: http://{admin}/metrics   members of demo-0: http://{admin}/members");

    let seed = first.advertise_addr();
    first.join(&[])?;
    for n in nodes.iter().flatten().skip(1) {
        n.join(&[seed])?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Event)>();
    for n in nodes.iter().flatten() {
        let (mut events, name, tx) = (n.events(), n.name().to_string(), tx.clone());
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                if tx.send((name.clone(), e)).is_err() {
                    return;
                }
            }
        });
    }

    let start = Instant::now();
    let victim = format!("demo-{}", args.members - 1);
    let mut killed_at: Option<Instant> = None;
    let mut declared: BTreeMap<String, (Duration, Duration)> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let stop = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => shutdown_signal().await,
        }
    };
    tokio::pin!(stop);
    let tty = std::io::stdout().is_terminal();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                if killed_at.is_none() && start.elapsed() >= args.kill_after {
                    drop(nodes[args.members - 1].take());
                    killed_at = Some(Instant::now());
                    println!("\n*** killed {victim} at t={:.1} s (no leave: a crash) ***\n", start.elapsed().as_secs_f64());
                }
                print_table(&nodes, start, tty);
            }
            Some((viewer, event)) = rx.recv() => {
                if let (Event::MemberDown { member, since_last_alive, .. }, Some(t0)) = (&event, killed_at) {
                    if *member.name == *victim && !declared.contains_key(&viewer) {
                        let truth = t0.elapsed();
                        println!(
                            "{viewer} declared {victim} dead {:.2} s after the kill (its own measure, since it last heard {victim} alive: {:.2} s)",
                            truth.as_secs_f64(),
                            since_last_alive.as_secs_f64()
                        );
                        declared.insert(viewer, (truth, *since_last_alive));
                        if declared.len() == args.members - 1 {
                            let mut t: Vec<f64> = declared.values().map(|(d, _)| d.as_secs_f64()).collect();
                            t.sort_by(f64::total_cmp);
                            println!(
                                "every survivor declared {victim} dead: median {:.2} s, last {:.2} s after the kill",
                                t[t.len() / 2],
                                t[t.len() - 1]
                            );
                        }
                    }
                }
            }
        }
    }
    println!("stopping: the survivors leave gracefully");
    let mut stopping = tokio::task::JoinSet::new();
    for n in nodes.into_iter().flatten() {
        stopping.spawn(async move {
            let _ = n.leave(Duration::from_secs(2)).await;
            n.shutdown().await;
        });
    }
    stopping.join_all().await;
    Ok(())
}

fn print_table(nodes: &[Option<Cluster>], start: Instant, tty: bool) {
    let live: Vec<&Cluster> = nodes.iter().flatten().collect();
    let names: Vec<String> = (0..nodes.len()).map(|i| format!("demo-{i}")).collect();
    if tty {
        print!("\x1b[2J\x1b[H");
    }
    println!(
        "t={:>5.1} s   rows: member, columns: how each running member sees it",
        start.elapsed().as_secs_f64()
    );
    print!("{:<10}", "");
    for v in &live {
        print!("{:>9}", v.name());
    }
    println!();
    for name in &names {
        print!("{name:<10}");
        for v in &live {
            let state = v
                .members()
                .iter()
                .find(|m| *m.name == **name)
                .map(|m| m.state);
            print!("{:>9}", letter(state));
        }
        println!();
    }
}
