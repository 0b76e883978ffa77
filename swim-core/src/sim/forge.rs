//! Claims made by someone who may not make them, for tests of who may say what: a member's
//! own claims (alive, left) made by another, accusations in another accuser's name, and the
//! bytes they would have to be signed over. Real nodes never send these.

use std::net::SocketAddr;

use crate::trust::Claim;
use crate::wire::{self, Accusation, Framing, Item, Message, Own, Silence, Update, UpdateKind};

/// A claim about the member `name`.
#[derive(Clone, Copy, Debug)]
pub enum Forgery<'a> {
    /// `name` is alive at `incarnation`, at `addr`, as process `boot_id`.
    Alive {
        /// The member.
        name: &'a str,
        /// The incarnation claimed.
        incarnation: u32,
        /// The address claimed.
        addr: SocketAddr,
        /// The process claimed.
        boot_id: u32,
    },
    /// `name` left at `incarnation` (advertising `addr`, as process `boot_id`).
    Left {
        /// The member.
        name: &'a str,
        /// The incarnation claimed.
        incarnation: u32,
        /// The address claimed.
        addr: SocketAddr,
        /// The process claimed.
        boot_id: u32,
    },
    /// `accuser` suspects `name` at `incarnation`.
    Suspect {
        /// The member accused.
        name: &'a str,
        /// The incarnation accused.
        incarnation: u32,
        /// Who is said to accuse.
        accuser: &'a str,
    },
    /// `accuser` declared `name` dead at `incarnation`.
    Dead {
        /// The member accused.
        name: &'a str,
        /// The incarnation accused.
        incarnation: u32,
        /// Who is said to accuse.
        accuser: &'a str,
    },
}

impl Forgery<'_> {
    fn claim(&self, cluster: &'_ str) -> Vec<u8> {
        let claim = match *self {
            Forgery::Alive {
                name,
                incarnation,
                addr,
                boot_id,
            }
            | Forgery::Left {
                name,
                incarnation,
                addr,
                boot_id,
            } => Claim::Own {
                cluster,
                name,
                incarnation,
                left: matches!(self, Forgery::Left { .. }),
                addr,
                boot_id,
                meta: &[],
            },
            Forgery::Suspect {
                name,
                incarnation,
                accuser,
            }
            | Forgery::Dead {
                name,
                incarnation,
                accuser,
            } => Claim::Accusation {
                cluster,
                name,
                incarnation,
                accuser,
            },
        };
        claim.to_bytes()
    }
}

/// The bytes a signature over `forgery` in `cluster` covers (whoever signs them).
pub fn claim_bytes(cluster: &str, forgery: &Forgery<'_>) -> Vec<u8> {
    forgery.claim(cluster)
}

/// A gossip datagram framed with `framing` carrying `forgery` with `signature` (empty: none).
pub fn gossip(framing: Framing, forgery: &Forgery<'_>, signature: &[u8]) -> Vec<u8> {
    let (name, incarnation, kind) = match *forgery {
        Forgery::Alive {
            name,
            incarnation,
            addr,
            boot_id,
        }
        | Forgery::Left {
            name,
            incarnation,
            addr,
            boot_id,
        } => {
            let own = Own {
                addr,
                boot_id,
                meta: &[],
                sig: signature,
            };
            let kind = match forgery {
                Forgery::Alive { .. } => UpdateKind::Alive(own),
                _ => UpdateKind::Left(own),
            };
            (name, incarnation, kind)
        }
        Forgery::Suspect {
            name,
            incarnation,
            accuser,
        }
        | Forgery::Dead {
            name,
            incarnation,
            accuser,
        } => {
            let a = Accusation {
                accuser,
                sig: signature,
                silent: Silence::UNKNOWN,
            };
            let kind = match forgery {
                Forgery::Suspect { .. } => UpdateKind::Suspect(a),
                _ => UpdateKind::Dead(a),
            };
            (name, incarnation, kind)
        }
    };
    let mut packet = wire::encode_message(framing, &Message::Gossip);
    wire::append_item(
        &mut packet,
        &Item::Member(Update {
            name,
            incarnation,
            kind,
        }),
    );
    packet
}
