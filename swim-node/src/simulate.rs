//! `swim-node simulate`: runs `swim_core::sim::Scenario` for the given settings and prints
//! a readable summary or one JSON object.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;
use swim_core::sim::{percentile, CrashOutcome, Fault, Report, Scenario, SimConfig, WireModel};
use swim_core::Config;

use crate::config::{self, SwimFlags};
use crate::settings;

/// Settings of a simulated crash-detection run. Protocol defaults are those of `swim-node
/// run` (swim-core's LAN defaults).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Random datagram loss probability, 0 ≤ P < 1 (streams are delayed, not lost).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Members crashed (chosen from the seed) at `--crash-at`.
    #[arg(long, default_value_t = 1)]
    crash: usize,
    /// Simulated seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// When the crashes happen, simulated seconds from the start [default: min(10, duration/4)].
    #[arg(long)]
    crash_at: Option<f64>,
    /// Seed: the same seed and settings replay the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    /// Also write the detection latency as an SVG chart to FILE: the share of survivor views
    /// that had declared a crashed member dead by each second after the crash, true and as
    /// reported by the nodes.
    #[arg(long, value_name = "FILE")]
    plot: Option<std::path::PathBuf>,
    /// Start with every node joining through node 0 instead of an already converged cluster.
    #[arg(long)]
    join_start: bool,
    /// One-way link latency.
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Extra uniform random latency, 0 to this.
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    jitter: Duration,
    /// Time a member takes to handle one message; messages to a member queue behind each
    /// other (CPU per message on a loaded host). 0: folded into the latency.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    processing: Duration,
    /// Modelled wire: bytes of QUIC and TLS around each datagram (short header, DATAGRAM
    /// frame header, AEAD tag, the ACK frame riding on it), as quic_scenario measured them.
    #[arg(long, value_name = "BYTES", default_value_t = WireModel::default().datagram_overhead)]
    wire_datagram_overhead: u32,
    /// Modelled wire: bytes of an ACK-only packet (for a datagram not answered at once).
    #[arg(long, value_name = "BYTES", default_value_t = WireModel::default().ack_only_packet)]
    wire_ack_only: u32,
    /// Modelled wire: bytes of QUIC and TLS around each packet of a stream message.
    #[arg(long, value_name = "BYTES", default_value_t = WireModel::default().stream_packet_overhead)]
    wire_stream_overhead: u32,
    /// A fault, `KIND@START+LENGTH` (repeat for more): `split[:FRACTION]` (the first
    /// FRACTION of the members, 0.5 by default, cut off from the rest), `deaf` (the last
    /// member hears nothing), `mute` (nobody hears the last member), `flaky[:LOSS]` (the last
    /// member loses LOSS, 0.8 by default, of what it receives). E.g. `--fault split@20s+10m`,
    /// `--fault flaky:0.8@10s+5m`.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<Fault>,
    /// The config file of `swim-node run`: its `[swim]` section (and `cluster_name`) sets
    /// every simulated member's protocol; the flags below win over it. Every key's name and
    /// type is checked as `run` checks them and the protocol settings are validated; the
    /// rest of the file describes one process and is not used (no `name` or TLS files
    /// required, transport limits not checked), and `SWIM_*` variables are not read.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Protocol settings: every `[swim]` key of `swim-node run`, with the same defaults.
    #[command(flatten)]
    swim: SwimFlags,
    /// The same as `--lifeguard false`; kept for scripts written before the protocol flags
    /// came from the `[swim]` keys.
    #[arg(long, hide = true)]
    no_lifeguard: bool,
}

