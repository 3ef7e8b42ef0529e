"""`python -m gateway chat`: streams a reply, resumes after a dropped connection, exits cleanly."""

from __future__ import annotations

import asyncio
import io

from gateway import keys
from gateway.terminal import run_chat
from tests.test_turns import expected


class Screen(io.StringIO):
    """The terminal: records text and says when the first piece arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.first = asyncio.Event()

    def write(self, text: str) -> int:
        if text.strip():
            self.first.set()
        return super().write(text)


async def test_terminal_chat_resumes_after_the_server_drops_it(gateway, monkeypatch) -> None:
    """The connection is cut mid-reply; the client reconnects, resumes, prints the text once."""
    gw = await gateway()
    prompt = "terminal sim:tokens=120 sim:delay_ms=10"
    monkeypatch.setattr("sys.stdin", io.StringIO(prompt + "\n"))
    screen = Screen()
    url = str(gw.client.make_url("/")).rstrip("/")
    chat = asyncio.create_task(run_chat(url, "default", None, out=screen))
    await screen.first.wait()
    conn = next(iter(gw.app[keys.REGISTRY]))
    conn.ws._req.transport.abort()  # the network drops
    assert await asyncio.wait_for(chat, 30) == 0
    assert screen.getvalue() == expected(prompt) + "\n"
    assert gw.app[keys.METRICS].resumes._value.get() == 1
