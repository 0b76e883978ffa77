//! The byte formats of the structured fuzz inputs, read by [`Reader`] and written by
//! [`Writer`]: one the inverse of the other, so that real traffic from the simulator can be
//! written as seed inputs (see `examples/seed_corpus.rs`) and a crash input can be printed
//! and rebuilt. Every byte string parses: a short input reads as zeros past its end.
//!
//! Pools keep inputs near the cluster: names `node-0`..`node-4` (the node under test is
//! `node-0`; `node-4` belongs to nobody in the simulator's traffic) and their loopback
//! addresses, plus any name or address spelt out in full.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use swim_core::fuzzing::StateRecord;
use swim_core::sim::SimTrust;
use swim_core::MemberState;

/// The names of the pool; the node under test is the first.
pub const NAMES: [&str; 5] = ["node-0", "node-1", "node-2", "node-3", "node-4"];

/// Addresses in the pool: `addr(i)` is `NAMES[i]`'s (the simulator's slot addresses);
/// `addr(5)` belongs to nobody.
pub const ADDRS: usize = 6;

/// The simulator's address of member `i`.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i as u8 + 1], 7946))
}

/// The cluster name every node of the targets uses.
pub const CLUSTER: &str = "swim";

/// Reads a structured input; past the end every read gives zeros (or nothing).
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A byte string behind its length (two bytes).
    pub fn blob(&mut self) -> Vec<u8> {
        let n = usize::from(self.u16());
        self.bytes(n).to_vec()
    }

    /// A byte string behind its length (one byte).
    pub fn short_blob(&mut self) -> Vec<u8> {
        let n = usize::from(self.u8());
        self.bytes(n).to_vec()
    }

    /// A name: one of the pool (a byte below 0xf0), else spelt out (one byte of length).
    pub fn name(&mut self) -> String {
        match self.u8() {
            b @ 0..0xf0 => NAMES[usize::from(b) % NAMES.len()].to_string(),
            _ => text(&self.short_blob()),
        }
    }

    /// An incarnation: a byte below 0xff is itself, 0xff is followed by four bytes.
    pub fn incarnation(&mut self) -> u32 {
        match self.u8() {
            0xff => self.u32(),
            b => u32::from(b),
        }
    }

    /// An address: one of the pool (a byte below 0xfe), else IPv4 (0xfe) or IPv6 (0xff)
    /// octets and a port.
    pub fn addr(&mut self) -> SocketAddr {
        match self.u8() {
            0xfe => {
                let ip: [u8; 4] = self.bytes(4).try_into().unwrap_or_default();
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), self.u16())
            }
            0xff => {
                let ip: [u8; 16] = self.bytes(16).try_into().unwrap_or_default();
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), self.u16())
            }
            b => addr(usize::from(b) % ADDRS),
        }
    }

    /// A boot id: a byte below 0xff is itself, 0xff is followed by four bytes.
    pub fn boot_id(&mut self) -> u32 {
        self.incarnation()
    }

    /// How a claim is signed.
    pub fn signing(&mut self) -> Signing {
        match self.u8() % 4 {
            0 => Signing::None,
            1 => Signing::Rightful,
            2 => Signing::By(self.name()),
            _ => Signing::Raw(self.blob()),
        }
    }

    /// Which credential a record carries.
    pub fn credential(&mut self) -> Credential {
        match self.u8() % 4 {
            0 => Credential::None,
            1 => Credential::Own,
            2 => Credential::Of(self.name()),
            _ => Credential::Raw(self.blob()),
        }
    }

    /// A membership record.
    pub fn record(&mut self) -> Record {
        Record {
            name: self.name(),
            incarnation: self.incarnation(),
            state: state(self.u8()),
            addr: self.addr(),
            boot_id: self.boot_id(),
            meta: self.blob(),
            signing: self.signing(),
            accusation: match self.u8() % 2 {
                0 => None,
                _ => Some((self.name(), self.signing())),
            },
            credential: self.credential(),
        }
    }
}

