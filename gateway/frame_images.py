"""Images decoded out of a large ``message`` frame while it arrives, with no I/O.

A ``data:`` URL sent in a frame is base64 text, 4/3 of the image: a 5 MB image makes a 7 MB
frame, which aiohttp would hold three times over while assembling it, then once more as
text and again parsed (docs/performance.md, "Issue 16: image memory"). For a text frame
over ``limits.max_frame_bytes`` (only a message with images may be that big),
:class:`FrameImages` is fed the frame's unmasked payload piece by piece instead: every
string that is an element of an array (the only array of a ``message`` is ``images``) and
starts as a base64 ``data:`` URL is decoded as it comes into the image's one buffer and left
out of the text, which keeps a placeholder object ``{"streamed": "<key>"}`` in its place.
The rest of the frame's text (small) is then parsed as any frame is; the session puts each
:class:`DecodedImage` back where its placeholder stands, and ``gateway.images`` checks it as
it checks a ``data:`` URL, with the same words.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

_HEAD = re.compile(rb"data:([^;,\"\\]{0,60});base64,")
_HEAD_MAX = 80  # bytes of a string read before deciding it is no data: URL
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)  # a string's text, escapes whole
_MAX_STRINGS = 256  # strings in a frame read for images (a message has a dozen or so)
_MAX_STRUCTURE = 4096  # bytes between two strings (a message has a few)
_WHITESPACE = b" \t\r\n"


@dataclass(slots=True)
class DecodedImage:
    """A ``data:`` URL decoded while its frame arrived: the declared media type (as sent),
    the size its base64 text stands for, the bytes (None when not strict base64 or over
    the limit, where they were not kept)."""

    declared: str
    size: int = 0
    data: bytearray | None = None
    valid: bool = True


class FrameImages:
    """One frame's payload, fed in order (:meth:`feed`); :meth:`text` then gives the frame
    with its images out, and :attr:`images` the images by placeholder key.

    ``length`` is the payload's size (a bound on every image's), ``max_image_bytes`` the
    most one image may decode to (past it, the rest is only counted), ``prefix`` makes the
    placeholder keys (``prefix:0``, ``prefix:1``...) ones a client cannot guess."""

    def __init__(self, length: int, max_image_bytes: int, prefix: str) -> None:
        self._left = length
        self._max = max_image_bytes
        self._prefix = prefix
        self._text = bytearray()  # the frame without its images
        self._state = "out"  # out | string | escape | head | image | plain
        self._strings = 0
        self._stack = bytearray()  # the open brackets, outside strings
        self._last = 0  # the last structural byte before the current string
        self._head = bytearray()
        self._quote_at = 0
        self._image: DecodedImage | None = None
        self._carry = b""  # base64 characters not yet a multiple of 4
        self._tail = b""  # the last two base64 characters (the padding)
        self._chars = 0  # base64 characters of the current image
        self._at = 0  # bytes of the current image decoded
        self.images: dict[str, DecodedImage] = {}

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        self._left -= end
        while pos < end:
            if self._state == "out":
                pos = self._out(data, pos, end)
            elif self._state == "string":
                pos = self._string(data, pos, end)
            elif self._state == "escape":
                self._text.append(data[pos])
                self._state = "string"
                pos += 1
            elif self._state == "head":
                pos = self._read_head(data, pos, end)
            elif self._state == "image":
                pos = self._image_text(data, pos, end)
            else:  # plain: the rest is copied as it is
                self._text += data[pos:end]
                pos = end

    def text(self) -> bytes:
        """The frame's text with each image replaced by its placeholder."""
        if self._state == "head":  # (an unclosed string: the parse refuses the frame)
            self._text += self._head
        return bytes(self._text)

    # ---------------------------------------------------------------- the states

    def _out(self, data: bytes, pos: int, end: int) -> int:
        quote = data.find(b'"', pos, end)
        stop = end if quote < 0 else quote
        segment = data[pos:stop]
        self._text += segment
        self._strings += quote >= 0
        if len(segment) > _MAX_STRUCTURE or self._strings > _MAX_STRINGS:
            # Not the shape of a message: the rest is left to the parse, which refuses it
            # (what is read here byte by byte stays small whatever a client sends).
            self._text += data[stop:end]
            self._state = "plain"
            return end
        for byte in segment:  # (structure only: short)
            if byte in b"[{":
                self._stack.append(byte)
            elif byte in b"]}" and self._stack:
                self._stack.pop()
        stripped = segment.rstrip(_WHITESPACE)
        if stripped:
            self._last = stripped[-1]
        if quote < 0:
            return end
        self._quote_at = len(self._text)
        self._text.append(0x22)
        in_array = self._stack[-1:] == b"[" and self._last in b"[,"
        self._state = "head" if in_array else "string"
        self._head.clear()
        return quote + 1

    def _string(self, data: bytes, pos: int, end: int) -> int:
        match = _STRING_BODY.match(data, pos, end)
        stop = match.end() if match is not None else pos
        self._text += data[pos:stop]
        if stop == end:
            return end  # (the string goes on)
        self._text.append(data[stop])
        if data[stop] == 0x5C:  # a backslash ending the piece: what it escapes comes next
            self._state = "escape"
        else:  # the closing quote
            self._state, self._last = "out", 0x22
        return stop + 1

    def _read_head(self, data: bytes, pos: int, end: int) -> int:
        held = len(self._head)  # (from earlier pieces: string content, no quote or backslash)
        take = min(end, pos + _HEAD_MAX + 1 - held)
        self._head += data[pos:take]
        match = _HEAD.match(self._head)
        if match is not None:
            # A data: URL: the string leaves the text; a placeholder stands in its place.
            key = f"{self._prefix}:{len(self.images)}"
            del self._text[self._quote_at :]
            self._text += b'{"streamed":"' + key.encode() + b'"}'
            self._image = self.images[key] = DecodedImage(match.group(1).decode("latin-1"))
            self._carry, self._tail, self._chars, self._at = b"", b"", 0, 0
            self._state = "image"
            rest = len(self._head) - match.end()
            self._head.clear()
            return take - rest  # (the base64 after the comma is read as such)
        if len(self._head) <= _HEAD_MAX and not _ended(self._head) and take == end:
            return end  # (the head goes on in the next piece)
        # No data: URL: the string is read as any other, from its start.
        self._text += self._head[:held]
        self._head.clear()
        self._state = "string"
        return pos

    def _image_text(self, data: bytes, pos: int, end: int) -> int:
        image = self._image
        assert image is not None
        quote = data.find(b'"', pos, end)
        stop = end if quote < 0 else quote
        if data.find(b"\\", pos, stop) >= 0:
            image.valid, image.data = False, None  # (an escape: not base64 as browsers send it)
        self._decode(image, data[pos:stop])
        if quote < 0:
            return end
        self._finish(image)
        self._state, self._last = "out", 0x7D
        return quote + 1

    def _decode(self, image: DecodedImage, piece: bytes) -> None:
        self._chars += len(piece)
        self._tail = (self._tail + piece[-2:])[-2:]
        if not image.valid or not piece:
            return
        if image.data is None:
            # The image's one buffer: as big as the rest of the frame could decode to.
            image.data = bytearray(min(self._max, (len(piece) + self._left) * 3 // 4 + 3))
        text = self._carry + piece if self._carry else piece
        cut = len(text) - len(text) % 4
        self._carry = text[cut:]
        if not cut:
            return
        try:
            out = binascii.a2b_base64(text[:cut], strict_mode=True)
        except (binascii.Error, ValueError):
            image.valid, image.data = False, None
            return
        if self._at + len(out) > len(image.data):
            image.valid, image.data = False, None  # (over the limit: the size is still counted)
            return
        image.data[self._at : self._at + len(out)] = out
        self._at += len(out)

    def _finish(self, image: DecodedImage) -> None:
        image.size = self._chars * 3 // 4 - self._tail.count(b"=")
        if self._carry:
            image.valid = False  # (not a multiple of 4)
        if image.data is not None:
            if image.valid and image.size <= self._max:
                del image.data[self._at :]
            else:
                image.data = None
        self._image, self._carry = None, b""


def _ended(head: bytearray) -> bool:
    """Whether the string being read ended (or escaped) within ``head``."""
    return b'"' in head or b"\\" in head
