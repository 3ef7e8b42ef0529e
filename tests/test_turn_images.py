"""Images in a message over a real socket against the simulator (contract section 11):
refusals cost nothing, a good image reaches the multimodal endpoint, history keeps it,
GET /api/v1/images/{id} serves it to those who may read the conversation, later turns send
it again, a reset drops it; the assistant's thinking settings reach the request."""

from __future__ import annotations

import base64

import pytest

from gateway import keys
from gateway.llm.dashscope import MULTIMODAL_PATH
from tests.conftest import make_token

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + bytes(200)
VISION = '[assistants.default]\nmodel = "qwen-vl-max"\n'


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user)}"}


async def history(gw, conv_id: str) -> list[dict]:
    conv = await gw.app[keys.BACKENDS].conversations.get(conv_id)
    return [] if conv is None else [m.public() for m in conv.messages]


BAD = [
    ("bmp type", "", [data_url(b"BM" + bytes(100), "image/bmp")], "is not accepted"),
    ("magic mismatch", "", [data_url(JPEG, "image/png")], "declared image/png"),
    ("not an image", "", [data_url(b"hello world", "image/png")], "not a png"),
    ("too big", "[limits]\nmax_image_bytes = 1000\n", [data_url(PNG)], "the limit is 1000"),
    ("too many", "", [data_url(PNG)] * 5, "the limit is 4"),
    ("https not allowed", "", ["https://example.com/cat.png"], "not accepted here"),
    ("bad base64", "", ["data:image/png;base64,iVBOR!!!w0KGgo="], "not valid base64"),
    ("not a url", "", ["ftp://example.com/x.png"], "must be a data: URL"),
    ("vision off", "[assistants.default]\nvision = false\n", [data_url(PNG)], "takes no images"),
]


@pytest.mark.parametrize(("toml", "images", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_a_bad_image_is_refused_with_bad_image_and_nothing_upstream(
    gateway, toml: str, images: list[str], says: str
) -> None:
    """Each refused image: error bad_image naming the problem, no upstream call, no history."""
    gw = await gateway(toml)
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="What is this?", images=images)
    err = await sock.recv_type("error")
    assert (err["code"], err["reply_to"], err["retryable"]) == ("bad_image", "c-1", False)
    assert says in err["message"]
    assert gw.sim.state.requests == []
    assert await history(gw, sock.connected["conversation_id"]) == []
    assert len(gw.app[keys.BACKENDS].images) == 0  # type: ignore[arg-type]
    await sock.ask("still here sim:tokens=2 sim:delay_ms=0", "c-2")  # the socket stays open


async def test_images_that_are_not_a_list_of_strings_are_refused(gateway) -> None:
    """images: 5 gets bad_image and starts nothing."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="x", images=5)
    err = await sock.recv_type("error")
    assert err["code"] == "bad_image" and gw.sim.state.requests == []


async def test_a_good_image_reaches_the_multimodal_endpoint_and_history(gateway) -> None:
    """A png goes to the multimodal endpoint; the reply acknowledges it; history lists it."""
    gw = await gateway(VISION)
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(
        type="message", id="c-1", text="What is this? sim:tokens=3", images=[data_url(PNG)]
    )
    echoed = await sock.recv_type("user_message")
    reply = await sock.reply()
    assert reply.text.startswith("I see 1 image (image/png, 1.0 KB)")
    request = gw.sim.state.requests[-1]
    assert request.path == MULTIMODAL_PATH
    content = request.body["input"]["messages"][-1]["content"]
    assert {"image": data_url(PNG)} in content
    messages = await history(gw, sock.connected["conversation_id"])
    [image] = messages[0]["images"]
    assert (image["media_type"], image["bytes"]) == ("image/png", len(PNG))
    assert echoed["images"] == [image]


async def test_the_image_is_served_to_the_owner_and_to_no_one_else(gateway) -> None:
    """GET /api/v1/images/{id}: the bytes for the owner and an admin; 404 for another user."""
    gw = await gateway(VISION)
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(type="message", id="c-1", text="hi sim:tokens=2", images=[data_url(PNG)])
    await sock.reply()
    [image] = (await history(gw, sock.connected["conversation_id"]))[0]["images"]
    path = f"/api/v1/images/{image['id']}"
    resp = await gw.client.get(path, headers=bearer("alice"))
    assert resp.status == 200 and await resp.read() == PNG
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Cache-Control"].startswith("private")
    admin = {"Authorization": f"Bearer {make_token('root', admin=True)}"}
    assert (await gw.client.get(path, headers=admin)).status == 200
    other = await gw.client.get(path, headers=bearer("mallory"))
    assert other.status == 404
    assert (await other.json())["error"]["code"] == "not_found"
    assert (
        await gw.client.get("/api/v1/images/i-nosuchimage0000", headers=bearer("alice"))
    ).status == 404


async def test_a_later_turn_sends_the_image_upstream_again(gateway) -> None:
    """The second turn's request carries the first turn's image in the first user message."""
    gw = await gateway(VISION)
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="look sim:tokens=2", images=[data_url(PNG)])
    await sock.reply()
    await sock.ask("and now? sim:tokens=2", "c-2")
    messages = gw.sim.state.requests[-1].body["input"]["messages"]
    users = [m for m in messages if m["role"] == "user"]
    assert {"image": data_url(PNG)} in users[0]["content"]
    assert not any("image" in item for item in users[1]["content"])


@pytest.mark.parametrize("rerun", ["regenerate", "edit"])
async def test_a_regenerate_or_edit_asks_again_with_the_messages_images(
    gateway, rerun: str
) -> None:
    """Regenerating, or editing the text of, a message with an image sends the image upstream
    again with it, and an edited message keeps its image in history."""
    gw = await gateway(VISION)
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="look sim:tokens=2", images=[data_url(PNG)])
    await sock.reply()
    if rerun == "regenerate":
        await sock.send(type="regenerate")
    else:
        asked = (await history(gw, sock.connected["conversation_id"]))[0]
        await sock.send(type="edit", message_id=asked["id"], text="look again sim:tokens=2")
    await sock.reply()
    messages = gw.sim.state.requests[-1].body["input"]["messages"]
    users = [m for m in messages if m["role"] == "user"]
    assert len(users) == 1
    assert {"image": data_url(PNG)} in users[0]["content"]
    kept = (await history(gw, sock.connected["conversation_id"]))[0]
    assert [image["media_type"] for image in kept["images"]] == ["image/png"]


async def test_an_https_image_passes_upstream_as_is_when_allowed(gateway) -> None:
    """limits.allow_image_urls: the URL goes upstream unchanged; history keeps the URL."""
    gw = await gateway(VISION + "[limits]\nallow_image_urls = true\n")
    sock = await gw.chat()
    url = "https://example.com/cat.png"
    await sock.send(type="message", id="c-1", text="cat? sim:tokens=2", images=[url])
    reply = await sock.reply()
    assert reply.text.startswith("I see 1 image (https URL)")
    assert {"image": url} in gw.sim.state.requests[-1].body["input"]["messages"][-1]["content"]
    [image] = (await history(gw, sock.connected["conversation_id"]))[0]["images"]
    assert image["url"] == url


async def test_reset_drops_the_conversations_images(gateway) -> None:
    """After reset the image's URL answers 404."""
    gw = await gateway(VISION)
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(type="message", id="c-1", text="hi sim:tokens=2", images=[data_url(PNG)])
    await sock.reply()
    [image] = (await history(gw, sock.connected["conversation_id"]))[0]["images"]
    await sock.send(type="reset")
    await sock.recv_type("history_cleared")
    resp = await gw.client.get(f"/api/v1/images/{image['id']}", headers=bearer("alice"))
    assert resp.status == 404


async def test_deleting_the_conversation_deletes_its_images(gateway) -> None:
    """DELETE /api/v1/conversations/{id}: the image's URL answers 404 afterwards."""
    gw = await gateway(VISION)
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(type="message", id="c-1", text="hi sim:tokens=2", images=[data_url(PNG)])
    await sock.reply()
    conv = sock.connected["conversation_id"]
    [image] = (await history(gw, conv))[0]["images"]
    url = f"/api/v1/images/{image['id']}"
    assert (await gw.client.get(url, headers=bearer("alice"))).status == 200
    resp = await gw.client.delete(f"/api/v1/conversations/{conv}", headers=bearer("alice"))
    assert resp.status == 204
    assert (await gw.client.get(url, headers=bearer("alice"))).status == 404


async def test_a_message_with_images_may_exceed_the_text_frame_limit(gateway) -> None:
    """Over max_frame_bytes: a message with an image is taken; a text-only frame gets 1009."""
    gw = await gateway(VISION + "[limits]\nmax_frame_bytes = 2048\nmax_message_chars = 100000\n")
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="big sim:tokens=2", images=[data_url(PNG)])
    reply = await sock.reply()
    assert reply.text.startswith("I see 1 image")
    await sock.send(type="message", id="c-2", text="x" * 4000)
    assert await sock.closed() == (1009, "message too big")


