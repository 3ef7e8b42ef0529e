"""Who calls a REST route or opens a socket: a token, a trusted proxy's user header, or the
anonymous cookie (contract sections 6 and 15)."""

from __future__ import annotations

import functools

from aiohttp import web

from .. import keys
from ..auth import Identity, proxy_identity, request_identity
from ..client_address import Network, trusted_networks


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return trusted_networks(cidrs)


def proxied(request: web.Request) -> Identity | None:
    """The user ``auth.trusted_user_header`` names, when a trusted proxy sent the request
    (its socket peer is in ``server.trusted_proxies``); None otherwise."""
    config = request.app[keys.CONFIG]
    if not config.auth.trusted_user_header:
        return None
    networks = _networks(config.server.trusted_proxies)
    return proxy_identity(config.auth, networks, request.remote, request.headers)


async def caller(request: web.Request) -> Identity:
    """The REST caller (:func:`~gateway.auth.request_identity`), or raise ``Unauthorized``."""
    return await request_identity(
        request.app[keys.CONFIG].auth,
        request.app[keys.ANONYMOUS],
        request.headers,
        request.cookies,
        proxied(request),
    )
