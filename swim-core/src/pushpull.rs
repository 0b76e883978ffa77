//! Anti-entropy and joining: full-state push-pull over a reliable stream, periodic (interval
//! scaled with cluster size) and on join (retried with exponential backoff).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::membership::{MemberId, MemberState};
use crate::node::Node;
use crate::wire::{self, Item, Message, MessageKind, Packet, StateEntry};

impl Node {
    /// Sends this node's full state to `to` (a request, or the `response` to one).
    pub(crate) fn send_push_pull(
        &mut self,
        to: SocketAddr,
        name: Option<Arc<str>>,
        response: bool,
        join: bool,
    ) {
        let cluster = self.config.cluster_name.clone();
        let mut buf = wire::encode_message(&Message::PushPull {
            cluster: &cluster,
            response,
            join,
        });
        for (_, m) in self.members.iter() {
            wire::append_item(
                &mut buf,
                &Item::State(StateEntry {
                    name: &m.name,
                    addr: m.addr,
                    incarnation: m.incarnation,
                    boot_id: m.boot_id,
                    state: m.state,
                    meta: m.meta.as_deref().unwrap_or(&[]),
                }),
            );
        }
        self.send(to, name, buf, MessageKind::PushPull, true);
    }

    /// A push-pull arrived (already checked: right cluster, on a stream). Merge it; answer a
    /// request with our state; a response completes a join.
    pub(crate) fn handle_push_pull(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from: MemberId,
        from_name: &Arc<str>,
        response: bool,
        packet: &Packet<'_>,
    ) {
        self.stats.push_pulls += 1;
        for item in packet.items() {
            if let Item::State(entry) = item {
                self.merge_state(from, from_name, entry, now);
            }
        }
        if !response {
            self.send_push_pull(from_addr, Some(from_name.clone()), true, false);
        } else if !self.joined {
            self.mark_joined();
        }
    }

    /// Sends a join push-pull to every seed and schedules the next attempt.
    pub(crate) fn join_attempt(&mut self, now: Instant) {
        let Some(join) = self.join.as_mut() else {
            return;
        };
        let seeds = join.seeds.clone();
        join.next_attempt = now + join.backoff;
        join.backoff = (join.backoff * 2).min(self.config.join_retry_max);
        for seed in seeds {
            self.stats.join_attempts += 1;
            self.send_push_pull(seed, None, false, true);
        }
    }

    /// Push-pull with one random member (alive, suspect or dead: a dead member that is in fact
    /// alive behind a healed partition learns of its death this way and refutes, which is how
    /// the two sides merge again).
    pub(crate) fn periodic_push_pull(&mut self, now: Instant) {
        let Some(interval) = self
            .config
            .timings(self.cluster_size())
            .push_pull_interval()
        else {
            return;
        };
        self.next_push_pull = now + interval;
        let peers = self.sample_members(1, None, |m| m.state != MemberState::Left);
        if let Some(&id) = peers.first() {
            let m = self.members.get(id).expect("sampled from the table");
            let (addr, name) = (m.addr, m.name.clone());
            self.send_push_pull(addr, Some(name), false, false);
        }
    }
}
