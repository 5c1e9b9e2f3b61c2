"""Server-side tools: spec validation, and ToolRunner against a real local webhook server and
real Python callables (tests.tools.sample_tools). No sleeps: events and timeouts only."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from realtime_bridge.errors import ConfigError
from realtime_bridge.metrics import BridgeMetrics, ToolMetrics
from realtime_bridge.tools import ToolCall, ToolResult, ToolRunner, ToolSpec
from realtime_bridge.tools.runner import MAX_RESPONSE_BYTES
from tests.tools import sample_tools

KEY_VAR = "TEST_TOOL_HMAC_KEY"
KEY = "hook-key-0123456789"
#: Stands for a caller's personal data: must never reach a log record.
PERSONAL = "Jane-Doe-4111111111111111"


@dataclass
class Hook:
    """A local webhook receiver: what it received, and events to pace its handlers."""

    base: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    never: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    hook = Hook(base="")

    async def ok(request: web.Request) -> web.Response:
        body = await request.read()
        hook.requests.append((dict(request.headers), body))
        timestamp = request.headers.get("X-Bridge-Timestamp", "")
        expected = hmac.new(KEY.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        hook.verified.append(
            fresh
            and hmac.compare_digest(
                request.headers.get("X-Bridge-Signature", ""), f"sha256={expected.hexdigest()}"
            )
        )
        return web.Response(
            text='{ "status": "shipped",  "echo": ' + body.decode() + " }",
            content_type="application/json",
        )

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text='{"detail": "db password is hunter2"}')

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{hook.base}/ok")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b'"' + b"x" * MAX_RESPONSE_BYTES + b'"')

    async def big_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to refuse it by
        await response.prepare(request)
        for _ in range(20):
            await response.write(b" " * 65536)
        await response.write_eof()
        return response

    async def hang(request: web.Request) -> web.Response:
        hook.arrived.set()
        await hook.never.wait()
        return web.Response(text="{}")

    app = web.Application()
    for path, handler in {
        "/ok": ok,
        "/fail": fail,
        "/text": text,
        "/redirect": redirect,
        "/big": big,
        "/big-stream": big_stream,
        "/hang": hang,
    }.items():
        app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    hook.base = f"http://{host}:{port}"
    try:
        yield hook
    finally:
        hook.never.set()  # frees the handlers a timed-out call left waiting
        await runner.cleanup()


@pytest.fixture
def sync_events() -> Iterator[None]:
    sample_tools.ENTERED.clear()
    sample_tools.RELEASE.clear()
    sample_tools.CALLS.clear()
    yield
    sample_tools.RELEASE.set()  # no worker thread outlives the test


@pytest.fixture
def tool_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of realtime_bridge.tools, DEBUG up (even when a set-up turned off the
    package logger's propagation to the root, where caplog listens)."""
    logger = logging.getLogger("realtime_bridge.tools")
    caplog.set_level(logging.DEBUG, logger="realtime_bridge.tools")
    reaches_root = logger.propagate and logging.getLogger("realtime_bridge").propagate
    if not reaches_root:
        logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def webhook(path: str, hook: Hook, **fields: Any) -> ToolSpec:
    return ToolSpec(name="get_order", webhook=f"{hook.base}{path}", **fields)


def python(function: str, **fields: Any) -> ToolSpec:
    return ToolSpec(name=function, python=f"tests.tools.sample_tools:{function}", **fields)


def call(arguments: str = '{"order_id": "A1"}', name: str = "get_order") -> ToolCall:
    return ToolCall(name=name, call_id="call_1", arguments=arguments, session_id="sess_1")


async def run_once(spec: ToolSpec, tool_call: ToolCall | None = None) -> ToolResult:
    runner = ToolRunner([spec])
    try:
        return await runner.run(spec, tool_call or call())
    finally:
        await runner.close()


def error_of(result: ToolResult, tool: str = "get_order") -> dict[str, Any]:
    assert result.outcome == "error", result
    error: dict[str, Any] = orjson.loads(result.output)
    assert set(error) == {"error", "message"}
    assert tool in error["message"]
    return error


# --- ToolSpec -------------------------------------------------------------------------------


