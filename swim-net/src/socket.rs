//! The UDP socket under quinn, wrapped so every datagram on the wire is counted where it
//! leaves and enters the process (QUIC headers, TLS handshakes, ACK-only packets and all),
//! and, for tests, so sent datagrams can be lost at random.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
#[cfg(feature = "impairment")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

use crate::accounting::WireCounters;

/// Random datagram loss at a member's socket: each datagram it sends is lost with
/// probability `loss`, drawn from a generator seeded with `seed` (so a run can be replayed
/// as far as timing allows). Lost datagrams still count as sent: the network lost them.
#[cfg(feature = "impairment")]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairment {
    /// Probability in `[0, 1]` that a sent datagram is lost.
    pub loss: f64,
    /// Seed of the loss draws.
    pub seed: u64,
}

/// The loss draws of an [`Impairment`]: splitmix64, enough for a coin per datagram.
#[derive(Debug)]
struct LossDraws {
    threshold: u64,
    state: AtomicU64,
}

impl LossDraws {
    fn lose(&self) -> bool {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) < self.threshold
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
    loss: Option<LossDraws>,
    /// Hide received ECN marks from quinn: it then never reports ECN counts in its ACK
    /// frames (3 to 6 bytes each), and the peer stops marking.
    strip_ecn: bool,
    /// Set: the process has "crashed" — nothing leaves or arrives any more (not even the
    /// CONNECTION_CLOSE that closing the endpoint sends), as after a `kill -9`.
    #[cfg(feature = "impairment")]
    silenced: Arc<AtomicBool>,
}

impl CountingSocket {
    pub(crate) fn new(
        inner: Arc<dyn AsyncUdpSocket>,
        counters: Arc<WireCounters>,
        strip_ecn: bool,
    ) -> Self {
        Self {
            inner,
            counters,
            loss: None,
            strip_ecn,
            #[cfg(feature = "impairment")]
            silenced: Arc::default(),
        }
    }

    /// The switch that silences this socket for good (see [`crate::Cluster::crash`]).
    #[cfg(feature = "impairment")]
    pub(crate) fn silence_switch(&self) -> Arc<AtomicBool> {
        self.silenced.clone()
    }

    #[cfg(feature = "impairment")]
    fn is_silenced(&self) -> bool {
        self.silenced.load(Ordering::Relaxed)
    }

    #[cfg(not(feature = "impairment"))]
    fn is_silenced(&self) -> bool {
        false
    }

    /// Loses each sent datagram with the impairment's probability.
    #[cfg(feature = "impairment")]
    pub(crate) fn impaired(mut self, impairment: Impairment) -> Self {
        let threshold = (impairment.loss.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        self.loss = Some(LossDraws {
            threshold,
            state: AtomicU64::new(impairment.seed),
        });
        self
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
        if self.is_silenced() {
            return Ok(());
        }
        // With loss on, transmits are single datagrams (see `max_transmit_segments`).
        let lost = self.loss.as_ref().is_some_and(LossDraws::lose);
        if !lost {
            self.inner.try_send(transmit)?;
        }
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
        if self.is_silenced() && matches!(result, Poll::Ready(Ok(_))) {
            // Read and forgotten: a crashed process hears nothing.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Poll::Ready(Ok(n)) = &result {
            for m in &mut meta[..*n] {
                if self.strip_ecn {
                    m.ecn = None;
                }
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
        if self.loss.is_some() {
            1
        } else {
            self.inner.max_transmit_segments()
        }
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
