"""The chat page, the widget and the embed snippet (placeholder until the page lands)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register `/`, `/widget`, `/embed.js` and `/static/`."""
