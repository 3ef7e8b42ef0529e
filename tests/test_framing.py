"""The mask check follows frame headers across any split of the byte stream."""

from __future__ import annotations

from aiohttp import WebSocketError

from gateway.framing import MaskCheck
from tests.handlers.test_masking import frame


class Collected:
    """Stands in for aiohttp's reader and its queue: keeps what it is fed."""

    def __init__(self) -> None:
        self.data = b""
        self.error: BaseException | None = None

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.data += data
        return False, b""

    def set_exception(self, exc: BaseException) -> None:
        self.error = exc


STREAM = frame(b"a" * 5) + frame(b"b" * 300) + frame(b"c" * 70_000) + frame(b"", opcode=9)


def test_masked_frames_pass_whole_however_the_stream_is_split() -> None:
    """Every two-way split, and byte by byte through the headers: all passed on, none failed."""
    for cut in [*range(0, 30), 310, 318, 70_300, len(STREAM) - 1]:
        seen = Collected()
        check = MaskCheck(seen, seen)
        for chunk in (STREAM[:cut], STREAM[cut:]):
            assert check.feed_data(chunk) == (False, b"")
        assert seen.data == STREAM and not check.failed
    seen = Collected()
    check = MaskCheck(seen, seen)
    for i in range(len(STREAM[:400])):
        check.feed_data(STREAM[i : i + 1])
    assert seen.data == STREAM[:400] and not check.failed


def test_an_unmasked_header_anywhere_stops_the_stream_with_1002() -> None:
    """A header without the mask bit, even split over chunks: the queue gets a 1002 error
    and neither that chunk nor any later one reaches the reader."""
    bad = frame(b"x" * 200, masked=False)
    for cut in (len(STREAM) + 1, len(STREAM) + 2, len(STREAM) + 3):
        seen = Collected()
        check = MaskCheck(seen, seen)
        stream = STREAM + bad
        check.feed_data(stream[:cut])
        assert check.feed_data(stream[cut:]) == (True, b"")
        assert check.feed_data(frame(b"later")) == (True, b"")
        assert isinstance(seen.error, WebSocketError) and seen.error.code == 1002
        assert check.failed and not seen.data.endswith(b"later")
