"""Thin HTTP and WebSocket endpoints: parse, authorize, delegate, map errors."""
