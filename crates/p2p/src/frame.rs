//! The frame protocol's wire codec: a request is one pipeline frame's bytes (at most
//! `max_frame`, to the end of the stream), the response one byte, accepted or refused.
//! The bytes are opaque here; `neuroshard-pipeline` decodes and checks them.

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::codec::{invalid, read_bounded};

/// What the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameAck {
    /// Handed to the node.
    Accepted,
    /// Dropped: the node is not reading its events fast enough.
    Refused,
}

/// Reads and writes frames, bounded by `max_frame`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameCodec {
    pub(crate) max_frame: usize,
}

impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = FrameAck;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_bounded(io, self.max_frame).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<FrameAck>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_bounded(io, 1).await?.as_slice() {
            [0] => Ok(FrameAck::Accepted),
            [1] => Ok(FrameAck::Refused),
            _ => Err(invalid("unknown frame answer")),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&request).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: FrameAck,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let byte = match response {
            FrameAck::Accepted => 0,
            FrameAck::Refused => 1,
        };
        io.write_all(&[byte]).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use libp2p::request_response::Codec;
    use proptest::prelude::*;

    use super::*;

    fn protocol() -> StreamProtocol {
        StreamProtocol::new("/test/frame/1")
    }

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        futures::executor::block_on(async {
            let mut codec = FrameCodec { max_frame: 10 };
            let mut wire = Vec::new();
            codec
                .write_request(&protocol(), &mut wire, vec![7; 10])
                .await
                .unwrap();
            let read = codec
                .read_request(&protocol(), &mut wire.as_slice())
                .await
                .unwrap();
            assert_eq!(read, vec![7; 10]);
            let big = vec![0u8; 11];
            assert!(
                codec
                    .read_request(&protocol(), &mut big.as_slice())
                    .await
                    .is_err()
            );
            for ack in [FrameAck::Accepted, FrameAck::Refused] {
                let mut wire = Vec::new();
                codec
                    .write_response(&protocol(), &mut wire, ack)
                    .await
                    .unwrap();
                let read = codec
                    .read_response(&protocol(), &mut wire.as_slice())
                    .await
                    .unwrap();
                assert_eq!(read, ack);
            }
        });
    }

    proptest! {
        #[test]
        fn garbage_answers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            futures::executor::block_on(async {
                let _ = FrameCodec { max_frame: 4 }.read_response(&protocol(), &mut bytes.as_slice()).await;
            });
        }
    }
}
