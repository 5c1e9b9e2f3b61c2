"""The local "model" remembers: "what did I say first?" quotes the conversation's first user
message, including a conversation replayed as client-created items that keep their ids (what a
bridge resuming a dropped session sends a fresh one)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.realtime.conversation_item_create_event import ConversationItemCreateEvent
from pydantic import TypeAdapter

from realtime_bridge.upstream.local.responder import (
    TextReply,
    ToolCall,
    asks_what_was_said_first,
    respond,
)
from tests.schema import validate_strict

CREATE_EVENT: TypeAdapter[ConversationItemCreateEvent] = TypeAdapter(ConversationItemCreateEvent)
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def create(item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A ``conversation.item.create`` event, checked against the SDK's GA type first."""
    ev = {"type": "conversation.item.create", "item": item, **extra}
    validate_strict(CREATE_EVENT, ev)
    return ev


def user(text: str, item_id: str | None = None) -> dict[str, Any]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {**item, "id": item_id} if item_id else item


def assistant(text: str, item_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def replayed(prefix: str = "item_old") -> list[dict[str, Any]]:
    """A conversation as a resuming bridge replays it: original ids, text, a tool round trip."""
    return [
        {
            "id": f"{prefix}_sys",
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "Be brief."}],
        },
        user("My name is Ada and I like tea.", f"{prefix}_u1"),
        assistant('You said: "My name is Ada and I like tea." Thanks, I got that.', f"{prefix}_a1"),
        user("What is the weather in Lisbon?", f"{prefix}_u2"),
        {
            "id": f"{prefix}_fc",
            "type": "function_call",
            "call_id": "call_old_1",
            "name": "get_weather",
            "arguments": '{"city": "Lisbon"}',
            # as the bridge saw it in conversation.item.done: these are accepted too
            "object": "realtime.item",
            "status": "completed",
        },
        {
            "id": f"{prefix}_fo",
            "type": "function_call_output",
            "call_id": "call_old_1",
            "output": '{"sky": "clear"}',
        },
        assistant("According to the get_weather tool: sky is clear.", f"{prefix}_a2"),
    ]


def text_of(events: list[dict[str, Any]]) -> str:
    done = next(e for e in events if e["type"] == "response.done")["response"]
    text: str = done["output"][0]["content"][0]["text"]
    return text


def ask(d: Any, text: str, **response: Any) -> str:
    """Send a user message and have the text answer to it."""
    d.send(create(user(text)))
    events = d.send({"type": "response.create", "response": response}) + d.run_until_idle()
    return text_of(events)


# -- the question ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "what did I say first?",
        "What did I say first",
        "WHAT DID I SAY FIRST?!",
        "  What did I say, first ?  ",
        "what did I first say?",
        "So, what did I say first again?",
        "what was my first message?",
        "What was my very first message...",
        "What's my first message?",
        "what was the first thing I said?",
        "Remind me: what did I say first?",
        "what did i say first.",
    ],
)
def test_the_question_is_recognised(text: str) -> None:
    assert asks_what_was_said_first(text)


@pytest.mark.parametrize(
    "text",
    [
        "what did I say?",
        "What did I say last?",
        "First, what did I say about the weather?",
        "I want to know what did I say first about the weather",
        "what did I say first thing this morning to the doctor?",
        "Tell me about my first message to the board",
        "I said first things first.",
        "what did you say first?",
        "what was your first message?",
        "",
    ],
)
def test_other_messages_are_not_the_question(text: str) -> None:
    assert not asks_what_was_said_first(text)


def context_of(*texts: str) -> list[dict[str, Any]]:
    return [user(t, f"item_{i}") for i, t in enumerate(texts)]


def test_the_answer_quotes_the_earliest_user_message() -> None:
    context = context_of("Hello there.", "I like tea.", "What did I say first?")
    reply = respond(context, instructions="", tools=[], tool_choice="auto")
    assert reply == TextReply('You first said: "Hello there."')


def test_the_question_alone_has_nothing_before_it() -> None:
    reply = respond(
        context_of("What did I say first?"), instructions="", tools=[], tool_choice="auto"
    )
    assert reply == TextReply("This is the first thing you have said to me.")


