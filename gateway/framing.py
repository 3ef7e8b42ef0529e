"""Client WebSocket frames that RFC 6455 forbids and aiohttp's reader accepts: unmasked ones.

Section 5.1: a client masks every frame it sends, and a server closes the connection on a
frame that is not masked. aiohttp's reader unmasks what is masked and takes the rest as it
is. :class:`MaskCheck` sits between the connection and that reader: it follows the frame
headers only (payloads are skipped by count, never copied or parsed) and hands every chunk
on, until a header without the mask bit, which ends the reader with a protocol error; the
socket then closes with 1002. :class:`MaskedSocket` installs it on every socket it prepares.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import WebSocketError, WSCloseCode, web
from aiohttp.web_request import BaseRequest

from .frame_images import DecodedImage, FrameImages

UNMASKED = "client frames must be masked"  # the close reason (RFC 6455 5.1)


@dataclass(frozen=True, slots=True)
class LargeFrames:
    """Which text frames :class:`MaskCheck` reads itself, their images decoded as they
    arrive (:mod:`gateway.frame_images`): final text frames over ``above`` bytes and under
    ``limit`` (aiohttp's ``max_msg_size``: it refuses the rest); ``max_image_bytes`` is
    the most one image decodes to."""

    above: int
    limit: int
    max_image_bytes: int


class MaskCheck:
    """A frame-header follower in front of aiohttp's WebSocket reader.

    ``feed_data`` has the reader's signature: ``(eof, tail)``. Bytes are passed on as they
    come while every header has the mask bit (a header split across chunks is held back
    until whole); at the first that does not, the reader's queue gets
    :class:`aiohttp.WebSocketError` 1002 (``receive`` then closes with it) and nothing more
    is read. With ``large``, a text frame it names is not passed on: its payload is
    unmasked and read by :class:`~gateway.frame_images.FrameImages` piece by piece, and the
    reader gets, in its place, an unmasked frame of the text without the images; the
    images wait in :attr:`streamed` until :meth:`claim` takes them.
    """

    __slots__ = (
        "_frame", "_head", "_large", "_mask", "_offset", "_queue", "_reader", "_skip",
        "failed", "streamed",
    )  # fmt: skip

    def __init__(self, reader: Any, queue: Any, large: LargeFrames | None = None) -> None:
        self._reader = reader
        self._queue = queue
        self._head = b""  # the start of a header split across chunks (not yet passed on)
        self._skip = 0  # payload bytes of the current frame still to come
        self._large = large
        self._frame: FrameImages | None = None  # the large frame being read here
        self._mask = b""
        self._offset = 0
        # None until a large frame brings images: an idle socket holds no dict for them.
        self.streamed: dict[str, DecodedImage] | None = None
        self.failed = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.failed:
            return True, b""
        if self._head:
            data, self._head = self._head + data, b""
        out = self._split(data)
        if out is None:
            self.failed = True
            self._queue.set_exception(WebSocketError(WSCloseCode.PROTOCOL_ERROR, UNMASKED))
            return True, b""
        if len(out) == 1 and out[0] is data:
            result: tuple[bool, bytes] = self._reader.feed_data(data)
            return result
        chunk = b"".join(out)
        return self._reader.feed_data(chunk) if chunk else (False, b"")

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    def claim(self, text: str) -> dict[str, DecodedImage]:
        """The images whose placeholders the frame ``text`` holds, taken out of
        :attr:`streamed` (whatever the frame turns out to be, they are not kept)."""
        if not self.streamed or _PLACEHOLDER not in text:
            return {}
        return {
            key: image
            for key in _PLACEHOLDER_KEY.findall(text)
            if (image := self.streamed.pop(key, None)) is not None
        }

    def _split(self, data: bytes) -> list[bytes] | None:
        """What of ``data`` goes to the reader, in order; None at an unmasked header."""
        out: list[bytes] = []
        pos, end, start = 0, len(data), 0
        while pos < end:
            if self._frame is not None:
                step = min(self._skip, end - pos)
                self._read_large(data[pos : pos + step])
                self._skip -= step
                pos += step
                start = pos
                if not self._skip:
                    out.append(self._end_large())
                continue
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            head = data[pos : pos + 14]  # a header is at most 14 bytes
            if len(head) >= 2 and not head[1] & 0x80:
                return None
            size = head[1] & 0x7F if len(head) >= 2 else 0
            length = 6 + (2 if size == 126 else 8 if size == 127 else 0)
            if len(head) < max(2, length):  # the rest of the header comes in a later chunk
                self._head = data[pos:]
                end = pos
                break
            if size == 126:
                size = int.from_bytes(head[2:4], "big")
            elif size == 127:
                size = int.from_bytes(head[2:10], "big")
            large = self._large
            if large is not None and head[0] == 0x81 and large.above < size < large.limit:
                out.append(data[start:pos])
                self._mask, self._offset = head[length - 4 : length], 0
                # (a frame's placeholder keys: its own, unguessable)
                self._frame = FrameImages(size, large.max_image_bytes, secrets.token_urlsafe(9))
                pos += length
                start = pos
                self._skip = size
                continue
            pos += length
            self._skip = size
        if start == 0 and end == len(data) and not out:
            return [data]
        out.append(data[start:end])
        return out

    def _read_large(self, piece: bytes) -> None:
        assert self._frame is not None
        n, turn = len(piece), self._offset % 4
        key = (self._mask[turn:] + self._mask[:turn]) * (n // 4 + 1)
        plain = (int.from_bytes(piece, "little") ^ int.from_bytes(key[:n], "little")).to_bytes(
            n, "little"
        )
        self._offset += n
        self._frame.feed(plain)

    def _end_large(self) -> bytes:
        """The unmasked frame the reader gets in the large frame's place."""
        assert self._frame is not None
        frame, self._frame = self._frame, None
        if frame.images:
            if self.streamed is None:
                self.streamed = {}
            self.streamed.update(frame.images)
        text = frame.text()
        size = len(text)
        if size < 126:
            head = bytes([0x81, size])
        elif size < 1 << 16:
            head = bytes([0x81, 126]) + size.to_bytes(2, "big")
        else:
            head = bytes([0x81, 127]) + size.to_bytes(8, "big")
        return head + text


_PLACEHOLDER = '"streamed"'
_PLACEHOLDER_KEY = re.compile(r'"streamed":"([A-Za-z0-9_-]+:[0-9]+)"')


class MaskedSocket(web.WebSocketResponse):
    """A WebSocketResponse that closes with 1002 on an unmasked client frame, and names the
    reason of a 1002 close (aiohttp sends its own protocol errors' with none)."""

    __slots__ = ("_large_frames", "_mask_check")

    def read_large_frames(self, large: LargeFrames) -> None:
        """Before ``prepare``: text frames ``large`` names are read by the mask check, their
        images decoded as they arrive (what keeps a 5 MB image from costing the frame's
        size several times over, docs/performance.md); :meth:`claim_images` gives them."""
        self._large_frames = large

    def claim_images(self, text: str) -> dict[str, DecodedImage]:
        """The images decoded out of the frame ``text`` (:meth:`MaskCheck.claim`)."""
        check: MaskCheck | None = getattr(self, "_mask_check", None)
        return {} if check is None else check.claim(text)

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
        large = getattr(self, "_large_frames", None)
        check = self._mask_check = MaskCheck(handler._payload_parser, self._reader, large)
        handler._payload_parser = check
        if tail and check.feed_data(tail)[0]:
            handler.close()
