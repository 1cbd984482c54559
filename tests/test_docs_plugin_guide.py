"""docs/writing-a-plugin.md documents every hook, with its exact signature (datasette style)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from trackmux._docs import END, START, hook_heading, hook_reference, hookspec_functions, main

_REPO = Path(__file__).resolve().parents[1]
_GUIDE = _REPO / "docs" / "writing-a-plugin.md"
_HEADING = re.compile(r"^### `(\w+)\((.*)\)(?: -> (.+))?`$", re.MULTILINE)


@pytest.fixture(scope="module")
def guide() -> str:
    return _GUIDE.read_text(encoding="utf-8")


def _documented(guide: str) -> dict[str, str]:
    section = guide[guide.index(START):guide.index(END)]
    found: dict[str, str] = {}
    for match in _HEADING.finditer(section):
        name = match.group(1)
        assert name not in found, f"hook {name} is documented twice"
        found[name] = match.group(0)[5:-1]
    return found


def test_every_hookspec_is_documented_with_its_exact_signature(guide: str) -> None:
    documented = _documented(guide)
    for fn in hookspec_functions():
        assert fn.__name__ in documented, (
            f"hook {fn.__name__} is missing from {_GUIDE.name}: run python -m trackmux._docs")
        assert documented[fn.__name__] == hook_heading(fn), (
            f"{_GUIDE.name} documents {documented[fn.__name__]!r}, the spec is "
            f"{hook_heading(fn)!r}: run python -m trackmux._docs")


def test_every_documented_hook_exists(guide: str) -> None:
    specs = {fn.__name__ for fn in hookspec_functions()}
    unknown = sorted(set(_documented(guide)) - specs)
    assert not unknown, f"{_GUIDE.name} documents hooks that hookspecs.py lacks: {unknown}"


def test_the_reference_equals_the_generated_text(guide: str) -> None:
    assert hook_reference() in guide, (
        f"the hook reference of {_GUIDE.name} is out of date: run python -m trackmux._docs")
    assert main(["--check", str(_GUIDE)]) == 0


def test_the_generator_rewrites_a_stale_reference(tmp_path: Path) -> None:
    stale = tmp_path / "guide.md"
    stale.write_text(f"# Guide\n\n{START}\n### `connect(old)`\n{END}\n\nAfter.\n")
    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0
    text = stale.read_text()
    assert text.startswith("# Guide\n\n") and text.endswith("\n\nAfter.\n")
    assert "connect(old)" not in text and main(["--check", str(stale)]) == 0


def test_the_guide_shows_the_example_plugins_entry_point(guide: str) -> None:
    pyproject = tomllib.loads((_REPO / "examples" / "jsonl-tracker" / "pyproject.toml").read_text())
    entry_points = pyproject["project"]["entry-points"]["trackmux"]
    assert entry_points == {"jsonl": "trackmux_jsonl"}
    assert '[project.entry-points.trackmux]\njsonl = "trackmux_jsonl"' in guide


@pytest.mark.parametrize("topic", [
    "@trackmux.hookimpl", "Sync or async", "The session object", "Idempotence by `seq`",
    "Error classification", "`TrackerInfo`", "TrackerConformance", "trackmux plugins --check",
    "Publishing", "hookimpl(wrapper=True)", "skipped_tests", "@overridden",
])
def test_the_guide_covers(guide: str, topic: str) -> None:
    assert topic in guide


_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _blocks(guide: str, language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(guide) if lang == language]


def test_the_guides_python_blocks_run_in_order(guide: str, tmp_path: Path) -> None:
    """Every ```python block of the guide, run top to bottom in one fresh interpreter."""
    blocks = _blocks(guide, "python")
    assert len(blocks) >= 6
    script = tmp_path / "guide.py"
    script.write_text("\n\n".join(blocks) + "\n\nprint('guide ran')\n")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TRACKMUX_", "WANDB_", "RANK", "PYTHONPATH"))}
    env.update(TRACKMUX_DIR=str(tmp_path / "data"),
               PYTHONPATH=str(_REPO / "examples" / "jsonl-tracker"))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("guide ran")


def test_the_guides_toml_blocks_parse(guide: str) -> None:
    blocks = _blocks(guide, "toml")
    assert blocks
    for block in blocks:
        tomllib.loads(block)
