"""The upstream for bench/twilio_calls.py: a Realtime stand-in that answers every
``input_audio_buffer.append`` with a ``response.output_audio.delta`` carrying the same audio, so
each caller frame comes back to the caller through the relay (and its send time with it).

usage: python twilio_echo.py --port N
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvloop
from aiohttp import WSMsgType, web

SESSION = {
    "type": "realtime",
    "audio": {
        "input": {"format": {"type": "audio/pcmu"}},
        "output": {"format": {"type": "audio/pcmu"}},
    },
}
DELTA_HEAD = (
    '{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"item_1",'
    '"output_index":0,"content_index":0,"delta":"'
)


async def handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    await ws.send_str(orjson.dumps({"type": "session.created", "session": SESSION}).decode())
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            break
        event = orjson.loads(msg.data)
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            await ws.send_str(DELTA_HEAD + event["audio"] + '"}')
        elif kind == "session.update":
            await ws.send_str(
                orjson.dumps({"type": "session.updated", "session": SESSION}).decode()
            )
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        print(f"echo listening {args.port}", flush=True)
        await asyncio.Event().wait()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
