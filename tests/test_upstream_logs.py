"""The log names the cause of every upstream failure, and never the upstream's key."""

from __future__ import annotations

import pytest
import structlog
from aiohttp import web

from tests.conftest import make_token, wait_until

KEY = "sk-test-upstream-key"  # tests.conftest.gateway_config's upstream key


async def failed_reply(gw, text: str) -> tuple[dict, list[dict]]:
    """Ask ``text`` over a socket; return the reply's summary line and every line logged."""
    with structlog.testing.capture_logs() as entries:
        sock = await gw.chat(token=make_token("alice"))
        await sock.send(type="message", id="c-1", text=text)
        await wait_until(lambda: any(e["event"] == "reply" for e in entries))
    return next(e for e in entries if e["event"] == "reply"), entries


@pytest.mark.parametrize(
    ("fault", "error", "status", "code"),
    [
        ("401", "upstream_auth", 401, "InvalidApiKey"),
        ("429", "upstream_throttled", 429, "Throttling.RateQuota"),
        ("500", "upstream_error", 500, "InternalError"),
        ("error", "upstream_error", 500, "InternalError"),
    ],
)
async def test_an_upstream_error_logs_status_code_and_request_id(
    gateway, fault: str, error: str, status: int, code: str
) -> None:
    """A refused or failed request logs the HTTP status, provider code, message and request id."""
    gw = await gateway()
    line, entries = await failed_reply(gw, f"hi sim:fault={fault} sim:tokens=4 sim:delay_ms=0")
    assert line["error"] == error and line["state"] == "failed"
    assert line["upstream_status"] == status and line["upstream_code"] == code
    assert code in line["error_message"]
    assert line["upstream_request_id"]
    assert KEY not in repr(entries)


@pytest.mark.parametrize(("fault", "cause"), [("drop", "ClientPayloadError"), ("malformed", None)])
async def test_a_broken_stream_logs_the_exception_behind_it(gateway, fault, cause) -> None:
    """A cut connection names aiohttp's exception; a broken event names what was wrong."""
    gw = await gateway()
    line, entries = await failed_reply(gw, f"hi sim:fault={fault} sim:tokens=6 sim:delay_ms=0")
    assert line["error"] == "upstream_error"
    if cause is None:
        assert "malformed" in line["error_message"]
    else:
        assert line["cause"].startswith(cause + ":")
    assert KEY not in repr(entries)


async def test_an_unreachable_upstream_logs_the_connect_error(gateway) -> None:
    """Nothing listening at base_url: the log names the connector error and its address."""
    gw = await gateway("[upstream]\nbase_url = 'http://127.0.0.1:9'\n")
    line, _ = await failed_reply(gw, "hi")
    assert line["error"] == "upstream_error"
    assert line["cause"].startswith("ClientConnectorError:") and "127.0.0.1:9" in line["cause"]


async def test_a_body_echoing_the_key_is_logged_without_it(gateway, aiohttp_server) -> None:
    """An upstream that quotes the request's Authorization back has the key cut from the log."""

    async def refuse(request: web.Request) -> web.Response:
        echoed = request.headers["Authorization"]
        return web.Response(status=502, text=f"<html>bad gateway for {echoed}</html>")

    app = web.Application()
    app.router.add_post("/api/v1/services/aigc/text-generation/generation", refuse)
    server = await aiohttp_server(app)
    gw = await gateway(f"[upstream]\nbase_url = '{server.make_url('')}'\n")
    line, entries = await failed_reply(gw, "hi")
    assert line["upstream_status"] == 502
    assert line["cause"].startswith("body: <html>bad gateway for Bearer [api key]")
    assert KEY not in repr(entries)
