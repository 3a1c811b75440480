//! Local training: AdamW, clipping, schedules, checkpoints, and the DiLoCo outer loop.
