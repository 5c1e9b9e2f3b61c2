"""The in-process adapter's callback delivery: buffering before ``attach``, pause/resume,
re-entrant ``send`` from inside the sink, and a core failure ending the session once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from realtime_bridge.errors import UpstreamError
from realtime_bridge.upstream.base import UpstreamClosed
from realtime_bridge.upstream.local import LocalConnection, Outgoing

INTERNAL_ERROR = UpstreamClosed(1011, "local upstream internal error")
ITEM = orjson.dumps(
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Hello there."}],
        },
    }
).decode()
TEXT_ONLY = '{"type":"session.update","session":{"type":"realtime","output_modalities":["text"]}}'
RESPOND = '{"type":"response.create"}'


def event_ids(calls: list[str | UpstreamClosed]) -> list[str]:
    return [orjson.loads(c)["event_id"] for c in calls if isinstance(c, str)]


def notify_when_polled(conn: LocalConnection, event_type: str) -> asyncio.Future[None]:
    """A future set once the core has handed out an event of ``event_type`` (to the adapter)."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    poll = conn.core.poll

    def watched(now: float) -> list[Outgoing]:
        out = poll(now)
        if not done.done() and any(orjson.loads(o.text)["type"] == event_type for o in out):
            done.set_result(None)
        return out

    conn.core.poll = watched  # type: ignore[method-assign]
    return done


async def test_events_due_before_attach_are_delivered_first_in_order(h: Any) -> None:
    conn, sink = await h.connect_local(attach=False)
    conn.send(TEXT_ONLY)
    conn.send(ITEM)
    assert sink.calls == []
    conn.attach(sink)  # delivers the backlog synchronously
    assert sink.types() == [
        "session.created",
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
    ]
    conn.send(RESPOND)  # later events follow straight away, after the backlog
    assert sink.types()[4] == "response.created"
    # The rest of the response (due at once: pace 0) comes a step per loop turn.
    while sink.types()[-1] != "rate_limits.updated":
        await sink.next_text()
    assert sink.types()[-2:] == ["response.done", "rate_limits.updated"]
    for call in sink.calls:
        h.check_server_event(call)
    assert len(set(event_ids(sink.calls))) == len(sink.calls)
    await conn.close()


async def test_pause_holds_events_and_resume_releases_them_in_order(h: Any) -> None:
    reference, ref_sink = await h.connect_local(pace=4.0)
    reference.send(RESPOND)
    while orjson.loads(await ref_sink.next_text())["type"] != "response.done":
        pass
    await reference.close()

    conn, sink = await h.connect_local(pace=4.0)
    polled_done = notify_when_polled(conn, "response.done")
    assert sink.types() == ["session.created"]
    conn.pause_reading()
    conn.send(RESPOND)  # due at once: response.created …; the audio follows on the timer
    await asyncio.wait_for(polled_done, 5)  # the core ran to the end while we were paused
    assert sink.types() == ["session.created"]
    conn.resume_reading()  # everything held is delivered now, in order
    assert sink.types() == ref_sink.types()
    assert len(set(event_ids(sink.calls))) == len(sink.calls)
    # pausing again mid-stream holds what comes next, without losing or repeating anything
    conn.pause_reading()
    conn.send(ITEM)
    assert len(sink.calls) == len(ref_sink.calls)
    conn.resume_reading()
    assert sink.types()[len(ref_sink.calls) :] == [
        "conversation.item.added",
        "conversation.item.done",
    ]
    await conn.close()


async def test_send_from_inside_the_sink_keeps_order(h: Any) -> None:
    conn, sink = await h.connect_local(attach=False)
    conn.send(TEXT_ONLY)  # backlog: session.created, session.updated

    class Reentrant(h.QueueSink):  # type: ignore[misc]
        inside = False

        def upstream_text(self, text: str) -> None:
            assert not self.inside, "upstream_text called from inside upstream_text"
            self.inside = True
            try:
                super().upstream_text(text)
                kind = orjson.loads(text)["type"]
                if kind == "session.created":
                    conn.send(ITEM)  # due after session.updated, which is still waiting
                elif kind == "conversation.item.done" and "response.created" not in self.types():
                    conn.pause_reading()
                    conn.send(RESPOND)
                    conn.resume_reading()  # nested: the outer delivery goes on
            finally:
                self.inside = False

    reentrant = Reentrant()
    conn.attach(reentrant)
    while reentrant.types()[-1] != "rate_limits.updated":  # a step per loop turn
        await reentrant.next_text()
    types = reentrant.types()
    assert types[:5] == [
        "session.created",
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
    assert types[-2:] == ["response.done", "rate_limits.updated"]
    assert types.count("response.done") == 1
    assert len(set(event_ids(reentrant.calls))) == len(reentrant.calls)
    assert sink.calls == []
    await conn.close()


async def test_core_failure_in_send_ends_the_session_once(
    h: Any, caplog: pytest.LogCaptureFixture
) -> None:
    conn, sink = await h.connect_local(attach=False)

    def broken(text: str | bytes, now: float) -> None:
        raise RuntimeError("core bug")

    conn.core.receive = broken
    with caplog.at_level(logging.ERROR), pytest.raises(UpstreamError):
        conn.send(RESPOND)
    assert "local upstream session failed" in caplog.text
    with pytest.raises(UpstreamError):
        conn.send(RESPOND)
    conn.attach(sink)  # the close was buffered after what came before
    assert sink.types() == ["session.created", "closed 1011"]
    assert sink.calls[-1] == INTERNAL_ERROR
    conn.pause_reading()
    conn.resume_reading()
    await conn.close()
    assert sink.types() == ["session.created", "closed 1011"]


async def test_core_failure_in_the_timer_ends_the_session_once(
    h: Any, caplog: pytest.LogCaptureFixture
) -> None:
    conn, sink = await h.connect_local()

    def broken() -> float | None:
        raise RuntimeError("core bug")

    conn.core.next_deadline = broken
    with caplog.at_level(logging.ERROR):
        conn.send(ITEM)  # delivered at once; then the timer wakes up and the core breaks
        assert await sink.next(2) == sink.calls[0]
        while (item := await sink.next(2)) != INTERNAL_ERROR:
            assert isinstance(item, str)
    assert "local upstream session failed" in caplog.text
    assert sink.types() == [
        "session.created",
        "conversation.item.added",
        "conversation.item.done",
        "closed 1011",
    ]
    with pytest.raises(UpstreamError):
        conn.send(RESPOND)
    await conn.close()
    assert sink.calls.count(INTERNAL_ERROR) == 1
    assert sink.calls[-1] == INTERNAL_ERROR


async def test_a_paused_bridge_is_told_to_stop_sending(h: Any) -> None:
    """Backpressure like a socket's: past a bound of undelivered events, upstream_writable
    (False); once they are taken again, (True). Nothing is lost."""
    from realtime_bridge.upstream.local.adapter import MAX_PENDING_EVENTS

    conn, sink = await h.connect_local()
    conn.pause_reading()
    for _ in range(MAX_PENDING_EVENTS + 5):  # each one answered with an error event
        conn.send('{"type":"conversation.item.retrieve","item_id":"none"}')
    assert sink.writable == [False]
    conn.resume_reading()
    assert sink.writable == [False, True]
    assert sink.types().count("error") == MAX_PENDING_EVENTS + 5
    await conn.close()
