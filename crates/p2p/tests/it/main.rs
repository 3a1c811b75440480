//! Real-socket tests: nodes on 127.0.0.1, ephemeral ports, bounded timeouts.

mod frames;
mod hostile;
mod isolation;
mod support;
mod transfer;
