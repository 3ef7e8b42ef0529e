"""The memory reply store: ended logs kept for the resume window, within a byte budget."""

from __future__ import annotations

import gc

from gateway import keys
from gateway.replies import ReplyLog
from tests.conftest import wait_until

STORE = "messages_per_minute = 1000\nmax_connections_per_user = 100\n"


async def test_past_the_reply_budget_the_oldest_ended_logs_are_forgotten(gateway) -> None:
    """memory_max_reply_bytes bounds ended logs: the oldest go (a resume of one gets
    resume_unavailable), the newest stays resumable."""
    gw = await gateway(f"[limits]\nmemory_max_reply_bytes = 500000\n{STORE}")
    sock = await gw.chat()
    ids = []
    for i in range(4):
        reply = await sock.ask(f"big {i} sim:chars=200000 sim:tokens=20 sim:delay_ms=0", f"c-{i}")
        ids.append(reply.message_id)
    store = gw.app[keys.BACKENDS].replies
    assert store.ended_bytes <= 500_000
    assert store.get(ids[0]) is None and store.get(ids[-1]) is not None
    await sock.send(type="resume", message_id=ids[0], last_seq=0)
    assert (await sock.recv_type("error"))["code"] == "resume_unavailable"
    await sock.send(type="resume", message_id=ids[-1], last_seq=19)
    assert (await sock.recv_type("done"))["message_id"] == ids[-1]


async def test_a_running_reply_is_never_forgotten_for_the_budget(gateway) -> None:
    """A running log is kept however small the budget; it ends whole."""
    gw = await gateway(f"[limits]\nmemory_max_reply_bytes = 1\n{STORE}")
    long = await gw.chat()
    await long.send(type="message", id="c-long", text="slow sim:tokens=40 sim:delay_ms=20")
    start = await long.recv_type("start")
    other = await gw.chat()
    for i in range(3):
        await other.ask(f"short {i} sim:delay_ms=0", f"c-{i}")
    assert gw.app[keys.BACKENDS].replies.get(start["message_id"]) is not None
    done = await long.recv_type("done")
    assert done["seq"] == 40 and done["finish_reason"] == "stop"


async def test_a_log_past_its_resume_window_leaves_memory(gateway) -> None:
    """Once the resume window has passed, the reply's log is left nowhere in memory."""
    gw = await gateway(f"[limits]\nresume_window_s = 0.2\n{STORE}")
    sock = await gw.chat()
    message_id = (await sock.ask("hello sim:delay_ms=0")).message_id
    await sock.ws.close()

    def no_log_alive() -> bool:
        gc.collect()
        return not any(
            isinstance(o, ReplyLog) and o.message_id == message_id for o in gc.get_objects()
        )

    await wait_until(no_log_alive, timeout=10, interval=0.1)
