"""The server tools' protocol rules on their own: pure events in, frames and calls out."""

from __future__ import annotations

from typing import Any

import orjson

from realtime_bridge.protocol.server_tools import EVENT_ID_PREFIX, ServerTools

LOOKUP = {"type": "function", "name": "lookup", "description": "", "parameters": {}}
CLIENT = {"type": "function", "name": "open_door", "parameters": {}}


def call_item(call_id: str, name: str = "lookup") -> dict[str, Any]:
    return {
        "id": f"item_{call_id}",
        "type": "function_call",
        "name": name,
        "call_id": call_id,
        "arguments": '{"q":1}',
        "status": "completed",
    }


def done(response_id: str, *items: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "type": "response.done",
        "response": {"id": response_id, "status": status, "output": list(items)},
    }


def test_a_call_seen_only_in_response_done_still_runs_and_is_answered() -> None:
    tools = ServerTools([LOOKUP], frozenset())
    event = done("r1", call_item("c1"), {"type": "message", "content": []})
    step = tools.upstream_event("response.done", event)
    assert [(c.name, c.call_id, c.arguments) for c in step.start] == [("lookup", "c1", '{"q":1}')]
    assert step.changed
    assert [o["type"] for o in event["response"]["output"]] == ["message"]  # the server's out
    output, follow_up = (orjson.loads(f) for f in tools.finished("c1", '{"a":1}'))
    assert output["item"] == {"type": "function_call_output", "call_id": "c1", "output": '{"a":1}'}
    assert follow_up["type"] == "response.create"
    assert follow_up["event_id"].startswith(EVENT_ID_PREFIX)


def test_no_follow_up_when_the_response_also_called_a_client_tool_or_did_not_complete() -> None:
    for event in (
        done("r1", call_item("c1"), call_item("c2", name="open_door")),
        done("r1", call_item("c1"), status="incomplete"),
    ):
        tools = ServerTools([LOOKUP], frozenset())
        tools.upstream_event("response.done", event)
        assert [orjson.loads(f)["type"] for f in tools.finished("c1", "{}")] == [
            "conversation.item.create"
        ]


def test_client_tools_merge_and_a_clash_is_refused() -> None:
    tools = ServerTools([LOOKUP], frozenset())
    session: dict[str, Any] = {"tools": [CLIENT, {"type": "function", "name": "lookup"}]}
    assert tools.merge_client_tools(session) == ["lookup"]
    assert session["tools"] == [CLIENT, LOOKUP]
    shown = {"tools": [CLIENT, LOOKUP]}
    assert tools.hide_definitions(shown)
    assert shown["tools"] == [CLIENT]
    assert not tools.merge_client_tools({"instructions": "no tools key: nothing to merge"})


def test_errors_about_the_bridges_own_events_are_hidden_and_others_shown() -> None:
    tools = ServerTools([LOOKUP], frozenset())
    own = {"type": "error", "error": {"event_id": f"{EVENT_ID_PREFIX}3", "code": "x"}}
    theirs = {"type": "error", "error": {"event_id": "evt_client", "code": "x"}}
    assert tools.upstream_event("error", own).hide
    assert not tools.upstream_event("error", theirs).hide


def test_the_outputs_the_bridge_created_are_hidden_too() -> None:
    tools = ServerTools([LOOKUP], frozenset())
    tools.upstream_event(
        "response.output_item.added", {"response_id": "r1", "item": call_item("c1")}
    )
    echo = {"item": {"type": "function_call_output", "call_id": "c1", "output": "{}"}}
    assert tools.upstream_event("conversation.item.added", echo).hide
    other = {"item": {"type": "function_call_output", "call_id": "c9", "output": "{}"}}
    assert not tools.upstream_event("conversation.item.added", other).hide
