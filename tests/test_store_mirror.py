"""The shared store's local decisions (store/mirror.py), without a server: what is counted
while a change is being written, after it is read back, and after a failed write; the other
instances' slots; revocations; keys kept per instance. Also ``REDIS_URL``'s checks."""

from __future__ import annotations

import pytest

from realtime_bridge.config import load_settings
from realtime_bridge.errors import ConfigError
from realtime_bridge.store.mirror import Mirror

NOW = 1_000_000.0


def mirror() -> tuple[Mirror, list[int]]:
    woken: list[int] = []
    m = Mirror("me")
    m.wake = lambda: woken.append(1)
    return m, woken


def test_a_window_counts_the_others_events_and_its_own_once() -> None:
    m, woken = mirror()
    assert m.hit("rate:t", 3, 60, NOW) is None
    assert woken  # something to write
    batch = m.take(NOW)
    ((window_s, written),) = batch.events.values()
    assert window_s == 60
    assert len(written) == 1
    assert m.recent("rate:t", 60, NOW) == (1, 60.0)  # still counted while it is written
    # Read back: our own event (same member) and one of another instance's.
    m.settle(batch, {"rate:t": {**written, "other:1": NOW - 30}}, {})
    assert m.recent("rate:t", 60, NOW)[0] == 2
    assert m.hit("rate:t", 3, 60, NOW + 1) is None
    wait = m.hit("rate:t", 3, 60, NOW + 2)
    assert wait == pytest.approx(28.0)  # when the other instance's event leaves the window
    assert m.take(NOW + 2).events  # the third event is written next


def test_a_failed_write_is_retried_and_never_counted_twice() -> None:
    m, _ = mirror()
    m.hit("rate:t", 5, 60, NOW)
    m.add("budget:t", 10)
    m.revoke("sec_1", NOW + 100)
    batch = m.take(NOW)
    m.restore(batch)  # Redis did not answer
    assert m.recent("rate:t", 60, NOW)[0] == 1
    assert m.get("budget:t") == 10
    again = m.take(NOW + 1)
    assert len(next(iter(again.events.values()))[1]) == 1
    assert again.additions == {"budget:t": 10}
    assert again.revocations == {"sec_1": NOW + 100}
    m.settle(again, {"rate:t": dict(next(iter(again.events.values()))[1])}, {"budget:t": 25})
    assert m.get("budget:t") == 25  # what Redis holds: ours and another instance's
    assert m.add("budget:t", 5) == 30
    assert m.recent("rate:t", 60, NOW + 1)[0] == 1


def test_events_past_the_window_are_not_written() -> None:
    m, _ = mirror()
    m.hit("rate:t", 5, 60, NOW)
    assert m.take(NOW + 61).events == {}


def test_slots_count_the_other_instances_until_they_are_unknown() -> None:
    m, woken = mirror()
    m.heard_others([{"sessions": 3, "slots": {"live:t": 1}}, {"sessions": 2, "slots": {}}])
    assert m.others_sessions == 5
    assert m.acquire("live:t", 2)
    assert not m.acquire("live:t", 2)  # one here, one there
    woken.clear()
    m.release("live:t")
    assert woken
    assert m.slots == {}
    m.heard_others([{"sessions": "x", "slots": {"live:t": "y"}}])  # garbage is not counted
    assert (m.others_sessions, m.others_slots) == (0, {})
    m.heard_others([{"sessions": 1, "slots": {"live:t": 2}}])
    assert not m.acquire("live:t", 2)
    m.heard_others(None)  # Redis is down: this instance counts alone
    assert m.acquire("live:t", 2)
    assert m.acquire("live:t", 2)
    assert not m.acquire("live:t", 2)


def test_revocations_hold_until_they_expire() -> None:
    m, _ = mirror()
    m.revoke("sec_1", NOW + 10)
    m.heard_revocation("sec_2", NOW + 20)
    assert m.revoked("sec_1", NOW)
    assert m.revoked("sec_2", NOW)
    m.heard_revocation("sec_2", NOW + 5)  # an older, shorter one does not shorten it
    assert m.revoked("sec_2", NOW + 15)
    assert not m.revoked("sec_1", NOW + 10)
    assert not m.revoked("sec_3", NOW)


def test_failed_authentications_stay_with_the_instance() -> None:
    m, woken = mirror()
    assert m.hit("authfail:10.0.0.1", 1 << 30, 60, NOW) is None
    assert m.recent("authfail:10.0.0.1", 60, NOW)[0] == 1
    batch = m.take(NOW)
    assert not woken
    assert batch.events == {}
    assert batch.windows == {}


def test_unused_keys_are_forgotten_and_new_ones_read_at_once() -> None:
    m, woken = mirror()
    assert m.get("budget:t") == 0
    assert woken  # an unknown key: read it now
    m.recent("rate:t", 60, NOW)
    batch = m.take(NOW)
    assert batch.counters == ["budget:t"]
    assert batch.windows == {"rate:t": 60}
    m.settle(batch, {"rate:t": {}}, {"budget:t": 0})
    assert m.take(NOW + 120).windows == {}  # a window idle past its length
    assert m.take(NOW + 120).counters == ["budget:t"]  # counters are kept an hour


def test_redis_url_is_checked_and_its_password_redacted() -> None:
    settings = load_settings({"REDIS_URL": "redis://:s%40cret-pw@redis.internal:6379/0"})
    assert "s%40cret-pw" in settings.secret_values()
    assert "s@cret-pw" in settings.secret_values()
    with pytest.raises(ConfigError) as bad:
        load_settings({"REDIS_URL": "http://user:topsecret@host/"})
    assert bad.value.variable == "REDIS_URL"
    assert "topsecret" not in str(bad.value)
