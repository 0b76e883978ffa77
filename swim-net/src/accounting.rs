//! Where every byte on the wire goes: each QUIC packet this member sends is classified, from
//! its plaintext frames just before encryption, into one [`WireCause`].
//!
//! The socket ([`crate::socket`]) counts what leaves the process; this module says why. The
//! two agree byte for byte except for handshakes still under way (attributed once they end:
//! [`WireStats::handshake_pending_bytes`]) and the few packets quinn sends unencrypted
//! (stateless resets, version negotiation), which [`WireStats::unattributed_bytes`] shows.

use std::sync::atomic::{AtomicU64, Ordering};

use swim_core::{Framing, MessageKind};

/// Why a byte was sent. Every byte of every encrypted QUIC packet has exactly one cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum WireCause {
    /// SWIM message bytes carried in QUIC DATAGRAM frames, by message type.
    Datagram(MessageKind),
    /// Message bytes carried on streams: push-pull state, fallback pings, oversized messages.
    StreamData,
    /// The rest of every packet that carries SWIM bytes: QUIC header, packet number, AEAD
    /// tag, frame headers, and ACK frames riding along.
    QuicFraming,
    /// Packets holding nothing but acknowledgements (and padding).
    AckOnly,
    /// Packets whose only ack-eliciting frame is PING: keep-alives (and loss probes to a
    /// peer without the ACK-frequency extension).
    KeepAlive,
    /// Packets whose only ack-eliciting frame is IMMEDIATE_ACK: loss probes, sent when an
    /// acknowledgement is late (lost, or slower than the peer's promised delay).
    LossProbe,
    /// Path-MTU discovery probes (PING padded to the size being tested).
    MtuProbe,
    /// Other QUIC control frames: connection IDs, flow-control credit, closes.
    Control,
    /// Handshake packets (and session tickets) of handshakes that verified certificates.
    HandshakeFull,
    /// Handshake packets (and session tickets) of handshakes that resumed a TLS session.
    HandshakeResumed,
    /// Handshake packets of handshakes that never completed (refused, timed out, closed).
    HandshakeFailed,
}

impl WireCause {
    /// Every cause, in counter order.
    pub const ALL: [WireCause; 16] = [
        WireCause::Datagram(MessageKind::Ping),
        WireCause::Datagram(MessageKind::Ack),
        WireCause::Datagram(MessageKind::PingReq),
        WireCause::Datagram(MessageKind::Nack),
        WireCause::Datagram(MessageKind::Gossip),
        WireCause::Datagram(MessageKind::PushPull),
        WireCause::StreamData,
        WireCause::QuicFraming,
        WireCause::AckOnly,
        WireCause::KeepAlive,
        WireCause::LossProbe,
        WireCause::MtuProbe,
        WireCause::Control,
        WireCause::HandshakeFull,
        WireCause::HandshakeResumed,
        WireCause::HandshakeFailed,
    ];

    /// Lower-case name, used as a metric label and a JSON key.
    pub fn name(self) -> &'static str {
        match self {
            WireCause::Datagram(MessageKind::Ping) => "datagram_ping",
            WireCause::Datagram(MessageKind::Ack) => "datagram_ack",
            WireCause::Datagram(MessageKind::PingReq) => "datagram_ping_req",
            WireCause::Datagram(MessageKind::Nack) => "datagram_nack",
            WireCause::Datagram(MessageKind::Gossip) => "datagram_gossip",
            WireCause::Datagram(MessageKind::PushPull) => "datagram_push_pull",
            WireCause::Datagram(_) => "datagram_other",
            WireCause::StreamData => "stream_data",
            WireCause::QuicFraming => "quic_framing",
            WireCause::AckOnly => "ack_only",
            WireCause::KeepAlive => "keep_alive",
            WireCause::LossProbe => "loss_probe",
            WireCause::MtuProbe => "mtu_probe",
            WireCause::Control => "control",
            WireCause::HandshakeFull => "handshake_full",
            WireCause::HandshakeResumed => "handshake_resumed",
            WireCause::HandshakeFailed => "handshake_failed",
        }
    }

    fn index(self) -> usize {
        // Every kind the packet parser produces is in `ALL`; anything else would be a new
        // message kind this build does not know, which counts as control.
        WireCause::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or_else(|| WireCause::Control.index())
    }
}

const CAUSES: usize = WireCause::ALL.len();

