"""Which web pages may open the WebSocket: the server's own page, and clients that are not browsers.

Browsers send `Origin` on every WebSocket handshake and let any page open a socket to
any address, so without this check a page on another site could talk to a companion
on the user's network (a token in its hands is then the only guard). Scripts, the
Python client and phone apps send no `Origin` and are let through. A server without a
token also insists on a loopback `Host`, so a DNS-rebinding page (its own name, our
address) cannot reach it. Refused handshakes are answered HTTP 403 (docs/protocol.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower().rstrip("."), port


def origin_refusal(
    origin: str | None, host: str | None, tls: bool, allowed: Iterable[str] = (), loopback_only: bool = False
) -> str | None:
    """Why this handshake is refused, or None to let it through."""
    if loopback_only and not is_loopback_host(host):
        return "this server has no token and answers only to localhost"
    if origin is None:
        return None  # not a browser
    origin = origin.strip()
    if origin.lower().rstrip("/") in {a.lower().rstrip("/") for a in allowed}:
        return None
    parts = urlsplit(origin)
    own_scheme = "https" if tls else "http"
    if parts.scheme.lower() != own_scheme or parts.path not in ("", "/"):
        return f"pages from {origin[:100]!r} may not open this WebSocket"
    theirs = _host_port(parts.netloc, own_scheme)
    ours = _host_port(host or "", own_scheme)
    if theirs is None or ours is None or theirs != ours:
        return f"pages from {origin[:100]!r} may not open this WebSocket"
    return None


def is_loopback_host(host: str | None) -> bool:
    found = _host_port(host or "", "http")
    if found is None:
        return False
    name = found[0].strip("[]")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
