"""Network edges: the WebSocket device endpoint and the HTTP config/health endpoint."""
