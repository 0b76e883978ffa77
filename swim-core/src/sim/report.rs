//! Ground truth and measurement for the simulator: which process really crashed when, and
//! how each node's declarations compare with it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Heard, NetStats, Sim, Slot};
use crate::Event;

/// What happened to one process (slot, boot id).
#[derive(Debug, Default, Clone, Copy)]
struct Fate {
    crashed: Option<Instant>,
    left: Option<Instant>,
    stopped: Option<Instant>,
}

impl Fate {
    fn running(&self) -> bool {
        self.crashed.is_none() && self.stopped.is_none()
    }
}

#[derive(Debug, Clone)]
struct CrashTrack {
    slot: usize,
    at: Instant,
    /// Its last datagrams that reached a running member before the crash.
    heard: Heard,
    first_suspect: Option<Instant>,
    first_dead: Option<Instant>,
    /// First time each viewer marked it dead.
    dead_by: HashMap<usize, Instant>,
    /// First time each viewer marked it suspect or dead: when the news reached it.
    known_by: HashMap<usize, Instant>,
}

/// Detection of one crash, in seconds after the crash.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CrashOutcome {
    /// The crashed slot.
    pub slot: usize,
    /// Virtual time of the crash since the start.
    pub at_s: f64,
    /// Crash → first member marks it suspect.
    pub first_suspect_s: Option<f64>,
    /// Crash → first member marks it dead.
    pub first_dead_s: Option<f64>,
    /// Crash → half the survivors have marked it dead: the median survivor's detection
    /// (`None`: fewer than half had by the end).
    pub median_dead_s: Option<f64>,
    /// Crash → every survivor has marked it dead (`None`: not all had by the end).
    pub all_dead_s: Option<f64>,
    /// Dissemination of the suspicion: first suspicion → every survivor has marked it
    /// suspect or dead (`None`: not all had by the end).
    pub suspicion_spread_s: Option<f64>,
    /// First death → dead at every survivor. Not a dissemination: every view that held the
    /// suspicion declares the death on its own timer, so when each reached its minimum
    /// timeout this equals `suspicion_spread_s`.
    pub death_spread_s: Option<f64>,
}

/// Measurements of a run against ground truth.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// Members at start.
    pub members: usize,
    /// Virtual seconds simulated.
    pub duration_s: f64,
    /// One entry per crash.
    pub crashes: Vec<CrashOutcome>,
    /// Median over crashes of crash → first suspicion.
    pub detect_first_suspect_s: Option<f64>,
    /// Median over crashes of crash → first death declaration.
    pub detect_first_dead_s: Option<f64>,
    /// Median over crashes of crash → every survivor marked it dead (`None` if any crash was
    /// not fully detected).
    pub detect_all_dead_s: Option<f64>,
    /// Every crash's suspicion spread (see [`CrashOutcome`]), in seconds: how long one
    /// update took to reach every survivor.
    pub dissemination_s: Vec<f64>,
    /// Suspicions raised (a node's own probe failed) about a process that was running.
    pub false_suspicions: u64,
    /// Views (node, member) that marked a running process suspect, however they learned it.
    pub false_suspicion_views: u64,
    /// Deaths declared (a node's own suspicion timer expired) about a process that was running.
    pub false_deaths: u64,
    /// Views that marked a running process dead, however they learned it.
    pub false_death_views: u64,
    /// Views that marked a member dead after it had left gracefully (a leave counted as a
    /// failure).
    pub leaves_seen_as_deaths: u64,
    /// Median over (viewer, crash) of the true detection latency: crash → this viewer marks dead.
    pub detection_true_median_s: Option<f64>,
    /// Every one of those views, as (true latency, what the node reported as
    /// `since_last_alive`) in seconds: the distribution behind the two medians.
    pub detection_views: Vec<(f64, f64)>,
    /// Median of what the node reports as `since_last_alive` for those same declarations.
    pub detection_reported_median_s: Option<f64>,
    /// Median over views of `since_last_alive − true latency` (how much the live metric
    /// overstates detection latency).
    pub detection_metric_excess_median_s: Option<f64>,
    /// The largest of those differences over every view (the metric's worst overstatement).
    pub detection_metric_excess_max_s: Option<f64>,
    /// The smallest (its worst understatement, when negative).
    pub detection_metric_excess_min_s: Option<f64>,
    /// The largest and smallest, over every view, of `since_last_alive` minus the latency
    /// counted from the moment a datagram from the crashed member last reached a running
    /// member: how far the metric is from the best that can be known (a member whose last
    /// datagrams were lost was silent for longer than the crash says).
    pub detection_metric_excess_over_heard_max_s: Option<f64>,
    /// The smallest of those (negative: the metric says less than can be known).
    pub detection_metric_excess_over_heard_min_s: Option<f64>,
    /// Every message's bytes / members / seconds: SWIM payload only.
    pub bytes_per_member_per_s: f64,
    /// The same on the modelled QUIC + TLS wire ([`super::WireModel`]): what a real node's
    /// socket would send, connection set-up aside.
    pub wire_bytes_per_member_per_s: f64,
    /// Packets on that wire / members / seconds.
    pub wire_packets_per_member_per_s: f64,
    /// Every message / members / seconds.
    pub msgs_per_member_per_s: f64,
    /// What the network carried.
    pub net: NetStats,
    /// Member records held privately by running nodes at the end (beyond the shared base).
    pub private_records: usize,
    /// Faulty members (one-way partitioned or flaky, see [`Sim::mark_faulty`]): how many
    /// times the healthy observer that saw it most often declared one of them dead (its
    /// *flaps*: removed once and kept out is 1).
    pub faulty_deaths_per_observer_max: u64,
    /// The same, averaged over healthy observers.
    pub faulty_deaths_per_observer_mean: f64,
    /// How many times the healthy observer that saw it most often raised or heard a
    /// suspicion of a faulty member.
    pub faulty_suspicions_per_observer_max: u64,
    /// Views of healthy members that marked another healthy, running member dead: the
    /// false deaths a faulty member caused (0 is the target).
    pub healthy_false_death_views: u64,
    /// Seconds from the end of the last fault until every running member held every other
    /// alive, when a scenario with faults measured it (`None`: no fault, or not by the end).
    pub merged_after_fault_s: Option<f64>,
}

