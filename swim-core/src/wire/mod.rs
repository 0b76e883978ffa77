//! The wire format: a postcard-encoded [`Message`], then zero or more postcard-encoded
//! [`Item`]s up to the end of the buffer, behind one protocol version byte unless the
//! transport fixes the version for the whole session ([`Framing`]).
//!
//! ```text
//! packet := [version:u8]  Message  Item*        (version byte: Framing::VersionByte only)
//! ```
//!
//! The sender's identity is never in the payload: it comes from the authenticated connection.
//! Decoding follows the langsec rule — the whole input is recognised (every item parsed and
//! bounds-checked) before any of it is acted on — borrows every string and byte field from
//! the input, and never panics.
//!
//! A probe round, as messages:
//! ```text
//! A ──Ping{seq}──▶ B                 A ──PingReq{seq,B}──▶ C ──Ping{seq'}──▶ B
//! A ◀──Ack{seq}─── B                 A ◀──Ack{seq}──────── C ◀──Ack{seq'}─── B
//!                                    A ◀──Nack{seq}─────── C   (no ack within 80 % of timeout)
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::MAX_NAME_LEN;
use crate::error::DecodeError;
use crate::membership::MemberState;

/// The protocol version this build speaks, on every transport session. Version 2: ping
/// sequence numbers below 128 (one varint byte), periodic anti-entropy by table fingerprint.
/// Version 3: swim-net's stream messages announce their length. Version 4: a suspicion or
/// death carries how long its subject had been silent (`Silence`).
pub const PROTOCOL_VERSION: u8 = 4;

/// The TLS application protocol (ALPN) id of [`PROTOCOL_VERSION`]: `swim/4`. A transport
/// that negotiates it fixes the version for the whole session and frames packets with
/// [`Framing::Session`]; a peer of another version cannot connect at all, rather than having
/// its messages misread.
pub const ALPN: &[u8] = &[b's', b'w', b'i', b'm', b'/', b'0' + PROTOCOL_VERSION];

const _: () = assert!(
    PROTOCOL_VERSION < 10,
    "ALPN spells the version as one digit"
);

/// How packets are framed: the one rule both ends of a transport follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Framing {
    /// Every packet starts with [`PROTOCOL_VERSION`], so it can travel on any transport
    /// (the simulator's network, plain UDP).
    #[default]
    VersionByte,
    /// The transport fixed the version for the whole session by negotiating [`ALPN`]
    /// (swim-net's QUIC connections): packets carry no version byte.
    Session,
}

/// The message a packet carries; piggybacked [`Item`]s follow it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// Are you alive? Answered by `Ack` with the same `seq`.
    Ping { seq: u32 },
    /// The answer to a `Ping` (or, relayed by an intermediary, to a `PingReq`).
    Ack { seq: u32 },
    /// Please ping `target` at `addr` for me; ack me with `seq` if it answers, and nack me
    /// if it does not and `nack` is set (Lifeguard).
    PingReq {
        seq: u32,
        target: &'a str,
        addr: SocketAddr,
        nack: bool,
    },
    /// The intermediary got no ack from the target in time.
    Nack { seq: u32 },
    /// Nothing but piggybacked items.
    Gossip,
    /// Anti-entropy: the full membership state follows as `Item::State`. Stream only. A
    /// `join` exchange carries every member's credential.
    PushPull {
        cluster: &'a str,
        response: bool,
        join: bool,
    },
    /// Members' records asked for by name (`Item::Wanted`), or given (`response`: as
    /// `Item::State`, each with the member's credential), so that a claim signed by a member
    /// this node has no credential of yet, or an accusation at an incarnation this node has
    /// not seen the member sign, can be checked. Stream only.
    Records { response: bool },
}

/// The kind of a protocol message, for per-type counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MessageKind {
    /// Direct probe.
    Ping,
    /// Probe answer.
    Ack,
    /// Indirect probe request.
    PingReq,
    /// Lifeguard negative ack.
    Nack,
    /// Gossip round.
    Gossip,
    /// Push-pull state exchange.
    PushPull,
    /// Members' records asked for or given.
    Records,
}

impl MessageKind {
    /// Every kind, in counter order.
    pub const ALL: [MessageKind; 7] = [
        MessageKind::Ping,
        MessageKind::Ack,
        MessageKind::PingReq,
        MessageKind::Nack,
        MessageKind::Gossip,
        MessageKind::PushPull,
        MessageKind::Records,
    ];

