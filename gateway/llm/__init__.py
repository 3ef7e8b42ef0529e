"""Upstream model services: SSE decoding, DashScope and OpenAI-compatible clients, the simulator."""
