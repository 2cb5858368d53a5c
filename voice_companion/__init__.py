"""voice-companion: talk out loud with your AI companion, fully offline by default."""

__version__ = "0.1.0"
