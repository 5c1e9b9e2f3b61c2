"""Tools the operator defines and the bridge runs: what a session's protocol does about them.

The bridge tells the upstream its tools beside the client's, hides their definitions and (by
default) their calls from the client, and answers each call as a careful client would: the
``function_call_output`` item when the tool returns, then one ``response.create`` once every
call of the response is answered and the response is done. No response is asked for a turn
that was cancelled (``response.cancel``, barge-in) or whose response also called client tools
(the client answers those and asks itself). Pure: events in, frames and calls to start out; the
session runs the tools (:mod:`realtime_bridge.tools`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from realtime_bridge.protocol.events import dumps

#: Event ids of the bridge's own tool events; errors about them are the bridge's, not shown.
EVENT_ID_PREFIX = "evt_bridge_tool_"
FUNCTION_CALL = "function_call"
FUNCTION_CALL_OUTPUT = "function_call_output"
#: Events that carry a whole item: a server call's, or the output the bridge gave it.
ITEM_CARRIERS = frozenset(
    {
        "response.output_item.added",
        "response.output_item.done",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.created",
        "conversation.item.retrieved",
    }
)
ARGUMENTS_DELTA = "response.function_call_arguments.delta"
ARGUMENTS_DONE = "response.function_call_arguments.done"
#: Upstream events the rules read when the session has server tools.
TOOL_EVENTS = ITEM_CARRIERS | {
    ARGUMENTS_DELTA,
    ARGUMENTS_DONE,
    "response.done",
    "error",
    "input_audio_buffer.speech_started",
}


@dataclass(frozen=True, slots=True)
class CallToStart:
    """A server tool call whose arguments are complete: the session runs it."""

    name: str
    call_id: str
    arguments: str


@dataclass(slots=True)
class _Response:
    """The server calls of one upstream response, and what decides its follow-up."""

    calls: set[str] = field(default_factory=set)  # call ids not answered yet
    done: bool = False
    asks_again: bool = True  # completed, not interrupted, no client calls in it


@dataclass(slots=True)
class ToolStep:
    """What one upstream event means for the server tools."""

    hide: bool = False
    changed: bool = False  # the event was edited in place (server items taken out)
    start: list[CallToStart] = field(default_factory=list)
    to_upstream: list[str] = field(default_factory=list)


class ServerTools:
    """One session's server tools: their definitions, and the calls in flight."""

    def __init__(self, definitions: list[dict[str, Any]], visible: frozenset[str]) -> None:
        self.definitions = definitions
        self.names = frozenset(d["name"] for d in definitions)
        self._visible = visible
        self._items: dict[str, str] = {}  # item id -> call id, for server calls
        self._names: dict[str, str] = {}  # call id -> tool name
        self._calls: dict[str, str] = {}  # call id -> response id
        self._started: set[str] = set()
        self._responses: dict[str, _Response] = {}
        self._sequence = 0

    # -- client → upstream ------------------------------------------------------------------

    def merge_client_tools(self, session: dict[str, Any]) -> list[str]:
        """A client ``session.update``'s tools with the server's added (in place); the names of
        client tools refused because a server tool has them."""
        tools = session.get("tools")
        if not isinstance(tools, list):
            return []
        refused = [
            t.get("name", "") for t in tools if isinstance(t, dict) and t.get("name") in self.names
        ]
        kept = [t for t in tools if not (isinstance(t, dict) and t.get("name") in self.names)]
        session["tools"] = kept + self.definitions
        return refused

    def client_cancelled(self) -> None:
        """``response.cancel`` from the client: no follow-up for the calls in flight."""
        for response in self._responses.values():
            response.asks_again = False

    # -- upstream → client ------------------------------------------------------------------

    def hide_definitions(self, session: object) -> bool:
        """Take the server's tools out of a ``session.created/updated`` the client sees."""
        tools = session.get("tools") if isinstance(session, dict) else None
        if not isinstance(tools, list) or not self.names:
            return False
        kept = [t for t in tools if not (isinstance(t, dict) and t.get("name") in self.names)]
        if len(kept) == len(tools):
            return False
        assert isinstance(session, dict)
        session["tools"] = kept
        return True

    def upstream_event(self, event_type: str, event: dict[str, Any]) -> ToolStep:
        step = ToolStep()
        if event_type in ITEM_CARRIERS:
            call_id = self._item_event(event)
            step.hide = call_id is not None and not self._shown(call_id)
        elif event_type in (ARGUMENTS_DELTA, ARGUMENTS_DONE):
            call_id = self._items.get(str(event.get("item_id")))
            if call_id is not None:
                step.hide = not self._shown(call_id)
                if event_type == ARGUMENTS_DONE:
                    self._start(step, call_id, event.get("arguments"))
        elif event_type == "response.done":
            self._response_done(event, step)
        elif event_type == "error":
            error = event.get("error")
            step.hide = isinstance(error, dict) and str(error.get("event_id", "")).startswith(
                EVENT_ID_PREFIX
            )
        elif event_type == "input_audio_buffer.speech_started":
            self.client_cancelled()  # barge-in: the user is speaking again
        return step

    def finished(self, call_id: str, output: str) -> list[str]:
        """A call returned: its output item, and the follow-up once the response is answered."""
        self._sequence += 1
        item = {"type": FUNCTION_CALL_OUTPUT, "call_id": call_id, "output": output}
        frames = [
            dumps(
                {
                    "type": "conversation.item.create",
                    "event_id": f"{EVENT_ID_PREFIX}{self._sequence}",
                    "item": item,
                }
            )
        ]
        response_id = self._calls.get(call_id)
        response = self._responses.get(response_id) if response_id is not None else None
        if response_id is not None and response is not None:
            response.calls.discard(call_id)
            frames += self._follow_up(response_id, response)
        return frames

    # -- inside -----------------------------------------------------------------------------

    def _item_event(self, event: dict[str, Any]) -> str | None:
        """Record a server call's item; the call id when the event is about a server call or
        the output the bridge gave it (None: not the server's)."""
        item = event.get("item")
        if not isinstance(item, dict):
            return None
        call_id = str(item.get("call_id"))
        if item.get("type") == FUNCTION_CALL and item.get("name") in self.names:
            self._items[str(item.get("id"))] = call_id
            self._names[call_id] = str(item["name"])
            response_id = event.get("response_id")
            if isinstance(response_id, str):
                self._track(call_id, response_id)
            return call_id
        if item.get("type") == FUNCTION_CALL_OUTPUT and call_id in self._names:
            return call_id
        return None

    def _track(self, call_id: str, response_id: str) -> None:
        if call_id not in self._calls:
            self._calls[call_id] = response_id
            self._responses.setdefault(response_id, _Response()).calls.add(call_id)

    def _shown(self, call_id: str) -> bool:
        return self._names.get(call_id) in self._visible

    def _start(self, step: ToolStep, call_id: str, arguments: object) -> None:
        if call_id in self._started:
            return
        self._started.add(call_id)
        text = arguments if isinstance(arguments, str) else "{}"
        step.start.append(CallToStart(self._names.get(call_id, ""), call_id, text))

    def _response_done(self, event: dict[str, Any], step: ToolStep) -> None:
        response = event.get("response")
        if not isinstance(response, dict):
            return
        response_id = str(response.get("id"))
        output = response.get("output")
        mine: list[dict[str, Any]] = []
        client_calls = False
        if isinstance(output, list):
            for item in output:
                if not isinstance(item, dict) or item.get("type") != FUNCTION_CALL:
                    continue
                if item.get("name") in self.names:
                    mine.append(item)
                else:
                    client_calls = True
        for item in mine:  # a call whose arguments.done was not seen still runs
            call_id = str(item.get("call_id"))
            self._items.setdefault(str(item.get("id")), call_id)
            self._names[call_id] = str(item["name"])
            self._track(call_id, response_id)
            self._start(step, call_id, item.get("arguments"))
        state = self._responses.get(response_id)
        if state is None:
            return
        state.done = True
        state.asks_again = (
            state.asks_again and response.get("status") == "completed" and not client_calls
        )
        hidden = [item for item in mine if not self._shown(str(item.get("call_id")))]
        if hidden and isinstance(output, list):
            response["output"] = [item for item in output if item not in hidden]
            step.changed = True
        step.to_upstream += self._follow_up(response_id, state)

    def _follow_up(self, response_id: str, response: _Response) -> list[str]:
        if not response.done or response.calls:
            return []
        del self._responses[response_id]
        if not response.asks_again:
            return []
        self._sequence += 1
        return [
            dumps({"type": "response.create", "event_id": f"{EVENT_ID_PREFIX}{self._sequence}"})
        ]


__all__ = ["EVENT_ID_PREFIX", "TOOL_EVENTS", "CallToStart", "ServerTools", "ToolStep"]
