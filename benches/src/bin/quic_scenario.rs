//! Scenario runner over real QUIC + mutual TLS: N members in one process on loopback, a
//! warm-up, then a measured window in which members are crashed (socket silenced, no leave,
//! no CONNECTION_CLOSE: as `kill -9`) and,
//! with `--churn-every`, restarted. Prints the same keys as `swim-node simulate --json`,
//! plus what only a real transport has: CPU time, memory, handshakes, and every byte on the
//! wire (UDP payload, QUIC and TLS included) per member-second with its cause.
//!
//! Each QUIC/TLS economy can be turned off (`--economies off`, or one at a time) to measure
//! what it saves; `--loss` loses that share of every member's sent datagrams at its socket.
//!
//! `cargo run --release -p swim-benches --bin quic_scenario -- --members 32 --duration 120 --crash 0`

#![recursion_limit = "256"]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{json, Map, Value};
use swim_core::sim::{median, percentile};
use swim_net::dev_certs::DevCa;
use swim_net::{Cluster, ClusterConfig, Event, Impairment, MemberState, TlsFiles, WireCause};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Economies {
    On,
    Off,
}

#[derive(Parser, Debug)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 16)]
    members: usize,
    /// The tokio runtime every member runs on.
    #[arg(long, value_enum, default_value_t = swim_benches::Runtime::Multi)]
    runtime: swim_benches::Runtime,
    /// Length of the measured window, seconds (after join and warm-up).
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Members crashed during the window (without churn).
    #[arg(long, default_value_t = 1)]
    crash: usize,
    /// When they crash, seconds into the window [default: a quarter of it].
    #[arg(long)]
    crash_at: Option<f64>,
    /// Churn: every this many seconds, restart the member crashed last time (new process,
    /// new address) and crash the next one. Replaces `--crash`.
    #[arg(long)]
    churn_every: Option<f64>,
    /// Seconds of steady traffic before the window opens [default: two probe rounds,
    /// 2·N probe intervals, at least 30 s, so every pair has met].
    #[arg(long)]
    warmup: Option<f64>,
    /// Protocol period.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    probe_interval: Duration,
    /// Direct-ack timeout.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    probe_timeout: Duration,
    /// Lifeguard α: the minimum suspicion timeout is α·log10(N)·probe interval.
    #[arg(long, default_value_t = swim_core::Config::default().suspicion_mult)]
    suspicion_mult: u32,
    /// Share of sent datagrams each member's socket loses, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// All economies on (the defaults) or off (quinn's and rustls's defaults, full state
    /// push-pull, a 2 s idle timeout).
    #[arg(long, value_enum, default_value_t = Economies::On)]
    economies: Economies,
    /// Turn off TLS session resumption.
    #[arg(long)]
    no_resumption: bool,
    /// quinn's 8-byte connection IDs.
    #[arg(long)]
    long_cids: bool,
    /// Path-MTU discovery on.
    #[arg(long)]
    pmtud: bool,
    /// quinn's default congestion controller (Cubic).
    #[arg(long)]
    default_congestion: bool,
    /// quinn's default acknowledgement behaviour.
    #[arg(long)]
    no_ack_tuning: bool,
    /// Explicit congestion notification on (its counts ride in every ACK frame).
    #[arg(long)]
    ecn: bool,
    /// Servers send quinn's two address-validation tokens after each handshake.
    #[arg(long)]
    address_tokens: bool,
    /// QUIC keep-alive at this interval.
    #[arg(long, value_parser = humantime::parse_duration)]
    keep_alive: Option<Duration>,
    /// A fixed idle timeout instead of the derived one (short ones mean connection churn).
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// Periodic push-pull sends the full state both ways instead of a fingerprint first.
    #[arg(long)]
    full_push_pull: bool,
    /// Seed of the members' protocol randomness (member i gets seed + i) and of the loss.
    /// Network timing is real, so runs are comparable, not bit-identical.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn config(&self, name: &str, tls: TlsFiles, incarnation: u64) -> ClusterConfig {
        let mut config = ClusterConfig::new(name, "127.0.0.1:0".parse().expect("address"), tls);
        config.swim.probe_interval = self.probe_interval;
        config.swim.probe_timeout = self.probe_timeout;
        config.swim.suspicion_mult = self.suspicion_mult;
        let index: u64 = name.trim_start_matches("node-").parse().unwrap_or(0);
        config.seed = Some(
            self.seed
                .wrapping_add(index)
                .wrapping_add(incarnation << 32),
        );
        let off = self.economies == Economies::Off;
        config.quic.session_resumption = !(off || self.no_resumption);
        config.quic.short_connection_ids = !(off || self.long_cids);
        config.quic.mtu_discovery = off || self.pmtud;
        config.quic.never_throttle = !(off || self.default_congestion);
        config.quic.ack_tuning = !(off || self.no_ack_tuning);
        config.quic.no_address_tokens = !(off || self.address_tokens);
        config.quic.ecn = off || self.ecn;
        config.quic.keep_alive_interval = self.keep_alive;
        config.swim.push_pull_digest = !(off || self.full_push_pull);
        config.idle_timeout = match (self.idle_timeout, off) {
            (Some(d), _) => Some(d),
            (None, true) => Some(Duration::from_secs(2).max(self.probe_interval * 2)),
            (None, false) => None,
        };
        if self.loss > 0.0 {
            config.impairment = Some(Impairment {
                loss: self.loss,
                seed: config.seed.unwrap_or(0) ^ 0x5eed,
            });
        }
        config
    }
}

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Everything counted per member, as plain numbers so windows can be subtracted.
#[derive(Clone, Default)]
struct Counters(HashMap<&'static str, u64>);

fn counters(c: &Cluster) -> Counters {
    let (sent, _) = c.stats().total();
    let w = c.wire_stats();
    let mut m = HashMap::from([
        ("payload_bytes", sent.bytes),
        ("messages", sent.messages),
        ("wire_bytes", w.sent_bytes),
        ("wire_datagrams", w.sent_datagrams),
        ("handshakes_full", w.handshakes_full),
        ("handshakes_resumed", w.handshakes_resumed),
        ("handshakes_failed", w.handshakes_failed),
        ("datagrams_delayed", w.datagrams_delayed),
        ("datagrams_dropped", w.datagrams_dropped),
        ("unattributed", w.unattributed_bytes()),
        ("handshake_pending", w.handshake_pending_bytes),
    ]);
    for cause in WireCause::ALL {
        m.insert(cause.name(), w.sent_bytes_for(cause));
    }
    Counters(m)
}

impl Counters {
    fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }
}

