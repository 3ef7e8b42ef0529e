"""qwen-gateway: a self-hosted streaming gateway for Qwen and OpenAI-compatible models."""

__version__ = "0.1.0"
