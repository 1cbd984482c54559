"""W&B artifact manifests: file entries, digests, the manifest JSON, safe target paths.

Digests follow ``core/pkg/artifacts/builder.go``: an entry's digest is the base64 of
its raw MD5; the artifact digest is the hex MD5 of ``"wandb-artifact-manifest-v1\\n"``
followed by ``"<path>:<digest>\\n"`` for every entry sorted by path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
from trackmux_spec.artifact_paths import safe_destination

__all__ = [
    "FileEntry",
    "artifact_digest",
    "b64_md5",
    "collect_entries",
    "manifest_json",
    "safe_destination",
    "sanitize_name",
]

_CHUNK = 1 << 20
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


@attrs.define(frozen=True)
class FileEntry:
    """One file of an artifact: its path inside the artifact, where it is, its digest."""

    name: str
    local: Path
    digest: str
    size: int


def b64_md5(data: bytes) -> str:
    """Base64 of the raw 16-byte MD5 of ``data``."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def _file_b64_md5(path: Path) -> str:
    md5 = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            md5.update(chunk)
    return base64.b64encode(md5.digest()).decode("ascii")


def collect_entries(path: Path) -> list[FileEntry]:
    """The entries of a file (one, named after it) or of a directory (every file under it).

    :raises FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if path.is_file():
        return [FileEntry(path.name, path, _file_b64_md5(path), path.stat().st_size)]
    if not path.is_dir():
        raise FileNotFoundError(f"artifact path does not exist: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return [
        FileEntry(p.relative_to(path).as_posix(), p, _file_b64_md5(p), p.stat().st_size)
        for p in files
    ]


def artifact_digest(entries: Iterable[tuple[str, str]]) -> str:
    """The hex ``MANIFEST_MD5`` digest of ``(path, b64 digest)`` pairs."""
    text = "wandb-artifact-manifest-v1\n" + "".join(
        f"{name}:{digest}\n" for name, digest in sorted(entries)
    )
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def manifest_json(entries: Iterable[FileEntry], birth_ids: Mapping[str, str]) -> bytes:
    """The ``wandb_manifest.json`` bytes (storage policy v1, layout V2)."""
    contents: dict[str, Any] = {}
    for entry in sorted(entries, key=lambda e: e.name):
        contents[entry.name] = {
            "digest": entry.digest,
            "size": entry.size,
            "birthArtifactID": birth_ids[entry.name],
        }
    manifest = {
        "version": 1,
        "storagePolicy": "wandb-storage-policy-v1",
        "storagePolicyConfig": {"storageLayout": "V2"},
        "contents": contents,
    }
    return json.dumps(manifest, indent=4, sort_keys=True).encode("utf-8")


def sanitize_name(name: str) -> str:
    """An artifact collection name W&B accepts: ``[A-Za-z0-9_.-]``, others become ``-``."""
    cleaned = _BAD_NAME_CHARS.sub("-", name).strip("-")
    return cleaned or "artifact"


