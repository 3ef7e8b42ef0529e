"""A real `python -m gateway serve` process: the README's defaults, SIGTERM mid-reply, logs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys

import aiohttp

from tests.conftest import (
    SECRET,
    RedisServer,
    eventually,
    free_port,
    make_token,
    need_binary,
)


async def _status(http: aiohttp.ClientSession, url: str, status: int) -> bool:
    async with http.get(url) as resp:
        return resp.status == status


async def start_gateway(config_text: str, tmp_path, *, program: str = "", **env: str):
    """Start the gateway as a subprocess; return (process, base_url, log_lines). ``program``:
    Python run instead of ``-m gateway serve``, given the config's path and the port."""
    path = tmp_path / "gw.toml"
    path.write_text(config_text)
    port = free_port()
    command = ("-c", program) if program else ("-m", "gateway", "serve", "--config")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        str(path),
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GATEWAY_LOG__FORMAT": "json", **env},
    )
    lines: list[str] = []
    while True:  # wait for the "serving" line (the process tells us when it listens)
        line = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert line, "the gateway exited before serving: " + "".join(lines)
        lines.append(line.decode())
        if '"serving"' in lines[-1]:
            break

    async def drain() -> None:  # a full pipe would block the gateway's logging
        while line := await proc.stderr.readline():
            lines.append(line.decode())

    proc.drainer = asyncio.create_task(drain())  # type: ignore[attr-defined]
    return proc, f"http://127.0.0.1:{port}", lines


async def test_defaults_serve_the_offline_demo_and_healthz(tmp_path) -> None:
    """With no config and no key, serve answers /healthz and chats with the simulator."""
    proc, url, _ = await start_gateway("", tmp_path, DASHSCOPE_API_KEY="")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/healthz") as resp:
                assert resp.status == 200
            async with http.ws_connect(url + "/api/v1/assistants/default/ws") as ws:
                connected = await ws.receive_json(timeout=10)
                assert connected["offline_demo"] is True
                await ws.send_json({"type": "message", "id": "c-1", "text": "hi sim:delay_ms=0"})
                while (frame := await ws.receive_json(timeout=10))["type"] != "done":
                    pass
                assert frame["finish_reason"] == "stop" and frame["content_length"] > 0
    finally:
        proc.terminate()
        await proc.wait()


async def test_sigterm_mid_reply_closes_1001_and_exits_zero(tmp_path) -> None:
    """SIGTERM: sockets close with 1001 going away, the process exits 0 within the grace."""
    proc, url, _ = await start_gateway(
        "[server]\nshutdown_grace_s = 2\n", tmp_path, DASHSCOPE_API_KEY=""
    )
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url + "/api/v1/assistants/default/ws") as ws,
    ):
        await ws.receive_json(timeout=10)
        await ws.send_json(
            {"type": "message", "id": "c-1", "text": "long sim:tokens=2000 sim:delay_ms=20"}
        )
        while (await ws.receive_json(timeout=10))["type"] != "delta":
            pass
        proc.send_signal(signal.SIGTERM)
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
        assert ws.close_code == 1001
        assert msg.extra == "going away"
    assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_logs_never_contain_tokens_or_api_keys(tmp_path, sim) -> None:
    """JSON log lines of a session, Redis trouble included, carry context but no token, secret,
    API key or Redis password."""
    api_key = "sk-upstream-key-that-must-not-leak"
    redis = RedisServer(need_binary("redis-server"), str(tmp_path), password="redis-pass-no-leak")
    await redis.start()
    config = (
        f'[upstream]\nkind = "dashscope"\nbase_url = "{sim.url}"\napi_key = "{api_key}"\n'
        f'[auth]\nrequired = true\njwt_secret = "{SECRET}"\naudience = "gateway-tests"\n'
        f'[redis]\nurl = "{redis.url}"\nheartbeat_s = 0.2\n'
        '[log]\nlevel = "debug"\n'
    )
    proc, url, lines = await start_gateway(config, tmp_path)
    token = make_token("alice")
    try:
        async with aiohttp.ClientSession() as http:
            ws_url = url + "/api/v1/assistants/default/ws"
            async with http.ws_connect(ws_url, params={"token": token}) as ws:
                await ws.receive_json(timeout=10)
                await ws.send_json({"type": "message", "id": "c-1", "text": "hi sim:delay_ms=0"})
                while (await ws.receive_json(timeout=10))["type"] != "done":
                    pass
            async with http.ws_connect(ws_url, protocols=("gateway.v1", f"bearer.{token}")) as ws:
                await ws.receive_json(timeout=10)
            async with http.get(
                url + "/api/v1/conversations?token=" + token,
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                assert resp.status == 200
            await redis.stop()  # errors while Redis is down must not print its URL either
            await eventually(lambda: _status(http, url + "/readyz", 503))
            async with http.get(url + "/readyz") as resp:
                assert redis.password not in await resp.text()
    finally:
        await redis.stop()
        proc.terminate()
        await proc.wait()
        await proc.drainer
    text = "".join(lines)
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "reply" and e.get("user") == "alice" for e in events)
    assert any(e.get("event") == "connected" and e.get("connection_id") for e in events)
    assert any("redis" in str(e.get("event")) for e in events), "the outage was logged"
    for secret in (token, api_key, SECRET, token.split(".")[2], redis.password):
        assert secret not in text
    assert re.search(r"token=\[redacted\]", text)


