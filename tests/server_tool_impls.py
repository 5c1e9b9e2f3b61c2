"""Python tools the end-to-end server-tool tests name in their policy files."""

from __future__ import annotations

import threading
from typing import Any

#: Arguments each call got, in order: proof that the bridge, not the client, ran the tool.
CALLS: list[dict[str, Any]] = []

#: A policy file's entry declaring :func:`get_weather` for every client.
WEATHER_TOOL_TOML = """
[[default.tools]]
name = "get_weather"
description = "The weather in a city."
parameters = { type = "object", properties = { city = { type = "string" } } }
python = "tests.server_tool_impls:get_weather"
"""


def get_weather(arguments: dict[str, Any]) -> dict[str, Any]:
    """A sync tool: it runs in a thread."""
    CALLS.append(arguments)
    assert threading.current_thread() is not threading.main_thread()
    return {"forecast": f"sunny in {arguments.get('city', 'nowhere')}"}


async def failing_lookup(arguments: dict[str, Any]) -> str:
    """An async tool that fails: the model gets an error output it can speak about."""
    CALLS.append(arguments)
    raise RuntimeError("a private detail that must not reach a log")


#: A sync tool that holds its thread until the test lets it go.
STARTED = threading.Event()
RELEASE = threading.Event()


def blocking_tool(arguments: dict[str, Any]) -> str:
    CALLS.append(arguments)
    STARTED.set()
    RELEASE.wait(10)
    return "released"
