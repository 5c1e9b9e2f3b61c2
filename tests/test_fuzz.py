"""Fuzzed bad client input (SPEC §4): hundreds of bad inputs on ONE session while a second
session keeps working. Every survivable bad input gets exactly one error event with a SPEC code
and is not forwarded upstream; the server stays healthy; nothing unexpected is logged.

Inputs come from hypothesis strategies (derandomised, so every run tries the same inputs) plus
a hand-written seeded corpus. Inputs that end a session by contract (over ``MAX_MESSAGE_BYTES``:
1009; text that is not UTF-8: 1007) run on sessions of their own.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from realtime_bridge.server.app import BridgeServer
from tests.conftest import running_bridge, wait_for_sessions, ws_url
from tests.fakes import Behaviour, FakeUpstream, UpstreamSession, running_fake_upstream

#: The error codes SPEC §4 lists; the bridge raises no other.
SPEC_CODES = frozenset(
    {
        "invalid_json",
        "invalid_event",
        "message_too_large",
        "invalid_audio",
        "unsupported_audio_format",
        "unauthorized",
        "forbidden_origin",
        "session_limit_reached",
        "session_idle_timeout",
        "session_expired",
        "upstream_unavailable",
        "upstream_closed",
        "server_shutting_down",
    }
)
MAX_MESSAGE_BYTES = 256 * 1024
JSON_ERRORS = frozenset({"invalid_json", "invalid_event"})
INVALID_JSON = frozenset({"invalid_json"})
INVALID_EVENT = frozenset({"invalid_event"})
INVALID_AUDIO = frozenset({"invalid_audio"})
AUDIO_OR_EVENT = frozenset({"invalid_audio", "invalid_event"})
NOT_BASE64 = "!*@#$%^&()[]{}<>?~`|\\ \t\n.,;:'é€"
T = TypeVar("T")


@dataclass(frozen=True)
class Case:
    kind: str
    frame: str | bytes
    #: Acceptable codes for the one error event; None = a valid input, no error expected.
    expect: frozenset[str] | None
    event_id: str | None = None


def examples(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` deterministic examples of ``strategy`` (hypothesis, derandomised)."""
    found: list[T] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        found.append(value)

    collect()
    return found


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _bad_type_event(draw: st.DrawFn) -> tuple[str, str | None]:
    event = draw(
        st.dictionaries(st.text(max_size=10).filter(lambda k: k != "type"), _json, max_size=5)
    )
    choice = draw(st.integers(0, 2))
    if choice == 1:
        event["type"] = draw(_json.filter(lambda v: not isinstance(v, str)))
    elif choice == 2:
        event["type"] = ""
    event_id = None
    if draw(st.booleans()):
        event_id = draw(st.text(min_size=1, max_size=12))
        event["event_id"] = event_id
    items = list(event.items())
    draw(st.randoms(use_true_random=False)).shuffle(items)
    return orjson.dumps(dict(items)).decode(), event_id


@st.composite
def _not_base64(draw: st.DrawFn) -> str:
    valid = draw(
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", max_size=40
        )
    )
    bad = draw(st.text(alphabet=NOT_BASE64, min_size=1, max_size=3))
    at = draw(st.integers(0, len(valid)))
    return valid[:at] + bad + valid[at:]


def _append(audio: Any, event_id: str | None = None) -> str:
    event: dict[str, Any] = {"type": "input_audio_buffer.append", "audio": audio}
    if event_id is not None:
        event["event_id"] = event_id
    return orjson.dumps(event).decode()


def generated_cases() -> list[Case]:
    cases: list[Case] = []
    for text in examples(st.text(max_size=200).filter(lambda t: not _is_json(t)), 60):
        cases.append(Case("non-json", text, INVALID_JSON))
    top = _scalars | st.lists(_json, max_size=5)
    for value in examples(top, 50):
        cases.append(Case("non-object", orjson.dumps(value).decode(), INVALID_EVENT))
    for text, event_id in examples(_bad_type_event(), 60):
        cases.append(Case("bad-type", text, INVALID_EVENT, event_id))
    for audio in examples(_not_base64(), 50):
        cases.append(Case("not-base64", _append(audio, "evt_audio"), INVALID_AUDIO, "evt_audio"))
    odd = st.binary(min_size=1, max_size=2001).filter(lambda b: len(b) % 2 == 1)
    for pcm in examples(odd, 30):
        cases.append(Case("odd-pcm16", _append(base64.b64encode(pcm).decode()), INVALID_AUDIO))
    for data in examples(st.binary(min_size=1, max_size=4096), 60):
        expect = INVALID_AUDIO if len(data) % 2 else None  # even = valid PCM16 audio
        cases.append(Case("binary", data, expect))
    return cases


