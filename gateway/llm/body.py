"""A request body in JSON whose images are base64-encoded while it is sent.

A wire puts an :class:`~gateway.llm.events.Image` where its URL goes in the JSON
(``{"image": <Image>}``, ``{"url": <Image>}``); one given as a URL is sent as that string.
:class:`JsonBody` serialises the rest once and writes each image of bytes as a
``"data:<type>;base64,..."`` string, encoding :data:`PIECE` bytes at a time: an image costs
one piece of extra memory, not its base64 text, that text in the JSON and the JSON's bytes
(what aiohttp's ``json=`` would hold at once). The size is known before the first byte, so
the request has a ``Content-Length``.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from .events import Image

PIECE = 3 * 16 * 1024  # raw bytes encoded per write (a multiple of 3: no padding inside)


class JsonBody(Payload):
    """The JSON text of ``value``, images written as ``data:`` URLs piece by piece.

    Contract: :attr:`size` is the exact byte length; :meth:`write` may be called more than
    once (a retry sends the same body again); :meth:`decode` gives the whole text (tests)."""

    def __init__(self, value: Any) -> None:
        images: list[Image] = []
        token = f"image-{uuid.uuid4().hex}-"

        def placeholder(obj: object) -> str:
            if isinstance(obj, Image) and obj.url is not None:
                return obj.url  # an https:// or data: URL already: sent as it is
            if isinstance(obj, Image):
                images.append(obj)
                return f"{token}{len(images) - 1}"
            raise TypeError(f"cannot send {type(obj).__name__} as JSON")

        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=placeholder)
        self._parts: list[bytes | Image] = (
            _split_at_images(text, token, images) if images else [text.encode()]
        )
        super().__init__(value, content_type="application/json")
        self._size = sum(
            len(part) if isinstance(part, bytes) else _url_size(part) for part in self._parts
        )

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return "".join(
            part.decode(encoding, errors)
            if isinstance(part, bytes)
            else json.dumps(part.reference())
            for part in self._parts
        )

    async def write(self, writer: AbstractStreamWriter) -> None:
        for part in self._parts:
            if isinstance(part, bytes):
                await writer.write(part)
                continue
            await writer.write(_url_head(part))
            data = memoryview(part.data or b"")
            for start in range(0, len(data), PIECE):
                await writer.write(base64.b64encode(data[start : start + PIECE]))
            await writer.write(b'"')

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        await self.write(writer)  # the length is ours: exactly self.size bytes


def _url_head(image: Image) -> bytes:
    return f'"data:{json.dumps(image.media_type)[1:-1]};base64,'.encode()


def _split_at_images(text: str, token: str, images: list[Image]) -> list[bytes | Image]:
    """``text``'s bytes with each ``"<token><n>"`` replaced by ``images[n]``.

    A plain split on the token, not a pattern: the token is new for every body, and a
    pattern built from it would be compiled again for every request."""
    pieces = text.split(f'"{token}')
    parts: list[bytes | Image] = [pieces[0].encode()] if pieces[0] else []
    for piece in pieces[1:]:
        index, rest = piece.split('"', 1)
        parts.append(images[int(index)])
        if rest:
            parts.append(rest.encode())
    return parts


def _url_size(image: Image) -> int:
    """Bytes of the quoted ``data:`` URL of ``image``."""
    return len(_url_head(image)) + 4 * ((len(image.data or b"") + 2) // 3) + 1