def test_a_long_first_message_is_cut_like_any_quote() -> None:
    reply = respond(
        context_of("word " * 100, "what did I say first?"),
        instructions="",
        tools=[],
        tool_choice="auto",
    )
    assert isinstance(reply, TextReply)
    assert reply.text.startswith('You first said: "word word')
    assert reply.text.endswith('…"')


def test_rules_order_around_the_question() -> None:
    context = context_of("I like tea.", "what did I say first?")
    # it wins over quoting and over scripted replies
    for instructions in ("", "Reply with: Scripted."):
        reply = respond(context, instructions=instructions, tools=[], tool_choice="auto")
        assert reply == TextReply('You first said: "I like tea."')
    # a tool the session must call is still called
    reply = respond(context, instructions="", tools=[TOOL], tool_choice="required")
    assert isinstance(reply, ToolCall)
    assert reply.name == "get_weather"
    # a function call's output, last, is still what is answered
    output = {"type": "function_call_output", "call_id": "c1", "output": '{"sky": "clear"}'}
    reply = respond([*context, output], instructions="", tools=[TOOL], tool_choice="auto")
    assert reply == TextReply("According to the tool: sky is clear.")
    # a tool named in the message is called, question or not
    named = context_of("I like tea.", "what did I say first? and get the weather in Lisbon")
    reply = respond(named, instructions="", tools=[TOOL], tool_choice="auto")
    assert isinstance(reply, ToolCall)
    # the question as a mention inside another message is quoted, as before
    mention = context_of("I like tea.", "Do you know what did I say first about tea?")
    reply = respond(mention, instructions="", tools=[], tool_choice="auto")
    assert isinstance(reply, TextReply)
    assert reply.text.startswith('You asked: "Do you know')


# -- through the core -----------------------------------------------------------------------


def test_a_conversation_remembers_its_first_message(h: Any) -> None:
    d = h.CoreDriver()
    d.update(output_modalities=["text"])
    first = ask(d, "My name is Ada and I like tea.")
    assert first == 'You said: "My name is Ada and I like tea." Thanks, I got that.'
    ask(d, "The sky is blue today.")
    assert ask(d, "what did I say first?") == 'You first said: "My name is Ada and I like tea."'
    # an earlier question about it does not change what came first
    assert ask(d, "What was my first message?") == (
        'You first said: "My name is Ada and I like tea."'
    )


def test_an_audio_first_message_is_quoted_by_its_transcript(h: Any) -> None:
    d = h.CoreDriver()
    d.update(
        output_modalities=["text"],
        audio={"input": {"turn_detection": None, "transcription": {"model": "gpt-4o-transcribe"}}},
    )
    d.append(h.pcm16(h.speech("hello there, how are you")))
    events = d.send({"type": "input_audio_buffer.commit"})
    transcript = next(
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
    )["transcript"]
    assert transcript
    assert ask(d, "what did I say first?") == f'You first said: "{transcript}"'


def test_a_client_audio_item_with_its_transcript(h: Any) -> None:
    d = h.CoreDriver()
    d.update(output_modalities=["text"])
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": "I was first, by voice."}],
    }
    d.send(create(item))
    assert ask(d, "what did I say first?") == 'You first said: "I was first, by voice."'


def test_an_untranscribed_audio_first_message(h: Any) -> None:
    d = h.CoreDriver()
    d.update(output_modalities=["text"], audio={"input": {"turn_detection": None}})
    d.append(h.pcm16(h.speech("hello there")))
    d.send({"type": "input_audio_buffer.commit"})
    answer = ask(d, "what did I say first?")
    assert answer.startswith("You first sent about ")
    assert answer.endswith(" seconds of audio, which I did not transcribe.")


# -- a replayed conversation: client-created items keep their ids ----------------------------