#[derive(Debug, Default)]
pub(super) struct Recorder {
    fates: HashMap<(usize, u32), Fate>,
    crashes: Vec<CrashTrack>,
    crash_index: HashMap<(usize, u32), usize>,
    false_suspicions: u64,
    false_suspicion_views: u64,
    false_deaths: u64,
    false_death_views: u64,
    leaves_seen_as_deaths: u64,
    true_latency: Vec<f64>,
    reported_latency: Vec<f64>,
    metric_excess: Vec<f64>,
    metric_excess_over_heard: Vec<f64>,
    /// Slots marked faulty, and per healthy viewer the deaths and suspicions of them it saw.
    faulty: HashSet<usize>,
    faulty_deaths: HashMap<usize, u64>,
    faulty_suspicions: HashMap<usize, u64>,
    healthy_false_death_views: u64,
    pub(super) merged_after_fault_s: Option<f64>,
}

impl Recorder {
    pub(super) fn started(&mut self, slot: usize, boot_id: u32) {
        self.fates.insert((slot, boot_id), Fate::default());
    }

    /// A datagram `slot` sent before its crash reached `to` at `at`.
    pub(super) fn heard_after_crash(&mut self, slot: usize, boot_id: u32, to: usize, at: Instant) {
        if let Some(&c) = self.crash_index.get(&(slot, boot_id)) {
            self.crashes[c].heard.record(to, at);
        }
    }

    pub(super) fn crashed(&mut self, slot: usize, boot_id: u32, at: Instant, heard: Heard) {
        self.fates.entry((slot, boot_id)).or_default().crashed = Some(at);
        self.crash_index.insert((slot, boot_id), self.crashes.len());
        self.crashes.push(CrashTrack {
            slot,
            at,
            heard,
            first_suspect: None,
            first_dead: None,
            dead_by: HashMap::new(),
            known_by: HashMap::new(),
        });
    }

    pub(super) fn mark_faulty(&mut self, slot: usize) {
        self.faulty.insert(slot);
    }

    pub(super) fn left(&mut self, slot: usize, boot_id: u32, at: Instant) {
        self.fates.entry((slot, boot_id)).or_default().left = Some(at);
    }

    pub(super) fn stopped(&mut self, slot: usize, boot_id: u32, at: Instant) {
        self.fates.entry((slot, boot_id)).or_default().stopped = Some(at);
    }