def test_definition_is_the_ga_function_tool() -> None:
    spec = ToolSpec(
        name="get_order",
        description="Look up an order.",
        parameters={"type": "object", "properties": {"order_id": {"type": "string"}}},
        python="tests.tools.sample_tools:lookup",
    )
    definition = spec.definition()
    assert definition == {
        "type": "function",
        "name": "get_order",
        "description": "Look up an order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }
    definition["parameters"]["properties"].clear()
    assert spec.parameters["properties"] == {"order_id": {"type": "string"}}
    assert not spec.visible
    assert spec.timeout_s == 10.0
    assert ToolSpec(name="t", webhook="https://h.example/x").parameters == {
        "type": "object",
        "properties": {},
    }


def test_a_toml_table_is_a_spec() -> None:
    table = tomllib.loads(
        """
        name = "get_order"
        description = "Look up an order."
        webhook = "https://tools.example/orders"
        secret_env = "ORDERS_HOOK_KEY"
        timeout_s = 5
        parameters = { type = "object", properties = { order_id = { type = "string" } } }
        """
    )
    spec = ToolSpec.model_validate(table)
    assert spec.timeout_s == 5.0
    assert spec.definition()["parameters"]["properties"] == {"order_id": {"type": "string"}}


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "both", "webhook": "https://h.example/x", "python": "m:f"},
        {"name": "neither"},
        {"name": "bad name", "python": "m:f"},
        {"name": "", "python": "m:f"},
        {"name": "x" * 65, "python": "m:f"},
        {"name": "t", "python": "m:f", "parameters": {"type": "string"}},
        {"name": "t", "python": "m:f", "parameters": {"properties": {}}},
        {"name": "t", "python": "m:f", "timeout_s": 0},
        {"name": "t", "python": "m:f", "timeout_s": -1},
        {"name": "t", "python": "m:f", "timeout_s": 301},
        {"name": "t", "webhook": "ftp://h.example/x"},
        {"name": "t", "webhook": "not a url"},
        {"name": "t", "webhook": "http://h.example:99999/x"},
        {"name": "t", "python": "no_colon"},
        {"name": "t", "python": "m:f", "secret_env": "KEY"},
        {"name": "t", "webhook": "https://h.example/x", "secret_env": "NOT-A-VAR"},
        {"name": "t", "python": "m:f", "unknown": 1},
    ],
)
def test_bad_specs_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ToolSpec.model_validate(fields)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("tests.tools.no_such_module:f", "no module named tests.tools.no_such_module"),
        ("tests.tools.sample_tools:missing", "missing not found"),
        ("tests.tools.sample_tools:NOT_CALLABLE", "not callable"),
    ],
)
def test_a_python_path_that_does_not_resolve_stops_start_up(path: str, says: str) -> None:
    spec = ToolSpec(name="get_order", python=path)
    with pytest.raises(ConfigError) as raised:
        ToolRunner([spec])
    assert raised.value.variable == "BRIDGE_POLICY_FILE"
    assert raised.value.message.startswith("tools.get_order: ")
    assert says in raised.value.message


def test_a_missing_secret_variable_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    spec = ToolSpec(name="get_order", webhook="https://h.example/x", secret_env=KEY_VAR)
    with pytest.raises(ConfigError) as raised:
        ToolRunner([spec])
    assert raised.value.variable == "BRIDGE_POLICY_FILE"
    assert "tools.get_order" in raised.value.message
    assert KEY_VAR in raised.value.message


# --- webhooks -------------------------------------------------------------------------------


async def test_webhook_gets_a_signed_documented_request(
    hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, KEY)
    spec = webhook("/ok", hook, secret_env=KEY_VAR)
    result = await run_once(spec)
    assert result.outcome == "ok"
    assert result.seconds > 0
    [(headers, body)] = hook.requests
    sent = {"name": "get_order", "arguments": {"order_id": "A1"}, "call_id": "call_1"}
    assert orjson.loads(body) == {**sent, "session_id": "sess_1"}
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "realtime-bridge"
    assert headers["X-Bridge-Signature"].startswith("sha256=")
    assert hook.verified == [True]
    # The server's JSON, re-serialised compactly.
    assert result.output == orjson.dumps({"status": "shipped", "echo": orjson.loads(body)}).decode()
    assert " " not in result.output


