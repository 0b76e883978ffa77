//! Inputs from peers: a datagram or stream message is recognised in full and checked
//! against the protocol, then its piggybacked items and its message are routed to the
//! concerns that handle them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::Node;
use crate::claims::Sender;
use crate::dissemination::Key;
use crate::error::{Error, PeerMisbehaved};
use crate::event::Event;
use crate::membership::MemberId;
use crate::probe::{Answer, Relay, SEQ_SPACE};
use crate::pushpull;
use crate::update::{Fx, Outcome};
use crate::waiting_claims::{Pending, MAX_ASKED};
use crate::wire::{self, Item, Limits, Message, MessageKind, Packet, StateEntry, Update};

impl Node {
    pub(super) fn handle_input(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from: &str,
        bytes: &[u8],
        reliable: bool,
    ) -> Result<(), Error> {
        let limits = Limits {
            max_meta: self.config.max_metadata_size,
            max_broadcast: self.config.max_broadcast_size,
        };
        let packet = match wire::decode(bytes, self.config.framing, limits) {
            Ok(p) => p,
            Err(e) => {
                self.stats.decode_errors += 1;
                return Err(e.into());
            }
        };
        let found = self.view().find(from);
        // Our own name is interned under our id: compared as ids, not as strings.
        let from_us = found
            .as_ref()
            .is_some_and(|(id, _)| *id == self.view().my_id());
        if let Err(e) = self.check_peer(&packet.message, from, from_us, reliable) {
            self.stats.peer_misbehaved += 1;
            return Err(e.into());
        }
        self.stats
            .count_received(packet.message.kind(), bytes.len());
        // Not interned: a sender becomes a member only by its own alive update.
        let (from_id, from_name) = match found {
            Some((id, name)) => (Some(id), name),
            None => (None, Arc::from(from)),
        };
        let sender = Sender {
            addr: from_addr,
            name: &from_name,
        };
        if let Some(id) = from_id.filter(|_| !reliable) {
            // Any datagram the transport authenticated as the member's shows it running now.
            // (Not a stream message: one delayed by retransmissions may have been sent by a
            // member that crashed since.)
            self.heard(id, now);
        }
        match packet.message {
            Message::PushPull { response, join, .. } => {
                self.on_push_pull(now, sender, response, join, &packet);
                self.ask_credentials();
                return Ok(());
            }
            Message::Records { response } => {
                self.on_records(now, sender, response, &packet);
                self.ask_credentials();
                return Ok(());
            }
            _ => {}
        }
        // `from_id` is the sender's name looked up above: no second lookup per message.
        let unknown = from_id.is_none_or(|id| self.view().get(id).is_none());
        if unknown && self.reconnector.shrunk() && !self.has_left() {
            // A member this view does not know talks to us, and this view has forgotten
            // members that never left: likely one of them, from a side of a healed partition
            // that gossip of the merge missed. Its record (with its credential) is asked of
            // it, at most once per `ASK_AGAIN_AFTER`. (Otherwise an unknown sender is a
            // newcomer whose join is being gossiped anyway.)
            self.membership
                .claims_mut()
                .waiting
                .ask(now, from_name.clone(), sender);
        }
        // Updates first: a refutation triggered by the buddy system then rides on the ack
        // this message may ask for.
        let mut digest = None;
        let mut outdated = Vec::new();
        for item in packet.items() {
            match item {
                Item::Member(update) => outdated.extend(self.on_update(now, sender, update)),
                Item::User {
                    origin,
                    seq,
                    payload,
                } => self.on_user_broadcast(origin, seq, payload),
                Item::StateDigest(d) => digest = Some(d),
                // `wire::decode` refuses these outside their own exchanges.
                Item::State(_) | Item::Wanted(_) => {}
            }
        }
        self.answer_outdated(now, sender, &outdated);
        self.ask_credentials();
        self.on_message(
            now,
            from_addr,
            from_id,
            &from_name,
            packet.message,
            reliable,
        );
        if let Some(d) = digest {
            self.on_state_digest(now, from_addr, &from_name, d);
        }
        Ok(())
    }

