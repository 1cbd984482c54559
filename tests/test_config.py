"""Configuration precedence: argument > TRACKMUX_TRACKERS > trackmux.toml / pyproject > null."""

from __future__ import annotations

from pathlib import Path

import pytest
from trackmux import load_settings


def test_default_is_the_offline_tracker_and_a_per_user_directory(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.trackers == ("null",)
    assert settings.source == "default"
    assert "trackmux" in str(settings.data_dir)


def test_trackmux_toml_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "trackmux.toml").write_text(
        'trackers = ["wandb", "null"]\ndata_dir = "runs"\n[wandb]\nproject = "p"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    settings = load_settings(environ={}, cwd=sub)
    assert settings.trackers == ("wandb", "null")
    assert settings.data_dir == (tmp_path / "runs").resolve()
    assert settings.settings_for("wandb") == {"project": "p"}


def test_pyproject_tool_table_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.trackmux]\ntrackers = ["null"]\n'
        '[tool.trackmux.null]\nflag = true\n')
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.trackers == ("null",)
    assert settings.settings_for("null") == {"flag": True}


def test_environment_beats_the_file_and_the_argument_beats_both(tmp_path: Path) -> None:
    (tmp_path / "trackmux.toml").write_text('trackers = ["null"]\n')
    env = {"TRACKMUX_TRACKERS": "wandb, null", "TRACKMUX_DIR": str(tmp_path / "env")}
    from_env = load_settings(environ=env, cwd=tmp_path)
    assert from_env.trackers == ("wandb", "null")
    assert from_env.data_dir == tmp_path / "env"
    explicit = load_settings("null", data_dir=tmp_path / "arg", environ=env, cwd=tmp_path)
    assert explicit.trackers == ("null",)
    assert explicit.data_dir == tmp_path / "arg"


def test_wandb_mode_offline_keeps_wandb_out(tmp_path: Path) -> None:
    env = {"TRACKMUX_TRACKERS": "wandb,null", "WANDB_MODE": "offline"}
    assert load_settings(environ=env, cwd=tmp_path).trackers == ("null",)
    env = {"TRACKMUX_TRACKERS": "wandb", "WANDB_MODE": "disabled"}
    assert load_settings(environ=env, cwd=tmp_path).trackers == ("null",)


@pytest.mark.parametrize("value", ["", " , ", []])
def test_an_empty_tracker_list_is_an_error_naming_the_value(tmp_path: Path, value) -> None:
    with pytest.raises(ValueError, match="empty"):
        load_settings(value, environ={}, cwd=tmp_path)


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "trackmux.toml").write_text("trackers = [\n")
    with pytest.raises(ValueError, match=r"trackmux\.toml"):
        load_settings(environ={}, cwd=tmp_path)
