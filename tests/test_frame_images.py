"""Images decoded out of a large frame while it arrives (gateway.frame_images, and the mask
check that feeds it): the same text and images however the bytes are split, only array
elements that are base64 data: URLs taken out, refusals kept for the checks, and the
memory held: about the image, not the frame several times over."""

from __future__ import annotations

import base64
import json
import os
import random
import tracemalloc

import pytest

from gateway import protocol
from gateway.config import LimitsConfig
from gateway.errors import BadImage
from gateway.frame_images import DecodedImage, FrameImages
from gateway.framing import LargeFrames, MaskCheck
from gateway.images import check_images, with_streamed_images
from tests.handlers.test_masking import frame
from tests.test_framing import Collected

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(2000)


def url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def scan(payload: bytes, pieces: list[int], max_bytes: int = 10**6) -> FrameImages:
    images = FrameImages(len(payload), max_bytes, "k")
    at = 0
    for size in pieces:
        images.feed(payload[at : at + size])
        at += size
    images.feed(payload[at:])
    return images


def splits(payload: bytes) -> list[list[int]]:
    """No split, one byte at a time through the start, and a few random ones."""
    rng = random.Random(7)
    return [
        [],
        [1] * 200,
        *[[rng.randint(1, 400) for _ in range(30)] for _ in range(8)],
    ]


MESSAGE = {
    "type": "message",
    "id": "c-1",
    "text": 'says "data:image/png;base64,AAAA" \\ and [brackets, "quotes"]',
    "images": [url(PNG), "https://example.com/a.png", url(JPEG, "image/jpeg")],
}


@pytest.mark.parametrize("pieces", splits(json.dumps(MESSAGE).encode()))
def test_the_images_leave_the_text_however_it_is_split(pieces: list[int]) -> None:
    """Each base64 data: URL of the array becomes a placeholder and its decoded bytes; the
    text field (even one that looks like a data: URL) and an https URL stay as they were."""
    images = scan(json.dumps(MESSAGE).encode(), pieces)
    text = json.loads(images.text())
    assert text["text"] == MESSAGE["text"]
    assert text["images"] == [
        {"streamed": "k:0"},
        "https://example.com/a.png",
        {"streamed": "k:1"},
    ]
    first, second = images.images["k:0"], images.images["k:1"]
    assert (first.declared, bytes(first.data or b""), first.size) == ("image/png", PNG, len(PNG))
    assert (second.declared, bytes(second.data or b"")) == ("image/jpeg", JPEG)


def test_json_escapes_and_spacing_outside_the_images_are_kept() -> None:
    """Escaped quotes and backslashes in other strings, and spaces around the array, do not
    confuse the reading."""
    payload = (
        '{ "type" : "message", "id":"c-\\"2\\\\", "text":"a\\"b",'
        f' "images" : [ "{url(PNG)}" , "{url(PNG)}" ] }}'
    ).encode()
    for pieces in splits(payload):
        images = scan(payload, pieces)
        parsed = json.loads(images.text())
        assert parsed["id"] == 'c-"2\\' and parsed["text"] == 'a"b'
        assert parsed["images"] == [{"streamed": "k:0"}, {"streamed": "k:1"}]


BAD = [
    ("bad base64", url(PNG)[:-8] + "!!!!" + url(PNG)[-4:], "not valid base64"),
    ("length not a multiple of 4", url(PNG) + "A", "not valid base64"),
    ("too big", url(PNG), "3008 bytes; the limit is 1000 bytes"),
    ("magic mismatch", url(JPEG, "image/png"), "declared image/png but the data is image/jpeg"),
    ("not an image", url(b"hello world" * 10), "not a png"),
    ("type not accepted", url(PNG, "image/bmp"), "is not accepted"),
    ("empty", "data:image/png;base64,", "empty"),
]