/// `bytes` as text, invalid UTF-8 replaced, cut to at most 255 bytes (so that it is written
/// back as it was read).
pub fn text(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn state(b: u8) -> MemberState {
    [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ][usize::from(b % 4)]
}

fn state_index(s: MemberState) -> u8 {
    match s {
        MemberState::Alive => 0,
        MemberState::Suspect => 1,
        MemberState::Dead => 2,
        MemberState::Left => 3,
    }
}

/// Writes what [`Reader`] reads.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes so far.
    pub out: Vec<u8>,
}

impl Writer {
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// Eight bytes, little-endian.
    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// A byte string behind its length (two bytes; at most 65 535 bytes).
    pub fn blob(&mut self, b: &[u8]) {
        let n = b.len().min(usize::from(u16::MAX));
        self.u16(n as u16);
        self.out.extend_from_slice(&b[..n]);
    }

    /// A byte string behind its length (one byte; at most 255 bytes).
    pub fn short_blob(&mut self, b: &[u8]) {
        let n = b.len().min(255);
        self.u8(n as u8);
        self.out.extend_from_slice(&b[..n]);
    }

    /// A name (see [`Reader::name`]).
    pub fn name(&mut self, name: &str) {
        match NAMES.iter().position(|n| *n == name) {
            Some(i) => self.u8(i as u8),
            None => {
                self.u8(0xf0);
                self.short_blob(name.as_bytes());
            }
        }
    }

    /// An incarnation (see [`Reader::incarnation`]).
    pub fn incarnation(&mut self, v: u32) {
        match u8::try_from(v) {
            Ok(b) if b != 0xff => self.u8(b),
            _ => {
                self.u8(0xff);
                self.u32(v);
            }
        }
    }

    /// An address (see [`Reader::addr`]).
    pub fn addr(&mut self, a: SocketAddr) {
        if let Some(i) = (0..ADDRS).find(|&i| addr(i) == a) {
            self.u8(i as u8);
            return;
        }
        match a.ip() {
            IpAddr::V4(ip) => {
                self.u8(0xfe);
                self.out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.u8(0xff);
                self.out.extend_from_slice(&ip.octets());
            }
        }
        self.u16(a.port());
    }

    /// A boot id (see [`Reader::boot_id`]).
    pub fn boot_id(&mut self, v: u32) {
        self.incarnation(v);
    }

    /// How a claim is signed (see [`Reader::signing`]).
    pub fn signing(&mut self, s: &Signing) {
        match s {
            Signing::None => self.u8(0),
            Signing::Rightful => self.u8(1),
            Signing::By(name) => {
                self.u8(2);
                self.name(name);
            }
            Signing::Raw(b) => {
                self.u8(3);
                self.blob(b);
            }
        }
    }

    /// Which credential (see [`Reader::credential`]).
    pub fn credential(&mut self, c: &Credential) {
        match c {
            Credential::None => self.u8(0),
            Credential::Own => self.u8(1),
            Credential::Of(name) => {
                self.u8(2);
                self.name(name);
            }
            Credential::Raw(b) => {
                self.u8(3);
                self.blob(b);
            }
        }
    }

    /// A membership record (see [`Reader::record`]).
    pub fn record(&mut self, r: &Record) {
        self.name(&r.name);
        self.incarnation(r.incarnation);
        self.u8(state_index(r.state));
        self.addr(r.addr);
        self.boot_id(r.boot_id);
        self.blob(&r.meta);
        self.signing(&r.signing);
        match &r.accusation {
            None => self.u8(0),
            Some((accuser, signing)) => {
                self.u8(1);
                self.name(accuser);
                self.signing(signing);
            }
        }
        self.credential(&r.credential);
    }
}

/// How a claim is signed, with the simulator's stand-in keys ([`SimTrust`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signing {
    /// Not at all (an unsigned cluster's claims).
    None,
    /// By whoever may make it: the member for its own claim, the accuser for an accusation.
    Rightful,
    /// By this member, whoever may make it.
    By(String),
    /// These bytes.
    Raw(Vec<u8>),
}

