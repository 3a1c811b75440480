//! Pseudo-gradient codecs: top-k, int8/int4/sign quantisation, error feedback, wire format.
