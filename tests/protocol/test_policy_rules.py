"""The policy's pure parts: locked fields, the policy file, secrets, the memory store."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime_bridge.errors import ConfigError
from realtime_bridge.policy.locks import SessionLock
from realtime_bridge.policy.rules import load_policy
from realtime_bridge.policy.secrets import SecretCodec, SecretRefused
from realtime_bridge.store.memory import MemoryStore

REPO = Path(__file__).resolve().parents[2]


def test_locked_fields_are_taken_out_and_the_rest_stays() -> None:
    lock = SessionLock(
        {"type": "realtime", "instructions": "A", "audio": {"output": {"voice": "marin"}}},
        max_output_tokens=100,
    )
    assert sorted(lock.fields) == ["audio.output.voice", "instructions"]
    event = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "B",
            "audio": {"output": {"voice": "alloy", "speed": 1.2}, "input": {"format": {}}},
            "max_output_tokens": "inf",
            "output_modalities": ["text"],
        },
    }
    refused = lock.session_update(event)
    assert refused == ["instructions", "audio.output.voice", "max_output_tokens"]
    assert event["session"] == {
        "type": "realtime",
        "audio": {"output": {"speed": 1.2}, "input": {"format": {}}},
        "max_output_tokens": 100,
        "output_modalities": ["text"],
    }
    same = {"type": "session.update", "session": {"instructions": "A", "max_output_tokens": 50}}
    assert lock.session_update(same) == []
    assert same["session"] == {"instructions": "A", "max_output_tokens": 50}
    response = {"type": "response.create", "response": {"instructions": "C", "metadata": {}}}
    assert lock.response_create(response) == ["instructions"]
    assert response["response"] == {"metadata": {}}
    assert lock.upstream_fields() == {
        "instructions": "A",
        "audio": {"output": {"voice": "marin"}},
        "max_output_tokens": 100,
    }


def test_the_example_policy_file_parses() -> None:
    policy = load_policy(REPO / "docs" / "policy.example.toml")
    assert policy.default.tokens_per_day == 200000
    assert policy.for_token("3f9a2c1b7d4e").label == "web app"
    assert policy.for_token("unknown") == policy.default
    assert policy.default.allows_model("gpt-realtime")
    assert not policy.default.allows_model("gpt-4o-realtime-preview")
    tools = policy.for_token("3f9a2c1b7d4e").tools
    assert [(t.name, t.webhook is not None, t.python) for t in tools] == [
        ("order_status", True, None),
        ("get_weather", False, "acme_tools:get_weather"),
    ]
    assert [t.name for t in policy.all_tools()] == ["order_status", "get_weather"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[default]\nsessions_per_minute = 0\n", "default.sessions_per_minute"),
        ("[default]\nunknown = 1\n", "default.unknown"),
        ("[default\n", "not valid TOML"),
        (
            '[[default.tools]]\nname = "a"\npython = "m:f"\n' * 2,
            "default.tools: Value error, tool names must be unique; repeated: a",
        ),
    ],
)
def test_a_bad_policy_file_names_the_problem(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_policy(path)
    assert error.value.variable == "BRIDGE_POLICY_FILE"
    assert where in str(error.value)


def test_secrets_round_trip_and_refuse_what_they_should() -> None:
    codec = SecretCodec("a" * 32)
    minted = codec.mint({"type": "realtime", "x": "é" * 2000}, token_id="t", ttl_s=10, now=100.0)
    claims = codec.verify(minted.value, 105.0)
    assert claims.session["x"] == "é" * 2000  # large sessions are deflated, still intact
    assert claims.token_id == "t"
    assert claims.expires_at == 110.0
    last = minted.value[-1]
    for value, now, reason in (
        (minted.value, 110.0, "expired"),
        # every other last character, including those that decode to the same signature bytes
        *((minted.value[:-1] + c, 105.0, "bad signature") for c in "AQgw" if c != last),
        (minted.value[:-1] + ("x" if minted.value[-1] != "x" else "y"), 105.0, "bad signature"),
        ("ek_" + "A" * 40, 105.0, "bad signature"),
        ("sk-not-a-secret", 105.0, "not a client secret"),
    ):
        with pytest.raises(SecretRefused) as refused:
            codec.verify(value, now)
        assert refused.value.reason == reason
    with pytest.raises(SecretRefused):
        SecretCodec("b" * 32).verify(minted.value, 105.0)


def test_memory_store_windows_slots_counters_and_revocations() -> None:
    store = MemoryStore()
    assert store.hit("k", 2, 60.0, 0.0) is None
    assert store.hit("k", 2, 60.0, 10.0) is None
    assert store.hit("k", 2, 60.0, 20.0) == pytest.approx(40.0)
    assert store.hit("k", 2, 60.0, 60.5) is None  # the first one left the window
    assert store.acquire("s", 1)
    assert not store.acquire("s", 1)
    store.release("s")
    assert store.acquire("s", 1)
    assert store.add("c", 5) == 5
    assert store.get("c") == 5
    store.revoke("id", until=50.0)
    assert store.revoked("id", 49.0)
    assert not store.revoked("id", 50.0)
