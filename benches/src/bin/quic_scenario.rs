//! Scenario runner over real QUIC + mutual TLS: N members in one process on loopback, a
//! warm-up, then a measured window in which K members are crashed (dropped, no leave).
//! Prints the same keys as `swim-node simulate --json`, plus what only a real transport
//! has: CPU time and bytes on the wire (UDP payload, QUIC and TLS included) per member-second.
//!
//! `cargo run --release -p swim-benches --bin quic_scenario -- --members 64 --duration 300 --crash 0`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use swim_core::sim::median;
use swim_net::dev_certs::DevCa;
use swim_net::{Cluster, ClusterConfig, Event, MemberState};

#[derive(Parser, Debug)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 16)]
    members: usize,
    /// Length of the measured window, seconds (after join and warm-up).
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Members crashed during the window.
    #[arg(long, default_value_t = 1)]
    crash: usize,
    /// When they crash, seconds into the window [default: a quarter of it].
    #[arg(long)]
    crash_at: Option<f64>,
    /// Seconds of steady traffic before the window opens.
    #[arg(long, default_value_t = 30.0)]
    warmup: f64,
    /// Protocol period.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    probe_interval: Duration,
    /// Direct-ack timeout.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    probe_timeout: Duration,
    /// Seed of the members' protocol randomness (member i gets seed + i). Network timing
    /// is real, so runs are comparable, not bit-identical.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// CPU time (user + system) of this whole process, from `/proc/self/stat` (fields 14 and
/// 15, in USER_HZ ticks, which Linux fixes at 100 per second for user space).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces; fields are counted after its ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')' the state (field 3) comes first, so utime and stime are at 11 and 12.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

#[derive(Clone, Copy, Default)]
struct Counters {
    payload_bytes: u64,
    messages: u64,
    wire_bytes: u64,
    wire_datagrams: u64,
}