async def test_webhook_without_a_key_is_not_signed_and_gets_raw_arguments(hook: Hook) -> None:
    result = await run_once(webhook("/ok", hook), call(arguments="not json"))
    assert result.outcome == "ok"
    [(headers, body)] = hook.requests
    assert "X-Bridge-Signature" not in headers
    assert "X-Bridge-Timestamp" not in headers
    assert orjson.loads(body)["arguments"] == "not json"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/fail", "HTTP 500"),
        ("/text", "not JSON"),
        ("/redirect", "HTTP 302"),
        ("/big", "too large"),
        ("/big-stream", "too large"),
    ],
)
async def test_webhook_failures_are_errors_the_model_can_speak_about(
    hook: Hook, path: str, says: str
) -> None:
    result = await run_once(webhook(path, hook))
    error = error_of(result)
    assert error["error"] == "tool_failed"
    assert says in error["message"]
    assert "hunter2" not in result.output
    assert hook.base not in result.output


async def test_an_unreachable_webhook_is_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = ToolSpec(name="get_order", webhook=f"http://user:pw@127.0.0.1:{port}/x")
    result = await run_once(spec)
    error = error_of(result)
    assert "could not be reached" in error["message"]
    assert "pw" not in result.output
    assert str(port) not in result.output


async def test_a_slow_webhook_times_out_and_the_runner_goes_on(hook: Hook) -> None:
    slow = webhook("/hang", hook, timeout_s=0.2)
    runner = ToolRunner([slow])
    try:
        async with asyncio.timeout(5):
            result = await runner.run(slow, call())
        assert hook.arrived.is_set()
        assert result.outcome == "timeout"
        assert result.seconds < 2
        assert orjson.loads(result.output) == {
            "error": "timeout",
            "message": "The tool get_order did not answer within 0.2 s.",
        }
        after = await runner.run(webhook("/ok", hook), call())
        assert after.outcome == "ok"
    finally:
        await runner.close()


async def test_cancelling_a_call_propagates(hook: Hook) -> None:
    spec = webhook("/hang", hook)
    runner = ToolRunner([spec])
    try:
        task = asyncio.create_task(runner.run(spec, call()))
        async with asyncio.timeout(5):
            await hook.arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await runner.close()


# --- Python callables -----------------------------------------------------------------------


async def test_a_sync_function_runs_in_a_thread() -> None:
    result = await run_once(python("lookup"), call(name="lookup"))
    assert result.outcome == "ok"
    output = orjson.loads(result.output)
    assert output["order_id"] == "A1"
    assert output["thread"] != threading.get_ident()


async def test_a_string_is_the_output_as_it_is() -> None:
    result = await run_once(python("plain_text"))
    assert result == ToolResult("It is sunny.", "ok", result.seconds)


async def test_an_async_function_is_awaited() -> None:
    result = await run_once(python("lookup_async"))
    assert result.outcome == "ok"
    assert orjson.loads(result.output) == {"echo": {"order_id": "A1"}, "async": True}


async def test_an_exception_is_named_by_its_class_only() -> None:
    result = await run_once(python("broken"), call(arguments=f'{{"name": "{PERSONAL}"}}'))
    error = error_of(result, "broken")
    assert error == {"error": "tool_failed", "message": "The tool broken failed (LookupError)."}


async def test_a_value_that_is_not_json_is_an_error() -> None:
    error = error_of(await run_once(python("not_json")), "not_json")
    assert "not JSON" in error["message"]


@pytest.mark.usefixtures("sync_events")
@pytest.mark.parametrize("arguments", ["[1, 2]", '"text"', "{not json", ""])
async def test_arguments_that_are_not_an_object_do_not_call_the_function(arguments: str) -> None:
    error = error_of(await run_once(python("recorded"), call(arguments=arguments)), "recorded")
    assert error["error"] == "invalid_arguments"
    assert sample_tools.CALLS == []


