"""Artifacts through the tracking server's artifact proxy.

Layout under the run's artifact root (``mlflow-artifacts:/<experiment>/<run>/artifacts``):
an artifact named ``ckpt`` keeps its files under ``ckpt/`` (a single file as
``ckpt/<file name>``, a directory with its layout), and nothing else: what trackmux needs
to know about it is the run tag ``trackmux.artifact.ckpt``, JSON ``{"name", "type",
"description", "metadata", "kind": "file" | "directory", "key", "files": [[path, size,
sha256], ...]}``, set after the files are uploaded. When that would pass MLflow's 8,000
characters, ``files`` gives way to ``{"count", "sha256"}``: one SHA-256 over every file's
path, size and SHA-256, checked after listing and downloading the files (and, if still too
long, ``metadata`` is left out with a warning). The artifact id is ``<run id>/<name>``.
Uploading the same name again replaces the tag, so a download only ever fetches the
files of the latest upload.

Downloads check every path before anything is written (``ValueError`` for one that is
absolute or leaves the target directory) and verify each file's size and SHA-256.

Uploads are journaled and retried by the engine: a failed request raises
``RetryableError`` or ``PermanentError`` naming the step. The tag carries the artifact's
``key``; an upload whose key the stored tag already has sends nothing (a lost
acknowledgement, ``trackmux sync``), so an artifact is stored once. Downloads are called
by the user directly, so each request is retried a few times with capped backoff
(``artifact_attempts``, ``artifact_retry_wait``); a final failure is a ``RuntimeError``
that names the step. Artifacts an older trackmux uploaded, with a ``<name>.trackmux.json``
manifest file beside them, still download.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from trackmux_spec import ArtifactSpec, PermanentError, RetryableError, UnknownJobError
from trackmux_spec.artifact_paths import safe_destination
from trackmux_spec.http import request_step
from trackmux_spec.threads import to_thread

from ._failures import MLflowError
from ._runs import get_run
from ._session import MLflowSession
from ._values import MAX_TAG_VALUE_LENGTH

__all__ = ["download_artifact", "safe_destination", "upload_artifact"]

logger = logging.getLogger("trackmux.mlflow")

T = TypeVar("T")

#: The run tag describing artifact ``<name>`` is this prefix plus the name.
MANIFEST_TAG_PREFIX = "trackmux.artifact."
#: The manifest file older trackmux versions uploaded beside an artifact: read, not written.
_LEGACY_MANIFEST_SUFFIX = ".trackmux.json"
_PROXY_SCHEME = "mlflow-artifacts:"
_BAD_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")
_CHUNK = 1 << 20
_MAX_WAIT = 30.0


async def _step(session: MLflowSession, step: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` with bounded retries; a final failure is a RuntimeError naming ``step``."""
    attempts = max(1, session.settings.artifact_attempts)
    for attempt in range(attempts):
        try:
            return await call()
        except RetryableError as exc:
            if attempt + 1 == attempts:
                raise RuntimeError(f"{step} failed: {exc}") from None
            wait = exc.retry_after
            if wait is None:
                wait = session.settings.artifact_retry_wait * 2**attempt
            logger.info("MLflow %s failed (%s); retrying", step, exc)
            await asyncio.sleep(min(wait, _MAX_WAIT))
        except PermanentError as exc:
            raise RuntimeError(f"{step} failed: {exc}") from None
    raise AssertionError("unreachable")



def artifact_name(name: str) -> str:
    """``name`` as one safe path segment: ``[A-Za-z0-9_.-]``, no leading dot."""
    cleaned = _BAD_NAME.sub("-", name).strip("-").lstrip(".")
    return cleaned or "artifact"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(path: Path) -> tuple[str, list[tuple[str, Path]]]:
    if path.is_file():
        return "file", [(path.name, path)]
    if not path.is_dir():
        raise FileNotFoundError(f"artifact path does not exist: {path}")
    found = sorted(p for p in path.rglob("*") if p.is_file())
    return "directory", [(p.relative_to(path).as_posix(), p) for p in found]


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await to_thread(handle.read, _CHUNK):
            yield chunk