    /// Lower-case name, used as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Ping => "ping",
            MessageKind::Ack => "ack",
            MessageKind::PingReq => "ping_req",
            MessageKind::Nack => "nack",
            MessageKind::Gossip => "gossip",
            MessageKind::PushPull => "push_pull",
            MessageKind::Records => "records",
        }
    }

    /// The kind of a packet framed with `framing`, read from its first bytes without
    /// decoding the rest (for transports that account bytes by message type). `None` if the
    /// bytes are not a packet of this protocol version.
    pub fn of_packet(framing: Framing, bytes: &[u8]) -> Option<MessageKind> {
        let tag = match (framing, bytes) {
            (Framing::VersionByte, [PROTOCOL_VERSION, tag, ..]) => tag,
            (Framing::Session, [tag, ..]) => tag,
            _ => return None,
        };
        MessageKind::ALL.get(usize::from(*tag)).copied()
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl Message<'_> {
    pub(crate) fn kind(&self) -> MessageKind {
        match self {
            Message::Ping { .. } => MessageKind::Ping,
            Message::Ack { .. } => MessageKind::Ack,
            Message::PingReq { .. } => MessageKind::PingReq,
            Message::Nack { .. } => MessageKind::Nack,
            Message::Gossip => MessageKind::Gossip,
            Message::PushPull { .. } => MessageKind::PushPull,
            Message::Records { .. } => MessageKind::Records,
        }
    }
}

/// Something piggybacked after the message.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    /// A membership update being disseminated.
    Member(Update<'a>),
    /// An opaque application broadcast, identified by `(origin, seq)` for de-duplication.
    User {
        origin: &'a str,
        seq: u32,
        payload: &'a [u8],
    },
    /// One member's full record, in a push-pull exchange (stream only).
    State(StateEntry<'a>),
    /// A member whose record (with its credential) the sender asks for, in a `Records`
    /// request (stream only). The answer carries `State` items.
    Wanted(&'a str),
    /// A fingerprint of the sender's membership table, riding on a ping in place of a
    /// periodic push-pull: a receiver whose table has another fingerprint starts a full
    /// push-pull with the sender. Equal tables (the steady state) cost these 9 bytes.
    StateDigest([u8; 8]),
}

/// A membership update about `name` at `incarnation`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Update<'a> {
    pub name: &'a str,
    pub incarnation: u32,
    pub kind: UpdateKind<'a>,
}

/// What the update says.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateKind<'a> {
    /// The member is alive as it says itself (signed by it).
    Alive(#[serde(borrow)] Own<'a>),
    /// An accuser suspects the member (Lifeguard counts distinct accusers).
    Suspect(#[serde(borrow)] Accusation<'a>),
    /// The member was declared dead, by the accuser whose suspicion ran out.
    Dead(#[serde(borrow)] Accusation<'a>),
    /// The member left gracefully, as it says itself (signed by it).
    Left(#[serde(borrow)] Own<'a>),
}

/// A member's own claim: where it is, as which process (boot id), with what metadata, and
/// its signature over that (empty without a [`Trust`](crate::Trust)).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Own<'a> {
    pub addr: SocketAddr,
    pub boot_id: u32,
    pub meta: &'a [u8],
    pub sig: &'a [u8],
}

/// Who accuses, and its signature over the accusation; and how long the accused had been
/// silent when it was sent.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accusation<'a> {
    pub accuser: &'a str,
    pub sig: &'a [u8],
    /// Last: a queued update's last four bytes, rewritten at each send (see [`Silence`]).
    pub silent: Silence,
}

/// How long ago the sender, or a peer it learned the accusation from, last heard the
/// accused (any authenticated message from it): the sender's own silence or the one it was
/// told plus the time it held it, whichever is shorter. No clock is shared: each hop adds
/// its own holding time. Not signed: a peer can only move a receiver's estimate within what
/// the receiver itself knows (see `Membership::hear_silence`). Milliseconds, four bytes
/// little-endian, fixed so that a queued update can be restamped in place.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Silence(pub [u8; 4]);

impl Silence {
    /// Bytes a silence takes on the wire.
    pub(crate) const LEN: usize = 4;
    /// Nothing known (a record from a peer that does not say).
    pub(crate) const UNKNOWN: Silence = Silence([0xff; 4]);

    /// The silence since `heard`, as of `now`, in whole milliseconds rounded up (rounded
    /// down, each hop would move the estimate later by up to a millisecond); saturating at
    /// about 49 days.
    pub(crate) fn since(heard: Instant, now: Instant) -> Self {
        let ms = now
            .saturating_duration_since(heard)
            .as_micros()
            .div_ceil(1000);
        Self(
            u32::try_from(ms)
                .unwrap_or(u32::MAX - 1)
                .min(u32::MAX - 1)
                .to_le_bytes(),
        )
    }

    /// When the accused was last heard, as of `now`: `None` if unknown.
    pub(crate) fn heard(self, now: Instant) -> Option<Instant> {
        if self == Self::UNKNOWN {
            return None;
        }
        let ms = u32::from_le_bytes(self.0);
        now.checked_sub(Duration::from_millis(u64::from(ms)))
    }
}

/// One member's record in a push-pull exchange: its own claim at `incarnation` (alive, or
/// left when `state` is left), and for a suspect or dead record the accusation.
/// `credential` is the member's credential when the exchange asked for them (a join), else
/// empty.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateEntry<'a> {
    pub name: &'a str,
    pub incarnation: u32,
    pub state: MemberState,
    #[serde(borrow)]
    pub own: Own<'a>,
    #[serde(borrow)]
    pub accusation: Option<Accusation<'a>>,
    pub credential: &'a [u8],
}

/// The longest signature accepted (an RSA-4096 signature and its scheme are 514 bytes).
pub(crate) const MAX_SIGNATURE_LEN: usize = 1024;

/// The longest credential accepted (a certificate chain of a few certificates).
pub(crate) const MAX_CREDENTIAL_LEN: usize = 16 * 1024;

/// Size limits a decoder enforces on variable-length fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_meta: usize,
    pub max_broadcast: usize,
}

