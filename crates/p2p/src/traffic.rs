//! Byte counters: wire-level for TCP (every byte of the socket, noise and yamux included),
//! stream-level for QUIC, and payload-level for what the application hands over.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};

/// Shared counters; clones count into the same totals.
#[derive(Debug, Clone, Default)]
pub(crate) struct Traffic(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    wire_sent: AtomicU64,
    wire_received: AtomicU64,
    payload_sent: AtomicU64,
    payload_received: AtomicU64,
}

/// A snapshot of the byte counters since the network started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Bytes written to sockets: TCP bytes including noise and yamux framing, plus QUIC stream
    /// bytes (QUIC's own packet headers are not visible to us).
    pub wire_sent: u64,
    /// Bytes read from sockets, counted the same way.
    pub wire_received: u64,
    /// Application bytes sent: announcements published and chunk data served.
    pub payload_sent: u64,
    /// Application bytes received: announcements delivered and chunk data fetched.
    pub payload_received: u64,
}

impl Traffic {
    pub(crate) fn stats(&self) -> TrafficStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TrafficStats {
            wire_sent: read(&self.0.wire_sent),
            wire_received: read(&self.0.wire_received),
            payload_sent: read(&self.0.payload_sent),
            payload_received: read(&self.0.payload_received),
        }
    }

    pub(crate) fn payload_sent(&self, bytes: usize) {
        self.0
            .payload_sent
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn payload_received(&self, bytes: usize) {
        self.0
            .payload_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A byte stream whose reads and writes add to [`Traffic`]'s wire counters.
#[derive(Debug)]
pub(crate) struct Counted<S> {
    inner: Pin<Box<S>>,
    traffic: Traffic,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, traffic: Traffic) -> Self {
        Self {
            inner: Box::pin(inner),
            traffic,
        }
    }
}

fn add(counter: &AtomicU64, result: &Poll<io::Result<usize>>) {
    if let Poll::Ready(Ok(bytes)) = result {
        counter.fetch_add(*bytes as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let result = self.inner.as_mut().poll_read(cx, buf);
        add(&self.traffic.0.wire_received, &result);
        result
    }
}

impl<S: AsyncWrite> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = self.inner.as_mut().poll_write(cx, buf);
        add(&self.traffic.0.wire_sent, &result);
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_close(cx)
    }
}

/// A stream muxer whose substreams are [`Counted`]: how QUIC connections are counted.
#[derive(Debug)]
pub(crate) struct CountedMuxer<M> {
    inner: Pin<Box<M>>,
    traffic: Traffic,
}

impl<M> CountedMuxer<M> {
    pub(crate) fn new(inner: M, traffic: Traffic) -> Self {
        Self {
            inner: Box::pin(inner),
            traffic,
        }
    }
}

impl<M: StreamMuxer> StreamMuxer for CountedMuxer<M> {
    type Substream = Counted<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, M::Error>> {
        let traffic = self.traffic.clone();
        self.inner
            .as_mut()
            .poll_inbound(cx)
            .map_ok(|s| Counted::new(s, traffic))
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, M::Error>> {
        let traffic = self.traffic.clone();
        self.inner
            .as_mut()
            .poll_outbound(cx)
            .map_ok(|s| Counted::new(s, traffic))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), M::Error>> {
        self.inner.as_mut().poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, M::Error>> {
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn counts_both_directions() {
        futures::executor::block_on(async {
            let traffic = Traffic::default();
            let mut writer = Counted::new(futures::io::Cursor::new(Vec::new()), traffic.clone());
            writer.write_all(b"hello").await.unwrap();
            let mut reader = Counted::new(&b"abc"[..], traffic.clone());
            let mut out = Vec::new();
            reader.read_to_end(&mut out).await.unwrap();
            traffic.payload_sent(2);
            let stats = traffic.stats();
            assert_eq!(
                (stats.wire_sent, stats.wire_received, stats.payload_sent),
                (5, 3, 2)
            );
        });
    }
}
