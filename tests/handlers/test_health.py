"""Health, readiness, metrics, limits and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import gateway_config, make_token
from tests.handlers.test_conversations import bearer

OPENAPI = Path(__file__).parents[2] / "docs" / "openapi.yaml"


async def test_healthz_and_readyz_when_the_upstream_answers(gateway) -> None:
    """/healthz and /readyz are 200 while the upstream is reachable."""
    gw = await gateway()
    assert (await gw.client.get("/healthz")).status == 200
    resp = await gw.client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["status"] == "ready"


async def test_readyz_names_an_unreachable_upstream(aiohttp_client, unused_tcp_port) -> None:
    """/readyz is 503 naming the upstream when nothing listens there."""
    from gateway.app import create_app

    cfg = gateway_config("", f"http://127.0.0.1:{unused_tcp_port}")
    client = await aiohttp_client(create_app(cfg))
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and "upstream" in body["down"]
    assert (await client.get("/healthz")).status == 200


async def test_metrics_count_connections_replies_and_frames(gateway) -> None:
    """/metrics exposes connections, replies, first-delta histogram, frames and errors."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.ask("hi sim:tokens=10 sim:delay_ms=0")
    await sock.ask("boom sim:tokens=5 sim:delay_ms=0 sim:fault=throttle sim:fault_at=2", "c-2")
    text = await (await gw.client.get("/metrics")).text()
    assert 'gateway_connections{assistant="default"} 1.0' in text
    assert "gateway_replies_in_flight 0.0" in text
    assert "gateway_time_to_first_delta_seconds_count 2.0" in text
    assert "gateway_steps_total 12.0" in text
    assert 'gateway_upstream_errors_total{code="upstream_throttled"} 1.0' in text
    assert 'gateway_replies_total{finish_reason="stop"} 1.0' in text
    frames = [line for line in text.splitlines() if line.startswith("gateway_frames_sent_total")]
    assert frames and float(frames[0].split()[-1]) >= 8


async def test_private_metrics_need_an_admin(gateway) -> None:
    """server.public_metrics=false: 401 anonymous, 403 user, 200 admin."""
    gw = await gateway("[server]\npublic_metrics = false\n[auth]\nrequired = true\n")
    assert (await gw.client.get("/metrics")).status == 401
    assert (await gw.client.get("/metrics", headers=bearer("bob"))).status == 403
    assert (await gw.client.get("/metrics", headers=bearer("root", admin=True))).status == 200


async def test_rest_body_over_the_limit_is_413(gateway) -> None:
    """A body over limits.max_request_bytes gets 413 with a JSON error."""
    gw = await gateway("[limits]\nmax_request_bytes = 1024\n")
    resp = await gw.client.post(
        "/api/v1/broadcast", json={"message": "x" * 5000}, headers=bearer("root", admin=True)
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "too_large"


async def test_messages_per_minute_and_message_length_limits(gateway) -> None:
    """Past the rate: rate_limited (retryable); too long: message_too_long; neither is stored."""
    gw = await gateway("[limits]\nmessages_per_minute = 2\nmax_message_chars = 50\n")
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(type="message", id="c-0", text="x" * 51)
    err = await sock.recv_type("error")
    assert (err["code"], err["reply_to"]) == ("message_too_long", "c-0")
    await sock.ask("one sim:tokens=2 sim:delay_ms=0", "c-1")
    await sock.ask("two sim:tokens=2 sim:delay_ms=0", "c-2")
    await sock.send(type="message", id="c-3", text="three")
    err = await sock.recv_type("error")
    assert (err["code"], err["retryable"]) == ("rate_limited", True)
    resp = await gw.client.get(
        f"/api/v1/conversations/{sock.connected['conversation_id']}/messages",
        headers=bearer("alice"),
    )
    assert len((await resp.json())["messages"]) == 4


async def test_replies_in_flight_per_user_are_bounded(gateway) -> None:
    """Past limits.max_replies_per_user running at once, a new message is busy."""
    gw = await gateway("[limits]\nmax_replies_per_user = 1\n")
    a = await gw.chat(token=make_token("alice"))
    b = await gw.chat(token=make_token("alice"))
    await a.send(type="message", id="c-1", text="long sim:tokens=300 sim:delay_ms=10")
    await a.recv_type("start")
    await b.send(type="message", id="c-2", text="other conversation")
    err = await b.recv_type("error")
    assert err["code"] == "busy"


def test_openapi_document_lists_exactly_the_apps_routes() -> None:
    """docs/openapi.yaml and the app's router agree, path for path and method for method."""
    from gateway.app import create_app

    doc = yaml.safe_load(OPENAPI.read_text())
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    app = create_app(gateway_config())
    routed = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path is None or path.startswith("/static") or route.method == "HEAD":
            continue
        if path in ("/", "/c/{id}", "/widget", "/embed.js"):
            continue  # pages, not the REST API
        routed.add((path, route.method))
    assert routed == documented
