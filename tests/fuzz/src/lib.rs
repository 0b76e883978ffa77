//! The fuzz targets' bodies, kept in a library so that the targets (`fuzz_targets/`, run by
//! cargo-fuzz) and the plain tests that replay their corpora and every crash found
//! (`tests/replay.rs`, run by `cargo test`) call the same code. See `README.md`.

#![warn(missing_docs)]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use rcgen::{CertificateParams, KeyPair, SanType};
use swim_core::fuzzing;
use swim_core::{Config, Framing, MessageKind, PROTOCOL_VERSION};

pub mod format;
pub mod node;

use format::{Reader, Record, Writer};
use node::{config, Harness, NodeInput, Peer, Setup, Step};

// ----- wire_decode -----------------------------------------------------------------------

/// `wire_decode`: the first byte picks the size limits (bit 0: the short configuration's,
/// else the defaults); the rest is a packet. It goes through the decoder framed both ways —
/// as is without a version byte, and behind the version byte — and with a version byte of
/// its own. Decoding never panics; both framings agree; what decodes encodes again to a
/// packet no longer than the input that decodes to the same packet (a fixed point); and one
/// item on its own round-trips the same way.
pub fn wire_decode(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let config = config(flags & 1 != 0, Framing::VersionByte);
    let session = fuzzing::decode(body, Framing::Session, &config);
    let mut versioned = Vec::with_capacity(body.len() + 1);
    versioned.push(PROTOCOL_VERSION);
    versioned.extend_from_slice(body);
    let behind_version = fuzzing::decode(&versioned, Framing::VersionByte, &config);
    match (&session, &behind_version) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the two framings decode differently"),
        // An empty session packet is refused as empty; behind a version byte, as malformed.
        (Err(a), Err(b)) if !body.is_empty() => {
            assert_eq!(a, b, "the two framings refuse differently")
        }
        (Err(_), Err(_)) => {}
        _ => panic!("one framing decodes, the other refuses: {session:?} / {behind_version:?}"),
    }
    if let Ok(packet) = &session {
        round_trip(packet, Framing::Session, body.len(), &config);
        round_trip(packet, Framing::VersionByte, versioned.len(), &config);
        assert_eq!(
            MessageKind::of_packet(Framing::Session, body),
            Some(packet.kind()),
            "the message kind read from the first byte"
        );
    }
    // The input read as a whole packet with its own first byte as the version byte.
    if let Ok(packet) = fuzzing::decode(data, Framing::VersionByte, &config) {
        round_trip(&packet, Framing::VersionByte, data.len(), &config);
    }
    if let Some(item) = fuzzing::decode_item(body) {
        let again = item.encode();
        assert!(
            again.len() <= body.len(),
            "an item encodes longer than it was read"
        );
        assert_eq!(
            fuzzing::decode_item(&again),
            Some(item),
            "an item does not round-trip"
        );
    }
}

fn round_trip(packet: &fuzzing::Decoded<'_>, framing: Framing, len: usize, config: &Config) {
    let encoded = packet.encode(framing);
    assert!(
        encoded.len() <= len,
        "a packet of {len} bytes encodes again as {} bytes",
        encoded.len()
    );
    let again = fuzzing::decode(&encoded, framing, config)
        .unwrap_or_else(|e| panic!("a decoded packet, encoded again, is refused: {e}"));
    assert_eq!(&again, packet, "a packet does not round-trip");
    assert_eq!(
        again.encode(framing),
        encoded,
        "encoding is not a fixed point"
    );
    assert_eq!(again.item_count(), packet.item_count());
}

// ----- node_inputs -----------------------------------------------------------------------

/// `node_inputs`: one node driven by the steps of a [`NodeInput`]; every invariant of
/// [`Harness::check`] after every step. Returns the harness for the replay tests.
pub fn node_inputs(input: &NodeInput) -> Harness {
    Harness::run(input.setup, &input.steps)
}

// ----- push_pull_merge -------------------------------------------------------------------

/// The input of `push_pull_merge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeInput {
    /// The node.
    pub setup: Setup,
    /// The view it holds first: a join push-pull from `node-1` carrying these records.
    pub base: Vec<Record>,
    /// Time between the two exchanges, in milliseconds.
    pub pause_ms: u16,
    /// Who sends the exchange merged.
    pub from: Peer,
    /// Flags of the exchange (see [`Step::State`]).
    pub flags: u8,
    /// The records merged.
    pub records: Vec<Record>,
}

impl MergeInput {
    /// Reads an input; every byte string is one.
    pub fn parse(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let setup = Setup::read(&mut r);
        let n = usize::from(r.u8() % 9);
        let base = (0..n).map(|_| r.record()).collect();
        let pause_ms = r.u16();
        let from = Peer::read(&mut r);
        let flags = r.u8();
        let mut records = Vec::new();
        while !r.is_empty() && records.len() < 64 {
            records.push(r.record());
        }
        MergeInput {
            setup,
            base,
            pause_ms,
            from,
            flags,
            records,
        }
    }

    /// The bytes [`parse`](Self::parse) reads back as `self`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.setup.write(&mut w);
        let n = self.base.len().min(8);
        w.u8(n as u8);
        for b in &self.base[..n] {
            w.record(b);
        }
        w.u16(self.pause_ms);
        self.from.write(&mut w);
        w.u8(self.flags);
        for r in self.records.iter().take(64) {
            w.record(r);
        }
        w.out
    }
}

