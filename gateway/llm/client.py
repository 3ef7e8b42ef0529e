"""The HTTP shell around a wire format: pooled session, timeouts, retries, prompt close.

* One :class:`aiohttp.ClientSession` per app (opened in a ``cleanup_ctx``), pooled up to
  ``upstream.pool_size`` connections, no cookie jar.
* Three timeouts kept apart: connect (``connect_timeout_s``), first event
  (``first_byte_timeout_s``: the request is sent and the model is thinking), and between
  events (``idle_timeout_s``, from the first event on, not while the consumer holds the
  stream for room). The last is a :class:`Silence`: each read stamps the time and one
  timer per ``idle_timeout_s`` looks at the stamp, where aiohttp's ``sock_read`` re-arms a
  timer on every read it takes from the socket.
* Retries, with exponential backoff and jitter, only for retryable failures and only while
  nothing has been produced (no answer text and no reasoning): a reply is never restarted
  after its first step. A refusal the wire can route around (DashScope's "url error" for a
  model on the wrong endpoint) is sent once more, to the wire's other endpoint, at once.
* The body is read in chunks of at most :data:`READ_CHUNK` bytes into the SSE decoder (no
  readline limit applies). The consumer's ``backpressure`` is asked between reads, once a chunk's
  events are all out, so a reply paused for a stalled reader holds aiohttp's read buffer
  (twice :data:`READ_CHUNK`) and no decoded event.
  Closing the stream (``aclose()`` or cancelling its task) closes the response, and with it
  the connection, at once: the upstream sees the disconnect and stops billing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator

import aiohttp
import structlog

from ..config import UpstreamConfig
from ..errors import UpstreamError, UpstreamTimeout, failure_fields
from .body import JsonBody
from .dashscope import DashScopeWire
from .events import Backpressure, ChatRequest, Finish, Step, Upstream, UpstreamEvent
from .openai import OpenAIWire
from .sse import SSEDecoder
from .wire import Wire, error_from_body

READ_CHUNK = 16 * 1024

log = structlog.get_logger("gateway.upstream")


def make_session(config: UpstreamConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=config.pool_size, limit_per_host=config.pool_size, enable_cleanup_closed=False
    )
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=config.connect_timeout_s,
        sock_connect=config.connect_timeout_s,
        sock_read=None,  # between events: a Silence per stream, not a timer per read
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
        # aiohttp pauses the socket at twice this much unread: a reply paused behind a
        # stalled reader holds that much of its body, not the default's (docs/performance.md).
        read_bufsize=READ_CHUNK,
    )


def make_upstream(
    config: UpstreamConfig,
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    thinking_style: str = "dashscope",
    continuation: str = "",
) -> Upstream:
    """The upstream for ``config``. ``thinking_style`` (``"dashscope"`` or ``"vllm"``) and
    ``continuation`` (``"vllm"`` or not) shape an ``openai`` upstream's requests."""
    wire: Wire
    if config.kind == "openai":
        wire = OpenAIWire(thinking_style, continuation)
    else:  # dashscope, or the simulator (which speaks DashScope)
        wire = DashScopeWire(config.incremental_output, config.result_format)
    return HttpUpstream(config, session, base_url, wire)


