//! Every metric swim-net records, through the `metrics` facade (no exporter here). Names,
//! types, labels and definitions are listed in `swim-net/METRICS.md`.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use swim_core::{ClaimRefusal, Event, MemberState, MessageKind, Node};

use crate::accounting::{WireCause, WireStats};
use crate::error::PeerError;

/// This node joined the cluster.
pub(crate) fn joined() {
    gauge!("swim_joined").set(1.0);
}

/// This node's own certificate was loaded: when it expires.
pub(crate) fn own_certificate(not_after: std::time::SystemTime) {
    let secs = not_after
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    gauge!("swim_certificate_expiry_timestamp_seconds").set(secs);
}

/// One membership event.
pub(crate) fn record_event(event: &Event) {
    match event {
        Event::MemberDown {
            since_last_alive,
            since_suspected,
            by_us,
            ..
        } => {
            histogram!("swim_detection_latency_seconds").record(since_last_alive.as_secs_f64());
            if let Some(s) = since_suspected {
                histogram!("swim_suspicion_duration_seconds").record(s.as_secs_f64());
            }
            let by = if *by_us { "us" } else { "gossip" };
            counter!("swim_deaths_total", "by" => by).increment(1);
        }
        Event::SuspicionRefuted { .. } => {
            counter!("swim_false_positives_total", "kind" => "suspicion").increment(1);
        }
        Event::MemberUp {
            after_false_death, ..
        } => {
            counter!("swim_member_events_total", "event" => "up").increment(1);
            if *after_false_death {
                counter!("swim_false_positives_total", "kind" => "death").increment(1);
            }
        }
        Event::MemberUpdated { .. } => {
            counter!("swim_member_events_total", "event" => "updated").increment(1);
        }
        Event::MemberLeft { .. } => {
            counter!("swim_member_events_total", "event" => "left").increment(1);
        }
        Event::MemberReaped { .. } => {
            counter!("swim_member_events_total", "event" => "reaped").increment(1);
        }
        _ => {}
    }
}

pub(crate) fn record_rtt(rtt: Duration) {
    histogram!("swim_probe_rtt_seconds").record(rtt.as_secs_f64());
}

/// A push-pull this node started, from its request to the answer merged.
pub(crate) fn record_push_pull(d: Duration) {
    histogram!("swim_push_pull_duration_seconds").record(d.as_secs_f64());
}

/// An input refused: by the core (its error's label), or by the transport (`stream_read`).
pub(crate) fn input_error(reason: &'static str) {
    counter!("swim_input_errors_total", "reason" => reason).increment(1);
}

/// A datagram dropped because the driver had no room for it (`kind` = `datagram`).
pub(crate) fn input_dropped(kind: &'static str) {
    counter!("swim_input_dropped_total", "kind" => kind).increment(1);
}

/// A stream message refused before it was whole, and why (`timeout`, `too_large`,
/// `peer_memory`, `memory`); its stream was stopped.
pub(crate) fn stream_refused(reason: &'static str) {
    counter!("swim_streams_refused_total", "reason" => reason).increment(1);
}

/// `n` messages the transport could not send, and why.
pub(crate) fn transmit_failed(reason: &'static str, n: u64) {
    counter!("swim_transmit_failures_total", "reason" => reason).increment(n);
}

/// A message not sent because its peer had no open connection and was not worth a dial
/// (a gossip round to a member that is not alive: SWIM's probes and reconnects reach it).
pub(crate) fn not_dialled(kind: swim_core::MessageKind) {
    counter!("swim_transmits_not_dialled_total", "kind" => kind.name()).increment(1);
}

/// A connection closed because another to the same peer took its place.
pub(crate) fn connection_replaced() {
    counter!("swim_connections_replaced_total").increment(1);
}

/// A push-pull refused because the two members' cluster names differ: `by` = `us` (we
/// refused the peer's) or `peer` (the peer refused ours).
pub(crate) fn cluster_mismatch(by: &'static str) {
    counter!("swim_cluster_mismatches_total", "by" => by).increment(1);
}

