//! The simulated network: how a message is delayed (latency, jitter, a retransmission
//! timeout per loss on a stream, a slow receiver, the receiver's processing of what it was
//! sent before), lost (datagrams only) or dropped (a partition, a crashed receiver), and
//! what it counts (SWIM bytes, and packets and bytes on a modelled QUIC wire).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Action, Sim, SimConfig};
use crate::node::unit;
use crate::Transmit;

/// A message the network delivered to a running member.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// Virtual time of delivery since the start.
    pub at: Duration,
    /// The sending slot.
    pub from: usize,
    /// The receiving slot.
    pub to: usize,
    /// The bytes, as sent.
    pub payload: Vec<u8>,
    /// On a stream (`true`) or as a datagram.
    pub reliable: bool,
}

/// What a message costs on a QUIC + TLS wire beyond its SWIM bytes: the simulator sends
/// SWIM messages, and counts what a real node's socket would. The defaults are quinn's
/// packets as `quic_scenario` measured them (UDP payload, IP and UDP headers not counted;
/// `benches/README.md`, "The physical floor"): a ping 2 + 30 bytes, an ack 2 + 27, the
/// ACK-only packet 26, 3.00 packets per member-second in steady state. Connection set-up
/// (handshakes, failed dials to a dead member) is not modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireModel {
    /// Bytes a packet carrying one datagram adds to it: 4-byte short header (2-byte
    /// connection ID), 2-byte DATAGRAM frame header, 16-byte AEAD tag, and the ACK frame that
    /// rides on it (5 to 8 bytes). Defaults to 28.
    pub datagram_overhead: u32,
    /// Bytes each packet of a stream message adds: header, STREAM frame header, tag, ACK
    /// frame. Defaults to 30.
    pub stream_packet_overhead: u32,
    /// Stream bytes per packet (quinn's 1 200-byte initial MTU, path-MTU discovery off, less
    /// the overhead). Defaults to 1 170.
    pub stream_packet_payload: u32,
    /// An ACK-only packet: header, ACK frame, tag. Sent for a datagram the receiver does not
    /// answer at once (a DATAGRAM frame is ack-eliciting and quinn acknowledges within
    /// 25 ms), and for every second packet of a stream message. Defaults to 26.
    pub ack_only_packet: u32,
}

impl Default for WireModel {
    fn default() -> Self {
        Self {
            datagram_overhead: 28,
            stream_packet_overhead: 30,
            stream_packet_payload: 1170,
            ack_only_packet: 26,
        }
    }
}

impl WireModel {
    /// Packets of a stream message of `len` bytes (at least one: the FIN).
    fn stream_packets(&self, len: usize) -> u64 {
        (len as u64)
            .div_ceil(u64::from(self.stream_packet_payload.max(1)))
            .max(1)
    }
}

/// Counters of what the network carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub datagrams: u64,
    /// Their bytes.
    pub datagram_bytes: u64,
    /// Stream messages handed to the network.
    pub streams: u64,
    /// Their bytes.
    pub stream_bytes: u64,
    /// Datagrams lost to random loss.
    pub lost: u64,
    /// Messages dropped by a partition or because the receiver was down.
    pub undeliverable: u64,
    /// Datagrams larger than the sender's `max_datagram_size` (a protocol bug if not zero).
    pub oversized: u64,
    /// Messages the receiving member refused (a protocol bug if not zero: every member of a
    /// simulation speaks the protocol).
    pub refused: u64,
    /// Packets on a modelled QUIC wire ([`WireModel`]): one per datagram, a stream message's
    /// packets, and the ACK-only packets its receivers send.
    pub wire_packets: u64,
    /// Their bytes (UDP payload): SWIM bytes and the modelled QUIC and TLS overhead.
    pub wire_bytes: u64,
    /// Of `wire_packets`, ACK-only.
    pub ack_only_packets: u64,
}

/// How the network treats one member's traffic. Apart from the members: every message sent
/// reads its receiver's, and a few bytes per member stay in cache where a whole node does
/// not.
#[derive(Clone, Copy, Debug, Default)]
struct Link {
    group: u32,
    /// Probability that a message to (`ingress_loss`) or from (`egress_loss`) this member
    /// is lost: a flaky member, or at 1.0 a one-way partition.
    ingress_loss: f64,
    egress_loss: f64,
    slow: Option<Duration>,
    /// With processing time: when this member is done with the messages it has been sent
    /// so far.
    busy_until: Option<Instant>,
}