impl Args {
    fn node_config(&self) -> Result<Config> {
        let mut config = config::swim_with(self.config.as_deref(), &self.swim.0).map_err(|e| {
            match &self.config {
                // The value may come from the file: name the key, as `run` does.
                Some(_) => anyhow::anyhow!("{e}"),
                // Here the keys are flags: name the flag.
                None => {
                    let flag = settings::all_keys()
                        .find(|k| k.path() == e.key)
                        .map_or(e.key.clone(), |k| k.flag());
                    anyhow::anyhow!("--{flag}: {}", e.problem)
                }
            }
        })?;
        if self.no_lifeguard {
            config.lifeguard = false;
        }
        Ok(config)
    }

    fn scenario(&self) -> Result<Scenario> {
        if self.members < 2 {
            bail!("--members must be at least 2");
        }
        if !(0.0..1.0).contains(&self.loss) {
            bail!("--loss must be at least 0 and below 1, got {}", self.loss);
        }
        if self.crash >= self.members {
            bail!("--crash must be below --members ({})", self.members);
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            bail!("--duration must be a positive number of seconds");
        }
        let duration = Duration::from_secs_f64(self.duration);
        let mut wire = WireModel::default();
        wire.datagram_overhead = self.wire_datagram_overhead;
        wire.ack_only_packet = self.wire_ack_only;
        wire.stream_packet_overhead = self.wire_stream_overhead;
        let sim = SimConfig {
            members: self.members,
            seed: self.seed,
            node: self.node_config()?,
            latency: self.latency,
            jitter: self.jitter,
            loss: self.loss,
            processing: self.processing,
            converged_start: !self.join_start,
            wire,
            ..SimConfig::default()
        };
        let mut scenario = Scenario::new(sim, self.crash, duration);
        if !self.faults.is_empty() && self.crash + 1 >= self.members {
            bail!("--crash must leave at least one member besides the faulty one");
        }
        scenario.faults = self.faults.clone();
        if let Some(at) = self.crash_at {
            if !(at.is_finite() && at >= 0.0 && at <= self.duration) {
                bail!("--crash-at must be between 0 and --duration");
            }
            scenario.crash_at = Duration::from_secs_f64(at);
        }
        Ok(scenario)
    }
}

/// `KIND@START+LENGTH`, see `Args::faults`.
fn parse_fault(text: &str) -> Result<Fault, String> {
    Fault::parse(text, |s| {
        humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
    })
}

pub(crate) fn run(args: Args) -> Result<()> {
    let scenario = args.scenario()?;
    let started = Instant::now();
    let report = scenario.run();
    let wall_s = started.elapsed().as_secs_f64();
    let peak_rss = peak_rss_bytes();
    if args.json {
        println!("{}", to_json(&args, &scenario, &report, wall_s, peak_rss));
    } else {
        print_summary(&args, &report, wall_s, peak_rss);
    }
    // After the figures: a chart that cannot be drawn loses nothing else.
    if let Some(path) = &args.plot {
        let title = format!(
            "{} members, {} % loss, {} crash(es), seed {}: detection latency",
            report.members,
            args.loss * 100.0,
            report.crashes.len(),
            args.seed
        );
        crate::plot::detection_cdf(path, &report, &title)?;
    }
    Ok(())
}

