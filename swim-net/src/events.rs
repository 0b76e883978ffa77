//! What the driver tells the outside: every membership event is logged (one line per change
//! of a member's state), counted, and sent to subscribers; and the member list, join state
//! and counters the [`Cluster`](crate::Cluster) handle reads without asking the driver.

use std::sync::Arc;
use std::time::Instant;

use swim_core::{ClaimRefusal, Event, MemberInfo, MemberState, Node, Stats};
use tokio::sync::{broadcast, watch};

use crate::accounting::WireCounters;
use crate::log_limit::LogLimit;
use crate::metrics;

/// The outputs the handle reads.
pub(crate) struct Outputs {
    pub(crate) members: watch::Sender<Arc<Vec<MemberInfo>>>,
    pub(crate) joined: watch::Sender<bool>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) stats: watch::Sender<Stats>,
    pub(crate) wire: Arc<WireCounters>,
    /// The member list changed since it was last published.
    members_dirty: bool,
    /// Lines a peer can make frequent: refused claims, refutations.
    peer_logs: LogLimit,
    /// The view's fingerprint when the member list was last published.
    view_fingerprint: u64,
    /// Refutations of this node's own suspicion or death, seen so far.
    refutations: u64,
}

impl Outputs {
    pub(crate) fn new(
        members: watch::Sender<Arc<Vec<MemberInfo>>>,
        joined: watch::Sender<bool>,
        events: broadcast::Sender<Event>,
        stats: watch::Sender<Stats>,
        wire: Arc<WireCounters>,
    ) -> Self {
        Self {
            members,
            joined,
            events,
            stats,
            wire,
            members_dirty: true,
            peer_logs: LogLimit::default(),
            view_fingerprint: 0,
            refutations: 0,
        }
    }

    /// One event from the node: logged, counted, published.
    pub(crate) fn event(&mut self, event: Event) {
        metrics::record_event(&event);
        if let Event::ClaimRefused {
            from,
            about,
            reason,
        } = &event
        {
            self.log_refusal(from, about, *reason);
        } else {
            log_event(&event);
        }
        self.members_dirty = true;
        if matches!(event, Event::Joined) {
            metrics::joined();
            let _ = self.joined.send(true);
        }
        // Nobody subscribed is not an error.
        let _ = self.events.send(event);
    }

    /// A refused claim, logged with the peer that sent it: the first at once, then at most
    /// one line per [`PEER_LOG_EVERY`](crate::log_limit::PEER_LOG_EVERY) saying how many
    /// more there were (a forger must not fill the log).
    fn log_refusal(&mut self, from: &str, about: &str, reason: ClaimRefusal) {
        if let Some(more_since_last) = self.peer_logs.allow("claim_refused", Instant::now()) {
            tracing::warn!(
                from = %from, about = %about, reason = reason.label(), more_since_last,
                "refused a claim: not vouched for by the member it is about (or its accuser)"
            );
        }
    }

    /// The node's own record changed (a command), outside any event.
    pub(crate) fn members_changed(&mut self) {
        self.members_dirty = true;
    }

    /// Publishes the member list if it changed: after an event, or when the view's
    /// fingerprint moved without one (this node's own refutation; a newer incarnation of a
    /// member this view never saw suspected).
    pub(crate) fn publish_members(&mut self, node: &Node) {
        let mine = node.incarnation();
        let fingerprint = node.view_fingerprint();
        let moved = fingerprint != std::mem::replace(&mut self.view_fingerprint, fingerprint);
        let refutations = node.stats().refutations;
        // A peer decides how often it accuses this node: one line per period at most, and
        // `refutations_so_far` counts them all.
        if refutations > self.refutations {
            if self.peer_logs.allow("refutation", Instant::now()).is_some() {
                tracing::warn!(
                    incarnation = mine,
                    refutations_so_far = refutations,
                    "this node was suspected (or declared dead) by a peer and refuted it"
                );
            }
            self.refutations = refutations;
        }
        if std::mem::take(&mut self.members_dirty) || moved {
            let _ = self.members.send(Arc::new(node.members()));
        }
    }

    pub(crate) fn publish_stats(&self, node: &Node) {
        let _ = self.stats.send(node.stats());
    }
}

fn log_event(event: &Event) {
    match event {
        Event::Joined => tracing::info!("joined the cluster"),
        Event::MemberUp {
            member,
            after_false_death,
        } => tracing::info!(
            member = %member.name, addr = %member.addr, incarnation = member.incarnation,
            after_false_death, "member up"
        ),
        Event::MemberUpdated { member } => tracing::info!(
            member = %member.name, incarnation = member.incarnation, "member updated"
        ),
        Event::MemberSuspect { member, accuser } => tracing::info!(
            member = %member.name, incarnation = member.incarnation, accuser = %accuser, "member suspect"
        ),
        Event::SuspicionRefuted {
            member,
            suspected_for,
        } => tracing::info!(
            member = %member.name, incarnation = member.incarnation,
            suspected_for_s = suspected_for.as_secs_f64(), "suspicion refuted"
        ),
        Event::MemberDown {
            member,
            since_last_alive,
            since_suspected,
            by_us,
        } => tracing::info!(
            member = %member.name, incarnation = member.incarnation,
            since_last_alive_s = since_last_alive.as_secs_f64(),
            since_suspected_s = since_suspected.map(|d| d.as_secs_f64()), by_us, "member dead"
        ),
        Event::MemberLeft { member } => tracing::info!(member = %member.name, "member left"),
        Event::MemberReaped { name, state } if *state == MemberState::Dead => tracing::info!(
            member = %name,
            "forgot a dead member (dead for reconnect_timeout, or the oldest past max_dead_members): no longer listed or contacted"
        ),
        Event::MemberReaped { name, .. } => {
            tracing::debug!(member = %name, "forgot a member that left")
        }
        Event::NameConflict { name, other_addr } => tracing::error!(
            name = %name, other_addr = %other_addr,
            "another live process uses this node's name (the one that held it first keeps it)"
        ),
        Event::NameYielded {
            name,
            my_addr,
            holder_addr,
        } => tracing::error!(
            name = %name, this_process = %my_addr, holder = %holder_addr,
            "giving this node's name up: the process at the holder address held it first; \
             this process stops claiming it (give each process its own certificate and name)"
        ),
        Event::Quarantined {
            silent_probes,
            accused_at,
        } => tracing::warn!(
            silent_probes,
            accused_at,
            "this node cannot hear its peers (of its last 16 probes, many got no answer) and \
             was accused: it stops refuting and accusing, and lets the cluster remove it until \
             it hears again (check this host's inbound network)"
        ),
        Event::QuarantineLifted { incarnation } => tracing::info!(
            incarnation,
            "this node hears its peers again: quarantine lifted, rejoining at a higher incarnation"
        ),
        // Application payloads are the application's to log.
        Event::UserBroadcast { .. } => {}
        _ => {}
    }
}
