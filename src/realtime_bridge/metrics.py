"""Prometheus metrics, counted where they are cheap and exposed by prometheus-client.

The hot path (every relayed frame) only bumps plain integers in a per-session
:class:`SessionMetrics`; nothing takes a lock or touches prometheus-client per frame. A custom
collector sums live and ended sessions when ``/metrics`` is scraped and hands prometheus-client
metric families to expose, so the exposition format is the library's, not ours. Labels stay
low-cardinality: event types outside the protocol's known names count as ``other``, and no label
carries a session id.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from realtime_bridge.event_types import KNOWN_EVENT_TYPES

CLIENT_TO_UPSTREAM = "client_to_upstream"
UPSTREAM_TO_CLIENT = "upstream_to_client"

#: Relay added latency buckets (seconds): a relay adds tens of µs to a few ms.
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
#: Upstream connect time buckets (seconds).
CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def event_label(event_type: str | None) -> str:
    """A bounded label value for an event type."""
    if event_type is None:
        return "invalid"
    return event_type if event_type in KNOWN_EVENT_TYPES else "other"


def close_class(code: int) -> str:
    """Sessions by outcome, grouped by close code: few values, each meaning something."""
    if code in (1000, 1001, 1005):
        return "normal"
    if code in (1007, 1008, 1009):
        return "client_error"
    if code == 1013:
        return "overloaded"
    if code == 1014:
        return "upstream_unavailable"
    if 3000 <= code <= 4999:
        return "upstream_closed"
    return "internal_error"


@dataclass(slots=True)
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, out = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
        return out


_LATENCY_BOUNDS_NS = tuple(round(bound * 1e9) for bound in LATENCY_BUCKETS)
_FIRST_LATENCY_BOUND_NS = _LATENCY_BOUNDS_NS[0]
# Bound once: called for every relayed frame.
_perf_counter_ns = time.perf_counter_ns
_bisect_left = bisect.bisect_left


class DirectionMetrics:
    """One direction of one session: counts per event type and a latency histogram, kept as
    plain ints (nanoseconds) so that the per-frame cost is a few dict and list operations.

    Every session counts its frames here, for ``/sessions`` and its end-of-session log line,
    whether or not metrics are exposed: :meth:`counted` per frame. With metrics on the session
    calls :meth:`relayed` instead, which also times the frame for the latency histogram."""

    __slots__ = ("_by_type", "counts", "latency_counts", "latency_sum_ns")

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}  # label → [events, bytes]
        #: The same lists by event type, for known types only (so it stays bounded): spares
        #: the label lookup on every frame.
        self._by_type: dict[str | None, list[int]] = {}
        self.latency_counts = [0] * (len(_LATENCY_BOUNDS_NS) + 1)
        self.latency_sum_ns = 0

    def counted(self, event_type: str | None, size: int, started_ns: int) -> None:
        """One frame of ``size`` bytes went through (``started_ns`` is not used)."""
        counts = self._by_type.get(event_type)
        if counts is None:
            counts = self._counts_for(event_type)
        counts[0] += 1
        counts[1] += size

    def relayed(self, event_type: str | None, size: int, started_ns: int) -> None:
        """:meth:`counted`, and the time since ``started_ns`` (when the frame arrived)."""
        elapsed_ns = _perf_counter_ns() - started_ns
        counts = self._by_type.get(event_type)
        if counts is None:
            counts = self._counts_for(event_type)
        counts[0] += 1
        counts[1] += size
        if elapsed_ns < _FIRST_LATENCY_BOUND_NS:  # nearly every frame: skip the bisect
            self.latency_counts[0] += 1
        else:
            self.latency_counts[_bisect_left(_LATENCY_BOUNDS_NS, elapsed_ns)] += 1
        self.latency_sum_ns += elapsed_ns

    def _counts_for(self, event_type: str | None) -> list[int]:
        label = event_label(event_type)
        counts = self.counts.get(label)
        if counts is None:
            counts = self.counts[label] = [0, 0]
        if label == event_type:  # a known type
            self._by_type[event_type] = counts
        return counts

    def totals(self) -> tuple[int, int]:
        """Events and bytes, all types together."""
        counts = self.counts.values()
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def merge(self, other: DirectionMetrics) -> None:
        for label, (events, size) in other.counts.items():
            counts = self.counts.setdefault(label, [0, 0])
            counts[0] += events
            counts[1] += size
        for index, count in enumerate(other.latency_counts):
            self.latency_counts[index] += count
        self.latency_sum_ns += other.latency_sum_ns

    def histogram(self) -> _Histogram:
        return _Histogram(LATENCY_BUCKETS, list(self.latency_counts), self.latency_sum_ns / 1e9)


@dataclass(slots=True)
class SessionMetrics:
    """One session's counters, bumped on the hot path and summed at scrape time."""

    client_to_upstream: DirectionMetrics = field(default_factory=DirectionMetrics)
    upstream_to_client: DirectionMetrics = field(default_factory=DirectionMetrics)
    errors: Counter[str] = field(default_factory=Counter)

    def directions(self) -> tuple[tuple[str, DirectionMetrics], ...]:
        return (
            (CLIENT_TO_UPSTREAM, self.client_to_upstream),
            (UPSTREAM_TO_CLIENT, self.upstream_to_client),
        )

    def merge(self, other: SessionMetrics) -> None:
        self.client_to_upstream.merge(other.client_to_upstream)
        self.upstream_to_client.merge(other.upstream_to_client)
        self.errors.update(other.errors)

    def by_type(self, column: int) -> Counter[tuple[str, str]]:
        """Events (column 0) or bytes (column 1) keyed by (direction, type)."""
        return Counter(
            {
                (direction, label): counts[column]
                for direction, metrics in self.directions()
                for label, counts in metrics.counts.items()
            }
        )