def test_replayed_items_keep_their_ids_and_the_memory(h: Any) -> None:
    d = h.CoreDriver()
    d.update(output_modalities=["text"], tools=[TOOL])
    items = replayed()
    previous = None
    for item in items:
        added, done = d.send(create(item))
        assert (added["type"], done["type"]) == (
            "conversation.item.added",
            "conversation.item.done",
        )
        for ev in (added, done):
            assert ev["item"]["id"] == item["id"]
            assert ev["previous_item_id"] == previous
            assert ev["item"]["status"] == "completed"
            assert ev["item"]["object"] == "realtime.item"
            assert ev["item"]["type"] == item["type"]
        previous = item["id"]
    assert [s.item["id"] for s in d.core.conversation.items] == [i["id"] for i in items]
    fc, fo = (d.core.conversation.find(f"item_old_{k}") for k in ("fc", "fo"))
    assert fc is not None
    assert fo is not None
    assert (fc.item["call_id"], fc.item["name"], fc.item["arguments"]) == (
        "call_old_1",
        "get_weather",
        '{"city": "Lisbon"}',
    )
    assert (fo.item["call_id"], fo.item["output"]) == ("call_old_1", '{"sky": "clear"}')

    # the next turn: the model knows what was said before the replay
    d.send(create(user("what did I say first?", "item_new_q")))
    events = d.send({"type": "response.create"}) + d.run_until_idle()
    assert text_of(events) == 'You first said: "My name is Ada and I like tea."'
    added = next(e for e in events if e["type"] == "conversation.item.added")
    assert added["previous_item_id"] == "item_new_q"
    assert added["item"]["id"] not in {i["id"] for i in items}

    # retrieve, truncate and delete find the client's ids
    (retrieved,) = d.send({"type": "conversation.item.retrieve", "item_id": "item_old_a1"})
    assert retrieved["item"]["id"] == "item_old_a1"
    assert retrieved["item"]["content"] == [
        {"type": "output_text", "text": items[2]["content"][0]["text"]}
    ]
    (retrieved,) = d.send({"type": "conversation.item.retrieve", "item_id": "item_old_fc"})
    assert retrieved["item"]["call_id"] == "call_old_1"
    (err,) = d.send(
        {
            "type": "conversation.item.truncate",
            "item_id": "item_old_a1",
            "content_index": 0,
            "audio_end_ms": 0,
        }
    )
    # found by its id, refused as the API refuses any text item
    assert err["type"] == "error"
    assert err["error"]["message"] == "Only model output audio messages can be truncated"
    (deleted,) = d.send({"type": "conversation.item.delete", "item_id": "item_old_u1"})
    assert deleted == {**deleted, "type": "conversation.item.deleted", "item_id": "item_old_u1"}
    # with the first message gone, the first one left is the one quoted
    assert ask(d, "what did I say first?") == 'You first said: "What is the weather in Lisbon?"'
    (err,) = d.send({"type": "conversation.item.retrieve", "item_id": "item_old_u1"})
    assert err["error"]["code"] == "item_not_found"


def test_a_replayed_id_cannot_be_created_twice(h: Any) -> None:
    d = h.CoreDriver()
    d.send(create(user("once", "item_same")))
    (err,) = d.send(create(user("twice", "item_same")))
    assert (err["error"]["code"], err["error"]["param"]) == ("item_id_already_exists", "item.id")


def test_a_replayed_tool_round_trip_is_answered_as_the_models_own(h: Any) -> None:
    """Items replayed up to a function call's output: the next response answers from it."""
    d = h.CoreDriver()
    d.update(output_modalities=["text"], tools=[TOOL])
    for item in replayed()[:6]:  # up to the function_call_output
        d.send(create(item))
    events = d.send({"type": "response.create"}) + d.run_until_idle()
    assert text_of(events) == "According to the get_weather tool: sky is clear."


async def test_replay_and_question_over_both_transports(h: Any, open_client: Any) -> None:
    client = await open_client()
    assert (await client.next())["type"] == "session.created"
    await client.send(
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
    )
    await h.wait_for(client, "session.updated")
    for item in replayed("item_r"):
        await client.send(create(item))
        done = await h.wait_for(client, "conversation.item.done")
        assert done["item"]["id"] == item["id"]
    await client.send(create(user("What did I say first?")))
    await h.wait_for(client, "conversation.item.done")
    await client.send({"type": "response.create"})
    done = (await h.wait_for(client, "response.done"))["response"]
    assert done["output"][0]["content"][0]["text"] == (
        'You first said: "My name is Ada and I like tea."'
    )