def corpus_cases() -> list[Case]:
    """Hand-picked inputs, plus seeded random ones, that strategies rarely hit."""
    rng = random.Random(20240607)
    text: list[tuple[str, frozenset[str]]] = [
        ("", INVALID_JSON),
        (" ", INVALID_JSON),
        ("\n\t", INVALID_JSON),
        ("{", INVALID_JSON),
        ("}", INVALID_JSON),
        ('{"type":', INVALID_JSON),
        ('{"type":"x",}', INVALID_JSON),
        ("{'type':'x'}", INVALID_JSON),
        ('{"type":"x"} trailing', INVALID_JSON),
        ('{"type":"x"}{"type":"y"}', INVALID_JSON),
        ('{"type":"x\x01"}', INVALID_JSON),
        ("NaN", INVALID_JSON),
        ("Infinity", INVALID_JSON),
        ('{"type":"x","v":NaN}', INVALID_JSON),
        ("nul", INVALID_JSON),
        ("[]", INVALID_EVENT),
        ("{}", INVALID_EVENT),
        ("null", INVALID_EVENT),
        ("true", INVALID_EVENT),
        ("0", INVALID_EVENT),
        ('"type"', INVALID_EVENT),
        ('[{"type":"x"}]', INVALID_EVENT),
        ('{"type":null}', INVALID_EVENT),
        ('{"type":1}', INVALID_EVENT),
        ('{"type":true}', INVALID_EVENT),
        ('{"type":[]}', INVALID_EVENT),
        ('{"type":{"type":"x"}}', INVALID_EVENT),
        ('{"type":""}', INVALID_EVENT),
        ('{"TYPE":"x"}', INVALID_EVENT),
        ('{"type ":"x"}', INVALID_EVENT),
        ('{"event":{"type":"x"}}', INVALID_EVENT),
        ("1e400", JSON_ERRORS),
        ("123456789012345678901234567890", JSON_ERRORS),
        ('{"type":"x","n":1e999}', JSON_ERRORS),
        ('{"type":"x\\ud800"}', JSON_ERRORS),  # an escaped lone surrogate
    ]
    for depth in (2000, 10_000, 100_000):
        text.append(("[" * depth + "]" * depth, JSON_ERRORS))
    text.append(('{"a":' * 5000 + "1" + "}" * 5000, JSON_ERRORS))
    text.append(('{"type":"x","deep":' + "[" * 5000 + "]" * 5000 + "}", JSON_ERRORS))
    text.append(("[" * 60_000, INVALID_JSON))
    text.append(('{"type":"x","a":' * 3000, INVALID_JSON))
    cases = [Case("corpus", frame, expect) for frame, expect in text]
    for audio, expect in [
        ("QQ==", INVALID_AUDIO),  # 1 byte
        ("AAAA", INVALID_AUDIO),  # 3 bytes
        ("AAAAAAAAAA==", INVALID_AUDIO),  # 7 bytes
        ("QUJD=", INVALID_AUDIO),  # bad padding
        ("====", INVALID_AUDIO),
        ("A", INVALID_AUDIO),
        ("data:audio/wav;base64,AAAA", INVALID_AUDIO),
        ("AAAA\u0000", INVALID_AUDIO),
        ("ÄÄÄÄ", INVALID_AUDIO),
        ("AA AA!", INVALID_AUDIO),
        (5, AUDIO_OR_EVENT),
        (None, AUDIO_OR_EVENT),
        ([], AUDIO_OR_EVENT),
        ({"audio": "AAAA"}, AUDIO_OR_EVENT),
    ]:
        cases.append(Case("corpus-audio", _append(audio, "evt_c"), expect, "evt_c"))
    for _ in range(20):  # seeded random bytes as text (mostly not JSON)
        raw = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 300)))
        frame = raw.decode()
        if not _is_json(frame):
            cases.append(Case("corpus-random", frame, INVALID_JSON))
    for size in (1, 3, 4801, 2, 4800):
        data = bytes(rng.randrange(256) for _ in range(size))
        cases.append(Case("corpus-binary", data, INVALID_AUDIO if size % 2 else None))
    return cases