@dataclass(slots=True)
class _Ended:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    audio_seconds: Counter[tuple[str, str]] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    traffic: SessionMetrics = field(default_factory=SessionMetrics)


class BridgeMetrics(Collector):
    """All metrics of one server, in a registry of its own (several servers may share a process
    in tests; none uses prometheus-client's global registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._live: dict[str, SessionSource] = {}
        self._ended = _Ended()
        self._connect = _Histogram(CONNECT_BUCKETS)
        self._refused: Counter[str] = Counter()
        self._started: Counter[str] = Counter()
        self._resumed: Counter[tuple[str, str]] = Counter()
        self._resume = _Histogram(CONNECT_BUCKETS)
        #: Whether the store of limits and sessions answers (Redis may not; memory always does).
        self.store_up: Callable[[], bool] = _always
        self.registry.register(self)

    def session_started(
        self, session_id: str, source: SessionSource, client_kind: str = "realtime"
    ) -> None:
        self._live[session_id] = source
        self._started[client_kind] += 1

    def session_ended(
        self, session_id: str, reason: str, close_code: int, error_code: str | None = None
    ) -> None:
        source = self._live.pop(session_id, None)
        ended = self._ended
        if error_code is not None:
            ended.traffic.errors[error_code] += 1
        ended.outcomes[(reason, close_class(close_code))] += 1
        if source is not None:
            ended.traffic.merge(source.metrics)
            ended.traffic.errors.update(source.rules.error_codes)
            ended.audio_seconds.update(source.audio_seconds_by_format())
            ended.tokens.update(source.token_usage())

    def upstream_connected(self, seconds: float) -> None:
        self._connect.observe(seconds)

    def upstream_resumed(self, reason: str, ok: bool, seconds: float) -> None:
        """A session moved to a fresh upstream (``upstream_dropped`` or ``rollover``), or failed
        to; ``seconds`` from losing the old connection to using the new one."""
        self._resumed[(reason, "resumed" if ok else "failed")] += 1
        if ok:
            self._resume.observe(seconds)

    def refused(self, code: str) -> None:
        """A client refused at the upgrade (auth, origin, limit, draining)."""
        self._refused[code] += 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # prometheus-client calls this on every scrape.
    def collect(self) -> Iterable[Metric]:
        live = list(self._live.values())
        traffic = SessionMetrics()
        traffic.merge(self._ended.traffic)
        audio = Counter(self._ended.audio_seconds)
        tokens = Counter(self._ended.tokens)
        for source in live:
            traffic.merge(source.metrics)
            traffic.errors.update(source.rules.error_codes)
            audio.update(source.audio_seconds_by_format())
            tokens.update(source.token_usage())

        yield GaugeMetricFamily(
            "realtime_bridge_sessions_active", "Client sessions open now.", value=len(live)
        )
        yield GaugeMetricFamily(
            "realtime_bridge_store_up",
            "1 while the store of limits and sessions answers (Redis with REDIS_URL), else 0.",
            value=1 if self.store_up() else 0,
        )
        sessions = CounterMetricFamily(
            "realtime_bridge_sessions",
            "Client sessions ended, by why they ended and close-code class.",
            labels=("outcome", "close_class"),
        )
        for (outcome, klass), count in sorted(self._ended.outcomes.items()):
            sessions.add_metric((outcome, klass), count)
        yield sessions
        started = CounterMetricFamily(
            "realtime_bridge_sessions_started",
            "Client sessions started, by kind of client (realtime, twilio, webrtc).",
            labels=("client_kind",),
        )
        for kind, count in sorted(self._started.items()):
            started.add_metric((kind,), count)
        yield started
        yield from _counter(
            "realtime_bridge_events",
            "Events relayed, by direction and event type.",
            ("direction", "type"),
            traffic.by_type(0),
        )
        yield from _counter(
            "realtime_bridge_bytes",
            "Bytes of events relayed, by direction and event type.",
            ("direction", "type"),
            traffic.by_type(1),
        )
        errors = Counter(traffic.errors)
        errors.update(self._refused)
        errors_family = CounterMetricFamily(
            "realtime_bridge_errors", "Errors the bridge raised, by code.", labels=("code",)
        )
        for code, count in sorted(errors.items()):
            errors_family.add_metric((code,), count)
        yield errors_family
        refused_family = CounterMetricFamily(
            "realtime_bridge_refused",
            "Clients refused at the upgrade, by reason (auth, origin, policy, limits, load).",
            labels=("reason",),
        )
        for code, count in sorted(self._refused.items()):
            refused_family.add_metric((code,), count)
        yield refused_family
        resumed = CounterMetricFamily(
            "realtime_bridge_upstream_resumptions",
            "Sessions moved to a fresh upstream connection, by reason and outcome.",
            labels=("reason", "outcome"),
        )
        for key, count in sorted(self._resumed.items()):
            resumed.add_metric(key, count)
        yield resumed
        yield HistogramMetricFamily(
            "realtime_bridge_upstream_resume_seconds",
            "Time from losing an upstream connection to using its replacement.",
            buckets=self._resume.buckets(),
            sum_value=self._resume.total,
        )
        yield HistogramMetricFamily(
            "realtime_bridge_upstream_connect_seconds",
            "Time to open the upstream connection.",
            buckets=self._connect.buckets(),
            sum_value=self._connect.total,
        )
        latency = HistogramMetricFamily(
            "realtime_bridge_relay_latency_seconds",
            "Time from receiving a frame to finishing its send on the other side.",
            labels=("direction",),
        )
        for direction, metrics in traffic.directions():
            histogram = metrics.histogram()
            latency.add_metric((direction,), histogram.buckets(), histogram.total)
        yield latency
        audio_family = CounterMetricFamily(
            "realtime_bridge_audio_seconds",
            "Seconds of audio relayed (and converted where formats differ), by direction and "
            "client format.",
            labels=("direction", "format"),
        )
        for (direction, fmt), seconds in sorted(audio.items()):
            audio_family.add_metric((direction, fmt), seconds)
        yield audio_family
        tokens_family = CounterMetricFamily(
            "realtime_bridge_tokens",
            "Token usage reported by the upstream in response.done, by kind.",
            labels=("kind",),
        )
        for kind, count in sorted(tokens.items()):
            tokens_family.add_metric((kind,), count)
        yield tokens_family


def _always() -> bool:
    return True


class SessionSource:
    """What the collector reads from one live session (kept apart from the socket code)."""

    __slots__ = ("metrics", "rules")

    def __init__(self, metrics: SessionMetrics, rules: UsageSource) -> None:
        self.metrics = metrics
        self.rules = rules

    def audio_seconds_by_format(self) -> dict[tuple[str, str], float]:
        rules = self.rules
        return {
            (CLIENT_TO_UPSTREAM, str(rules.input_format)): rules.audio_ms_in / 1000,
            (UPSTREAM_TO_CLIENT, str(rules.output_format)): rules.audio_ms_out / 1000,
        }

    def token_usage(self) -> dict[str, int]:
        return dict(self.rules.usage)


class UsageSource(Protocol):
    """What the collector reads from a session's protocol state."""

    audio_ms_in: float
    audio_ms_out: float
    usage: dict[str, int]
    error_codes: Counter[str]

    @property
    def input_format(self) -> object: ...

    @property
    def output_format(self) -> object: ...


