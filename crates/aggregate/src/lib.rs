//! Byzantine-robust aggregation rules over n vectors.
