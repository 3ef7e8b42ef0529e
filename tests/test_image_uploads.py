"""Images uploaded before their message (``POST /api/v1/images``, docs/protocol.md) over a
real server, socket and simulator: checked on the way in, kept with the conversation, named
by a later ``message`` as ``{"id": ...}``, sent upstream as a data: URL image is, and
refused when they are not the conversation's; the same through two instances on Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from gateway import keys
from gateway.llm.dashscope import MULTIMODAL_PATH
from tests.conftest import eventually, make_token
from tests.stores.conftest import instances  # noqa: F401 - the fixture
from tests.test_turn_images import PNG, VISION, bearer, data_url, history

JPEG = b"\xff\xd8\xff\xe0" + bytes(200)


async def upload(gw, conv: str, data: bytes, media_type: str = "image/png", user: str = "alice"):
    """POST the bytes for ``conv`` as ``user``: (status, body)."""
    resp = await gw.client.post(
        "/api/v1/images",
        params={"conversation_id": conv},
        data=data,
        headers={**bearer(user), "Content-Type": media_type},
    )
    return resp.status, await resp.json()


async def test_an_uploaded_image_is_named_by_the_message_and_reaches_upstream(gateway) -> None:
    """201 {id, media_type, bytes}; the message naming it gets the reply that sees it, the
    request carries it, history and user_message list it under that id, kept once."""
    gw = await gateway(VISION)
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    status, body = await upload(gw, conv, PNG)
    assert status == 201
    assert body["media_type"] == "image/png" and body["bytes"] == len(PNG)
    await sock.send(
        type="message", id="c-1", text="What? sim:tokens=3", images=[{"id": body["id"]}]
    )
    echoed = await sock.recv_type("user_message")
    reply = await sock.reply()
    assert reply.text.startswith("I see 1 image (image/png, 1.0 KB)")
    request = gw.sim.state.requests[-1]
    assert request.path == MULTIMODAL_PATH
    assert {"image": data_url(PNG)} in request.body["input"]["messages"][-1]["content"]
    [image] = (await history(gw, conv))[0]["images"]
    assert image == {"id": body["id"], "media_type": "image/png", "bytes": len(PNG)}
    assert echoed["images"] == [image]
    assert len(gw.app[keys.BACKENDS].images) == 1  # type: ignore[arg-type]
    resp = await gw.client.get(f"/api/v1/images/{body['id']}", headers=bearer("alice"))
    assert resp.status == 200 and await resp.read() == PNG


async def test_uploaded_and_data_url_images_go_in_one_message(gateway) -> None:
    """A message may mix an uploaded image and a data: URL; both go upstream in order."""
    gw = await gateway(VISION)
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    _, body = await upload(gw, conv, JPEG, "image/jpeg")
    await sock.send(
        type="message",
        id="c-1",
        text="Two sim:tokens=3",
        images=[{"id": body["id"]}, data_url(PNG)],
    )
    reply = await sock.reply()
    assert reply.text.startswith("I see 2 images (image/jpeg")
    content = gw.sim.state.requests[-1].body["input"]["messages"][-1]["content"]
    images = [item["image"] for item in content if "image" in item]
    assert images == [data_url(JPEG, "image/jpeg"), data_url(PNG)]


REFUSED = [
    ("bmp type", "", b"BM" + bytes(100), "image/bmp", "is not accepted"),
    ("magic mismatch", "", JPEG, "image/png", "declared image/png"),
    ("not an image", "", b"hello world", "image/png", "not a png"),
    ("too big", "[limits]\nmax_image_bytes = 1000\n", PNG, "image/png", "the limit is 1000"),
    ("vision off", "[assistants.default]\nvision = false\n", PNG, "image/png", "takes no images"),
]


@pytest.mark.parametrize(
    ("toml", "data", "media_type", "says"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
async def test_a_bad_upload_is_refused_with_bad_image_and_nothing_kept(
    gateway, toml: str, data: bytes, media_type: str, says: str
) -> None:
    """Each refused upload: 422 bad_image naming the problem; no image is kept."""
    gw = await gateway(toml)
    sock = await gw.chat(token=make_token("alice"))
    status, body = await upload(gw, sock.connected["conversation_id"], data, media_type)
    assert (status, body["error"]["code"]) == (422, "bad_image")
    assert says in body["error"]["message"]
    assert len(gw.app[keys.BACKENDS].images) == 0  # type: ignore[arg-type]


async def test_an_upload_needs_a_conversation_the_caller_may_write_in(gateway) -> None:
    """404 for no such conversation, 403 for someone else's; nothing kept."""
    gw = await gateway(VISION)
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    status, body = await upload(gw, "c-nosuchconversation", PNG)
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await upload(gw, conv, PNG, user="mallory")
    assert status == 403
    assert len(gw.app[keys.BACKENDS].images) == 0  # type: ignore[arg-type]