/// Inputs with at most this many items keep them as parsed, so they are parsed once (a full
/// datagram carries a few dozen); inputs with more (push-pull state) are walked again when
/// their items are read. Decoding thus allocates at most this many items, whatever the
/// input.
const MAX_KEPT_ITEMS: usize = 64;

/// A fully recognised packet: the message, and its items (already validated).
#[derive(Debug, Clone)]
pub(crate) struct Packet<'a> {
    pub message: Message<'a>,
    items: Items<'a>,
}

#[derive(Debug, Clone)]
enum Items<'a> {
    Parsed(Vec<Item<'a>>),
    Raw(&'a [u8]),
}

impl<'a> Packet<'a> {
    /// The piggybacked items, in order. Validation already succeeded, so none is skipped.
    pub(crate) fn items(&self) -> impl Iterator<Item = Item<'a>> + '_ {
        let (mut parsed, mut raw) = match &self.items {
            Items::Parsed(v) => (v.iter(), &[][..]),
            Items::Raw(r) => ([].iter(), *r),
        };
        std::iter::from_fn(move || {
            if let Some(item) = parsed.next() {
                return Some(*item);
            }
            if raw.is_empty() {
                return None;
            }
            let (item, tail) = postcard::take_from_bytes::<Item<'a>>(raw).ok()?;
            raw = tail;
            Some(item)
        })
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::FieldTooLong { field, len, max });
    }
    Ok(())
}

fn check_name(field: &'static str, name: &str) -> Result<(), DecodeError> {
    if name.is_empty() {
        return Err(DecodeError::Malformed);
    }
    check_len(field, name.len(), MAX_NAME_LEN)
}

fn check_own(own: &Own<'_>, limits: Limits) -> Result<(), DecodeError> {
    check_len("metadata", own.meta.len(), limits.max_meta)?;
    check_len("signature", own.sig.len(), MAX_SIGNATURE_LEN)
}

fn check_accusation(a: &Accusation<'_>) -> Result<(), DecodeError> {
    check_name("accuser", a.accuser)?;
    check_len("signature", a.sig.len(), MAX_SIGNATURE_LEN)
}

fn check_item(item: &Item<'_>, limits: Limits) -> Result<(), DecodeError> {
    match item {
        Item::Member(u) => {
            check_name("name", u.name)?;
            match &u.kind {
                UpdateKind::Alive(own) | UpdateKind::Left(own) => check_own(own, limits),
                UpdateKind::Suspect(a) | UpdateKind::Dead(a) => check_accusation(a),
            }
        }
        Item::User {
            origin, payload, ..
        } => {
            check_name("origin", origin)?;
            check_len("broadcast", payload.len(), limits.max_broadcast)
        }
        Item::State(s) => {
            check_name("name", s.name)?;
            check_own(&s.own, limits)?;
            if let Some(a) = &s.accusation {
                check_accusation(a)?;
            }
            check_len("credential", s.credential.len(), MAX_CREDENTIAL_LEN)
        }
        Item::Wanted(name) => check_name("name", name),
        Item::StateDigest(_) => Ok(()),
    }
}

