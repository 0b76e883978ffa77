//! One node's view of the cluster: its member table, the names it has interned, which
//! record is its own, and random sampling of members.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand_core::RngCore;

use crate::config::Config;
use crate::event::MemberInfo;
use crate::membership::{Member, MemberId, MemberState, MemberTable, SharedBase};
use crate::names::NameTable;

/// One node's view of the cluster: the names it has interned, its member records (its own
/// included, never removed), and which record is its own.
#[derive(Debug)]
pub(crate) struct View {
    names: Arc<NameTable>,
    members: MemberTable,
    /// This node's id, name and process.
    me: MemberId,
    my_name: Arc<str>,
    boot_id: u32,
    /// This node's own record is `Left` (kept beside it: every timer asks).
    left: bool,
}

impl View {
    /// A view holding only this node, alive at incarnation 0.
    pub(crate) fn new(
        names: Arc<NameTable>,
        name: &str,
        addr: SocketAddr,
        boot_id: u32,
        now: Instant,
    ) -> Self {
        let (me, my_name) = names.intern(name);
        let mut members = MemberTable::new();
        members.set(
            me,
            Member::alive(my_name.clone(), addr, None, 0, boot_id, now),
        );
        Self {
            names,
            members,
            me,
            my_name,
            boot_id,
            left: false,
        }
    }

