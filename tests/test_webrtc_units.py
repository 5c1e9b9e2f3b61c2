"""The pure parts of WebRTC calls: offers, the data channel's rules, playback bookkeeping, ICE
address plans and the outbound pacer's frames."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from realtime_bridge.protocol.playback import Playback
from realtime_bridge.webrtc.events import buffer_event, fit_to_channel, strip_client_formats
from realtime_bridge.webrtc.ice import plan_addresses
from realtime_bridge.webrtc.media import FRAME_BYTES, START_CUSHION_BYTES, PacedAudioTrack
from realtime_bridge.webrtc.sdp import OfferError, new_call_id, read_offer, session_id_of

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:0123456789012345678901",
        "a=fingerprint:sha-256 AA:BB",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=max-message-size:262144",
        "",
    ]
)


def test_offers_are_read_and_malformed_ones_named() -> None:
    offer = read_offer(OFFER)
    assert offer.max_message_size == 262144
    assert offer.has_data_channel
    assert read_offer(OFFER.replace("a=max-message-size:262144\r\n", "")).max_message_size == 65536
    for bad, says in (
        ("", "v=0"),
        ("hello", "v=0"),
        (OFFER.replace("m=audio", "m=video"), "audio"),
        (OFFER.replace("a=ice-pwd", "a=ice-xxx"), "ice-pwd"),
        (OFFER.replace("a=fingerprint", "a=finger"), "fingerprint"),
        (OFFER.replace("262144", "lots"), "max-message-size"),
        ("v=0\r\n" + "a=x\r\n" * 20000, "longer"),
        (OFFER + "a=end-of-candidates\r\n", "no ICE candidates"),
    ):
        with pytest.raises(OfferError, match=says):
            read_offer(bad)


def test_call_ids_name_their_session() -> None:
    call_id = new_call_id("sess_AbC-123")
    assert call_id == "rtc_AbC-123"
    assert session_id_of(call_id) == "sess_AbC-123"
    assert session_id_of("sess_x") is None
    assert session_id_of("rtc_" + "x" * 100) is None


def test_an_event_over_the_limit_loses_its_audio_then_long_strings_then_becomes_an_error() -> None:
    small = b'{"type":"session.updated","session":{}}'
    assert fit_to_channel(small, 100) is small
    assert fit_to_channel(small, 0) is small  # 0: the peer takes any size
    audio = "A" * 300_000
    item = {
        "type": "conversation.item.retrieved",
        "item": {
            "id": "item_1",
            "content": [{"type": "input_audio", "audio": audio, "transcript": "hello"}],
        },
    }
    fitted = orjson.loads(fit_to_channel(orjson.dumps(item), 262144))
    part = fitted["item"]["content"][0]
    assert part == {
        "type": "input_audio",
        "audio": "",
        "audio_omitted_by_bridge": 300_000,
        "transcript": "hello",
    }
    long_text = {"type": "session.updated", "session": {"instructions": "x" * 5000, "a": "short"}}
    fitted = orjson.loads(fit_to_channel(orjson.dumps(long_text), 1000))
    assert fitted["session"] == {
        "instructions": "",
        "instructions_omitted_by_bridge": 5000,
        "a": "short",
    }
    many = {"type": "response.done", "response": {"output": [{"id": f"i{n}"} for n in range(500)]}}
    error = orjson.loads(fit_to_channel(orjson.dumps(many), 1000))
    assert error["type"] == "error"
    assert error["error"]["code"] == "event_too_large"
    assert "response.done" in error["error"]["message"]
    assert orjson.loads(fit_to_channel(b"not json" * 200, 100))["type"] == "error"


def test_a_callers_session_update_loses_its_audio_formats_only() -> None:
    ga = {
        "type": "session.update",
        "session": {
            "instructions": "hi",
            "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}},
        },
    }
    assert strip_client_formats(ga)
    assert ga["session"] == {"instructions": "hi", "audio": {"input": {"turn_detection": None}}}
    beta = {"type": "session.update", "session": {"input_audio_format": "g711_ulaw", "voice": "x"}}
    assert strip_client_formats(beta)
    assert beta["session"] == {"voice": "x"}
    assert not strip_client_formats({"type": "response.create", "response": {}})
    event = orjson.loads(buffer_event("cleared", "resp_1"))
    assert event["type"] == "output_audio_buffer.cleared"
    assert event["response_id"] == "resp_1"


def test_playback_truncates_at_what_was_heard_and_cancels_a_running_response() -> None:
    playback = Playback(event_id_prefix="bridge_x_")
    assert playback.barge_in() is None  # nothing playing, nothing running
    playback.response_created()
    assert playback.audio("item_1", 500)
    assert playback.audio("item_1", 500)
    playback.played("item_1", 300)
    playback.played("item_other", 900)  # another item's report changes nothing
    playback.played("item_1", 5000)  # never more than was sent
    assert playback.played_ms == 1000
    playback.played_ms = 300
    cut = playback.barge_in()
    assert cut is not None
    assert cut.item_id == "item_1"
    assert cut.heard_ms == 300
    assert [e["type"] for e in cut.events] == ["conversation.item.truncate", "response.cancel"]
    assert cut.events[0]["audio_end_ms"] == 300
    assert all(playback.owns(e["event_id"]) for e in cut.events)
    assert not playback.owns("event_abc")
    assert not playback.audio("item_1", 20)  # what still comes of the cut item is not played
    assert playback.audio("item_2", 20)  # a new answer has its own timeline
    assert playback.sent_ms == 20


def test_address_plans() -> None:
    local = ["127.0.0.1", "10.0.0.5", "fd00::5"]
    assert plan_addresses(None, local) == (["10.0.0.5", "fd00::5"], None)
    assert plan_addresses(None, ["127.0.0.1"]) == (["127.0.0.1"], None)
    assert plan_addresses("127.0.0.1", local) == (["127.0.0.1"], None)
    assert plan_addresses("10.0.0.5", local) == (["10.0.0.5"], None)
    assert plan_addresses("203.0.113.7", local) == (["10.0.0.5"], "203.0.113.7")
    assert plan_addresses("2001:db8::7", local) == (["fd00::5"], "2001:db8::7")


async def test_the_pacer_sends_whole_frames_after_a_cushion_and_reports_what_it_played() -> None:
    reports: list[tuple[list[tuple[tuple[str | None, str | None], int]], bool]] = []
    track = PacedAudioTrack(lambda taken, empty: reports.append((taken, empty)))
    tag = ("item_1", "resp_1")
    track.push(b"\x01\x00" * (FRAME_BYTES // 2), tag)  # less than the cushion: silence first
    frame = await track.recv()
    assert not any(bytes(frame.planes[0])[:FRAME_BYTES])
    assert not reports
    track.push(b"\x01\x00" * (START_CUSHION_BYTES // 2), tag)
    frame = await asyncio.wait_for(track.recv(), 1)
    assert bytes(frame.planes[0])[:FRAME_BYTES] == b"\x01\x00" * (FRAME_BYTES // 2)
    assert reports[-1] == ([(tag, FRAME_BYTES)], False)
    track.push(b"\x02\x00" * 10, ("item_1", "resp_1"))
    track.finish()  # the answer's tail: played out, padded with silence
    left = track.queued_bytes
    while track.queued_bytes:
        await asyncio.wait_for(track.recv(), 1)
    assert sum(size for taken, _ in reports[1:] for _, size in taken) == left
    assert reports[-1][1] is True
    track.push(b"\x03\x00" * FRAME_BYTES, tag)
    assert track.clear() == FRAME_BYTES * 2
    assert track.queued_bytes == 0
    track.stop()


def test_ice_servers_are_exactly_the_configured_ones() -> None:
    from realtime_bridge.webrtc.ice import IceSettings, rtc_configuration

    assert rtc_configuration(IceSettings()).iceServers == []  # never a public STUN server
    settings = IceSettings(
        servers=("stun:stun.example:3478", "turn:turn.example:3478?transport=udp"),
        turn_username="user",
        turn_password="pass",
    )
    stun, turn = rtc_configuration(settings).iceServers or []
    assert (stun.urls, stun.username, stun.credential) == ("stun:stun.example:3478", None, None)
    assert (turn.username, turn.credential) == ("user", "pass")