async def test_sockets_that_never_finish_a_request_head_are_closed(tmp_path) -> None:
    """200 slow-loris sockets (a partial request line) are closed after server.header_timeout_s;
    an idle WebSocket outlives it."""
    proc, url, _ = await start_gateway(
        "[server]\nheader_timeout_s = 0.5\n", tmp_path, DASHSCOPE_API_KEY=""
    )
    port = int(url.rsplit(":", 1)[1])
    streams = []
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url + "/api/v1/assistants/default/ws") as ws,
        ):
            await ws.receive_json(timeout=10)
            for _ in range(200):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: loris")  # never finished
                streams.append((reader, writer))
            async with asyncio.timeout(10):
                closed = await asyncio.gather(*(reader.read() for reader, _ in streams))
            assert closed == [b""] * 200
            await ws.send_json({"type": "ping"})
            assert (await ws.receive_json(timeout=5))["type"] == "pong"
            async with http.get(url + "/healthz") as resp:
                assert resp.status == 200
    finally:
        for _, writer in streams:
            writer.close()
        proc.terminate()
        await proc.wait()


def _redis_mode_toml(sim_url: str, redis_url: str, redis_extra: str = "") -> str:
    """A gateway on the simulator and Redis, with a short shutdown grace."""
    return (
        f'[upstream]\nkind = "dashscope"\nbase_url = "{sim_url}"\napi_key = "sk-test"\n'
        f'[auth]\njwt_secret = "{SECRET}"\naudience = "gateway-tests"\n'
        f'[redis]\nurl = "{redis_url}"\nheartbeat_s = 0.2\n{redis_extra}'
        "[server]\nshutdown_grace_s = 0.5\n"
    )


async def test_a_reply_cut_at_the_sigterm_grace_is_stored_incomplete(tmp_path, sim) -> None:
    """SIGTERM cuts a reply at the shutdown grace: history keeps it as `incomplete` (as the
    gateway stopped it), not `cancelled` (a user's stop); read from another instance."""
    redis = RedisServer(need_binary("redis-server"), str(tmp_path))
    await redis.start()
    config = _redis_mode_toml(sim.url, redis.url)
    first, url, _ = await start_gateway(config, tmp_path)
    second, other_url, _ = await start_gateway(config, tmp_path)
    headers = {"Authorization": f"Bearer {make_token('alice')}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.ws_connect(url + "/api/v1/assistants/default/ws") as ws:
                conversation_id = (await ws.receive_json(timeout=10))["conversation_id"]
                await ws.send_json(
                    {"type": "message", "id": "c-1", "text": "long sim:tokens=2000 sim:delay_ms=20"}
                )
                while (await ws.receive_json(timeout=10))["type"] != "delta":
                    pass
                first.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(first.wait(), 15) == 0
            async with http.get(
                f"{other_url}/api/v1/conversations/{conversation_id}/messages"
            ) as resp:
                messages = (await resp.json())["messages"]
        reply = messages[-1]
        assert reply["role"] == "assistant" and reply["content"]
        assert reply["status"] == "incomplete"
    finally:
        for proc in (first, second):
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
            await proc.drainer
        await redis.stop()


async def _stream_a_long_reply(http: aiohttp.ClientSession, url: str):
    """Open a socket on ``url`` and start a long reply on it; the socket, once a delta came."""
    ws = await http.ws_connect(url + "/api/v1/assistants/default/ws")
    await ws.receive_json(timeout=10)
    await ws.send_json(
        {"type": "message", "id": "c-1", "text": "long sim:tokens=2000 sim:delay_ms=20"}
    )
    while (await ws.receive_json(timeout=10))["type"] != "delta":
        pass
    return ws


async def _logged(lines: list[str], event: str) -> dict:
    """The first JSON log line of ``event`` (the process logs as it goes: no event to await)."""

    async def find():
        for line in lines:
            if line.startswith("{") and json.loads(line).get("event") == event:
                return json.loads(line)
        return None

    return await eventually(find)


async def test_a_second_sigterm_ends_a_shutdown_at_once_with_status_1(tmp_path) -> None:
    """SIGTERM starts the shutdown (a reply may run for the 30 s grace); a second SIGTERM
    ends the process at once, status 1, logging that the shutdown did not finish."""
    proc, url, lines = await start_gateway(
        "[server]\nshutdown_grace_s = 30\n", tmp_path, DASHSCOPE_API_KEY=""
    )
    try:
        async with aiohttp.ClientSession() as http:
            ws = await _stream_a_long_reply(http, url)
            proc.send_signal(signal.SIGTERM)
            await _logged(lines, "shutting down")
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 5) == 1
            await ws.close()
        await proc.drainer
        stopped = await _logged(lines, "shutdown did not finish: exiting now")
        assert stopped["why"] == "a second SIGTERM"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# A gateway with one more shutdown step that never ends and swallows every cancellation: what
