"""The REST error mapping over a real server: a spent quota is 429 with its code,
retry_after_s and a Retry-After header (REST calls that start work use it)."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import QuotaExceeded, RateLimited
from gateway.handlers.errors import json_errors


async def refuse_quota(request: web.Request) -> web.Response:
    raise QuotaExceeded("your daily quota of 30 tokens is used up", retry_after_s=120)


async def refuse_rate(request: web.Request) -> web.Response:
    raise RateLimited()


async def test_quota_exceeded_is_429_with_retry_after(aiohttp_client) -> None:
    """429, code quota_exceeded, retry_after_s in the body and Retry-After in the headers."""
    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/quota", refuse_quota)
    app.router.add_get("/rate", refuse_rate)
    client = await aiohttp_client(app)
    resp = await client.get("/quota")
    assert resp.status == 429 and resp.headers["Retry-After"] == "120"
    assert await resp.json() == {
        "error": {
            "code": "quota_exceeded",
            "message": "your daily quota of 30 tokens is used up",
            "retry_after_s": 120,
        }
    }
    other = await client.get("/rate")
    assert other.status == 429 and "Retry-After" not in other.headers
    assert set((await other.json())["error"]) == {"code", "message"}
