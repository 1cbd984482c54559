"""Uploading and downloading W&B artifacts (PROTOCOL.md §7).

Uploads are journaled by the engine, which retries them with its backoff: a failed step
raises ``RetryableError`` or ``PermanentError`` naming it, e.g. ``"createArtifactFiles
failed: W&B CreateArtifactFiles failed: HTTP 500"``. A retry starts over and costs little:
``createArtifact`` returns the artifact already created for the same digest (PENDING, or
COMMITTED: then nothing more is sent), and ``createArtifactFiles`` gives no upload URL for
content the server holds. That digest deduplication is also what makes a resend (lost
acknowledgement, ``trackmux sync``) commit no new version.

Downloads are called by the user directly, so each of their steps is retried a few times
with capped backoff (``Settings.artifact_attempts``, ``Settings.artifact_retry_wait``); a
step that still fails raises ``RuntimeError`` naming it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from trackmux_spec import ArtifactSpec, PermanentError, RetryableError, UnknownJobError
from trackmux_spec.http import request_step
from trackmux_spec.threads import to_thread

from . import _queries as q
from ._manifest import (
    FileEntry,
    artifact_digest,
    b64_md5,
    collect_entries,
    manifest_json,
    safe_destination,
    sanitize_name,
)
from ._session import WandBSession

__all__ = ["download_artifact", "upload_artifact"]

logger = logging.getLogger("trackmux.wandb")

T = TypeVar("T")

_MANIFEST_NAME = "wandb_manifest.json"
_URL_BATCH = 5000
_MAX_WAIT = 60.0
_CHUNK = 1 << 20


async def _step(session: WandBSession, step: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` with bounded retries; a final failure is a RuntimeError naming ``step``."""
    attempts = max(1, session.settings.artifact_attempts)
    base = session.settings.artifact_retry_wait
    for attempt in range(attempts):
        try:
            return await call()
        except RetryableError as exc:
            if attempt + 1 == attempts:
                raise RuntimeError(f"{step} failed: {exc}") from None
            wait = exc.retry_after if exc.retry_after is not None else base * 2**attempt
            wait = min(wait, _MAX_WAIT)
            logger.info("W&B %s failed (%s); retrying in %.1f s", step, exc, wait)
            await asyncio.sleep(wait)
        except PermanentError as exc:
            raise RuntimeError(f"{step} failed: {exc}") from None
    raise AssertionError("unreachable")



