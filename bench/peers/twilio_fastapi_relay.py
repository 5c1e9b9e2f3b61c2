"""A minimal Twilio ⇄ Realtime relay written the way Twilio's published Python sample is
(FastAPI + uvicorn for the media stream, ``websockets`` for the upstream, two coroutines per
call gathered), for bench/twilio_calls.py to compare the bridge against. Our own code.

Per call: Twilio ``media`` → ``input_audio_buffer.append`` upstream; upstream
``response.output_audio.delta`` → Twilio ``media`` plus a ``mark``, as the sample does.

usage: python twilio_fastapi_relay.py --upstream ws://127.0.0.1:P/v1/realtime --port N
"""

from __future__ import annotations

import argparse
import asyncio
import json

import uvicorn
import websockets
from fastapi import FastAPI, WebSocket, WebSocketDisconnect


def make_app(upstream: str) -> FastAPI:
    app = FastAPI()

    @app.websocket("/twilio")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        async with websockets.connect(
            f"{upstream}?model=gpt-realtime",
            additional_headers={"Authorization": "Bearer sk-bench"},
            max_size=None,
        ) as openai_ws:
            await openai_ws.send(
                json.dumps(
                    {
                        "type": "session.update",
                        "session": {
                            "type": "realtime",
                            "audio": {
                                "input": {"format": {"type": "audio/pcmu"}},
                                "output": {"format": {"type": "audio/pcmu"}},
                            },
                        },
                    }
                )
            )
            stream_sid: str | None = None
            marks = 0

            async def receive_from_twilio() -> None:
                nonlocal stream_sid
                try:
                    async for message in websocket.iter_text():
                        data = json.loads(message)
                        if data["event"] == "media":
                            await openai_ws.send(
                                json.dumps(
                                    {
                                        "type": "input_audio_buffer.append",
                                        "audio": data["media"]["payload"],
                                    }
                                )
                            )
                        elif data["event"] == "start":
                            stream_sid = data["start"]["streamSid"]
                        elif data["event"] == "stop":
                            break
                except WebSocketDisconnect:
                    pass
                await openai_ws.close()

            async def send_to_twilio() -> None:
                nonlocal marks
                async for message in openai_ws:
                    response = json.loads(message)
                    if response.get("type") == "response.output_audio.delta":
                        await websocket.send_json(
                            {
                                "event": "media",
                                "streamSid": stream_sid,
                                "media": {"payload": response["delta"]},
                            }
                        )
                        marks += 1
                        await websocket.send_json(
                            {
                                "event": "mark",
                                "streamSid": stream_sid,
                                "mark": {"name": f"m{marks}"},
                            }
                        )

            await asyncio.gather(receive_from_twilio(), send_to_twilio(), return_exceptions=True)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    print(f"relay listening {args.port}", flush=True)
    uvicorn.run(
        make_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ws="websockets",
    )


if __name__ == "__main__":
    main()
