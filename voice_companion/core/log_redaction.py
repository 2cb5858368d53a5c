"""Keep secrets out of logs: the server token and API keys never reach a log line.

websockets logs every handshake header and the request path at DEBUG level, and
both carry the token (`?token=…`, `Authorization: Bearer …`). A filter on the
loggers that see them rewrites such a record before any handler formats it, so
`-v`, a user's own logging setup or a test capturing logs all get `[redacted]`.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
_PATTERNS = (
    re.compile(r"(?i)([?&#](?:token|access_token|api_key|apikey|key)=)[^&\s#'\"]+"),
    re.compile(r"(?i)((?:authorization|proxy-authorization|x-api-key|api-key):\s*(?:bearer\s+|basic\s+)?)\S+"),
    re.compile(r"(?i)(\bbearer\s+)[\w.~+/=-]{6,}"),
)
# Loggers whose records carry request lines or headers (a filter on a logger does
# not see its children's records, hence each one by name).
LOGGERS = ("websockets", "websockets.server", "websockets.client", "httpx", "httpcore.http11", "httpcore.connection")


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's business
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = RedactSecrets()


def install() -> None:
    """Idempotent; called by the modules that open sockets (server app, client, LLM client)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
