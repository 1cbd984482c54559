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
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from trackmux_spec import RetryableError, TrackerClosedError, UnknownJobError
from trackmux_spec.framing import CorruptFrameError, encode_frame, iter_frames
from trackmux_spec.journal import read_records

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


#: Keys of a history item that refers to records in the core's journal instead of holding a
#: row (see :meth:`NullSession.append_reference`).
REFERENCE_KEYS = ("_journal", "_link", "_ino", "_start", "_stop", "_seq_base")
#: Keys two consecutive references share when they are ranges of the same journal.
_SAME_JOURNAL = ("_journal", "_link", "_ino", "_seq_base")


def _is_reference(item: Any) -> bool:
    return isinstance(item, dict) and "_journal" in item


def _item_rows(item: Any) -> int:
    """How many rows a history item stands for (1 for a row, the range for a reference)."""
    if _is_reference(item):
        return int(item["_stop"]) - int(item["_start"])
    return 1


def _item_first_seq(item: Any) -> Any:
    if _is_reference(item):
        return int(item["_start"]) + int(item["_seq_base"])
    return item.get("_seq") if isinstance(item, dict) else item


def scan_history(path: Path) -> tuple[list[Any], int]:
    """The items of a ``history.tmf`` file (rows and journal references, unexpanded).

    :returns: the items of the complete frames and the byte length they occupy. A torn
        last frame is not counted, so the caller may truncate the file to that length.
    :raises RuntimeError: ``_seq`` skips a value (the file was edited or mixed up).
    """
    items: list[Any] = []
    count = good = 0
    try:
        source = path.open("rb")
    except FileNotFoundError:
        return items, 0
    with source:
        try:
            frames = list(iter_frames(source))
        except CorruptFrameError as exc:
            raise RuntimeError(f"{path} is corrupt: {exc}") from None
        for _, end, _, batch in frames:
            for item in batch or ():
                first = _item_first_seq(item)
                if first != count:
                    raise RuntimeError(
                        f"{path}: row {count + 1} has _seq {first!r}, expected {count}")
                items.append(item)
                count += _item_rows(item)
            good = end
    return items, good


def _journal_to_read(item: dict[str, Any], root: Path) -> Path:
    """Where a reference's records are: the journal itself while it is the one referred to
    (it alone shows what is still in its write-ahead log), else the store's hard link to it
    (the journal was deleted, or replaced by a new run's journal of the same id)."""
    journal = root / item["_journal"]
    try:
        if os.stat(journal).st_ino == int(item["_ino"]):
            return journal
    except FileNotFoundError:
        pass
    link = item.get("_link")
    if link is None:
        raise FileNotFoundError(f"{journal} is gone or is another run's journal now")
    return root / link


def _merged(items: list[Any]) -> Iterator[Any]:
    """The items with consecutive ranges of one journal merged into one reference."""
    pending: dict[str, Any] | None = None
    for item in items:
        if (
            pending is not None
            and _is_reference(item)
            and item["_start"] == pending["_stop"]
            and all(item.get(key) == pending.get(key) for key in _SAME_JOURNAL)
        ):
            pending["_stop"] = item["_stop"]
            continue
        if pending is not None:
            yield pending
        pending = dict(item) if _is_reference(item) else None
        if pending is None:
            yield item
    if pending is not None:
        yield pending


def expand(items: list[Any], root: Path) -> Iterator[dict[str, Any]]:
    """The rows the items stand for, journal references read from the core's journal.

    :raises RuntimeError: a referenced journal is gone or holds fewer records (the message
        names it).
    """
    for item in _merged(items):
        if not _is_reference(item):
            yield item
            continue
        journal = _journal_to_read(item, root)
        base = int(item["_seq_base"])
        try:
            records = read_records(journal, int(item["_start"]), int(item["_stop"]))
        except (FileNotFoundError, LookupError, sqlite3.Error) as exc:
            raise RuntimeError(
                f"the offline tracker's rows are kept in the run's journal, {journal}, and "
                f"it cannot be read: {exc!r}"
            ) from None
        for seq, step, timestamp, values in records:
            yield {**values, "_step": step, "_timestamp": timestamp, "_seq": seq + base}


