"""The null tracker's session: its directory layout and the file operations on it.

The layout and the NaN/infinity policy are documented in the package docstring of
:mod:`trackmux_null`. Every directory this module creates is ``0o700`` and every file
``0o600``; metadata files are replaced atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from trackmux_spec import RetryableError, TrackerClosedError, UnknownJobError
from trackmux_spec.framing import CorruptFrameError, encode_frame, iter_frames

__all__ = ["NullSession", "is_alive"]

#: Job and artifact ids become single path components: no separators, no leading dot.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
#: Keys the history file adds to each record's values.
RESERVED_KEYS = frozenset({"_step", "_timestamp", "_seq"})


def is_alive(pid: Any) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as alive)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def make_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode ``0o700``; return it."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)
    return path


def open_private(path: Path, flags: int) -> IO[bytes]:
    """Open ``path`` in binary mode, creating it with mode ``0o600`` if needed."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    mode = "ab" if flags & os.O_APPEND else "wb"
    return os.fdopen(fd, mode)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a private temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open_private(tmp, os.O_WRONLY | os.O_EXCL) as out:
            out.write(json.dumps(data, indent=2, sort_keys=True).encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    """The JSON document at ``path``, or ``None`` if there is no such file."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def read_history(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Read a ``history.tmf`` file (frames of row dicts, :mod:`trackmux_spec.framing`).

    :returns: the complete rows and the byte length they occupy. A torn last frame is not
        counted, so the caller may truncate the file to that length.
    :raises RuntimeError: ``_seq`` skips a value (the file was edited or mixed up).
    """
    rows: list[dict[str, Any]] = []
    good = 0
    try:
        source = path.open("rb")
    except FileNotFoundError:
        return rows, 0
    with source:
        try:
            frames = list(iter_frames(source))
        except CorruptFrameError as exc:
            raise RuntimeError(f"{path} is corrupt: {exc}") from None
        for _, end, _, items in frames:
            for row in items or ():
                if not isinstance(row, dict) or row.get("_seq") != len(rows):
                    raise RuntimeError(
                        f"{path}: row {len(rows) + 1} has _seq "
                        f"{row.get('_seq') if isinstance(row, dict) else row!r}, "
                        f"expected {len(rows)}")
                rows.append(row)
            good = end
    return rows, good


class NullSession:
    """A connection to the null tracker's store under ``root``.

    Holds, per job, the number of history rows stored (the next expected ``seq``) and
    the open append handle of its history file. Safe to share between threads: every
    operation on a job's files runs under :attr:`lock`.
    """

    def __init__(self, root: Path) -> None:
        """Open (and create, private, if missing) the store under ``root``."""
        self.root = make_dir(Path(root)).resolve()
        self.hostname = socket.gethostname()
        self.lock = threading.RLock()
        self.closed = False
        self._counts: dict[str, int] = {}
        self._last_steps: dict[str, int | None] = {}
        self._handles: dict[str, IO[bytes]] = {}

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<NullSession {state} root={str(self.root)!r}>"

    # -- lifecycle -----------------------------------------------------------

    def check_open(self) -> None:
        """Raise :class:`~trackmux_spec.TrackerClosedError` after :meth:`close`."""
        if self.closed:
            raise TrackerClosedError(f"null tracker session at {self.root} is closed")

    def close(self) -> None:
        """Close every open history file; further use raises ``TrackerClosedError``."""
        with self.lock:
            self.closed = True
            for job_id in list(self._handles):
                self.release(job_id)

    def release(self, job_id: str) -> None:
        """Close the history file of ``job_id`` if it is open (errors closing it are ignored)."""
        with self.lock:
            handle = self._handles.pop(job_id, None)
            if handle is not None:
                try:
                    handle.close()
                except OSError:
                    pass

    # -- layout --------------------------------------------------------------

    @property
    def runs_dir(self) -> Path:
        """``runs/``: one directory per job."""
        return self.root / "runs"

    def run_dir(self, job_id: str) -> Path:
        """``runs/<job_id>``; an id that is not a safe file name is an unknown job."""
        if not isinstance(job_id, str) or not _SAFE_ID.fullmatch(job_id):
            raise UnknownJobError(job_id)
        return self.runs_dir / job_id

    def meta_path(self, job_id: str) -> Path:
        """``runs/<job_id>/meta.json``."""
        return self.run_dir(job_id) / "meta.json"

    def history_path(self, job_id: str) -> Path:
        """``runs/<job_id>/history.tmf``."""
        return self.run_dir(job_id) / "history.tmf"

    def manifest_path(self, artifact_id: str) -> Path:
        """``artifacts/<artifact_id>.json``; an unsafe id is an unknown artifact."""
        if not isinstance(artifact_id, str) or not _SAFE_ID.fullmatch(artifact_id):
            raise UnknownJobError(artifact_id)
        return self.root / "artifacts" / f"{artifact_id}.json"

    def blob_path(self, digest: str) -> Path:
        """``blobs/sha256/<aa>/<hex>`` for a lowercase hex SHA-256 ``digest``."""
        if not _SHA256.fullmatch(digest):
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / "blobs" / "sha256" / digest[:2] / digest

    # -- runs ----------------------------------------------------------------

    def read_meta(self, job_id: str) -> dict[str, Any]:
        """The job's ``meta.json``; :class:`~trackmux_spec.UnknownJobError` if none."""
        meta = read_json(self.meta_path(job_id))
        if meta is None:
            raise UnknownJobError(job_id)
        return meta

    def write_meta(self, job_id: str, meta: dict[str, Any]) -> None:
        """Replace the job's ``meta.json`` atomically, creating its directory."""
        make_dir(self.run_dir(job_id))
        write_json_atomic(self.meta_path(job_id), meta)

    def stored_count(self, job_id: str) -> int:
        """How many history rows the job holds, loading (and repairing) the file once.

        A torn last frame left by a crash is truncated away on load.
        """
        with self.lock:
            if job_id not in self._counts:
                self.read_meta(job_id)
                path = self.history_path(job_id)
                rows, good = read_history(path)
                if path.exists() and path.stat().st_size > good:
                    with path.open("r+b") as repair:
                        repair.truncate(good)
                self._counts[job_id] = len(rows)
                self._last_steps[job_id] = int(rows[-1]["_step"]) if rows else None
            return self._counts[job_id]

    def last_step(self, job_id: str) -> int | None:
        """The step of the job's last stored row, ``None`` if it has none."""
        with self.lock:
            self.stored_count(job_id)
            return self._last_steps.get(job_id)

    def append_rows(self, job_id: str, rows: list[dict[str, Any]]) -> None:
        """Append already-numbered rows (one frame) to the job's history and flush.

        :raises RetryableError: the write failed; the count is reloaded on the next call.
        """
        if not rows:
            return
        data = encode_frame(rows)
        with self.lock:
            count = self.stored_count(job_id)
            try:
                handle = self._handles.get(job_id)
                if handle is None:
                    handle = open_private(self.history_path(job_id), os.O_WRONLY | os.O_APPEND)
                    self._handles[job_id] = handle
                handle.write(data)
                handle.flush()
            except OSError as exc:
                self.release(job_id)
                self._counts.pop(job_id, None)
                raise RetryableError(f"writing history of job {job_id!r}: {exc}") from exc
            self._counts[job_id] = count + len(rows)
            self._last_steps[job_id] = int(rows[-1]["_step"])

    def history(self, job_id: str) -> list[dict[str, Any]]:
        """Every complete stored row of the job (a torn last frame is ignored, not repaired)."""
        with self.lock:
            self.read_meta(job_id)
            return read_history(self.history_path(job_id))[0]

    # -- artifacts -----------------------------------------------------------

    def put_blob(self, source: Path) -> tuple[str, int]:
        """Store the bytes of file ``source`` by content; return ``(sha256, size)``.

        Content that is already stored is not written again.
        """
        staging = make_dir(self.root / "blobs" / "sha256")
        tmp = staging / f".incoming-{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        size = 0
        try:
            with source.open("rb") as src, open_private(tmp, os.O_WRONLY | os.O_EXCL) as out:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            target = self.blob_path(digest.hexdigest())
            if target.exists():
                tmp.unlink()
            else:
                make_dir(target.parent)
                os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest.hexdigest(), size

    def read_blob(self, digest: str, name: str) -> Iterator[bytes]:
        """Yield the blob's bytes in chunks, then check them against ``digest``.

        :raises RuntimeError: the blob is missing or its content does not match; the
            message names the artifact file ``name``.
        """
        try:
            source = self.blob_path(digest).open("rb")
        except FileNotFoundError:
            raise RuntimeError(f"artifact file {name!r}: blob {digest} is missing") from None
        check = hashlib.sha256()
        with source:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                check.update(chunk)
                yield chunk
        if check.hexdigest() != digest:
            raise RuntimeError(
                f"artifact file {name!r}: checksum mismatch"
                f" (expected sha256 {digest}, got {check.hexdigest()})"
            )