/// The simulated network between members `0..n`, apart from what runs on it: [`Sim`] runs
/// swim nodes on it, and a benchmark can run another protocol's members on the very same
/// network (same latency, jitter, loss, partitions, and the same random stream for a seed:
/// different traffic draws from it differently).
///
/// It decides when a message arrives, or that it does not, and counts what it carried; the
/// caller delivers it at that instant.
#[derive(Debug)]
pub struct Network {
    latency: Duration,
    jitter: Duration,
    loss: f64,
    processing: Duration,
    wire: WireModel,
    links: Vec<Link>,
    rng: ChaCha8Rng,
    stats: NetStats,
}

impl Network {
    /// The network of `config` (its members, latency, jitter, loss, processing time, wire
    /// model and seed; the node settings are not read). Its random stream is that of a
    /// [`Sim`] of the same config.
    pub fn new(config: &SimConfig) -> Self {
        // The simulation's first draw from the seed seeds the network.
        let rng = ChaCha8Rng::seed_from_u64(ChaCha8Rng::seed_from_u64(config.seed).next_u64());
        Self {
            latency: config.latency,
            jitter: config.jitter,
            loss: config.loss,
            processing: config.processing,
            wire: config.wire,
            links: vec![Link::default(); config.members],
            rng,
            stats: NetStats::default(),
        }
    }

