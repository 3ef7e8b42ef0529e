"""The gateway's errors: each knows its wire code, WebSocket close code, HTTP status, retryability.

::

    GatewayError                      code            close  http  retryable
    ├── ClientError                   (about a client frame or request; connection stays open)
    │   ├── BadJson                   bad_json          -    400   no
    │   ├── BadRequest                bad_request       -    400   no
    │   ├── Unprocessable             invalid_body      -    422   no   (JSON, wrong fields)
    │   ├── UnknownType               unknown_type      -    400   no
    │   ├── UnsupportedData           unsupported_data  -    400   no
    │   ├── MessageTooLong            message_too_long  -    413   no
    │   ├── BadImage                  bad_image         -    422   no
    │   ├── Busy                      busy              -    409   yes
    │   ├── RateLimited               rate_limited      -    429   yes
    │   ├── QuotaExceeded             quota_exceeded    -    429   no   (retry_after_s)
    │   ├── TooManyUploads            too_many_uploads  -    429   yes  (retry_after_s)
    │   ├── ResumeUnavailable         resume_unavailable -   404   no
    │   ├── NotFound                  not_found         -    404   no
    │   └── NotAllowed                forbidden         -    403   no   (the socket stays open)
    ├── Refusal                       (ends the connection, or refuses a request)
    │   ├── Unauthorized              unauthorized     1008  401   no
    │   ├── Forbidden                 forbidden        1008  403   no
    │   ├── UnknownAssistant          unknown_assistant 1008 404   no
    │   ├── TryAgainLater             try_again_later  1013  503   yes
    │   ├── SlowConsumer              slow_consumer    1013   -    yes
    │   ├── TokenExpired              token_expired    1008  401   no
    │   └── MessageTooBig             message_too_big  1009  413   no
    ├── UpstreamError                 upstream_error     -   502   yes  (5xx, error event, drop...)
    │   ├── UpstreamAuth              upstream_auth      -   502   no   (HTTP 401/403)
    │   ├── UpstreamThrottled         upstream_throttled -   503   yes  (429, Throttling*)
    │   ├── ContentFiltered           content_filtered   -   422   no   (DataInspectionFailed)
    │   └── UpstreamTimeout           upstream_timeout   -   504   yes
    ├── StoreUnavailable              store_unavailable 1013 503   yes  (Redis down; frame: error)
    └── InternalError                 internal         1011  500   yes  (a bug)

Close codes and reasons are the contract's (section 4); a browser reads ``reason``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """The root of the tree: each subclass fixes its ``code``, ``close_code`` (None: the
    connection stays open), ``reason``, ``http_status``, ``retryable`` and default message."""

    code: ClassVar[str] = "internal"
    close_code: ClassVar[int | None] = None
    reason: ClassVar[str] = ""
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def fields(self) -> dict[str, Any]:
        """What the ``error`` frame and the REST body carry beside code and message."""
        return {}


# -- about one client frame or request --------------------------------------------------


class ClientError(GatewayError):
    """Something wrong with one client frame or request: reported, connection kept."""

    http_status = 400


class BadJson(ClientError):
    """A frame that is not JSON."""

    code = "bad_json"
    default_message = "frame is not valid JSON"


class BadRequest(ClientError):
    """A frame or request with a bad or missing field."""

    code = "bad_request"
    default_message = "bad request"


class Unprocessable(ClientError):
    """A JSON body that is not what the endpoint takes (HTTP 422)."""

    code = "invalid_body"
    http_status = 422
    default_message = "the body is JSON but not what this endpoint takes"


class UnknownType(ClientError):
    """A frame of a type the protocol does not have."""

    code = "unknown_type"
    default_message = "unknown frame type"


class UnsupportedData(ClientError):
    """A binary frame."""

    code = "unsupported_data"
    default_message = "binary frames are not supported; send JSON text frames"


class MessageTooLong(ClientError):
    """A message over ``limits.max_message_chars``."""

    code = "message_too_long"
    http_status = 413
    default_message = "message is too long"


class BadImage(ClientError):
    """An image of a ``message`` refused: its type, content, size, count or scheme, or an
    assistant that takes no images (contract section 11). Nothing goes upstream."""

    code = "bad_image"
    http_status = 422
    default_message = "the image was refused"


class Busy(ClientError):
    """A message while the conversation's reply is running."""

    code = "busy"
    http_status = 409
    retryable = True
    default_message = "a reply is already running in this conversation"


