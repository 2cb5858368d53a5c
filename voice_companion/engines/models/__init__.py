"""Layer 2: model files: the registry, downloads, integrity checks and the hardware tiers."""