fn to_json(
    args: &Args,
    scenario: &Scenario,
    r: &Report,
    wall_s: f64,
    peak_rss: Option<u64>,
) -> serde_json::Value {
    let c = &scenario.sim.node;
    let crashes: Vec<_> = r
        .crashes
        .iter()
        .map(|c| {
            json!({
                "slot": c.slot,
                "at_s": c.at_s,
                "first_suspect_s": c.first_suspect_s,
                "first_dead_s": c.first_dead_s,
                "median_dead_s": c.median_dead_s,
                "all_dead_s": c.all_dead_s,
                "suspicion_spread_s": c.suspicion_spread_s,
                "death_spread_s": c.death_spread_s,
            })
        })
        .collect();
    let crashes = serde_json::Value::from(crashes);
    // Dissemination in gossip rounds, against the ⌈log_fanout N⌉ rounds an epidemic with
    // that fanout needs to reach N members.
    let spreads = || r.dissemination_s.iter().copied();
    let rounds = |q: f64| percentile(spreads(), q).map(|s| s / c.gossip_interval.as_secs_f64());
    let log_fanout_n = (c.gossip_fanout > 1)
        .then(|| ((r.members.max(1) as f64).ln() / (c.gossip_fanout as f64).ln()).ceil());
    let config = json!({
        "lifeguard": c.lifeguard,
        "probe_interval_s": c.probe_interval.as_secs_f64(),
        "probe_timeout_s": c.probe_timeout.as_secs_f64(),
        "indirect_checks": c.indirect_checks,
        "suspicion_mult": c.suspicion_mult,
        "suspicion_max_timeout_mult": c.suspicion_max_timeout_mult,
        "suspicion_confirmations": c.suspicion_confirmations,
        "gossip_interval_s": c.gossip_interval.as_secs_f64(),
        "gossip_fanout": c.gossip_fanout,
        "retransmit_mult": c.retransmit_mult,
        "push_pull_interval_s": c.push_pull_interval.as_secs_f64(),
        "latency_s": args.latency.as_secs_f64(),
        "jitter_s": args.jitter.as_secs_f64(),
        "converged_start": !args.join_start,
    });
    let mut v = json!({
        "members": r.members,
        "loss": args.loss,
        "seed": args.seed,
        "crash": args.crash,
        "crash_at_s": scenario.crash_at.as_secs_f64(),
        "duration_s": r.duration_s,
        "wall_s": wall_s,
        "detect_first_suspect_s": r.detect_first_suspect_s,
        "detect_first_dead_s": r.detect_first_dead_s,
        "detect_all_dead_s": r.detect_all_dead_s,
        "false_suspicions": r.false_suspicions,
        "false_deaths": r.false_deaths,
        "false_suspicion_views": r.false_suspicion_views,
        "false_death_views": r.false_death_views,
        "leaves_seen_as_deaths": r.leaves_seen_as_deaths,
        "detection_true_median_s": r.detection_true_median_s,
        "detection_reported_median_s": r.detection_reported_median_s,
        "detection_metric_excess_median_s": r.detection_metric_excess_median_s,
        "detection_metric_excess_max_s": r.detection_metric_excess_max_s,
        "detection_metric_excess_min_s": r.detection_metric_excess_min_s,
        "detection_metric_excess_over_heard_max_s": r.detection_metric_excess_over_heard_max_s,
        "detection_metric_excess_over_heard_min_s": r.detection_metric_excess_over_heard_min_s,
        "bytes_per_member_per_s": r.bytes_per_member_per_s,
        "msgs_per_member_per_s": r.msgs_per_member_per_s,
        "datagram_bytes": r.net.datagram_bytes,
        "stream_bytes": r.net.stream_bytes,
        "datagrams_lost": r.net.lost,
        "oversized_datagrams": r.net.oversized,
        "peak_rss_bytes": peak_rss,
        "private_member_records": r.private_records,
        "faults": args.faults.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
        "faulty_deaths_per_observer_max": r.faulty_deaths_per_observer_max,
        "faulty_deaths_per_observer_mean": r.faulty_deaths_per_observer_mean,
        "faulty_suspicions_per_observer_max": r.faulty_suspicions_per_observer_max,
        "healthy_false_death_views": r.healthy_false_death_views,
        "merged_after_fault_s": r.merged_after_fault_s,
    });
    // Set apart: one more key in the literal above passes `json!`'s recursion limit.
    v["dissemination_samples"] = r.dissemination_s.len().into();
    v["dissemination_p50_s"] = percentile(spreads(), 0.5).into();
    v["dissemination_p99_s"] = percentile(spreads(), 0.99).into();
    v["dissemination_rounds_p50"] = rounds(0.5).into();
    v["dissemination_rounds_p99"] = rounds(0.99).into();
    v["log_fanout_members"] = log_fanout_n.into();
    for (name, _, of) in DETECTION_STAGES {
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            v[format!("detect_{name}_{label}_s")] = crash_quantile(&r.crashes, of, q).into();
        }
    }
    v["wire_bytes_per_member_per_s"] = r.wire_bytes_per_member_per_s.into();
    v["wire_packets_per_member_per_s"] = r.wire_packets_per_member_per_s.into();
    v["ack_only_packets"] = r.net.ack_only_packets.into();
    v["crashes"] = crashes;
    v["config"] = config;
    let network = &scenario.sim;
    v["config"]["processing_s"] = network.processing.as_secs_f64().into();
    v["config"]["wire_datagram_overhead"] = network.wire.datagram_overhead.into();
    v["config"]["wire_ack_only"] = network.wire.ack_only_packet.into();
    v["config"]["wire_stream_overhead"] = network.wire.stream_packet_overhead.into();
    v
}

