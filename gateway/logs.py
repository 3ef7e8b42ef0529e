"""structlog, configured once: JSON lines off a terminal, a console renderer on one.

Context (``connection_id``, ``conversation_id``, ``message_id``, ``user``) is bound per
connection and per reply with ``structlog.contextvars``. :func:`redact` scrubs a URL's
``token`` query parameter before anything logs it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

_TOKEN_IN_QUERY = re.compile(r"([?&](?:token|access_token|api_key)=)[^&\s\"]*", re.IGNORECASE)
_BEARER = re.compile(r"(bearer[ .])[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


_access = structlog.get_logger("gateway.access")
_level = logging.INFO  # the configured level


def redact(text: str) -> str:
    """Hide tokens in a URL query or a bearer value."""
    return _BEARER.sub(r"\1[redacted]", _TOKEN_IN_QUERY.sub(r"\1[redacted]", text))


def _redact_event(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and ("=" in value or "earer" in value):
            event[key] = redact(value)
    return event


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard library's logging (aiohttp's) to match."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_event,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = getattr(logging, level.upper())
    global _level
    _level = numeric
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # aiohttp and asyncio log through the standard library: render them the same way.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.getLogger("aiohttp.access").setLevel(
        logging.WARNING if numeric > logging.INFO else numeric
    )


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log as one structlog event per request, tokens redacted."""

    @property
    def enabled(self) -> bool:
        """Off above ``info``: aiohttp then neither times requests nor calls :meth:`log`."""
        return _level <= logging.INFO  # access lines are info

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        _access.info(
            "http",
            method=request.method,
            path=redact(request.path_qs),
            status=response.status,
            seconds=round(time, 4),
            remote=request.remote,
        )
