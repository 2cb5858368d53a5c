"""WebSocket server for phones and browsers (see docs/protocol.md)."""
