"""The reference: a minimal aiohttp relay, as a competent engineer writes it without features.

One WebSocket per client; each `message` is posted to the simulator (DashScope native SSE,
incremental output) and every upstream event becomes one `delta` frame. No auth, history,
backpressure, merging or resume. Run: python -m bench.minimal_relay UPSTREAM_URL PORT
"""

from __future__ import annotations

import json
import sys

import aiohttp
from aiohttp import web

PATH = "/api/v1/services/aigc/text-generation/generation"


async def chat(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    session: aiohttp.ClientSession = request.app["session"]
    await ws.send_str(json.dumps({"type": "connected"}))
    async for msg in ws:
        frame = json.loads(msg.data)
        body = {
            "model": "qwen-plus",
            "input": {"messages": [{"role": "user", "content": frame["text"]}]},
            "parameters": {"incremental_output": True, "result_format": "message"},
        }
        await ws.send_str(json.dumps({"type": "start", "message_id": frame["id"]}))
        seq, length = 0, 0
        async with session.post(
            request.app["url"] + PATH, json=body, headers={"X-DashScope-SSE": "enable"}
        ) as resp:
            async for line in resp.content:
                if line.startswith(b"data:"):
                    event = json.loads(line[5:])
                    text = event["output"]["choices"][0]["message"]["content"]
                    if text:
                        seq += 1
                        length += len(text)
                        await ws.send_str(
                            json.dumps(
                                {
                                    "type": "delta",
                                    "message_id": frame["id"],
                                    "seq": seq,
                                    "text": text,
                                }
                            )
                        )
        await ws.send_str(
            json.dumps(
                {"type": "done", "message_id": frame["id"], "seq": seq, "content_length": length}
            )
        )
    return ws


async def session_ctx(app: web.Application):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app["session"] = session
        yield


def main() -> None:
    app = web.Application()
    app["url"] = sys.argv[1]
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/ws", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)


if __name__ == "__main__":
    main()