def read_history(path: Path, root: Path) -> list[dict[str, Any]]:
    """Every complete row of a ``history.tmf`` file, references expanded (a torn last
    frame is ignored)."""
    return list(expand(scan_history(path)[0], root))


class NullSession:
    """A connection to the null tracker's store under ``root``.

    Holds, per job, the number of history rows stored (the next expected ``seq``), its
    last history item and the open append handle of its history file. Safe to share
    between threads: every operation on a job's files runs under :attr:`lock`.
    """

    def __init__(self, root: Path) -> None:
        """Open (and create, private, if missing) the store under ``root``."""
        self.root = make_dir(Path(root)).resolve()
        self.hostname = socket.gethostname()
        self.lock = threading.RLock()
        self.closed = False
        self._counts: dict[str, int] = {}
        self._last_items: dict[str, Any] = {}
        self._journal_refs: dict[tuple[str, str], dict[str, Any]] = {}
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
                items, good = scan_history(path)
                if path.exists() and path.stat().st_size > good:
                    with path.open("r+b") as repair:
                        repair.truncate(good)
                self._counts[job_id] = sum(_item_rows(item) for item in items)
                self._last_items[job_id] = items[-1] if items else None
            return self._counts[job_id]

    def last_step(self, job_id: str) -> int | None:
        """The step of the job's last stored row, ``None`` if it has none."""
        with self.lock:
            self.stored_count(job_id)
            item = self._last_items.get(job_id)
            if item is None:
                return None
            if _is_reference(item):
                last = dict(item, _start=int(item["_stop"]) - 1)
                item = next(expand([last], self.root))
            return int(item["_step"])

    def _append(self, job_id: str, items: list[Any], rows: int) -> None:
        data = encode_frame(items)
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
            self._counts[job_id] = count + rows
            self._last_items[job_id] = items[-1]

    def append_rows(self, job_id: str, rows: list[dict[str, Any]]) -> None:
        """Append already-numbered rows (one frame) to the job's history and flush.

        :raises RetryableError: the write failed; the count is reloaded on the next call.
        """
        if rows:
            self._append(job_id, rows, len(rows))

    def append_reference(
        self, job_id: str, journal: Path, start: int, stop: int, seq_base: int
    ) -> None:
        """Append a reference to records ``start`` to ``stop - 1`` of the core's journal at
        ``journal`` (rows ``start + seq_base`` on): one small item instead of the rows.

        Paths are stored relative to the store, so a data directory moved as a whole keeps
        its history readable. The first reference of a job to a journal also hard-links the
        journal's database file into the job's directory: a journal deleted after its run
        ended (its write-ahead log is folded into the file when the run's writer closes it)
        still holds the job's rows through the link. Where hard links are refused (another
        filesystem), the journal itself is the only copy.

        :raises RetryableError: the write failed; the count is reloaded on the next call.
        """
        if stop <= start:
            return
        with self.lock:
            key = (job_id, str(journal))
            if key not in self._journal_refs:
                self._journal_refs[key] = self._reference_to(job_id, Path(journal).resolve())
            item = dict(self._journal_refs[key], _start=start, _stop=stop, _seq_base=seq_base)
            self._append(job_id, [item], stop - start)

    def _reference_to(self, job_id: str, journal: Path) -> dict[str, Any]:
        location = os.path.relpath(journal, self.root)
        try:
            inode = os.stat(journal).st_ino
        except OSError as exc:
            raise RetryableError(f"the journal {journal} cannot be read: {exc}") from exc
        link = self.run_dir(job_id) / f"journal-{inode}.db"
        try:
            os.link(journal, link)
        except FileExistsError:
            if os.stat(link).st_ino != inode:
                link.unlink()
                os.link(journal, link)
        except OSError:
            return {"_journal": location, "_link": None, "_ino": inode}
        return {"_journal": location, "_link": os.path.relpath(link, self.root), "_ino": inode}

    def history(self, job_id: str) -> list[dict[str, Any]]:
        """Every complete stored row of the job (a torn last frame is ignored, not repaired)."""
        with self.lock:
            self.read_meta(job_id)
            return read_history(self.history_path(job_id), self.root)

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