async def test_a_frame_naming_images_without_any_is_held_to_the_text_limit(gateway) -> None:
    """A big frame that only mentions "images" (an empty list) still gets 1009."""
    gw = await gateway("[limits]\nmax_frame_bytes = 2048\nmax_message_chars = 100000\n")
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="x" * 4000, images=[])
    assert await sock.closed() == (1009, "message too big")


async def test_the_assistants_thinking_settings_reach_the_request(gateway) -> None:
    """thinking = "on" and thinking_budget go upstream as enable_thinking/thinking_budget."""
    gw = await gateway('[assistants.default]\nthinking = "on"\nthinking_budget = 64\n')
    sock = await gw.chat()
    await sock.ask("think sim:tokens=2", "c-1")
    parameters = gw.sim.state.requests[-1].body["parameters"]
    assert parameters["enable_thinking"] is True and parameters["thinking_budget"] == 64


async def test_the_assistants_endpoint_fixes_the_dashscope_endpoint(gateway) -> None:
    """endpoint = "multimodal" sends a text model's turn to the multimodal endpoint."""
    gw = await gateway('[assistants.default]\nendpoint = "multimodal"\n')
    sock = await gw.chat()
    await sock.ask("hi sim:tokens=2", "c-1")
    assert gw.sim.state.requests[-1].path == MULTIMODAL_PATH


async def test_upstream_thinking_style_vllm_reaches_an_openai_upstream(gateway, sim) -> None:
    """upstream.thinking_style = "vllm": thinking goes as chat_template_kwargs."""
    gw = await gateway(
        f'[upstream]\nkind = "openai"\nbase_url = "{sim.url}/compatible-mode/v1"\n'
        'thinking_style = "vllm"\n[assistants.default]\nthinking = "off"\n'
    )
    sock = await gw.chat()
    await sock.ask("hi sim:tokens=2", "c-1")
    body = gw.sim.state.requests[-1].body
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
