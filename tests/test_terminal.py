"""`python -m gateway chat`: streams a reply, resumes after a dropped connection, exits cleanly."""

from __future__ import annotations

import asyncio
import codecs
import io
import os
import queue
import re
import signal
import sys

import pytest

from gateway import keys
from gateway.terminal import DIM, UNDIM, run_chat
from tests.conftest import wait_until
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


class Stderr(io.StringIO):
    """stderr, as a terminal (``tty``) or as a file or pipe."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False], ids=["tty", "pipe"])
async def test_reasoning_shows_on_stderr_dimmed_on_a_tty_and_plain_otherwise(
    gateway, monkeypatch, tty: bool
) -> None:
    """Reasoning goes to stderr (ANSI faint on a tty, plain text otherwise), ended by a
    newline before the answer; stdout holds the answer alone."""
    gw = await gateway()
    prompt = "think first sim:reasoning=3 sim:tokens=5 sim:delay_ms=0"
    monkeypatch.setattr("sys.stdin", io.StringIO(prompt + "\n"))
    err = Stderr(tty)
    monkeypatch.setattr("sys.stderr", err)
    screen = Screen()
    url = str(gw.client.make_url("/")).rstrip("/")
    assert await asyncio.wait_for(run_chat(url, "default", None, out=screen), 30) == 0
    assert screen.getvalue() == expected(prompt) + "\n"
    shown = err.getvalue()
    reasoning = "Thinking 1. Thinking 2. Thinking 3. "
    if tty:
        assert shown.count(DIM) == shown.count(UNDIM) >= 1
        assert f"{DIM}Thinking 1. " in shown
        assert shown.replace(DIM, "").replace(UNDIM, "").count(reasoning + "\n") == 1
    else:
        assert "\x1b" not in shown
        assert shown.count(reasoning + "\n") == 1


async def test_a_drop_mid_thought_resumes_without_repeating_the_reasoning(
    gateway, monkeypatch
) -> None:
    """Cut off while the reasoning streams, the client resumes from the reasoning's seq:
    every reasoning and answer character is shown once."""
    gw = await gateway()
    prompt = "think on sim:reasoning=40 sim:tokens=10 sim:delay_ms=20"
    monkeypatch.setattr("sys.stdin", io.StringIO(prompt + "\n"))
    err = Stderr(False)
    monkeypatch.setattr("sys.stderr", err)
    screen = Screen()
    url = str(gw.client.make_url("/")).rstrip("/")
    chat = asyncio.create_task(run_chat(url, "default", None, out=screen))
    await wait_until(lambda: "Thinking 3. " in err.getvalue())
    conn = next(iter(gw.app[keys.REGISTRY]))
    conn.ws._req.transport.abort()  # the network drops mid-thought
    assert await asyncio.wait_for(chat, 30) == 0
    assert screen.getvalue() == expected(prompt) + "\n"
    reasoning = "".join(f"Thinking {i + 1}. " for i in range(40))
    shown = re.sub(r"\[reconnecting in [0-9.]+s\]\n", "", err.getvalue())
    assert shown.count("Thinking 1. ") == 1
    assert reasoning + "\n" in shown
    assert gw.app[keys.METRICS].resumes._value.get() == 1


class Terminal:
    """``python -m gateway chat`` in a real process: lines in, stdout and stderr out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out = ""
        self.err = ""
        self._decode = codecs.getincrementaldecoder("utf-8")()  # chunks cut characters

    @classmethod
    async def start(cls, url: str) -> Terminal:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "chat",
            "--url",
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        return cls(proc)

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def until_out(self, predicate) -> None:
        """Read stdout until ``predicate(all of it so far)`` holds."""
        assert self.proc.stdout is not None
        while not predicate(self.out):
            chunk = await self.proc.stdout.read(4096)
            assert chunk, f"stdout closed; stderr: {self.err}"
            self.out += self._decode.decode(chunk)

    async def until_err(self, text: str) -> None:
        assert self.proc.stderr is not None
        while text not in self.err:
            chunk = await self.proc.stderr.read(1024)
            assert chunk, f"stderr closed before {text!r}: {self.err!r}"
            self.err += chunk.decode()

    def ctrl_c(self) -> None:
        self.proc.send_signal(signal.SIGINT)


@pytest.mark.timeout(60)
async def test_ctrl_c_cancels_the_reply_and_the_chat_goes_on(gateway) -> None:
    """Ctrl-C mid-reply sends cancel (the upstream call ends); the prompt returns, the next
    turn works, and Ctrl-C at the prompt quits with 130."""
    gw = await gateway()
    term = await Terminal.start(str(gw.client.make_url("/")).rstrip("/"))
    await term.until_err("> ")
    await term.type("a long story sim:tokens=3000 sim:delay_ms=10")
    await term.until_out(lambda out: len(out) > 20)
    term.ctrl_c()
    await term.until_err("[stopped]")
    record = await gw.sim.state.wait_closed(within=5)
    assert record.outcome == "disconnected" and record.steps_sent < 3000
    await term.until_err("[stopped]\n> ")  # the prompt marker: ready for the next turn
    prompt = "next sim:tokens=5 sim:delay_ms=0"
    await term.type(prompt)
    await term.until_out(lambda out: out.endswith("\n" + expected(prompt) + "\n"))
    assert term.out.count(expected(prompt)) == 1
    term.ctrl_c()
    assert await asyncio.wait_for(term.proc.wait(), 10) == 130


@pytest.mark.timeout(60)
async def test_a_second_ctrl_c_quits_during_a_reply(gateway) -> None:
    """Two Ctrl-C in a row during a reply: the first asks to stop, the second quits (130)."""
    gw = await gateway()
    term = await Terminal.start(str(gw.client.make_url("/")).rstrip("/"))
    await term.type("keep going sim:tokens=3000 sim:delay_ms=10")
    await term.until_out(lambda out: len(out) > 20)
    term.ctrl_c()
    await term.until_err("Ctrl-C again quits")
    term.ctrl_c()
    assert await asyncio.wait_for(term.proc.wait(), 10) == 130


async def test_resume_unavailable_ends_the_wait(gateway, monkeypatch) -> None:
    """A reply the server can no longer resume: the client says so and goes on to the next
    line instead of waiting for it forever."""
    gw = await gateway("[limits]\nresume_window_s = 0\norphan_grace_s = 0\n")
    first = "first sim:tokens=300 sim:delay_ms=10"
    second = "second sim:tokens=5 sim:delay_ms=0"
    stdin = Lines()
    monkeypatch.setattr("sys.stdin", stdin)
    screen = Screen()
    url = str(gw.client.make_url("/")).rstrip("/")
    chat = asyncio.create_task(run_chat(url, "default", None, out=screen, catch_ctrl_c=False))
    stdin.feed(first)
    await screen.first.wait()
    turns = gw.app[keys.TURNS]
    conn = next(iter(gw.app[keys.REGISTRY]))
    conn.ws._req.transport.abort()  # dropped; with no grace the reply stops and is forgotten
    await wait_until(lambda: turns.supervisor.running_for(conn.user) == 0)
    stdin.feed(second)
    stdin.feed(None)
    assert await asyncio.wait_for(chat, 30) == 0
    assert screen.getvalue().endswith(expected(second) + "\n")


class Lines(io.TextIOBase):
    """A stdin fed line by line from the test (readline blocks until a line is fed)."""

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()

    def feed(self, line: str | None) -> None:
        self._lines.put("" if line is None else line + "\n")

    def readline(self, size: int = -1) -> str:
        return self._lines.get()
