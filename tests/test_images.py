"""The image checks, with plain values: types by magic bytes, sizes, counts, schemes, and
which frames may pass the text frame limit."""

from __future__ import annotations

import base64

import pytest

from gateway.config import LimitsConfig
from gateway.errors import BadImage
from gateway.images import check_images, frame_too_big, sniff
from gateway.llm.events import Image
from gateway.protocol import Message, Ping

PNG = b"\x89PNG\r\n\x1a\n" + bytes(30)
GIF = b"GIF89a" + bytes(30)
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(20)
JPEG = b"\xff\xd8\xff\xdb" + bytes(30)


def url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize(
    ("data", "media_type"),
    [(PNG, "image/png"), (GIF, "image/gif"), (WEBP, "image/webp"), (JPEG, "image/jpeg")],
)
def test_each_accepted_type_is_known_by_its_magic_bytes(data: bytes, media_type: str) -> None:
    """png, gif, webp and jpeg decode to their bytes and type."""
    assert sniff(data) == media_type
    assert check_images([url(data, media_type)], LimitsConfig()) == (Image(media_type, data),)


def test_the_declared_type_is_matched_case_insensitively() -> None:
    """data:IMAGE/PNG is image/png."""
    [image] = check_images([url(PNG, "IMAGE/PNG")], LimitsConfig())
    assert image.media_type == "image/png"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (url(PNG, "image/svg+xml"), "is not accepted"),
        (url(GIF, "image/png"), "declared image/png but the data is image/gif"),
        (url(b"<svg/>", "image/png"), "not a png, jpeg, webp or gif"),
        ("data:image/png;base64,", "empty"),
        ("data:image/png," + "x" * 10, "must be a base64 data: URL"),
        ("data:image/png;base64,AAA=====", "not valid base64"),
        ("data:image/png;base64,ü", "not valid base64"),
        ("https://example.com/a.png", "not accepted here"),
        ("http://example.com/a.png", "must be a data: URL"),
    ],
)
def test_a_bad_image_is_refused_naming_the_problem(value: str, says: str) -> None:
    """Each malformed or unaccepted image raises BadImage whose message says why."""
    with pytest.raises(BadImage, match="image 1: ") as caught:
        check_images([value], LimitsConfig())
    assert says in caught.value.message


def test_the_size_is_checked_before_decoding() -> None:
    """An image over max_image_bytes is refused by its text's length."""
    limits = LimitsConfig(max_image_bytes=len(PNG) - 1)
    with pytest.raises(BadImage, match=f"{len(PNG)} bytes; the limit is {len(PNG) - 1}"):
        check_images([url(PNG, "image/png")], limits)
    assert check_images([url(PNG, "image/png")], LimitsConfig(max_image_bytes=len(PNG)))


def test_the_count_and_vision_are_checked_first() -> None:
    """Five images, or any image for an assistant without vision, are refused."""
    with pytest.raises(BadImage, match="5 images; the limit is 4"):
        check_images([url(PNG, "image/png")] * 5, LimitsConfig())
    with pytest.raises(BadImage, match="takes no images"):
        check_images([url(PNG, "image/png")], LimitsConfig(), vision=False)
    assert check_images([], LimitsConfig(), vision=False) == ()


def test_an_https_url_passes_as_is_where_allowed() -> None:
    """allow_image_urls: an https:// URL becomes an Image with that url; the second image is
    the one named when it is bad."""
    limits = LimitsConfig(allow_image_urls=True)
    assert check_images(["https://x.test/a.png"], limits) == (Image(url="https://x.test/a.png"),)
    with pytest.raises(BadImage, match="image 2: not a usable"):
        check_images(["https://x.test/a.png", "https://"], limits)


def test_only_a_message_with_images_passes_the_text_frame_limit() -> None:
    """frame_too_big: small frames pass; a big one passes only when it carries images."""
    assert not frame_too_big("x" * 100, 1000)
    assert not frame_too_big("é" * 400, 1000)  # 800 bytes
    assert frame_too_big("é" * 600, 1000)  # 1200 bytes
    big = '{"type":"message","images":["..."],"text":"' + "x" * 2000 + '"}'
    assert not frame_too_big(big, 1000)  # may be a message with images: parse it
    assert not frame_too_big(big, 1000, Message("c-1", "x", images=("data:",)))
    assert frame_too_big(big, 1000, Message("c-1", "x"))
    assert frame_too_big(big, 1000, Ping())
    assert frame_too_big("x" * 2000, 1000)