    pub(super) fn event(
        &mut self,
        now: Instant,
        viewer: usize,
        slots: &[Slot],
        by_name: &HashMap<Arc<str>, usize>,
        event: &Event,
    ) {
        let viewer_name = &slots[viewer].name;
        match event {
            Event::MemberSuspect { member, accuser } => {
                let Some(&slot) = by_name.get(&member.name) else {
                    return;
                };
                let key = (slot, member.boot_id);
                if self.faulty.contains(&slot) && !self.faulty.contains(&viewer) {
                    *self.faulty_suspicions.entry(viewer).or_default() += 1;
                }
                if self.fates.get(&key).is_some_and(Fate::running) {
                    self.false_suspicion_views += 1;
                    if accuser == viewer_name {
                        self.false_suspicions += 1;
                    }
                }
                if let Some(&c) = self.crash_index.get(&key) {
                    let track = &mut self.crashes[c];
                    track.first_suspect.get_or_insert(now);
                    track.known_by.entry(viewer).or_insert(now);
                }
            }
            Event::MemberDown {
                member,
                since_last_alive,
                by_us,
                ..
            } => {
                let Some(&slot) = by_name.get(&member.name) else {
                    return;
                };
                let key = (slot, member.boot_id);
                let fate = self.fates.get(&key).copied().unwrap_or_default();
                if !self.faulty.contains(&viewer) {
                    if self.faulty.contains(&slot) {
                        *self.faulty_deaths.entry(viewer).or_default() += 1;
                    } else if fate.running() {
                        self.healthy_false_death_views += 1;
                    }
                }
                if fate.running() {
                    self.false_death_views += 1;
                    if *by_us {
                        self.false_deaths += 1;
                    }
                }
                if fate.left.is_some() {
                    self.leaves_seen_as_deaths += 1;
                }
                if let Some(&c) = self.crash_index.get(&key) {
                    // A receiver that crashed after the datagram and before this death could
                    // not have passed on what it heard.
                    let new_view = !self.crashes[c].dead_by.contains_key(&viewer);
                    let heard = new_view
                        .then(|| {
                            self.crashes[c].heard.latest(|r, at| {
                                !self
                                    .crashes
                                    .iter()
                                    .any(|t| t.slot == r && t.at >= at && t.at <= now)
                            })
                        })
                        .flatten();
                    let track = &mut self.crashes[c];
                    track.first_dead.get_or_insert(now);
                    track.known_by.entry(viewer).or_insert(now);
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        track.dead_by.entry(viewer)
                    {
                        e.insert(now);
                        let truth = (now - track.at).as_secs_f64();
                        let reported = since_last_alive.as_secs_f64();
                        self.true_latency.push(truth);
                        self.reported_latency.push(reported);
                        self.metric_excess.push(reported - truth);
                        if let Some(heard) = heard {
                            let knowable = (now - heard).as_secs_f64();
                            self.metric_excess_over_heard.push(reported - knowable);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn report(&self, sim: &Sim) -> Report {
        let secs = |d: Duration| d.as_secs_f64();
        let crashes: Vec<CrashOutcome> = self
            .crashes
            .iter()
            .map(|c| {
                // Survivors: running now, and already running when the crash happened.
                let survivors: Vec<usize> = sim
                    .running()
                    .filter(|&j| j != c.slot && sim.slots[j].started <= c.at)
                    .collect();
                // When the last survivor had it in `by`, if every one did.
                let last = |by: &HashMap<usize, Instant>| {
                    survivors
                        .iter()
                        .map(|j| by.get(j).copied())
                        .collect::<Option<Vec<_>>>()
                        .map(|ts| ts.into_iter().max().unwrap_or(c.at))
                };
                let all_dead = last(&c.dead_by);
                // The median survivor (nearest rank): a survivor that never declared it
                // counts as later than any that did.
                let median_dead = {
                    let mut ts: Vec<Option<Instant>> = survivors
                        .iter()
                        .map(|j| c.dead_by.get(j).copied())
                        .collect();
                    ts.sort_by_key(|t| (t.is_none(), *t));
                    ts.get(ts.len().div_ceil(2).saturating_sub(1))
                        .copied()
                        .flatten()
                };
                let spread = |first: Option<Instant>, all: Option<Instant>| {
                    Some(secs(all?.saturating_duration_since(first?)))
                };
                CrashOutcome {
                    slot: c.slot,
                    at_s: secs(c.at - sim.epoch),
                    first_suspect_s: c.first_suspect.map(|t| secs(t - c.at)),
                    first_dead_s: c.first_dead.map(|t| secs(t - c.at)),
                    median_dead_s: median_dead.map(|t| secs(t - c.at)),
                    all_dead_s: all_dead.map(|t| secs(t - c.at)),
                    suspicion_spread_s: spread(c.first_suspect, last(&c.known_by)),
                    death_spread_s: spread(c.first_dead, all_dead),
                }
            })
            .collect();
        let all_detected = crashes.iter().all(|c| c.all_dead_s.is_some());
        let duration_s = sim.elapsed().as_secs_f64();
        let members = sim.config.members.max(1) as f64;
        let per = |x: u64| {
            if duration_s > 0.0 {
                x as f64 / members / duration_s
            } else {
                0.0
            }
        };
        let net = sim.net_stats();
        // Every healthy running member observes the faulty ones, seeing them die or not.
        let observers: Vec<usize> = sim.running().filter(|j| !self.faulty.contains(j)).collect();
        let deaths: Vec<u64> = observers
            .iter()
            .map(|j| self.faulty_deaths.get(j).copied().unwrap_or(0))
            .collect();
        let faulty_deaths_per_observer_mean = if deaths.is_empty() || self.faulty.is_empty() {
            0.0
        } else {
            deaths.iter().sum::<u64>() as f64 / deaths.len() as f64
        };
        Report {
            members: sim.config.members,
            duration_s,
            detect_first_suspect_s: median(crashes.iter().filter_map(|c| c.first_suspect_s)),
            detect_first_dead_s: median(crashes.iter().filter_map(|c| c.first_dead_s)),
            detect_all_dead_s: if all_detected {
                median(crashes.iter().filter_map(|c| c.all_dead_s))
            } else {
                None
            },
            dissemination_s: crashes
                .iter()
                .filter_map(|c| c.suspicion_spread_s)
                .collect(),
            crashes,
            false_suspicions: self.false_suspicions,
            false_suspicion_views: self.false_suspicion_views,
            false_deaths: self.false_deaths,
            false_death_views: self.false_death_views,
            leaves_seen_as_deaths: self.leaves_seen_as_deaths,
            detection_true_median_s: median(self.true_latency.iter().copied()),
            detection_reported_median_s: median(self.reported_latency.iter().copied()),
            detection_views: self
                .true_latency
                .iter()
                .copied()
                .zip(self.reported_latency.iter().copied())
                .collect(),
            detection_metric_excess_median_s: median(self.metric_excess.iter().copied()),
            detection_metric_excess_max_s: self.metric_excess.iter().copied().reduce(f64::max),
            detection_metric_excess_min_s: self.metric_excess.iter().copied().reduce(f64::min),
            detection_metric_excess_over_heard_max_s: self
                .metric_excess_over_heard
                .iter()
                .copied()
                .reduce(f64::max),
            detection_metric_excess_over_heard_min_s: self
                .metric_excess_over_heard
                .iter()
                .copied()
                .reduce(f64::min),
            bytes_per_member_per_s: per(net.datagram_bytes + net.stream_bytes),
            wire_bytes_per_member_per_s: per(net.wire_bytes),
            wire_packets_per_member_per_s: per(net.wire_packets),
            msgs_per_member_per_s: per(net.datagrams + net.streams),
            net,
            private_records: sim.private_records(),
            faulty_deaths_per_observer_max: deaths.iter().copied().max().unwrap_or(0),
            faulty_deaths_per_observer_mean,
            faulty_suspicions_per_observer_max: self
                .faulty_suspicions
                .values()
                .copied()
                .max()
                .unwrap_or(0),
            healthy_false_death_views: self.healthy_false_death_views,
            merged_after_fault_s: self.merged_after_fault_s,
        }
    }
}

/// The `q`-quantile of the values (`q` in `[0, 1]`), nearest rank; `None` if empty.
pub fn percentile(values: impl Iterator<Item = f64>, q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Median of the values (mean of the two middle ones for an even count); `None` if empty.
///
/// ```
/// use swim_core::sim::{median, percentile};
/// let v = [4.0, 1.0, 3.0, 2.0];
/// assert_eq!(median(v.into_iter()), Some(2.5));
/// assert_eq!(percentile(v.into_iter(), 0.5), Some(2.0), "nearest rank");
/// assert_eq!(percentile(v.into_iter(), 0.99), Some(4.0));
/// assert_eq!(percentile(v.into_iter(), 0.0), Some(1.0));
/// assert_eq!(percentile(std::iter::empty(), 0.5), None);
/// ```
pub fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}
