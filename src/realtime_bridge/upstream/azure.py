"""Azure OpenAI (GA): ``wss://<resource>.openai.azure.com/openai/v1/realtime?model=<deployment>``
with the key in an ``api-key`` header. The deployment, not the client's model, picks the model."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from realtime_bridge import __version__
from realtime_bridge.config import Settings
from realtime_bridge.upstream.websocket import WebSocketUpstream

_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}


def azure_realtime_url(endpoint: str) -> str:
    """The GA realtime URL of an Azure resource endpoint (any path on it is replaced)."""
    parts = urlsplit(endpoint)
    return urlunsplit((_SCHEMES[parts.scheme], parts.netloc, "/openai/v1/realtime", "", ""))


def azure_upstream(settings: Settings) -> WebSocketUpstream:
    endpoint = settings.azure_openai_endpoint
    key = settings.azure_openai_api_key
    deployment = settings.azure_openai_deployment
    if endpoint is None or key is None or deployment is None:
        raise ValueError("the azure upstream needs AZURE_OPENAI_ENDPOINT, _API_KEY and _DEPLOYMENT")
    return WebSocketUpstream(
        kind="azure",
        url=azure_realtime_url(endpoint),
        headers={"api-key": key.get_secret_value(), "User-Agent": f"realtime-bridge/{__version__}"},
        connect_timeout_s=settings.upstream_connect_timeout_s,
        fixed_model=deployment,
    )