@pytest.mark.parametrize(("value", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_image_is_refused_as_the_same_data_url_in_a_small_frame_is(
    value: str, says: str
) -> None:
    """Decoded as it arrives or after the parse, a bad image gets the same bad_image words."""
    limits = LimitsConfig(max_image_bytes=1000 if "limit" in says else 5 * 1024 * 1024)
    payload = json.dumps({"type": "message", "id": "c-1", "text": "", "images": [value]}).encode()
    images = scan(payload, [50, 7, 300], limits.max_image_bytes)
    msg = protocol.parse_client_frame(images.text())
    assert isinstance(msg, protocol.Message)
    streamed = with_streamed_images(msg, images.images)
    with pytest.raises(BadImage) as decoded:
        check_images(streamed.images, limits)
    with pytest.raises(BadImage) as whole:
        check_images((value,), limits)
    assert str(decoded.value) == str(whole.value) and says in str(decoded.value)


def test_a_placeholder_the_socket_did_not_leave_is_no_image() -> None:
    """A client's own {"streamed": ...} is refused with bad_image."""
    msg = protocol.parse_client_frame(
        '{"type":"message","id":"c-1","text":"x","images":[{"streamed":"k:0"}]}'
    )
    assert isinstance(msg, protocol.Message)
    with pytest.raises(BadImage, match="image 1: must be a data: URL"):
        check_images(with_streamed_images(msg, {}).images, LimitsConfig())


LARGE = LargeFrames(above=1000, limit=8 * 1024 * 1024, max_image_bytes=5 * 1024 * 1024)


def test_the_mask_check_hands_the_reader_the_text_and_keeps_the_images() -> None:
    """Small frames pass as they are; a large text frame reaches the reader unmasked, its
    image a placeholder, and claim() gives the decoded image once, however it is split."""
    small = frame(b'{"type":"ping"}')
    big = json.dumps({"type": "message", "id": "c-1", "text": "x", "images": [url(PNG)]})
    stream = small + frame(big.encode()) + small
    rng = random.Random(3)
    for cuts in [
        [],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [rng.randint(1, 900) for _ in range(9)],
    ]:
        seen = Collected()
        check = MaskCheck(seen, seen, LARGE)
        at = 0
        for size in [*cuts, len(stream)]:
            check.feed_data(stream[at : at + size])
            at += size
        assert seen.data.startswith(small) and seen.data.endswith(small)
        middle = seen.data[len(small) : -len(small)]
        assert middle[0] == 0x81 and not middle[1] & 0x80  # (final text, unmasked)
        text = middle[2:].decode()
        [key] = json.loads(text)["images"][0].values()
        claimed = check.claim(text)
        assert bytes(claimed[key].data or b"") == PNG
        assert check.claim(text) == {} and not check.streamed


def test_a_large_frame_costs_about_its_image_not_the_frame() -> None:
    """A 2 MB image in a 2.7 MB frame, fed in 64 KB reads: the most held at once is under
    1.3 x the image (the frame whole would be 1.33 x, the image besides 2.33 x)."""
    image = b"\x89PNG\r\n\x1a\n" + os.urandom(2 * 1024 * 1024)
    payload = json.dumps({"type": "message", "id": "c-1", "text": "x", "images": [url(image)]})
    stream = frame(payload.encode())
    reads = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    del payload, stream
    seen = Collected()
    check = MaskCheck(seen, seen, LARGE)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        while reads:
            check.feed_data(reads.pop(0))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert check.streamed is not None
    [decoded] = check.streamed.values()
    assert isinstance(decoded, DecodedImage) and bytes(decoded.data or b"") == image
    assert peak < 1.3 * len(image)


BIG_PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(100_000)


async def test_a_large_frames_image_reaches_upstream_and_history_whole(gateway) -> None:
    """Over a real socket, a 100 KB png in a frame over max_frame_bytes: the reply sees it,
    the request carries the same data: URL, history keeps its bytes."""
    from gateway import keys
    from tests.test_turn_images import VISION, history

    gw = await gateway(VISION)
    sock = await gw.chat()
    await sock.send(
        type="message", id="c-1", text="What? sim:tokens=3", images=[url(BIG_PNG), url(PNG)]
    )
    reply = await sock.reply()
    assert reply.text.startswith("I see 2 images (image/png, 97.7 KB; image/png, 2.9 KB)")
    content = gw.sim.state.requests[-1].body["input"]["messages"][-1]["content"]
    assert [item["image"] for item in content if "image" in item] == [url(BIG_PNG), url(PNG)]
    first, _ = (await history(gw, sock.connected["conversation_id"]))[0]["images"]
    kept = await gw.app[keys.BACKENDS].images.get(first["id"])
    assert kept is not None and bytes(kept.data) == BIG_PNG


async def test_a_bad_image_in_a_large_frame_gets_bad_image_and_nothing_upstream(gateway) -> None:
    """A large frame's image that is not what it says: bad_image naming it; the socket stays."""
    from tests.test_turn_images import VISION

    gw = await gateway(VISION)
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="x", images=[url(BIG_PNG, "image/jpeg")])
    err = await sock.recv_type("error")
    assert (err["code"], err["reply_to"]) == ("bad_image", "c-1")
    assert "image 1: declared image/jpeg but the data is image/png" in err["message"]
    assert gw.sim.state.requests == []
    await sock.ask("still here sim:tokens=2 sim:delay_ms=0", "c-2")


async def test_a_large_frame_with_an_image_before_auth_still_closes_1009(gateway) -> None:
    """Before the auth frame, a frame carrying an image is too big, as any large one is."""
    from tests.test_turn_images import VISION

    gw = await gateway(VISION + "[auth]\nrequired = true\n")
    sock = await gw.connect(auth="frame")
    await sock.send(type="message", id="c-1", text="x", images=[url(BIG_PNG)])
    assert await sock.closed() == (1009, "message too big")
