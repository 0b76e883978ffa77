//! The simulated network: how a message is delayed (latency, jitter, a retransmission
//! timeout per loss on a stream, a slow receiver), lost (datagrams only) or dropped (a
//! partition, a crashed receiver), and what it counts.

use std::time::Duration;

use super::{Action, Sim};
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
}

impl Sim {
    /// Hands `t` from slot `from` to the network: counted, then delivered later, lost or
    /// dropped.
    pub(super) fn transmit(&mut self, from: usize, t: Transmit, max_datagram: usize) {
        if t.reliable {
            self.net.streams += 1;
            self.net.stream_bytes += t.payload.len() as u64;
        } else {
            self.net.datagrams += 1;
            self.net.datagram_bytes += t.payload.len() as u64;
            if t.payload.len() > max_datagram {
                self.net.oversized += 1;
            }
        }
        let Some(to) = super::slot_of(t.to, self.slots.len()) else {
            self.net.undeliverable += 1;
            return;
        };
        let (sender, receiver) = (self.links[from], self.links[to]);
        // A stream needs both directions (its handshake and acknowledgements); a datagram
        // only this one.
        let blocked = sender.egress_loss >= 1.0
            || receiver.ingress_loss >= 1.0
            || (t.reliable && (sender.ingress_loss >= 1.0 || receiver.egress_loss >= 1.0));
        if sender.group != receiver.group || blocked {
            self.net.undeliverable += 1;
            return;
        }
        // Independent losses: the network's, the sender's way out, the receiver's way in.
        let loss = 1.0
            - (1.0 - self.config.loss) * (1.0 - sender.egress_loss) * (1.0 - receiver.ingress_loss);
        let latency = self.config.latency + self.config.jitter.mul_f64(unit(&mut self.net_rng));
        let mut delay = latency;
        if t.reliable {
            // A stream is not lost; each lost transmission costs one retransmission timeout.
            let rto = (self.config.latency * 4).max(Duration::from_millis(200));
            for _ in 0..10 {
                if unit(&mut self.net_rng) >= loss {
                    break;
                }
                delay += rto;
            }
        } else if loss > 0.0 && unit(&mut self.net_rng) < loss {
            self.net.lost += 1;
            return;
        }
        if let Some(slow) = receiver.slow {
            delay += slow;
        }
        let action = Action::Deliver {
            to: super::slot_index(to),
            from: super::slot_index(from),
            payload: t.payload,
            reliable: t.reliable,
        };
        self.schedule(self.now + delay, action);
    }
}
