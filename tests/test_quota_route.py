"""``GET /api/v1/quota``: the caller's daily budget, for the page (contract section 12)."""

from __future__ import annotations

import datetime as dt

from gateway.quotas import QuotaLimits, quota_status
from gateway.usage import SpentToday
from tests.conftest import eventually, make_token

NOON = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC).timestamp()
LIMITS = QuotaLimits(per_user=1000, per_assistant=5000, per_address=300)
ALICE = {"Authorization": f"Bearer {make_token('alice')}"}


def test_quota_status_names_the_quota_that_leaves_the_least() -> None:
    """The narrowest quota is reported, with what is left and when it renews."""
    status = quota_status(SpentToday(100, 4950, 0), LIMITS, anonymous=False, now=NOON)
    assert status == {
        "kind": "assistant",
        "limit": 5000,
        "used": 4950,
        "remaining": 50,
        "resets_at": "2026-12-03T00:00:00Z",
        "resets_in_s": 12 * 3600,
    }
    user = quota_status(SpentToday(1200, 0, 250), LIMITS, anonymous=False, now=NOON)
    assert user is not None and (user["kind"], user["remaining"]) == ("user", 0)
    anonymous = quota_status(SpentToday(0, 0, 250), LIMITS, anonymous=True, now=NOON)
    assert anonymous is not None and (anonymous["kind"], anonymous["remaining"]) == ("address", 50)
    assert quota_status(SpentToday(), QuotaLimits(), anonymous=True, now=NOON) is None
    assert quota_status(SpentToday(), QuotaLimits(per_address=9), anonymous=False, now=NOON) is None


async def test_the_quota_route_shows_the_budget_going_down(gateway) -> None:
    """With a user quota: the whole budget first, less after a reply; none configured: null;
    an unknown assistant: 404; no credentials with auth required: 401."""
    gw = await gateway("[auth]\nrequired = true\n[limits]\ntokens_per_user_per_day = 500\n")
    resp = await gw.client.get("/api/v1/quota", headers=ALICE)
    first = (await resp.json())["quota"]
    assert (first["kind"], first["limit"], first["used"], first["remaining"]) == (
        "user",
        500,
        0,
        500,
    )
    assert 0 < first["resets_in_s"] <= 86400 and first["resets_at"].endswith("T00:00:00Z")
    sock = await gw.chat(token=make_token("alice"))
    await sock.ask("spend sim:tokens=40 sim:delay_ms=0")

    async def spent() -> dict | None:
        body = await (await gw.client.get("/api/v1/quota", headers=ALICE)).json()
        return body["quota"] if body["quota"]["used"] else None

    after = await eventually(spent)
    assert after["used"] >= 40 and after["remaining"] == 500 - after["used"]
    other = await gw.client.get("/api/v1/quota", params={"assistant": "nobody"}, headers=ALICE)
    assert other.status == 404
    assert (await gw.client.get("/api/v1/quota")).status == 401


async def test_without_a_quota_the_route_says_null(gateway) -> None:
    """No quota configured: {"quota": null}, and the page is told not to show a budget."""
    gw = await gateway()
    body = await (await gw.client.get("/api/v1/quota", headers=ALICE)).json()
    assert body == {"assistant": "default", "quota": None}
    assert '"quota": false' in await (await gw.client.get("/")).text()