    /// Replaces every record with a base shared by many views (the simulator's converged
    /// start); the base must hold this node's own record.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn install_base(&mut self, base: Arc<SharedBase>) {
        self.members = MemberTable::with_base(base);
        self.left = self.me().state == MemberState::Left;
    }

    pub(crate) fn my_id(&self) -> MemberId {
        self.me
    }

    pub(crate) fn my_name(&self) -> &Arc<str> {
        &self.my_name
    }

    pub(crate) fn boot_id(&self) -> u32 {
        self.boot_id
    }

    /// This node's own record.
    pub(crate) fn me(&self) -> &Member {
        self.members
            .get(self.me)
            .expect("BUG! a node always holds its own record")
    }

    /// Changes this node's own record.
    pub(crate) fn update_me(&mut self, change: impl FnOnce(&mut Member)) {
        let mut left = self.left;
        self.members.modify(self.me, |m| {
            change(m);
            left = m.state == MemberState::Left;
        });
        self.left = left;
    }

    /// Whether this node has left the cluster.
    pub(crate) fn has_left(&self) -> bool {
        self.left
    }

    pub(crate) fn get(&self, id: MemberId) -> Option<&Member> {
        self.members.get(id)
    }

    pub(crate) fn set(&mut self, id: MemberId, member: Member) {
        self.members.set(id, member);
    }

    pub(crate) fn modify(&mut self, id: MemberId, change: impl FnOnce(&mut Member)) -> bool {
        self.members.modify(id, change)
    }

    /// `id` was heard at `now` (a message from it, or an ack of it relayed), if it is alive
    /// or suspect in this view. Returns whether that was recorded.
    pub(crate) fn heard_alive(&mut self, id: MemberId, now: Instant, config: &Config) -> bool {
        // Kept aside at least until any accusation of `id` reaches this node (see
        // `MemberTable::heard_running`): ten probe rounds for some member to probe it and find
        // it silent (every member misses it for k rounds with a chance of about e^-k), and as
        // many gossip rounds as each holder sends the accusation, by which it has reached
        // every member (epidemic spread takes about log N of them).
        let members = self.cluster_size();
        let horizon = || {
            let rounds = config.timings(members).retransmit_limit();
            10 * config.probe_interval + rounds * config.gossip_interval
        };
        self.members.heard_running(id, now, horizon)
    }

    /// When this view last heard `id`: the record's `last_alive`, or a later contact kept
    /// beside a shared record. Read this, not the record's field, for a record that may be
    /// alive.
    pub(crate) fn last_heard(&self, id: MemberId) -> Option<Instant> {
        self.members.last_heard(id)
    }

    /// The record of `id` and [`last_heard`](Self::last_heard), in one lookup.
    pub(crate) fn get_heard(&self, id: MemberId) -> Option<(&Member, Instant)> {
        self.members.get_heard(id)
    }

    /// An order-independent fingerprint of everything a push-pull would carry (the sum of
    /// every record's), kept up to date as records change.
    pub(crate) fn fingerprint(&self) -> [u8; 8] {
        self.members.fingerprint().to_le_bytes()
    }

    /// Forgets a member (never this node), and its name unless the name table is shared:
    /// the caller holds nothing more keyed by `id`, which may be given to the next new name.
    pub(crate) fn remove(&mut self, id: MemberId) {
        if id != self.me {
            self.members.remove(id);
            self.names.release(id);
        }
    }

    /// The id of a name this view has interned, whether or not it holds a record for it.
    pub(crate) fn lookup(&self, name: &str) -> Option<MemberId> {
        self.names.lookup(name)
    }

    /// The record held for `name`, with its id.
    pub(crate) fn known(&self, name: &str) -> Option<(MemberId, &Member)> {
        let id = self.names.lookup(name)?;
        self.members.get(id).map(|m| (id, m))
    }

    /// Interns `name`: only for a member about to be held in this view (the name is released
    /// when it is removed), so no peer can make the table grow with names it merely mentions.
    pub(crate) fn intern(&self, name: &str) -> (MemberId, Arc<str>) {
        self.names.intern(name)
    }

    /// The id and interned name of `name` if this view holds it.
    pub(crate) fn find(&self, name: &str) -> Option<(MemberId, Arc<str>)> {
        self.names.get(name)
    }

    /// `name` as a shared string: the interned one if held, else a new one (not interned).
    pub(crate) fn name(&self, name: &str) -> Arc<str> {
        self.find(name)
            .map_or_else(|| Arc::from(name), |(_, interned)| interned)
    }

    /// Names interned by this view's table (all the simulation's if shared).
    pub(crate) fn names_held(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn count(&self, state: MemberState) -> usize {
        self.members.count(state)
    }

    /// Alive and suspect members, this node included: the `N` of every formula.
    pub(crate) fn cluster_size(&self) -> usize {
        self.count(MemberState::Alive) + self.count(MemberState::Suspect)
    }

    pub(crate) fn id_bound(&self) -> usize {
        self.members.id_bound()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (MemberId, &Member)> + '_ {
        self.members.iter()
    }

    /// The public snapshot of one record.
    pub(crate) fn info(&self, id: MemberId) -> Option<MemberInfo> {
        self.members.get(id).map(Member::info)
    }

    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn private_records(&self) -> usize {
        self.members.private_records()
    }

    /// Up to `k` distinct random members other than this node and `exclude` that pass
    /// `keep`: rejection sampling over the id space (no O(N) scan in large clusters), then a
    /// scan from a random start if sampling came up short.
    pub(crate) fn sample(
        &self,
        rng: &mut impl RngCore,
        k: usize,
        exclude: Option<MemberId>,
        keep: impl Fn(&Member) -> bool,
    ) -> Vec<MemberId> {
        let bound = self.members.id_bound() as u32;
        let mut out = Vec::with_capacity(k);
        if bound == 0 || k == 0 {
            return out;
        }
        let wanted = |id: MemberId, out: &Vec<MemberId>| {
            id != self.me
                && Some(id) != exclude
                && !out.contains(&id)
                && self.members.get(id).is_some_and(&keep)
        };
        for _ in 0..(4 * k + 8) {
            if out.len() == k {
                return out;
            }
            let id = rng.next_u32() % bound;
            if wanted(id, &out) {
                out.push(id);
            }
        }
        let start = rng.next_u32() % bound;
        for offset in 0..bound {
            if out.len() == k {
                break;
            }
            let id = (start + offset) % bound;
            if wanted(id, &out) {
                out.push(id);
            }
        }
        out
    }
}
