"""The local artifact store: an artifact's bytes are safe once ``upload_artifact`` returns.

``upload_artifact`` copies every file into a content-addressed store in the data directory
before it returns; the trackers' workers upload from there in the background, so a training
script may delete or overwrite ``checkpoint.pt`` in place right after the call::

    <data dir>/artifacts/
        sha256/<2 hex>/<62 hex>        one blob per distinct content (0600, never written again)
        views/<run id>/<index>/files/  what a tracker's upload_artifact hook receives: the
                                       artifact's layout, hard links to the blobs (or, for
                                       copy=False, symbolic links to the referenced files)
        tmp/                           copies in progress

* A copy is a reflink (``FICLONE``: copy-on-write, no data copied) where the filesystem
  supports it (XFS, Btrfs, bcachefs, ZFS 2.2+), otherwise a streamed copy in 1 MiB chunks;
  either way the SHA-256 is computed from the copy while it is written or read, so the
  stored digest is the stored content's, and no file is ever read into memory whole.
  A hard link of the source would not do: writing the file in place would change it.
* ``copy=False`` stores a reference instead (for files too large to copy twice): the
  file is hashed at the call, and each delivery checks it again before uploading; a file
  that changed fails that artifact clearly (:class:`ArtifactChangedError`), never
  uploading other bytes under the recorded digest.
* An entry (see :func:`build_entry`) is what the run's journal records: name, type,
  description, metadata, every file's path, size and SHA-256, and ``after_seq``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trackmux_spec.artifact_paths import safe_destination

from ._files import make_private_dir

__all__ = [
    "ArtifactChangedError",
    "ArtifactStore",
    "artifact_digest",
    "build_entry",
    "parse_artifact_id",
    "restore",
]

_CHUNK = 1 << 20
#: ``FICLONE`` from ``linux/fs.h``: ``_IOW(0x94, 9, int)``.
_FICLONE = 0x40049409
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
               errno.EBADF, errno.EPERM}


class ArtifactChangedError(RuntimeError):
    """A file referenced with ``copy=False`` no longer has the content recorded at the call."""


def artifact_digest(files: list[Mapping[str, Any]]) -> str:
    """The artifact's SHA-256: over ``"<path>:<sha256>\\n"`` of every file, sorted by path."""
    text = "".join(f"{f['path']}:{f['sha256']}\n" for f in sorted(files, key=lambda f: f["path"]))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_artifact_id(artifact_id: str) -> tuple[str, int] | None:
    """``(run id, index)`` of a trackmux artifact id ``<run id>:<name>:<index>``, else None."""
    if not isinstance(artifact_id, str) or artifact_id.count(":") < 2:
        return None
    run_id, _, rest = artifact_id.partition(":")
    index = rest.rpartition(":")[2]
    if not run_id or not index.isdigit():
        return None
    return run_id, int(index)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return digest.hexdigest(), size


def _walk(source: Path) -> tuple[str, list[tuple[str, Path]]]:
    """``("file", [(name, path)])`` or ``("directory", [(relative posix path, path)...])``."""
    if source.is_file():
        return "file", [(source.name, source)]
    found = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                found.append((path.relative_to(source).as_posix(), path))
    return "directory", found


