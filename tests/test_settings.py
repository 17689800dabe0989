"""Settings precedence (flags > environment > file > defaults) and parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_claude_proxy.cli import main
from trio_claude_proxy.settings import Settings, SettingsError, load_settings, normalize_backend_url, read_dotenv


def test_defaults() -> None:
    s = load_settings({}, {})
    assert (s.host, s.port, s.backend_key, s.keep_alive_timeout) == ("127.0.0.1", 8082, None, 120.0)
    assert s.ping_interval == 15.0


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('port = 1000\nhost = "0.0.0.0"\nbackend_url = "http://file:1/v1"\nping_interval = 5\n')
    env = {"PORT": "2000", "BACKEND_URL": "http://env:2/v1", "CLAUDE_PROXY_CONFIG": str(config)}
    s = load_settings({"port": 3000}, env)
    assert s.port == 3000  # flag
    assert s.backend_url == "http://env:2/v1"  # environment over file
    assert s.host == "0.0.0.0" and s.ping_interval == 5.0  # file over default


def test_our_variable_wins_over_compat_names() -> None:
    env = {"CLAUDE_PROXY_PORT": "1", "PORT": "2", "HOST_PORT": "3"}
    assert load_settings({}, env).port == 1
    assert load_settings({}, {"HOST_PORT": "3"}).port == 3


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"OPENAI_BASE_URL": "https://api.x.com/v1"}, "backend_url", "https://api.x.com/v1"),
        ({"OPENAI_API_KEY": "sk-1"}, "backend_key", "sk-1"),
        ({"HOST": "::1"}, "host", "::1"),
        ({"LOG_LEVEL": "debug"}, "log_level", "DEBUG"),
        ({"BACKEND_TIMEOUT_SECS": "30"}, "backend_timeout", 30.0),
    ],
)
def test_compat_variables(env: dict[str, str], field: str, value: object) -> None:
    assert getattr(load_settings({}, env), field) == value


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://h:8000/v1", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("http://h:8000/v1/chat/completions", "http://h:8000/v1"),
        ("http://h:8000", "http://h:8000/v1"),
        ("https://h/openai/v1?api-version=1", "https://h/openai/v1?api-version=1"),
    ],
)
def test_backend_url_forms(url: str, normal: str) -> None:
    assert normalize_backend_url(url) == normal


def test_chat_completions_url_keeps_query() -> None:
    s = Settings(backend_url="https://h/openai/v1?api-version=1")
    assert s.all_backends[0].chat_completions_url("m") == "https://h/openai/v1/chat/completions?api-version=1"


@pytest.mark.parametrize(
    "env",
    [{"PORT": "eighty"}, {"PORT": "70000"}, {"BACKEND_URL": "ftp://x"}, {"CLAUDE_PROXY_PING_INTERVAL": "-1"}],
)
def test_bad_values_are_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings({}, env)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings({}, {}, config_path=str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings({}, {}, config_path=str(bad))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings({}, {}, config_path=str(unknown))


def test_dotenv(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text('# c\nexport BACKEND_URL="http://a:1/v1"\nPORT=9 # comment\nEMPTY=\nnoequals\n')
    assert read_dotenv(path) == {"BACKEND_URL": "http://a:1/v1", "PORT": "9", "EMPTY": ""}


def test_dotenv_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("PORT=9\nHOST=10.0.0.1\n")
    monkeypatch.chdir(tmp_path)
    for var in ("PORT", "HOST", "CLAUDE_PROXY_PORT", "CLAUDE_PROXY_HOST", "HOST_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLAUDE_PROXY_HOST", "127.0.0.2")
    s = load_settings({})
    assert (s.port, s.host) == (9, "127.0.0.2")


def test_cli_reports_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backend-url", "nonsense"]) == 2
    assert "backend_url" in capsys.readouterr().err
    assert main(["--log-level", "chatty"]) == 2
    assert "log_level" in capsys.readouterr().err
