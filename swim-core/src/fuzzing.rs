//! Entry points for the fuzz targets in `tests/fuzz/` (feature `fuzzing`): thin wrappers over
//! the crate-private wire codec, so the targets run the real decoder and encoder rather than a
//! copy. Not a stable API: hidden from the docs, and nothing but the fuzz crate should use it.

use std::net::SocketAddr;

use crate::config::Config;
use crate::error::DecodeError;
use crate::membership::MemberState;
use crate::trust::Claim;
use crate::wire::{
    self, Accusation, Framing, Item, Limits, Message, MessageKind, Own, Silence, StateEntry,
};

/// The size limits a node with `config` decodes its inputs with.
fn limits(config: &Config) -> Limits {
    Limits {
        max_meta: config.max_metadata_size,
        max_broadcast: config.max_broadcast_size,
    }
}

/// A packet the wire decoder recognised.
#[derive(Clone, Debug)]
pub struct Decoded<'a>(wire::Packet<'a>);

/// Recognises `bytes` as a packet framed with `framing`, with the size limits a node with
/// `config` applies (as `Node::handle_packet` and `Node::handle_stream` do).
pub fn decode<'a>(
    bytes: &'a [u8],
    framing: Framing,
    config: &Config,
) -> Result<Decoded<'a>, DecodeError> {
    wire::decode(bytes, framing, limits(config)).map(Decoded)
}

impl<'a> Decoded<'a> {
    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        self.0.message.kind()
    }

    /// The message.
    pub fn message(&self) -> MessageView<'a> {
        MessageView::of(&self.0.message)
    }

    /// The names a records request asks for.
    pub fn wanted(&self) -> Vec<&'a str> {
        self.0
            .items()
            .filter_map(|item| match item {
                Item::Wanted(name) => Some(name),
                _ => None,
            })
            .collect()
    }

    /// How many items follow the message.
    pub fn item_count(&self) -> usize {
        self.0.items().count()
    }

    /// The packet encoded again with the crate's encoder: the message, then every item.
    pub fn encode(&self, framing: Framing) -> Vec<u8> {
        let mut buf = wire::encode_message(framing, &self.0.message);
        for item in self.0.items() {
            wire::append_item(&mut buf, &item);
        }
        buf
    }

    /// Every membership record (push-pull state, records given) the packet carries.
    pub fn state_records(&self) -> Vec<StateRecord> {
        self.0
            .items()
            .filter_map(|item| match item {
                Item::State(s) => Some(StateRecord::of(&s)),
                _ => None,
            })
            .collect()
    }
}

/// Equal message and equal items, in order.
impl PartialEq for Decoded<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.message == other.0.message && self.0.items().eq(other.0.items())
    }
}

/// One item the item decoder recognised (items are kept encoded one by one in the
/// dissemination queue and read back with it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodedItem<'a>(Item<'a>);

/// Reads one item encoded on its own, as the dissemination queue reads back what it stored.
pub fn decode_item(bytes: &[u8]) -> Option<DecodedItem<'_>> {
    wire::decode_item(bytes).map(DecodedItem)
}

impl DecodedItem<'_> {
    /// The item encoded again, as the dissemination queue stores it.
    pub fn encode(&self) -> Vec<u8> {
        wire::encode_item(&self.0)
    }
}

/// One member's full record, as a push-pull exchange carries it (owned, for building
/// exchanges from generated records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRecord {
    /// The member.
    pub name: String,
    /// Its incarnation.
    pub incarnation: u32,
    /// Its state.
    pub state: MemberState,
    /// The address it claims.
    pub addr: SocketAddr,
    /// The process it claims to be.
    pub boot_id: u32,
    /// Its metadata.
    pub meta: Vec<u8>,
    /// Its signature over its own claim (empty: none).
    pub sig: Vec<u8>,
    /// For a suspect or dead record: the accuser and its signature.
    pub accusation: Option<(String, Vec<u8>)>,
    /// Its credential (empty: none).
    pub credential: Vec<u8>,
}

impl StateRecord {
    fn of(s: &StateEntry<'_>) -> Self {
        Self {
            name: s.name.into(),
            incarnation: s.incarnation,
            state: s.state,
            addr: s.own.addr,
            boot_id: s.own.boot_id,
            meta: s.own.meta.into(),
            sig: s.own.sig.into(),
            accusation: s.accusation.map(|a| (a.accuser.into(), a.sig.into())),
            credential: s.credential.into(),
        }
    }