def _parse_headers(raw: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw or []:
        key, sep, value = str(item).partition(":")
        if sep:
            headers[key.strip()] = value.strip()
    return headers


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await to_thread(handle.read, _CHUNK):
            yield chunk


async def _put_file(
    session: WandBSession, url: str, headers: dict[str, str], entry: FileEntry
) -> None:
    headers = {**headers, "Content-Length": str(entry.size)}
    await session.client.put_storage(url, _file_chunks(entry.local), headers, "storage upload")


async def upload_artifact(
    session: WandBSession, job_id: str, path: Path, artifact: ArtifactSpec
) -> str:
    """Log ``path`` (a file, or a directory as one artifact) as an output of ``job_id``.

    :returns: the artifact's server id.
    :raises FileNotFoundError: ``path`` does not exist.
    :raises RetryableError: a step failed for now; the message names it.
    :raises PermanentError: W&B refused a step; the message names it.
    """
    entries = collect_entries(Path(path))
    entity, project, run_name = session.resolve(job_id)
    client = session.client
    collection = sanitize_name(artifact.name)
    digest = artifact_digest((e.name, e.digest) for e in entries)

    created = await request_step(
        "createArtifact",
        lambda: client.graphql(
            "CreateArtifact",
            q.CREATE_ARTIFACT,
            {
                "entityName": entity,
                "projectName": project,
                "artifactTypeName": artifact.type,
                "artifactCollectionName": collection,
                "runName": run_name,
                "digest": digest,
                "digestAlgorithm": "MANIFEST_MD5",
                "description": artifact.description,
                "metadata": json.dumps(dict(artifact.metadata)),
                "aliases": [{"artifactCollectionName": collection, "alias": "latest"}],
                "clientID": uuid.uuid4().hex,
                "sequenceClientID": uuid.uuid4().hex,
                "enableDigestDeduplication": True,
            },
        ),
    )
    node = (created.get("createArtifact") or {}).get("artifact") or {}
    artifact_id = node.get("id")
    if not artifact_id:
        raise PermanentError("createArtifact failed: the server returned no artifact id")
    if node.get("state") == "COMMITTED":
        logger.info("W&B artifact %s:%s already stored (same digest)", collection, digest)
        return str(artifact_id)
    latest = ((node.get("artifactSequence") or {}).get("latestArtifact") or {}).get("id")

    def manifest_vars(manifest_digest: str, include_upload: bool) -> dict[str, Any]:
        return {
            "name": _MANIFEST_NAME,
            "digest": manifest_digest,
            "artifactID": artifact_id,
            "baseArtifactID": latest,
            "entityName": entity,
            "projectName": project,
            "runName": run_name,
            "type": "FULL",
            "includeUpload": include_upload,
        }

    made = await request_step(
        "createArtifactManifest",
        lambda: client.graphql(
            "CreateArtifactManifest", q.CREATE_ARTIFACT_MANIFEST, manifest_vars("", False)
        ),
    )
    manifest_id = ((made.get("createArtifactManifest") or {}).get("artifactManifest") or {}).get(
        "id"
    )
    if not manifest_id:
        raise PermanentError("createArtifactManifest failed: the server returned no manifest id")

    files = await request_step(
        "createArtifactFiles",
        lambda: client.graphql(
            "CreateArtifactFiles",
            q.CREATE_ARTIFACT_FILES,
            {
                "storageLayout": "V2",
                "artifactFiles": [
                    {
                        "artifactID": artifact_id,
                        "artifactManifestID": manifest_id,
                        "name": e.name,
                        "md5": e.digest,
                    }
                    for e in entries
                ],
            },
        ),
    )
    edges = (((files.get("createArtifactFiles") or {}).get("files") or {}).get("edges")) or []
    if len(edges) != len(entries):
        raise PermanentError(
            f"createArtifactFiles failed: asked for {len(entries)} files, got {len(edges)}"
        )
    birth_ids: dict[str, str] = {}
    for entry, edge in zip(entries, edges, strict=True):
        file_node = edge.get("node") or {}
        birth_ids[entry.name] = str((file_node.get("artifact") or {}).get("id") or artifact_id)
        url = file_node.get("uploadUrl")
        if url is None:
            continue
        headers = _parse_headers(file_node.get("uploadHeaders"))
        await request_step(
            f"upload of {entry.name}",
            functools.partial(_put_file, session, url, headers, entry),
        )

    manifest = manifest_json(entries, birth_ids)
    final = await request_step(
        "createArtifactManifest",
        lambda: client.graphql(
            "CreateArtifactManifest",
            q.CREATE_ARTIFACT_MANIFEST,
            manifest_vars(b64_md5(manifest), True),
        ),
    )
    manifest_file = ((final.get("createArtifactManifest") or {}).get("artifactManifest") or {}).get(
        "file"
    ) or {}
    upload_url = manifest_file.get("uploadUrl")
    if upload_url:
        headers = _parse_headers(manifest_file.get("uploadHeaders"))
        await request_step(
            "manifest upload",
            lambda: client.put_storage(upload_url, manifest, headers, "manifest upload"),
        )

    await request_step(
        "commitArtifact",
        lambda: client.graphql("CommitArtifact", q.COMMIT_ARTIFACT, {"artifactID": artifact_id}),
    )
    logger.info("W&B artifact %s committed (%d files)", collection, len(entries))
    return str(artifact_id)


async def download_artifact(session: WandBSession, artifact_id: str, target_dir: Path) -> Path:
    """Fetch artifact ``artifact_id`` into ``target_dir``, verifying every MD5.

    Every manifest path is checked before anything is written: one that is absolute or
    resolves outside ``target_dir`` is refused with ``ValueError``.

    :returns: the file for a one-file artifact, else ``target_dir``.
    :raises UnknownJobError: no such artifact.
    :raises RuntimeError: a step failed or a file's MD5 does not match the manifest.
    """
    client = session.client
    target_dir = Path(target_dir)
    found = await _step(
        session,
        "artifactManifest",
        lambda: client.graphql("ArtifactManifest", q.ARTIFACT_MANIFEST, {"id": artifact_id}),
    )
    node = found.get("artifact")
    if node is None:
        raise UnknownJobError(artifact_id)
    direct_url = (((node.get("currentManifest") or {}).get("file")) or {}).get("directUrl")
    if not direct_url:
        raise RuntimeError("artifactManifest failed: the artifact has no manifest")
    raw = await _step(
        session, "manifest download", lambda: client.get_storage(direct_url, "manifest download")
    )
    try:
        contents = json.loads(raw)["contents"]
        if not isinstance(contents, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise RuntimeError("manifest download failed: the manifest is not valid JSON") from None

    destinations = {name: safe_destination(target_dir, name) for name in contents}

    urls: dict[str, str] = {}
    names = list(contents)
    for start in range(0, len(names), _URL_BATCH):
        batch = names[start : start + _URL_BATCH]
        entries = [
            {
                "name": n,
                "digest": contents[n].get("digest"),
                "birthArtifactID": contents[n].get("birthArtifactID"),
                "size": contents[n].get("size"),
            }
            for n in batch
        ]
        answer = await _step(
            session,
            "artifactFileURLs",
            functools.partial(
                client.graphql,
                "ArtifactFileURLsByManifestEntries",
                q.ARTIFACT_FILE_URLS,
                {
                    "id": artifact_id,
                    "storageLayout": "V2",
                    "manifestVersion": "1",
                    "entries": entries,
                },
            ),
        )
        edges = (
            (((answer.get("artifact") or {}).get("filesByManifestEntries")) or {}).get("edges")
        ) or []
        for edge in edges:
            file_node = edge.get("node") or {}
            if file_node.get("name") in contents and file_node.get("directUrl"):
                urls[file_node["name"]] = file_node["directUrl"]

    for name in names:
        if name not in urls:
            raise RuntimeError(f"artifactFileURLs failed: no download URL for {name!r}")
        dest = destinations[name]
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        try:
            got = await _step(
                session,
                f"download of {name}",
                functools.partial(
                    client.download_storage, urls[name], partial, f"download of {name}"
                ),
            )
            if got != contents[name].get("digest"):
                raise RuntimeError(
                    f"checksum mismatch for {name!r}: the MD5 differs from the manifest"
                )
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)

    if len(names) == 1:
        return destinations[names[0]]
    return target_dir
