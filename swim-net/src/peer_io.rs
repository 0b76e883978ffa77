//! Peer I/O: a reader task per connection that hands its datagrams and stream messages to
//! the driver, and the two send paths — a QUIC datagram (never retransmitted), or a
//! unidirectional stream per message: its length (4 bytes, little-endian), then the message.
//! The bytes are the core's own: it frames them for a session transport
//! (`swim_core::Framing::Session`).
//!
//! What a peer can make the reader hold is bounded: a message announced longer than
//! `max_stream_size` is refused before a byte of it is buffered; the others are read in order
//! and copied as they arrive (so no packet buffer outlives its bytes), within
//! `stream_timeout`, inside the peer's and the node's memory budgets; a datagram the driver
//! has no room for is dropped. Each refusal is counted.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, RecvStream, VarInt};
use tokio::sync::mpsc::error::TrySendError;

use crate::accounting::WireCounters;
use crate::budget::{Budget, Exceeded, Held};
use crate::driver::{Control, Datagram, Inbound, StreamMessage};
use crate::ledger::DatagramLedger;
use crate::metrics;

/// The bounds on one peer's stream messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamLimits {
    /// A message not finished within this long is refused and its stream stopped.
    pub(crate) timeout: Duration,
    /// A message longer than this is refused.
    pub(crate) max_size: usize,
}

/// Why a stream message was refused (a `swim_streams_refused_total` reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    Timeout,
    TooLarge,
    /// The stream ended before (or went on after) the length it announced.
    Truncated,
    Memory(Exceeded),
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::Timeout => "timeout",
            Refused::TooLarge => "too_large",
            Refused::Truncated => "bad_length",
            Refused::Memory(Exceeded::Peer) => "peer_memory",
            Refused::Memory(Exceeded::Total) => "memory",
        }
    }
}

/// QUIC application error code of a stream this node stopped reading.
const STREAM_REFUSED: u32 = 1;

/// Forwards a connection's datagrams and stream messages to the driver until it closes,
/// then reports the close.
pub(crate) fn spawn_reader(
    conn: Connection,
    name: Arc<str>,
    inbound: Inbound,
    limits: StreamLimits,
    budget: Budget,
) {
    tokio::spawn(async move {
        let addr = conn.remote_address();
        let error = loop {
            tokio::select! {
                d = conn.read_datagram() => match d {
                    Ok(bytes) => {
                        let datagram = Datagram { name: name.clone(), addr, bytes };
                        match inbound.datagrams.try_send(datagram) {
                            Ok(()) => {}
                            // The driver is behind: this datagram is lost, as on a busy link.
                            Err(TrySendError::Full(_)) => metrics::input_dropped("datagram"),
                            Err(TrySendError::Closed(_)) => break None,
                        }
                    }
                    Err(e) => break Some(e),
                },
                s = conn.accept_uni() => match s {
                    Ok(stream) => spawn_stream_reader(stream, name.clone(), addr, inbound.clone(), limits, budget.hold()),
                    Err(e) => break Some(e),
                },
            }
        };
        let closed = Control::Closed {
            name,
            id: conn.stable_id(),
            error,
        };
        let _ = inbound.control.send(closed).await;
    });
}

fn spawn_stream_reader(
    mut stream: RecvStream,
    name: Arc<str>,
    addr: SocketAddr,
    inbound: Inbound,
    limits: StreamLimits,
    mut held: Held,
) {
    tokio::spawn(async move {
        let read = tokio::time::timeout(
            limits.timeout,
            read_message(&mut stream, limits.max_size, &mut held),
        )
        .await;
        let refused = match read {
            Ok(Ok(bytes)) => {
                let message = StreamMessage {
                    name,
                    addr,
                    bytes,
                    held,
                };
                // Its bytes stay held (bounded) while it waits for the driver.
                let _ = inbound.streams.send(message).await;
                return;
            }
            Ok(Err(StreamEnd::Refused(r))) => r,
            Ok(Err(StreamEnd::Failed(e))) => {
                metrics::input_error("stream_read");
                tracing::debug!(peer = %name, error = %e, "stream message not read");
                return;
            }
            Err(_) => Refused::Timeout,
        };
        let _ = stream.stop(VarInt::from_u32(STREAM_REFUSED));
        metrics::stream_refused(refused.label());
        tracing::debug!(peer = %name, reason = refused.label(), "stream message refused");
    });
}

