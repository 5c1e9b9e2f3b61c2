"""The relay session's own work, beside relaying: large events read and large appends
converted a step per loop turn (later client frames held in order meanwhile), the protocol's
clock (silence fill, the answer after a commit, the start-up timeout) and the client's token
budget. Part of
:class:`~realtime_bridge.server.bridge.BridgeSession`."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from realtime_bridge.errors import ClientError, ErrorCode, UpstreamError
from realtime_bridge.observability import SessionLogger
from realtime_bridge.protocol.events import peek_type
from realtime_bridge.protocol.large_events import LargeEventReader
from realtime_bridge.protocol.server_tools import CallToStart
from realtime_bridge.protocol.session import Routed, SessionProtocol
from realtime_bridge.server.channel import ClientConnection
from realtime_bridge.server.endings import Ending, ending_for_error
from realtime_bridge.server.tool_calls import SessionTools

_monotonic = time.monotonic


class SessionChores:
    """What a :class:`BridgeSession` does besides relaying (its state is the session's)."""

    _protocol: SessionProtocol
    _client: ClientConnection
    _log: SessionLogger
    _debug: bool
    _ended: asyncio.Future[Ending]
    _timer: asyncio.TimerHandle | None
    _holding_paused: bool
    _busy: bool
    _waiting: deque[str | bytes]
    _reader: LargeEventReader | None
    _tools: SessionTools | None
    _charge: Callable[[int, float], bool] | None

    def _end(self, ending: Ending) -> None:
        raise NotImplementedError

    def _send_upstream(self, frames: tuple[str, ...]) -> None:
        raise NotImplementedError

    def _send_client(self, frames: tuple[str | bytes, ...]) -> None:
        raise NotImplementedError

    def _internal_error(self, doing: str) -> None:
        raise NotImplementedError

    def _from_client(self, route: Callable[[Any, float], Routed], data: object, size: int) -> None:
        raise NotImplementedError

    def client_text(self, text: str) -> None:
        raise NotImplementedError

    def client_binary(self, data: bytes) -> None:
        raise NotImplementedError

    # -- large events and appends, a step per loop turn ----------------------------------------

    def _hold_client(self) -> None:
        """Later client frames wait, in order, and the client is not read meanwhile."""
        self._busy = True
        self._client.pause_reading("convert")

    def _release_client(self) -> None:
        """Route what came meanwhile, in order, and read the client again (unless one of those
        frames starts another long job)."""
        self._busy = False
        while self._waiting and not self._busy:
            item = self._waiting.popleft()
            if isinstance(item, str):
                self.client_text(item)
            else:
                self.client_binary(item)
        if not self._busy:
            self._client.resume_reading("convert")

    def _start_reading(self, text: str) -> None:
        """A large text frame: read a step per loop turn (see :mod:`.large_events`), then routed."""
        self._reader = self._protocol.large_event_reader(text)
        self._hold_client()
        asyncio.get_running_loop().call_soon(self._next_read_step)

    def _next_read_step(self) -> None:
        reader = self._reader
        if self._ended.done() or reader is None:
            return
        try:
            done = reader.step()
        except Exception:
            self._internal_error("reading a large client event")
            return
        if not done:
            asyncio.get_running_loop().call_soon(self._next_read_step)
            return
        self._reader = None
        self._busy = False
        self._from_client(self._protocol.from_large_event, reader.result, len(reader.text))
        if not self._busy:  # routing it did not start slicing a large append
            self._release_client()

    def _start_slicing(self) -> None:
        """A large append to convert: a slice per loop turn, the client unread meanwhile and
        what it already sent kept, in order, for after."""
        self._hold_client()
        asyncio.get_running_loop().call_soon(self._next_slice)

    def _next_slice(self) -> None:
        if self._ended.done():
            return
        try:
            frame = self._protocol.next_slice()
            if frame is not None:
                self._send_upstream((frame,))
        except UpstreamError:
            pass  # the upstream is gone; its callback says how
        except Exception:
            self._internal_error("converting a large append")
            return
        if self._protocol.slicer is not None:
            asyncio.get_running_loop().call_soon(self._next_slice)
            return
        self._release_client()

    # -- the operator's tools ---------------------------------------------------------------

    def _start_tools(self, calls: tuple[CallToStart, ...]) -> None:
        assert self._tools is not None
        for call in calls:
            self._tools.start(call, self._tool_finished)

    def _tool_finished(self, call_id: str, output: str) -> None:
        """A server tool returned: its output (and maybe the follow-up) goes upstream."""
        if self._ended.done():
            return
        self._bridge_step(
            lambda: self._protocol.tool_finished(call_id, output), "answering a server tool call"
        )

    def _spend(self, tokens: int) -> None:
        """After the response that spent it, a client out of budget is told and closed."""
        assert self._charge is not None
        if not self._charge(tokens, time.time()):
            error = ClientError(
                ErrorCode.QUOTA_EXCEEDED, "The daily token budget of this client is spent."
            )
            self._end(ending_for_error(error, "quota_exceeded"))

    # -- the bridge's own clock: silence fill, answers after a commit, start-up ---------------

    def _after_bridge_step(self) -> None:
        """Resume a client held back for the start-up configuration once that is done, and
        make sure the protocol's next deadline has a timer."""
        if self._holding_paused and not self._protocol.holding_over_limit:
            self._holding_paused = False
            self._client.resume_reading("startup")
        self._arm_timer()

    def _arm_timer(self) -> None:
        """One timer per session at the protocol's next deadline. A deadline that moved later
        (the client kept talking) only costs one early wake-up, which re-arms."""
        deadline = self._protocol.next_deadline()
        if deadline is None:
            return
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._ended.done():
            return
        self._bridge_step(lambda: self._protocol.tick(_monotonic()), "running the session's timer")

    def _bridge_step(self, step: Callable[[], Routed], doing: str) -> None:
        """Send on what one of the bridge's own steps (its clock, a tool's answer) routed."""
        try:
            routed = step()
            if routed.to_client:
                self._send_client(routed.to_client)
            if routed.to_upstream:
                self._send_upstream(routed.to_upstream)
                self._log_bridge_frames(routed.to_upstream)
            self._after_bridge_step()
        except UpstreamError:
            pass  # the upstream is gone; its callback says how
        except Exception:
            self._internal_error(doing)

    def _log_bridge_frames(self, frames: tuple[str, ...]) -> None:
        if self._debug:
            for frame in frames:
                self._log.debug(
                    "bridge → upstream", extra={"type": peek_type(frame), "bytes": len(frame)}
                )


__all__ = ["SessionChores"]
