"""``python -m gateway chat``: a terminal client that streams replies and survives drops.

Reads a line, sends it as a ``message``, prints ``delta`` text as it arrives, and shows a
prompt marker (``> ``, on stderr, so stdout holds only the replies) when it is ready for the
next line. A reasoning model's thinking (``reasoning`` frames) goes to stderr too, before
the answer: dimmed (ANSI faint) when stderr is a terminal, plain otherwise. When the
connection drops mid-reply it reconnects (exponential backoff with jitter, never after a
1008 close) to the same conversation and sends ``resume`` with the last ``seq`` it printed
(of either kind), so the reply continues exactly where it stopped; a ``resume_unavailable``
ends the wait for that reply. Ctrl-C during a reply cancels the reply (a second Ctrl-C
quits); Ctrl-C between replies, or end of input, exits.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

MAX_BACKOFF_S = 30.0
PROMPT = "> "
INTERRUPTED = 130  # the shell's status for a program ended by Ctrl-C
DIM, UNDIM = "\x1b[2m", "\x1b[22m"  # ANSI faint, and normal intensity again


@dataclass
class _State:
    """The terminal client's view of its conversation and the reply it is printing."""

    conversation_id: str | None = None
    message_id: str | None = None  # the reply being printed
    seq: int = 0  # of the last step shown, reasoning or answer
    thinking: bool = False  # reasoning was shown and the answer has not begun
    running: bool = False  # a message was sent and its reply has not ended
    sent: dict[str, str] | None = None  # that message, re-sent (same id) if no start came
    eof: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while nothing runs
    ws: aiohttp.ClientWebSocketResponse | None = None  # the connection now, if any
    stopping: bool = False  # Ctrl-C asked the running reply to stop
    quit: asyncio.Event = field(default_factory=asyncio.Event)  # a Ctrl-C that ends the chat
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def interrupt(state: _State) -> None:
    """Ctrl-C: stop the running reply; if none runs, or one is already stopping, quit."""
    if state.running and not state.stopping and state.ws is not None and not state.ws.closed:
        state.stopping = True
        print("\n[stopping the reply; Ctrl-C again quits]", file=sys.stderr, flush=True)
        frame: dict[str, str] = {"type": "cancel"}
        if state.message_id is not None:
            frame["message_id"] = state.message_id
        task = asyncio.get_running_loop().create_task(state.ws.send_json(frame))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        return
    state.quit.set()


class Refused(Exception):
    """The server closed with 1008: reconnecting would not help."""


async def run_chat(
    url: str,
    assistant: str,
    token: str | None,
    out: TextIO = sys.stdout,
    *,
    catch_ctrl_c: bool = True,
) -> int:
    """Chat until end of input (0), a Ctrl-C that quits (130), or a refusal (1)."""
    state = _State()
    state.idle.set()
    loop = asyncio.get_running_loop()
    if catch_ctrl_c:
        loop.add_signal_handler(signal.SIGINT, interrupt, state)
    chat = asyncio.create_task(_chat(url, assistant, token, out, state))
    quit_ = asyncio.create_task(state.quit.wait())
    try:
        await asyncio.wait({chat, quit_}, return_when=asyncio.FIRST_COMPLETED)
        if chat.done():
            return chat.result()
        chat.cancel()
        print(file=sys.stderr)
        return INTERRUPTED
    finally:
        quit_.cancel()
        if catch_ctrl_c:
            loop.remove_signal_handler(signal.SIGINT)


async def _chat(url: str, assistant: str, token: str | None, out: TextIO, state: _State) -> int:
    ws_url = url.rstrip("/") + f"/api/v1/assistants/{assistant}/ws"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    _read_stdin(lines, asyncio.get_running_loop())
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
        state.ws = None


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
        state.ws = ws
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
        case "reasoning" if frame["message_id"] == state.message_id and frame["seq"] > state.seq:
            _show_reasoning(frame["text"])
            state.seq, state.thinking = frame["seq"], True
        case "delta" if frame["message_id"] == state.message_id and frame["seq"] > state.seq:
            _end_reasoning(state)
            out.write(frame["text"])
            out.flush()
            state.seq = frame["seq"]
        case "done" if frame["message_id"] == state.message_id:
            _end_reasoning(state)
            out.write("\n")
            out.flush()
            if frame.get("finish_reason") in ("cancelled", "interrupted"):
                print("[stopped]", file=sys.stderr)
            _ended(state)
        case "error":
            print(f"\n[{frame['code']}: {frame['message']}]", file=sys.stderr)
            if (
                frame.get("message_id") == state.message_id
                or "reply_to" in frame
                or frame["code"] == "resume_unavailable"  # that reply is gone: stop waiting
            ):
                _ended(state)
        case "broadcast":
            print(f"\n[broadcast: {frame['message']}]", file=sys.stderr)
    if state.eof and not state.running:
        await ws.close()


def _show_reasoning(text: str) -> None:
    """A piece of reasoning, on stderr: faint on a terminal, as it is elsewhere."""
    err = sys.stderr
    err.write(f"{DIM}{text}{UNDIM}" if err.isatty() else text)
    err.flush()


def _end_reasoning(state: _State) -> None:
    """The answer (or the end) follows reasoning: end the reasoning's line."""
    if state.thinking:
        state.thinking = False
        print(file=sys.stderr, flush=True)


def _ended(state: _State) -> None:
    state.running = False
    state.stopping = False
    state.sent = None
    state.idle.set()


async def _send_lines(
    ws: aiohttp.ClientWebSocketResponse, state: _State, lines: asyncio.Queue[str | None]
) -> None:
    """Send each input line once the previous reply has ended."""
    while True:
        await state.idle.wait()
        if not state.eof:
            print(PROMPT, end="", file=sys.stderr, flush=True)  # ready for the next turn
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


def _read_stdin(lines: asyncio.Queue[str | None], loop: asyncio.AbstractEventLoop) -> None:
    """Lines from stdin, read by a daemon thread (a blocked read must not keep a quitting
    process alive, as an executor thread would)."""

    def read() -> None:
        while True:
            line = sys.stdin.readline()
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n") if line else None)
            except RuntimeError:  # the loop has closed: the chat is over
                return
            if not line:
                return

    threading.Thread(target=read, name="stdin", daemon=True).start()