async def test_a_cookie_upload_needs_this_sites_origin(gateway) -> None:
    """The anonymous cookie's upload: 403 from another site's Origin, 201 from this one's."""
    gw = await gateway(VISION)
    sock = await gw.chat()
    conv = sock.connected["conversation_id"]
    assert "gw_anon" in gw.client.session.cookie_jar.filter_cookies(gw.client.make_url("/"))
    headers = {"Content-Type": "image/png"}  # (the client's jar sends the cookie)
    url, params = "/api/v1/images", {"conversation_id": conv}
    evil = await gw.client.post(
        url, params=params, data=PNG, headers={**headers, "Origin": "https://evil.example"}
    )
    assert evil.status == 403
    own = str(gw.client.make_url("/")).rstrip("/")
    good = await gw.client.post(url, params=params, data=PNG, headers={**headers, "Origin": own})
    assert good.status == 201


async def test_a_message_naming_an_image_not_uploaded_here_is_refused(gateway) -> None:
    """An unknown id, or one uploaded for another conversation: bad_image, nothing upstream."""
    gw = await gateway(VISION)
    alice = await gw.chat(token=make_token("alice"))
    other = await gw.chat(token=make_token("alice"))
    _, body = await upload(gw, other.connected["conversation_id"], PNG)
    for n, image_id in enumerate(("i-nosuchimage0000", body["id"])):
        await alice.send(type="message", id=f"c-{n}", text="x", images=[{"id": image_id}])
        err = await alice.recv_type("error")
        assert (err["code"], err["reply_to"]) == ("bad_image", f"c-{n}")
        assert "no uploaded image" in err["message"]
    assert gw.sim.state.requests == []
    assert await history(gw, alice.connected["conversation_id"]) == []


@pytest.mark.parametrize("bad", [{"id": 5}, {"url": "x"}, {"id": "bad id!"}, 7])
async def test_an_images_item_of_another_shape_is_refused(gateway, bad) -> None:
    """An item neither a string nor {"id": <an id>}: bad_image before anything is spent."""
    gw = await gateway(VISION)
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="x", images=[bad])
    err = await sock.recv_type("error")
    assert err["code"] == "bad_image" and gw.sim.state.requests == []


async def test_deleting_the_conversation_deletes_an_uploaded_image(gateway) -> None:
    """An image uploaded and never sent goes with its conversation."""
    gw = await gateway(VISION)
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    await sock.ask("hello sim:tokens=2", "c-1")  # (a conversation with history: listed)
    _, body = await upload(gw, conv, PNG)
    resp = await gw.client.delete(f"/api/v1/conversations/{conv}", headers=bearer("alice"))
    assert resp.status in (200, 204)
    resp = await gw.client.get(f"/api/v1/images/{body['id']}", headers=bearer("alice"))
    assert resp.status == 404


async def test_an_image_uploaded_to_one_instance_is_sent_from_another(instances) -> None:  # noqa: F811
    """With Redis, the upload on instance a and the message on instance b: the reply sees it."""
    a, b = await instances(VISION)
    sock = await b.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    status, body = await upload(a, conv, PNG)
    assert status == 201
    await sock.send(
        type="message", id="c-1", text="What? sim:tokens=3", images=[{"id": body["id"]}]
    )
    reply = await sock.reply()
    assert reply.text.startswith("I see 1 image (image/png, 1.0 KB)")
    [image] = (await history(b, conv))[0]["images"]
    assert image["id"] == body["id"]


# -- pending uploads (no message has named them yet): a cap per conversation and a TTL ----

