"""Every typed application key, in one place."""

from __future__ import annotations

import weakref

import aiohttp
from aiohttp import web

from .chat import Chat
from .config import Config
from .llm.events import Upstream
from .registry import Registry

CONFIG = web.AppKey("config", Config)
INSTANCE_ID = web.AppKey("instance_id", str)
CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", Upstream)
UPSTREAM_URL = web.AppKey("upstream_url", str)
CHAT = web.AppKey("chat", Chat)
REGISTRY = web.AppKey("registry", Registry)
SOCKETS = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])
