"""Command line: ``realtime-bridge`` serves; ``realtime-bridge simulator`` runs the local API.

Exit codes: 0 after a clean shutdown, 1 when the server cannot start (e.g. port in use),
2 for bad configuration or usage, always with one line on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from realtime_bridge import __version__
from realtime_bridge.config import Settings, load_settings, read_dotenv
from realtime_bridge.errors import ConfigError
from realtime_bridge.observability import get_logger, setup_logging
from realtime_bridge.policy.rules import load_policy

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_CONFIG = 2

# (option, variable, help) — each option overrides the environment variable of the same meaning.
_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--host", "HOST", "bind address of both listeners (default 127.0.0.1)"),
    ("--ws-port", "WS_PORT", "client WebSocket port (default 8080; 0 = any free port)"),
    ("--http-port", "HTTP_PORT", "HTTP API port (default 3000; equal to --ws-port = one listener)"),
    ("--upstream", "UPSTREAM", "auto, openai, azure or local (default auto)"),
    ("--model", "OPENAI_MODEL", "model when the client names none"),
    ("--realtime-url", "OPENAI_REALTIME_URL", "upstream WebSocket URL"),
    ("--log-level", "LOG_LEVEL", "debug, info, warning or error"),
    ("--log-format", "LOG_FORMAT", "text or json"),
    ("--max-sessions", "MAX_SESSIONS", "concurrent client sessions"),
    ("--idle-timeout", "SESSION_IDLE_TIMEOUT_S", "seconds without a client message"),
    ("--max-duration", "SESSION_MAX_DURATION_S", "hard cap per session, seconds"),
    ("--max-message-bytes", "MAX_MESSAGE_BYTES", "largest client message accepted"),
    ("--connect-timeout", "UPSTREAM_CONNECT_TIMEOUT_S", "seconds to open the upstream"),
    ("--shutdown-grace", "SHUTDOWN_GRACE_S", "seconds sessions get to finish on SIGTERM"),
    ("--local-audio-pace", "LOCAL_AUDIO_PACE", "local upstream audio speed (0 = at once)"),
    ("--workers", "WORKERS", "worker processes sharing the ports (default 1; auto = CPUs)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-bridge",
        description=(
            "Bridge realtime voice/text clients to the OpenAI Realtime API (or Azure, or the "
            "built-in offline upstream). Settings come from the environment and .env; the "
            "options below override them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"realtime-bridge {__version__}")
    parser.add_argument("--env-file", default=".env", help="path of the .env file (default ./.env)")
    for option, variable, text in _OPTIONS:
        parser.add_argument(option, dest=variable, metavar=variable, help=f"{text} [{variable}]")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the bridge (the default)")
    token_id = commands.add_parser(
        "token-id",
        help="print a client token's non-secret id (as BRIDGE_POLICY_FILE and /sessions name it)",
    )
    token_id.add_argument("token", help="one of the BRIDGE_API_KEYS")
    call = commands.add_parser(
        "call",
        help="place an offline phone call: a WAV played to a bridge as Twilio would play it",
    )
    call.add_argument("--wav", required=True, help="what the caller says (PCM16 or G.711 WAV)")
    call.add_argument("--out", required=True, help="where to write what the caller heard (WAV)")
    call.add_argument(
        "url",
        nargs="?",
        default=None,
        help="the bridge's stream (default ws://HOST:WS_PORT/twilio)",
    )
    call.add_argument("--token", default=None, help="a bridge token (?token=), if it needs one")
    simulator = commands.add_parser(
        "simulator", help="serve the local upstream alone at ws://HOST:PORT/v1/realtime"
    )
    simulator.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    return parser


def load_from_cli(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    overrides = {
        variable: value
        for _, variable, _ in _OPTIONS
        if (value := getattr(args, variable, None)) is not None
    }
    return load_settings(
        os.environ if environ is None else environ,
        dotenv=read_dotenv(Path(args.env_file)),
        overrides=overrides,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "token-id":
        from realtime_bridge.server.admission import token_fingerprint

        print(token_fingerprint(args.token))
        return EXIT_OK
    try:
        settings = load_from_cli(args)
        load_policy(settings.bridge_policy_file)  # a bad policy file stops start-up too
    except ConfigError as exc:
        print(f"realtime-bridge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format, settings.secret_values())
    if args.command == "call":
        return _call(args, settings)
    if args.command == "simulator":
        return _run(lambda: _simulator(settings.host, args.port, settings.local_audio_pace))
    from realtime_bridge.server.supervisor import WORKER_ENV

    worker = os.environ.get(WORKER_ENV)
    if settings.workers > 1 and worker is None:
        return _supervise(settings)
    from realtime_bridge.server.app import serve
    from realtime_bridge.server.cluster import WorkerIdentity

    identity = WorkerIdentity.parse(worker) if worker else None
    return _run(lambda: serve(settings, worker=identity))


def _supervise(settings: Settings) -> int:
    """``WORKERS`` > 1: this process supervises the workers (server/supervisor.py)."""
    from realtime_bridge.server.supervisor import supervise

    code = EXIT_OK

    async def entry() -> None:
        nonlocal code
        code = await supervise(settings)

    try:
        started = _run(entry)
    except ConfigError as exc:
        print(f"realtime-bridge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return started if started != EXIT_OK else code


def _call(args: argparse.Namespace, settings: Settings) -> int:
    from realtime_bridge.telephony.phone import describe, run_call

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = args.url or f"ws://{host}:{settings.ws_port}/twilio"
    if args.token:
        url += ("&" if "?" in url else "?") + f"token={args.token}"
    try:
        result = asyncio.run(run_call(url, Path(args.wav), Path(args.out)))
    except (OSError, ValueError, aiohttp_errors()) as exc:
        print(f"realtime-bridge call: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    print(describe(result, Path(args.out)))
    return EXIT_OK


def aiohttp_errors() -> type[Exception]:
    import aiohttp

    return aiohttp.ClientError


async def _simulator(host: str, port: int, pace: float) -> None:
    """The local upstream alone, until SIGINT/SIGTERM."""
    from realtime_bridge.upstream.local.server import serve_simulator

    def ready(url: str) -> None:
        print(f"realtime-bridge simulator listening {url}", flush=True)

    serving = asyncio.ensure_future(serve_simulator(host, port, pace, on_ready=ready))
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signum, stop.cancel)
    await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving


def _run(entry: Callable[[], Coroutine[Any, Any, None]]) -> int:
    try:
        _event_loop_runner()(entry())
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        get_logger().debug("start-up failed", exc_info=True)
        print(f"realtime-bridge: cannot start: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_START_FAILED
    return EXIT_OK


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop where the platform has it (measured: about half the relay CPU of asyncio's loop)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    runner: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    return runner


if __name__ == "__main__":
    sys.exit(main())