def _counter(
    name: str, documentation: str, labels: tuple[str, ...], values: Counter[tuple[str, str]]
) -> Iterator[Metric]:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, count in sorted(values.items()):
        family.add_metric(key, count)
    yield family


#: Server-side tool call buckets (seconds): a local function answers in a millisecond, a webhook
#: in up to its timeout.
TOOL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ToolMetrics(Collector):
    """Server-side tool calls (``realtime_bridge.tools``), by tool and outcome.

    A collector of its own, registered in a server's registry once
    (``ToolMetrics(bridge_metrics.registry)``) and shared by every tool runner of that server;
    :meth:`describe` names its metrics, so a second one in the same registry is refused rather
    than exposed twice. Without a registry it keeps one of its own (counted, not exposed). Tool
    names come from the operator's policy file, so the ``tool`` label stays bounded."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        self._calls: Counter[tuple[str, str]] = Counter()
        self._seconds: dict[str, _Histogram] = {}
        self.registry.register(self)

    def tool_called(self, tool: str, outcome: str, seconds: float) -> None:
        """One call of ``tool`` ended with ``outcome`` (ok, error, timeout) after ``seconds``."""
        self._calls[(tool, outcome)] += 1
        histogram = self._seconds.get(tool)
        if histogram is None:
            histogram = self._seconds[tool] = _Histogram(TOOL_BUCKETS)
        histogram.observe(seconds)

    def describe(self) -> Iterable[Metric]:
        return self._families(include_values=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(include_values=True)

    def _families(self, *, include_values: bool) -> list[Metric]:
        calls = CounterMetricFamily(
            "realtime_bridge_tool_calls",
            "Server-side tool calls, by tool and outcome (ok, error, timeout).",
            labels=("tool", "outcome"),
        )
        seconds = HistogramMetricFamily(
            "realtime_bridge_tool_call_seconds",
            "Time a server-side tool call took, by tool.",
            labels=("tool",),
        )
        if include_values:
            for key, count in sorted(self._calls.items()):
                calls.add_metric(key, count)
            for tool, histogram in sorted(self._seconds.items()):
                seconds.add_metric((tool,), histogram.buckets(), histogram.total)
        return [calls, seconds]