    /// Hands a message of `len` bytes from member `from` to member `to` (`None`: an
    /// address that is no member's) at `now`: counted, then the instant it arrives, or
    /// `None` if it is lost or dropped. A datagram above `max_datagram` bytes is counted as
    /// oversized (and still sent).
    pub fn send(
        &mut self,
        now: Instant,
        from: usize,
        to: Option<usize>,
        len: usize,
        reliable: bool,
        max_datagram: usize,
    ) -> Option<Instant> {
        let wire = self.wire;
        let bytes = len as u64;
        if reliable {
            self.stats.streams += 1;
            self.stats.stream_bytes += bytes;
            let packets = wire.stream_packets(len);
            self.stats.wire_packets += packets;
            self.stats.wire_bytes += bytes + packets * u64::from(wire.stream_packet_overhead);
        } else {
            self.stats.datagrams += 1;
            self.stats.datagram_bytes += bytes;
            self.stats.wire_packets += 1;
            self.stats.wire_bytes += bytes + u64::from(wire.datagram_overhead);
            if len > max_datagram {
                self.stats.oversized += 1;
            }
        }
        let Some(to) = to else {
            self.stats.undeliverable += 1;
            return None;
        };
        let (sender, receiver) = (self.links[from], self.links[to]);
        // A stream needs both directions (its handshake and acknowledgements); a datagram
        // only this one.
        let blocked = sender.egress_loss >= 1.0
            || receiver.ingress_loss >= 1.0
            || (reliable && (sender.ingress_loss >= 1.0 || receiver.egress_loss >= 1.0));
        if sender.group != receiver.group || blocked {
            self.stats.undeliverable += 1;
            return None;
        }
        // Independent losses: the network's, the sender's way out, the receiver's way in.
        let loss =
            1.0 - (1.0 - self.loss) * (1.0 - sender.egress_loss) * (1.0 - receiver.ingress_loss);
        let mut delay = self.latency + self.jitter.mul_f64(unit(&mut self.rng));
        if reliable {
            // A stream is not lost; each lost transmission costs one retransmission timeout.
            let rto = (self.latency * 4).max(Duration::from_millis(200));
            for _ in 0..10 {
                if unit(&mut self.rng) >= loss {
                    break;
                }
                delay += rto;
            }
        } else if loss > 0.0 && unit(&mut self.rng) < loss {
            self.stats.lost += 1;
            return None;
        }
        if let Some(slow) = receiver.slow {
            delay += slow;
        }
        Some(now + delay)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether the network has no members.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Whether members take time to handle a message: then a message that arrives first
    /// waits its turn at the receiver ([`take_turn`](Self::take_turn)).
    pub fn processes(&self) -> bool {
        !self.processing.is_zero()
    }

    /// A message has arrived at `to` at `now`, which handles one at a time: when it will
    /// have handled this one, after what arrived before it.
    pub fn take_turn(&mut self, to: usize, now: Instant) -> Instant {
        let start = self.links[to].busy_until.map_or(now, |b| b.max(now));
        let done = start + self.processing;
        self.links[to].busy_until = Some(done);
        done
    }

    /// Counts the ACK-only packets the receiver of a delivered message sends back: for a
    /// datagram, one unless it answered the sender at once (the ACK rode on the answer);
    /// for a stream message, one per two packets, less one that rode on an answer.
    pub fn acknowledge(&mut self, reliable: bool, len: usize, answered: bool) {
        let wire = self.wire;
        let owed = if reliable {
            wire.stream_packets(len).div_ceil(2)
        } else {
            1
        };
        let alone = owed - u64::from(answered);
        self.stats.ack_only_packets += alone;
        self.stats.wire_packets += alone;
        self.stats.wire_bytes += alone * u64::from(wire.ack_only_packet);
    }

    /// Counts a message that arrived at a member no longer running.
    pub fn receiver_down(&mut self) {
        self.stats.undeliverable += 1;
    }

    /// Counts a message its receiver refused.
    pub fn refused(&mut self) {
        self.stats.refused += 1;
    }

    /// What the network carried so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Puts member `i` in partition group `group`; only members of one group reach each
    /// other.
    pub fn set_group(&mut self, i: usize, group: u32) {
        self.links[i].group = group;
    }

    /// Loses each message to member `i` with probability `loss` (at 1.0: `i` hears
    /// nothing, and no stream reaches or leaves it).
    pub fn set_ingress_loss(&mut self, i: usize, loss: f64) {
        self.links[i].ingress_loss = loss.clamp(0.0, 1.0);
    }

    /// Loses each message from member `i` with probability `loss` (at 1.0: nobody hears
    /// `i`).
    pub fn set_egress_loss(&mut self, i: usize, loss: f64) {
        self.links[i].egress_loss = loss.clamp(0.0, 1.0);
    }

    /// Delays everything member `i` receives by `delay`; `None` makes it normal again.
    pub fn set_slow(&mut self, i: usize, delay: Option<Duration>) {
        self.links[i].slow = delay;
    }

    /// Changes the datagram loss probability of every link.
    pub fn set_loss(&mut self, loss: f64) {
        self.loss = loss;
    }

    /// Member `i` is a new process: it has no backlog.
    pub fn restarted(&mut self, i: usize) {
        self.links[i].busy_until = None;
    }

    /// Removes every partition, symmetric and one-way, and every member's own loss.
    pub fn heal(&mut self) {
        for link in &mut self.links {
            *link = Link {
                slow: link.slow,
                busy_until: link.busy_until,
                ..Link::default()
            };
        }
    }
}

impl Sim {
    /// Hands `t` from slot `from` to the network: counted, then delivered later, lost or
    /// dropped.
    pub(super) fn transmit(&mut self, from: usize, t: Transmit, max_datagram: usize) {
        if self.awaiting_answer == Some(t.to) {
            self.awaiting_answer = None;
        }
        let to = super::slot_of(t.to, self.slots.len());
        let sent = self.network.send(
            self.now,
            from,
            to,
            t.payload.len(),
            t.reliable,
            max_datagram,
        );
        let (Some(at), Some(to)) = (sent, to) else {
            return;
        };
        let action = Action::Deliver {
            to: super::slot_index(to),
            from: super::slot_index(from),
            payload: t.payload,
            reliable: t.reliable,
            // With processing time it first queues at the receiver, on arrival.
            queued: self.network.processes(),
        };
        self.schedule(at, action);
    }

    /// Watches the transmits of the input about to be handled for one to `to`.
    pub(super) fn await_answer(&mut self, to: SocketAddr) {
        self.awaiting_answer = Some(to);
    }

