//! Deterministic multi-node simulation of the training protocol, with Byzantine actors.