impl Signing {
    /// The signature over `claim` whose rightful signer is `rightful`.
    pub fn sign(&self, rightful: &str, claim: &[u8]) -> Vec<u8> {
        match self {
            Signing::None => Vec::new(),
            Signing::Rightful => SimTrust::signature(rightful, claim),
            Signing::By(name) => SimTrust::signature(name, claim),
            Signing::Raw(b) => b.clone(),
        }
    }

    /// How `sig` over `claim` was made, as far as it can be told (for writing real traffic).
    pub fn of(sig: &[u8], rightful: &str, claim: &[u8]) -> Self {
        if sig.is_empty() {
            Signing::None
        } else if sig == SimTrust::signature(rightful, claim) {
            Signing::Rightful
        } else if let Some(n) = NAMES.iter().find(|n| sig == SimTrust::signature(n, claim)) {
            Signing::By(n.to_string())
        } else {
            Signing::Raw(sig.to_vec())
        }
    }
}

/// The credential a record carries, with the simulator's stand-in credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// None.
    None,
    /// The member's own.
    Own,
    /// This member's.
    Of(String),
    /// These bytes.
    Raw(Vec<u8>),
}

/// A membership record, signed as [`Signing`] says when it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The member.
    pub name: String,
    /// Its incarnation.
    pub incarnation: u32,
    /// Its state.
    pub state: MemberState,
    /// The address it claims.
    pub addr: SocketAddr,
    /// The process it claims.
    pub boot_id: u32,
    /// Its metadata.
    pub meta: Vec<u8>,
    /// How its own claim is signed.
    pub signing: Signing,
    /// The accuser and how the accusation is signed.
    pub accusation: Option<(String, Signing)>,
    /// Its credential.
    pub credential: Credential,
}

impl Record {
    /// The record as the wire carries it, signatures made.
    pub fn build(&self) -> StateRecord {
        let mut r = StateRecord {
            name: self.name.clone(),
            incarnation: self.incarnation,
            state: self.state,
            addr: self.addr,
            boot_id: self.boot_id,
            meta: self.meta.clone(),
            sig: Vec::new(),
            accusation: None,
            credential: match &self.credential {
                Credential::None => Vec::new(),
                Credential::Own => SimTrust::credential_of(&self.name),
                Credential::Of(name) => SimTrust::credential_of(name),
                Credential::Raw(b) => b.clone(),
            },
        };
        r.sig = self.signing.sign(&self.name, &r.own_claim(CLUSTER));
        r.accusation = self.accusation.as_ref().map(|(accuser, signing)| {
            let sig = signing.sign(accuser, &r.accusation_claim(CLUSTER, accuser));
            (accuser.clone(), sig)
        });
        r
    }

    /// The record that [`build`](Self::build) gives `r` back, as far as it can be told.
    pub fn of(r: &StateRecord) -> Self {
        let credential = if r.credential.is_empty() {
            Credential::None
        } else if r.credential == SimTrust::credential_of(&r.name) {
            Credential::Own
        } else if let Some(n) = NAMES
            .iter()
            .find(|n| r.credential == SimTrust::credential_of(n))
        {
            Credential::Of(n.to_string())
        } else {
            Credential::Raw(r.credential.clone())
        };
        Record {
            name: r.name.clone(),
            incarnation: r.incarnation,
            state: r.state,
            addr: r.addr,
            boot_id: r.boot_id,
            meta: r.meta.clone(),
            signing: Signing::of(&r.sig, &r.name, &r.own_claim(CLUSTER)),
            accusation: r.accusation.as_ref().map(|(accuser, sig)| {
                let claim = r.accusation_claim(CLUSTER, accuser);
                (accuser.clone(), Signing::of(sig, accuser, &claim))
            }),
            credential,
        }
    }
}