PENDING = VISION + "[limits]\nmax_images_per_message = 2\nmax_pending_images = 2\n"


@pytest.fixture(params=["memory", "redis"])
def one_gateway(request, gateway):
    """``await one_gateway(toml)``: one instance, in memory or on a real redis-server."""
    if request.param == "memory":
        return gateway
    make = request.getfixturevalue("instances")

    async def started(toml: str):
        [gw] = await make(toml, names=("a",))
        return gw

    return started


async def stored_images(gw) -> int:
    """How many images the instance's store holds (memory: its dict; Redis: image keys)."""
    config = gw.app[keys.CONFIG]
    if not config.redis.url:
        return len(gw.app[keys.BACKENDS].images)
    client = aioredis.from_url(config.redis.url.reveal())
    try:
        return len([key async for key in client.scan_iter(f"{config.redis.key_prefix}image:*")])
    finally:
        await client.aclose()


async def test_uploads_past_the_pending_cap_are_refused_until_a_message_names_some(
    one_gateway,
) -> None:
    """The third pending upload: 429 too_many_uploads with Retry-After, nothing stored; once
    a message names the two, two more are accepted (named ones no longer count)."""
    gw = await one_gateway(PENDING)
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    ids = [(await upload(gw, conv, PNG))[1]["id"] for _ in range(2)]
    resp = await gw.client.post(
        "/api/v1/images",
        params={"conversation_id": conv},
        data=JPEG,
        headers={**bearer("alice"), "Content-Type": "image/jpeg"},
    )
    error = (await resp.json())["error"]
    assert (resp.status, error["code"]) == (429, "too_many_uploads")
    assert "2 images uploaded" in error["message"]
    assert 1 <= error["retry_after_s"] <= 600 and resp.headers["Retry-After"]
    assert await stored_images(gw) == 2
    await sock.send(
        type="message", id="c-1", text="Two sim:tokens=2", images=[{"id": i} for i in ids]
    )
    assert (await sock.reply()).text.startswith("I see 2 images")
    assert [(await upload(gw, conv, PNG))[0] for _ in range(3)] == [201, 201, 429]
    assert await stored_images(gw) == 4


async def test_a_refused_upload_frees_its_pending_slot(one_gateway) -> None:
    """An upload refused after its slot was taken (bad bytes) does not count: with room
    for two, two bad then two good uploads, and only then 429."""
    gw = await one_gateway(PENDING)
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    assert [(await upload(gw, conv, b"hello world"))[0] for _ in range(2)] == [422, 422]
    assert [(await upload(gw, conv, PNG))[0] for _ in range(3)] == [201, 201, 429]
    assert await stored_images(gw) == 2


async def test_an_upload_not_named_in_time_expires_and_no_longer_counts(one_gateway) -> None:
    """Past limits.pending_image_ttl_s an unnamed upload is gone (404, not counted); a
    message naming it gets bad_image saying uploads expire; one named in time stays."""
    gw = await one_gateway(PENDING + "pending_image_ttl_s = 0.4\n")
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    _, named = await upload(gw, conv, PNG)
    await sock.send(type="message", id="c-1", text="x sim:tokens=2", images=[{"id": named["id"]}])
    await sock.reply()
    _, first = await upload(gw, conv, PNG)
    _, second = await upload(gw, conv, PNG)
    assert (await upload(gw, conv, PNG))[0] == 429

    async def gone() -> bool:
        resp = await gw.client.get(f"/api/v1/images/{second['id']}", headers=bearer("alice"))
        return resp.status == 404

    await eventually(gone, timeout=5)
    await sock.send(type="message", id="c-2", text="y", images=[{"id": first["id"]}])
    err = await sock.recv_type("error")
    assert (err["code"], err["reply_to"]) == ("bad_image", "c-2")
    assert "no uploaded image" in err["message"] and "expires after 0.4 s" in err["message"]
    assert len(gw.sim.state.requests) == 1  # (only the first message went upstream)
    assert [(await upload(gw, conv, PNG))[0] for _ in range(3)] == [201, 201, 429]
    resp = await gw.client.get(f"/api/v1/images/{named['id']}", headers=bearer("alice"))
    assert resp.status == 200  # (named in time: it lives with the conversation)
    assert await stored_images(gw) == 3