/// One process of one member: the member restarted is a new instance.
struct Instance {
    name: String,
    boot_id: u32,
    cluster: Option<Cluster>,
    crashed: Option<Instant>,
    /// Counters when the window opened (or zero, if the instance started inside it).
    base: Counters,
    /// Counters when it crashed or the window closed.
    last: Counters,
}

impl Instance {
    /// A process just started: counting from zero until the window opens.
    fn running(name: String, cluster: Cluster) -> Self {
        Self {
            boot_id: boot_id(&cluster),
            name,
            cluster: Some(cluster),
            crashed: None,
            base: Counters::default(),
            last: Counters::default(),
        }
    }
}

type Log = Arc<Mutex<Vec<(Instant, usize, Event)>>>;

async fn start(
    args: &Args,
    ca_files: &HashMap<String, TlsFiles>,
    name: &str,
    incarnation: u64,
) -> Result<Cluster, Box<dyn std::error::Error>> {
    let tls = ca_files[name].clone();
    Ok(Cluster::start(args.config(name, tls, incarnation)).await?)
}

fn record_events(log: &Log, viewer: usize, c: &Cluster) {
    let mut events = c.events();
    let log = log.clone();
    tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            log.lock().unwrap().push((Instant::now(), viewer, e));
        }
    });
}

