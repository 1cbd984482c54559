"""connect / disconnect against the fake W&B server: key checks, entity, failures."""

from __future__ import annotations

import logging

import pytest
import trackmux_wandb as plugin
from _support import connect, context, run
from trackmux_wandb.testing import Drop, FakeWandB, Status, Timeout


def test_connect_uses_the_viewers_default_entity(fake, tmp_path):
    session = run(connect(fake, tmp_path))
    assert session.entity == fake.entity
    assert [r.operation for r in fake.requests] == ["Viewer"]
    run(plugin.disconnect(session))


def test_explicit_entity_wins(fake, tmp_path):
    session = run(
        plugin.connect({"api_key": fake.api_key, "entity": "team"}, context(fake, tmp_path))
    )
    assert session.entity == "team"


def test_key_from_environment(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", fake.api_key)
    session = run(plugin.connect({}, context(fake, tmp_path)))
    assert session.entity == fake.entity


def test_key_from_netrc(tmp_path, monkeypatch):
    fake = FakeWandB(base_url="https://api.wandb.ai")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai login user password {fake.api_key}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    session = run(plugin.connect({}, context(fake, tmp_path)))
    assert session.entity == fake.entity


def test_malformed_key_is_refused_before_any_request(fake, tmp_path):
    with pytest.raises(ValueError, match="malformed") as info:
        run(plugin.connect({"api_key": "too-short"}, context(fake, tmp_path)))
    assert "too-short" not in str(info.value)
    assert fake.requests == []


def test_rejected_key_is_a_value_error_without_the_key(fake, tmp_path):
    other = "x" * 40
    with pytest.raises(ValueError, match="W&B rejected the API key") as info:
        run(plugin.connect({"api_key": other}, context(fake, tmp_path)))
    assert other not in str(info.value)


@pytest.mark.parametrize("fault", [Status(503), Status(500), Timeout(), Drop()])
def test_unreachable_server_is_a_connection_error(fake, tmp_path, fault):
    fake.inject(fault)
    with pytest.raises(ConnectionError):
        run(connect(fake, tmp_path))


def test_session_repr_hides_the_key(fake, tmp_path):
    session = run(connect(fake, tmp_path))
    assert fake.api_key not in repr(session)
    assert fake.api_key not in repr(session.settings)
    assert fake.api_key not in repr(session.client)


def test_key_never_reaches_the_logs(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake.inject(Status(500), match="Viewer")
    with pytest.raises(ConnectionError) as info:
        run(connect(fake, tmp_path))
    session = run(connect(fake, tmp_path))
    run(plugin.disconnect(session))
    assert fake.api_key not in caplog.text
    assert fake.api_key not in str(info.value)


def test_tracker_info():
    info = plugin.tracker_info()
    assert info.max_batch_records == 10_000
    assert info.min_batch_interval == 5.0
    assert info.capabilities == {"artifacts", "compare", "history"}
