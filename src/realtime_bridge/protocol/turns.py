"""Turns for clients that cannot end their own: silence fill and the answer after a commit.

Two kinds of client never finish a spoken turn under server VAD on their own:

- clients that stop sending while their user is quiet (browsers with silence suppression,
  telephony DTX, pages that send only loud chunks): the upstream's VAD never hears the silence
  that ends the turn. **Silence fill**: once the upstream reported speech and the client's audio
  has run out for a gap, the bridge appends real-time silence in the upstream's format until the
  upstream ends the turn, the client sends audio again, or the session's silence duration plus a
  margin has been filled.
- clients that commit manually and never ask for a response: under server VAD the API answers
  only the turns its VAD ends. **The answer after a manual commit**: with ``create_response``
  on, a client commit that the client does not follow with its own ``response.create`` within a
  short window gets one from the bridge.

The bridge owns the consequences (SPEC §12): a client commit of a turn the VAD already took is
answered here with the ``input_audio_buffer.committed`` the upstream sent for it, never turned
into an ``input_audio_buffer_commit_empty`` error; errors caused by the bridge's own events are
never shown to the client.

:class:`TurnKeeper` is pure: it is fed events and clock values (``time.monotonic`` seconds) and
returns events to send; the caller owns the timer and asks :meth:`TurnKeeper.deadline` when to
call :meth:`TurnKeeper.poll` next.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from realtime_bridge.audio.formats import PCM16_24K, AudioFormat
from realtime_bridge.protocol.events import dumps

SPEECH_STARTED = "input_audio_buffer.speech_started"
SPEECH_STOPPED = "input_audio_buffer.speech_stopped"
COMMITTED = "input_audio_buffer.committed"
CLEARED = "input_audio_buffer.cleared"
RESPONSE_CREATED = "response.created"
RESPONSE_DONE = "response.done"
ERROR = "error"
#: Upstream events the keeper must see (all rare: never on the audio hot path).
TURN_EVENTS = frozenset(
    {SPEECH_STARTED, SPEECH_STOPPED, COMMITTED, CLEARED, RESPONSE_CREATED, RESPONSE_DONE, ERROR}
)
COMMIT_EMPTY = "input_audio_buffer_commit_empty"
#: The API's semantic VAD waits at most this long after speech, by eagerness.
SEMANTIC_MAX_WAIT_MS = {"low": 8000, "medium": 4000, "auto": 4000, "high": 2000}
#: The API's server-VAD default.
DEFAULT_SILENCE_MS = 500


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """How the bridge helps turns end; one per session (server defaults, query overrides)."""

    silence_fill: bool = True
    #: Silence is filled once the client's audio has run out for this long.
    fill_gap_ms: float = 200.0
    #: Filling stops after the session's silence duration plus this much.
    fill_margin_ms: float = 300.0
    #: While filling, silence goes up in chunks of about this length, at real-time pace.
    fill_chunk_ms: float = 100.0
    #: How long a client that committed manually has to send its own ``response.create``.
    answer_window_ms: float = 300.0


@dataclass(slots=True)
class TurnOutput:
    """What one call to the keeper asks for."""

    to_upstream: list[str] = field(default_factory=list)
    #: GA events for the client (the caller translates them for a beta client).
    to_client: list[dict[str, Any]] = field(default_factory=list)
    #: The client's event is answered here and must not be forwarded upstream.
    swallow: bool = False
    #: Silence fill starts now: the caller first sends what its input converter holds back.
    fill_started: bool = False


_NOTHING = TurnOutput()


@dataclass(slots=True)
class TurnStats:
    """What the keeper added to the session, for ``/sessions``, logs and the benchmark."""

    fill_bytes: int = 0
    fill_ms: float = 0.0
    fills: int = 0
    responses_created: int = 0
    commits_answered: int = 0
    errors_hidden: int = 0


class TurnKeeper:
    """The turn state of one session, as the upstream confirmed it and the client drove it."""

    def __init__(self, settings: TurnSettings | None = None) -> None:
        self.settings = settings or TurnSettings()
        self.stats = TurnStats()
        #: The upstream's input format: silence is made in it.
        self.upstream_format: AudioFormat = PCM16_24K
        self._id_prefix = f"bridge{secrets.token_hex(4)}_"
        self._next_id = 0
        # -- the session as the upstream last confirmed it
        self._vad = False
        self._create_response = True
        self._transcription = False
        self._silence_ms: float = DEFAULT_SILENCE_MS
        # -- the client's audio clock: until when its audio lasts, played in real time
        self._covered_until = 0.0
        self._client_audio_since_commit = False
        # -- the upstream's view of the turn
        self._speaking = False
        self._vad_commit_expected = False
        self._last_commit: dict[str, Any] | None = None
        self._last_commit_by_vad = False
        self._response_active = False
        # -- silence fill
        self._fill_until: float | None = None
        self._filled_this_turn_ms = 0.0
        self._fill_spent = False
        # -- the answer after a manual commit
        self._client_commits_in_flight = 0
        self._answer_wanted = False
        self._answer_due: float | None = None

    # ------------------------------------------------------------------ configuration

    def configure(self, session: object) -> None:
        """The session as the upstream confirmed it (``session.created`` / ``.updated``)."""
        if not isinstance(session, dict):
            return
        if session.get("type") == "transcription":
            self._transcription = True  # no responses: nothing to answer a commit with
        audio = session.get("audio")
        inp = audio.get("input") if isinstance(audio, dict) else None
        if not isinstance(inp, dict) or "turn_detection" not in inp:
            return
        td = inp["turn_detection"]
        if not isinstance(td, dict) or td.get("type") not in ("server_vad", "semantic_vad"):
            self._vad = False
            self._stop_fill()
            self._answer_due = None
            return
        self._vad = True
        self._create_response = (
            td.get("create_response", True) is not False and not self._transcription
        )
        if td.get("type") == "semantic_vad":
            eagerness = td.get("eagerness", "auto")
            self._silence_ms = SEMANTIC_MAX_WAIT_MS.get(str(eagerness), 4000)
        else:
            silence = td.get("silence_duration_ms", DEFAULT_SILENCE_MS)
            self._silence_ms = float(silence) if isinstance(silence, int | float) else 500.0

    @property
    def vad(self) -> bool:
        return self._vad

    def owns(self, event_id: object) -> bool:
        """Whether a client event id is one of the bridge's own events."""
        return isinstance(event_id, str) and event_id.startswith(self._id_prefix)

    def new_event_id(self) -> str:
        self._next_id += 1
        return f"{self._id_prefix}{self._next_id}"

    # ------------------------------------------------------------------ client events

    def client_audio(self, now: float, duration_ms: float) -> None:
        """The client appended audio (the hot path: a few attribute updates)."""
        covered = self._covered_until
        if self._fill_until is not None:
            covered = max(covered, self._fill_until)
            self._fill_until = None  # the client speaks for itself again
        self._covered_until = (covered if covered > now else now) + duration_ms / 1000.0
        self._client_audio_since_commit = True

    def client_commit(self) -> TurnOutput:
        """A client ``input_audio_buffer.commit``: forwarded, or answered here when the VAD
        (helped by silence fill) already committed everything the client sent."""
        self._stop_fill()
        if (
            self._vad
            and not self._client_audio_since_commit
            and self._last_commit_by_vad
            and self._last_commit is not None
        ):
            self._last_commit_by_vad = False  # a second commit is the client's own doing
            self.stats.commits_answered += 1
            return TurnOutput(to_client=[self._commit_answer()], swallow=True)
        self._client_commits_in_flight += 1
        self._answer_wanted = True
        self._answer_due = None
        return _NOTHING

    def client_clear(self) -> None:
        self._stop_fill()
        self._client_audio_since_commit = False

    def client_response_create(self) -> None:
        self._answer_wanted = False
        self._answer_due = None

    # ------------------------------------------------------------------ upstream events

    def upstream_event(self, event_type: str, event: dict[str, Any], now: float) -> TurnOutput:
        """One of :data:`TURN_EVENTS` from the upstream; ``swallow`` hides it from the client."""
        if event_type == SPEECH_STARTED:
            self._speaking = True
            self._fill_spent = False
            self._filled_this_turn_ms = 0.0
        elif event_type == SPEECH_STOPPED:
            self._speaking = False
            self._vad_commit_expected = True
            self._stop_fill()
        elif event_type == COMMITTED:
            self._committed(event, now)
        elif event_type == CLEARED:
            self._speaking = False
            self._stop_fill()
        elif event_type == RESPONSE_CREATED:
            self._response_active = True
            self._answer_wanted = False
            self._answer_due = None
        elif event_type == RESPONSE_DONE:
            self._response_active = False
        elif event_type == ERROR:
            return self._error(event)
        return _NOTHING

    def _committed(self, event: dict[str, Any], now: float) -> None:
        self._speaking = False
        self._stop_fill()
        self._last_commit = event
        self._client_audio_since_commit = False
        if self._vad_commit_expected or self._client_commits_in_flight == 0:
            self._vad_commit_expected = False
            self._last_commit_by_vad = True
            return
        self._client_commits_in_flight -= 1
        self._last_commit_by_vad = False
        if self._answer_wanted and self._vad and self._create_response:
            self._answer_due = now + self.settings.answer_window_ms / 1000.0
        self._answer_wanted = False

    def _error(self, event: dict[str, Any]) -> TurnOutput:
        error = event.get("error")
        if not isinstance(error, dict):
            return _NOTHING
        if self.owns(error.get("event_id")):
            self.stats.errors_hidden += 1
            return TurnOutput(swallow=True)  # caused by the bridge's own event
        if error.get("code") == COMMIT_EMPTY and self._client_commits_in_flight:
            self._client_commits_in_flight -= 1
            self._answer_wanted = False
            if self._last_commit_by_vad and self._last_commit is not None:
                # The VAD took the turn (it heard the bridge's fill) just before this commit.
                self._last_commit_by_vad = False
                self.stats.commits_answered += 1
                self.stats.errors_hidden += 1
                return TurnOutput(to_client=[self._commit_answer()], swallow=True)
        return _NOTHING

    # ------------------------------------------------------------------ time

    def deadline(self) -> float | None:
        """When :meth:`poll` has something to do next (None: nothing is pending)."""
        due = self._answer_due if not self._response_active else None
        if self._fill_possible():
            start = (
                self._fill_until + self.settings.fill_chunk_ms / 1000.0
                if self._fill_until is not None
                else self._covered_until + self.settings.fill_gap_ms / 1000.0
            )
            due = start if due is None else min(due, start)
        return due

    def poll(self, now: float) -> TurnOutput:
        """Silence to append and responses to create, as of ``now``."""
        out = TurnOutput()
        due = self._answer_due
        if due is not None and now >= due and not self._response_active:
            self._answer_due = None
            self.stats.responses_created += 1
            out.to_upstream.append(
                dumps({"type": "response.create", "event_id": self.new_event_id()})
            )
        if self._fill_possible():
            self._fill(now, out)
        return out

    def _fill_possible(self) -> bool:
        return self._speaking and self._vad and self.settings.silence_fill and not self._fill_spent

    def _fill(self, now: float, out: TurnOutput) -> None:
        settings = self.settings
        if self._fill_until is None:
            if now < self._covered_until + settings.fill_gap_ms / 1000.0:
                return
            # The client's audio ran out at covered_until: silence from there, in real time.
            self._fill_until = self._covered_until
            self.stats.fills += 1
            out.fill_started = True
        cap_ms = self._silence_ms + settings.fill_margin_ms
        want_ms = min((now - self._fill_until) * 1000.0, cap_ms - self._filled_this_turn_ms)
        fmt = self.upstream_format
        size = fmt.bytes_for_ms(max(want_ms, 0.0))
        if size:
            audio = silence(fmt, size)
            event = {"type": "input_audio_buffer.append", "event_id": self.new_event_id()}
            event["audio"] = base64.b64encode(audio).decode()
            out.to_upstream.append(dumps(event))
            ms = fmt.duration_ms(size)
            self._fill_until += ms / 1000.0
            self._filled_this_turn_ms += ms
            self.stats.fill_bytes += size
            self.stats.fill_ms += ms
        if self._filled_this_turn_ms >= cap_ms - 1.0:
            self._fill_spent = True  # the upstream did not end the turn: leave it be
            self._fill_until = None

    def _stop_fill(self) -> None:
        self._fill_until = None

    def _commit_answer(self) -> dict[str, Any]:
        """The ``committed`` event the upstream sent for the turn, as the answer to a commit."""
        assert self._last_commit is not None
        answer = dict(self._last_commit)
        answer["event_id"] = self.new_event_id()
        return answer


_SILENCE_BYTE = {"ulaw": b"\xff", "alaw": b"\xd5"}


def silence(fmt: AudioFormat, size: int) -> bytes:
    """``size`` bytes of digital silence in ``fmt`` (G.711 has its own code for zero)."""
    return _SILENCE_BYTE.get(fmt.codec.value, b"\x00") * size


__all__ = ["TURN_EVENTS", "TurnKeeper", "TurnOutput", "TurnSettings", "TurnStats", "silence"]
