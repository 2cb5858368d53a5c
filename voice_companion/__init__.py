"""voice-companion: talk out loud with your AI companion, fully offline by default."""

__version__ = "0.1.0"

from voice_companion.core import log_redaction as _log_redaction

_log_redaction.install()  # tokens and API keys never reach a log line, whoever configures logging
