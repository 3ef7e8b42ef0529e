"""Upstream model services: the SSE decoder, the DashScope and OpenAI-compatible clients, the simulator."""
