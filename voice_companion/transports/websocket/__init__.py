"""WebSocket server for phones and browsers, and its Python client (see docs/protocol.md)."""