/// UDP traffic through one member's socket, and the cause of every byte it sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireStats {
    /// Datagrams sent.
    pub sent_datagrams: u64,
    /// UDP payload bytes sent (QUIC packets; IP and UDP headers not included).
    pub sent_bytes: u64,
    /// Datagrams received.
    pub received_datagrams: u64,
    /// UDP payload bytes received.
    pub received_bytes: u64,
    sent_by_cause: [u64; CAUSES],
    packets_by_cause: [u64; CAUSES],
    /// Handshakes completed that presented and verified certificates.
    pub handshakes_full: u64,
    /// Handshakes completed by resuming an earlier TLS session (no certificates sent).
    pub handshakes_resumed: u64,
    /// Handshakes that never completed (dials given up on — a crashed peer —, or refused),
    /// on either side.
    pub handshakes_failed: u64,
    /// SWIM datagrams the transport held back for at least half a probe timeout (congestion
    /// control, pacing) instead of sending them at once.
    pub datagrams_delayed: u64,
    /// Bytes sent by handshakes still under way, attributed to a handshake cause once they
    /// end (a level, not a running total: it falls when they settle).
    pub handshake_pending_bytes: u64,
    /// SWIM datagrams the transport dropped before sending: its send buffer was full (at
    /// least one per send that overflowed it; should quinn drop more, the rest show as
    /// delayed).
    pub datagrams_dropped: u64,
}

impl WireStats {
    /// Bytes sent for `cause`.
    pub fn sent_bytes_for(&self, cause: WireCause) -> u64 {
        self.sent_by_cause[cause.index()]
    }

    /// QUIC packets sent for `cause`. A packet carrying SWIM datagrams counts once, under the
    /// type of its first datagram; [`WireCause::QuicFraming`] is bytes only.
    pub fn sent_packets_for(&self, cause: WireCause) -> u64 {
        self.packets_by_cause[cause.index()]
    }

    /// Socket bytes no cause accounts for (nor a handshake under way): packets quinn sends
    /// without encrypting them, such as stateless resets.
    pub fn unattributed_bytes(&self) -> u64 {
        let attributed: u64 = self.sent_by_cause.iter().sum();
        self.sent_bytes
            .saturating_sub(attributed)
            .saturating_sub(self.handshake_pending_bytes)
    }
}

/// The live counters behind [`WireStats`], shared by the socket and the packet keys.
#[derive(Debug, Default)]
pub(crate) struct WireCounters {
    pub(crate) sent_datagrams: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) received_datagrams: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    sent_by_cause: [AtomicU64; CAUSES],
    packets_by_cause: [AtomicU64; CAUSES],
    pub(crate) handshakes_full: AtomicU64,
    pub(crate) handshakes_resumed: AtomicU64,
    pub(crate) handshakes_failed: AtomicU64,
    pub(crate) datagrams_delayed: AtomicU64,
    pub(crate) datagrams_dropped: AtomicU64,
    /// Bytes of handshakes not yet over (not yet known to be full, resumed or failed).
    pub(crate) handshake_pending: AtomicU64,
}

impl WireCounters {
    pub(crate) fn snapshot(&self) -> WireStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WireStats {
            sent_datagrams: load(&self.sent_datagrams),
            sent_bytes: load(&self.sent_bytes),
            received_datagrams: load(&self.received_datagrams),
            received_bytes: load(&self.received_bytes),
            sent_by_cause: std::array::from_fn(|i| load(&self.sent_by_cause[i])),
            packets_by_cause: std::array::from_fn(|i| load(&self.packets_by_cause[i])),
            handshakes_full: load(&self.handshakes_full),
            handshakes_resumed: load(&self.handshakes_resumed),
            handshakes_failed: load(&self.handshakes_failed),
            datagrams_delayed: load(&self.datagrams_delayed),
            datagrams_dropped: load(&self.datagrams_dropped),
            handshake_pending_bytes: load(&self.handshake_pending),
        }
    }

    pub(crate) fn add(&self, cause: WireCause, bytes: u64, packets: u64) {
        let i = cause.index();
        self.sent_by_cause[i].fetch_add(bytes, Ordering::Relaxed);
        self.packets_by_cause[i].fetch_add(packets, Ordering::Relaxed);
    }

    /// Accounts one 1-RTT packet whose frames are `payload` and whose header, tag and all
    /// come to `total` bytes. Returns `true` if it carried TLS handshake data (session
    /// tickets), which the caller attributes to its handshake instead.
    pub(crate) fn add_short_packet(&self, total: usize, payload: &[u8]) -> bool {
        let frames = Frames::parse(payload);
        if frames.crypto {
            return true;
        }
        let total = total as u64;
        let carried: u64 = frames.datagram_bytes.iter().sum::<u64>() + frames.stream_bytes;
        if let Some(first) = frames.first_datagram {
            for (kind, bytes) in MessageKind::ALL.iter().zip(frames.datagram_bytes) {
                if bytes > 0 {
                    self.add(WireCause::Datagram(*kind), bytes, u64::from(*kind == first));
                }
            }
            self.add(WireCause::StreamData, frames.stream_bytes, 0);
            self.add(WireCause::QuicFraming, total - carried, 0);
        } else if frames.stream_bytes > 0 {
            self.add(WireCause::StreamData, frames.stream_bytes, 1);
            self.add(WireCause::QuicFraming, total - carried, 0);
        } else {
            let cause = if frames.control {
                WireCause::Control
            } else if frames.ping && frames.padding >= MTU_PROBE_PADDING {
                WireCause::MtuProbe
            } else if frames.immediate_ack {
                WireCause::LossProbe
            } else if frames.ping {
                WireCause::KeepAlive
            } else {
                WireCause::AckOnly
            };
            self.add(cause, total, 1);
        }
        false
    }
}

