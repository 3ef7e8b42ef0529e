"""``python -m gateway chat``: a terminal client that streams replies and survives drops.

Reads a line, sends it as a ``message``, prints ``delta`` text as it arrives. When the
connection drops mid-reply it reconnects (exponential backoff with jitter, never after a
1008 close) to the same conversation and sends ``resume`` with the last ``seq`` it
printed, so the reply continues exactly where it stopped. Ctrl-C or end of input exits.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

MAX_BACKOFF_S = 30.0


@dataclass
class _State:
    conversation_id: str | None = None
    message_id: str | None = None  # the reply being printed
    seq: int = 0
    running: bool = False  # a message was sent and its reply has not ended
    sent: dict[str, str] | None = None  # that message, re-sent (same id) if no start came
    eof: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while nothing runs


class Refused(Exception):
    """The server closed with 1008: reconnecting would not help."""


async def run_chat(url: str, assistant: str, token: str | None, out: TextIO = sys.stdout) -> int:
    """Chat until end of input; 0 on a clean exit, 1 when the server refused us."""
    ws_url = url.rstrip("/") + f"/api/v1/assistants/{assistant}/ws"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    state = _State()
    state.idle.set()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    reader = asyncio.create_task(_read_stdin(lines))
    attempt = 0
    try:
        # unsafe=True keeps cookies from IP hosts too (127.0.0.1): an anonymous chat keeps its
        # gw_anon identity, and so its conversation, across reconnects.
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(headers=headers, cookie_jar=jar) as session:
            while True:
                try:
                    if await _connection(session, ws_url, state, lines, out):
                        return 0
                    attempt = 0
                except Refused as exc:
                    print(f"\n[refused: {exc}]", file=sys.stderr)
                    return 1
                except (aiohttp.ClientError, OSError) as exc:
                    print(f"\n[connection failed: {exc.__class__.__name__}]", file=sys.stderr)
                attempt += 1
                jitter = random.uniform(0.5, 1.0)  # noqa: S311 - backoff jitter, not crypto
                delay = min(MAX_BACKOFF_S, 0.25 * 2**attempt) * jitter
                print(f"[reconnecting in {delay:.1f}s]", file=sys.stderr)
                await asyncio.sleep(delay)
    finally:
        reader.cancel()


async def _connection(
    session: aiohttp.ClientSession,
    ws_url: str,
    state: _State,
    lines: asyncio.Queue[str | None],
    out: TextIO,
) -> bool:
    """One connection; True when the user is done, False when it dropped."""
    params = {"conversation_id": state.conversation_id} if state.conversation_id else {}
    async with session.ws_connect(ws_url, params=params, heartbeat=30) as ws:
        sender = asyncio.create_task(_send_lines(ws, state, lines))
        try:
            while True:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                await _show(json.loads(msg.data), state, ws, out)
        finally:
            sender.cancel()
    if ws.close_code == 1008:
        raise Refused(str(msg.extra or "policy violation"))
    return state.eof and not state.running


async def _show(
    frame: dict[str, Any], state: _State, ws: aiohttp.ClientWebSocketResponse, out: TextIO
) -> None:
    match frame.get("type"):
        case "connected":
            state.conversation_id = frame["conversation_id"]
            if frame.get("offline_demo"):
                print("[offline demo: the built-in simulator is answering]", file=sys.stderr)
            if state.running and state.message_id is not None:
                await ws.send_json(
                    {"type": "resume", "message_id": state.message_id, "last_seq": state.seq}
                )
            elif state.running and state.sent is not None:
                await ws.send_json(state.sent)  # same id: the server starts nothing twice
        case "start":
            if frame["message_id"] != state.message_id:
                state.message_id, state.seq = frame["message_id"], 0
        case "delta" if frame["message_id"] == state.message_id and frame["seq"] > state.seq:
            out.write(frame["text"])
            out.flush()
            state.seq = frame["seq"]
        case "done" if frame["message_id"] == state.message_id:
            out.write("\n")
            out.flush()
            _ended(state)
        case "error":
            print(f"\n[{frame['code']}: {frame['message']}]", file=sys.stderr)
            if frame.get("message_id") == state.message_id or "reply_to" in frame:
                _ended(state)
        case "broadcast":
            print(f"\n[broadcast: {frame['message']}]", file=sys.stderr)
    if state.eof and not state.running:
        await ws.close()


def _ended(state: _State) -> None:
    state.running = False
    state.idle.set()


async def _send_lines(
    ws: aiohttp.ClientWebSocketResponse, state: _State, lines: asyncio.Queue[str | None]
) -> None:
    """Send each input line once the previous reply has ended."""
    while True:
        await state.idle.wait()
        line = await lines.get()
        if line is None:
            state.eof = True
            if not state.running:
                await ws.close()
            return
        if line.strip():
            state.running, state.message_id = True, None
            state.sent = {"type": "message", "id": f"c-{secrets.token_hex(6)}", "text": line}
            state.idle.clear()
            await ws.send_json(state.sent)


async def _read_stdin(lines: asyncio.Queue[str | None]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        await lines.put(line.rstrip("\n") if line else None)
        if not line:
            return
