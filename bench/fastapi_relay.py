"""A FastAPI + httpx relay written the way tutorials write it: one shared ``AsyncClient``.

uvicorn picks uvloop and its default WebSocket implementation; httpx's default pool holds
100 connections, so the 101st concurrent stream waits for a free one, as in production code
written from those tutorials.

Run: ``python -m bench.fastapi_relay UPSTREAM_URL PORT``
"""

from __future__ import annotations

import json
import resource
import sys

import httpx
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

PATH = "/api/v1/services/aigc/text-generation/generation"
UPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8089"
app = FastAPI()
client = httpx.AsyncClient(timeout=None)  # noqa: S113 - tutorials turn the timeouts off


@app.websocket("/ws")
async def chat(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(json.dumps({"type": "connected"}))
    try:
        while True:
            frame = json.loads(await ws.receive_text())
            message_id = frame["id"]
            body = {
                "model": "qwen-plus",
                "input": {"messages": [{"role": "user", "content": frame["text"]}]},
                "parameters": {"incremental_output": True, "result_format": "message"},
            }
            await ws.send_text(json.dumps({"type": "start", "message_id": message_id}))
            seq, length = 0, 0
            async with client.stream(
                "POST", UPSTREAM + PATH, json=body, headers={"X-DashScope-SSE": "enable"}
            ) as resp:
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    text = json.loads(line[5:])["output"]["choices"][0]["message"]["content"]
                    if text:
                        seq += 1
                        length += len(text)
                        await ws.send_text(
                            json.dumps(
                                {
                                    "type": "delta",
                                    "message_id": message_id,
                                    "seq": seq,
                                    "text": text,
                                }
                            )
                        )
            await ws.send_text(
                json.dumps(
                    {"type": "done", "message_id": message_id, "seq": seq, "content_length": length}
                )
            )
    except WebSocketDisconnect:
        pass


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