/// A PING with this much padding is a path-MTU probe (a loss probe is never padded so far).
const MTU_PROBE_PADDING: u64 = 256;

/// What one packet's frames are made of.
#[derive(Debug, Default, PartialEq)]
struct Frames {
    /// DATAGRAM payload bytes by SWIM message kind (in `MessageKind::ALL` order).
    datagram_bytes: [u64; MessageKind::ALL.len()],
    first_datagram: Option<MessageKind>,
    stream_bytes: u64,
    padding: u64,
    ping: bool,
    immediate_ack: bool,
    crypto: bool,
    /// Any frame other than ACK, PADDING, PING, DATAGRAM, STREAM and CRYPTO (or one that did
    /// not parse).
    control: bool,
}

/// Reads a QUIC variable-length integer (RFC 9000 §16).
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    if buf.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    *buf = &buf[len..];
    Some(v)
}

fn skip(buf: &mut &[u8], n: u64) -> Option<()> {
    let n = usize::try_from(n).ok()?;
    if buf.len() < n {
        return None;
    }
    *buf = &buf[n..];
    Some(())
}

impl Frames {
    /// Walks the frames of a decrypted-layout (plaintext) 1-RTT payload. A frame that does
    /// not parse ends the walk and marks the packet as control.
    fn parse(mut buf: &[u8]) -> Frames {
        let mut f = Frames::default();
        while !buf.is_empty() {
            if f.frame(&mut buf).is_none() {
                f.control = true;
                break;
            }
        }
        f
    }

