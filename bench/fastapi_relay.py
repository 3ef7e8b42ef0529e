"""A FastAPI + httpx relay written the way tutorials write it (one shared AsyncClient).

Run: python -m bench.fastapi_relay UPSTREAM_URL PORT
"""

from __future__ import annotations

import json
import sys

import httpx
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

PATH = "/api/v1/services/aigc/text-generation/generation"
app = FastAPI()
# Tutorials share one client (its default pool: 100 connections) and turn its timeouts off.
client = httpx.AsyncClient(timeout=None)  # noqa: S113
UPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8089"


@app.websocket("/ws")
async def chat(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(json.dumps({"type": "connected"}))
    try:
        while True:
            frame = json.loads(await ws.receive_text())
            body = {
                "model": "qwen-plus",
                "input": {"messages": [{"role": "user", "content": frame["text"]}]},
                "parameters": {"incremental_output": True, "result_format": "message"},
            }
            await ws.send_text(json.dumps({"type": "start", "message_id": frame["id"]}))
            seq, length = 0, 0
            async with client.stream(
                "POST", UPSTREAM + PATH, json=body, headers={"X-DashScope-SSE": "enable"}
            ) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        text = json.loads(line[5:])["output"]["choices"][0]["message"]["content"]
                        if text:
                            seq += 1
                            length += len(text)
                            await ws.send_text(
                                json.dumps(
                                    {
                                        "type": "delta",
                                        "message_id": frame["id"],
                                        "seq": seq,
                                        "text": text,
                                    }
                                )
                            )
            await ws.send_text(
                json.dumps(
                    {
                        "type": "done",
                        "message_id": frame["id"],
                        "seq": seq,
                        "content_length": length,
                    }
                )
            )
    except WebSocketDisconnect:
        pass


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