/// A connection established (`outgoing`: we dialled it).
pub(crate) fn connection_opened(outgoing: bool) {
    let direction = if outgoing { "out" } else { "in" };
    counter!("swim_connections_opened_total", "direction" => direction).increment(1);
}

/// An outgoing connection that failed, and why.
pub(crate) fn connect_failed(e: &PeerError) {
    counter!("swim_connect_failures_total", "reason" => e.label()).increment(1);
}

/// Adds `delta` to a counter, looking it up (hashing its name and labels) only when there is
/// something to add: `record_node` and `record_wire` run every second on each member, most of
/// their counters unchanged, and every family is registered at zero at start.
macro_rules! add {
    ($delta:expr, $($key:tt)+) => {{
        let delta: u64 = $delta;
        if delta > 0 {
            counter!($($key)+).increment(delta);
        }
    }};
}

/// The node's counters since the last call (as increments, so several members in one
/// process add up instead of overwriting each other), and its current gauges (when several
/// members share a process, a gauge shows the last one that reported).
pub(crate) fn record_node(node: &Node, last: &mut swim_core::Stats) {
    let s = node.stats();
    for kind in MessageKind::ALL {
        let (sent, received) = (s.sent(kind), s.received(kind));
        let (sent0, received0) = (last.sent(kind), last.received(kind));
        let by_type = [
            ("swim_messages_sent_total", sent.messages, sent0.messages),
            ("swim_message_bytes_sent_total", sent.bytes, sent0.bytes),
            (
                "swim_messages_received_total",
                received.messages,
                received0.messages,
            ),
            (
                "swim_message_bytes_received_total",
                received.bytes,
                received0.bytes,
            ),
        ];
        for (name, now, before) in by_type {
            add!(now.saturating_sub(before), name, "type" => kind.name());
        }
    }
    let suspicions = [
        ("started", s.suspicions_started, last.suspicions_started),
        ("refuted", s.suspicions_refuted, last.suspicions_refuted),
        (
            "confirmed",
            s.suspicions_confirmed,
            last.suspicions_confirmed,
        ),
    ];
    for (outcome, now, before) in suspicions {
        add!(now.saturating_sub(before), "swim_suspicions_total", "outcome" => outcome);
    }
    add!(
        s.push_pulls.saturating_sub(last.push_pulls),
        "swim_push_pulls_total"
    );
    let degraded = [
        ("late_ack", s.probes_acked_late, last.probes_acked_late),
        (
            "helper",
            s.probes_acked_by_helper,
            last.probes_acked_by_helper,
        ),
        (
            "stream",
            s.probes_acked_by_stream,
            last.probes_acked_by_stream,
        ),
    ];
    for (via, now, before) in degraded {
        add!(now.saturating_sub(before), "swim_probes_degraded_total", "via" => via);
    }
    for reason in ClaimRefusal::ALL {
        let (now, before) = (s.claims_refused(reason), last.claims_refused(reason));
        add!(now.saturating_sub(before), "swim_claims_refused_total", "reason" => reason.label());
    }
    add!(s.reconnects.saturating_sub(last.reconnects), "swim_reconnects_total", "to" => "dead");
    add!(s.seed_rejoins.saturating_sub(last.seed_rejoins), "swim_reconnects_total", "to" => "seed");
    add!(
        s.records_asked.saturating_sub(last.records_asked),
        "swim_records_asked_total"
    );
    let scalars = [
        ("swim_probes_total", s.probes, last.probes),
        (
            "swim_probes_failed_total",
            s.probes_failed,
            last.probes_failed,
        ),
        (
            "swim_probes_slowed_total",
            s.probes_slowed,
            last.probes_slowed,
        ),
        (
            "swim_fallback_pings_total",
            s.reliable_pings,
            last.reliable_pings,
        ),
        ("swim_late_acks_total", s.late_acks, last.late_acks),
        ("swim_refutations_total", s.refutations, last.refutations),
        (
            "swim_join_attempts_total",
            s.join_attempts,
            last.join_attempts,
        ),
        (
            "swim_name_conflicts_total",
            s.name_conflicts,
            last.name_conflicts,
        ),
        (
            "swim_names_yielded_total",
            s.names_yielded,
            last.names_yielded,
        ),
        (
            "swim_dead_members_evicted_total",
            s.dead_members_evicted,
            last.dead_members_evicted,
        ),
        ("swim_quarantines_total", s.quarantines, last.quarantines),
        (
            "swim_refutations_withheld_total",
            s.refutations_withheld,
            last.refutations_withheld,
        ),
        (
            "swim_accusations_withheld_total",
            s.accusations_withheld,
            last.accusations_withheld,
        ),
        (
            "swim_accusations_withdrawn_total",
            s.accusations_withdrawn,
            last.accusations_withdrawn,
        ),
        (
            "swim_stale_news_answered_total",
            s.stale_news_answered,
            last.stale_news_answered,
        ),
        (
            "swim_suspects_told_total",
            s.suspects_told,
            last.suspects_told,
        ),
    ];
    for (name, now, before) in scalars {
        add!(now.saturating_sub(before), name);
    }
    *last = s;
    for state in [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ] {
        gauge!("swim_members", "state" => state.name()).set(node.member_count(state) as f64);
    }
    gauge!("swim_local_health").set(node.local_health() as f64);
    gauge!("swim_broadcast_queue_depth").set(node.pending_broadcasts() as f64);
}

