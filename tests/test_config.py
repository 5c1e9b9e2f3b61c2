"""Configuration: defaults, .env, precedence, and every bad value (checked in-process here and
through the real command in test_process.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime_bridge.cli import build_parser, load_from_cli
from realtime_bridge.config import load_settings, read_dotenv
from realtime_bridge.errors import ConfigError


def test_defaults() -> None:
    s = load_settings({})
    assert (s.host, s.ws_port, s.http_port) == ("127.0.0.1", 8080, 3000)
    assert s.openai_model == "gpt-realtime"
    assert s.openai_realtime_url == "wss://api.openai.com/v1/realtime"
    assert (s.upstream, s.upstream_kind) == ("auto", "local")
    assert (s.log_level, s.log_format) == ("info", "text")
    assert s.max_sessions == 100
    assert s.session_idle_timeout_s == 300
    assert s.session_max_duration_s == 3600
    assert s.max_message_bytes == 16 * 1024 * 1024
    assert s.upstream_connect_timeout_s == 10
    assert s.shutdown_grace_s == 10
    assert s.local_audio_pace == 1.0
    assert s.bridge_api_keys == ()
    assert s.allowed_origins == ()


def test_auto_picks_openai_then_azure_then_local() -> None:
    assert load_settings({"OPENAI_API_KEY": "sk-x"}).upstream_kind == "openai"
    azure = {
        "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
        "AZURE_OPENAI_API_KEY": "k",
        "AZURE_OPENAI_DEPLOYMENT": "d",
    }
    assert load_settings(azure).upstream_kind == "azure"
    assert load_settings({**azure, "OPENAI_API_KEY": "sk-x"}).upstream_kind == "openai"
    assert (
        load_settings({"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"}).upstream_kind
        == "local"
    )


def test_dotenv_then_environment_then_cli(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "WS_PORT=9001\nHTTP_PORT=9002\nOPENAI_MODEL=from-dotenv\n# comment\nLOG_LEVEL=debug\n"
        "OPENAI_API_KEY=\n"
    )
    dotenv = read_dotenv(env_file)
    s = load_settings({}, dotenv=dotenv)
    assert (s.ws_port, s.http_port, s.openai_model, s.log_level) == (
        9001,
        9002,
        "from-dotenv",
        "debug",
    )
    assert s.openai_api_key is None  # empty means unset
    s = load_settings({"WS_PORT": "9101", "OPENAI_MODEL": "from-env"}, dotenv=dotenv)
    assert (s.ws_port, s.http_port, s.openai_model) == (9101, 9002, "from-env")
    args = build_parser().parse_args(
        ["--env-file", str(env_file), "--ws-port", "9201", "--model", "from-cli"]
    )
    s = load_from_cli(args, environ={"WS_PORT": "9101", "HTTP_PORT": "9102"})
    assert (s.ws_port, s.http_port, s.openai_model, s.log_level) == (
        9201,
        9102,
        "from-cli",
        "debug",
    )


def test_missing_dotenv_is_fine(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / "absent.env") == {}


def test_lists_are_comma_separated() -> None:
    s = load_settings(
        {"BRIDGE_API_KEYS": " a, b ,,c ", "ALLOWED_ORIGINS": "https://x.org,http://y"}
    )
    assert [k.get_secret_value() for k in s.bridge_api_keys] == ["a", "b", "c"]
    assert s.allowed_origins == ("https://x.org", "http://y")


def test_settings_are_immutable() -> None:
    s = load_settings({})
    with pytest.raises(ValueError, match="frozen"):
        s.ws_port = 1  # type: ignore[misc]


BAD_VALUES = [
    ({"WS_PORT": "abc"}, "WS_PORT"),
    ({"HTTP_PORT": "70000"}, "HTTP_PORT"),
    ({"WS_PORT": "-1"}, "WS_PORT"),
    ({"UPSTREAM": "gemini"}, "UPSTREAM"),
    ({"UPSTREAM": "openai"}, "OPENAI_API_KEY"),
    (
        {"UPSTREAM": "azure", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"},
        "AZURE_OPENAI_API_KEY",
    ),
    ({"AZURE_OPENAI_ENDPOINT": "not a url"}, "AZURE_OPENAI_ENDPOINT"),
    ({"OPENAI_REALTIME_URL": "https://api.openai.com/v1/realtime"}, "OPENAI_REALTIME_URL"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"MAX_SESSIONS": "0"}, "MAX_SESSIONS"),
    ({"SESSION_IDLE_TIMEOUT_S": "soon"}, "SESSION_IDLE_TIMEOUT_S"),
    ({"SESSION_MAX_DURATION_S": "0"}, "SESSION_MAX_DURATION_S"),
    ({"MAX_MESSAGE_BYTES": "10"}, "MAX_MESSAGE_BYTES"),
    ({"UPSTREAM_CONNECT_TIMEOUT_S": "-3"}, "UPSTREAM_CONNECT_TIMEOUT_S"),
    ({"SHUTDOWN_GRACE_S": "x"}, "SHUTDOWN_GRACE_S"),
    ({"LOCAL_AUDIO_PACE": "-1"}, "LOCAL_AUDIO_PACE"),
    ({"METRICS_ENABLED": "maybe"}, "METRICS_ENABLED"),
]


@pytest.mark.parametrize(("env", "variable"), BAD_VALUES)
def test_bad_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable}: ")
    assert "\n" not in str(raised.value)


def test_secret_values_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"UPSTREAM": "azure", "AZURE_OPENAI_API_KEY": "azure-secret-123"})
    assert "azure-secret-123" not in str(raised.value)


def test_every_setting_is_in_env_example_and_the_readme() -> None:
    """`.env.example` lists every variable (SPEC §3), and the README's table names each."""
    from pathlib import Path

    from realtime_bridge.config import Settings

    repo = Path(__file__).resolve().parents[1]
    example = (repo / ".env.example").read_text()
    readme = (repo / "README.md").read_text()
    for field in Settings.model_fields.values():
        assert field.alias is not None
        assert f"\n{field.alias}=" in example, field.alias
        assert f"`{field.alias}`" in readme, field.alias