enum StreamEnd {
    Refused(Refused),
    Failed(quinn::ReadError),
}

/// Bytes of the length that starts every stream message.
const LENGTH_PREFIX: usize = 4;

/// Stream messages are gathered in segments of at most this many bytes, and made one buffer
/// only once whole: a message that never completes (a peer trickling bytes, or lying about
/// its length) never causes a large allocation, so nothing of it stays with the allocator.
const SEGMENT: usize = 64 << 10;

/// Reads a whole stream message: its announced length (refused at once if above `max`),
/// then chunks in order, each copied as it arrives (the packet it came in is freed at once)
/// into segments whose every byte of capacity is held against the budget; the stream must
/// end exactly at the announced length.
async fn read_message(
    stream: &mut RecvStream,
    max: usize,
    held: &mut Held,
) -> Result<Vec<u8>, StreamEnd> {
    let mut prefix = [0u8; LENGTH_PREFIX];
    stream.read_exact(&mut prefix).await.map_err(|e| match e {
        quinn::ReadExactError::ReadError(e) => StreamEnd::Failed(e),
        quinn::ReadExactError::FinishedEarly(_) => StreamEnd::Refused(Refused::Truncated),
    })?;
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(StreamEnd::Refused(Refused::TooLarge));
    }
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut read = 0;
    while let Some(chunk) = stream
        .read_chunk(len + 1 - read, true)
        .await
        .map_err(StreamEnd::Failed)?
    {
        if read + chunk.bytes.len() > len {
            return Err(StreamEnd::Refused(Refused::Truncated));
        }
        let mut bytes = &chunk.bytes[..];
        while !bytes.is_empty() {
            let room = segments.last().map_or(0, |s| s.capacity() - s.len());
            if room == 0 {
                let size = SEGMENT.min(len - read);
                held.grow(size)
                    .map_err(|e| StreamEnd::Refused(Refused::Memory(e)))?;
                segments.push(Vec::with_capacity(size));
                continue;
            }
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            segments
                .last_mut()
                .expect("just checked")
                .extend_from_slice(now);
            read += now.len();
            bytes = rest;
        }
    }
    if read != len {
        return Err(StreamEnd::Refused(Refused::Truncated));
    }
    if segments.len() == 1 {
        return Ok(segments.pop().expect("one segment"));
    }
    // Whole: one buffer for the core (held too, until the segments go).
    held.grow(len)
        .map_err(|e| StreamEnd::Refused(Refused::Memory(e)))?;
    Ok(segments.concat())
}

/// Sends one message to the peer of `conn`: a datagram when it is not `reliable` and fits
/// this path, otherwise on a stream of its own.
pub(crate) fn send(
    conn: &Connection,
    ledger: &mut DatagramLedger,
    wire: &WireCounters,
    payload: Vec<u8>,
    reliable: bool,
) {
    let payload = Bytes::from(payload);
    let fits = conn
        .max_datagram_size()
        .is_some_and(|max| payload.len() <= max);
    if !reliable && fits {
        if conn.datagram_send_buffer_space() < payload.len() {
            // quinn makes room by dropping the oldest waiting datagram(s).
            ledger.dropped += 1;
            wire.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
        }
        match conn.send_datagram(payload) {
            Ok(()) => ledger.enqueued += 1,
            Err(e) => {
                tracing::debug!(peer = %conn.remote_address(), error = %e, "datagram not sent");
                metrics::transmit_failed("datagram", 1);
            }
        }
        return;
    }
    // Reliable messages, and the rare datagram larger than this path allows.
    let conn = conn.clone();
    tokio::spawn(async move {
        let sent = async {
            let len = u32::try_from(payload.len())?;
            let mut stream = conn.open_uni().await?;
            stream.write_all(&len.to_le_bytes()).await?;
            stream.write_all(&payload).await?;
            stream.finish()?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        if let Err(e) = sent.await {
            tracing::debug!(peer = %conn.remote_address(), error = %e, "stream message not sent");
            metrics::transmit_failed("stream", 1);
        }
    });
}