    /// Protocol checks that need no state change, so a refused input leaves none behind.
    fn check_peer(
        &self,
        message: &Message<'_>,
        from: &str,
        from_us: bool,
        reliable: bool,
    ) -> Result<(), PeerMisbehaved> {
        // Only another process holding our name's key can send as us: a name conflict, whose
        // refutations come straight to us as gossip (see `Outcome::Outbid`); nothing else.
        if from_us && !matches!(message, Message::Gossip) {
            return Err(PeerMisbehaved::FromOurselves);
        }
        match *message {
            Message::PushPull { cluster, .. } => {
                if !reliable {
                    return Err(PeerMisbehaved::StreamOnly("push-pull"));
                }
                if cluster != self.config.cluster_name {
                    return Err(PeerMisbehaved::ClusterMismatch {
                        theirs: cluster.into(),
                        ours: self.config.cluster_name.clone(),
                    });
                }
            }
            Message::Records { .. } if !reliable => {
                return Err(PeerMisbehaved::StreamOnly("records"));
            }
            Message::Ack { seq } | Message::Nack { seq } if seq >= SEQ_SPACE => {
                return Err(PeerMisbehaved::UnknownProbe {
                    from: from.into(),
                    seq,
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from: Option<MemberId>,
        from_name: &Arc<str>,
        message: Message<'_>,
        reliable: bool,
    ) {
        match message {
            Message::Ping { seq } => self.send(
                now,
                from_addr,
                Some(from_name.clone()),
                &Message::Ack { seq },
                None,
                reliable,
            ),
            Message::Ack { seq } => self.on_ack(now, from, from_name, seq, reliable),
            Message::Nack { seq } => {
                if self.prober.nack(from, seq) {
                    self.stats.nacks_received += 1;
                } else {
                    self.stats.late_acks += 1;
                }
            }
            Message::PingReq {
                seq,
                target,
                addr,
                nack,
            } => self.on_ping_req(now, from_addr, from_name, seq, target, addr, nack),
            Message::Gossip | Message::PushPull { .. } | Message::Records { .. } => {}
        }
    }

    /// A piggybacked update; the member whose record goes back to `from` if it spread stale
    /// news of it ([`Outcome::Outdated`]).
    fn on_update(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        update: Update<'_>,
    ) -> Option<MemberId> {
        let outcome = self
            .membership
            .apply_update(now, &self.config, from, update, fx!(self));
        self.after_claim(now, from, outcome, &Item::Member(update))
    }

    /// Our records of the members `from` spread stale failures of, straight back to it in
    /// one gossip datagram (each packet gets at most one answer, so a peer cannot make this
    /// node send more packets than it sends).
    fn answer_outdated(&mut self, now: Instant, from: Sender<'_>, members: &[MemberId]) {
        if !members.is_empty() {
            let sent = self.send_records(now, from.addr, from.name.clone(), members);
            self.stats.stale_news_answered += sent;
        }
    }

    /// This view's records of `members` (each once, those that fit) in one gossip datagram
    /// to `to`; how many went. An accuser's signature can fill more than a small datagram:
    /// a record that does not fit is left to gossip.
    fn send_records(
        &mut self,
        now: Instant,
        to: SocketAddr,
        name: Arc<str>,
        members: &[MemberId],
    ) -> u64 {
        let header = wire::encode_message(self.config.framing, &Message::Gossip).len();
        let mut records = Vec::new();
        let mut sent = 0;
        for (i, &id) in members.iter().enumerate() {
            let Some(m) = self.view().get(id).filter(|_| !members[..i].contains(&id)) else {
                continue;
            };
            let record = m.encode_update(None, self.view().my_name(), now);
            if header + records.len() + record.len() <= self.config.max_datagram_size {
                records.extend_from_slice(&record);
                sent += 1;
            }
        }
        if sent > 0 {
            let message = &Message::Gossip;
            self.send(now, to, Some(name), message, Some(&records), false);
        }
        sent
    }

    /// A peer's suspicion of `id` still open here at the minimum suspicion timeout
    /// (`Suspicions::pop_ask`), sent to `id` itself in one datagram: a live member refutes
    /// it and answers this node directly, instead of this node waiting on gossip for the
    /// refutation. In small clusters each member sends an update only four times, all of
    /// them at once when the news is fresh, so a member that took the suspicion before the
    /// refutation existed could miss the refutation for its whole suspicion timeout and
    /// declare a live member dead (a deaf member accusing everyone: once in about 8 000
    /// cases of the one-way partition proptest). Told at once instead, a flaky member heard
    /// more accusations before its quarantine and flapped up to 12 times (chaos case c).
    pub(super) fn tell_accused(&mut self, now: Instant, id: MemberId) {
        let Some((addr, name)) = self.view().get(id).map(|m| (m.addr, m.name.clone())) else {
            return;
        };
        self.stats.suspects_told += self.send_records(now, addr, name, &[id]);
    }

    /// A claim's outcome: a refuted suspicion of us charges local health; a claim that waits
    /// for a member's record is kept (`item`, as it arrived) and the record asked of `from`;
    /// stale news is returned, for the caller to answer (`answer_outdated`).
    fn after_claim(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        outcome: Outcome,
        item: &Item<'_>,
    ) -> Option<MemberId> {
        match outcome {
            Outcome::Done => {}
            Outcome::Outdated(id) => return Some(id),
            Outcome::RefutedSuspicion => {
                self.charge_suspicion(true);
                return Some(self.view().my_id());
            }
            // A previous instance at our own address is this process's predecessor: gone.
            Outcome::Outbid(addr) if addr == self.view().me().addr => {}
            Outcome::Outbid(addr) => {
                // Straight to the other process: each outbid of a name conflict then takes a
                // round trip, not gossip's luck (the peers send to one of the two addresses
                // only, so gossip may never reach the other).
                let (name, me) = (self.view().my_name().clone(), self.view().my_id());
                self.send_records(now, addr, name, &[me]);
            }
            Outcome::Wait { wants, or_else } => {
                let bytes = wire::encode_item(item);
                let held = self.membership.claims_mut().waiting.hold(
                    now,
                    (wants.clone(), or_else),
                    from.addr,
                    from.name,
                    bytes,
                );
                if let Err(reason) = held {
                    self.membership
                        .refused(from.name, &wants, reason, fx!(self));
                }
            }
        }
        None
    }

    /// Sends the requests for members' records that the claims just checked called for.
    pub(super) fn ask_credentials(&mut self) {
        for (addr, name, names) in self.membership.claims_mut().waiting.take_requests() {
            let mut payload =
                wire::encode_message(self.config.framing, &Message::Records { response: false });
            for wanted in &names {
                wire::append_item(&mut payload, &Item::Wanted(wanted));
            }
            self.stats.records_asked += names.len() as u64;
            self.queue(addr, Some(name), payload, MessageKind::Records, true);
        }
    }

    /// Records asked of us (answered with those this node holds, each with its credential,
    /// at most [`MAX_ASKED`]), or given to us: each one asked for is merged as a push-pull
    /// record would be, then the claims that waited for it are applied.
    fn on_records(&mut self, now: Instant, from: Sender<'_>, response: bool, packet: &Packet<'_>) {
        if !response {
            let wanted = packet.items().filter_map(|item| match item {
                Item::Wanted(name) => Some(name),
                _ => None,
            });
            let view = self.membership.view();
            let mut payload =
                pushpull::encode_records(self.config.framing, view, wanted, MAX_ASKED);
            if let Some(payload) = payload.take() {
                let to = from.name.clone();
                self.queue(from.addr, Some(to), payload, MessageKind::Records, true);
            }
            return;
        }
        for item in packet.items() {
            let Item::State(entry) = item else { continue };
            if !self.membership.claims.waiting.was_asked(entry.name) {
                continue;
            }
            if !entry.credential.is_empty() {
                let given = self
                    .membership
                    .claims_mut()
                    .given(entry.name, entry.credential);
                if let Err(reason) = given {
                    self.membership
                        .refused(from.name, entry.name, reason, fx!(self));
                    continue;
                }
            }
            // The claims that waited for this credential arrived before this record: they go
            // first, so that the record has the last word. (A left or dead record about a
            // member not in the view is not learned: merged first, it would be dropped, and
            // an older waiting alive claim would then bring the member back.)
            for pending in self.membership.claims_mut().waiting.release(entry.name) {
                self.replay(now, pending);
            }
            self.on_state_entry(now, from, entry);
        }
    }

    /// A claim that waited for a credential, applied now as if it had just arrived.
    fn replay(&mut self, now: Instant, pending: Pending) {
        let from = Sender {
            addr: pending.from_addr,
            name: &pending.from,
        };
        match wire::decode_item(&pending.item) {
            Some(Item::Member(update)) => {
                let outdated = self.on_update(now, from, update);
                self.answer_outdated(now, from, outdated.as_slice());
            }
            Some(Item::State(entry)) => self.on_state_entry(now, from, entry),
            _ => {}
        }
    }

    fn on_state_entry(&mut self, now: Instant, from: Sender<'_>, entry: StateEntry<'_>) {
        let outcome = pushpull::merge_record(
            now,
            &mut self.membership,
            &self.config,
            from,
            entry,
            fx!(self),
        );
        // Stale news in a push-pull needs no answer of its own: the exchange carries this
        // view's records to the peer either way.
        self.after_claim(now, from, outcome, &Item::State(entry));
    }

    /// `id` was heard at `now`: its last-heard moves, and a queued accusation of it says so.
    fn heard(&mut self, id: MemberId, now: Instant) {
        if self
            .membership
            .view_mut()
            .heard_alive(id, now, &self.config)
        {
            self.gossip.updates().restamp(Key::Member(id), now);
        }
    }

    /// Lifeguard: being suspected counts against this node's local health.
    fn charge_suspicion(&mut self, suspected: bool) {
        if suspected && self.config.lifeguard {
            self.awareness.apply(1);
        }
    }

    fn on_user_broadcast(&mut self, origin: &str, seq: u32, payload: &[u8]) {
        if origin == &**self.view().my_name() {
            return;
        }
        if let Some(origin) = self.gossip.receive(origin, seq, payload) {
            self.events.push_back(Event::UserBroadcast {
                origin,
                payload: payload.to_vec(),
            });
        }
    }

    /// An ack (`reliable`: on a stream) from `from`: it answers this node's probe, or a
    /// ping this node relays, or nothing any more.
    fn on_ack(
        &mut self,
        now: Instant,
        from: Option<MemberId>,
        from_name: &str,
        seq: u32,
        reliable: bool,
    ) {
        match self.prober.answer(now, from, from_name, seq) {
            Answer::Probe {
                target,
                rtt,
                indirect,
            } => {
                if self.config.lifeguard {
                    self.awareness.apply(-1);
                }
                // Direct: the target's own ack within the unscaled probe timeout (scaled by
                // local health, a slow node's late acks would pass, lift its quarantine, and
                // raise it again at the next accusation).
                let base = self.timings().probe_timeout(0);
                let directly = rtt.is_some_and(|rtt| rtt <= base);
                self.membership.judge_probe(now, directly, false, fx!(self));
                if indirect {
                    // Degraded: which path got through once the direct one had not.
                    let by = match (from == Some(target), reliable) {
                        (false, _) => &mut self.stats.probes_acked_by_helper,
                        (true, true) => &mut self.stats.probes_acked_by_stream,
                        (true, false) => &mut self.stats.probes_acked_late,
                    };
                    *by += 1;
                }
                if let Some(rtt) = rtt {
                    self.stats.probe_rtt_sum_us += rtt.as_micros() as u64;
                    self.stats.probe_rtt_count += 1;
                }
                // The target's own datagram was counted on arrival; a helper's relayed ack
                // says the target answered the helper just now.
                if !reliable && from != Some(target) {
                    self.heard(target, now);
                }
            }
            Answer::Relay(r) => {
                let ack = Message::Ack { seq: r.origin_seq };
                self.send(now, r.origin_addr, Some(r.origin_name), &ack, None, false);
            }
            Answer::Late => self.stats.late_acks += 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_ping_req(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from_name: &Arc<str>,
        origin_seq: u32,
        target: &str,
        target_addr: SocketAddr,
        nack: bool,
    ) {
        if target == &**self.view().my_name() {
            let ack = Message::Ack { seq: origin_seq };
            self.send(now, from_addr, Some(from_name.clone()), &ack, None, false);
            return;
        }
        // By name, not interned: the target need not be in this view.
        let target_name = self.view().name(target);
        let seq = self.prober.relay(Relay {
            origin_addr: from_addr,
            origin_name: from_name.clone(),
            origin_seq,
            nack,
            deadline: now + self.timings().nack_timeout(),
            target: target_name.clone(),
        });
        self.send(
            now,
            target_addr,
            Some(target_name),
            &Message::Ping { seq },
            None,
            false,
        );
    }

    /// A push-pull arrived (already checked: right cluster, on a stream). Merge it; answer a
    /// request with our state (with every credential, if it is a join); a response
    /// completes a join.
    fn on_push_pull(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        response: bool,
        join: bool,
        packet: &Packet<'_>,
    ) {
        self.stats.push_pulls += 1;
        for item in packet.items() {
            if let Item::State(entry) = item {
                self.on_state_entry(now, from, entry);
            }
        }
        if !response {
            self.send_state(from.addr, Some(from.name.clone()), true, join);
            if join && self.joiner.joined_by_another() {
                self.events.push_back(Event::Joined);
            }
        } else {
            self.anti_entropy.answered(now, from);
            if !self.is_joined() {
                self.mark_joined();
            }
        }
    }

    /// A peer's table fingerprint: if ours differs, the two tables disagree somewhere, and a
    /// full push-pull (which the peer answers with its state) reconciles them.
    fn on_state_digest(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from_name: &Arc<str>,
        digest: [u8; 8],
    ) {
        if digest != self.view().fingerprint() {
            self.stats.digest_mismatches += 1;
            self.request_state(now, from_addr, Some(from_name.clone()), false);
        }
    }
}