class Silence:
    """The between-events deadline of one stream: one timer per ``limit`` seconds, not one
    per read.

    Each read sets :attr:`last`. Once armed (at the first event), the timer, when
    it fires, re-arms itself for ``limit`` after the last read, or, once ``limit`` has passed
    with no read and the stream is not :attr:`held` (the consumer is out of room: that
    silence is ours, not the model's), fails the body's reader with aiohttp's own
    :class:`aiohttp.ServerTimeoutError`.
    """

    __slots__ = ("_content", "_handle", "_limit", "_loop", "held", "last")

    def __init__(self, limit: float, content: aiohttp.StreamReader) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit, self._content = limit, content
        self.last = self._loop.time()
        self.held = False
        self._handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        self._handle = self._loop.call_at(self.last + self._limit, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        if self.held:
            self.last = now
        if now - self.last < self._limit:
            self._handle = self._loop.call_at(self.last + self._limit, self._check)
            return
        self._handle = None
        self._content.set_exception(
            aiohttp.ServerTimeoutError(f"no data from the model service for {self._limit} s")
        )

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class HttpUpstream:
    """An :class:`~gateway.llm.events.Upstream` over HTTP: one wire format, the app's pooled
    session, the three timeouts, retries only while nothing was produced, and a prompt close
    of the response when the stream is closed or its task cancelled."""

    def __init__(
        self, config: UpstreamConfig, session: aiohttp.ClientSession, base_url: str, wire: Wire
    ) -> None:
        self._config = config
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._wire = wire

    async def stream(
        self, request: ChatRequest, backpressure: Backpressure | None = None
    ) -> AsyncGenerator[UpstreamEvent, None]:
        attempt = 0
        rerouted = request.endpoint is not None  # a named endpoint is never switched
        request = self._wire.route(request)
        while True:
            produced = False  # by any Step or Reasoning
            try:
                async for event in self._once(request, backpressure):
                    if not isinstance(event, Finish):
                        produced = True
                    yield event
                return
            except UpstreamError as exc:
                if not produced and not rerouted:
                    other = self._wire.reroute(request, exc)
                    if other is not None:
                        log.info(
                            "upstream endpoint switched",
                            model=request.model,
                            endpoint=other.endpoint,
                        )
                        request, rerouted = other, True
                        continue
                if produced or not exc.retryable or attempt >= self._config.max_retries:
                    raise
                attempt += 1
                delay = self._config.retry_backoff_s * 2 ** (attempt - 1)
                delay *= random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not crypto
                log.warning(
                    "upstream retry",
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    upstream_request_id=exc.request_id,
                    **failure_fields(exc),
                )
                await asyncio.sleep(delay)

    async def _once(
        self, request: ChatRequest, backpressure: Backpressure | None
    ) -> AsyncGenerator[UpstreamEvent, None]:
        key = self._config.api_key.reveal()
        fields, headers = self._wire.request(request, key)
        body = JsonBody(fields)  # images are encoded while it is sent
        response: aiohttp.ClientResponse | None = None
        silence: Silence | None = None
        completed = False
        try:
            # One deadline covers connect, headers and the model's thinking, up to the first
            # event. Only that first `anext` runs under it: it never fires in the consumer.
            try:
                async with asyncio.timeout(self._config.first_byte_timeout_s):
                    url = self._base_url + self._wire.path(request)
                    response = await self._session.post(url, data=body, headers=headers)
                    if response.status >= 300:
                        error = error_from_body(response.status, await response.read())
                        error.request_id = error.request_id or response.headers.get("X-Request-Id")
                        raise error
                    silence = Silence(self._config.idle_timeout_s, response.content)
                    events = self._events(response, request, backpressure, silence)
                    first = await anext(events)
            except TimeoutError:
                raise UpstreamTimeout(
                    "the model service did not start answering in time",
                    cause=f"TimeoutError: no first event within {self._config.first_byte_timeout_s}"
                    " s (upstream.first_byte_timeout_s)",
                ) from None
            silence.arm()  # from the first event on, the silence between events counts
            event: UpstreamEvent = first
            while True:
                completed = isinstance(event, Finish)
                yield event
                if completed:
                    return
                event = await anext(events)
        except UpstreamError as exc:  # an error body or event: the provider's words
            exc.message, exc.cause = _without(key, exc.message) or "", _without(key, exc.cause)
            raise
        except aiohttp.ServerTimeoutError as exc:
            raise UpstreamTimeout(
                "the model service stopped sending", cause=_cause(exc, key)
            ) from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise UpstreamError(
                f"the model service dropped the stream ({type(exc).__name__})",
                cause=_cause(exc, key),
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(
                f"cannot reach the model service ({exc.os_error})", cause=_cause(exc, key)
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"the model service failed ({type(exc).__name__})", cause=_cause(exc, key)
            ) from None
        finally:
            if silence is not None:
                silence.cancel()
            if response is not None:
                # A finished body goes back to the pool; anything else drops the connection.
                if completed and response.content.at_eof():
                    response.release()
                else:
                    response.close()

    async def _events(
        self,
        response: aiohttp.ClientResponse,
        request: ChatRequest,
        backpressure: Backpressure | None,
        silence: Silence,
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """The body's events, decoded and parsed, ending with the parser's verdict; waits
        for ``backpressure`` before each read after the first, once the chunk's events are all out.
        Each read is stamped on ``silence``; a wait for room holds it."""
        decoder = SSEDecoder()
        parser = self._wire.parser(request)
        loop = asyncio.get_running_loop()
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            silence.last = loop.time()
            batch = decoder.feed(chunk)
            del chunk  # decoded: not held while a paused reply waits on one of its events
            batch.reverse()
            while batch:
                # Not bound to a name: a multi-MB cumulative event is freed once parsed,
                # before the next one is decoded.
                for event in parser.feed(batch.pop()):
                    yield event
            if backpressure is not None and (wait := backpressure()) is not None:
                silence.held = True
                try:
                    await wait
                finally:
                    silence.held = False
                    silence.last = loop.time()
        for last in decoder.close():  # an event the body ended without its blank line
            for event in parser.feed(last):
                yield event
        for event in parser.end():
            yield event


def _cause(exc: BaseException, key: str) -> str:
    """The exception's class and message, for the operator's log; never the API key."""
    return _without(key, f"{type(exc).__name__}: {exc}") or ""


def _without(key: str, text: str | None) -> str | None:
    return text.replace(key, "[api key]") if key and text else text


__all__ = ["HttpUpstream", "Step", "make_session", "make_upstream"]
