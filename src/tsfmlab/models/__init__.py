"""Models: Chronos families, encoders, LoRA and Ti-MAE."""
