"""Layer 5: how audio reaches a conversation: the desk sound card, files, the WebSocket server."""
