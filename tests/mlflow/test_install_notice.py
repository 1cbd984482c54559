"""The one-time install of the MLflow server says what it is doing on the terminal, past
pytest's output capture (a minute of silence looks like a hang)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).parent


def test_the_install_line_reaches_the_terminal_of_a_passing_run(tmp_path: Path) -> None:
    (tmp_path / "test_notice.py").write_text(textwrap.dedent("""
        from _mlflow_support import terminal_log

        def test_installs(request):
            terminal_log(request.config)("installing mlflow==X into /venv (once)")
            print("captured, not shown")
    """))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), str(tmp_path / "test_notice.py")],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[mlflow] installing mlflow==X into /venv (once)" in done.stdout
    assert "captured, not shown" not in done.stdout
