//! Unit tests of the wire format.

use super::*;

const LIMITS: Limits = Limits {
    max_meta: 512,
    max_broadcast: 512,
};

fn addr() -> SocketAddr {
    "127.0.0.1:7946".parse().unwrap()
}

fn own(boot_id: u32, meta: &[u8]) -> Own<'_> {
    Own {
        addr: addr(),
        boot_id,
        meta,
        sig: b"s",
    }
}

#[test]
fn records_only_in_their_exchange_and_nothing_else_in_it() {
    let wanted = Item::Wanted("a");
    let mut gossip = encode_message(Framing::VersionByte, &Message::Gossip);
    append_item(&mut gossip, &wanted);
    let mut request = encode_message(Framing::VersionByte, &Message::Records { response: false });
    append_item(&mut request, &wanted);
    assert!(decode(&request, Framing::VersionByte, LIMITS).is_ok());
    let mut answer_with_wanted =
        encode_message(Framing::VersionByte, &Message::Records { response: true });
    append_item(&mut answer_with_wanted, &wanted);
    append_item(&mut request, &Item::StateDigest([0; 8]));
    for refused in [gossip, request, answer_with_wanted] {
        assert!(matches!(
            decode(&refused, Framing::VersionByte, LIMITS),
            Err(DecodeError::UnexpectedItem(_))
        ));
    }
}

#[test]
fn round_trip_with_items() {
    let mut buf = encode_message(Framing::VersionByte, &Message::Ping { seq: 7 });
    let alive = Item::Member(Update {
        name: "a",
        incarnation: 3,
        kind: UpdateKind::Alive(own(9, b"m")),
    });
    let user = Item::User {
        origin: "b",
        seq: 1,
        payload: b"hello",
    };
    append_item(&mut buf, &alive);
    buf.extend_from_slice(&encode_item(&user));
    let p = decode(&buf, Framing::VersionByte, LIMITS).unwrap();
    assert!(matches!(p.items, Items::Parsed(_)));
    assert_eq!(p.message, Message::Ping { seq: 7 });
    assert_eq!(p.items().collect::<Vec<_>>(), vec![alive, user]);
}

#[test]
fn a_ping_is_small() {
    assert!(encode_message(Framing::VersionByte, &Message::Ping { seq: 1000 }).len() <= 4);
}

#[test]
fn the_kind_is_read_from_the_first_bytes() {
    for (message, kind) in [
        (Message::Ping { seq: 300 }, MessageKind::Ping),
        (Message::Ack { seq: 1 }, MessageKind::Ack),
        (Message::Gossip, MessageKind::Gossip),
    ] {
        for framing in [Framing::VersionByte, Framing::Session] {
            let packet = encode_message(framing, &message);
            assert_eq!(MessageKind::of_packet(framing, &packet), Some(kind));
        }
    }
    let of = MessageKind::of_packet;
    assert_eq!(of(Framing::VersionByte, &[PROTOCOL_VERSION, 99]), None);
    assert_eq!(of(Framing::VersionByte, &[9, 0]), None);
    assert_eq!(of(Framing::VersionByte, &[]), None);
    assert_eq!(of(Framing::Session, &[99]), None);
    assert_eq!(of(Framing::Session, &[]), None);
}

/// Found by the `wire_decode` fuzz target: postcard reads the variant `0x81 0x00` as 1 (an
/// `Ack`, in two bytes), so the decoder took a packet whose kind `of_packet` does not know.
#[test]
fn a_message_kind_spelt_in_more_than_one_byte_is_refused() {
    let overlong = [0x81, 0x00, 0x0e];
    assert_eq!(MessageKind::of_packet(Framing::Session, &overlong), None);
    assert_eq!(
        decode(&overlong, Framing::Session, LIMITS).unwrap_err(),
        DecodeError::Malformed
    );
    // The same message in one byte is an `Ack`.
    let p = decode(&[0x01, 0x0e], Framing::Session, LIMITS).unwrap();
    assert_eq!(p.message, Message::Ack { seq: 14 });
}

#[test]
fn trailing_garbage_is_an_error() {
    let mut buf = encode_message(Framing::VersionByte, &Message::Gossip);
    buf.push(0xff);
    assert_eq!(
        decode(&buf, Framing::VersionByte, LIMITS).unwrap_err(),
        DecodeError::Malformed
    );
}

