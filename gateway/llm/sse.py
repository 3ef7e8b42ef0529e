"""A pure Server-Sent Events decoder: bytes in, events out, no I/O.

Follows the WHATWG event-stream rules: LF, CRLF and CR line ends (a CR at the end of one
chunk and an LF at the start of the next are one line end), comments, fields without a
colon, one leading space after the colon removed, multi-line ``data`` joined with LF, a BOM
at the start ignored. Lines are decoded as UTF-8 only once whole, so a chunk may end
anywhere, even inside a character; invalid bytes become U+FFFD, never an exception.

A stream that ends without the blank line after its last event: :meth:`SSEDecoder.close`
returns that event when its ``data`` is complete JSON (an object), its last line read with
or without a line end; otherwise it is dropped, as the spec says. The dashscope SDK reads
such a final ``data:`` line too (it acts on each ``data:`` line as it arrives), and a cut
connection leaves a JSON text unfinished, so the check tells the two apart.

DashScope puts the HTTP status of an event in a comment (``:HTTP_STATUS/429``); it is kept
as :attr:`SSEEvent.status`.

There is no line-length limit (cumulative replies send lines of several MB), and no
quadratic rescanning: the buffer is scanned once, from where the last scan stopped, and
consumed lines are dropped in one slice per :meth:`SSEDecoder.feed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

_STATUS_COMMENT = b":HTTP_STATUS/"


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event: its type, joined ``data`` lines, ``id``, ``retry``, and the
    HTTP status a DashScope ``:HTTP_STATUS/nnn`` comment carried."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    status: int | None = None


def _find_colon(raw: memoryview) -> int:
    """Index of the first ``:`` (field names are short: look at the head only)."""
    head = raw[:32].tobytes()
    index = head.find(b":")
    if index >= 0 or len(raw) <= 32:
        return index
    return raw.tobytes().find(b":")  # an unusually long name: rare


_FAST_MAX = 1 << 20  # bytes of complete lines the fast path copies at once


class SSEDecoder:
    """Server-Sent Events, sans I/O: ``feed(bytes)`` returns the events completed by those
    bytes (any split, CR/LF/CRLF line ends, comments skipped); ``close()`` returns a final
    event the stream ended without its blank line, when it is a whole JSON ``data:`` line."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for a line end
        self._skip_lf = False  # the last line ended with CR: an LF next is part of it
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self._status: int | None = None
        self._has_fields = False

    @property
    def pending(self) -> bool:
        """True when bytes or fields of an unfinished event are held (a truncated stream)."""
        return bool(self._buf) or self._has_fields

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; return the events it completed."""
        if not chunk:
            return []
        buf = self._buf
        if (
            not buf
            and self._started
            and not self._skip_lf
            and chunk[-1] == 0x0A
            and len(chunk) <= _FAST_MAX
            and b"\r" not in chunk
        ):
            # The usual read: whole LF-ended lines and nothing held over, so the chunk is
            # split as it is, without a copy into the buffer.
            events: list[SSEEvent] = []
            lines = chunk.split(b"\n")
            lines.pop()  # after the last LF: empty
            self._fast_lines(lines, events)
            return events
        buf += chunk
        if not self._started:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(bytes(buf)):
                return []
            if buf.startswith(b"\xef\xbb\xbf"):
                del buf[:3]
            self._started = True
        events = []
        start = 0
        if self._skip_lf and buf[:1] == b"\n":
            start = 1
        self._skip_lf = False
        # Fast path, the usual stream: LF-only line ends and lines of ordinary size. The
        # complete lines are split in C and the common fields read with bytes tests; a CR,
        # or a region so large that copying it would double a multi-MB event, takes the
        # general scan below (which decodes each line once, from a view).
        last_lf = buf.rfind(b"\n", max(start, self._scanned))
        if 0 <= last_lf - start <= _FAST_MAX and buf.find(b"\r", start, last_lf) < 0:
            self._fast_lines(buf[start:last_lf].split(b"\n"), events)
            start = last_lf + 1
        pos = max(start, self._scanned)
        end = len(buf)
        while pos < end:
            cr = buf.find(b"\r", pos)
            lf = buf.find(b"\n", pos)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                line_end, next_start = lf, lf + 1
            else:
                line_end = cr
                if cr + 1 < end:
                    next_start = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    next_start = cr + 1
                    self._skip_lf = True
            with memoryview(buf) as view:  # released before the buffer is resized below
                self._line(view[start:line_end], events)
            start = pos = next_start
        if start:
            del buf[:start]
        self._scanned = len(buf)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: the event that lacked its blank line, when its data is a complete
        JSON object (see the module docstring); otherwise nothing."""
        events: list[SSEEvent] = []
        if self._buf and not self._skip_lf:
            with memoryview(self._buf) as view:  # the last line, without its line end
                self._line(view, events)
        self._buf.clear()
        self._scanned = 0
        if self._data and not events:
            try:
                whole = isinstance(json.loads("\n".join(self._data)), dict)
            except ValueError:
                whole = False
            if whole:
                self._dispatch(events)
        self._data = []
        self._has_fields = False
        return events

    # ------------------------------------------------------------------ lines

    def _fast_lines(self, lines: list[bytes] | list[bytearray], events: list[SSEEvent]) -> None:
        """Complete lines of the fast path: ``data``, blank lines, ``event``, ``id`` and
        comments read here, anything else by the general rules of :meth:`_line`."""
        for line in lines:
            if not line:
                self._dispatch(events)
                continue
            first = line[0]
            if first == 0x64 and line.startswith(b"data:"):  # d
                self._has_fields = True
                self._data.append(line[6 if line[5:6] == b" " else 5 :].decode("utf-8", "replace"))
            elif first == 0x65 and line.startswith(b"event:"):  # e
                self._has_fields = True
                self._event = line[7 if line[6:7] == b" " else 6 :].decode("utf-8", "replace")
            elif first == 0x3A:  # ":" a comment
                self._comment(line)
            elif first == 0x69 and line.startswith(b"id:"):  # i
                self._has_fields = True
                value = line[4 if line[3:4] == b" " else 3 :]
                if b"\0" not in value:
                    self._id = value.decode("utf-8", "replace")
            else:
                with memoryview(line) as view:
                    self._line(view, events)

    def _comment(self, line: bytes | bytearray | memoryview) -> None:
        """A comment line (``:`` first); DashScope's ``:HTTP_STATUS/429`` carries the
        event's HTTP status, read in bytes (an ASCII number) on both paths."""
        if line[: len(_STATUS_COMMENT)] == _STATUS_COMMENT:
            code = bytes(line[len(_STATUS_COMMENT) :]).strip()
            if code.isdigit():
                self._status = int(code)
                self._has_fields = True

    def _line(self, raw: memoryview, events: list[SSEEvent]) -> None:
        """One line: the field name is split off in bytes, so a long value is decoded once."""
        if not raw:
            self._dispatch(events)
            return
        if raw[0] == 0x3A:  # ":" a comment
            self._comment(raw)
            return
        colon = _find_colon(raw)
        if colon < 0:
            name, value = str(raw, "utf-8", "replace"), ""
        else:
            name = str(raw[:colon], "utf-8", "replace")
            skip = colon + 2 if colon + 1 < len(raw) and raw[colon + 1] == 0x20 else colon + 1
            value = str(raw[skip:], "utf-8", "replace")
        self._has_fields = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._id is not None:
            self._last_id = self._id
        if self._data:
            events.append(
                SSEEvent(
                    self._event or "message",
                    "\n".join(self._data),
                    self._last_id,
                    self._retry,
                    self._status,
                )
            )
        self._data = []
        self._event = ""
        self._id = None
        self._retry = None
        self._status = None
        self._has_fields = False