# no await in the real shutdown may do; the deadline must end the process anyway.
STUCK_SHUTDOWN = """
import asyncio, sys
from gateway import app, config, logs, server

def with_a_stuck_step(cfg):
    made = app.create_app(cfg)

    async def stuck(_):
        yield
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass

    made.cleanup_ctx.append(stuck)
    return made

server.create_app = with_a_stuck_step
cfg = config.load(sys.argv[1], required=True)
logs.configure(cfg.log.level, cfg.log.format)
sys.exit(server.serve(cfg, port=int(sys.argv[3])))
"""


async def test_a_shutdown_stuck_for_ever_ends_at_the_deadline_with_status_1(tmp_path) -> None:
    """Whatever hangs in the shutdown (here a step that ignores cancellation), the process
    exits 2 x shutdown_grace_s + 10 s after SIGTERM, status 1, naming the tasks still running."""
    from gateway.server import stop_deadline_s
    from tests.conftest import gateway_config

    toml = "[server]\nshutdown_grace_s = 0.5\n"
    deadline = stop_deadline_s(gateway_config(toml))
    proc, _, lines = await start_gateway(
        toml, tmp_path, program=STUCK_SHUTDOWN, DASHSCOPE_API_KEY=""
    )
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), deadline + 10) == 1
        assert deadline <= loop.time() - began
        await proc.drainer
        stopped = await _logged(lines, "shutdown did not finish: exiting now")
        assert stopped["why"] == f"still stopping {deadline:g} s after SIGTERM"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_stalled_redis_at_sigterm_does_not_keep_the_gateway_from_exiting(
    tmp_path, sim
) -> None:
    """Redis stops answering (SIGSTOP) while a reply streams; on SIGTERM the gateway still
    exits, within its deadline."""
    from gateway.server import stop_deadline_s
    from tests.conftest import gateway_config

    redis = RedisServer(need_binary("redis-server"), str(tmp_path))
    await redis.start()
    toml = _redis_mode_toml(sim.url, redis.url, "command_timeout_s = 30\n")
    deadline = stop_deadline_s(gateway_config(toml))
    proc, url, lines = await start_gateway(toml, tmp_path)
    headers = {"Authorization": f"Bearer {make_token('alice')}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            ws = await _stream_a_long_reply(http, url)
            redis.proc.send_signal(signal.SIGSTOP)
            loop = asyncio.get_running_loop()
            began = loop.time()
            proc.send_signal(signal.SIGTERM)
            status = await asyncio.wait_for(proc.wait(), deadline + 5)
            took = loop.time() - began
            await ws.close()
        await proc.drainer
        assert status == 0 and took < deadline, "".join(lines[-20:])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        redis.proc.send_signal(signal.SIGCONT)
        await redis.stop()


async def test_the_offline_demo_caps_a_visitors_directives(tmp_path) -> None:
    """serve with no key: `sim:chars=3000000` gives a 20 000-character reply, not 3 MB."""
    proc, url, _ = await start_gateway("", tmp_path, DASHSCOPE_API_KEY="")
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url + "/api/v1/assistants/default/ws") as ws,
        ):
            await ws.receive_json(timeout=10)
            text = "big sim:chars=3000000 sim:tokens=40 sim:delay_ms=0"
            await ws.send_json({"type": "message", "id": "c-1", "text": text})
            while (frame := await ws.receive_json(timeout=20))["type"] != "done":
                pass
            assert frame["content_length"] == 20_000 and frame["seq"] == 40
    finally:
        proc.terminate()
        await proc.wait()
