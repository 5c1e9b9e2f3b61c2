"""What the Python relay peers share: their command line, and serving until SIGTERM/SIGINT.

Each peer is run as a script (``python bench/peers/<lib>_relay.py``), so this module sits
beside them and is imported by name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

Serve = Callable[[str, int, str], Coroutine[Any, Any, None]]


async def until_stopped() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_peer(serve: Serve, doc: str | None) -> None:
    """Parse ``--host --port --upstream [--uvloop]``, run ``serve`` on the chosen loop, exit 0."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.uvloop:
            import uvloop

            uvloop.run(serve(args.host, args.port, args.upstream))
        else:
            asyncio.run(serve(args.host, args.port, args.upstream))
    sys.exit(0)