@pytest.mark.usefixtures("sync_events")
async def test_a_blocking_sync_function_does_not_block_the_loop() -> None:
    spec = python("blocking")
    runner = ToolRunner([spec])
    task = asyncio.create_task(runner.run(spec, call()))
    async with asyncio.timeout(5):
        # Only a free loop gets here while the function waits for RELEASE in its thread.
        assert await asyncio.to_thread(sample_tools.ENTERED.wait, 5)
        assert not task.done()
        sample_tools.RELEASE.set()
        result = await task
    assert result.outcome == "ok"
    assert orjson.loads(result.output) == {"released": True}


@pytest.mark.usefixtures("sync_events")
async def test_a_sync_function_past_its_timeout_is_abandoned() -> None:
    spec = python("blocking", timeout_s=0.2)
    runner = ToolRunner([spec, python("echo")])
    try:
        async with asyncio.timeout(5):
            result = await runner.run(spec, call())
            assert result.outcome == "timeout"
            assert "within 0.2 s" in orjson.loads(result.output)["message"]
            # The thread still runs (Python cannot stop it); the runner serves the next call.
            assert sample_tools.ENTERED.is_set()
            after = await runner.run(python("echo"), call())
        assert after.outcome == "ok"
    finally:
        sample_tools.RELEASE.set()  # before the loop's executor shuts down, waiting for it


async def test_a_spec_the_runner_was_not_built_with_is_not_run() -> None:
    runner = ToolRunner([])
    error = error_of(await runner.run(python("echo"), call()), "echo")
    assert "not available" in error["message"]


# --- metrics and logs -----------------------------------------------------------------------


async def test_calls_are_counted_in_the_servers_registry(hook: Hook) -> None:
    bridge = BridgeMetrics()
    runner = ToolRunner([python("echo")], metrics=ToolMetrics(bridge.registry))
    try:
        await runner.run(python("echo"), call())
        await runner.run(python("echo"), call(arguments="[]"))
        await runner.run(webhook("/hang", hook, timeout_s=0.1), call())
    finally:
        await runner.close()
    registry = bridge.registry

    def calls(tool: str, outcome: str) -> float | None:
        labels = {"tool": tool, "outcome": outcome}
        return registry.get_sample_value("realtime_bridge_tool_calls_total", labels)

    assert calls("echo", "ok") == 1
    assert calls("echo", "error") == 1
    assert calls("get_order", "timeout") == 1
    assert calls("get_order", "ok") is None
    seconds = "realtime_bridge_tool_call_seconds"
    assert registry.get_sample_value(f"{seconds}_count", {"tool": "echo"}) == 2
    assert registry.get_sample_value(f"{seconds}_bucket", {"tool": "get_order", "le": "30.0"}) == 1
    assert registry.get_sample_value(f"{seconds}_bucket", {"tool": "get_order", "le": "0.05"}) == 0
    assert b"realtime_bridge_tool_calls_total{" in bridge.exposition()
    with pytest.raises(ValueError, match="Duplicated"):
        ToolMetrics(bridge.registry)


async def test_logs_never_hold_arguments_or_outputs(
    hook: Hook, tool_logs: pytest.LogCaptureFixture
) -> None:
    arguments = orjson.dumps({"name": PERSONAL}).decode()
    specs = [webhook("/ok", hook), python("echo"), python("broken")]
    runner = ToolRunner(specs)
    try:
        results = [await runner.run(spec, call(arguments=arguments)) for spec in specs]
    finally:
        await runner.close()
    assert [r.outcome for r in results] == ["ok", "ok", "error"]
    assert PERSONAL in results[0].output  # the outputs do hold it…
    assert PERSONAL in results[1].output
    for record in tool_logs.records:  # …the log records, at any level, do not
        assert PERSONAL not in record.getMessage()
        assert PERSONAL not in repr(vars(record))
    # One record each (caplog may hold a record twice when another test's set-up left the
    # package logger with a handler of its own: count records, not deliveries).
    infos = list({id(r): r for r in tool_logs.records if r.levelno == logging.INFO}.values())
    assert len(infos) == 3
    first = vars(infos[0])
    assert (first["tool"], first["outcome"], first["call_id"]) == ("get_order", "ok", "call_1")
    assert first["session_id"] == "sess_1"
    assert isinstance(first["ms"], float)
    assert vars(infos[2])["reason"] == "LookupError"
