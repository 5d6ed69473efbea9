"""Web chat: the widget, its WebSocket protocol, visitors and identity verification."""
