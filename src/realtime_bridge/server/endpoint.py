"""The client WebSocket endpoint: who may upgrade, and the life of the session that follows.

:class:`SessionEndpoint` is the listener factory picows calls with each parsed upgrade request.
It decides synchronously, before any upstream connection is opened: origin (403), token (401),
draining or full (503), audio formats in the query (400); then reserves the session's slot and
answers 101 with ``X-Bridge-Session-Id``. The session itself runs as one task per client
(:meth:`SessionEndpoint.run_session`), from the upgrade to the session-end log line.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from multidict import CIMultiDict
from picows import WSUpgradeRequest, WSUpgradeResponseWithListener

from realtime_bridge.audio.formats import ULAW_8K
from realtime_bridge.config import Settings
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.metrics import SessionSource
from realtime_bridge.observability import get_logger, session_logger
from realtime_bridge.protocol.handshake import HandshakeOptions
from realtime_bridge.protocol.memory import ConversationMemory, MemoryLimits
from realtime_bridge.protocol.session import SessionProtocol
from realtime_bridge.protocol.turns import TurnSettings
from realtime_bridge.server.access import Grant, log_refusal
from realtime_bridge.server.admission import own_origins
from realtime_bridge.server.bridge import BridgeSession
from realtime_bridge.server.channel import ClientConnection
from realtime_bridge.server.client_address import client_address
from realtime_bridge.server.endings import CLIENT_STALLED
from realtime_bridge.server.http import ServerState
from realtime_bridge.server.sessions import SessionRecord, new_session_id
from realtime_bridge.server.sideband import attach_sideband, relay_sideband, sideband_target
from realtime_bridge.server.tool_calls import SessionTools
from realtime_bridge.server.twilio_calls import call_lock, twilio_signed, wait_for_start
from realtime_bridge.server.twilio_channel import TwilioConnection
from realtime_bridge.server.upgrade import (
    MODEL_NAME,
    SESSION_PATHS,
    handshake_options,
    is_websocket_upgrade,
    refusal,
    switching,
    upgrade_problem,
)

log = get_logger("server")

#: Where Twilio Media Streams connect (TwiML <Stream url="wss://HOST/twilio">).
TWILIO_PATH = "/twilio"
#: A call's audio: G.711 µ-law at 8 kHz both ways, passed through and told to the upstream
#: (Twilio streams continuously, silence included: no silence fill).
PHONE_OPTIONS = HandshakeOptions(input_format=ULAW_8K, output_format=ULAW_8K, silence_fill=False)
#: How long a client whose last frames are still unsent gets to take them after the close.
UNSENT_GRACE_S = 3.0


def turn_settings(settings: Settings, options: HandshakeOptions) -> TurnSettings:
    """The session's turn help: the server's settings, with the client's query choice."""
    fill = options.silence_fill
    return TurnSettings(
        silence_fill=settings.silence_fill == "auto" if fill is None else fill,
        fill_gap_ms=settings.silence_fill_gap_ms,
        answer_window_ms=settings.commit_response_window_ms,
    )


