"""structlog, configured once: JSON lines off a terminal, a console renderer on one.

Context (``connection_id``, ``conversation_id``, ``message_id``, ``user``) is bound per
connection and per reply with ``structlog.contextvars``; a connection's three keys are bound
as one object (:func:`bind_connection`) and spelled out only when a line is emitted.
:func:`redact` scrubs a URL's ``token`` query parameter before anything logs it, and
:class:`WithholdRequestText` keeps the bytes of a malformed request out of aiohttp's log.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Any, Protocol

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

_TOKEN_IN_QUERY = re.compile(r"([?&](?:token|access_token|api_key)=)[^&\s\"]*", re.IGNORECASE)
_BEARER = re.compile(r"(bearer[ .])[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


_access = structlog.get_logger("gateway.access")
_level = logging.INFO  # the configured level


class ConnectionContext(Protocol):
    """What a connection's log lines carry (read when a line is emitted, not when bound)."""

    @property
    def connection_id(self) -> str: ...
    @property
    def conversation_id(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def public_user(self) -> str: ...


# A socket's context is one variable holding the connection, not three structlog keys:
# binding three keys per socket (and clearing them by walking the whole context) costs more
# than the socket's log lines, which at the default level are none. The name carries
# structlog's prefix, so ``clear_contextvars()`` clears it too (a reply's task drops it), and
# ``merge_contextvars`` hands it to :func:`_expand_connection` under this key.
_CONNECTION_KEY = "_gateway_connection"
_connection: ContextVar[Any] = ContextVar(
    structlog.contextvars.STRUCTLOG_KEY_PREFIX + _CONNECTION_KEY, default=Ellipsis
)


def bind_connection(conn: ConnectionContext) -> None:
    """Log this task's lines (and those of tasks it starts) with ``conn``'s ids and user.

    The user is read at emission, so a re-authenticated connection logs its new user.
    """
    _connection.set(conn)


def unbind_connection() -> None:
    _connection.set(Ellipsis)


def _expand_connection(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    conn = event.pop(_CONNECTION_KEY, None)
    if conn is not None:
        # setdefault: like merge_contextvars, a key the line or its logger binds wins.
        event.setdefault("connection_id", conn.connection_id)
        event.setdefault("conversation_id", conn.conversation_id)
        event.setdefault("user", conn.public_user or conn.user)  # never an anonymous private id
    return event


def redact(text: str) -> str:
    """Hide tokens in a URL query or a bearer value."""
    return _BEARER.sub(r"\1[redacted]", _TOKEN_IN_QUERY.sub(r"\1[redacted]", text))


def _redact_event(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and ("=" in value or "earer" in value):
            event[key] = redact(value)
    return event


class WithholdRequestText(logging.Filter):
    """aiohttp logs a request it cannot parse with the parser's error, which quotes the
    offending bytes: a header line over the size limit is an ``Authorization``, ``Cookie`` or
    request line (``?token=``) with the credential in it. This filter keeps the line and the
    error's class and status and drops the quoted text and the traceback, whatever the
    level and whoever configured logging (it sits on aiohttp's own logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = (
                f"{record.getMessage()}: {type(exc).__name__}, HTTP {exc.code}"
                " (the request's text is not logged)"
            )
            record.args = None
            record.exc_info = record.exc_text = None
        return True


# On aiohttp's server logger from import on, not in :func:`configure`: a gateway whose
# logging someone else set up (tests, an embedding program) must not log credentials either.
logging.getLogger("aiohttp.server").addFilter(WithholdRequestText())


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard library's logging (aiohttp's) to match."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _expand_connection,
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


def info_enabled() -> bool:
    """Whether ``info`` lines are emitted: per-socket ones are skipped before their
    arguments are built (the filtering logger would drop them, after a lazy-proxy lookup)."""
    return _level <= logging.INFO


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log as one structlog event per request, tokens redacted."""

    @property
    def enabled(self) -> bool:
        """Off above ``info``: aiohttp then neither times requests nor calls :meth:`log`."""
        return info_enabled()  # access lines are info

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        _access.info(
            "http",
            method=request.method,
            path=redact(request.path_qs),
            status=response.status,
            seconds=round(time, 4),
            remote=request.remote,
        )
