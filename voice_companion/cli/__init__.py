"""Layer 6: the `voice-companion` command line."""
