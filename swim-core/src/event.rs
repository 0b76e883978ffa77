//! What the node tells its user: membership events (in the order they happened in this
//! node's view) and the public snapshot of one member.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::claim_refusal::ClaimRefusal;
use crate::membership::MemberState;

/// One member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Unique node name (bound to the node's certificate by swim-net).
    pub name: Arc<str>,
    /// Advertised address.
    pub addr: SocketAddr,
    /// Incarnation number: only the member itself raises it, to refute or to update itself.
    pub incarnation: u32,
    /// Random per process start; a new one means the member restarted.
    pub boot_id: u32,
    /// State in this node's view.
    pub state: MemberState,
    /// Application metadata (bounded by `Config::max_metadata_size`).
    pub metadata: Option<Arc<[u8]>>,
    /// When this node's view entered `state`.
    pub since: Instant,
    /// Suspicions of this member that this view raised or heard and the same process
    /// refuted: its false suspicions, as seen here (while the member is known).
    pub false_suspicions: u32,
    /// Times this view declared the member dead and the same process came back: its false
    /// deaths, as seen here.
    pub false_deaths: u32,
}

/// Something that changed in this node's view. Drain with
/// [`Node::poll_event`](crate::Node::poll_event) after every input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The node has joined: a seed answered its push-pull, it had no seed but itself (the
    /// first member of a cluster), or another node joined through it.
    Joined,
    /// A member is alive for the first time in this view, or again after being dead or left.
    /// `after_false_death` is true when the same process (same boot id) comes back after this
    /// node declared it dead: that death was a false positive.
    MemberUp {
        /// The member.
        member: MemberInfo,
        /// Same boot id as when declared dead.
        after_false_death: bool,
    },
    /// An alive member changed address, metadata or process (new boot id) at a higher
    /// incarnation.
    MemberUpdated {
        /// The member.
        member: MemberInfo,
    },
    /// A member became suspect. Fires once per (member, incarnation), when this view first
    /// marks it; `accuser` is the node that raised the suspicion (this node's own name when
    /// its probe failed).
    MemberSuspect {
        /// The member.
        member: MemberInfo,
        /// Who suspected it first.
        accuser: Arc<str>,
    },
    /// A suspect member proved alive (same process, higher incarnation): the suspicion was a
    /// false positive.
    SuspicionRefuted {
        /// The member, now alive.
        member: MemberInfo,
        /// How long it was suspect in this view.
        suspected_for: Duration,
    },
    /// A member was declared dead in this view.
    MemberDown {
        /// The member, now dead.
        member: MemberInfo,
        /// From the last time the member was heard to now: the later of when this node last
        /// got a datagram from it and when the accusation's path last did (each accuser
        /// sends how long the member had been silent, and each hop adds the time it held
        /// the accusation, so no clock is shared). Crash-to-dead latency, within about one
        /// probe interval in the simulator at any cluster size; it can only understate by
        /// the accusation's flight time. An accuser can make it shorter, down to
        /// `since_suspected`, never longer.
        since_last_alive: Duration,
        /// From this view's first suspicion to now; `None` if the death arrived without a
        /// suspicion being seen here first.
        since_suspected: Option<Duration>,
        /// True when this node's own suspicion timer expired; false when it learned the death.
        by_us: bool,
    },
    /// A member left gracefully. Not a failure.
    MemberLeft {
        /// The member.
        member: MemberInfo,
    },
    /// A member that left (after `Config::tombstone_timeout`) or was dead (after
    /// `Config::reconnect_timeout`, or earlier past `Config::max_dead_members`) was
    /// forgotten: it is no longer listed or contacted.
    MemberReaped {
        /// Its name.
        name: Arc<str>,
        /// `Left` or `Dead`: what it was when forgotten.
        state: MemberState,
    },
    /// An application broadcast from `origin` (delivered once per broadcast).
    UserBroadcast {
        /// The node that called `broadcast`.
        origin: Arc<str>,
        /// The bytes it broadcast.
        payload: Vec<u8>,
    },
    /// Another live process claims this node's name (it outbid this node's refutation of
    /// its claim). Reported once per foreign process. The conflict settles: the process that
    /// held the name first keeps it, the other gets [`Event::NameYielded`].
    NameConflict {
        /// The contested name (ours).
        name: Arc<str>,
        /// The address the other process advertises.
        other_addr: SocketAddr,
    },
    /// This node gave its name up: another live process held it first (it outbid this
    /// node three times). This node no longer refutes anything said about it; its runtime
    /// should stop it without leaving (a leave would be taken as the holder's) and report
    /// the conflict — swim-node exits non-zero.
    NameYielded {
        /// The contested name (ours).
        name: Arc<str>,
        /// The address this node advertises.
        my_addr: SocketAddr,
        /// The address of the process that keeps the name.
        holder_addr: SocketAddr,
    },
    /// This node cannot hear its peers (of its last 16 probes, `silent_probes` got neither an
    /// ack nor any of the nacks asked for) and was accused: it stops refuting and accusing,
    /// so the cluster removes it once instead of flapping it, until it hears again
    /// ([`Event::QuarantineLifted`]).
    Quarantined {
        /// Unanswered probes among the last 16.
        silent_probes: u32,
        /// The incarnation this node was accused at.
        accused_at: u32,
    },
    /// This node hears its peers again (16 probes answered in a row): it refutes the
    /// accusation it held back, at `incarnation`, and takes part again.
    QuarantineLifted {
        /// This node's incarnation after the refutation.
        incarnation: u32,
    },
    /// A claim from a peer was refused (not vouched for by the member it is about, or by its
    /// accuser); the view did not change. Also counted in
    /// [`Stats::claims_refused`](crate::Stats::claims_refused).
    ClaimRefused {
        /// The peer that sent it (authenticated by the transport).
        from: Arc<str>,
        /// The member the claim was about.
        about: Arc<str>,
        /// Why.
        reason: ClaimRefusal,
    },
}
