//! quinn's rustls crypto, wrapped so that every packet is accounted ([`crate::accounting`])
//! from its plaintext just before it is encrypted, and every handshake is told apart as full
//! (certificates presented and verified) or resumed (a TLS session ticket, no certificates).
//!
//! The wrappers change nothing in what is sent or accepted: each call is passed through.

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use quinn::crypto::{
    self, CryptoError, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, Session,
    UnsupportedVersion,
};
use quinn::{ConnectError, ConnectionId, Side};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::TransportError;

use crate::accounting::{WireCause, WireCounters};

thread_local! {
    /// Set by the certificate verifiers. rustls verifies the peer's certificate inside the
    /// session's `read_handshake`, on the calling thread, so the session that made the call
    /// can tell a full handshake from a resumed one.
    static CERTIFICATE_VERIFIED: Cell<bool> = const { Cell::new(false) };
}

/// Called by the certificate verifiers when a peer certificate chain was verified.
pub(crate) fn note_certificate_verified() {
    CERTIFICATE_VERIFIED.with(|v| v.set(true));
}

const UNKNOWN: u8 = 0;
const FULL: u8 = 1;
const RESUMED: u8 = 2;
const FAILED: u8 = 3;

/// One connection's handshake bytes: held until the handshake ends, then attributed to a
/// full or resumed handshake (or, if it never ends, to a failed one).
#[derive(Debug, Default)]
struct HandshakeTally {
    kind: AtomicU8,
    pending_bytes: AtomicU64,
    pending_packets: AtomicU64,
}

impl HandshakeTally {
    fn add(&self, counters: &WireCounters, bytes: u64) {
        match self.kind.load(Ordering::Acquire) {
            FULL => counters.add(WireCause::HandshakeFull, bytes, 1),
            RESUMED => counters.add(WireCause::HandshakeResumed, bytes, 1),
            FAILED => counters.add(WireCause::HandshakeFailed, bytes, 1),
            _ => {
                self.pending_bytes.fetch_add(bytes, Ordering::Relaxed);
                self.pending_packets.fetch_add(1, Ordering::Relaxed);
                counters
                    .handshake_pending
                    .fetch_add(bytes, Ordering::Relaxed);
            }
        }
    }

    /// Attributes the held bytes to `cause`; `false` if the handshake was settled already.
    fn settle(&self, counters: &WireCounters, kind: u8, cause: WireCause) -> bool {
        let settled = self
            .kind
            .compare_exchange(UNKNOWN, kind, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if settled {
            let bytes = self.pending_bytes.swap(0, Ordering::Relaxed);
            counters.add(
                cause,
                bytes,
                self.pending_packets.swap(0, Ordering::Relaxed),
            );
            counters
                .handshake_pending
                .fetch_sub(bytes, Ordering::Relaxed);
        }
        settled
    }
}

/// Accounts each packet it encrypts, then encrypts it with the real key.
struct CountingPacketKey {
    inner: Box<dyn PacketKey>,
    counters: Arc<WireCounters>,
    /// The connection's handshake; `None` for packets the endpoint sends outside any
    /// connection (closing a refused Initial), which count as a failed handshake.
    tally: Option<Arc<HandshakeTally>>,
}

impl CountingPacketKey {
    fn wrap(
        inner: Box<dyn PacketKey>,
        counters: &Arc<WireCounters>,
        tally: Option<&Arc<HandshakeTally>>,
    ) -> Box<dyn PacketKey> {
        Box::new(Self {
            inner,
            counters: counters.clone(),
            tally: tally.cloned(),
        })
    }

    fn handshake(&self, bytes: u64) {
        match &self.tally {
            Some(t) => t.add(&self.counters, bytes),
            None => self.counters.add(WireCause::HandshakeFailed, bytes, 1),
        }
    }
}

impl PacketKey for CountingPacketKey {
    fn encrypt(&self, packet: u64, buf: &mut [u8], header_len: usize) {
        let total = buf.len();
        let long_header = buf.first().is_some_and(|b| b & 0x80 != 0);
        let payload_end = total.saturating_sub(self.inner.tag_len());
        let payload = buf.get(header_len..payload_end).unwrap_or(&[]);
        if long_header || self.counters.add_short_packet(total, payload) {
            self.handshake(total as u64);
        }
        self.inner.encrypt(packet, buf, header_len);
    }

