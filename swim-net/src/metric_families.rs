//! Every metric family swim-net exports, described once and registered at zero at start, so
//! the first scrape already has each one (names and definitions: `swim-net/METRICS.md`).

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use swim_core::{ClaimRefusal, MemberState, MessageKind};

use crate::accounting::WireCause;

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
    describe_histogram!(
        "swim_push_pull_duration_seconds",
        Unit::Seconds,
        "Push-pulls this node started (joins included), from the request handed to the transport to the peer's answer merged"
    );
    describe_counter!(
        "swim_false_positives_total",
        "Refuted suspicions (kind=suspicion) and false deaths (kind=death)"
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
    describe_counter!(
        "swim_claims_refused_total",
        "Claims from peers refused, by reason (not signed by the member they are about or their accuser, above what the accused signed, ...)"
    );
    describe_counter!(
        "swim_connections_closed_total",
        "Connections this node closed, by reason (credentials: the peer's certificate expired or the CA no longer vouches for it)"
    );
    describe_counter!(
        "swim_records_asked_total",
        "Members' records (with certificates) asked of peers, for claims signed by members not known here yet or accusations at an incarnation not seen signed"
    );
    describe_gauge!(
        "swim_broadcast_queue_depth",
        "Updates and user broadcasts waiting to be piggybacked"
    );
    describe_counter!(
        "swim_tls_handshake_failures_total",
        "Peer handshakes refused, by reason"
    );
    describe_counter!(
        "swim_input_dropped_total",
        "Datagrams dropped because the driver's queue was full"
    );
    describe_counter!(
        "swim_streams_refused_total",
        "Stream messages refused before they were whole (timeout, too_large, peer_memory, memory)"
    );
    describe_counter!(
        "swim_refused_by_peer_total",
        "Handshakes a peer refused, by the TLS alert it sent"
    );
    describe_counter!(
        "swim_cluster_mismatches_total",
        "Push-pulls refused because the two members' cluster_name differ (by=us: this node refused a peer's; by=peer: a peer refused this node's)"
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
        "Outgoing QUIC connections that failed, by reason (timeout, refused, transport, no_identity, unexpected_identity, cannot_dial)"
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
    describe_counter!(
        "swim_transmits_not_dialled_total",
        "Messages not sent because their peer had no open connection and was not worth a dial (gossip to a member that is not alive, probe traffic to a dead one), by message kind"
    );
    describe_counter!(
        "swim_wire_sent_bytes_total",
        Unit::Bytes,
        "UDP payload bytes sent, by cause (SWIM datagram type, stream data, QUIC framing, ACK-only, keep-alive, loss probe, MTU probe, control, handshake full/resumed/failed)"
    );
    describe_counter!(
        "swim_wire_sent_packets_total",
        "QUIC packets sent, by cause (a packet carrying SWIM datagrams counts under its first)"
    );
    describe_counter!(
        "swim_tls_handshakes_total",
        "Completed handshakes: full (certificates verified) or resumed (TLS session ticket)"
    );
    describe_counter!(
        "swim_datagrams_held_total",
        "SWIM datagrams QUIC held back half a probe timeout or more (delayed) or dropped before sending"
    );
    describe_counter!(
        "swim_connections_replaced_total",
        "Connections closed because another to the same peer took their place (dial race or reconnect)"
    );
    describe_counter!(
        "swim_probes_total",
        "Probes started (one per protocol period with a target)"
    );
    describe_counter!(
        "swim_probes_failed_total",
        "Probes that ended without any ack, direct or indirect (each raises a suspicion)"
    );
    describe_counter!(
        "swim_probes_degraded_total",
        "Probes answered only after the direct probe timeout, by the path that got through (via=late_ack|helper|stream)"
    );
    describe_counter!(
        "swim_probes_slowed_total",
        "Probes started while local health was above 0, at a scaled-up interval (memberlist's degraded.probe)"
    );
    describe_counter!(
        "swim_fallback_pings_total",
        "Pings sent on a reliable stream as a fallback beside the indirect probes"
    );
    describe_counter!(
        "swim_late_acks_total",
        "Acks or nacks that arrived after their probe was over"
    );
    describe_counter!(
        "swim_refutations_total",
        "Times this node refuted a suspicion or death of itself"
    );
    describe_counter!("swim_join_attempts_total", "Join push-pulls sent to seeds");
    describe_counter!(
        "swim_name_conflicts_total",
        "Other live processes seen claiming this node's name"
    );
    describe_counter!(
        "swim_names_yielded_total",
        "Times this node gave its name up to a process that held it first (it then stops)"
    );
    describe_counter!(
        "swim_quarantines_total",
        "Times this node was accused while its own probes showed it could not hear its peers, and let the cluster remove it until it heard again"
    );
    describe_counter!(
        "swim_refutations_withheld_total",
        "Accusations of this node not refuted because it was in quarantine"
    );
    describe_counter!(
        "swim_accusations_withheld_total",
        "Failed probes this node did not turn into suspicions because it was in quarantine"
    );
    describe_counter!(
        "swim_accusations_withdrawn_total",
        "Suspicions and deaths this node had declared itself, withdrawn on entering quarantine (they said more about its hearing than about the accused)"
    );
    describe_counter!(
        "swim_stale_news_answered_total",
        "Records sent straight back to a peer that spread a failure this node's record disproves (the member refuted it, or left)"
    );
    describe_counter!(
        "swim_suspects_told_total",
        "Suspicions taken from peers and still open at the minimum suspicion timeout, sent to the suspect itself so that its refutation comes straight back"
    );
    describe_counter!(
        "swim_reconnects_total",
        "Push-pulls to reach members held dead (to=dead) or, after the view shrank, seeds (to=seed)"
    );
    describe_counter!(
        "swim_dead_members_evicted_total",
        "Dead members forgotten before reconnect_timeout because more than max_dead_members were dead"
    );
    describe_counter!(
        "swim_member_events_total",
        "Membership changes in this view other than suspicion and death (event=up|updated|left|reaped)"
    );
    describe_gauge!(
        "swim_joined",
        "1 once this node has joined the cluster (a seed answered), else 0"
    );
    describe_gauge!(
        "swim_certificate_expiry_timestamp_seconds",
        Unit::Seconds,
        "When this node's own certificate expires (notAfter), as Unix time; set when the files are loaded or reloaded"
    );
    register_at_zero();
}

/// Every series with the label values METRICS.md documents, at zero, so the first scrape has
/// every family and `rate()`/`increase()` see the first event as a step from 0. Histograms
/// are registered without a sample: the exporter renders them with zero buckets.
fn register_at_zero() {
    let labelled: &[(&'static str, &'static str, &[&'static str])] = &[
        (
            "swim_false_positives_total",
            "kind",
            &["suspicion", "death"],
        ),
        (
            "swim_suspicions_total",
            "outcome",
            &["started", "refuted", "confirmed"],
        ),
        ("swim_deaths_total", "by", &["us", "gossip"]),
        ("swim_reconnects_total", "to", &["dead", "seed"]),
        (
            "swim_probes_degraded_total",
            "via",
            &["late_ack", "helper", "stream"],
        ),
        (
            "swim_member_events_total",
            "event",
            &["up", "updated", "left", "reaped"],
        ),
        (
            "swim_tls_handshake_failures_total",
            "reason",
            &[
                "no_certificate",
                "no_alpn",
                "unknown_issuer",
                "expired",
                "not_yet_valid",
                "name_mismatch",
                "wrong_usage",
                "bad_signature",
                "revoked",
                "bad_encoding",
                "no_node_name",
                "invalid_certificate",
                "other",
            ],
        ),
        (
            "swim_refused_by_peer_total",
            "alert",
            &[
                "unknown_ca",
                "bad_certificate",
                "certificate_expired",
                "unsupported_certificate",
                "no_application_protocol",
                "certificate_required",
                "other",
                "none",
            ],
        ),
        (
            "swim_input_errors_total",
            "reason",
            &[
                "empty",
                "malformed",
                "field_too_long",
                "unexpected_item",
                "from_ourselves",
                "unknown_probe",
                "cluster_mismatch",
                "stream_only",
                "stream_read",
            ],
        ),
        (
            "swim_streams_refused_total",
            "reason",
            &[
                "timeout",
                "too_large",
                "bad_length",
                "peer_memory",
                "memory",
            ],
        ),
        ("swim_cluster_mismatches_total", "by", &["us", "peer"]),
        ("swim_input_dropped_total", "kind", &["datagram"]),
        ("swim_connections_closed_total", "reason", &["credentials"]),
        ("swim_connections_opened_total", "direction", &["in", "out"]),
        (
            "swim_connect_failures_total",
            "reason",
            &[
                "timeout",
                "refused",
                "transport",
                "no_identity",
                "unexpected_identity",
                "cannot_dial",
            ],
        ),
        (
            "swim_udp_datagrams_total",
            "direction",
            &["sent", "received"],
        ),
        ("swim_udp_bytes_total", "direction", &["sent", "received"]),
        (
            "swim_transmit_failures_total",
            "reason",
            &["connect_failed", "pending_full", "datagram", "stream"],
        ),
        (
            "swim_transmits_not_dialled_total",
            "kind",
            &["gossip", "ping", "ping_req", "ack", "nack"],
        ),
        ("swim_tls_handshakes_total", "kind", &["full", "resumed"]),
        (
            "swim_datagrams_held_total",
            "reason",
            &["delayed", "dropped"],
        ),
        ("swim_wire_sent_bytes_total", "cause", &["unattributed"]),
    ];
    for (name, label, values) in labelled {
        for value in *values {
            counter!(*name, *label => *value).increment(0);
        }
    }
    for kind in MessageKind::ALL {
        for name in [
            "swim_messages_sent_total",
            "swim_message_bytes_sent_total",
            "swim_messages_received_total",
            "swim_message_bytes_received_total",
        ] {
            counter!(name, "type" => kind.name()).increment(0);
        }
    }
    for reason in ClaimRefusal::ALL {
        counter!("swim_claims_refused_total", "reason" => reason.label()).increment(0);
    }
    for cause in WireCause::ALL {
        counter!("swim_wire_sent_bytes_total", "cause" => cause.name()).increment(0);
        counter!("swim_wire_sent_packets_total", "cause" => cause.name()).increment(0);
    }
    for name in [
        "swim_push_pulls_total",
        "swim_records_asked_total",
        "swim_connections_replaced_total",
        "swim_probes_total",
        "swim_probes_failed_total",
        "swim_probes_slowed_total",
        "swim_fallback_pings_total",
        "swim_late_acks_total",
        "swim_refutations_total",
        "swim_join_attempts_total",
        "swim_name_conflicts_total",
        "swim_names_yielded_total",
        "swim_dead_members_evicted_total",
        "swim_quarantines_total",
        "swim_refutations_withheld_total",
        "swim_accusations_withheld_total",
        "swim_accusations_withdrawn_total",
        "swim_stale_news_answered_total",
        "swim_suspects_told_total",
    ] {
        counter!(name).increment(0);
    }
    for state in [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ] {
        gauge!("swim_members", "state" => state.name()).set(0.0);
    }
    for name in [
        "swim_local_health",
        "swim_broadcast_queue_depth",
        "swim_connections",
        "swim_joined",
    ] {
        gauge!(name).set(0.0);
    }
    for name in [
        "swim_detection_latency_seconds",
        "swim_suspicion_duration_seconds",
        "swim_probe_rtt_seconds",
        "swim_push_pull_duration_seconds",
    ] {
        // Registering the handle is enough; no sample is recorded.
        let _ = histogram!(name);
    }
}
