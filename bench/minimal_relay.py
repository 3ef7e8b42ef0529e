"""The reference: a minimal aiohttp relay, as a competent engineer writes it without features.

One WebSocket per client; each ``message`` is posted to the simulator (DashScope native SSE,
incremental output) and every upstream event with text becomes one ``delta`` frame. One shared
``ClientSession``, uvloop, no per-message compression. No auth, history, limits, backpressure
beyond ``send_str`` waiting for the socket to drain, merging or resume.

Run: ``python -m bench.minimal_relay UPSTREAM_URL PORT``
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

PATH = "/api/v1/services/aigc/text-generation/generation"
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def chat(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    session = request.app[SESSION]
    await ws.send_str(json.dumps({"type": "connected"}))
    async for msg in ws:
        frame = json.loads(msg.data)
        message_id = frame["id"]
        body = {
            "model": "qwen-plus",
            "input": {"messages": [{"role": "user", "content": frame["text"]}]},
            "parameters": {"incremental_output": True, "result_format": "message"},
        }
        await ws.send_str(json.dumps({"type": "start", "message_id": message_id}))
        seq, length = 0, 0
        async with session.post(
            request.app[UPSTREAM] + PATH, json=body, headers={"X-DashScope-SSE": "enable"}
        ) as resp:
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                text = json.loads(line[5:])["output"]["choices"][0]["message"]["content"]
                if text:
                    seq += 1
                    length += len(text)
                    await ws.send_str(
                        json.dumps(
                            {"type": "delta", "message_id": message_id, "seq": seq, "text": text}
                        )
                    )
        await ws.send_str(
            json.dumps(
                {"type": "done", "message_id": message_id, "seq": seq, "content_length": length}
            )
        )
    return ws


async def client_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app[SESSION] = session
        yield


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    app = web.Application()
    app[UPSTREAM] = sys.argv[1]
    app.cleanup_ctx.append(client_session)
    app.router.add_get("/ws", chat)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[2]),
        access_log=None,
        print=None,
        shutdown_timeout=1,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
