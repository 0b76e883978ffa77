//! Peer I/O: a reader task per connection that hands its datagrams and stream messages to
//! the driver, and the two send paths — a QUIC datagram (never retransmitted), or a
//! unidirectional stream per message, delimited by the stream's end. The bytes are the
//! core's own: it frames them for a session transport (`swim_core::Framing::Session`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use quinn::Connection;
use tokio::sync::mpsc;

use crate::accounting::WireCounters;
use crate::driver::Input;
use crate::ledger::DatagramLedger;
use crate::metrics;

/// Forwards a connection's datagrams and stream messages (each at most `max_stream` bytes)
/// to the driver until it closes, then reports the close.
pub(crate) fn spawn_reader(
    conn: Connection,
    name: Arc<str>,
    tx: mpsc::UnboundedSender<Input>,
    max_stream: usize,
) {
    tokio::spawn(async move {
        let addr = conn.remote_address();
        let error = loop {
            tokio::select! {
                d = conn.read_datagram() => match d {
                    Ok(bytes) => {
                        if tx.send(Input::Datagram { name: name.clone(), addr, bytes }).is_err() {
                            break None;
                        }
                    }
                    Err(e) => break Some(e),
                },
                s = conn.accept_uni() => match s {
                    Ok(stream) => spawn_stream_reader(stream, name.clone(), addr, tx.clone(), max_stream),
                    Err(e) => break Some(e),
                },
            }
        };
        let _ = tx.send(Input::Closed {
            name,
            id: conn.stable_id(),
            error,
        });
    });
}

fn spawn_stream_reader(
    mut stream: quinn::RecvStream,
    name: Arc<str>,
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Input>,
    max_stream: usize,
) {
    tokio::spawn(async move {
        match stream.read_to_end(max_stream).await {
            Ok(bytes) => {
                let _ = tx.send(Input::Stream { name, addr, bytes });
            }
            Err(e) => {
                metrics::input_error("stream_read");
                tracing::debug!(peer = %name, error = %e, "stream message not read");
            }
        }
    });
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
            let mut stream = conn.open_uni().await?;
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
