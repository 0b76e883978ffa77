//! The UDP socket under quinn, wrapped so every datagram on the wire is counted where it
//! leaves and enters the process: QUIC headers, TLS handshakes, ACK-only packets and all.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// UDP datagrams and payload bytes through one member's socket since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireStats {
    /// Datagrams sent.
    pub sent_datagrams: u64,
    /// UDP payload bytes sent (QUIC packets; IP and UDP headers not included).
    pub sent_bytes: u64,
    /// Datagrams received.
    pub received_datagrams: u64,
    /// UDP payload bytes received.
    pub received_bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct WireCounters {
    sent_datagrams: AtomicU64,
    sent_bytes: AtomicU64,
    received_datagrams: AtomicU64,
    received_bytes: AtomicU64,
}

impl WireCounters {
    pub(crate) fn snapshot(&self) -> WireStats {
        WireStats {
            sent_datagrams: self.sent_datagrams.load(Ordering::Relaxed),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            received_datagrams: self.received_datagrams.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Datagrams in a (possibly GSO/GRO-batched) buffer of `len` bytes cut every `segment`.
fn segments(len: usize, segment: usize) -> u64 {
    if segment == 0 {
        1
    } else {
        len.div_ceil(segment) as u64
    }
}

pub(crate) struct CountingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    counters: Arc<WireCounters>,
}

impl CountingSocket {
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>, counters: Arc<WireCounters>) -> Self {
        Self { inner, counters }
    }
}

impl fmt::Debug for CountingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingSocket")
            .field("inner", &self.inner)
            .finish()
    }
}

impl AsyncUdpSocket for CountingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)?;
        let len = transmit.contents.len();
        let count = segments(len, transmit.segment_size.unwrap_or(len));
        self.counters
            .sent_datagrams
            .fetch_add(count, Ordering::Relaxed);
        self.counters
            .sent_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let result = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &result {
            for m in &meta[..*n] {
                self.counters
                    .received_datagrams
                    .fetch_add(segments(m.len, m.stride), Ordering::Relaxed);
                self.counters
                    .received_bytes
                    .fetch_add(m.len as u64, Ordering::Relaxed);
            }
        }
        result
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
