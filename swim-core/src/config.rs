//! Protocol configuration: one plain struct, its documented defaults, `validate()`, and the one
//! place ([`Timings`]) where every protocol timing is derived from it.

use std::time::Duration;

use crate::error::ConfigError;
use crate::wire::Framing;

/// Every tunable of the protocol, with LAN defaults close to HashiCorp memberlist's
/// `DefaultLANConfig` (the values most operators already know).
///
/// Build one with `Config::default()`, change fields, then let [`Node::new`](crate::Node::new)
/// call [`Config::validate`]. Timings that depend on the cluster size (suspicion timeout,
/// retransmit limit, push-pull interval) are derived in one place, [`Timings`].
///
/// ```
/// let mut config = swim_core::Config::default();
/// config.probe_interval = std::time::Duration::from_millis(500);
/// config.probe_timeout = std::time::Duration::from_millis(200);
/// config.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Name of the cluster. Push-pull exchanges (and so joins) with a node of another cluster
    /// are refused, so two clusters never merge by accident. Defaults to `"swim"`.
    pub cluster_name: String,
    /// Time between two probes of this node (one protocol period). Shorter detects faster and
    /// costs more messages. 10 ms to 10 min; defaults to 1 s.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking others to probe indirectly. Pick a high
    /// quantile of your round-trip time; must be below `probe_interval`. Defaults to 500 ms.
    pub probe_timeout: Duration,
    /// How many members are asked to ping a target that missed its direct ack (SWIM's `k`).
    /// Defaults to 3.
    pub indirect_checks: usize,
    /// Also send a ping over the reliable channel (a stream) when the direct ack is late, so a
    /// lossy datagram path alone does not cause a suspicion (memberlist's TCP ping).
    /// Defaults to `true`.
    pub reliable_fallback_ping: bool,
    /// Lifeguard on or off: local health multiplier, nacks, dynamic suspicion timeout and the
    /// buddy system. Off gives classic SWIM with a fixed suspicion timeout of
    /// `suspicion_mult · log10(N) · probe_interval`. Defaults to `true`.
    pub lifeguard: bool,
    /// Lifeguard α: the minimum suspicion timeout is `α · max(1, log10(N)) · probe_interval`.
    /// 1 to 100; defaults to 2 (memberlist uses 4). Measured on real QUIC at N = 32 with the
    /// default timings, α = 2 gets a crashed member declared dead by every survivor in a
    /// median 4.9–5.4 s at 0–10 % loss (7.9 s at α = 4), with no false suspicion or death.
    /// The price is pause tolerance: a member unheard for 3.5 s at N = 32 is declared dead
    /// (4.5 s at α = 4), and below 10 members the minimum is 2 s (4 s at α = 4). See
    /// benches/README.md, "Detection".
    pub suspicion_mult: u32,
    /// Lifeguard β: the maximum suspicion timeout is `β ·` the minimum. A fresh suspicion starts
    /// at the maximum and shrinks to the minimum as independent confirmations arrive.
    /// 1 to 100; defaults to 6.
    pub suspicion_max_timeout_mult: u32,
    /// Lifeguard K: the number of independent confirmations that bring a suspicion down to the
    /// minimum timeout (capped at N − 2). At most 64; defaults to 3.
    pub suspicion_confirmations: u32,
    /// Lifeguard: the local health multiplier's ceiling. Probe interval and timeout are scaled
    /// by `1 + score`, `score ∈ [0, awareness_max_multiplier − 1]`. Defaults to 8.
    pub awareness_max_multiplier: u32,
    /// Time between two gossip rounds (only when there is something to spread).
    /// 1 ms to 1 min; defaults to 200 ms.
    pub gossip_interval: Duration,
    /// Members sent each gossip round. Defaults to 3.
    pub gossip_fanout: usize,
    /// Dead members still receive gossip for this long, so a member wrongly declared dead
    /// hears of it and refutes. At most 30 days; defaults to 30 s.
    pub gossip_to_dead_time: Duration,
    /// λ: each update is sent at most `λ · ⌈log10(N + 1)⌉` times. 1 to 64; defaults to 4.
    pub retransmit_mult: u32,
    /// Base interval of push-pull anti-entropy; scaled up with cluster size above 32 members
    /// (see [`Timings::push_pull_interval`]). Zero disables periodic push-pull; otherwise from
    /// `probe_interval` to 1 day. Defaults to 30 s.
    pub push_pull_interval: Duration,
    /// Start each periodic push-pull with a fingerprint of the membership table (one small
    /// datagram); the full state is exchanged only when the peer's table differs. Off, every
    /// period sends the full state both ways, as memberlist does. Defaults to `true`.
    pub push_pull_digest: bool,
    /// How long a member that *left* is kept as a tombstone (so stale news about it is
    /// recognised) before it is forgotten. Must exceed the time an update needs to spread;
    /// from `probe_interval` to 30 days. Defaults to 120 s. Dead members are kept longer:
    /// see `reconnect_timeout`.
    pub tombstone_timeout: Duration,
    /// How long a member declared *dead* stays in the view — listed as `dead`, with the time
    /// it died — and keeps being contacted at the reconnect cadence, so that two sides of a
    /// partition of any length merge again (Serf's reconnect). Then it is forgotten. From
    /// `tombstone_timeout` to 30 days; defaults to 24 h (foca keeps dead members 24 h,
    /// Consul 72 h).
    pub reconnect_timeout: Duration,
    /// How often this node tries to reach the members it holds dead: every interval, with
    /// probability `min(1, dead / alive)`, one random dead member gets a full push-pull (so
    /// the cluster as a whole contacts each dead member about once per interval). At the same
    /// tick, when the view has shrunk, one seed that is not a live member is push-pulled, so
    /// sides that have forgotten each other find each other again. From `probe_interval` to
    /// 1 h; defaults to 30 s (Serf's `reconnect_interval`).
    pub reconnect_interval: Duration,
    /// At most this many dead members are kept; past it the longest-dead is forgotten early
    /// (about 1 KiB each with its certificate, so the default bounds them to a few MiB).
    /// 1 to 1 000 000; defaults to 4096.
    pub max_dead_members: usize,
    /// First retry delay of an unanswered join; doubles up to `join_retry_max`.
    /// Defaults to 1 s.
    pub join_retry_initial: Duration,
    /// Largest join retry delay, at most 1 h. Defaults to 30 s.
    pub join_retry_max: Duration,
    /// Largest datagram this node sends, in bytes (set it from the transport's datagram size).
    /// Defaults to 1200, QUIC's guaranteed minimum.
    pub max_datagram_size: usize,
    /// Largest member metadata, in bytes. Defaults to 512.
    pub max_metadata_size: usize,
    /// Largest user broadcast payload, in bytes; must fit in one datagram with its headers.
    /// Defaults to 512.
    pub max_broadcast_size: usize,
    /// How packets are framed on the transport: set by the transport, not a tuning (swim-net
    /// uses [`Framing::Session`], its ALPN fixing the version). Defaults to
    /// [`Framing::VersionByte`].
    pub framing: Framing,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_name: "swim".into(),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            reliable_fallback_ping: true,
            lifeguard: true,
            suspicion_mult: 2,
            suspicion_max_timeout_mult: 6,
            suspicion_confirmations: 3,
            awareness_max_multiplier: 8,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            gossip_to_dead_time: Duration::from_secs(30),
            retransmit_mult: 4,
            push_pull_interval: Duration::from_secs(30),
            push_pull_digest: true,
            tombstone_timeout: Duration::from_secs(120),
            reconnect_timeout: Duration::from_secs(86_400),
            reconnect_interval: Duration::from_secs(30),
            max_dead_members: 4096,
            join_retry_initial: Duration::from_secs(1),
            join_retry_max: Duration::from_secs(30),
            max_datagram_size: 1200,
            max_metadata_size: 512,
            max_broadcast_size: 512,
            framing: Framing::VersionByte,
        }
    }
}