/// The stages of a crash's detection: name in the JSON, in the summary, and where each
/// crash holds it.
type Stage = fn(&CrashOutcome) -> Option<f64>;
const DETECTION_STAGES: [(&str, &str, Stage); 4] = [
    ("first_suspect", "first suspect         ", |c| {
        c.first_suspect_s
    }),
    ("first_dead", "first dead            ", |c| c.first_dead_s),
    ("median_dead", "dead at half the rest ", |c| c.median_dead_s),
    ("all_dead", "dead at every survivor", |c| c.all_dead_s),
];

/// The `q`-quantile over crashes of one stage; a crash that never reached it counts as
/// later than every other, so a quantile that falls on one is `None` (not reached).
fn crash_quantile(crashes: &[CrashOutcome], stage: Stage, q: f64) -> Option<f64> {
    let times = crashes.iter().map(|c| stage(c).unwrap_or(f64::INFINITY));
    percentile(times, q).filter(|t| t.is_finite())
}

fn print_summary(args: &Args, r: &Report, wall_s: f64, peak_rss: Option<u64>) {
    let s = |v: Option<f64>| v.map_or("not reached".to_string(), |x| format!("{x:.2} s"));
    println!(
        "simulated {} members for {:.0} s at {:.1} % loss (seed {}) in {:.2} s of wall time",
        r.members,
        r.duration_s,
        args.loss * 100.0,
        args.seed,
        wall_s
    );
    println!(
        "crashed {} member(s), p50 / p99 over crashes:",
        r.crashes.len()
    );
    for (_, label, stage) in DETECTION_STAGES {
        let q = |q| s(crash_quantile(&r.crashes, stage, q));
        println!("  crash → {label} {} / {}", q(0.5), q(0.99));
    }
    println!(
        "false suspicions {} ({} views), false deaths {} ({} views)",
        r.false_suspicions, r.false_suspicion_views, r.false_deaths, r.false_death_views
    );
    println!(
        "traffic {:.1} B and {:.2} messages per member per second; on a QUIC + TLS wire \
         {:.1} B and {:.2} packets (connection set-up not modelled)",
        r.bytes_per_member_per_s,
        r.msgs_per_member_per_s,
        r.wire_bytes_per_member_per_s,
        r.wire_packets_per_member_per_s
    );
    if !args.faults.is_empty() {
        println!(
            "faults {:?}: merged {} after the last ended; the faulty member's deaths per \
             healthy observer max {} (mean {:.2}); healthy members declared dead in healthy \
             views {}",
            args.faults,
            s(r.merged_after_fault_s),
            r.faulty_deaths_per_observer_max,
            r.faulty_deaths_per_observer_mean,
            r.healthy_false_death_views
        );
    }
    if let Some(rss) = peak_rss {
        println!("peak RSS {:.1} MiB", rss as f64 / (1024.0 * 1024.0));
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), if readable.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use swim_core::sim::FaultKind;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        Wrap::try_parse_from(std::iter::once("simulate").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let err = parse(&["--loss", "1.5"])
            .scenario()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--loss"), "{err}");
        let err = parse(&["--probe-timeout", "2s"])
            .scenario()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--probe-timeout"), "{err}");
        let err = parse(&["--members", "3", "--crash", "3"])
            .scenario()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--crash"), "{err}");
    }

    #[test]
    fn the_node_file_sets_the_protocol_and_flags_win_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        // A node's file as deployed: its TLS files are not here, and need not be.
        std::fs::write(
            &path,
            "name = \"n1\"\ncluster_name = \"prod\"\n[tls]\nca = \"/nowhere/ca.pem\"\n\
             [swim]\nprobe_interval = \"2s\"\nsuspicion_mult = 6\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let node = parse(&["--config", file]).scenario().unwrap().sim.node;
        assert_eq!(node.probe_interval, Duration::from_secs(2));
        assert_eq!(node.suspicion_mult, 6);
        assert_eq!(node.cluster_name, "prod");
        let node = parse(&["--config", file, "--suspicion-mult", "3"])
            .scenario()
            .unwrap()
            .sim
            .node;
        assert_eq!(
            (node.probe_interval, node.suspicion_mult),
            (Duration::from_secs(2), 3)
        );

        // What the file gets wrong is named by its key, as `run` names it.
        std::fs::write(&path, "[swim]\nprobe_timeout = \"5s\"\n").unwrap();
        let err = parse(&["--config", file])
            .scenario()
            .unwrap_err()
            .to_string();
        assert!(err.contains("swim.probe_timeout"), "{err}");
        std::fs::write(&path, "[swim]\nprobe_intervall = \"1s\"\n").unwrap();
        let err = parse(&["--config", file])
            .scenario()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("swim.probe_intervall") && err.contains("unknown"),
            "{err}"
        );
    }

    #[test]
    fn plot_writes_the_detection_cdf_as_svg_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdf.svg");
        let file = path.to_str().unwrap();
        run(parse(&[
            "--members",
            "8",
            "--duration",
            "40",
            "--json",
            "--plot",
            file,
        ]))
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("8 members") && svg.contains("since_last_alive"));
        // The two curves, true (blue) and reported (red), each a line of many points.
        for colour in ["#0000FF", "#FF0000"] {
            let curve = svg
                .lines()
                .find(|l| {
                    l.contains("<polyline") && l.contains(colour) && l.contains("width=\"2\"")
                })
                .unwrap_or_else(|| panic!("no {colour} curve: {svg}"));
            assert!(curve.matches(',').count() > 3, "{curve}");
        }

        let err = run(parse(&[
            "--members",
            "8",
            "--crash",
            "0",
            "--duration",
            "5",
            "--plot",
            file,
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("nothing to plot"), "{err}");
    }

    #[test]
    fn the_network_model_is_set_by_its_flags() {
        let sim = parse(&[]).scenario().unwrap().sim;
        assert_eq!(
            (sim.processing, sim.wire),
            (Duration::ZERO, WireModel::default())
        );
        let sim = parse(&[
            "--processing",
            "5ms",
            "--wire-datagram-overhead",
            "40",
            "--wire-ack-only",
            "30",
            "--wire-stream-overhead",
            "50",
            "--latency",
            "3ms",
        ])
        .scenario()
        .unwrap()
        .sim;
        assert_eq!(sim.processing, Duration::from_millis(5));
        assert_eq!(sim.latency, Duration::from_millis(3));
        let w = sim.wire;
        assert_eq!(
            (
                w.datagram_overhead,
                w.ack_only_packet,
                w.stream_packet_overhead
            ),
            (40, 30, 50)
        );
    }

    #[test]
    fn faults_parse_and_bad_ones_are_named() {
        let args = parse(&["--fault", "split:0.25@20s+10m", "--fault", "flaky@1s+5m"]);
        assert_eq!(args.faults.len(), 2);
        assert_eq!(
            args.faults[1],
            Fault::new(
                FaultKind::Flaky { ingress_loss: 0.8 },
                Duration::from_secs(1),
                Duration::from_secs(300)
            )
        );
        for bad in [
            "split",
            "split@20s",
            "quake@1s+1s",
            "flaky:2@1s+1s",
            "deaf@x+1s",
        ] {
            let err = Wrap::try_parse_from(["simulate", "--fault", bad]).err();
            assert!(err.is_some(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_partition_longer_than_the_tombstone_merges_and_the_json_says_when() {
        let args = parse(&[
            "--members",
            "12",
            "--crash",
            "0",
            "--duration",
            "400",
            "--tombstone-timeout",
            "20s",
            "--reconnect-interval",
            "10s",
            "--fault",
            "split@10s+200s",
        ]);
        let scenario = args.scenario().unwrap();
        let v = to_json(&args, &scenario, &scenario.run(), 0.0, None);
        let merged = v["merged_after_fault_s"].as_f64().expect("merged");
        assert!(merged < 60.0, "{v}");
    }

    #[test]
    fn json_has_the_documented_keys() {
        let args = parse(&["--members", "8", "--duration", "40", "--seed", "3"]);
        let scenario = args.scenario().unwrap();
        let report = scenario.run();
        let v = to_json(&args, &scenario, &report, 0.0, None);
        for key in [
            "members",
            "loss",
            "seed",
            "duration_s",
            "wall_s",
            "detect_first_suspect_s",
            "detect_first_dead_s",
            "detect_all_dead_s",
            "detect_median_dead_p50_s",
            "detect_all_dead_p99_s",
            "wire_bytes_per_member_per_s",
            "wire_packets_per_member_per_s",
            "false_suspicions",
            "false_deaths",
            "bytes_per_member_per_s",
            "msgs_per_member_per_s",
            "dissemination_rounds_p50",
            "dissemination_rounds_p99",
            "log_fanout_members",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        // One crash: its suspicion reached every survivor, within the run.
        assert_eq!(v["dissemination_samples"], 1, "{v}");
        let p50 = v["dissemination_p50_s"].as_f64().expect("measured");
        let p99 = v["dissemination_p99_s"].as_f64().expect("measured");
        assert!((0.0..40.0).contains(&p50) && p50 <= p99, "{v}");
        assert_eq!(v["log_fanout_members"], 2.0, "⌈log3 8⌉");
        assert!(
            v["detect_all_dead_s"].as_f64().is_some(),
            "the crash was detected: {v}"
        );
        assert_eq!(v["false_deaths"], 0);
        // The median survivor declares it no earlier than the first and no later than the
        // last; with one crash its p50 and p99 are that crash's.
        let c = &v["crashes"][0];
        let at = |k: &str| c[k].as_f64().expect(k);
        assert!(
            at("first_dead_s") <= at("median_dead_s") && at("median_dead_s") <= at("all_dead_s")
        );
        assert_eq!(v["detect_median_dead_p50_s"], c["median_dead_s"]);
        assert_eq!(v["detect_all_dead_p99_s"], c["all_dead_s"]);
    }

    #[test]
    fn a_crash_never_detected_makes_its_quantiles_not_reached() {
        let crashes: Vec<CrashOutcome> =
            parse(&["--members", "4", "--crash", "2", "--duration", "20"])
                .scenario()
                .unwrap()
                .run()
                .crashes;
        let mut undetected = crashes.clone();
        undetected[0].all_dead_s = None;
        let all_dead = DETECTION_STAGES[3].2;
        let q = |c: &[CrashOutcome], q| crash_quantile(c, all_dead, q);
        assert!(q(&crashes, 0.99).is_some());
        assert_eq!(
            q(&undetected, 0.99),
            None,
            "the slowest is one never reached"
        );
        assert_eq!(
            q(&undetected, 0.5),
            crashes[1].all_dead_s,
            "nearest rank of two"
        );
    }
}