/// `push_pull_merge`: a node that holds a view (a join push-pull of `base` records from
/// `node-1`, then `pause_ms` of its timers) merges a push-pull (or records answer) built from
/// arbitrary records. The node's invariants hold after each step; merging the same push-pull
/// a second time at the same instant changes nothing (merging is idempotent) when it names
/// each member once, as every exchange a node sends does; the node keeps running afterwards.
///
/// Not idempotent, by design: a records answer is taken only for the names this node asked
/// for, and taking one can make it ask for more (an accuser's record), which the same answer
/// delivered again then gives. And an exchange naming a member twice is merged record by
/// record, while a left or dead record about a member not in the view is not learned: "left
/// at 7" then "alive at 7" leaves the member alive, and the same exchange again makes it
/// left. Only a peer that builds its exchanges by hand sends one; see `benches/README.md`,
/// "Fuzzing".
pub fn push_pull_merge(input: &MergeInput) -> Harness {
    let mut h = Harness::new(input.setup);
    h.step(&Step::State {
        from: Peer { name: 1, addr: 1 },
        records: false,
        response: false,
        join: true,
        entries: input.base.clone(),
    });
    h.step(&Step::Advance { ms: input.pause_ms });
    let merge = Step::State {
        from: input.from,
        records: input.flags & 1 != 0,
        response: input.flags & 2 != 0,
        join: input.flags & 4 != 0,
        entries: input.records.clone(),
    };
    h.step(&merge);
    let (members, fingerprint) = (h.node.members(), h.node.view_fingerprint());
    let incarnation = h.node.incarnation();
    h.step(&merge);
    let mut names: Vec<&str> = input.records.iter().map(|r| &*r.name).collect();
    names.sort_unstable();
    names.dedup();
    let records_answer = input.flags & 1 != 0;
    if names.len() == input.records.len() && !records_answer {
        idempotent(&h, &members, fingerprint, incarnation);
    }
    for _ in 0..4 {
        h.step(&Step::ToDeadline);
    }
    h.step(&Step::Advance { ms: 30_000 });
    h
}

/// The node is as it was after the first merge.
fn idempotent(h: &Harness, members: &[swim_core::MemberInfo], fingerprint: u64, incarnation: u32) {
    assert_eq!(
        h.node.view_fingerprint(),
        fingerprint,
        "merging the same state again changed the view's fingerprint"
    );
    assert_eq!(
        h.node.members(),
        *members,
        "merging the same state again changed the view"
    );
    assert_eq!(
        h.node.incarnation(),
        incarnation,
        "merging the same state again raised our incarnation"
    );
}

impl<'a> Arbitrary<'a> for MergeInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::parse(u.bytes(u.len())?))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::parse(u.take_rest()))
    }
}

// ----- tls_name and tls_name_sans --------------------------------------------------------

/// `tls_name`: any bytes as a DER certificate into swim-net's node name extraction: never
/// panics, and a name it gives is never a wildcard.
pub fn tls_name(data: &[u8]) {
    if let Some(name) = swim_net::fuzzing::node_name_of(data) {
        assert!(
            !name.contains('*'),
            "a wildcard proved a node name: {name:?}"
        );
    }
}

/// A subject alternative name of `tls_name_sans`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(std::net::IpAddr),
    /// An e-mail address.
    Email(String),
    /// A URI.
    Uri(String),
}

/// The subject alternative names of a `tls_name_sans` input: up to 8, each a kind byte and
/// its text (or 16 bytes of IPv6, 4 of IPv4).
pub fn parse_sans(data: &[u8]) -> Vec<San> {
    let mut r = Reader::new(data);
    let mut sans = Vec::new();
    while !r.is_empty() && sans.len() < 8 {
        let kind = r.u8() % 5;
        if kind == 2 {
            let ip: [u8; 4] = r.bytes(4).try_into().unwrap_or_default();
            sans.push(San::Ip(ip.into()));
            continue;
        }
        let text = format::text(&r.short_blob());
        sans.push(match kind {
            0 | 1 => San::Dns(text),
            3 => San::Email(text),
            _ => San::Uri(text),
        });
    }
    sans
}

/// One key for every certificate `tls_name_sans` makes (key generation is the slow part).
fn fuzz_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().expect("a P-256 key"))
}

/// `tls_name_sans`: a real certificate (made by rcgen, self-signed) with the subject
/// alternative names of the input, in order; the node name swim-net extracts is the rule's:
/// the first DNS name, unless it is a wildcard. Returns whether rcgen could make the
/// certificate (it refuses non-ASCII names).
pub fn tls_name_sans(data: &[u8]) -> bool {
    let sans = parse_sans(data);
    let mut params = match CertificateParams::new(Vec::<String>::new()) {
        Ok(p) => p,
        Err(_) => return false,
    };
    let mut names = Vec::new();
    for s in &sans {
        let san = match s {
            San::Dns(d) => d.clone().try_into().map(SanType::DnsName),
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            San::Email(e) => e.clone().try_into().map(SanType::Rfc822Name),
            San::Uri(u) => u.clone().try_into().map(SanType::URI),
        };
        match san {
            Ok(san) => names.push(san),
            Err(_) => return false,
        }
    }
    params.subject_alt_names = names;
    let Ok(cert) = params.self_signed(fuzz_key()) else {
        return false;
    };
    let expected = sans
        .iter()
        .find_map(|s| match s {
            San::Dns(d) => Some(d.clone()),
            _ => None,
        })
        .filter(|d| !d.contains('*'));
    let got = swim_net::fuzzing::node_name_of(cert.der());
    assert_eq!(got, expected, "node name of a certificate with {sans:?}");
    true
}