fn boot_id(c: &Cluster) -> u32 {
    c.members()
        .iter()
        .find(|m| *m.name == *c.name())
        .map_or(0, |m| m.boot_id)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    args.runtime.build()?.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let n = args.members;
    if n < 3 || args.crash >= n {
        return Err("--members must be at least 3 and --crash below it".into());
    }
    if !(0.0..=1.0).contains(&args.loss) {
        return Err("--loss must be in [0, 1]".into());
    }
    let warmup = args
        .warmup
        .unwrap_or_else(|| (args.probe_interval.as_secs_f64() * 2.0 * n as f64).max(30.0));
    let wall = Instant::now();
    let dir = tempfile::tempdir()?;
    let ca = DevCa::new("scenario CA")?;
    let mut files = HashMap::new();
    for i in 0..n {
        let name = format!("node-{i}");
        files.insert(name.clone(), ca.write_node(&dir.path().join(&name), &name)?);
    }
    let mut instances: Vec<Instance> = Vec::new();
    for i in 0..n {
        let name = format!("node-{i}");
        let c = start(&args, &files, &name, 0).await?;
        instances.push(Instance::running(name, c));
    }
    let seed = instances[0]
        .cluster
        .as_ref()
        .expect("started")
        .advertise_addr();
    for (i, inst) in instances.iter().enumerate() {
        let c = inst.cluster.as_ref().expect("started");
        c.join(if i == 0 {
            &[]
        } else {
            std::slice::from_ref(&seed)
        })?;
    }
    let joining = Instant::now();
    while !instances.iter().all(|inst| {
        inst.cluster.as_ref().is_some_and(|c| {
            c.members()
                .iter()
                .filter(|m| m.state == MemberState::Alive)
                .count()
                == n
        })
    }) {
        if joining.elapsed() > Duration::from_secs(120) {
            return Err("the cluster did not converge within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join_s = joining.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;

    // The measured window.
    let log: Log = Arc::default();
    for (i, inst) in instances.iter_mut().enumerate() {
        let c = inst.cluster.as_ref().expect("running");
        record_events(&log, i, c);
        inst.base = counters(c);
    }
    let cpu_start = swim_benches::process_cpu_time();
    let window_start = Instant::now();
    let window = Duration::from_secs_f64(args.duration);
    // (crashed instance, live instances that should see it dead, deadline to do so)
    let mut crashes: Vec<(usize, Vec<usize>, Option<Instant>)> = Vec::new();
    let crash = |instances: &mut Vec<Instance>, i: usize| {
        let inst = &mut instances[i];
        if let Some(c) = inst.cluster.take() {
            inst.last = counters(&c);
            inst.crashed = Some(Instant::now());
            c.crash();
        }
        let watchers = (0..instances.len())
            .filter(|&j| instances[j].cluster.is_some())
            .collect::<Vec<_>>();
        (i, watchers)
    };
    match args.churn_every {
        Some(every) => {
            // Crash node-(n-1), node-(n-2), … in turn (never the seed); each comes back as a
            // new process when the next one goes down.
            let every = Duration::from_secs_f64(every);
            let mut next_victim = n - 1;
            let mut down: Option<usize> = None;
            // Every crash gets a full period to be detected before the window ends.
            let mut at = every / 2;
            while at + every <= window {
                tokio::time::sleep_until((window_start + at).into()).await;
                if let Some(d) = down.take() {
                    let name = instances[d].name.clone();
                    let restarts = instances.iter().filter(|x| x.name == name).count() as u64;
                    let c = start(&args, &files, &name, restarts).await?;
                    c.join(std::slice::from_ref(&seed))?;
                    let index = instances.len();
                    record_events(&log, index, &c);
                    if let Some(last) = crashes.last_mut() {
                        last.2 = Some(Instant::now());
                    }
                    instances.push(Instance::running(name, c));
                }
                let victim = instances
                    .iter()
                    .rposition(|x| x.name == format!("node-{next_victim}") && x.cluster.is_some())
                    .expect("the victim runs");
                let (i, watchers) = crash(&mut instances, victim);
                crashes.push((i, watchers, None));
                down = Some(i);
                next_victim = if next_victim <= 1 {
                    n - 1
                } else {
                    next_victim - 1
                };
                at += every;
            }
        }
        None => {
            let crash_at =
                Duration::from_secs_f64(args.crash_at.unwrap_or(args.duration / 4.0)).min(window);
            tokio::time::sleep(crash_at).await;
            for i in (n - args.crash..n).rev() {
                let (i, watchers) = crash(&mut instances, i);
                crashes.push((i, watchers, None));
            }
        }
    }
    tokio::time::sleep(window.saturating_sub(window_start.elapsed())).await;
    let window_s = window_start.elapsed().as_secs_f64();
    let cpu = (swim_benches::process_cpu_time() - cpu_start).as_secs_f64();
    let (rss, peak_rss) = (proc_status_bytes("VmRSS"), proc_status_bytes("VmHWM"));
    for inst in instances.iter_mut() {
        if let Some(c) = &inst.cluster {
            inst.last = counters(c);
        }
    }

    // Ground truth: a suspicion or death of a process instance (name and boot id) is true
    // if that instance had crashed by then.
    let instance_of: HashMap<(&str, u32), usize> = instances
        .iter()
        .enumerate()
        .map(|(i, x)| ((x.name.as_str(), x.boot_id), i))
        .collect();
    let log = log.lock().unwrap().clone();
    let (mut false_suspicions, mut false_suspicion_views, mut false_deaths, mut false_death_views) =
        (0u64, 0u64, 0u64, 0u64);
    let mut first_suspect: HashMap<usize, Instant> = HashMap::new();
    let mut dead_by: HashMap<usize, HashMap<usize, Instant>> = HashMap::new();
    for (t, viewer, e) in &log {
        let crashed_subject = |name: &str, boot: u32| {
            instance_of
                .get(&(name, boot))
                .copied()
                .filter(|&s| instances[s].crashed.is_some_and(|c| c <= *t))
        };
        match e {
            Event::MemberSuspect { member, accuser } => {
                match crashed_subject(&member.name, member.boot_id) {
                    Some(s) => {
                        first_suspect.entry(s).or_insert(*t);
                    }
                    None => {
                        false_suspicion_views += 1;
                        if **accuser == *instances[*viewer].name {
                            false_suspicions += 1;
                        }
                    }
                }
            }
            Event::MemberDown { member, by_us, .. } => {
                match crashed_subject(&member.name, member.boot_id) {
                    Some(s) => {
                        dead_by.entry(s).or_default().entry(*viewer).or_insert(*t);
                    }
                    None => {
                        false_death_views += 1;
                        if *by_us {
                            false_deaths += 1;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut all_dead = Vec::new();
    let mut first_dead = Vec::new();
    let mut first_suspects = Vec::new();
    let mut undetected = 0usize;
    // Per crash, as `simulate` reports them: seconds from the crash, `None` if not reached.
    let mut rows: Vec<[Option<f64>; 4]> = Vec::new();
    for (s, watchers, deadline) in &crashes {
        let at = instances[*s].crashed.expect("crashed");
        let by = dead_by.get(s).cloned().unwrap_or_default();
        let in_time = |t: &Instant| deadline.is_none_or(|d| *t <= d);
        let since = |t: &Instant| (*t - at).as_secs_f64();
        // Each survivor's detection (a watcher that crashed too is not held to it, as in
        // the simulator); one that never declared it counts as the slowest.
        let mut seen: Vec<Option<f64>> = watchers
            .iter()
            .filter(|&&w| instances[w].crashed.is_none())
            .map(|w| by.get(w).filter(|t| in_time(t)).map(since))
            .collect();
        seen.sort_by(|a, b| {
            a.unwrap_or(f64::INFINITY)
                .total_cmp(&b.unwrap_or(f64::INFINITY))
        });
        let median_dead = seen
            .get(seen.len().div_ceil(2).saturating_sub(1))
            .copied()
            .flatten();
        let last_dead = if seen.iter().all(Option::is_some) {
            seen.last().copied().flatten()
        } else {
            None
        };
        match last_dead {
            Some(t) => all_dead.push(t),
            None => undetected += 1,
        }
        let first = by.values().min().map(since);
        first_dead.extend(first);
        let suspect = first_suspect.get(s).map(since);
        first_suspects.extend(suspect);
        rows.push([suspect, first, median_dead, last_dead]);
    }
    // The q-quantile of a stage over crashes; a crash that never reached it is the slowest.
    let quantile = |stage: usize, q: f64| {
        percentile(rows.iter().map(|r| r[stage].unwrap_or(f64::INFINITY)), q)
            .filter(|t| t.is_finite())
    };
    let stage_names = ["first_suspect", "first_dead", "median_dead", "all_dead"];

    let sum = |key: &str| -> u64 {
        instances
            .iter()
            .map(|x| x.last.get(key).saturating_sub(x.base.get(key)))
            .sum()
    };
    let member_s = n as f64 * window_s;
    let per = |key: &str| sum(key) as f64 / member_s;
    let mut breakdown = Map::new();
    for cause in WireCause::ALL {
        breakdown.insert(cause.name().into(), json!(per(cause.name())));
    }
    breakdown.insert("unattributed".into(), json!(per("unattributed")));
    // Handshakes still under way when the window closed (net of those under way when it
    // opened): with this the causes add up to `wire_bytes_per_member_per_s` exactly.
    let pending: i64 = instances
        .iter()
        .map(|x| x.last.get("handshake_pending") as i64 - x.base.get("handshake_pending") as i64)
        .sum();
    breakdown.insert(
        "handshake_in_progress".into(),
        json!(pending as f64 / member_s),
    );
    let off = args.economies == Economies::Off;
    let report = json!({
        "members": n,
        "runtime": args.runtime.name(),
        "loss": args.loss,
        "seed": args.seed,
        "crash": if args.churn_every.is_some() { crashes.len() } else { args.crash },
        "churn_every_s": args.churn_every,
        "duration_s": window_s,
        "wall_s": wall.elapsed().as_secs_f64(),
        "join_s": join_s,
        "warmup_s": warmup,
        "detect_first_suspect_s": median(first_suspects.into_iter()),
        "detect_first_dead_s": median(first_dead.into_iter()),
        "detect_all_dead_s": if undetected == 0 { median(all_dead.iter().copied()) } else { None },
        "detect_all_dead_max_s": all_dead.iter().copied().fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))),
        "crashes_undetected": undetected,
        "false_suspicions": false_suspicions,
        "false_deaths": false_deaths,
        "false_suspicion_views": false_suspicion_views,
        "false_death_views": false_death_views,
        "false_suspicions_per_member_minute": false_suspicions as f64 / member_s * 60.0,
        "bytes_per_member_per_s": per("payload_bytes"),
        "msgs_per_member_per_s": per("messages"),
        "wire_bytes_per_member_per_s": per("wire_bytes"),
        "wire_bytes_by_cause_per_member_per_s": Value::Object(breakdown),
        "wire_datagrams_per_member_per_s": per("wire_datagrams"),
        "handshakes_full_per_member_minute": per("handshakes_full") * 60.0,
        "handshakes_resumed_per_member_minute": per("handshakes_resumed") * 60.0,
        "handshakes_failed_per_member_minute": per("handshakes_failed") * 60.0,
        "swim_datagrams_delayed": sum("datagrams_delayed"),
        "swim_datagrams_dropped": sum("datagrams_dropped"),
        "cpu_s_per_member_per_s": cpu / member_s,
        "rss_bytes_per_member": rss / n as u64,
        "peak_rss_bytes": peak_rss,
        "probe_interval_s": args.probe_interval.as_secs_f64(),
        "suspicion_mult": args.suspicion_mult,
        "economies": {
            "session_resumption": !(off || args.no_resumption),
            "short_connection_ids": !(off || args.long_cids),
            "mtu_discovery_limited": !(off || args.pmtud),
            "never_throttle": !(off || args.default_congestion),
            "ack_tuning": !(off || args.no_ack_tuning),
            "no_ecn": !(off || args.ecn),
            "no_address_tokens": !(off || args.address_tokens),
            "no_keep_alive": args.keep_alive.is_none(),
            "derived_idle_timeout": !off && args.idle_timeout.is_none(),
            "push_pull_digest": !(off || args.full_push_pull),
        },
    });
    let mut report = report;
    for (i, name) in stage_names.iter().enumerate() {
        report[format!("detect_{name}_p50_s")] = quantile(i, 0.5).into();
        report[format!("detect_{name}_p99_s")] = quantile(i, 0.99).into();
    }
    report["crashes"] = rows
        .iter()
        .map(|r| {
            json!({
                "first_suspect_s": r[0],
                "first_dead_s": r[1],
                "median_dead_s": r[2],
                "all_dead_s": r[3],
            })
        })
        .collect::<Vec<_>>()
        .into();
    // Connection set-up, which the simulator does not model: the rest is what it predicts.
    let setup: f64 = WireCause::ALL
        .iter()
        .filter(|c| c.name().starts_with("handshake"))
        .map(|c| per(c.name()))
        .sum::<f64>()
        + pending as f64 / member_s;
    report["wire_bytes_without_setup_per_member_per_s"] = (per("wire_bytes") - setup).into();
    report["false_suspicions_per_member_hour"] =
        (false_suspicions as f64 / member_s * 3600.0).into();
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    // All at once: each shutdown waits for its connections to drain (a few PTOs), and one
    // after another that took about 75 s for 32 members.
    let mut stopping = tokio::task::JoinSet::new();
    for c in instances.into_iter().filter_map(|inst| inst.cluster) {
        stopping.spawn(c.shutdown());
    }
    stopping.join_all().await;
    Ok(())
}
