"""A worker gets exactly the supervisor's settings: every setting, set to something other than
its default, survives ``settings_env`` and being read back. (WEBRTC_UDP_PORTS once came back as
"40000,40099", so the Docker image, which sets it, could not start a worker.)"""

from __future__ import annotations

import pytest

from realtime_bridge.config import Settings, load_settings
from realtime_bridge.server.supervisor import settings_env

#: A value other than the default for every setting, as an operator would write it.
NOT_DEFAULT = {
    "HOST": "0.0.0.0",
    "WS_PORT": "18080",
    "HTTP_PORT": "13000",
    "OPENAI_API_KEY": "sk-test-not-a-real-key",
    "OPENAI_ORG_ID": "org-123",
    "OPENAI_PROJECT_ID": "proj_123",
    "OPENAI_MODEL": "gpt-realtime-mini",
    "OPENAI_REALTIME_URL": "wss://example.test/v1/realtime",
    "UPSTREAM": "azure",
    "AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com",
    "AZURE_OPENAI_API_KEY": "azure-test-key",
    "AZURE_OPENAI_DEPLOYMENT": "realtime",
    "LOG_LEVEL": "warning",
    "LOG_FORMAT": "json",
    "BRIDGE_API_KEYS": "key-one,key-two",
    "BRIDGE_ADMIN_TOKEN": "admin-token",
    "ALLOWED_ORIGINS": "https://a.example,https://b.example",
    "MAX_SESSIONS": "7",
    "MAX_CONNECTIONS": "70",
    "SESSION_IDLE_TIMEOUT_S": "12.5",
    "SESSION_MAX_DURATION_S": "600",
    "MAX_MESSAGE_BYTES": "2000000",
    "CLIENT_MAX_UNSENT_BYTES": "3000000",
    "UPSTREAM_CONNECT_TIMEOUT_S": "3.5",
    "SHUTDOWN_GRACE_S": "4",
    "LOCAL_AUDIO_PACE": "0",
    "METRICS_ENABLED": "false",
    "BRIDGE_POLICY_FILE": "/etc/bridge/policy.json",
    "BRIDGE_SECRET_KEY": "0123456789abcdef0123456789abcdef",
    "CLIENT_SECRET_TTL_S": "60",
    "CLIENT_SECRET_MAX_TTL_S": "120",
    "DEMO_SECRETS": "true",
    "PUBLIC_BASE_URL": "https://bridge.example",
    "TWILIO_AUTH_TOKEN": "twilio-token",
    "TWILIO_INSTRUCTIONS": "Be brief, friendly; and say 'hello'.",
    "TWILIO_VOICE": "verse",
    "TWILIO_GREETING": "Hello, you are through.",
    "TWILIO_DTMF": "respond",
    "TWILIO_PARAMETERS": "caller,account",
    "SILENCE_FILL": "off",
    "SILENCE_FILL_GAP_MS": "150",
    "COMMIT_RESPONSE_WINDOW_MS": "250",
    "WORKERS": "3",
    "RESUME_ON_UPSTREAM_DROP": "false",
    "RESUME_DEADLINE_S": "9",
    "UPSTREAM_ROLLOVER_S": "1800",
    "RESUME_MEMORY_ITEMS": "50",
    "RESUME_MEMORY_BYTES": "65536",
    "REDIS_URL": "redis://:pass@redis.example:6379/2",
    "WEBRTC_ENABLED": "false",
    "WEBRTC_PUBLIC_ADDRESS": "203.0.113.7",
    "WEBRTC_UDP_PORTS": "40000-40099",
    "WEBRTC_ICE_SERVERS": "stun:stun.example:3478,turn:turn.example:3478",
    "WEBRTC_TURN_USERNAME": "turn-user",
    "WEBRTC_TURN_PASSWORD": "turn-pass",
    "TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.1,2001:db8::/32",
}


def test_every_setting_has_a_sample_here() -> None:
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert aliases == set(NOT_DEFAULT), "add the new setting to NOT_DEFAULT"


def test_every_setting_survives_the_trip_to_a_worker() -> None:
    settings = load_settings(NOT_DEFAULT)
    for name, field in Settings.model_fields.items():
        assert getattr(settings, name) != field.default, f"{field.alias} is its default here"
    again = load_settings(settings_env(settings))
    for name, field in Settings.model_fields.items():
        assert _comparable(getattr(again, name)) == _comparable(getattr(settings, name)), (
            field.alias
        )


@pytest.mark.parametrize("ports", ["40000-40099", "41000-41000"])
def test_a_port_range_round_trips(ports: str) -> None:
    env = settings_env(load_settings({"WEBRTC_UDP_PORTS": ports}))
    assert env["WEBRTC_UDP_PORTS"] == ports


def _comparable(value: object) -> object:
    """Secrets by their text, so a failure shows what differs."""
    if isinstance(value, tuple):
        return tuple(_comparable(part) for part in value)
    get = getattr(value, "get_secret_value", None)
    return get() if callable(get) else value