/// Smallest datagram the protocol can work with: a message header, one full member update
/// with its longest name, and room to spare.
pub(crate) const MIN_DATAGRAM_SIZE: usize = 512;
/// Longest member name, in bytes (a DNS name's limit).
pub(crate) const MAX_NAME_LEN: usize = 253;
/// Bytes a user broadcast needs around its payload: headers, origin name, sequence number.
pub(crate) const BROADCAST_OVERHEAD: usize = 16 + MAX_NAME_LEN + 8;

impl Config {
    /// Checks every constraint the field docs promise, lower and upper bounds alike (every
    /// deadline derived from the config stays far from overflowing an `Instant`); the error
    /// names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn fail(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::OutOfBounds {
                field,
                reason: reason.into(),
            })
        }
        fn within(
            field: &'static str,
            value: Duration,
            (lo, hi): (Duration, Duration),
        ) -> Result<(), ConfigError> {
            if value < lo || value > hi {
                return fail(field, format!("must be {lo:?} to {hi:?}"));
            }
            Ok(())
        }
        fn count(field: &'static str, value: u64, (lo, hi): (u64, u64)) -> Result<(), ConfigError> {
            if value < lo || value > hi {
                return fail(field, format!("must be {lo} to {hi}"));
            }
            Ok(())
        }
        const MINUTE: Duration = Duration::from_secs(60);
        const DAY: Duration = Duration::from_secs(86_400);
        if self.cluster_name.is_empty() || self.cluster_name.len() > MAX_NAME_LEN {
            return fail("cluster_name", format!("must be 1 to {MAX_NAME_LEN} bytes"));
        }
        within(
            "probe_interval",
            self.probe_interval,
            (Duration::from_millis(10), 10 * MINUTE),
        )?;
        if self.probe_timeout.is_zero() || self.probe_timeout >= self.probe_interval {
            return fail(
                "probe_timeout",
                "must be above zero and below probe_interval",
            );
        }
        count("indirect_checks", self.indirect_checks as u64, (0, 16))?;
        count("suspicion_mult", self.suspicion_mult.into(), (1, 100))?;
        count(
            "suspicion_max_timeout_mult",
            self.suspicion_max_timeout_mult.into(),
            (1, 100),
        )?;
        count(
            "suspicion_confirmations",
            self.suspicion_confirmations.into(),
            (0, 64),
        )?;
        count(
            "awareness_max_multiplier",
            self.awareness_max_multiplier.into(),
            (1, 64),
        )?;
        within(
            "gossip_interval",
            self.gossip_interval,
            (Duration::from_millis(1), MINUTE),
        )?;
        count("gossip_fanout", self.gossip_fanout as u64, (1, 64))?;
        within(
            "gossip_to_dead_time",
            self.gossip_to_dead_time,
            (Duration::ZERO, 30 * DAY),
        )?;
        count("retransmit_mult", self.retransmit_mult.into(), (1, 64))?;
        if !self.push_pull_interval.is_zero()
            && (self.push_pull_interval < self.probe_interval || self.push_pull_interval > DAY)
        {
            return fail(
                "push_pull_interval",
                "must be zero (off), or from probe_interval to 1 day",
            );
        }
        if self.tombstone_timeout < self.probe_interval || self.tombstone_timeout > 30 * DAY {
            return fail(
                "tombstone_timeout",
                "must be from probe_interval to 30 days",
            );
        }
        if self.reconnect_timeout < self.tombstone_timeout || self.reconnect_timeout > 30 * DAY {
            return fail(
                "reconnect_timeout",
                "must be from tombstone_timeout to 30 days",
            );
        }
        within(
            "reconnect_interval",
            self.reconnect_interval,
            (self.probe_interval, 60 * MINUTE),
        )?;
        count(
            "max_dead_members",
            self.max_dead_members as u64,
            (1, 1_000_000),
        )?;
        if self.join_retry_initial.is_zero() || self.join_retry_max < self.join_retry_initial {
            return fail(
                "join_retry_initial",
                "must be above zero and at most join_retry_max",
            );
        }
        within(
            "join_retry_max",
            self.join_retry_max,
            (Duration::ZERO, 60 * MINUTE),
        )?;
        if self.max_datagram_size < MIN_DATAGRAM_SIZE || self.max_datagram_size > 65_527 {
            return fail(
                "max_datagram_size",
                format!("must be {MIN_DATAGRAM_SIZE} to 65527 bytes"),
            );
        }
        if self.max_metadata_size > self.max_datagram_size / 2 {
            return fail(
                "max_metadata_size",
                "must be at most half of max_datagram_size",
            );
        }
        if self.max_broadcast_size == 0
            || self.max_broadcast_size + BROADCAST_OVERHEAD > self.max_datagram_size
        {
            return fail(
                "max_broadcast_size",
                format!("must be 1 to max_datagram_size - {BROADCAST_OVERHEAD} bytes"),
            );
        }
        Ok(())
    }

    /// The timings this config implies for a cluster of `members` members.
    pub fn timings(&self, members: usize) -> Timings<'_> {
        Timings {
            config: self,
            members: members.max(1),
        }
    }
}

