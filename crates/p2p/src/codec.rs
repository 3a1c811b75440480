//! The chunk protocol's messages and their size-bounded wire codec.
//!
//! Request: postcard `ChunkRequest` (at most [`MAX_REQUEST`] bytes). Response: one tag byte
//! (`0` chunk, `1` not found), then for a chunk the payload's total length (u64 little-endian)
//! and the chunk bytes to the end of the stream (at most [`MAX_CHUNK`]). Every read is bounded
//! before decoding, so a hostile peer can neither make us allocate nor panic.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use neuroshard_primitives::Hash;
use serde::{Deserialize, Serialize};

use crate::content::MAX_CHUNK;

/// Largest encoded chunk request.
pub const MAX_REQUEST: usize = 256;

const TAG_CHUNK: u8 = 0;
const TAG_NOT_FOUND: u8 = 1;
const HEADER: usize = 1 + 8;

/// "Send me chunk `index` of the payload whose BLAKE3 hash is `key`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// The payload's hash, as announced.
    pub key: Hash,
    /// Which chunk, from 0.
    pub index: u32,
}

/// The answer to a [`ChunkRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkResponse {
    /// One chunk of the payload.
    Chunk {
        /// The whole payload's length.
        total: u64,
        /// This chunk's bytes.
        data: Vec<u8>,
    },
    /// The peer does not hold the payload (or the index is past its end).
    NotFound,
}

/// Reads and writes chunk messages, bounded by the limits above.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChunkCodec;

pub(crate) fn invalid(reason: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason.into())
}

/// Reads the rest of the stream, failing once it passes `limit` bytes.
pub(crate) async fn read_bounded<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io.take(limit as u64 + 1).read_to_end(&mut bytes).await?;
    if bytes.len() > limit {
        return Err(invalid(format!("message over the {limit}-byte limit")));
    }
    Ok(bytes)
}

/// Decodes a response body; pure, for tests and the codec.
pub(crate) fn decode_response(bytes: Vec<u8>) -> std::io::Result<ChunkResponse> {
    match bytes.first() {
        Some(&TAG_NOT_FOUND) if bytes.len() == 1 => Ok(ChunkResponse::NotFound),
        Some(&TAG_CHUNK) if bytes.len() >= HEADER => {
            let total = u64::from_le_bytes(bytes[1..HEADER].try_into().expect("8 bytes"));
            let mut data = bytes;
            data.drain(..HEADER);
            Ok(ChunkResponse::Chunk { total, data })
        }
        _ => Err(invalid("unknown chunk response")),
    }
}

impl libp2p::request_response::Codec for ChunkCodec {
    type Protocol = StreamProtocol;
    type Request = ChunkRequest;
    type Response = ChunkResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<ChunkRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_REQUEST).await?;
        postcard::from_bytes(&bytes).map_err(|err| invalid(err.to_string()))
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<ChunkResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode_response(read_bounded(io, HEADER + MAX_CHUNK).await?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: ChunkRequest,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = postcard::to_allocvec(&request).map_err(|err| invalid(err.to_string()))?;
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: ChunkResponse,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match response {
            ChunkResponse::NotFound => io.write_all(&[TAG_NOT_FOUND]).await?,
            ChunkResponse::Chunk { total, data } => {
                io.write_all(&[TAG_CHUNK]).await?;
                io.write_all(&total.to_le_bytes()).await?;
                io.write_all(&data).await?;
            }
        }
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use libp2p::request_response::Codec;
    use proptest::prelude::*;

    use super::*;

    fn protocol() -> StreamProtocol {
        StreamProtocol::new("/test/chunk/1")
    }

    #[test]
    fn messages_round_trip() {
        futures::executor::block_on(async {
            let request = ChunkRequest {
                key: Hash::of(b"k"),
                index: 7,
            };
            let mut wire = Vec::new();
            ChunkCodec
                .write_request(&protocol(), &mut wire, request)
                .await
                .unwrap();
            assert!(wire.len() <= MAX_REQUEST);
            let read = ChunkCodec
                .read_request(&protocol(), &mut wire.as_slice())
                .await
                .unwrap();
            assert_eq!(read, request);

            for response in [
                ChunkResponse::NotFound,
                ChunkResponse::Chunk {
                    total: 9,
                    data: vec![1, 2, 3],
                },
            ] {
                let mut wire = Vec::new();
                ChunkCodec
                    .write_response(&protocol(), &mut wire, response.clone())
                    .await
                    .unwrap();
                let read = ChunkCodec
                    .read_response(&protocol(), &mut wire.as_slice())
                    .await
                    .unwrap();
                assert_eq!(read, response);
            }
        });
    }

    #[test]
    fn oversized_messages_are_refused() {
        futures::executor::block_on(async {
            let big = vec![0u8; MAX_REQUEST + 1];
            assert!(
                ChunkCodec
                    .read_request(&protocol(), &mut big.as_slice())
                    .await
                    .is_err()
            );
            let huge = vec![TAG_CHUNK; HEADER + MAX_CHUNK + 1];
            assert!(
                ChunkCodec
                    .read_response(&protocol(), &mut huge.as_slice())
                    .await
                    .is_err()
            );
        });
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            futures::executor::block_on(async {
                let _ = ChunkCodec.read_request(&protocol(), &mut bytes.as_slice()).await;
                let _ = ChunkCodec.read_response(&protocol(), &mut bytes.as_slice()).await;
            });
        }
    }
}