/// A connection closed by this node for `reason`.
pub(crate) fn connection_closed(reason: &'static str) {
    counter!("swim_connections_closed_total", "reason" => reason).increment(1);
}

pub(crate) fn gauge_connections(n: usize) {
    gauge!("swim_connections").set(n as f64);
}

/// Socket counters and the cause of every byte sent, since the last call, as increments.
pub(crate) fn record_wire(w: &WireStats, last: &mut WireStats) {
    let scalars = [
        (
            "swim_udp_datagrams_total",
            "direction",
            "sent",
            w.sent_datagrams,
            last.sent_datagrams,
        ),
        (
            "swim_udp_datagrams_total",
            "direction",
            "received",
            w.received_datagrams,
            last.received_datagrams,
        ),
        (
            "swim_udp_bytes_total",
            "direction",
            "sent",
            w.sent_bytes,
            last.sent_bytes,
        ),
        (
            "swim_udp_bytes_total",
            "direction",
            "received",
            w.received_bytes,
            last.received_bytes,
        ),
        (
            "swim_wire_sent_bytes_total",
            "cause",
            "unattributed",
            w.unattributed_bytes(),
            last.unattributed_bytes(),
        ),
        (
            "swim_tls_handshakes_total",
            "kind",
            "full",
            w.handshakes_full,
            last.handshakes_full,
        ),
        (
            "swim_tls_handshakes_total",
            "kind",
            "resumed",
            w.handshakes_resumed,
            last.handshakes_resumed,
        ),
        (
            "swim_datagrams_held_total",
            "reason",
            "delayed",
            w.datagrams_delayed,
            last.datagrams_delayed,
        ),
        (
            "swim_datagrams_held_total",
            "reason",
            "dropped",
            w.datagrams_dropped,
            last.datagrams_dropped,
        ),
    ];
    for (name, label, value, now, before) in scalars {
        add!(now.saturating_sub(before), name, label => value);
    }
    for cause in WireCause::ALL {
        let (bytes, packets) = (w.sent_bytes_for(cause), w.sent_packets_for(cause));
        let (bytes0, packets0) = (last.sent_bytes_for(cause), last.sent_packets_for(cause));
        add!(bytes.saturating_sub(bytes0), "swim_wire_sent_bytes_total", "cause" => cause.name());
        add!(packets.saturating_sub(packets0), "swim_wire_sent_packets_total", "cause" => cause.name());
    }
    *last = *w;
}
