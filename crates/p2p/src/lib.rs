//! The libp2p network: identity, discovery, signed gossip, chunked request-response.
