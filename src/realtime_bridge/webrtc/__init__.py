"""WebRTC calls: the bridge as the browser's peer (aiortc), Opus ⇄ PCM, the data channel's rules."""