/// Every timing derived from a [`Config`] for a given cluster size: the single place where
/// formulas live. Obtained from [`Config::timings`].
#[derive(Clone, Copy, Debug)]
pub struct Timings<'a> {
    config: &'a Config,
    members: usize,
}

impl Timings<'_> {
    /// `max(1, log10(N))`, the factor memberlist and Lifeguard scale suspicion with.
    fn log_n(&self) -> f64 {
        (self.members as f64).log10().max(1.0)
    }

    /// Probe interval at local health `score` (Lifeguard scales it by `1 + score`).
    pub fn probe_interval(&self, score: u32) -> Duration {
        self.config.probe_interval * (score + 1)
    }

    /// Direct-ack timeout at local health `score`.
    pub fn probe_timeout(&self, score: u32) -> Duration {
        self.config.probe_timeout * (score + 1)
    }

    /// How long an intermediary waits for the target's ack before sending a nack: 80 % of the
    /// probe timeout (Lifeguard), so the nack reaches the prober before its period ends.
    pub fn nack_timeout(&self) -> Duration {
        self.config.probe_timeout.mul_f64(0.8)
    }

    /// Minimum suspicion timeout: `α · max(1, log10(N)) · probe_interval`.
    pub fn suspicion_min(&self) -> Duration {
        self.config
            .probe_interval
            .mul_f64(self.config.suspicion_mult as f64 * self.log_n())
    }

    /// Maximum suspicion timeout: `β ·` the minimum; with Lifeguard off, the minimum.
    pub fn suspicion_max(&self) -> Duration {
        if self.config.lifeguard {
            self.suspicion_min() * self.config.suspicion_max_timeout_mult
        } else {
            self.suspicion_min()
        }
    }

    /// Independent confirmations needed to reach the minimum timeout: `min(K, N − 2)`.
    pub fn suspicion_confirmations(&self) -> u32 {
        let cap = self.members.saturating_sub(2).min(u32::MAX as usize) as u32;
        self.config.suspicion_confirmations.min(cap)
    }

    /// How many times one update is sent: `λ · ⌈log10(N + 1)⌉`.
    pub fn retransmit_limit(&self) -> u32 {
        self.config.retransmit_mult * ceil_log10(self.members + 1).max(1)
    }

    /// Push-pull interval scaled with cluster size so large clusters do not storm: the base
    /// interval up to 32 members, then `· (⌈log2(N) − log2(32)⌉ + 1)` (memberlist's
    /// `pushPullScale`). `None` when push-pull is off.
    pub fn push_pull_interval(&self) -> Option<Duration> {
        let base = self.config.push_pull_interval;
        if base.is_zero() {
            return None;
        }
        if self.members <= 32 {
            return Some(base);
        }
        let scale = ((self.members as f64).log2() - 32f64.log2()).ceil() as u32 + 1;
        Some(base * scale)
    }

    /// Longest silence expected between two live members, at local health 0: each probes the
    /// other at least once every `2(N − 1)` periods (randomised round robin), so three times
    /// that leaves room for a missed probe and a slowed-down (Lifeguard) prober. A transport
    /// that keeps one connection per pair can let a connection idle out after this long
    /// without ever tearing down one in use.
    pub fn peer_silence_bound(&self) -> Duration {
        self.config.probe_interval * (6 * self.members.saturating_sub(1).max(1) as u32)
    }

    /// Upper bound, at local health 0 and without loss, from a member's crash to every
    /// survivor marking it dead: a prober reaches it within `2(N − 1)` periods (randomised
    /// round robin), one more period to fail the probe, the maximum suspicion timeout, and the
    /// dead update's retransmissions at one gossip interval each.
    pub fn detection_bound(&self) -> Duration {
        let first_probe = self.config.probe_interval * (2 * self.members.saturating_sub(1) as u32);
        first_probe
            + self.config.probe_interval
            + self.suspicion_max()
            + self.config.gossip_interval * self.retransmit_limit()
    }
}