class RateLimited(ClientError):
    """Over the per-user message rate."""

    code = "rate_limited"
    http_status = 429
    retryable = True
    default_message = "too many messages; slow down"


class QuotaExceeded(ClientError):
    """A daily token quota is spent: no new reply until ``retry_after_s`` (the next UTC day).

    ``quota`` names which one (``user``, ``assistant``, ``address``: the metric's label);
    :meth:`fields` is what the ``error`` frame and the REST body carry beside the code."""

    code = "quota_exceeded"
    http_status = 429
    default_message = "today's token quota is spent"

    def __init__(
        self, message: str | None = None, *, quota: str = "user", retry_after_s: int = 0
    ) -> None:
        super().__init__(message)
        self.quota = quota
        self.retry_after_s = retry_after_s

    def fields(self) -> dict[str, Any]:
        return {"retry_after_s": self.retry_after_s}


class TooManyUploads(ClientError):
    """An image upload refused: its conversation already holds
    ``limits.max_pending_images`` uploads no message has named. Nothing of it is read or
    kept; one frees when a message names one or it expires, in ``retry_after_s``."""

    code = "too_many_uploads"
    http_status = 429
    retryable = True
    default_message = "too many images uploaded and not yet sent in this conversation"

    def __init__(self, message: str | None = None, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def fields(self) -> dict[str, Any]:
        return {"retry_after_s": self.retry_after_s}


class ResumeUnavailable(ClientError):
    """A resume of a reply no longer (or never) held."""

    code = "resume_unavailable"
    http_status = 404
    default_message = "that reply cannot be resumed"


class NotFound(ClientError):
    """No such resource."""

    code = "not_found"
    http_status = 404
    default_message = "not found"


class NotAllowed(ClientError):
    """A frame the caller may not send here (a member's ``reset``): refused, nothing changes,
    the connection stays open. (:class:`Forbidden` ends the connection.)"""

    code = "forbidden"
    http_status = 403
    default_message = "not allowed"


# -- refusals that end a connection --------------------------------------------------------


class Refusal(GatewayError):
    """A refusal that ends the connection (its ``close_code``) or the request."""


class Unauthorized(Refusal):
    """No valid token."""

    code = "unauthorized"
    close_code = 1008
    reason = "unauthorized"
    http_status = 401
    default_message = "a valid token is required"


class Forbidden(Refusal):
    """A valid token that may not do this (closes the connection)."""

    code = "forbidden"
    close_code = 1008
    reason = "forbidden"
    http_status = 403
    default_message = "not allowed"


class UnknownAssistant(Refusal):
    """No such assistant."""

    code = "unknown_assistant"
    close_code = 1008
    reason = "unknown assistant"
    http_status = 404
    default_message = "no such assistant"


class TryAgainLater(Refusal):
    """Over a connection limit: retry later."""

    code = "try_again_later"
    close_code = 1013
    reason = "try again later"
    http_status = 503
    retryable = True
    default_message = "over capacity; try again later"


class SlowConsumer(Refusal):
    """The socket missed its send deadline: closed with 1013; the client resumes."""

    code = "slow_consumer"
    close_code = 1013
    reason = "slow consumer"
    http_status = 503
    retryable = True
    default_message = "the connection could not keep up"


class TokenExpired(Refusal):
    """The socket's token expired without a fresh ``auth`` frame."""

    code = "token_expired"
    close_code = 1008
    reason = "token expired"
    http_status = 401
    default_message = "the token expired"


class MessageTooBig(Refusal):
    """A frame over ``limits.max_frame_bytes``: closed with 1009."""

    code = "message_too_big"
    close_code = 1009
    reason = "message too big"
    http_status = 413
    default_message = "frame is over the size limit"


# -- the upstream model service ------------------------------------------------------------


class UpstreamError(GatewayError):
    """The model service failed; carries its status, code and request id for the log."""

    code = "upstream_error"
    http_status = 502
    retryable = True
    default_message = "the model service failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        upstream_code: str | None = None,
        request_id: str | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.upstream_code = upstream_code
        self.request_id = request_id
        self.cause = cause  # for the operator's log only: the exception or body behind it


class UpstreamAuth(UpstreamError):
    """The model service refused the gateway's credentials."""

    code = "upstream_auth"
    retryable = False
    default_message = "the model service refused the gateway's credentials"


class UpstreamThrottled(UpstreamError):
    """The model service is throttling."""

    code = "upstream_throttled"
    http_status = 503
    retryable = True
    default_message = "the model service is throttling requests"


class ContentFiltered(UpstreamError):
    """The model service's content filter refused the conversation."""

    code = "content_filtered"
    http_status = 422
    retryable = False
    default_message = "the model service's content filter refused this conversation"


class UpstreamTimeout(UpstreamError):
    """The model service did not answer in time."""

    code = "upstream_timeout"
    http_status = 504
    retryable = True
    default_message = "the model service did not answer in time"


class StoreUnavailable(GatewayError):
    """Shared state (Redis) did not answer. On a handshake: close 1013; on a frame: ``error``."""

    code = "store_unavailable"
    close_code = 1013
    reason = "try again later"
    http_status = 503
    retryable = True
    default_message = "shared state is unavailable; try again shortly"


class InternalError(GatewayError):
    """A bug: closed with 1011."""

    code = "internal"
    close_code = 1011
    reason = "internal error"
    http_status = 500
    retryable = True


def upstream_error_for(
    status: int | None,
    upstream_code: str | None,
    message: str | None,
    request_id: str | None = None,
) -> UpstreamError:
    """Map an upstream failure (HTTP status and/or provider code) to the contract's error."""
    code = upstream_code or ""
    cls: type[UpstreamError]
    if status in (401, 403) or code in ("InvalidApiKey", "invalid_api_key"):
        cls = UpstreamAuth
    elif status == 429 or code.startswith("Throttling") or code == "rate_limit_exceeded":
        cls = UpstreamThrottled
    elif code == "DataInspectionFailed" or code == "data_inspection_failed":
        cls = ContentFiltered
    elif status in (408, 504) or code in ("RequestTimeOut", "timeout"):
        cls = UpstreamTimeout
    else:
        cls = UpstreamError
    text = message or cls.default_message
    if code:
        text = f"{code}: {text}"
    return cls(text, status=status, upstream_code=upstream_code, request_id=request_id)


def failure_fields(error: GatewayError | None) -> dict[str, object]:
    """Log fields saying why something failed: the code and message, and for an upstream
    failure its HTTP status, provider code and cause (never the key: see llm/client.py)."""
    if error is None:
        return {"error": None}
    fields: dict[str, object] = {"error": error.code, "error_message": error.message}
    if isinstance(error, UpstreamError):
        fields["upstream_status"] = error.status
        fields["upstream_code"] = error.upstream_code
        fields["cause"] = error.cause
    return fields


def error_for_code(code: str, message: str) -> GatewayError:
    """Rebuild an error read back from shared state (a reply produced on another instance)."""
    for cls in _known():
        if cls.code == code:
            return cls(message)
    return UpstreamError(message)


def _known() -> list[type[GatewayError]]:
    found: list[type[GatewayError]] = []
    todo: list[type[GatewayError]] = [GatewayError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found
