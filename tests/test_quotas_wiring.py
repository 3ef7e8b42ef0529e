"""Quotas and the anonymous per-address limits over real sockets against the simulator."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import eventually, make_token

ALICE = make_token("alice")
BOB = make_token("bob")
ADMIN = make_token("root", admin=True)
SPEND = "spend sim:tokens=40 sim:delay_ms=0"  # 40 output tokens and some input


async def spent(gw, user: str) -> bool:
    """The user's usage has been recorded (a reply's usage lands just after its done)."""
    resp = await gw.client.get(
        "/api/v1/usage", params={"group_by": "user"}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    body = await resp.json()
    return any(row["key"] == user and row["replies"] for row in body["rows"])


async def refused(sock, msg_id: str = "c-2") -> dict:
    await sock.send(type="message", id=msg_id, text="more sim:tokens=3 sim:delay_ms=0")
    return await sock.recv_type("error")


async def metric(gw, name: str) -> list[str]:
    text = await (await gw.client.get("/metrics")).text()
    return [line for line in text.splitlines() if line.startswith(name)]


async def test_a_users_daily_quota_refuses_the_next_turn_until_tomorrow(gateway) -> None:
    """Past tokens_per_user_per_day: quota_exceeded, not retryable, retry_after_s to midnight."""
    gw = await gateway("[limits]\ntokens_per_user_per_day = 30\n")
    sock = await gw.chat(token=ALICE)
    first = await sock.ask(SPEND)
    assert first.end["finish_reason"] == "stop"  # crossing the quota while running finishes
    await eventually(lambda: spent(gw, "alice"))
    err = await refused(sock)
    assert (err["code"], err["retryable"], err["reply_to"]) == ("quota_exceeded", False, "c-2")
    assert 0 < err["retry_after_s"] <= 86400
    assert "your daily quota of 30 tokens" in err["message"]
    assert 'gateway_quota_refusals_total{quota="user"} 1.0' in await metric(
        gw, "gateway_quota_refusals_total"
    )
    other = await gw.chat(token=BOB)
    assert (await other.ask("hi sim:tokens=3 sim:delay_ms=0")).end["type"] == "done"


async def test_an_assistants_daily_quota_counts_every_user(gateway) -> None:
    """assistants.<name>.tokens_per_day: alice's spend refuses bob's turn on that assistant."""
    gw = await gateway("[assistants.default]\ntokens_per_day = 30\n")
    await (await gw.chat(token=ALICE)).ask(SPEND)
    await eventually(lambda: spent(gw, "alice"))
    err = await refused(await gw.chat(token=BOB))
    assert err["code"] == "quota_exceeded" and "assistant" in err["message"]


async def test_anonymous_visitors_share_their_addresss_daily_tokens(gateway) -> None:
    """anonymous_tokens_per_ip_per_day: a fresh cookie on the same address is still refused."""
    gw = await gateway("[limits]\nanonymous_tokens_per_ip_per_day = 30\n")
    await (await gw.chat()).ask(SPEND)
    await eventually(lambda: total_replies(gw))
    gw.client.session.cookie_jar.clear()
    sock = await gw.chat()
    err = await refused(sock)
    assert err["code"] == "quota_exceeded" and "your network" in err["message"]
    signed_in = await gw.chat(token=BOB)  # not anonymous: the address's quota is not theirs
    assert (await signed_in.ask("hi sim:tokens=3 sim:delay_ms=0")).end["type"] == "done"


async def total_replies(gw) -> int:
    resp = await gw.client.get("/api/v1/usage", headers={"Authorization": f"Bearer {ADMIN}"})
    replies: int = (await resp.json())["total"]["replies"]
    return replies


async def test_anonymous_messages_per_address_are_rate_limited(gateway) -> None:
    """anonymous_messages_per_minute_per_ip counts every anonymous id from one address."""
    gw = await gateway("[limits]\nanonymous_messages_per_minute_per_ip = 2\n")
    for n in range(2):
        gw.client.session.cookie_jar.clear()
        sock = await gw.chat()
        assert (await sock.ask("hi sim:tokens=2 sim:delay_ms=0", f"c-{n}")).end["type"] == "done"
    gw.client.session.cookie_jar.clear()
    err = await refused(await gw.chat())
    assert err["code"] == "rate_limited" and "your network" in err["message"]


async def connects(gw, headers: dict | None = None) -> bool:
    """A socket opens with no cookie (a fresh anonymous id), or the upgrade is refused 429."""
    gw.client.session.cookie_jar.clear()
    try:
        sock = await gw.chat(headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        status = exc.status
    else:
        await sock.ws.close()
        return True
    assert status == 429
    return False


async def test_a_client_dropping_its_cookie_50_times_gets_only_the_hours_new_ids(gateway) -> None:
    """max_anonymous_ids_per_ip_per_hour: of 50 cookie-less sockets, 5 open; POST too."""
    gw = await gateway("[limits]\nmax_anonymous_ids_per_ip_per_hour = 5\n")
    opened = [await connects(gw) for _ in range(50)]
    assert opened.count(True) == 5 and opened[:5] == [True] * 5
    gw.client.session.cookie_jar.clear()
    resp = await gw.client.post(
        "/api/v1/anonymous", headers={"Origin": str(gw.client.make_url("/"))[:-1]}
    )
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "rate_limited"


@pytest.mark.parametrize("trusted", [False, True])
async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(gateway, trusted) -> None:
    """A forged X-Forwarded-For from an untrusted peer changes nothing; from a trusted one,
    each forwarded address has its own allowance."""
    proxies = 'trusted_proxies = ["127.0.0.1/32", "::1/128"]\n' if trusted else ""
    gw = await gateway(f"[server]\n{proxies}[limits]\nmax_anonymous_ids_per_ip_per_hour = 2\n")
    opened = [await connects(gw, {"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(1, 11)]
    assert opened.count(True) == (10 if trusted else 2)


async def test_an_anonymous_edits_tokens_count_for_its_address(gateway) -> None:
    """An edit's reply counts toward the address's daily tokens: the next anonymous id on
    that address is refused once the edit has spent them."""
    gw = await gateway("[limits]\nanonymous_tokens_per_ip_per_day = 200\n")
    sock = await gw.chat()
    assert (await sock.ask("hi sim:tokens=1 sim:delay_ms=0")).end["type"] == "done"
    await eventually(lambda: total_replies(gw))
    gw.client.session.cookie_jar.clear()
    assert (await (await gw.chat()).ask("hi sim:tokens=1 sim:delay_ms=0")).end["type"] == "done"
    await sock.send(type="edit", message_id="c-1", text="spend sim:tokens=200 sim:delay_ms=0")
    assert (await sock.reply()).end["type"] == "done"
    await eventually(lambda: replies_at_least(gw, 3))
    gw.client.session.cookie_jar.clear()
    err = await refused(await gw.chat())
    assert err["code"] == "quota_exceeded" and "your network" in err["message"]


async def replies_at_least(gw, n: int) -> bool:
    return await total_replies(gw) >= n


async def test_regenerate_and_edit_are_refused_past_the_addresss_quota(gateway) -> None:
    """A spent address quota refuses an anonymous visitor's regenerate and edit too."""
    gw = await gateway("[limits]\nanonymous_tokens_per_ip_per_day = 30\n")
    sock = await gw.chat()
    await sock.ask(SPEND)
    await eventually(lambda: total_replies(gw))
    for frame in ({"type": "regenerate"}, {"type": "edit", "message_id": "c-1", "text": "x"}):
        await sock.send(**frame)
        err = await sock.recv_type("error")
        assert err["code"] == "quota_exceeded" and "your network" in err["message"], frame
    assert len(gw.sim.state.requests) == 1