    fn decrypt(
        &self,
        packet: u64,
        header: &[u8],
        payload: &mut BytesMut,
    ) -> Result<(), CryptoError> {
        self.inner.decrypt(packet, header, payload)
    }

    fn tag_len(&self) -> usize {
        self.inner.tag_len()
    }

    fn confidentiality_limit(&self) -> u64 {
        self.inner.confidentiality_limit()
    }

    fn integrity_limit(&self) -> u64 {
        self.inner.integrity_limit()
    }
}

fn wrap_keys(
    keys: Keys,
    counters: &Arc<WireCounters>,
    tally: Option<&Arc<HandshakeTally>>,
) -> Keys {
    Keys {
        header: keys.header,
        packet: KeyPair {
            local: CountingPacketKey::wrap(keys.packet.local, counters, tally),
            remote: keys.packet.remote,
        },
    }
}

/// A quinn crypto session whose packet keys account what they encrypt.
struct CountedSession {
    inner: Box<dyn Session>,
    counters: Arc<WireCounters>,
    tally: Arc<HandshakeTally>,
    /// This side verified the peer's certificate during the handshake.
    verified: bool,
}

impl CountedSession {
    fn boxed(inner: Box<dyn Session>, counters: Arc<WireCounters>) -> Box<dyn Session> {
        Box::new(Self {
            inner,
            counters,
            tally: Arc::default(),
            verified: false,
        })
    }

    /// Once the handshake is over, attributes its bytes and counts it.
    fn settle_if_done(&mut self) {
        if self.inner.is_handshaking() || self.tally.kind.load(Ordering::Acquire) != UNKNOWN {
            return;
        }
        let (kind, cause, counter) = if self.verified {
            (
                FULL,
                WireCause::HandshakeFull,
                &self.counters.handshakes_full,
            )
        } else {
            (
                RESUMED,
                WireCause::HandshakeResumed,
                &self.counters.handshakes_resumed,
            )
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let _first = self.tally.settle(&self.counters, kind, cause);
    }
}

impl Drop for CountedSession {
    fn drop(&mut self) {
        let failed = self
            .tally
            .settle(&self.counters, FAILED, WireCause::HandshakeFailed);
        if failed {
            self.counters
                .handshakes_failed
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Session for CountedSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        wrap_keys(
            self.inner.initial_keys(dst_cid, side),
            &self.counters,
            Some(&self.tally),
        )
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        let (header, packet) = self.inner.early_crypto()?;
        let packet = CountingPacketKey::wrap(packet, &self.counters, Some(&self.tally));
        Some((header, packet))
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        CERTIFICATE_VERIFIED.with(|v| v.set(false));
        let result = self.inner.read_handshake(buf);
        self.verified |= CERTIFICATE_VERIFIED.with(|v| v.replace(false));
        if result.is_ok() {
            self.settle_if_done();
        }
        result
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        let keys = self.inner.write_handshake(buf);
        self.settle_if_done();
        keys.map(|k| wrap_keys(k, &self.counters, Some(&self.tally)))
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        let keys = self.inner.next_1rtt_keys()?;
        Some(KeyPair {
            local: CountingPacketKey::wrap(keys.local, &self.counters, Some(&self.tally)),
            remote: keys.remote,
        })
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}

/// The client side of [`CountedSession`].
pub(crate) struct CountedClientConfig {
    pub(crate) inner: Arc<dyn crypto::ClientConfig>,
    pub(crate) counters: Arc<WireCounters>,
}

impl crypto::ClientConfig for CountedClientConfig {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn Session>, ConnectError> {
        let inner = self
            .inner
            .clone()
            .start_session(version, server_name, params)?;
        Ok(CountedSession::boxed(inner, self.counters.clone()))
    }
}

/// The server side of [`CountedSession`].
pub(crate) struct CountedServerConfig {
    pub(crate) inner: Arc<dyn crypto::ServerConfig>,
    pub(crate) counters: Arc<WireCounters>,
}

impl crypto::ServerConfig for CountedServerConfig {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        // Used by the endpoint itself, e.g. to close a refused Initial: no connection, so a
        // failed handshake.
        let keys = self.inner.initial_keys(version, dst_cid)?;
        Ok(wrap_keys(keys, &self.counters, None))
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.inner.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn Session> {
        CountedSession::boxed(
            self.inner.clone().start_session(version, params),
            self.counters.clone(),
        )
    }
}
