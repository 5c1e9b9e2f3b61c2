"""Running server-side tools: the bridge, not the client, answers the model's function calls.

The session hands :meth:`ToolRunner.run` a call the model made to one of the operator's tools and
puts the returned :class:`ToolResult` back in a ``function_call_output`` item. A tool is slow,
broken or unreachable at times, and the conversation must go on regardless: :meth:`ToolRunner.run`
never raises (cancellation aside) and turns every failure into a short JSON error the model can
speak about. Those errors name the tool and what went wrong in general terms (an HTTP status, an
exception's class name) and never more: arguments and answers may hold a caller's personal data,
exception messages too, so none of them reaches an output, a log line or a metric label.

Webhooks get a signed POST (HMAC-SHA256 over timestamp and body, see :func:`signature`) so the
receiver can tell the bridge from anyone else and refuse a replay. Python callables are imported
when the runner is built, so a typo stops the bridge at start-up; sync ones run in a worker
thread so that the event loop, shared by every session, never waits on them. A sync function
still running at its timeout cannot be stopped (Python has no way to kill a thread): it goes on
in its thread, holding one of the loop's default executor workers, and its result is ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from realtime_bridge.errors import ConfigError
from realtime_bridge.metrics import ToolMetrics
from realtime_bridge.tools.spec import ToolSpec

log = logging.getLogger("realtime_bridge.tools")

OK = "ok"
ERROR = "error"
TIMEOUT = "timeout"
#: The most of a webhook's answer the bridge reads; beyond it the call failed.
MAX_RESPONSE_BYTES = 1 << 20
_READ_CHUNK = 64 * 1024
_POLICY_VARIABLE = "BRIDGE_POLICY_FILE"

ToolFunction = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call of the model: ``arguments`` is its JSON text, as the model wrote it."""

    name: str
    call_id: str
    arguments: str
    session_id: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What to answer the model: ``output`` goes in ``function_call_output`` as it is."""

    output: str
    outcome: str  # OK, ERROR or TIMEOUT
    seconds: float


class _Failed(Exception):
    """A failure the model is told about (``message``), with a short ``reason`` for the log."""

    def __init__(self, code: str, message: str, reason: str) -> None:
        super().__init__(reason)
        self.output = error_output(code, message)
        self.reason = reason


def error_output(code: str, message: str) -> str:
    """The ``function_call_output`` of a failed call: ``{"error": code, "message": message}``."""
    return orjson.dumps({"error": code, "message": message}).decode()


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """``X-Bridge-Signature``: HMAC-SHA256 of ``"<timestamp>." + body``. A receiver recomputes
    it with the same key, compares in constant time and refuses a stale timestamp."""
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _parse_object(text: str) -> dict[str, Any] | None:
    """The model's arguments as a dict, or None when they are not a JSON object."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _resolve(spec: ToolSpec) -> ToolFunction:
    """The callable ``spec.python`` names; a :class:`ConfigError` naming the tool otherwise."""
    assert spec.python is not None
    module_name, _, attribute = spec.python.partition(":")
    where = f"tools.{spec.name}: python {spec.python}"
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise ConfigError(_POLICY_VARIABLE, f"{where}: no module named {missing}") from None
    except Exception as exc:
        raise ConfigError(
            _POLICY_VARIABLE, f"{where}: importing {module_name} failed ({type(exc).__name__})"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(_POLICY_VARIABLE, f"{where}: {attribute} not found") from None
    if not callable(target):
        raise ConfigError(_POLICY_VARIABLE, f"{where}: {attribute} is not callable")
    function: ToolFunction = target
    return function


def _is_async(function: ToolFunction) -> bool:
    # An ``async def`` function, or an object whose class has an ``async def __call__``.
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        type(function).__call__
    )


