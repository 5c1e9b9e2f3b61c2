"""Tool functions the runner tests point ``ToolSpec.python`` at ("tests.tools.sample_tools:…")."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

#: Set by :func:`blocking` once it runs; :func:`blocking` returns once :data:`RELEASE` is set.
ENTERED = threading.Event()
RELEASE = threading.Event()
#: The arguments :func:`recorded` was called with.
CALLS: list[dict[str, Any]] = []

NOT_CALLABLE = 3


def lookup(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": arguments["order_id"], "status": "shipped", "thread": threading.get_ident()}


def plain_text(arguments: dict[str, Any]) -> str:
    return "It is sunny."


async def lookup_async(arguments: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"echo": arguments, "async": True}


def broken(arguments: dict[str, Any]) -> None:
    # The message holds the caller's data: it must reach neither the output nor a log line.
    raise LookupError(f"no order for {arguments}")


def not_json(arguments: dict[str, Any]) -> set[int]:
    return {1, 2}


def recorded(arguments: dict[str, Any]) -> str:
    CALLS.append(arguments)
    return "recorded"


def echo(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"echo": arguments}


def blocking(arguments: dict[str, Any]) -> dict[str, Any]:
    ENTERED.set()
    if not RELEASE.wait(10):
        raise TimeoutError("never released")
    return {"released": True}