    /// Whether an input since [`Sim::await_answer`] sent something back.
    pub(super) fn answered(&mut self) -> bool {
        self.awaiting_answer.take().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;
    use crate::{Config, Framing};

    #[test]
    fn a_stream_message_takes_a_packet_per_mtu_and_an_ack_per_two() {
        let wire = WireModel::default();
        assert_eq!(wire.stream_packets(0), 1, "the FIN alone");
        assert_eq!(wire.stream_packets(1170), 1);
        assert_eq!(wire.stream_packets(1171), 2);
        assert_eq!(wire.stream_packets(3 * 1170), 3);
        let mut net = Network::new(&SimConfig {
            members: 2,
            ..SimConfig::default()
        });
        let before = net.stats();
        net.acknowledge(true, 3 * 1170, false);
        net.acknowledge(true, 3 * 1170, true);
        net.acknowledge(false, 10, true);
        net.acknowledge(false, 10, false);
        let after = net.stats();
        // 2 + 1 for the streams (one rode on the answer), 0 + 1 for the datagrams.
        assert_eq!(after.ack_only_packets - before.ack_only_packets, 4);
        assert_eq!(after.wire_bytes - before.wire_bytes, 4 * 26);
    }

    /// The steady state `quic_scenario` measured: a ping, an ack that carries the ping's
    /// ACK, and an ACK-only packet for the ack, 3 packets per member-second.
    #[test]
    fn a_steady_probe_cycle_costs_three_packets_per_member_second() {
        let node = Config {
            framing: Framing::Session,
            ..Config::default()
        };
        let mut sim = Sim::new(SimConfig {
            members: 16,
            seed: 7,
            node,
            ..SimConfig::default()
        });
        sim.run_for(Duration::from_secs(5));
        let start = sim.net_stats();
        sim.run_for(Duration::from_secs(120));
        let n = sim.net_stats();
        let (datagrams, acks) = (
            n.datagrams - start.datagrams,
            n.ack_only_packets - start.ack_only_packets,
        );
        let per_member_s = |x: u64| x as f64 / 16.0 / 120.0;
        let packets = per_member_s(n.wire_packets - start.wire_packets);
        assert!(
            (2.95..=3.05).contains(&packets),
            "{packets} packets/member/s"
        );
        assert!(
            acks * 2 >= datagrams - 16 && acks * 2 <= datagrams + 16,
            "one ACK-only packet per ping-ack pair: {acks} for {datagrams} datagrams"
        );
        let wire = WireModel::default();
        let streams = n.streams - start.streams;
        assert_eq!(streams, 0, "no stream in a steady run at 0 % loss");
        assert_eq!(
            n.wire_bytes - start.wire_bytes,
            (n.datagram_bytes - start.datagram_bytes)
                + datagrams * u64::from(wire.datagram_overhead)
                + acks * u64::from(wire.ack_only_packet)
        );
    }

    /// Processing time queues: a member that needs longer to handle a ping and its ack than
    /// the probe timeout looks dead to its prober, one that does not, never.
    #[test]
    fn processing_time_delays_every_message_and_queues_a_burst() {
        let run = |processing_ms: u64| {
            let sim = SimConfig {
                members: 8,
                seed: 3,
                processing: Duration::from_millis(processing_ms),
                ..SimConfig::default()
            };
            crate::sim::Scenario::new(sim, 0, Duration::from_secs(30)).run()
        };
        assert_eq!(run(0).false_suspicions, 0);
        assert_eq!(
            run(100).false_suspicions,
            0,
            "ping and ack in 200 ms: within 500"
        );
        assert!(
            run(300).false_suspicions > 0,
            "ping and ack in 600 ms: past 500"
        );

        // Two messages arriving at once: the second waits for the first; one arriving
        // after both are done waits for nothing.
        let mut net = Network::new(&SimConfig {
            members: 2,
            processing: Duration::from_millis(50),
            ..SimConfig::default()
        });
        let now = Instant::now();
        assert_eq!(net.take_turn(1, now), now + Duration::from_millis(50));
        assert_eq!(net.take_turn(1, now), now + Duration::from_millis(100));
        let later = now + Duration::from_millis(500);
        assert_eq!(net.take_turn(1, later), later + Duration::from_millis(50));
    }
}