def check_error_event(event: dict[str, Any], case: Case) -> None:
    assert event["type"] == "error"
    assert isinstance(event["event_id"], str)
    assert event["event_id"].startswith("event_")
    error = event["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] in SPEC_CODES
    assert case.expect is not None
    assert error["code"] in case.expect, (case.kind, case.frame[:200], error)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "param" in error
    assert "event_id" in error
    if case.event_id is not None and error["code"] != "invalid_json":
        assert error["event_id"] == case.event_id, (case, error)


def probe_upstream(forwarded: list[str]) -> Behaviour:
    """An upstream that echoes probes and keeps everything else in ``forwarded``."""

    async def behaviour(session: UpstreamSession) -> None:
        while True:
            text = await session.received.get()
            if text.startswith('{"type":"probe"'):
                await session.ws.send_str(text)
            else:
                forwarded.append(text)

    return behaviour


async def probe(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    """Send a probe and return every event that arrived before its echo."""
    frame = f'{{"type":"probe","n":{n}}}'
    await ws.send_str(frame)
    before: list[dict[str, Any]] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is aiohttp.WSMsgType.TEXT, (n, msg)
        if msg.data == frame:
            return before
        before.append(orjson.loads(msg.data))


async def test_fuzzed_bad_input_on_one_session_while_another_keeps_working(
    http: aiohttp.ClientSession,
    captured_logs: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cases = corpus_cases() + generated_cases()
    random.Random(7).shuffle(cases)
    forwarded: list[str] = []
    async with running_fake_upstream(probe_upstream(forwarded)) as fake:
        env = {
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": "sk-fuzz-0123456789",
            "OPENAI_REALTIME_URL": fake.url,
            "MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        }
        async with running_bridge(**env) as server:
            health_url = f"http://127.0.0.1:{server.http_port}/health"
            async with (
                http.ws_connect(ws_url(server), max_msg_size=0) as target,
                http.ws_connect(ws_url(server), max_msg_size=0) as other,
            ):
                await fake.next_session()
                await fake.next_session()
                tried = 0
                errors_by_code: dict[str, int] = {}
                for n, case in enumerate(cases):
                    if isinstance(case.frame, str):
                        await target.send_str(case.frame)
                    else:
                        await target.send_bytes(case.frame)
                    tried += 1
                    events = await probe(target, n)
                    errors = [e for e in events if e.get("type") == "error"]
                    assert len(errors) == len(events), (case.kind, events)  # nothing else came
                    if case.expect is None:
                        assert errors == [], (case.kind, errors)
                    else:
                        assert len(errors) == 1, (case.kind, repr(case.frame)[:200], errors)
                        check_error_event(errors[0], case)
                        code = errors[0]["error"]["code"]
                        errors_by_code[code] = errors_by_code.get(code, 0) + 1
                    if n % 20 == 0:
                        assert await probe(other, n) == []
                    if n % 100 == 0:
                        async with http.get(health_url) as response:
                            assert response.status == 200
                            assert (await response.json())["status"] == "ok"
                assert await probe(other, -1) == []
                assert len(server.registry) == 2
            # Nothing bad went upstream: only the audio of valid binary frames.
            for text in forwarded:
                event = orjson.loads(text)
                assert event["type"] == "input_audio_buffer.append", text[:200]
            separate = await oversized_and_invalid_utf8(server, fake, http)
            await wait_for_sessions(server, 0)
            async with http.get(health_url) as response:
                assert (await response.json())["status"] == "ok"
    logs = "".join(captured_logs)
    assert "Traceback" not in logs
    assert "unexpected error" not in logs
    assert " ERROR " not in logs
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    by_kind: dict[str, int] = {}
    for case in cases:
        by_kind[case.kind] = by_kind.get(case.kind, 0) + 1
    print(
        f"\nfuzz: {tried} bad inputs on one session ({by_kind}); errors by code "
        f"{errors_by_code}; {separate} session-ending inputs on separate sessions; "
        f"total {tried + separate}"
    )
    assert tried >= 300


async def oversized_and_invalid_utf8(
    server: BridgeServer, fake: FakeUpstream, http: aiohttp.ClientSession
) -> int:
    """Inputs that end their session by contract, each on its own session, while another
    session keeps working. Returns how many were tried."""
    over = MAX_MESSAGE_BYTES + 1
    ending: list[tuple[str | bytes, int, bool]] = [
        ('{"type":"x","pad":"' + "a" * over + '"}', 1009, False),
        ("z" * over, 1009, False),
        (_append("A" * (over + 3)), 1009, False),
        ("[" * over, 1009, False),
        (b"\x00" * (over + 1), 1009, False),
        (b"\x01" * (4 * over), 1009, False),
        (b"\xff\xfe{", 1007, True),
        (b'{"type":"\xc3"}', 1007, True),
        (b'{"type":"\xc0\xaf"}', 1007, True),
        (b'{"type":"\xed\xa0\x80"}', 1007, True),
        (b"\x80", 1007, True),
    ]
    async with http.ws_connect(ws_url(server), max_msg_size=0) as witness:
        await fake.next_session()
        for n, (frame, code, raw_text) in enumerate(ending):
            async with http.ws_connect(ws_url(server), max_msg_size=0) as victim:
                upstream = await fake.next_session()
                if raw_text:
                    assert isinstance(frame, bytes)
                    await victim._writer.send_frame(frame, aiohttp.WSMsgType.TEXT)
                elif isinstance(frame, str):
                    await victim.send_str(frame)
                else:
                    await victim.send_bytes(frame)
                msg = await asyncio.wait_for(victim.receive(), 5)
                assert msg.type is aiohttp.WSMsgType.CLOSE, (n, msg)
                assert msg.data == code, n
                await asyncio.wait_for(upstream.closed.wait(), 2)
            assert await probe(witness, 10_000 + n) == []
    return len(ending)
