//! Integration tests of the consensus engine: deterministic simulations, the follower, loopback TCP.

mod follower;
mod loopback;
mod machine;
mod sim;
