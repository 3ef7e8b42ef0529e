"""Images in Redis: kept as bytes with the conversation's TTL, renewed, dropped; and a turn
with an image on two instances sharing Redis."""

from __future__ import annotations

import base64

import pytest

from gateway import keys
from gateway.conversations import HistoryMessage, ImageRef
from gateway.stores.conversations_redis import RedisConversationStore
from gateway.stores.images import StoredImage
from gateway.stores.images_redis import RedisImageStore
from gateway.stores.redis_client import KeySpace
from tests.conftest import make_token

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # every byte value: no text decoding survives


@pytest.fixture
async def client(redis_server):
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def test_an_image_is_kept_as_bytes_with_a_ttl_and_dropped_with_its_conversation(
    client,
) -> None:
    """put/get/get_many give the exact bytes; keys expire; drop_conversation removes them."""
    store = RedisImageStore(client, KeySpace("t:"), ttl_s=60)
    try:
        await store.put("i-1", StoredImage("c1", "image/png", PNG))
        await store.put("i-2", StoredImage("c1", "image/png", PNG[:20]))
        assert await store.get("i-1") == StoredImage("c1", "image/png", PNG)
        assert set(await store.get_many(["i-1", "i-2", "i-none"])) == {"i-1", "i-2"}
        assert 0 < await client.ttl("t:image:{i-1}") <= 60
        await client.expire("t:image:{i-1}", 5)
        await store.touch("c1")
        assert await client.ttl("t:image:{i-1}") > 5
        await store.drop_conversation("c1")
        assert await store.get("i-1") is None and await store.get("i-2") is None
        assert await client.exists("t:conv:{c1}:images") == 0
    finally:
        await store.aclose()


async def test_history_keeps_a_messages_image_refs_in_redis(client) -> None:
    """A user message's images survive the Redis conversation store's round trip."""
    store = RedisConversationStore(client, KeySpace("t:"), max_messages=10, ttl_s=60)
    conv = await store.create("c2", "alice", "person", "default")
    refs = (ImageRef("i-1", "image/png", 264), ImageRef("i-2", "", 0, url="https://x.test/a.png"))
    await store.add_messages(
        conv, HistoryMessage("u-1", "user", "look", "complete", 1.0, user="alice", images=refs)
    )
    fresh = await store.get("c2")
    assert fresh is not None and fresh.messages[0].images == refs


async def test_an_image_sent_on_one_instance_is_served_and_resent_by_the_other(
    instances,
) -> None:
    """Redis mode: instance b serves the image a stored, and sends it upstream again."""
    a, b = await instances('[assistants.default]\nmodel = "qwen-vl-max"\n')
    token = make_token("alice")
    url = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    sock = await a.chat(token=token)
    cid = sock.connected["conversation_id"]
    await sock.send(type="message", id="c-1", text="look sim:tokens=2", images=[url])
    assert (await sock.reply()).text.startswith("I see 1 image")
    conv = await b.app[keys.BACKENDS].conversations.get(cid)
    [ref] = conv.messages[0].images
    resp = await b.client.get(
        f"/api/v1/images/{ref.id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200 and await resp.read() == PNG
    other = await b.chat(token=token, conversation_id=cid)
    await other.ask("again? sim:tokens=2", "c-2")
    users = [m for m in b.sim.state.requests[-1].body["input"]["messages"] if m["role"] == "user"]
    assert {"image": url} in users[0]["content"]