fn counters(c: &Cluster) -> Counters {
    let (sent, _) = c.stats().total();
    let wire = c.wire_stats();
    Counters {
        payload_bytes: sent.bytes,
        messages: sent.messages,
        wire_bytes: wire.sent_bytes,
        wire_datagrams: wire.sent_datagrams,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.members < 2 || args.crash >= args.members {
        return Err("--members must be at least 2 and --crash below it".into());
    }
    let wall = Instant::now();
    let dir = tempfile::tempdir()?;
    let ca = DevCa::new("scenario CA")?;
    let mut nodes = Vec::new();
    for i in 0..args.members {
        let name = format!("node-{i}");
        let tls = ca.write_node(&dir.path().join(&name), &name)?;
        let mut config = ClusterConfig::new(&name, "127.0.0.1:0".parse()?, tls);
        config.swim.probe_interval = args.probe_interval;
        config.swim.probe_timeout = args.probe_timeout;
        config.seed = Some(args.seed.wrapping_add(i as u64));
        nodes.push(Some(Cluster::start(config).await?));
    }
    let live = |nodes: &Vec<Option<Cluster>>| nodes.iter().flatten().count();
    let seed = nodes[0].as_ref().expect("started").advertise_addr();
    for (i, n) in nodes.iter().flatten().enumerate() {
        n.join(if i == 0 {
            &[]
        } else {
            std::slice::from_ref(&seed)
        })?;
    }
    let joining = Instant::now();
    let n = args.members;
    while !nodes.iter().flatten().all(|c| {
        c.members()
            .iter()
            .filter(|m| m.state == MemberState::Alive)
            .count()
            == n
    }) {
        if joining.elapsed() > Duration::from_secs(120) {
            return Err("the cluster did not converge within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join_s = joining.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    // The measured window.
    type Log = Arc<Mutex<Vec<(Instant, usize, Event)>>>;
    let log: Log = Arc::default();
    for (i, c) in nodes.iter().flatten().enumerate() {
        let mut events = c.events();
        let log = log.clone();
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                log.lock().unwrap().push((Instant::now(), i, e));
            }
        });
    }
    let start_counters: Vec<Counters> = nodes.iter().flatten().map(counters).collect();
    let mut end_counters = start_counters.clone();
    let cpu_start = cpu_time();
    let window_start = Instant::now();
    let window = Duration::from_secs_f64(args.duration);
    let crash_at =
        Duration::from_secs_f64(args.crash_at.unwrap_or(args.duration / 4.0)).min(window);
    tokio::time::sleep(crash_at).await;
    // Crash the last K members (deterministic, and never the seed).
    let mut crashed: HashMap<String, Instant> = HashMap::new();
    for i in (n - args.crash..n).rev() {
        if let Some(c) = nodes[i].take() {
            end_counters[i] = counters(&c);
            crashed.insert(c.name().to_string(), Instant::now());
            drop(c);
        }
    }
    tokio::time::sleep(window.saturating_sub(window_start.elapsed())).await;
    let window_s = window_start.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu_start).as_secs_f64();
    for (i, slot) in nodes.iter().enumerate() {
        if let Some(c) = slot {
            end_counters[i] = counters(c);
        }
    }

    // Ground truth: who crashed when.
    let names: Vec<String> = (0..n).map(|i| format!("node-{i}")).collect();
    let log = log.lock().unwrap().clone();
    let (mut false_suspicions, mut false_suspicion_views, mut false_deaths, mut false_death_views) =
        (0u64, 0u64, 0u64, 0u64);
    let mut first_suspect: HashMap<&str, Instant> = HashMap::new();
    let mut first_dead: HashMap<&str, Instant> = HashMap::new();
    let mut dead_by: HashMap<&str, HashMap<usize, Instant>> = HashMap::new();
    for (t, viewer, e) in &log {
        match e {
            Event::MemberSuspect { member, accuser } => {
                match crashed.get_key_value(&*member.name) {
                    Some((name, _)) => {
                        first_suspect.entry(name.as_str()).or_insert(*t);
                    }
                    None => {
                        false_suspicion_views += 1;
                        if **accuser == *names[*viewer] {
                            false_suspicions += 1;
                        }
                    }
                }
            }
            Event::MemberDown { member, by_us, .. } => match crashed.get_key_value(&*member.name) {
                Some((name, at)) if t >= at => {
                    first_dead.entry(name.as_str()).or_insert(*t);
                    dead_by
                        .entry(name.as_str())
                        .or_default()
                        .entry(*viewer)
                        .or_insert(*t);
                }
                _ => {
                    false_death_views += 1;
                    if *by_us {
                        false_deaths += 1;
                    }
                }
            },
            _ => {}
        }
    }
    let survivors = live(&nodes);
    let since = |name: &str, t: Option<&Instant>| t.map(|t| (*t - crashed[name]).as_secs_f64());
    let mut all_dead = Vec::new();
    let mut all_detected = true;
    for name in crashed.keys() {
        let by = dead_by.get(name.as_str());
        match by.filter(|b| b.len() >= survivors) {
            Some(b) => all_dead.push(since(name, b.values().max()).unwrap_or_default()),
            None => all_detected = false,
        }
    }
    let sum = |f: fn(&Counters) -> u64| -> u64 {
        end_counters
            .iter()
            .zip(&start_counters)
            .map(|(e, s)| f(e) - f(s))
            .sum()
    };
    let per = |x: u64| x as f64 / n as f64 / window_s;
    let report = json!({
        "members": n,
        "loss": 0.0,
        "seed": args.seed,
        "crash": args.crash,
        "duration_s": window_s,
        "wall_s": wall.elapsed().as_secs_f64(),
        "join_s": join_s,
        "detect_first_suspect_s": median(crashed.keys().filter_map(|k| since(k, first_suspect.get(k.as_str())))),
        "detect_first_dead_s": median(crashed.keys().filter_map(|k| since(k, first_dead.get(k.as_str())))),
        "detect_all_dead_s": if all_detected { median(all_dead.into_iter()) } else { None },
        "false_suspicions": false_suspicions,
        "false_deaths": false_deaths,
        "false_suspicion_views": false_suspicion_views,
        "false_death_views": false_death_views,
        "bytes_per_member_per_s": per(sum(|c| c.payload_bytes)),
        "msgs_per_member_per_s": per(sum(|c| c.messages)),
        "wire_bytes_per_member_per_s": per(sum(|c| c.wire_bytes)),
        "wire_datagrams_per_member_per_s": per(sum(|c| c.wire_datagrams)),
        "cpu_s_per_member_per_s": cpu / n as f64 / window_s,
        "probe_interval_s": args.probe_interval.as_secs_f64(),
        "warmup_s": args.warmup,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    for c in nodes.into_iter().flatten() {
        c.shutdown().await;
    }
    Ok(())
}
