"""``GET /api/v1/usage``: tokens used, per user, assistant, model or day; ``GET /api/v1/quota``:
the caller's daily budget (contract section 12)."""

from __future__ import annotations

import time

from aiohttp import web

from .. import keys
from ..auth import request_identity
from ..errors import NotFound
from ..quotas import QuotaLimits, quota_status
from ..usage import parse_usage_query, usage_body, utc_day
from .callers import caller
from .socket import address_of


async def get_usage(request: web.Request) -> web.Response:
    """An admin reads everyone's usage; anyone else only their own."""
    app = request.app
    config = app[keys.CONFIG]
    identity = await request_identity(
        config.auth, app[keys.ANONYMOUS], request.headers, request.cookies
    )
    query = parse_usage_query(
        request.query,
        caller=identity.user,
        is_admin=identity.admin,
        today=utc_day(),
        retention_days=config.limits.usage_retention_days,
    )
    rows = await app[keys.BACKENDS].usage.rows(query.start, query.end, query.group_by, query.user)
    return web.json_response(usage_body(query, rows))


async def get_quota(request: web.Request) -> web.Response:
    """``?assistant=NAME`` (default ``default``): the narrowest daily token quota that applies
    to the caller's turns there, or ``"quota": null`` when none does."""
    app = request.app
    config = app[keys.CONFIG]
    name = request.query.get("assistant", "default")
    if name not in config.assistants:
        raise NotFound("no such assistant")
    identity = await caller(request)
    limits = QuotaLimits.for_assistant(config, name)
    body: dict[str, object] = {"assistant": name, "quota": None}
    if not limits.any:
        return web.json_response(body)
    now = time.time()
    address = address_of(request) if identity.anonymous else None
    spent = await app[keys.BACKENDS].usage.tokens_today(
        today=utc_day(now), user=identity.user, assistant=name, address=address
    )
    body["quota"] = quota_status(spent, limits, anonymous=identity.anonymous, now=now)
    return web.json_response(body)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/usage", get_usage)
    app.router.add_get("/api/v1/quota", get_quota)
