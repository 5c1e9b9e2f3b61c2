"""The server tool calls of one session, running beside its relay.

Each call is its own task, so several calls of one response run at once and none holds the
relay (a sync tool runs in a thread, see :mod:`realtime_bridge.tools.runner`). A finished call
hands its output back to the session, which routes it through its protocol rules (the output
item, then maybe the follow-up response). When the session ends, calls still running are
cancelled: a webhook in flight is dropped, a sync function's thread runs on, its result unused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from realtime_bridge.protocol.server_tools import CallToStart, ServerTools
from realtime_bridge.tools.runner import ToolCall, ToolRunner
from realtime_bridge.tools.spec import ToolSpec


class SessionTools:
    """The operator's tools for one session, and the calls in flight."""

    def __init__(self, runner: ToolRunner, specs: tuple[ToolSpec, ...], session_id: str) -> None:
        self._runner = runner
        self._specs = {spec.name: spec for spec in specs}
        self._session_id = session_id
        self._running: set[asyncio.Task[None]] = set()

    def rules(self) -> ServerTools:
        """The protocol side of these tools, for the session's :class:`SessionProtocol`."""
        visible = frozenset(name for name, spec in self._specs.items() if spec.visible)
        return ServerTools([spec.definition() for spec in self._specs.values()], visible)

    def start(self, call: CallToStart, finished: Callable[[str, str], None]) -> None:
        """Run ``call``; ``finished(call_id, output)`` is called with its output."""
        spec = self._specs.get(call.name)
        if spec is None:  # the model named no tool of ours: answer so the turn goes on
            finished(call.call_id, '{"error":"unknown_tool"}')
            return
        task = asyncio.create_task(self._run(spec, call, finished), name=f"tool {call.name}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(
        self, spec: ToolSpec, call: CallToStart, finished: Callable[[str, str], None]
    ) -> None:
        result = await self._runner.run(
            spec, ToolCall(call.name, call.call_id, call.arguments, self._session_id)
        )
        finished(call.call_id, result.output)

    @property
    def running(self) -> int:
        return len(self._running)

    def cancel(self) -> None:
        """The session ended: calls still running are dropped."""
        for task in self._running:
            task.cancel()


__all__ = ["SessionTools"]
