"""``GET /api/v1/usage``: tokens used, per user, assistant, model or day (contract section 12)."""

from __future__ import annotations

from aiohttp import web

from .. import keys
from ..auth import request_identity
from ..usage import parse_usage_query, usage_body, utc_day


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


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/usage", get_usage)
