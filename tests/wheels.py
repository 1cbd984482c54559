"""Build small wheels by hand and install them into a directory, in seconds and offline.

A wheel is a zip file with the package files and a ``.dist-info`` folder (METADATA, WHEEL,
entry_points.txt, RECORD); pip installs it like any other. Tests put the target directory on
``sys.path`` (or ``PYTHONPATH``) to have the distributions installed beside trackmux.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path


def build_wheel(out: Path, dist: str, version: str, files: Mapping[str, str],
                entry_points: Mapping[str, Mapping[str, str]]) -> Path:
    """A valid pure-Python wheel of distribution ``dist`` holding ``files`` (path -> text)
    and ``entry_points`` (group -> name -> object reference)."""
    tag = dist.replace("-", "_")
    info = f"{tag}-{version}.dist-info"
    content = dict(files)
    content[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
    content[f"{info}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: trackmux-tests\n"
                                "Root-Is-Purelib: true\nTag: py3-none-any\n")
    content[f"{info}/entry_points.txt"] = "".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in names.items())
        for group, names in entry_points.items())
    record = []
    for name, text in content.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(data)}")
    record.append(f"{info}/RECORD,,")
    content[f"{info}/RECORD"] = "\n".join(record) + "\n"
    path = out / f"{tag}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in content.items():
            archive.writestr(name, text)
    return path


def package_files(source: Path, package: str) -> dict[str, str]:
    """The ``.py`` files of the package directory ``source``, as ``build_wheel`` takes them."""
    return {f"{package}/{path.relative_to(source).as_posix()}": path.read_text()
            for path in sorted(source.rglob("*.py"))}


def install(target: Path, wheels: list[Path]) -> Path:
    """``pip install --target`` the wheels (no index, no dependencies); returns ``target``."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "--target", str(target), *map(str, wheels)],
                   check=True, capture_output=True, timeout=120)
    return target