class ToolRunner:
    """Runs the tools of ``specs``: resolves their callables and reads their keys when built (a
    :class:`ConfigError` for the first that fails), then runs calls. One runner may serve many
    sessions at once; :meth:`close` it when done. ``metrics`` is the server's
    :class:`ToolMetrics` (without it, calls are counted where nothing exposes them)."""

    def __init__(self, specs: Iterable[ToolSpec], *, metrics: ToolMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else ToolMetrics()
        self._functions: dict[str, ToolFunction] = {}
        self._keys: dict[str, bytes] = {}
        self._http: aiohttp.ClientSession | None = None
        for spec in specs:
            if spec.python is not None and spec.python not in self._functions:
                self._functions[spec.python] = _resolve(spec)
            if spec.secret_env is not None and spec.secret_env not in self._keys:
                value = os.environ.get(spec.secret_env)
                if not value:
                    raise ConfigError(
                        _POLICY_VARIABLE,
                        f"tools.{spec.name}: secret_env {spec.secret_env} is not set",
                    )
                self._keys[spec.secret_env] = value.encode()

    async def run(self, spec: ToolSpec, call: ToolCall) -> ToolResult:
        """Run ``call`` with ``spec``'s tool within ``spec.timeout_s``; never raises, except
        :class:`asyncio.CancelledError` when the caller is cancelled."""
        started = time.monotonic()
        reason = ""
        deadline = asyncio.timeout(spec.timeout_s)
        try:
            try:
                async with deadline:
                    if spec.webhook is not None:
                        output = await self._webhook(spec, call)
                    else:
                        output = await self._python(spec, call)
                outcome = OK
            except TimeoutError:
                if not deadline.expired():
                    raise
                outcome, reason = TIMEOUT, "timeout"
                output = error_output(
                    "timeout", f"The tool {spec.name} did not answer within {spec.timeout_s:g} s."
                )
        except _Failed as failed:
            outcome, output, reason = ERROR, failed.output, failed.reason
        except asyncio.CancelledError:
            log.debug("tool call cancelled", extra={"tool": spec.name, "call_id": call.call_id})
            raise
        except Exception as exc:  # a bug of the bridge's: the model still gets an answer
            log.error("tool call broke", exc_info=True, extra={"tool": spec.name})
            outcome, reason = ERROR, type(exc).__name__
            output = error_output("tool_failed", f"The tool {spec.name} failed.")
        seconds = time.monotonic() - started
        self.metrics.tool_called(spec.name, outcome, seconds)
        fields: dict[str, Any] = {
            "tool": spec.name,
            "outcome": outcome,
            "ms": round(seconds * 1000, 1),
            "call_id": call.call_id,
            "session_id": call.session_id,
        }
        if reason:
            fields["reason"] = reason
        log.info("tool call", extra=fields)
        if log.isEnabledFor(logging.DEBUG):
            sizes = {"arguments_bytes": len(call.arguments), "output_bytes": len(output)}
            log.debug("tool call sizes", extra={"tool": spec.name, **sizes})
        return ToolResult(output=output, outcome=outcome, seconds=seconds)

    async def close(self) -> None:
        """Close the HTTP client, if a webhook call made one."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # No timeout of aiohttp's own: run() bounds the whole call with the tool's.
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self._http

    async def _webhook(self, spec: ToolSpec, call: ToolCall) -> str:
        assert spec.webhook is not None
        if spec.secret_env is not None and spec.secret_env not in self._keys:
            raise _Failed(
                "tool_failed", f"The tool {spec.name} is not available.", "not_configured"
            )
        arguments = _parse_object(call.arguments)
        body = orjson.dumps(
            {
                "name": spec.name,
                "arguments": call.arguments if arguments is None else arguments,
                "call_id": call.call_id,
                "session_id": call.session_id,
            }
        )
        headers = {"Content-Type": "application/json", "User-Agent": "realtime-bridge"}
        if spec.secret_env is not None:
            timestamp = str(int(time.time()))
            headers["X-Bridge-Timestamp"] = timestamp
            headers["X-Bridge-Signature"] = signature(self._keys[spec.secret_env], timestamp, body)
        failed = f"The tool {spec.name} failed"
        try:
            async with self._client().post(
                spec.webhook, data=body, headers=headers, allow_redirects=False
            ) as response:
                if not 200 <= response.status < 300:
                    status = response.status
                    raise _Failed("tool_failed", f"{failed} (HTTP {status}).", f"http_{status}")
                answer = await _read_limited(response)
        except aiohttp.ClientConnectionError as exc:
            message = f"The tool {spec.name} could not be reached."
            raise _Failed("tool_failed", message, type(exc).__name__) from None
        except aiohttp.ClientError as exc:
            raise _Failed("tool_failed", f"{failed}.", type(exc).__name__) from None
        if answer is None:
            raise _Failed("tool_failed", f"{failed} (its answer is too large).", "too_large")
        try:
            return orjson.dumps(orjson.loads(answer)).decode()
        except orjson.JSONDecodeError:
            message = f"{failed} (its answer is not JSON)."
            raise _Failed("tool_failed", message, "not_json") from None

    async def _python(self, spec: ToolSpec, call: ToolCall) -> str:
        assert spec.python is not None
        function = self._functions.get(spec.python)
        if function is None:
            raise _Failed(
                "tool_failed", f"The tool {spec.name} is not available.", "not_configured"
            )
        arguments = _parse_object(call.arguments)
        if arguments is None:
            message = f"The tool {spec.name} was called with arguments that are not a JSON object."
            raise _Failed("invalid_arguments", message, "invalid_arguments")
        try:
            if _is_async(function):
                result = await function(arguments)
            else:
                result = await asyncio.to_thread(function, arguments)
                if inspect.isawaitable(result):  # a sync wrapper around a coroutine
                    result = await result
        except Exception as exc:  # its message may hold personal data: the class name only
            name = type(exc).__name__
            raise _Failed("tool_failed", f"The tool {spec.name} failed ({name}).", name) from None
        if isinstance(result, str):
            return result
        try:
            return orjson.dumps(result).decode()
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            message = f"The tool {spec.name} returned something that is not JSON."
            raise _Failed("tool_failed", message, "not_json") from None


async def _read_limited(response: aiohttp.ClientResponse) -> bytes | None:
    """The response body, or None past :data:`MAX_RESPONSE_BYTES` (what is left is not read)."""
    if response.content_length is not None and response.content_length > MAX_RESPONSE_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = [
    "ERROR",
    "MAX_RESPONSE_BYTES",
    "OK",
    "TIMEOUT",
    "ToolCall",
    "ToolResult",
    "ToolRunner",
    "error_output",
    "signature",
]