#[test]
fn unknown_version_and_empty_are_refused() {
    assert_eq!(
        decode(&[], Framing::VersionByte, LIMITS).unwrap_err(),
        DecodeError::Empty
    );
    assert_eq!(
        decode(&[9, 0], Framing::VersionByte, LIMITS).unwrap_err(),
        DecodeError::UnknownVersion(9)
    );
}

#[test]
fn oversized_metadata_is_refused() {
    let mut buf = encode_message(Framing::VersionByte, &Message::Gossip);
    let big = vec![0u8; 600];
    append_item(
        &mut buf,
        &Item::Member(Update {
            name: "a",
            incarnation: 0,
            kind: UpdateKind::Alive(own(1, &big)),
        }),
    );
    assert!(matches!(
        decode(&buf, Framing::VersionByte, LIMITS),
        Err(DecodeError::FieldTooLong { .. })
    ));
}

#[test]
fn state_only_in_push_pull() {
    let mut buf = encode_message(Framing::VersionByte, &Message::Gossip);
    append_item(
        &mut buf,
        &Item::State(StateEntry {
            name: "a",
            incarnation: 0,
            state: MemberState::Alive,
            own: own(0, b""),
            accusation: None,
            credential: b"",
        }),
    );
    assert!(matches!(
        decode(&buf, Framing::VersionByte, LIMITS),
        Err(DecodeError::UnexpectedItem(_))
    ));
}

#[test]
fn session_framing_carries_no_version_byte_and_decodes_the_same() {
    let versioned = encode_message(Framing::VersionByte, &Message::Ack { seq: 5 });
    let session = encode_message(Framing::Session, &Message::Ack { seq: 5 });
    assert_eq!(&versioned[1..], &session[..]);
    let p = decode(&session, Framing::Session, LIMITS).unwrap();
    assert_eq!(p.message, Message::Ack { seq: 5 });
    assert_eq!(
        decode(&[], Framing::Session, LIMITS).unwrap_err(),
        DecodeError::Empty
    );
    assert_eq!(ALPN, b"swim/4");
}

#[test]
fn inputs_with_many_items_are_read_in_full_without_keeping_them() {
    // A push-pull with more than MAX_KEPT_ITEMS items: they are walked again, not kept.
    let mut buf = encode_message(
        Framing::VersionByte,
        &Message::PushPull {
            cluster: "swim",
            response: false,
            join: false,
        },
    );
    let entry = |i: u32| {
        Item::State(StateEntry {
            name: "member",
            incarnation: i,
            state: MemberState::Alive,
            own: own(0, b""),
            accusation: None,
            credential: b"",
        })
    };
    let n = MAX_KEPT_ITEMS as u32 + 1;
    for i in 0..n {
        append_item(&mut buf, &entry(i));
    }
    let p = decode(&buf, Framing::VersionByte, LIMITS).unwrap();
    assert!(matches!(p.items, Items::Raw(_)));
    assert_eq!(p.items().count(), n as usize);
    assert_eq!(p.items().last(), Some(entry(n - 1)));
}

#[test]
fn huge_declared_lengths_do_not_allocate_or_panic() {
    // A varint length of ~4 GiB for the target name of a PingReq.
    let buf = [PROTOCOL_VERSION, 2, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a'];
    assert!(decode(&buf, Framing::VersionByte, LIMITS).is_err());
}

#[test]
fn a_silence_is_whole_milliseconds_rounded_up_and_unknown_is_none() {
    let t0 = std::time::Instant::now();
    let at = |us| t0 + std::time::Duration::from_micros(us);
    assert_eq!(Silence::since(t0, at(1_500_000)).0, 1500u32.to_le_bytes());
    assert_eq!(Silence::since(t0, at(1)).0, 1u32.to_le_bytes());
    assert_eq!(Silence::since(at(5), t0).0, [0; 4], "heard after now: none");
    let now = at(10_000_000);
    assert_eq!(Silence::since(t0, now).heard(now), Some(t0));
    assert_eq!(Silence::UNKNOWN.heard(now), None);
    let weeks = Silence::since(t0, t0 + std::time::Duration::from_secs(90 * 86_400));
    assert_ne!(weeks, Silence::UNKNOWN, "saturates below unknown");
}
