"""An upstream that refuses every request with DashScope's 429, for the failover scenario.

``python -m bench.throttled PORT`` answers every ``POST`` with HTTP 429 and the body DashScope
sends when a key's rate quota is spent (``Throttling.RateQuota``; the simulator's own 429
fault, ``gateway/llm/simulator.py``), and ``GET /requests`` with how many it has refused, so
the benchmark can tell whether a cooled-down upstream was asked again.
"""

from __future__ import annotations

import sys

from aiohttp import web

BODY = {
    "code": "Throttling.RateQuota",
    "message": "Requests rate limit exceeded, please try again later.",
    "request_id": "bench-throttled",
}


def create_app() -> web.Application:
    refused = 0

    async def refuse(request: web.Request) -> web.Response:
        nonlocal refused
        refused += 1
        await request.read()
        return web.json_response(BODY, status=429)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"requests": refused})

    app = web.Application()
    app.router.add_get("/requests", count)
    app.router.add_post("/{tail:.*}", refuse)
    return app


def main() -> None:
    web.run_app(create_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
