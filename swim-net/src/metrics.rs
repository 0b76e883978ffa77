//! Every metric swim-net records, through the `metrics` facade (no exporter here). Names,
//! types, labels and definitions are listed in `swim-net/METRICS.md`.

use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use swim_core::{Event, MemberState, MessageKind, Node};

/// Registers descriptions once (exporters show them as HELP lines).
pub(crate) fn describe() {
    describe_histogram!(
        "swim_detection_latency_seconds",
        Unit::Seconds,
        "Time from last hearing a member alive to declaring it dead, per declaration"
    );
    describe_histogram!(
        "swim_suspicion_duration_seconds",
        Unit::Seconds,
        "Time from first suspecting a member to declaring it dead, per declaration"
    );
    describe_histogram!(
        "swim_probe_rtt_seconds",
        Unit::Seconds,
        "Round-trip time of direct probe acks"
    );
    describe_counter!(
        "swim_false_positives_total",
        "Refuted suspicions (kind=suspicion) and false deaths (kind=death)"
    );
    describe_counter!(
        "swim_peer_false_positives_total",
        "False positives by the member they concerned"
    );
    describe_counter!(
        "swim_suspicions_total",
        "Suspicions by outcome: started, refuted, confirmed"
    );
    describe_counter!(
        "swim_deaths_total",
        "Members declared dead in this view (by=us|gossip)"
    );
    describe_gauge!("swim_members", "Members in this node's view by state");
    describe_gauge!(
        "swim_local_health",
        "Lifeguard local health score (0 is healthy)"
    );
    describe_counter!("swim_messages_sent_total", "SWIM messages sent by type");
    describe_counter!(
        "swim_messages_received_total",
        "SWIM messages received and accepted by type"
    );
    describe_counter!(
        "swim_message_bytes_sent_total",
        Unit::Bytes,
        "SWIM message bytes sent by type"
    );
    describe_counter!(
        "swim_message_bytes_received_total",
        Unit::Bytes,
        "SWIM message bytes received by type"
    );
    describe_counter!("swim_push_pulls_total", "Push-pull exchanges received");
    describe_gauge!(
        "swim_broadcast_queue_depth",
        "Updates and user broadcasts waiting to be piggybacked"
    );
    describe_counter!(
        "swim_tls_handshake_failures_total",
        "Peer handshakes refused, by reason"
    );
    describe_counter!(
        "swim_input_errors_total",
        "Inputs refused by the protocol core, by reason"
    );
    describe_counter!(
        "swim_connections_opened_total",
        "QUIC connections established (direction=in|out)"
    );
    describe_counter!(
        "swim_connect_failures_total",
        "Outgoing QUIC connections that failed"
    );
    describe_gauge!("swim_connections", "Open QUIC connections in the cache");
    describe_counter!(
        "swim_udp_datagrams_total",
        "UDP datagrams through this member's socket (direction=sent|received)"
    );
    describe_counter!(
        "swim_udp_bytes_total",
        Unit::Bytes,
        "UDP payload bytes through this member's socket, QUIC and TLS included"
    );
    describe_counter!(
        "swim_transmit_failures_total",
        "Messages the transport could not send, by reason"
    );
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
        Event::SuspicionRefuted { member, .. } => {
            counter!("swim_false_positives_total", "kind" => "suspicion").increment(1);
            counter!("swim_peer_false_positives_total", "kind" => "suspicion", "peer" => member.name.to_string())
                .increment(1);
        }
        Event::MemberUp {
            member,
            after_false_death: true,
        } => {
            counter!("swim_false_positives_total", "kind" => "death").increment(1);
            counter!("swim_peer_false_positives_total", "kind" => "death", "peer" => member.name.to_string())
                .increment(1);
        }
        _ => {}
    }
}

pub(crate) fn record_rtt(rtt: Duration) {
    histogram!("swim_probe_rtt_seconds").record(rtt.as_secs_f64());
}

pub(crate) fn record_input_error(e: &swim_core::Error) {
    counter!("swim_input_errors_total", "reason" => e.label()).increment(1);
}

/// The node's cumulative counters and current gauges.
pub(crate) fn record_node(node: &Node) {
    let s = node.stats();
    for kind in MessageKind::ALL {
        let (sent, received) = (s.sent(kind), s.received(kind));
        counter!("swim_messages_sent_total", "type" => kind.name()).absolute(sent.messages);
        counter!("swim_message_bytes_sent_total", "type" => kind.name()).absolute(sent.bytes);
        counter!("swim_messages_received_total", "type" => kind.name()).absolute(received.messages);
        counter!("swim_message_bytes_received_total", "type" => kind.name())
            .absolute(received.bytes);
    }
    counter!("swim_suspicions_total", "outcome" => "started").absolute(s.suspicions_started);
    counter!("swim_suspicions_total", "outcome" => "refuted").absolute(s.suspicions_refuted);
    counter!("swim_suspicions_total", "outcome" => "confirmed").absolute(s.suspicions_confirmed);
    counter!("swim_push_pulls_total").absolute(s.push_pulls);
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

pub(crate) fn gauge_connections(n: usize) {
    gauge!("swim_connections").set(n as f64);
}

pub(crate) fn record_wire(w: &crate::socket::WireStats) {
    counter!("swim_udp_datagrams_total", "direction" => "sent").absolute(w.sent_datagrams);
    counter!("swim_udp_datagrams_total", "direction" => "received").absolute(w.received_datagrams);
    counter!("swim_udp_bytes_total", "direction" => "sent").absolute(w.sent_bytes);
    counter!("swim_udp_bytes_total", "direction" => "received").absolute(w.received_bytes);
}
