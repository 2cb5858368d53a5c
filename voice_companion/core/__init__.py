"""Layer 1, imports nothing above it: audio conversions, text and language, events, errors, settings."""
