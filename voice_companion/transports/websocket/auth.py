"""Who may talk to the companion: one secret token per server.

The token is generated once and kept in the data directory, readable only by its
owner, so the phone bookmark keeps working across restarts. It travels in the
page URL's fragment (never sent to the server by browsers), then as the
WebSocket's `token` query parameter or an `Authorization: Bearer` header.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from voice_companion.companion.library import private_dir
from voice_companion.core.errors import ConfigError

TOKEN_FILE = "server-token"
MIN_TOKEN_CHARS = 16


def load_or_create_token(data_dir: Path) -> str:
    """The stored token, or a new random one saved with owner-only permissions."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if len(token) >= MIN_TOKEN_CHARS:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            return token
    private_dir(data_dir)  # owner-only, like the memories beside it
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    path.chmod(0o600)  # O_CREAT's mode does not apply to an existing file
    return token


def new_token() -> str:
    """A random token that never begins with "-": pasted after `--token`, argparse would
    take it for an option (1 in 64 of token_urlsafe's did)."""
    while (token := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return token


def check_token(token: str) -> str:
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"--token must be at least {MIN_TOKEN_CHARS} characters; leave it out to use a generated one")
    return token


def presented_token(path: str, authorization: str | None) -> str | None:
    """The token a request carries: `Authorization: Bearer T` or `?token=T`."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    values = parse_qs(urlsplit(path).query).get("token")
    return values[0] if values else None


def is_authorized(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison; `expected=None` means the server runs without a token."""
    if expected is None:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
