"""Credential lookup, key shape checks and URL derivation of the W&B plugin."""

from __future__ import annotations

import pytest
from trackmux_wandb._settings import (
    DEFAULT_BASE_URL,
    api_to_app_url,
    check_api_key,
    resolve_settings,
)

KEY = "a" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in (
        "WANDB_API_KEY",
        "WANDB_ENTITY",
        "WANDB_BASE_URL",
        "WANDB_PROJECT",
        "WANDB_APP_URL",
        "WANDB_HTTP_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.mark.parametrize(
    "key",
    [
        "a" * 40,
        "local-" + "A_9" * 14,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    ],
)
def test_well_formed_keys_are_accepted(key):
    assert check_api_key(key) == key


@pytest.mark.parametrize("key", ["", "short", "a" * 39, "x-" + "a" * 39, "a" * 39 + "!"])
def test_malformed_keys_are_refused_without_echoing_them(key):
    with pytest.raises(ValueError) as info:
        check_api_key(key)
    if key:
        assert key not in str(info.value)


def test_credentials_win_over_environment(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "b" * 40)
    monkeypatch.setenv("WANDB_ENTITY", "env-entity")
    s = resolve_settings({"api_key": KEY, "entity": "mine"}, {})
    assert s.api_key == KEY
    assert s.entity == "mine"
    assert s.base_url == DEFAULT_BASE_URL
    assert s.project == "uncategorized"


def test_environment_is_the_fallback(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.setenv("WANDB_PROJECT", "proj")
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.example.com/")
    s = resolve_settings({}, {})
    assert (s.api_key, s.entity, s.project) == (KEY, "team", "proj")
    assert s.base_url == "https://api.example.com"
    assert s.app_url == "https://app.example.com"


def test_settings_project_wins_over_environment(monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "env")
    s = resolve_settings({"api_key": KEY}, {"project": "configured", "base_url": "http://h:1"})
    assert s.project == "configured"
    assert s.base_url == "http://h:1"


def test_netrc_entry_for_the_api_host(monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_settings({}, {}).api_key == KEY
    with pytest.raises(ValueError, match="no W&B API key"):
        resolve_settings({"base_url": "https://other.host"}, {})


def test_key_is_not_in_the_settings_repr():
    s = resolve_settings({"api_key": KEY}, {})
    assert KEY not in repr(s)


@pytest.mark.parametrize(
    ("api", "app"),
    [
        ("https://api.wandb.ai", "https://wandb.ai"),
        ("https://api.wandb.test", "https://wandb.test"),
        ("https://api.acme.com", "https://app.acme.com"),
        ("http://localhost:8080/", "http://localhost:8080"),
    ],
)
def test_app_url_is_derived_like_the_sdk(api, app):
    assert api_to_app_url(api) == app


def test_app_url_override(monkeypatch):
    monkeypatch.setenv("WANDB_APP_URL", "https://ui.example/")
    assert api_to_app_url("https://api.wandb.ai") == "https://ui.example"


def test_run_url_quotes_like_the_sdk():
    s = resolve_settings({"api_key": KEY}, {})
    assert s.run_url("my team", "p", "a=b c") == "https://wandb.ai/my%20team/p/runs/a=b%20c"
