"""Every typed application key, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from .config import Config
from .llm.events import Upstream

if TYPE_CHECKING:  # pragma: no cover
    pass

CONFIG = web.AppKey("config", Config)
CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", Upstream)
UPSTREAM_URL = web.AppKey("upstream_url", str)
