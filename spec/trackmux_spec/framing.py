"""A crash-safe, append-only file of record batches, for the journal and for trackers.

A file is a sequence of frames; a frame is one batch of records::

    b"TMF1"  u32 payload length  u32 CRC-32 of the payload  u32 record count  payload

all little-endian, the payload being ``marshal`` (format 4, stable since Python 3.4) of a
list of tuples of plain values (ints, floats, strings, dicts). Appends write whole frames;
a crash can only tear the last one, which readers ignore and :func:`valid_length` finds, so
the writer can cut it off before appending again. ``marshal`` reads and writes a record an
order of magnitude faster than JSON (floats stay binary), and, unlike ``pickle``, cannot run
code when it reads.
"""

from __future__ import annotations

import marshal
import struct
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = ["HEADER", "MAGIC", "CorruptFrameError", "encode_frame", "iter_frames", "valid_length"]

MAGIC = b"TMF1"
HEADER = struct.Struct("<4sIII")


class CorruptFrameError(ValueError):
    """A frame before the end of the file is damaged: not a crash, a corrupted file."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"corrupt frame at byte {offset}: {reason}")
        self.offset = offset


def encode_frame(items: list[Any]) -> bytes:
    """One frame holding ``items``."""
    payload = marshal.dumps(items, 4)
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload), len(items)) + payload


def _read_frame(handle: BinaryIO, decode: bool) -> tuple[int, list[Any] | None] | None:
    """The next frame; ``None`` at the end or for a torn last frame."""
    start = handle.tell()
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    magic, length, crc, count = HEADER.unpack(header)
    if magic != MAGIC:
        raise CorruptFrameError(start, "no frame header")
    payload = handle.read(length)
    if len(payload) < length:
        return None
    if zlib.crc32(payload) != crc:
        if handle.read(1):
            raise CorruptFrameError(start, "checksum mismatch")
        return None
    return count, (marshal.loads(payload) if decode else None)


def iter_frames(
    handle: BinaryIO, offset: int = 0, *, decode: bool = True
) -> Iterator[tuple[int, int, int, list[Any] | None]]:
    """``(start, end, count, items)`` of each complete frame from ``offset``, in order.

    Stops at the end of the file or at a torn last frame (what a crash leaves); raises
    :class:`CorruptFrameError` for damage before the end. With ``decode=False`` the items
    are ``None`` (only the headers and checksums are read).
    """
    handle.seek(offset)
    while True:
        frame = _read_frame(handle, decode)
        if frame is None:
            return
        end = handle.tell()
        yield offset, end, frame[0], frame[1]
        offset = end


def valid_length(handle: BinaryIO) -> tuple[int, int]:
    """``(bytes, records)`` of the file's complete frames: where a writer must append."""
    end = records = 0
    for _, frame_end, count, _ in iter_frames(handle, 0, decode=False):
        end, records = frame_end, records + count
    return end, records
