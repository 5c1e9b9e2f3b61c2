"""The deterministic "model": what a response says or which tool it calls.

Rules, in order:
1. The last context item is a ``function_call_output`` → an answer that states the output.
2. A tool must or may be called (``tool_choice`` names one, is ``required``, or the last user
   message names a session tool) → a ``function_call`` with JSON arguments built from the tool's
   parameter schema and the message.
3. The last user message asks what the user said first (``what did I say first?``, ``what was
   my first message?``: the whole message, any case and punctuation) → ``You first said: "X"``,
   X being the earliest user message of the context (its text, or an audio item's transcript):
   the memory a resumed session must keep.
4. The instructions contain ``reply with: X`` → the reply is exactly X (scripting for tests/demos).
5. Otherwise it quotes the last user message, so a reader recognises the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .items import message_text

_REPLY_WITH = re.compile(r"reply with\s*:\s*(.+)", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
#: A question about the user's first message, matched against the whole message once it is
#: lowercased and its punctuation made spaces ("What did I say first?!" → "what did i say first").
_FIRST_QUESTION = re.compile(
    r"(?:(?:so|and|ok|okay|hey|remind me|tell me|now) )*"
    r"(?:what did i (?:say|ask|tell you) first"
    r"|what did i first (?:say|ask|tell you)"
    r"|what (?:was|is|s) my (?:very )?first (?:message|question|sentence)"
    r"|what (?:was|is|s) the (?:very )?first thing i (?:said|asked|told you))"
    r"(?: again| to you| please)*"
)
_GREETING = re.compile(r"^\s*(hello|hi|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)
_QUOTE_LIMIT = 240
_GENERIC_VERBS = {
    "get",
    "set",
    "fetch",
    "find",
    "lookup",
    "look",
    "up",
    "do",
    "run",
    "call",
    "make",
}


@dataclass(frozen=True, slots=True)
class TextReply:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str


Reply = TextReply | ToolCall


def respond(
    context: list[dict[str, Any]],
    *,
    instructions: str,
    tools: list[dict[str, Any]],
    tool_choice: str | dict[str, Any],
) -> Reply:
    """The reply to a conversation (``context``: GA items, oldest first)."""
    last = context[-1] if context else None
    if last is not None and last.get("type") == "function_call_output":
        return TextReply(_answer_from_output(context, last))
    user_text = _last_user_text(context)
    tool = _tool_to_call(tools, tool_choice, user_text)
    if tool is not None:
        return ToolCall(tool["name"], json.dumps(_arguments(tool, user_text or "")))
    if user_text and asks_what_was_said_first(user_text):
        return TextReply(_first_said(context))
    scripted = _REPLY_WITH.search(instructions)
    if scripted:
        return TextReply(scripted.group(1).strip().strip("\"'").strip())
    return TextReply(_answer(user_text, context))


def _last_user_text(context: list[dict[str, Any]]) -> str | None:
    for item in reversed(context):
        if item.get("type") == "message" and item.get("role") == "user":
            return message_text(item)
    return None


def asks_what_was_said_first(text: str) -> bool:
    """Whether a message asks what the user said first (the whole message, not a mention)."""
    words = " ".join(re.sub(r"\W+", " ", text.lower()).split())
    return _FIRST_QUESTION.fullmatch(words) is not None


def _first_said(context: list[dict[str, Any]]) -> str:
    """The answer to "what did I say first?": a quote of the earliest user message."""
    users = [i for i in context if i.get("type") == "message" and i.get("role") == "user"]
    if len(users) < 2:  # the question is the only thing the user said
        return "This is the first thing you have said to me."
    first = users[0]
    text = message_text(first)
    if not text:
        seconds = float(first.get("_audio_ms", 0.0)) / 1000.0
        return f"You first sent about {seconds:.1f} seconds of audio, which I did not transcribe."
    return f'You first said: "{_quote(text)}"'


def _quote(text: str) -> str:
    return text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "…"


def _answer(user_text: str | None, context: list[dict[str, Any]]) -> str:
    if user_text is None:
        return "Hello! I am the local realtime simulator. How can I help you?"
    if not user_text:
        seconds = _last_user_audio_seconds(context)
        return f"I heard about {seconds:.1f} seconds of audio from you. Please go on."
    quote = _quote(user_text)
    if _GREETING.match(user_text):
        return f'Hello! You said: "{quote}" Nice to hear from you.'
    if user_text.rstrip().endswith("?"):
        return (
            f'You asked: "{quote}" I am the local simulator, so I cannot look that up, '
            "but I heard your question clearly."
        )
    return f'You said: "{quote}" Thanks, I got that.'


def _last_user_audio_seconds(context: list[dict[str, Any]]) -> float:
    for item in reversed(context):
        if item.get("type") == "message" and item.get("role") == "user":
            return float(item.get("_audio_ms", 0.0)) / 1000.0
    return 0.0


def _tool_to_call(
    tools: list[dict[str, Any]], tool_choice: str | dict[str, Any], user_text: str | None
) -> dict[str, Any] | None:
    functions = [t for t in tools if t.get("type") == "function"]
    if not functions or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        return next((t for t in functions if t["name"] == tool_choice.get("name")), None)
    if user_text:
        for tool in functions:
            if _names(str(tool["name"]), user_text):
                return tool
    if tool_choice == "required":
        return functions[0]
    return None


def _names(tool_name: str, text: str) -> bool:
    """Whether ``text`` names the tool: its name, or every distinctive word of it (``weather``
    for ``get_weather``)."""
    lowered = text.lower()
    name = tool_name.lower()
    if name in lowered or name.replace("_", " ") in lowered:
        return True
    parts = [p for p in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", tool_name) if p]
    words = [p.lower() for p in parts if p.lower() not in _GENERIC_VERBS]
    said = set(re.findall(r"\w+", lowered))
    return bool(words) and all(w in said for w in words)


def _arguments(tool: dict[str, Any], text: str) -> dict[str, Any]:
    """Arguments for every required (or, if none, every) parameter, taken from the message."""
    params = tool.get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    wanted = params.get("required") or list(props)
    return {name: _value_for(name, props.get(name) or {}, text) for name in wanted}


def _value_for(name: str, schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type", "string")
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        mentioned = [v for v in enum if str(v).lower() in text.lower()]
        return mentioned[0] if mentioned else enum[0]
    if kind in ("number", "integer"):
        match = _NUMBER.search(text)
        value = float(match.group()) if match else 1.0
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return _proper_noun(text) or text.strip() or name


def _proper_noun(text: str) -> str | None:
    """The last capitalised word that does not start a sentence (e.g. a city name)."""
    words = re.findall(r"[\w'-]+|[.!?]", text)
    found = None
    sentence_start = True
    for word in words:
        if word in ".!?":
            sentence_start = True
            continue
        if word[:1].isupper() and not sentence_start and word != "I":
            found = word
        sentence_start = False
    return found


def _answer_from_output(context: list[dict[str, Any]], output_item: dict[str, Any]) -> str:
    call_id = output_item.get("call_id")
    name = next(
        (
            item.get("name")
            for item in context
            if item.get("type") == "function_call" and item.get("call_id") == call_id
        ),
        None,
    )
    raw = str(output_item.get("output", ""))
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw
    if isinstance(parsed, dict):
        facts = ", ".join(f"{str(k).replace('_', ' ')} is {v}" for k, v in parsed.items())
    else:
        facts = str(parsed)
    source = f"the {name} tool" if name else "the tool"
    return f"According to {source}: {facts}."
