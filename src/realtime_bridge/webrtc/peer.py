"""One WebRTC call's peer connection (aiortc): the offer answered, the ``oai-events`` data
channel, one Opus track each way.

Why aiortc: it is the maintained WebRTC implementation for asyncio Python (ICE, DTLS-SRTP,
SCTP data channels, Opus through PyAV), it runs on the bridge's own event loop with no second
process or language, and it interoperates with Chromium and Firefox. The alternatives terminate
WebRTC in another process (a Go or Rust sidecar, a media server), which would put a second copy
of the session's I/O beside the bridge.

This class only moves things: events and audio in through callbacks, out through calls. What
they mean to the session is :mod:`realtime_bridge.server.webrtc_channel`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from realtime_bridge.observability import get_logger
from realtime_bridge.webrtc.ice import IceSettings, rtc_configuration
from realtime_bridge.webrtc.media import FrameReport, PacedAudioTrack, read_track

log = get_logger("webrtc")
EVENTS_LABEL = "oai-events"


class NoCandidates(Exception):
    """The bridge could bind no media socket (every port of ``WEBRTC_UDP_PORTS`` taken, no
    usable address): an answer without candidates could never connect."""


class CallPeer:
    """The bridge's end of one call."""

    def __init__(
        self,
        ice: IceSettings,
        *,
        on_event: Callable[[str], None],
        on_audio: Callable[[bytes], None],
        on_played: FrameReport,
        on_open: Callable[[], None],
        on_gone: Callable[[str], None],
    ) -> None:
        self._pc = RTCPeerConnection(rtc_configuration(ice))
        self._on_event = on_event
        self._on_audio = on_audio
        self._on_open = on_open
        self._on_gone = on_gone
        self.outbound = PacedAudioTrack(on_played)
        self.channel: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.get_running_loop().create_future()
        self._open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pc.on("datachannel", self._channel_opened)
        self._pc.on("track", self._track_arrived)
        self._pc.on("connectionstatechange", self._state_changed)

    async def answer(self, offer_sdp: str) -> str:
        """Take the caller's offer; the answer carries the bridge's ICE candidates (aiortc
        gathers them before it returns: the API's answers carry them too)."""
        await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for transceiver in self._pc.getTransceivers():
            if transceiver.kind == "audio":
                transceiver.direction = "sendrecv"
                transceiver.sender.replaceTrack(self.outbound)
                break
        answer = await self._pc.createAnswer()
        await self._pc.setLocalDescription(answer)
        sdp = str(self._pc.localDescription.sdp)
        if "a=candidate:" not in sdp:
            raise NoCandidates
        return sdp

    @property
    def open(self) -> bool:
        return self.channel is not None and self.channel.readyState == "open"

    @property
    def buffered_bytes(self) -> int:
        channel = self.channel
        return int(channel.bufferedAmount) if channel is not None else 0

    def send(self, text: str) -> bool:
        """Send an event on the data channel; False if it is not open (or not any more)."""
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return False
        try:
            channel.send(text)
        except Exception as error:  # aiortc's own size or state refusal: the call goes on
            log.info("data channel message not sent: %s", error)
            return False
        return True

    async def flush(self, limit_s: float) -> None:
        """Wait (at most ``limit_s``) until what was sent on the data channel has left."""
        channel = self.channel
        if channel is None or channel.readyState != "open" or not channel.bufferedAmount:
            return
        drained = asyncio.Event()
        channel.once("bufferedamountlow", drained.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), limit_s)

    async def opened(self, limit_s: float) -> bool:
        """Wait (at most ``limit_s``) for the data channel to open; whether it is open."""
        if not self.open:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._open), limit_s)
        return self.open

    async def close(self) -> None:
        self.outbound.stop()
        with contextlib.suppress(Exception):
            await self._pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)  # asyncio closes the UDP sockets on the loop's next turn

    # -- aiortc callbacks -----------------------------------------------------------------------

    def _channel_opened(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_LABEL or self.channel is not None:
            return
        self.channel = channel

        @channel.on("message")
        def message(data: str | bytes) -> None:
            if isinstance(data, bytes):
                try:
                    data = data.decode()
                except UnicodeDecodeError:
                    data = "\ufffd"  # not JSON: the session answers with its invalid_json error
            self._on_event(data)

        @channel.on("close")
        def closed() -> None:
            self._on_gone("the data channel closed")

        if channel.readyState == "open":
            self._opened()
        else:
            channel.on("open", self._opened)

    def _opened(self) -> None:
        if not self._open.done():
            self._open.set_result(None)
        self._on_open()

    def _track_arrived(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        task = asyncio.get_running_loop().create_task(read_track(track, self._on_audio))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _state_changed(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and not self.connected.done():
            self.connected.set_result(None)
        elif state in ("failed", "closed"):
            self._on_gone(f"the peer connection {state}")


__all__ = ["EVENTS_LABEL", "CallPeer", "NoCandidates"]