    fn entry(&self) -> StateEntry<'_> {
        StateEntry {
            name: &self.name,
            incarnation: self.incarnation,
            state: self.state,
            own: Own {
                addr: self.addr,
                boot_id: self.boot_id,
                meta: &self.meta,
                sig: &self.sig,
            },
            accusation: self.accusation.as_ref().map(|(accuser, sig)| Accusation {
                accuser,
                sig,
                silent: Silence::UNKNOWN,
            }),
            credential: &self.credential,
        }
    }

    /// The bytes the member's own signature (`sig`) must cover in `cluster`: its claim at
    /// this incarnation, left or alive as `state` says.
    pub fn own_claim(&self, cluster: &str) -> Vec<u8> {
        Claim::Own {
            cluster,
            name: &self.name,
            incarnation: self.incarnation,
            left: self.state == MemberState::Left,
            addr: self.addr,
            boot_id: self.boot_id,
            meta: &self.meta,
        }
        .to_bytes()
    }

    /// The bytes an accusation of this member at this incarnation by `accuser` must be
    /// signed over in `cluster`.
    pub fn accusation_claim(&self, cluster: &str, accuser: &str) -> Vec<u8> {
        Claim::Accusation {
            cluster,
            name: &self.name,
            incarnation: self.incarnation,
            accuser,
        }
        .to_bytes()
    }
}

/// A message, as the fuzz targets read and build them (the crate's own message type is
/// private).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageView<'a> {
    /// A direct probe.
    Ping {
        /// Its sequence number.
        seq: u32,
    },
    /// A probe's answer.
    Ack {
        /// The probe's sequence number.
        seq: u32,
    },
    /// An indirect probe request.
    PingReq {
        /// The sequence number to ack with.
        seq: u32,
        /// The member to ping.
        target: &'a str,
        /// Its address.
        addr: SocketAddr,
        /// Whether a nack is wanted.
        nack: bool,
    },
    /// Lifeguard's negative ack.
    Nack {
        /// The probe's sequence number.
        seq: u32,
    },
    /// Piggybacked items only.
    Gossip,
    /// A push-pull exchange.
    PushPull {
        /// The sender's cluster name.
        cluster: &'a str,
        /// An answer (not a request).
        response: bool,
        /// A join (credentials included).
        join: bool,
    },
    /// Records asked for (`Wanted` items) or given (`State` items).
    Records {
        /// Given (not asked for).
        response: bool,
    },
}

impl<'a> MessageView<'a> {
    fn of(m: &Message<'a>) -> Self {
        match *m {
            Message::Ping { seq } => Self::Ping { seq },
            Message::Ack { seq } => Self::Ack { seq },
            Message::PingReq {
                seq,
                target,
                addr,
                nack,
            } => Self::PingReq {
                seq,
                target,
                addr,
                nack,
            },
            Message::Nack { seq } => Self::Nack { seq },
            Message::Gossip => Self::Gossip,
            Message::PushPull {
                cluster,
                response,
                join,
            } => Self::PushPull {
                cluster,
                response,
                join,
            },
            Message::Records { response } => Self::Records { response },
        }
    }

    fn message(&self) -> Message<'a> {
        match *self {
            Self::Ping { seq } => Message::Ping { seq },
            Self::Ack { seq } => Message::Ack { seq },
            Self::PingReq {
                seq,
                target,
                addr,
                nack,
            } => Message::PingReq {
                seq,
                target,
                addr,
                nack,
            },
            Self::Nack { seq } => Message::Nack { seq },
            Self::Gossip => Message::Gossip,
            Self::PushPull {
                cluster,
                response,
                join,
            } => Message::PushPull {
                cluster,
                response,
                join,
            },
            Self::Records { response } => Message::Records { response },
        }
    }
}

/// `message` framed with `framing`, followed by `records` as state items, encoded by the
/// crate's encoder (no check: sizes, names and placement are the decoder's to refuse).
pub fn encode(framing: Framing, message: &MessageView<'_>, records: &[StateRecord]) -> Vec<u8> {
    let mut buf = wire::encode_message(framing, &message.message());
    for r in records {
        wire::append_item(&mut buf, &Item::State(r.entry()));
    }
    buf
}
