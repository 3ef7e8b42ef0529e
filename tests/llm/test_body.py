"""The request body: JSON with images base64-encoded piece by piece while it is written."""

from __future__ import annotations

import base64
import json
import tracemalloc

from gateway.llm.body import JsonBody
from gateway.llm.events import Image


class Collect:
    """A writer that keeps what it is given (or only counts it)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep, self.chunks, self.size = keep, [], 0

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.keep:
            self.chunks.append(bytes(chunk))


async def test_images_become_data_urls_and_the_size_is_exact() -> None:
    """The written body is the JSON with each image's data: URL; size matches; it can be
    written twice (a retry)."""
    images = [Image("image/png", bytes(range(256)) * 7 + b"x"), Image(url="https://x.test/a.png")]
    value = {"m": [{"image": images[0]}, {"image": images[1]}, {"text": 'naïve «quote» "q"'}]}
    body = JsonBody(value)
    for _ in range(2):
        writer = Collect()
        await body.write(writer)  # type: ignore[arg-type]
        raw = b"".join(writer.chunks)
        assert len(raw) == body.size
        parsed = json.loads(raw)
        assert parsed["m"][0]["image"] == images[0].reference()
        assert parsed["m"][1]["image"] == "https://x.test/a.png"
        assert parsed["m"][2]["text"] == 'naïve «quote» "q"'
    assert json.loads(body.decode()) == parsed
    assert base64.b64decode(parsed["m"][0]["image"].split(",")[1]) == images[0].data


async def test_a_five_megabyte_image_is_sent_without_a_copy_of_it() -> None:
    """Writing a body with a 5 MB image allocates far less than the image's size."""
    image = Image("image/jpeg", bytes(5_000_000))
    tracemalloc.start()
    try:
        body = JsonBody({"input": {"messages": [{"content": [{"image": image}, {"text": "hi"}]}]}})
        writer = Collect(keep=False)
        await body.write(writer)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert writer.size == body.size > 6_600_000
    assert peak < 500_000, peak


async def test_adjacent_images_and_a_body_without_images_are_written_exactly() -> None:
    """Two images side by side keep their order and the JSON between them; a body with no
    image is its JSON text as it is."""
    first, second = Image("image/png", b"\x89PNG-one"), Image("image/gif", b"GIF89a-two")
    body = JsonBody({"content": [{"image": first}, {"image": second}], "t": "x"})
    writer = Collect()
    await body.write(writer)  # type: ignore[arg-type]
    parsed = json.loads(b"".join(writer.chunks))
    assert [item["image"] for item in parsed["content"]] == [first.reference(), second.reference()]
    assert parsed["t"] == "x"
    plain = {"input": {"messages": [{"role": "user", "content": 'say "image-0"'}]}}
    writer = Collect()
    await JsonBody(plain).write(writer)  # type: ignore[arg-type]
    assert json.loads(b"".join(writer.chunks)) == plain