/// Where an item may appear: membership state only in push-pull and in records given,
/// wanted names only in records asked for, and neither exchange carries anything else.
fn check_placement(message: &Message<'_>, item: &Item<'_>) -> Result<(), DecodeError> {
    let refused = match (message, item) {
        (Message::PushPull { .. }, Item::State(_)) => return Ok(()),
        (Message::Records { response: true }, Item::State(_)) => return Ok(()),
        (Message::Records { response: false }, Item::Wanted(_)) => return Ok(()),
        (Message::Records { .. }, _) => "an item out of place in a records exchange",
        (_, Item::State(_)) => "membership state outside push-pull",
        (_, Item::Wanted(_)) => "a wanted record outside a records request",
        (Message::PushPull { .. }, _) => "piggybacked item in push-pull",
        _ => return Ok(()),
    };
    Err(DecodeError::UnexpectedItem(refused))
}

/// Recognises a whole packet framed with `framing` or refuses it; never panics, and
/// allocates at most a list of the items it parsed.
pub(crate) fn decode(
    bytes: &[u8],
    framing: Framing,
    limits: Limits,
) -> Result<Packet<'_>, DecodeError> {
    let body = match framing {
        Framing::VersionByte => {
            let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
            if version != PROTOCOL_VERSION {
                return Err(DecodeError::UnknownVersion(version));
            }
            body
        }
        Framing::Session if bytes.is_empty() => return Err(DecodeError::Empty),
        Framing::Session => bytes,
    };
    let (message, items) =
        postcard::take_from_bytes::<Message<'_>>(body).map_err(|_| DecodeError::Malformed)?;
    // The kind is the first byte, as the encoder writes it and `MessageKind::of_packet` reads
    // it: postcard would also take a longer (non-canonical) varint for the variant, which
    // would be a message of one kind to the node and of none to the transport's accounting.
    if body.first() != Some(&(message.kind().index() as u8)) {
        return Err(DecodeError::Malformed);
    }
    match message {
        Message::PingReq { target, .. } => check_name("target", target)?,
        Message::PushPull { cluster, .. } => check_name("cluster", cluster)?,
        _ => {}
    }
    let mut parsed = Vec::new();
    let mut keep = true;
    let mut rest = items;
    while !rest.is_empty() {
        let (item, tail) =
            postcard::take_from_bytes::<Item<'_>>(rest).map_err(|_| DecodeError::Malformed)?;
        check_item(&item, limits)?;
        check_placement(&message, &item)?;
        if keep && parsed.len() < MAX_KEPT_ITEMS {
            parsed.push(item);
        } else if keep {
            keep = false;
            parsed = Vec::new();
        }
        rest = tail;
    }
    let items = if keep {
        Items::Parsed(parsed)
    } else {
        Items::Raw(items)
    };
    Ok(Packet { message, items })
}

/// One item encoded on its own (by [`encode_item`], from an input already validated).
pub(crate) fn decode_item(bytes: &[u8]) -> Option<Item<'_>> {
    postcard::from_bytes(bytes).ok()
}

/// Starts a packet framed with `framing`: the version byte if it takes one, and the message.
pub(crate) fn encode_message(framing: Framing, message: &Message<'_>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    if framing == Framing::VersionByte {
        buf.push(PROTOCOL_VERSION);
    }
    append(&mut buf, message);
    buf
}

/// Encodes one item on its own, to be appended to packets later.
pub(crate) fn encode_item(item: &Item<'_>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(48);
    append(&mut buf, item);
    buf
}

/// Appends one item to a packet under construction.
pub(crate) fn append_item(buf: &mut Vec<u8>, item: &Item<'_>) {
    append(buf, item);
}

fn append<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    let taken = std::mem::take(buf);
    // Serialising into a Vec fails only for sequences of unknown length, which this format
    // does not contain.
    *buf = postcard::to_extend(value, taken).expect("BUG! postcard refused a fixed-shape value");
}

#[cfg(test)]
mod tests;
