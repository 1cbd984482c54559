"""``import trackmux`` (and ``trackmux.integrations``) imports no training framework; an
integration whose framework is missing says which package to install."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("torch", "transformers", "lightning", "pytorch_lightning", "accelerate",
              "keras", "tensorflow", "jax", "numpy")


def test_import_trackmux_imports_no_framework() -> None:
    code = (
        "import sys, trackmux, trackmux.integrations\n"
        "run = trackmux.init(trackers='null', dir=sys.argv[1])\n"
        "trackmux.log({'loss': 1.0})\n"
        "trackmux.finish()\n"
        f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as data:
        done = subprocess.run([sys.executable, "-c", code, data], capture_output=True,
                              text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""


def test_an_integration_without_its_framework_names_it() -> None:
    for module, package in (("transformers", "transformers"), ("lightning", "lightning"),
                            ("accelerate", "accelerate"), ("keras", "keras")):
        code = f"import trackmux.integrations.{module}"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode == 0:  # the framework happens to be installed here
            continue
        assert f"No module named '{package}'" in done.stderr, done.stderr