async def _put_file(session: MLflowSession, target: str, local: Path, size: int) -> None:
    await session.client.put_artifact(target, _chunks(local), size)


async def _artifact_root(
    session: MLflowSession, run_id: str, missing: str, *, upload: bool = False
) -> tuple[str, dict[str, Any]]:
    """The proxy path of the run's artifact root (e.g. ``1/<run>/artifacts``), and the run."""
    if upload:
        run = await request_step("runs/get", lambda: get_run(session, run_id))
    else:
        run = await _step(session, "runs/get", lambda: get_run(session, run_id))
    if run is None:
        raise UnknownJobError(missing)
    uri = str(run["info"].get("artifact_uri") or "")
    if not uri.startswith(_PROXY_SCHEME):
        raise (PermanentError if upload else RuntimeError)(
            f"MLflow run {run_id} stores artifacts at {uri!r}, not behind the server's artifact "
            f"proxy; start the server with --serve-artifacts (the default)"
        )
    return uri[len(_PROXY_SCHEME) :].lstrip("/").rstrip("/"), run


def _tagged_manifest(run: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The manifest of artifact ``name`` from the run's tags, if it has one."""
    key = f"{MANIFEST_TAG_PREFIX}{name}"
    for tag in (run.get("data") or {}).get("tags") or []:
        if tag.get("key") == key:
            try:
                manifest = json.loads(tag["value"])
            except (ValueError, TypeError):
                return None
            return manifest if isinstance(manifest, dict) else None
    return None


def files_digest(files: list[list[Any]]) -> str:
    """One SHA-256 over every file's path, size and SHA-256 (in path order)."""
    digest = hashlib.sha256()
    for path, size, sha256 in sorted(files):
        digest.update(f"{path}\t{size}\t{sha256}\n".encode())
    return digest.hexdigest()


def manifest_value(manifest: dict[str, Any]) -> str:
    """The tag value of ``manifest``, within MLflow's tag length (module docstring)."""
    value = json.dumps(manifest, separators=(",", ":"), default=str)
    if len(value) <= MAX_TAG_VALUE_LENGTH:
        return value
    files = manifest["files"]
    manifest = {**manifest, "files": {"count": len(files), "sha256": files_digest(files)}}
    value = json.dumps(manifest, separators=(",", ":"), default=str)
    if len(value) > MAX_TAG_VALUE_LENGTH:
        logger.warning(
            "MLflow artifact %s: its metadata does not fit in an MLflow tag; not stored",
            manifest["name"],
        )
        manifest = {**manifest, "metadata": {}, "description": None}
        value = json.dumps(manifest, separators=(",", ":"), default=str)
    return value


async def upload_artifact(
    session: MLflowSession, job_id: str, path: Path, artifact: ArtifactSpec
) -> str:
    """Upload ``path`` (a file, or a directory as one artifact) to run ``job_id``.

    :returns: the artifact id, ``<run id>/<name>``.
    :raises RetryableError: a request failed for now; the message names the step.
    :raises PermanentError: MLflow refused a request; the message names the step.
    """
    kind, files = _files(Path(path))
    name = artifact_name(artifact.name)
    root, run = await _artifact_root(session, job_id, job_id, upload=True)
    client = session.client
    if artifact.key is not None:
        stored = _tagged_manifest(run, name)
        if stored is not None and stored.get("key") == artifact.key:
            return f"{job_id}/{name}"  # stored before: the acknowledgement was lost
    entries = []
    for relative, local in files:
        size = local.stat().st_size
        digest = await to_thread(_sha256, local)
        target = f"{root}/{name}/{relative}"
        await request_step(
            f"upload of {relative}",
            functools.partial(_put_file, session, target, local, size),
        )
        entries.append([relative, size, digest])
    value = manifest_value(
        {
            "name": artifact.name,
            "type": artifact.type,
            "description": artifact.description,
            "metadata": dict(artifact.metadata),
            "kind": kind,
            "key": artifact.key,
            "files": entries,
        }
    )
    await request_step(
        "manifest tag",
        lambda: client.call(
            "POST",
            "runs/set-tag",
            body={"run_id": job_id, "key": f"{MANIFEST_TAG_PREFIX}{name}", "value": value},
        ),
    )
    logger.info("MLflow artifact %s of run %s uploaded (%d files)", name, job_id, len(entries))
    return f"{job_id}/{name}"


async def _manifest(session: MLflowSession, path: str) -> bytes | None:
    try:
        return await session.client.get_artifact(path)
    except MLflowError as exc:
        if exc.status_code == 404:
            return None
        raise


def _legacy_files(raw: bytes) -> tuple[str, list[list[Any]]]:
    try:
        manifest = json.loads(raw)
        files = [[f["path"], f["size"], f["sha256"]] for f in manifest["files"]]
        return str(manifest.get("kind", "directory")), files
    except (ValueError, KeyError, TypeError):
        raise RuntimeError("manifest download failed: the manifest is not valid") from None


async def _listed(session: MLflowSession, run_id: str, top: str) -> list[tuple[str, int]]:
    """Every file under ``top`` in the run's artifacts: ``(path below top, size)``."""
    found: list[tuple[str, int]] = []
    pending = [top]
    while pending:
        folder = pending.pop()
        answer = await _step(
            session,
            "artifacts/list",
            lambda folder=folder: session.client.call(
                "GET", "artifacts/list", params={"run_id": run_id, "path": folder}
            ),
        )
        for entry in answer.get("files") or []:
            if entry.get("is_dir"):
                pending.append(entry["path"])
            else:
                found.append((entry["path"][len(top) + 1 :], int(entry.get("file_size") or 0)))
    return sorted(found)


async def download_artifact(session: MLflowSession, artifact_id: str, target_dir: Path) -> Path:
    """Fetch artifact ``<run id>/<name>`` into ``target_dir``, verifying sizes and SHA-256.

    :returns: the file of a one-file artifact, else ``target_dir``.
    :raises UnknownJobError: no such run or artifact.
    :raises ValueError: a manifest path leaves ``target_dir``.
    :raises RuntimeError: a step failed, or a file's size or checksum does not match.
    """
    run_id, sep, name = artifact_id.partition("/")
    if not sep or not name or name != artifact_name(name):
        raise UnknownJobError(artifact_id)
    target_dir = Path(target_dir)
    root, run = await _artifact_root(session, run_id, artifact_id)
    client = session.client
    manifest = _tagged_manifest(run, name)
    digest: str | None = None
    if manifest is not None:
        kind = str(manifest.get("kind", "directory"))
        files = manifest.get("files")
        if isinstance(files, dict):  # too many files for a tag: one digest over them all
            digest = str(files.get("sha256"))
            files = [[path, size, None] for path, size in await _listed(session, run_id, name)]
        if not isinstance(files, list):
            raise RuntimeError("manifest download failed: the manifest tag is not valid")
    else:
        raw = await _step(
            session,
            "manifest download",
            lambda: _manifest(session, f"{root}/{name}{_LEGACY_MANIFEST_SUFFIX}"),
        )
        if raw is None:
            raise UnknownJobError(artifact_id)
        kind, files = _legacy_files(raw)
    destinations = [safe_destination(target_dir, f[0]) for f in files]
    got: list[list[Any]] = []
    for (relative, expected_size, expected_sha), dest in zip(files, destinations, strict=True):
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        try:
            size, sha256 = await _step(
                session,
                f"download of {relative}",
                functools.partial(client.download_artifact, f"{root}/{name}/{relative}", partial),
            )
            if size != expected_size:
                raise RuntimeError(
                    f"size mismatch for {relative!r}: got {size} bytes, the manifest says "
                    f"{expected_size}"
                )
            if expected_sha is not None and sha256 != expected_sha:
                raise RuntimeError(f"checksum mismatch for {relative!r}: the SHA-256 differs")
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        got.append([relative, size, sha256])
    if digest is not None and files_digest(got) != digest:
        for dest in destinations:
            dest.unlink(missing_ok=True)
        raise RuntimeError("checksum mismatch: the artifact's files differ from what was uploaded")
    if kind == "file" and len(destinations) == 1:
        return destinations[0]
    return target_dir
