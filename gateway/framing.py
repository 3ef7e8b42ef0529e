"""Client WebSocket frames that RFC 6455 forbids and aiohttp's reader accepts: unmasked ones.

Section 5.1: a client masks every frame it sends, and a server closes the connection on a
frame that is not masked. aiohttp's reader unmasks what is masked and takes the rest as it
is. :class:`MaskCheck` sits between the connection and that reader: it follows the frame
headers only (payloads are skipped by count, never copied or parsed) and hands every chunk
on, until a header without the mask bit, which ends the reader with a protocol error; the
socket then closes with 1002. :class:`MaskedSocket` installs it on every socket it prepares.
"""

from __future__ import annotations

from typing import Any

from aiohttp import WebSocketError, WSCloseCode, web
from aiohttp.web_request import BaseRequest

UNMASKED = "client frames must be masked"  # the close reason (RFC 6455 5.1)


class MaskCheck:
    """A frame-header follower in front of aiohttp's WebSocket reader.

    ``feed_data`` has the reader's signature: ``(eof, tail)``. A chunk is passed on whole
    while every header in it has the mask bit; at the first that does not, the reader's
    queue gets :class:`aiohttp.WebSocketError` 1002 (``receive`` then closes with it) and
    nothing more is read.
    """

    __slots__ = ("_head", "_queue", "_reader", "_skip", "failed")

    def __init__(self, reader: Any, queue: Any) -> None:
        self._reader = reader
        self._queue = queue
        self._head = b""  # the start of a header split across chunks
        self._skip = 0  # payload bytes of the current frame still to come
        self.failed = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.failed:
            return True, b""
        if not self._all_masked(data):
            self.failed = True
            self._queue.set_exception(WebSocketError(WSCloseCode.PROTOCOL_ERROR, UNMASKED))
            return True, b""
        result: tuple[bool, bytes] = self._reader.feed_data(data)
        return result

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    def _all_masked(self, data: bytes) -> bool:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            held = len(self._head)
            head = self._head + data[pos : pos + 14]  # a header is at most 14 bytes
            if len(head) < 2:
                self._head = head
                return True
            if not head[1] & 0x80:
                return False
            size = head[1] & 0x7F
            length = 6 + (2 if size == 126 else 8 if size == 127 else 0)
            if len(head) < length:  # the rest of the header comes in a later chunk
                self._head = head
                return True
            if size == 126:
                size = int.from_bytes(head[2:4], "big")
            elif size == 127:
                size = int.from_bytes(head[2:10], "big")
            self._head = b""
            pos += length - held
            self._skip = size
        return True


class MaskedSocket(web.WebSocketResponse):
    """A WebSocketResponse that closes with 1002 on an unmasked client frame, and names the
    reason of a 1002 close (aiohttp sends its own protocol errors' with none)."""

    __slots__ = ("_mask_check",)

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == WSCloseCode.PROTOCOL_ERROR and not message:
            check: MaskCheck | None = getattr(self, "_mask_check", None)
            message = (
                UNMASKED if check is not None and check.failed else "protocol error"
            ).encode()
        return await super().close(code=code, message=message, drain=drain)

    def _post_start(self, request: BaseRequest, protocol: str | None, writer: Any) -> None:
        # Bytes that came with the upgrade request are fed to the reader as soon as it is
        # installed: hold them back, then feed them through the check like any others.
        handler: Any = request.protocol
        tail, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        check = self._mask_check = MaskCheck(handler._payload_parser, self._reader)
        handler._payload_parser = check
        if tail and check.feed_data(tail)[0]:
            handler.close()
