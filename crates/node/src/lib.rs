//! The round state machine: membership, training rounds, agreement, outer step.