    fn frame(&mut self, buf: &mut &[u8]) -> Option<()> {
        let ty = varint(buf)?;
        match ty {
            0x00 => self.padding += 1,
            0x01 => self.ping = true,
            // IMMEDIATE_ACK: quinn's loss probe when the peer speaks the ACK-frequency
            // extension.
            0x1f => self.immediate_ack = true,
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, then (gap, length) pairs.
                varint(buf)?;
                varint(buf)?;
                let ranges = varint(buf)?;
                varint(buf)?;
                for _ in 0..ranges {
                    varint(buf)?;
                    varint(buf)?;
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        varint(buf)?;
                    }
                }
            }
            0x06 => {
                self.crypto = true;
                varint(buf)?;
                let len = varint(buf)?;
                skip(buf, len)?;
            }
            0x08..=0x0f => {
                varint(buf)?;
                if ty & 0x04 != 0 {
                    varint(buf)?;
                }
                let len = if ty & 0x02 != 0 {
                    varint(buf)?
                } else {
                    buf.len() as u64
                };
                skip(buf, len)?;
                self.stream_bytes += len;
            }
            0x30 | 0x31 => {
                let len = if ty == 0x31 {
                    varint(buf)?
                } else {
                    buf.len() as u64
                };
                let data = buf.get(..usize::try_from(len).ok()?)?;
                let kind = MessageKind::of_packet(Framing::Session, data)?;
                self.first_datagram.get_or_insert(kind);
                self.datagram_bytes[MessageKind::ALL.iter().position(|k| *k == kind)?] += len;
                skip(buf, len)?;
            }
            _ => {
                self.control = true;
                self.skip_control(ty, buf)?;
            }
        }
        Some(())
    }

    /// Skips the body of a control frame so the walk can reach the frames after it.
    fn skip_control(&mut self, ty: u64, buf: &mut &[u8]) -> Option<()> {
        let varints = match ty {
            0x04 => 3,                      // RESET_STREAM
            0x05 => 2,                      // STOP_SENDING
            0x10 | 0x12 | 0x13 | 0x14 => 1, // MAX_DATA, MAX_STREAMS, DATA_BLOCKED
            0x11 | 0x15 => 2,               // MAX_STREAM_DATA, STREAM_DATA_BLOCKED
            0x16 | 0x17 | 0x19 => 1,        // STREAMS_BLOCKED, RETIRE_CONNECTION_ID
            0x1e | 0x1f => 0,               // HANDSHAKE_DONE, IMMEDIATE_ACK
            0xaf => 4,                      // ACK_FREQUENCY
            0x07 => {
                // NEW_TOKEN
                let len = varint(buf)?;
                return skip(buf, len);
            }
            0x18 => {
                // NEW_CONNECTION_ID: sequence, retire prior to, length, id, reset token.
                varint(buf)?;
                varint(buf)?;
                let len = *buf.first()?;
                skip(buf, 1)?;
                return skip(buf, u64::from(len) + 16);
            }
            0x1a | 0x1b => return skip(buf, 8), // PATH_CHALLENGE, PATH_RESPONSE
            0x1c | 0x1d => {
                // CONNECTION_CLOSE: error code, [frame type], reason.
                varint(buf)?;
                if ty == 0x1c {
                    varint(buf)?;
                }
                let len = varint(buf)?;
                return skip(buf, len);
            }
            _ => return None,
        };
        for _ in 0..varints {
            varint(buf)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters_after(total: usize, payload: &[u8]) -> WireStats {
        let c = WireCounters::default();
        assert!(!c.add_short_packet(total, payload));
        c.snapshot()
    }

    #[test]
    fn an_ack_with_a_swim_ping_is_split_into_payload_and_framing() {
        // ACK(largest 5, delay 0, 0 ranges, first 0), DATAGRAM with length: ping seq 3.
        // (The version byte is not sent: the message starts with its kind.)
        let payload = [0x02, 5, 0, 0, 0, 0x31, 2, 0, 3];
        let s = counters_after(payload.len() + 20, &payload);
        assert_eq!(s.sent_bytes_for(WireCause::Datagram(MessageKind::Ping)), 2);
        assert_eq!(
            s.sent_packets_for(WireCause::Datagram(MessageKind::Ping)),
            1
        );
        assert_eq!(s.sent_bytes_for(WireCause::QuicFraming), 27);
        assert_eq!(s.sent_bytes_for(WireCause::AckOnly), 0);
    }

    #[test]
    fn packets_without_data_are_classified_by_their_frames() {
        let ack = counters_after(25, &[0x02, 0x40, 0x99, 1, 0, 2]);
        assert_eq!(ack.sent_bytes_for(WireCause::AckOnly), 25);
        let ping = counters_after(24, &[0x01, 0x00, 0x00]);
        assert_eq!(ping.sent_bytes_for(WireCause::KeepAlive), 24);
        let probe = counters_after(28, &[0x02, 5, 0, 0, 0, 0x1f]);
        assert_eq!(probe.sent_bytes_for(WireCause::LossProbe), 28);
        let mut probe = vec![0x01];
        probe.resize(1400, 0);
        let probe = counters_after(1420, &probe);
        assert_eq!(probe.sent_packets_for(WireCause::MtuProbe), 1);
        // NEW_CONNECTION_ID (seq 1, retire 0, 2-byte id, token) then HANDSHAKE_DONE.
        let mut ncid = vec![0x18, 1, 0, 2, 0xaa, 0xbb];
        ncid.extend([0; 16]);
        ncid.push(0x1e);
        let control = counters_after(50, &ncid);
        assert_eq!(control.sent_bytes_for(WireCause::Control), 50);
    }

    #[test]
    fn stream_data_is_payload_and_crypto_goes_to_the_handshake() {
        // STREAM with offset and length bits: id 2, offset 0, length 4.
        let s = counters_after(40, &[0x0e, 2, 0, 4, 1, 5, 0, 0]);
        assert_eq!(s.sent_bytes_for(WireCause::StreamData), 4);
        assert_eq!(s.sent_bytes_for(WireCause::QuicFraming), 36);
        let c = WireCounters::default();
        assert!(c.add_short_packet(60, &[0x06, 0, 2, 4, 0]));
        assert_eq!(c.snapshot().sent_bytes_for(WireCause::Control), 0);
    }

    #[test]
    fn garbage_frames_count_as_control_and_never_panic() {
        for bytes in [&[0x31, 200][..], &[0x02, 0xff], &[0x40], &[0x3f, 1, 2]] {
            let s = counters_after(30, bytes);
            assert_eq!(s.sent_bytes_for(WireCause::Control), 30, "{bytes:?}");
        }
    }
}
