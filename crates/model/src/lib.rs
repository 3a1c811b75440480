//! NeuroLLM: config, presets, pipeline stages, forward and backward, KV-cache generation.