class ArtifactStore:
    """The blobs and delivery views under ``<data dir>/artifacts`` (module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "artifacts"

    # -- writing -------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        """Where the blob of ``sha256`` lives."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def put(self, source: Path, *, fsync: bool = False) -> tuple[str, int]:
        """Copy file ``source`` into the store (reflink if possible); ``(sha256, size)``."""
        tmp_dir = make_private_dir(self.root / "tmp")
        tmp = tmp_dir / f"{secrets.token_hex(8)}.part"
        try:
            with open(source, "rb", buffering=0) as src:
                fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                with open(fd, "wb", buffering=0) as out:
                    cloned = self._reflink(src, out)
                    if not cloned:
                        sha256, size = self._stream(src, out)
                    if fsync:
                        os.fsync(out.fileno())
            if cloned:  # hash the clone, not the source: the source may change meanwhile
                sha256, size = _hash_file(tmp)
            target = self.blob_path(sha256)
            make_private_dir(target.parent)
            if target.exists():
                tmp.unlink()
            else:
                os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return sha256, size

    @staticmethod
    def _reflink(src: Any, out: Any) -> bool:
        try:
            fcntl.ioctl(out.fileno(), _FICLONE, src.fileno())
        except OSError as exc:
            if exc.errno in _NO_REFLINK:
                return False
            raise
        return True

    @staticmethod
    def _stream(src: Any, out: Any) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while count := src.readinto(buffer):
            chunk = view[:count]
            digest.update(chunk)
            out.write(chunk)
            size += count
        return digest.hexdigest(), size

    # -- delivery ------------------------------------------------------------------------

    def view(self, run_id: str, entry: Mapping[str, Any]) -> Path:
        """The path a tracker uploads for ``entry``: a file, or a directory with its layout.

        Built on first use (hard links to the blobs; symbolic links for references), so it
        survives a crash, a new process and ``trackmux sync``.

        :raises ArtifactChangedError: a referenced file (``copy=False``) changed.
        :raises RuntimeError: a blob is missing from the store.
        """
        base = self.root / "views" / run_id / str(entry["index"])
        if not base.is_dir():
            # built aside, then renamed into place: several trackers' workers may race here,
            # and a crash mid-way leaves no half view
            parent = make_private_dir(base.parent)
            tmp = parent / f".{entry['index']}-{secrets.token_hex(6)}"
            try:
                for item in entry["files"]:
                    dest = tmp / "files" / item["path"]
                    make_private_dir(dest.parent)
                    if item.get("source"):
                        os.symlink(item["source"], dest)
                        continue
                    try:
                        os.link(self.blob_path(item["sha256"]), dest)
                    except FileNotFoundError:
                        raise RuntimeError(
                            f"artifact {entry['name']!r}: the stored copy of {item['path']!r} "
                            f"is missing from {self.root}"
                        ) from None
                make_private_dir(tmp / "files")
                os.rename(tmp, base)
            except OSError:
                if not base.is_dir():
                    raise
            finally:
                if tmp.exists():
                    _remove_tree(tmp)
        files_dir = base / "files"
        for item in entry["files"]:
            if item.get("source"):
                self.check_reference(entry, item)
        if entry["kind"] == "file":
            return files_dir / entry["files"][0]["path"]
        return files_dir

    def check_reference(self, entry: Mapping[str, Any], item: Mapping[str, Any]) -> None:
        """Check that a ``copy=False`` file still has the size and SHA-256 recorded."""
        source = Path(item["source"])
        try:
            sha256, size = _hash_file(source)
        except FileNotFoundError:
            raise ArtifactChangedError(
                f"artifact {entry['name']!r}: {str(source)!r} (uploaded with copy=False) no "
                f"longer exists"
            ) from None
        if (sha256, size) != (item["sha256"], item["size"]):
            raise ArtifactChangedError(
                f"artifact {entry['name']!r}: {str(source)!r} (uploaded with copy=False) changed "
                f"after upload_artifact: sha256 {sha256[:12]}, {size} bytes; recorded "
                f"{item['sha256'][:12]}, {item['size']} bytes"
            )

    def open_file(self, item: Mapping[str, Any]) -> Path:
        """Where the bytes of one entry file are (the blob, or the referenced file)."""
        if item.get("source"):
            return Path(item["source"])
        return self.blob_path(item["sha256"])


def build_entry(
    store: ArtifactStore,
    source: Path,
    *,
    name: str,
    type: str,
    description: str | None,
    metadata: Mapping[str, Any],
    copy: bool,
    fsync: bool = False,
) -> dict[str, Any]:
    """Store ``source`` (file or directory) and describe it as a journal entry.

    The entry still lacks ``index``, ``id`` and ``after_seq``: the run assigns those.

    :raises FileNotFoundError: ``source`` does not exist.
    """
    if not source.exists():
        raise FileNotFoundError(f"artifact path does not exist: {str(source)!r}")
    kind, found = _walk(source)
    files = []
    for rel, path in found:
        if copy:
            sha256, size = store.put(path, fsync=fsync)
            files.append({"path": rel, "size": size, "sha256": sha256})
        else:
            sha256, size = _hash_file(path)
            files.append({"path": rel, "size": size, "sha256": sha256,
                          "source": str(path.resolve())})
    return {
        "name": name,
        "type": type,
        "description": description,
        "metadata": dict(metadata),
        "kind": kind,
        "files": files,
        "size": sum(f["size"] for f in files),
        "digest": artifact_digest(files),
        "copy": copy,
        "created": time.time(),
    }


def restore(store: ArtifactStore, entry: Mapping[str, Any], target_dir: Path) -> Path:
    """Copy an artifact from the local store into ``target_dir``, every file verified.

    Each file is written under a temporary name, checked against the SHA-256 and size the
    journal recorded, then renamed; every path is checked first (``safe_destination``).

    :returns: the file of a one-file artifact, else ``target_dir``.
    :raises ValueError: an entry's path would land outside ``target_dir``.
    :raises RuntimeError: a stored file is missing or its content differs (for
        ``copy=False``: the referenced file changed since the upload).
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    plan = [(safe_destination(target_dir, item["path"]), item) for item in entry["files"]]
    for dest, item in plan:
        source = store.open_file(item)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            try:
                with open(source, "rb", buffering=0) as src, open(tmp, "xb", buffering=0) as out:
                    sha256, size = ArtifactStore._stream(src, out)
            except FileNotFoundError:
                raise RuntimeError(
                    f"artifact {entry['name']!r}: {item['path']!r} is missing from the "
                    f"local store ({source})"
                ) from None
            if (sha256, size) != (item["sha256"], item["size"]):
                raise RuntimeError(
                    f"artifact {entry['name']!r}: {item['path']!r} fails its check: sha256 "
                    f"{sha256[:12]}, {size} bytes; recorded {item['sha256'][:12]}, "
                    f"{item['size']} bytes"
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    if entry["kind"] == "file":
        return plan[0][0]
    return target_dir.resolve()


def _remove_tree(path: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)
