"""Logging: tokens redacted, and the access log costs nothing when its level is off."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from types import SimpleNamespace
from typing import Any

import structlog
import structlog.testing

from gateway import logs


def test_redact_hides_query_tokens_and_bearer_values() -> None:
    """A token in a query string or after Bearer never survives redaction."""
    text = logs.redact("/ws?session_type=group&token=abc.def.ghi Authorization: Bearer xyz.123")
    assert "abc.def.ghi" not in text and "xyz.123" not in text
    assert text.count("[redacted]") == 2


def test_the_access_logger_is_disabled_above_info(monkeypatch) -> None:
    """At warning, aiohttp is told not to time requests or build access lines at all."""
    access = logs.AccessLogger(logging.getLogger("aiohttp.access"), "")
    monkeypatch.setattr(logs, "_level", logging.WARNING)
    assert access.enabled is False
    monkeypatch.setattr(logs, "_level", logging.INFO)
    assert access.enabled is True


def _capturing_logger() -> tuple[Any, structlog.testing.LogCapture]:
    capture = structlog.testing.LogCapture()
    processors = [structlog.contextvars.merge_contextvars, logs._expand_connection, capture]
    return structlog.wrap_logger(structlog.ReturnLogger(), processors=processors), capture


def test_a_connections_lines_carry_its_ids_and_its_current_user() -> None:
    """bind_connection: every line names the connection, conversation and (current) user;
    a key the line passes wins; clear_contextvars (a reply's task) and unbind drop them."""
    log, capture = _capturing_logger()
    conn = SimpleNamespace(
        connection_id="c-1", conversation_id="conv-1", user="anon-private", public_user="anon-1"
    )

    def run() -> None:
        logs.bind_connection(conn)
        log.info("connected")
        conn.user = conn.public_user = "alice"  # re-authenticated: the session sets both
        log.info("switched")
        log.info("explicit", user="bob")
        structlog.contextvars.clear_contextvars()
        log.info("reply task")
        logs.bind_connection(conn)
        logs.unbind_connection()
        log.info("left")

    contextvars.copy_context().run(run)
    ids = {"connection_id": "c-1", "conversation_id": "conv-1"}
    assert [{k: e.get(k) for k in ("event", "connection_id", "user")} for e in capture.entries] == [
        {"event": "connected", "connection_id": "c-1", "user": "anon-1"},
        {"event": "switched", "connection_id": "c-1", "user": "alice"},
        {"event": "explicit", "connection_id": "c-1", "user": "bob"},
        {"event": "reply task", "connection_id": None, "user": None},
        {"event": "left", "connection_id": None, "user": None},
    ]
    assert all(ids.items() <= e.items() for e in capture.entries[:3])
    assert not any("_gateway_connection" in e for e in capture.entries)


async def test_tasks_a_connection_starts_log_with_its_context() -> None:
    """A task started by the socket's task (its writer, a token watch) inherits the binding."""
    log, capture = _capturing_logger()
    conn = SimpleNamespace(connection_id="c-2", conversation_id="conv-2", user="u", public_user="")

    async def socket_task() -> None:
        logs.bind_connection(conn)
        await asyncio.create_task(_log_in_task(log))

    await asyncio.create_task(socket_task())
    assert capture.entries[0]["connection_id"] == "c-2"


async def _log_in_task(log: Any) -> None:
    log.info("from a child task")


async def _raw_request(gw, head: str) -> bytes:
    """Send one raw HTTP request head to the gateway and read the whole answer."""
    reader, writer = await asyncio.open_connection(gw.client.host, gw.client.port)
    writer.write(head.encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_no_part_of_an_oversized_credential_header_reaches_a_log(gateway, caplog) -> None:
    """A header line over aiohttp's limit is quoted in its error: the Authorization, Cookie or
    request line (``?token=``) carrying a credential is refused with 400 and logged with the
    error's class only, at every level."""
    from tests.conftest import make_token

    gw = await gateway()
    token = make_token("alice", marker="SECRET-CLAIM-" + "x" * 9000)
    header, claims = token.split(".")[:2]
    heads = [
        f"GET /api/v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n",
        f"GET /api/v1/conversations HTTP/1.1\r\nHost: x\r\nCookie: gw_anon={claims}\r\n\r\n",
        f"GET /api/v1/conversations?token={token} HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    with caplog.at_level(logging.DEBUG):
        for head in heads:
            answer = await _raw_request(gw, head)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "LineTooLong" in logged  # the failure itself is still logged
    for fragment in (header[:12], claims[:12], "SECRET-CLAIM"):
        assert fragment not in logged
