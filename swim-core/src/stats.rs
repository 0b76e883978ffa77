//! Counters kept by the core: plain data the runtime turns into metrics.

use crate::claim_refusal::ClaimRefusal;
use crate::wire::MessageKind;

/// Messages and bytes of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Messages.
    pub messages: u64,
    /// Bytes as framed for the transport (`Config::framing`: with or without the version
    /// byte), piggybacked items included.
    pub bytes: u64,
}

/// Cumulative counters since the node started. Every field only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sent, by message kind (index with [`Stats::sent`]).
    sent: [Traffic; MessageKind::ALL.len()],
    /// Received and accepted, by message kind.
    received: [Traffic; MessageKind::ALL.len()],
    /// Membership updates piggybacked onto outgoing packets.
    pub updates_piggybacked: u64,
    /// User broadcasts piggybacked onto outgoing packets.
    pub user_broadcasts_piggybacked: u64,
    /// Probes started (one per protocol period with a target).
    pub probes: u64,
    /// Probes that ended without any ack.
    pub probes_failed: u64,
    /// Degraded probes: answered only after the direct probe timeout, once the indirect
    /// probes were out, by the target's own ack to the direct ping (late).
    pub probes_acked_late: u64,
    /// Degraded probes answered by a helper relaying the target's ack (a ping-req).
    pub probes_acked_by_helper: u64,
    /// Degraded probes answered by the target's ack to the fallback ping on the reliable
    /// channel (datagrams to or from it were lost or slow; the stream got through).
    pub probes_acked_by_stream: u64,
    /// Probes started while local health was above 0, so at a probe interval and timeout
    /// scaled up by it (memberlist's `degraded.probe`).
    pub probes_slowed: u64,
    /// Ping-req messages sent.
    pub indirect_probes: u64,
    /// Pings sent on the reliable channel as a fallback.
    pub reliable_pings: u64,
    /// Nacks received for our indirect probes.
    pub nacks_received: u64,
    /// Acks or nacks that arrived after their probe was over.
    pub late_acks: u64,
    /// Sum and count of probe round-trip times (direct acks), in microseconds.
    pub probe_rtt_sum_us: u64,
    /// Number of RTT samples in `probe_rtt_sum_us`.
    pub probe_rtt_count: u64,
    /// Members that became suspect in this view.
    pub suspicions_started: u64,
    /// Suspicions this node raised itself (its probe failed).
    pub suspicions_raised: u64,
    /// Suspicions refuted (same process alive again): false positives.
    pub suspicions_refuted: u64,
    /// Suspicions that ended in a death.
    pub suspicions_confirmed: u64,
    /// Members declared dead in this view.
    pub deaths: u64,
    /// Deaths this node declared itself (its suspicion timer expired).
    pub deaths_declared: u64,
    /// Members that came back alive as the same process after this view declared them dead.
    pub false_deaths: u64,
    /// Times this node refuted a suspicion or death of itself.
    pub refutations: u64,
    /// Push-pull exchanges received (requests and responses).
    pub push_pulls: u64,
    /// Table fingerprints sent (on pings, in place of periodic push-pulls).
    pub digests_sent: u64,
    /// Table fingerprints received that differed from ours (each starts a full push-pull).
    pub digest_mismatches: u64,
    /// Join push-pulls sent to seeds.
    pub join_attempts: u64,
    /// Inputs refused because they did not parse.
    pub decode_errors: u64,
    /// Inputs refused because they broke the protocol.
    pub peer_misbehaved: u64,
    /// Dead members forgotten before their reconnect time because more than
    /// `Config::max_dead_members` were dead.
    pub dead_members_evicted: u64,
    /// Full push-pulls sent to members held dead (the reconnect path).
    pub reconnects: u64,
    /// Push-pulls sent to seeds after joining, because the view had shrunk.
    pub seed_rejoins: u64,
    /// Name conflicts detected: another live process outbid this node's claim to its name
    /// twice (see [`Event::NameConflict`](crate::Event::NameConflict)).
    pub name_conflicts: u64,
    /// Times this node gave its name up to a process that held it first
    /// ([`Event::NameYielded`](crate::Event::NameYielded)).
    pub names_yielded: u64,
    /// Times this node put itself in quarantine: accused while it could not hear its peers
    /// ([`Event::Quarantined`](crate::Event::Quarantined)).
    pub quarantines: u64,
    /// Accusations of this node it did not refute, being in quarantine.
    pub refutations_withheld: u64,
    /// Suspicions this node did not raise, being in quarantine (its probes' failures are its
    /// own).
    pub accusations_withheld: u64,
    /// Suspicions and deaths this node had declared itself, withdrawn from its own view on
    /// entering quarantine.
    pub accusations_withdrawn: u64,
    /// Records sent straight back to a peer that spread a failure this view's record
    /// disproves (the member refuted it, or left).
    pub stale_news_answered: u64,
    /// Suspicions taken from peers and still open at the minimum suspicion timeout, sent to
    /// the suspect itself so that its refutation comes straight back.
    pub suspects_told: u64,
    /// Claims from peers refused, by reason (index with [`Stats::claims_refused`]).
    claims_refused: [u64; ClaimRefusal::ALL.len()],
    /// Members' records (with their credentials) asked of peers: for claims signed by
    /// members this node has no credential of yet, or accusations at an incarnation it has
    /// not seen the member sign.
    pub records_asked: u64,
}

impl Stats {
    /// Messages and bytes sent of `kind`.
    pub fn sent(&self, kind: MessageKind) -> Traffic {
        self.sent[kind.index()]
    }

    /// Messages and bytes received (and accepted) of `kind`.
    pub fn received(&self, kind: MessageKind) -> Traffic {
        self.received[kind.index()]
    }

    /// Totals over every kind: (sent, received).
    pub fn total(&self) -> (Traffic, Traffic) {
        let sum = |t: &[Traffic; MessageKind::ALL.len()]| {
            t.iter().fold(Traffic::default(), |a, b| Traffic {
                messages: a.messages + b.messages,
                bytes: a.bytes + b.bytes,
            })
        };
        (sum(&self.sent), sum(&self.received))
    }

    /// Claims from peers refused for `reason`.
    pub fn claims_refused(&self, reason: ClaimRefusal) -> u64 {
        self.claims_refused[reason.index()]
    }

    pub(crate) fn count_refused(&mut self, reason: ClaimRefusal) {
        self.claims_refused[reason.index()] += 1;
    }

    pub(crate) fn count_sent(&mut self, kind: MessageKind, bytes: usize) {
        let t = &mut self.sent[kind.index()];
        t.messages += 1;
        t.bytes += bytes as u64;
    }

    pub(crate) fn count_received(&mut self, kind: MessageKind, bytes: usize) {
        let t = &mut self.received[kind.index()];
        t.messages += 1;
        t.bytes += bytes as u64;
    }
}