class SessionEndpoint:
    """picows' listener factory for the client listener, and the runner of each session."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(
        self, request: WSUpgradeRequest, peer: str | None = None
    ) -> WSUpgradeResponseWithListener:
        try:
            return self._upgrade(request, peer)
        except Exception:  # a bug here must not leave the client hanging
            log.exception("unexpected error at the upgrade")
            return refusal(500, "internal_error", "The bridge hit an internal error.")

    def _upgrade(
        self, request: WSUpgradeRequest, peer: str | None
    ) -> WSUpgradeResponseWithListener:
        state = self._state
        settings = state.settings
        headers: CIMultiDict[str] = request.headers
        peer = client_address(peer, headers.getall("X-Forwarded-For", ()), settings.trusted_proxies)
        target = urlsplit(request.path.decode("latin-1"))
        query = dict(parse_qsl(target.query))
        phone = target.path == TWILIO_PATH
        if target.path not in SESSION_PATHS and not phone:
            return refusal(404, "not_found", f"No such endpoint: {target.path}")
        if "call_id" in query and not phone:
            return self._sideband(headers, query, peer, request.path.decode("latin-1"))
        model = query.get("model")
        if model is not None and not MODEL_NAME.fullmatch(model):
            return refusal(
                400,
                "invalid_model",
                "A model name is 1 to 128 letters, digits, '.', '_', '-' or ':'.",
            )
        if not is_websocket_upgrade(headers):
            return refusal(
                426,
                "upgrade_required",
                "This endpoint speaks the Realtime protocol over WebSocket.",
                {"Upgrade": "websocket"},
            )
        # SPEC §8: origin (403), then token (401) — before anything else, and in particular
        # before any upstream connection is opened. Load (draining, full) is not revealed to
        # strangers.
        # Then the operator's policy (model, rate, concurrency, budget), all before any
        # upstream connection is opened.
        assert state.access is not None
        if phone and settings.twilio_auth_token is not None:
            # Twilio signs the stream's URL; a valid signature is the credential (Twilio
            # cannot present a bridge token), checked before any upstream connection.
            if not twilio_signed(settings, headers, request.path.decode("latin-1")):
                log.info("Twilio stream refused: bad signature", extra={"client": peer})
                return self._refuse(
                    ErrorCode.FORBIDDEN_ORIGIN, "The X-Twilio-Signature is missing or wrong."
                )
            grant = state.access.twilio_grant()
        else:
            grant = None
        try:
            grant = grant or state.access.admit_upgrade(
                headers=headers,
                query=query,
                own_origins=own_origins(state.http_url, settings.host, headers.get("Host")),
                now=time.time(),
                peer=peer,
            )
        except ClientError as refused:
            log_refusal(log, "client refused", refused, peer)
            retry = getattr(refused, "retry_after_s", None)
            return self._refuse(refused.code, refused.message, retry)
        refused_now = self._after_admission(headers, {} if phone else query)
        if isinstance(refused_now, WSUpgradeResponseWithListener):
            grant.release()
            return refused_now
        options = PHONE_OPTIONS if phone else refused_now
        # picows accepts only "Connection: upgrade"; browsers may send "keep-alive, Upgrade".
        headers["Connection"] = "upgrade"

        session_id = new_session_id()
        record = SessionRecord(
            id=session_id,
            client=peer or "unknown",
            model=grant.model,
            upstream=state.upstream.kind,
            credential=grant.credential,
            budget_left=lambda: grant.budget_left(time.time()),
            client_kind="twilio" if phone else "realtime",
        )
        state.registry.add(record)  # reserves the slot now, so concurrent upgrades see it
        client = (
            TwilioConnection(
                settings.max_message_bytes,
                settings.client_max_unsent_bytes,
                dtmf=settings.twilio_dtmf,
                greeting=settings.twilio_greeting,
            )
            if phone
            else ClientConnection(settings.max_message_bytes, settings.client_max_unsent_bytes)
        )
        client.peer = record.client
        self.start(record, client, options, grant)
        return switching(headers, session_id, client)

    def start(
        self,
        record: SessionRecord,
        client: ClientConnection,
        options: HandshakeOptions,
        grant: Grant,
    ) -> asyncio.Task[None]:
        """Run the session of an admitted client (its slot already reserved) as a task."""
        task = asyncio.get_running_loop().create_task(
            self.run_session(record, client, options, grant), name=f"session-{record.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _after_admission(
        self, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> HandshakeOptions | WSUpgradeResponseWithListener:
        """Load (draining, full), then the request itself: the options, or the refusal."""
        state = self._state
        if state.draining:
            return self._refuse(ErrorCode.SERVER_SHUTTING_DOWN, "The server is shutting down.")
        if state.registry.full:
            return self._refuse(
                ErrorCode.SESSION_LIMIT_REACHED,
                f"The bridge is at its limit of {state.settings.max_sessions} concurrent sessions.",
            )
        try:
            options = handshake_options(headers, query)
        except ClientError as exc:
            return refusal(exc.http_status, exc.code.value, exc.message)
        except ValueError as exc:
            return refusal(400, "bad_request", str(exc))
        problem = upgrade_problem(headers)
        if problem is not None:
            return refusal(400, "bad_request", problem)
        return options

    def _sideband(
        self, headers: CIMultiDict[str], query: Mapping[str, str], peer: str | None, target: str
    ) -> WSUpgradeResponseWithListener:
        """An operator's backend attaching to a live WebRTC call (``?call_id=``)."""
        state = self._state
        try:
            call = sideband_target(state, headers, query)
        except ClientError as refused:
            log.info("sideband refused", extra={"code": refused.code.value, "client": peer})
            return self._refuse(refused.code, refused.message)
        problem = upgrade_problem(headers)
        if problem is not None:
            return refusal(400, "bad_request", problem)
        headers["Connection"] = "upgrade"
        connection = ClientConnection(
            state.settings.max_message_bytes, state.settings.client_max_unsent_bytes
        )
        if isinstance(call, int):  # another worker holds the call: relayed to it
            work = relay_sideband(connection, call, target, headers)
            session_id = f"sess_{query['call_id'].partition('_')[2]}"
        else:
            work = attach_sideband(call, connection)
            session_id = call.session_id
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return switching(headers, session_id, connection)

    def _refuse(
        self, code: ErrorCode, message: str, retry_after_s: float | None = None
    ) -> WSUpgradeResponseWithListener:
        if self._state.metrics is not None:
            self._state.metrics.refused(code.value)
        error = ClientError(code, message)
        headers: dict[str, str] = {}
        if code is ErrorCode.UNAUTHORIZED:
            headers["WWW-Authenticate"] = 'Bearer realm="realtime-bridge"'
        if retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
        return refusal(error.http_status, code.value, message, headers)

    async def run_session(
        self,
        record: SessionRecord,
        client: ClientConnection,
        options: HandshakeOptions,
        grant: Grant,
    ) -> None:
        """One session, from the 101 to the end line; the registry slot is freed at the end."""
        state = self._state
        try:
            if not await client.connected():
                return  # the upgrade never completed
            record.client = client.peer
            if isinstance(client, TwilioConnection):
                started = await wait_for_start(client, record, state.settings)
                if started is None:
                    return
                grant.lock = call_lock(grant.lock, grant.policy, started, state.settings)
            await self._relay(record, client, options, grant)
        except Exception:
            log.exception("unexpected error in session %s", record.id)
            client.abort()
        finally:
            grant.release()
            state.registry.remove(record)

    async def _relay(
        self,
        record: SessionRecord,
        client: ClientConnection,
        options: HandshakeOptions,
        grant: Grant,
    ) -> None:
        state = self._state
        settings = state.settings
        slog = session_logger(record.id)
        tools = (
            SessionTools(state.tools, grant.policy.tools, record.id)
            if state.tools is not None and grant.policy.tools
            else None
        )
        memory = (
            ConversationMemory(
                MemoryLimits(settings.resume_memory_items, settings.resume_memory_bytes)
            )
            if settings.resume_on_upstream_drop or settings.upstream_rollover_s > 0
            else None
        )
        rules = SessionProtocol(
            options,
            turns=turn_settings(settings, options),
            lock=grant.lock,
            tools=tools.rules() if tools is not None else None,
            memory=memory,
        )
        if state.metrics is not None:
            state.metrics.session_started(
                record.id, SessionSource(record.counters, rules), record.client_kind
            )
        start_fields = {
            "client": record.client,
            "model": record.model,
            "upstream": record.upstream,
            "client_kind": record.client_kind,
            **(record.call or {}),
        }
        credential = grant.credential
        if credential.get("kind") == "token":
            start_fields["client_token"] = str(credential["id"])
        elif credential.get("kind") == "client_secret":
            start_fields["client_secret"] = str(credential["id"])
            start_fields["client_token"] = str(credential.get("token_id"))
        slog.info("session start", extra=start_fields)
        session = BridgeSession(
            record=record,
            client=client,
            upstream=state.upstream,
            idle_timeout_s=settings.session_idle_timeout_s,
            max_duration_s=grant.max_duration_s,
            charge=grant.charge if grant.policy.tokens_per_day is not None else None,
            intent=options.intent,
            tools=tools,
            resume_on_drop=settings.resume_on_upstream_drop,
            resume_deadline_s=settings.resume_deadline_s,
            rollover_s=settings.upstream_rollover_s,
            bridge_events=options.bridge_events,
            on_resumed=state.metrics.upstream_resumed if state.metrics is not None else None,
            log=slog,
            protocol=rules,
            time_frames=state.metrics is not None,
            on_connected=state.metrics.upstream_connected if state.metrics is not None else None,
        )
        try:
            ending = await session.run()
        finally:
            if state.metrics is not None:
                last = session.ending
                state.metrics.session_ended(
                    record.id,
                    last.reason if last else "internal_error",
                    last.close_code if last else 1011,
                    last.error.code.value if last and last.error else None,
                )
        if ending.reason != CLIENT_STALLED and client.write_buffer_size:
            # Its last frames are still unsent: it gets a while to take them, then is dropped.
            loop = asyncio.get_running_loop()
            loop.call_later(UNSENT_GRACE_S, _abort_if_unflushed, client)
        slog.info(
            "session end",
            extra={
                "reason": ending.reason,
                "close_code": ending.close_code,
                "protocol": record.protocol,
                "duration_s": round(record.duration_s, 3),
                "bytes_in": record.client_to_upstream.bytes,
                "bytes_out": record.upstream_to_client.bytes,
                "events_in": record.client_to_upstream.events,
                "events_out": record.upstream_to_client.events,
                "audio_in_s": record.audio_seconds["client_to_upstream"],
                "audio_out_s": record.audio_seconds["upstream_to_client"],
                "usage": record.usage,
                "turns": record.turns,
                **call_summary(record, client),
            },
        )


def call_summary(record: SessionRecord, client: ClientConnection) -> dict[str, object]:
    """A call's ids and what it carried (phone, WebRTC), for its end line and ``/sessions``."""
    extra = client.summary()
    if not extra:
        return {}
    summary = {**(record.call or {}), **extra}
    record.call = summary
    return summary


def _abort_if_unflushed(client: ClientConnection) -> None:
    if client.write_buffer_size:
        client.abort()


def quiet_picows_logs() -> None:
    """picows logs requests and handshakes at its own debug level, which would include a
    client's token header; nothing below INFO from it is ever wanted."""
    logging.getLogger("picows").setLevel(logging.INFO)