/// `⌈log10(x)⌉` for `x ≥ 1`, in integers: exact, and no floating-point logarithm on paths
/// that run for every message (the retransmit limit bounds every piggyback).
fn ceil_log10(x: usize) -> u32 {
    let floor = x.max(1).ilog10();
    if 10usize.pow(floor) == x {
        floor
    } else {
        floor + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ceil_log10_is_the_float_formula() {
        let float = |x: usize| (x as f64).log10().ceil() as u32;
        // Up to 10^12 members and far beyond any cluster; above 10^15 the float formula
        // rounds 10^15 + 1 down to 15, where the integer one is exact.
        let around_powers = (0..13).flat_map(|k| {
            let p = 10usize.pow(k);
            [p.saturating_sub(1).max(1), p, p + 1]
        });
        for x in (1..200_000).chain(around_powers) {
            assert_eq!(ceil_log10(x), float(x), "x = {x}");
        }
        assert_eq!(ceil_log10(10usize.pow(15) + 1), 16);
        assert_eq!(ceil_log10(usize::MAX), 20);
    }

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn every_duration_and_count_has_an_upper_bound() {
        let day = Duration::from_secs(86_400);
        type Case = (&'static str, fn(&mut Config));
        let cases: [Case; 12] = [
            ("tombstone_timeout", |c| c.tombstone_timeout = Duration::MAX),
            ("reconnect_timeout", |c| c.reconnect_timeout = Duration::MAX),
            ("reconnect_interval", |c| {
                c.reconnect_interval = Duration::MAX
            }),
            ("max_dead_members", |c| c.max_dead_members = usize::MAX),
            ("probe_interval", |c| {
                c.probe_interval = 365 * Duration::from_secs(86_400)
            }),
            ("push_pull_interval", |c| {
                c.push_pull_interval = Duration::MAX
            }),
            ("gossip_interval", |c| {
                c.gossip_interval = Duration::from_secs(3600)
            }),
            ("gossip_to_dead_time", |c| {
                c.gossip_to_dead_time = Duration::MAX
            }),
            ("join_retry_max", |c| c.join_retry_max = Duration::MAX),
            ("suspicion_mult", |c| c.suspicion_mult = u32::MAX),
            ("suspicion_max_timeout_mult", |c| {
                c.suspicion_max_timeout_mult = 1000
            }),
            ("retransmit_mult", |c| c.retransmit_mult = u32::MAX),
        ];
        for (field, set) in cases {
            let mut c = Config::default();
            set(&mut c);
            match c.validate() {
                Err(ConfigError::OutOfBounds { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        // The largest values accepted keep every deadline representable.
        let c = Config {
            probe_interval: Duration::from_secs(600),
            probe_timeout: Duration::from_secs(599),
            push_pull_interval: day,
            suspicion_mult: 100,
            suspicion_max_timeout_mult: 100,
            awareness_max_multiplier: 64,
            tombstone_timeout: 30 * day,
            reconnect_timeout: 30 * day,
            reconnect_interval: Duration::from_secs(3600),
            ..Config::default()
        };
        c.validate().unwrap();
        let t = c.timings(usize::MAX);
        let now = std::time::Instant::now();
        let _ = now + t.suspicion_max() + t.probe_interval(63) + c.reconnect_timeout;
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = Config::default();
        c.probe_timeout = c.probe_interval;
        match c.validate() {
            Err(ConfigError::OutOfBounds { field, .. }) => assert_eq!(field, "probe_timeout"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn suspicion_timeouts_follow_lifeguard_formula() {
        let c = Config::default();
        let t = c.timings(1000);
        // α = 2, β = 6: 2 · log10(1000) · 1 s = 6 s, and 6 · 6 s.
        assert_eq!(t.suspicion_min(), Duration::from_secs(6));
        assert_eq!(t.suspicion_max(), Duration::from_secs(36));
        // Below 10 members log10 counts as 1: 2 · 1 · 1 s.
        assert_eq!(c.timings(5).suspicion_min(), Duration::from_secs(2));
        assert_eq!(t.retransmit_limit(), 4 * 4);
        assert_eq!(c.timings(9).retransmit_limit(), 4);
    }

    #[test]
    fn push_pull_scales_with_cluster_size() {
        let c = Config::default();
        assert_eq!(
            c.timings(32).push_pull_interval(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            c.timings(64).push_pull_interval(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            c.timings(10_000).push_pull_interval(),
            Some(Duration::from_secs(300))
        );
    }
}
